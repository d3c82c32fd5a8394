"""Train BiRQA: ``python train.py --config configs/default.py --workdir runs/demo``.

Both flags have defaults (the config path is found next to this script, so it runs from any
folder), so plain ``python train.py`` trains the embedded default. Any config field can be
overridden: ``--config.num_steps=100``; ``--help`` lists them all. Running again with the same
workdir resumes from its latest checkpoint; Ctrl-C stops after the step in progress, saves it
and says so (press it twice to abort at once).
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from birqa_jax.absl_entry import run_absl

HERE = os.path.dirname(os.path.abspath(__file__))
config_flags.DEFINE_config_file("config", os.path.join(HERE, "configs", "default.py"), "Training config file.",
                                lock_config=True)
flags.DEFINE_string("workdir", "runs/demo", "Folder for checkpoints, metrics and the exported model.")
flags.DEFINE_integer("stop_at", None, "Stop after this step (checkpointed); rerun to resume.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    from birqa_jax.train.loop import train_and_evaluate

    try:
        summary = train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir, stop_at=flags.FLAGS.stop_at)
    except FileNotFoundError as e:  # a data set or model file that is not where the config says
        sys.exit(f"train.py: error: {e}")
    return 130 if summary.get("interrupted") else 0


if __name__ == "__main__":
    run_absl(main, __doc__)
