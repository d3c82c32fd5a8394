"""BiRQA on KADID-10k (official files from the user; see docs/datasets.md).

Batch 32 follows the paper [reported]; crops, optimiser and schedule are this project's choices.
``--config.data.manual_dir=/path/to/kadid10k`` is needed on the first run (it builds the
dataset into ``data.data_dir``).
"""

import ml_collections

from birqa_jax.model import ModelConfig
from configs import default


def get_config() -> ml_collections.ConfigDict:
    c = default.get_config()
    c.data.name = "kadid10k"
    c.data.manual_dir = "~/datasets/kadid10k"
    c.data.crop_size = (256, 256)
    c.model = ml_collections.ConfigDict(ModelConfig().to_dict())
    c.batch_size = 32
    c.num_steps = 20_000         # about 100 epochs of the 6:2:2 training part
    c.learning_rate = 1e-3
    c.warmup_steps = 500
    c.log_every = 50
    c.eval_every = 1_000
    c.checkpoint_every = 1_000
    c.eval_batch_size = 8
    c.prefetch = 4
    c.test_baselines = ("psnr", "ssim", "ms_ssim", "gmsd")
    return c
