"""Cross-dataset evaluation: the run's test split plus TID2013, LIVE and CSIQ in full.

The real datasets cannot be downloaded automatically: put the official files where
``manual_dir`` points (each builder in ``birqa_jax.data`` documents its layout); the first run
builds each into ``data_dir``. Use: ``python eval.py --workdir runs/demo --config configs/eval_cross.py``,
and change folders with ``--config.cross.tid2013.manual_dir=/path/to/tid2013``.
"""

import ml_collections

from configs import eval_default


def get_config() -> ml_collections.ConfigDict:
    c = eval_default.get_config()
    c.cross = ml_collections.ConfigDict(
        {
            label: dict(name=name, data_dir="data_cache", manual_dir=f"~/iqa/{label}")
            for label, name in (("tid2013", "tid2013"), ("live", "live"), ("csiq", "csiq"))
        }
    )
    return c
