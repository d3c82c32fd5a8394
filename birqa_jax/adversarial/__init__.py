"""White-box and black-box L-inf attacks on full-reference quality scores (``attacks``), and the
scores that summarise a metric's robustness to them (``scores``)."""

from birqa_jax.adversarial.attacks import (
    ATTACKS,
    away_objective,
    check_settings,
    direction_objective,
    item_keys,
    perturbation_stats,
    ranking_objective,
    run_attack,
)
from birqa_jax.adversarial.scores import absolute_gain, eps_integral, robustness_score, scrambling_direction

__all__ = [
    "ATTACKS", "absolute_gain", "away_objective", "check_settings", "direction_objective", "eps_integral",
    "item_keys", "perturbation_stats", "ranking_objective", "robustness_score", "run_attack", "scrambling_direction",
]
