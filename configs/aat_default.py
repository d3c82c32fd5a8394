"""Anchored Adversarial Training on the embedded default (fine-tunes the clean ``runs/demo``).

The recipe that beat plain adversarial training in the robustness study (arm ``aat_full_v2``,
docs/robustness.md): ordinary batches, every item attacked by PGD-3 at 4/255 on the ranking
objective (its score pushed across the batch's clean scores); loss = plain AT's PLCC + MSE +
ranking on the attacked scores + 0.5 (PLCC + MSE) of the clean scores + the ranking of every
attacked score against every stop-gradient clean score (margin 0.5 x the label gap) + the
scale-invariant consistency (attacked - clean)^2 / Var_batch(clean), variance differentiated.
The MOS-band AAT of the first reconstruction is ``configs/aat_band.py``.
"""

import ml_collections

from configs import default, override

# The recipe's fields, shared with configs/robust.py and the study's arm (experiments/robustness_study.py).
RECIPE = {
    "aat.enabled": True, "aat.anchored": False, "aat.attack": "pgd", "aat.eps": 4 / 255, "aat.objective": "rank",
    "loss.plcc": 1.0, "loss.rank": 1.0, "loss.rank_margin": 0.05, "loss.clean": 0.5, "loss.anchor_rank": 1.0,
    "loss.anchor_margin_rel": 0.5, "loss.scaled_consistency": 1.0, "loss.scaled_consistency_stop_var": False,
}


def get_config():
    c = default.get_config()
    c.init_from = "runs/demo"
    c.aat.settings = ml_collections.ConfigDict(dict(steps=3, step_size=2 / 255))
    override(c, RECIPE)
    c.batch_size = 16
    c.num_steps = 300
    c.learning_rate = 3e-4
    c.warmup_steps = 20
    c.eval_every = 150
    c.checkpoint_every = 150
    return c
