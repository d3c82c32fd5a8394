"""Evaluate a trained BiRQA run against the classical baselines: ``python eval.py --workdir runs/demo``.

Scores the run's exported model and PSNR, SSIM, MS-SSIM and GMSD on the full-resolution test
split of the run's own dataset (and any cross-dataset entries of the config), writing
``eval.json``, ``eval.md`` and figures to ``<workdir>/eval`` (or ``--out``). Baselines alone,
without a model: ``python eval.py --metric ssim --metric psnr``. Add the adversarial evaluation
with ``--robustness`` (``--robust_attacks=fgsm,pgd --robust_eps=1/255,4/255
--robust_max_examples=64 --robust_crop=96x96``). The ``--metric`` and ``--robust_*`` flags
override the matching fields of ``--config``; any config field can be set as
``--config.batch_size=8``; ``--help`` lists them all. Runs from any folder.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from birqa_jax.absl_entry import run_absl
from birqa_jax.classical import NAMES as CLASSICAL_NAMES

HERE = os.path.dirname(os.path.abspath(__file__))
config_flags.DEFINE_config_file("config", os.path.join(HERE, "configs", "eval_default.py"), "Evaluation config file.",
                                lock_config=True)
flags.DEFINE_string("workdir", None,
                    "A training run's folder (config.json and birqa.msgpack); omit for baselines only.")
flags.DEFINE_string("out", None, "Output folder; default <workdir>/eval, or runs/baselines/eval without a workdir.")
flags.DEFINE_multi_string("metric", None, f"A metric to evaluate, repeatable: {', '.join(('birqa', *CLASSICAL_NAMES))} "
                          "(replaces config.metrics).")
flags.DEFINE_boolean("robustness", None, "Add the adversarial evaluation (config.robustness.enabled).")
flags.DEFINE_list("robust_attacks", None, "Attacks to run, e.g. fgsm,pgd (config.robustness.attacks).")
flags.DEFINE_list("robust_eps", None, "L-inf budgets in [0, 1] units, e.g. 1/255,2/255,4/255,8/255 "
                  "(config.robustness.eps).")
flags.DEFINE_integer("robust_max_examples", None, "Test pairs to attack (config.robustness.max_examples).")
flags.DEFINE_string("robust_crop", None, "Centre crop HxW the attacks run on, e.g. 96x96 (config.robustness.crop).")

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # tfds logs every dataset it opens at INFO
    from birqa_jax.evaluation import job as eval_lib

    try:
        eval_lib.apply_overrides(
            FLAGS.config, metrics=FLAGS.metric, robustness=FLAGS.robustness, attacks=FLAGS.robust_attacks,
            eps=FLAGS.robust_eps, max_examples=FLAGS.robust_max_examples, crop=FLAGS.robust_crop)
        eval_lib.run(FLAGS.config, FLAGS.workdir, FLAGS.out)
    except eval_lib.EvalError as e:
        sys.exit(f"eval.py: error: {e}")


if __name__ == "__main__":
    run_absl(main, __doc__)
