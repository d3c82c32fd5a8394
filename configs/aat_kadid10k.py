"""Anchored Adversarial Training on KADID-10k, fine-tuning a clean KADID-10k run.

The paper's AAT batch size is 16 [reported]; the attack, band width and anchors are this
project's defaults (see ``configs/aat_default.py``).
"""

from configs import aat_default, kadid10k


def get_config():
    c = kadid10k.get_config()
    c.init_from = "runs/kadid10k"
    c.aat = aat_default.get_config().aat
    c.loss = aat_default.get_config().loss
    c.batch_size = 16
    c.num_steps = 5_000
    c.learning_rate = 1e-4
    c.warmup_steps = 200
    c.eval_every = 500
    c.checkpoint_every = 500
    return c
