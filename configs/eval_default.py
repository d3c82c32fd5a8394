"""Default evaluation config for ``eval.py``: what to evaluate, on which data, and the attacks.

- The run's own test split (``own_test_split``): the dataset, split rule and split id of
  ``<workdir>/config.json``; without ``--workdir``, of ``data`` below (the training default,
  so ``python eval.py --metric ssim`` scores the baselines on the same test split BiRQA is
  tested on).
- ``cross``: more datasets, each evaluated on all its examples, as
  ``label -> {name, data_dir, manual_dir}`` (see ``configs/eval_cross.py``).
- ``robustness``: the adversarial evaluation of BiRQA (``--robustness``), on centre crops of a
  seeded random subset of the first evaluated set (the own test split when it is on). The
  defaults fit a CPU: two cheap attacks, 64 pairs, 96x96 crops. ``eps`` is in [0, 1] units.
  ``overrides`` maps an attack to settings of ``attacks.run_attack`` (``{"pgd": {"steps": 20}}``).

Any field can be overridden on the command line: ``--config.batch_size=8``.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.metrics = ("birqa", "psnr", "ssim", "ms_ssim", "gmsd")
    c.batch_size = 16  # pairs per call; consecutive pairs of one size share a batch

    c.own_test_split = True
    c.data = default.get_config().data  # the test split evaluated without --workdir
    c.cross = ml_collections.ConfigDict()

    c.robustness = ml_collections.ConfigDict(
        dict(
            enabled=False,
            attacks=("fgsm", "pgd"),
            eps=(1 / 255, 2 / 255, 4 / 255, 8 / 255),
            max_examples=64,
            crop=(96, 96),
            batch_size=16,
            seed=0,
            overrides=ml_collections.ConfigDict(),
        )
    )
    return c
