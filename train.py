"""Train BiRQA: ``python train.py --config configs/default.py --workdir runs/demo``.

Both flags have defaults, so plain ``python train.py`` trains the embedded default. Any config
field can be overridden: ``--config.num_steps=100``. Running again with the same workdir
resumes from its latest checkpoint.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", "configs/default.py", "Training config file.", lock_config=True)
flags.DEFINE_string("workdir", "runs/demo", "Folder for checkpoints, metrics and the exported model.")
flags.DEFINE_integer("stop_at", None, "Stop after this step (checkpointed); rerun to resume.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    from birqa_jax.train.loop import train_and_evaluate

    try:
        train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir, stop_at=flags.FLAGS.stop_at)
    except FileNotFoundError as e:  # a data set or model file that is not where the config says
        sys.exit(f"train.py: error: {e}")


if __name__ == "__main__":
    sys.exit(app.run(main))
