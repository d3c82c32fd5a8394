"""The common ground of every arm of ``experiments/robustness_study.py``: ``aat_band`` with
a leave-photographs-out split and the packaged default weights as the starting point.

Split ``photos``: kadid_synthetic's photographs astronaut, chelsea and immunohistochemistry
(``data.synthetic.UNSEEN_BY_DEFAULT``, 2,000 pairs) are the test part, no validation part; the
four others train, exactly the training photographs of the packaged weights, which therefore
never saw a test photograph in training. Without validation the final step is exported.

    python train.py --config configs/aat_study.py --workdir runs/aat_study

runs the MOS-band AAT on this split; the study's arms override a few fields (``ARMS`` in
``experiments/robustness_study.py``), each runnable the same way with ``--config.<field>=``.
"""

import os

import birqa_jax.model
from configs import aat_band

PACKAGED_WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(birqa_jax.model.__file__)), "assets",
                                "birqa_default.msgpack")


def get_config():
    c = aat_band.get_config()
    c.data.split = "photos"
    c.data.test_photos = ("astronaut", "chelsea", "immunohistochemistry")
    c.data.val_photos = ()
    c.init_from = PACKAGED_WEIGHTS
    c.test_baselines = ()
    return c
