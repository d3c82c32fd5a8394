"""Paired comparisons of models on the same images: SROCC with bootstrap CIs over images and
seeds, verdicts, per-image worst cases over attacks, and the checks of a robustness study.

The design these serve (experiments/robustness_study.py, docs/robustness.md): several arms
(training recipes), each fine-tuned with several seeds; seed k of every arm is scored on the
same block of test pairs with the same attack keys. An arm's value is the mean over its seeds
of SROCC on their blocks; its CI resamples images within each block with the same indices for
every arm and seed, so differences between arms are paired. Host-side NumPy/SciPy only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.stats

from birqa_jax.adversarial.scores import robustness_score

NON_INFERIORITY_MARGIN = 0.02  # the default margin of ``verdict``: "not worse by more than this"


def srocc_rows(pred: np.ndarray, mos: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row: pred, mos [R, n] -> [R] (average ranks for ties, as
    ``scipy.stats.spearmanr``); NaN where a row is constant."""
    rp = scipy.stats.rankdata(pred, axis=-1)
    rm = scipy.stats.rankdata(mos, axis=-1)
    rp -= rp.mean(axis=-1, keepdims=True)
    rm -= rm.mean(axis=-1, keepdims=True)
    den = np.sqrt((rp * rp).sum(-1) * (rm * rm).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rp * rm).sum(-1) / den, np.nan)


def bootstrap_indices(n: int, replicates: int, seed: int) -> np.ndarray:
    """[replicates, n] indices drawn with replacement from range(n)."""
    return np.random.default_rng([seed, 11]).integers(0, n, (replicates, n))


@dataclasses.dataclass
class PairedEstimate:
    """SROCC (or a weighted sum of SROCCs) of one arm: the point value (mean over seeds of the
    full-sample SROCC), the bootstrap replicates of that mean [R], and the per-seed full-sample
    values."""

    value: float
    replicates: np.ndarray
    per_seed: list[float]

    def ci(self) -> tuple[float, float]:
        """The 95% percentile bootstrap CI ``(lo, hi)``: the 2.5th and 97.5th percentiles of the
        replicates, NaN replicates ignored."""
        lo, hi = np.nanpercentile(self.replicates, [2.5, 97.5])
        return float(lo), float(hi)


def paired_srocc(scores_per_seed: Sequence[np.ndarray], mos_per_seed: Sequence[np.ndarray],
                 idx_per_seed: Sequence[np.ndarray]) -> PairedEstimate:
    """SROCC of an arm: per seed, the scores [n_s] of its block against MOS [n_s], resampled
    with that block's bootstrap indices [R, n_s] (the same for every arm)."""
    full = [float(srocc_rows(s[None], m[None])[0]) for s, m in zip(scores_per_seed, mos_per_seed)]
    reps = np.stack([srocc_rows(s[i], m[i]) for s, m, i in zip(scores_per_seed, mos_per_seed, idx_per_seed)])
    return PairedEstimate(float(np.mean(full)), reps.mean(axis=0), full)


def combine(metrics: Sequence[PairedEstimate], weights: Sequence[float]) -> PairedEstimate:
    """A weighted sum of metrics of one arm (e.g. the area under SROCC vs eps), replicate by
    replicate and seed by seed."""
    w = np.asarray(weights, np.float64)
    return PairedEstimate(float(sum(wi * m.value for wi, m in zip(w, metrics))),
                          sum(wi * m.replicates for wi, m in zip(w, metrics)),
                          [float(sum(wi * m.per_seed[s] for wi, m in zip(w, metrics)))
                           for s in range(len(metrics[0].per_seed))])


def trapezoid_weights(x: Sequence[float]) -> np.ndarray:
    """w such that w @ y is the trapezoidal area under y(x) divided by the range of x."""
    x = np.asarray(x, np.float64)
    w = np.zeros_like(x)
    dx = np.diff(x)
    w[:-1] += dx / 2
    w[1:] += dx / 2
    return w / (x[-1] - x[0])


def verdict(lo: float, hi: float, margin: float = NON_INFERIORITY_MARGIN) -> str:
    """The verdict of "A vs B" from the 95% CI [lo, hi] of A - B (higher = better)."""
    if lo > 0:
        return "better"
    if lo > -margin:
        return "non-inferior"
    if hi < 0:
        return "worse"
    return "inconclusive"


def compare(a: PairedEstimate, b: PairedEstimate, margin: float = NON_INFERIORITY_MARGIN) -> dict:
    """A - B: the point delta, its paired bootstrap CI, the seed-level deltas, the verdict."""
    delta = a.replicates - b.replicates
    lo, hi = np.nanpercentile(delta, [2.5, 97.5])
    seeds = [x - y for x, y in zip(a.per_seed, b.per_seed)]
    return {"delta": a.value - b.value, "lo": float(lo), "hi": float(hi), "seed_deltas": seeds,
            "seeds_positive": int(sum(d > 0 for d in seeds)), "verdict": verdict(float(lo), float(hi), margin)}


def worst_case(clean: np.ndarray, attacked: Mapping[str, np.ndarray],
               direction: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per image, the score that moved furthest in its scrambling ``direction`` among the clean
    score and every attacked one: the AutoAttack-style ensemble. Returns the scores [n] and the
    name of the attack that won each image ("clean" where none moved it the right way)."""
    names = ["clean", *attacked]
    stack = np.stack([clean, *attacked.values()])  # [A + 1, n]
    best = np.argmax(direction[None] * stack, axis=0)
    return stack[best, np.arange(stack.shape[1])], [names[i] for i in best]


def masking_check(clean: np.ndarray, whitebox: np.ndarray, square: np.ndarray, direction: np.ndarray,
                  scale: float) -> dict:
    """Gradient-masking check on the pairs Square ran on: damage = the move of a score in its
    scrambling direction, in units of ``scale`` (the spread of the clean scores). A model that
    masks its gradients lets the black-box Square do more damage than the white-box worst case."""
    d_white = direction * (whitebox - clean) / scale
    d_square = direction * (square - clean) / scale
    return {"n": len(clean), "whitebox_damage": float(d_white.mean()), "square_damage": float(d_square.mean()),
            "square_beats_whitebox": float((d_square > d_white + 1e-9).mean()),
            "flag": bool(d_square.mean() > d_white.mean())}


def scale_diagnostics(clean: np.ndarray, worst: np.ndarray, mos: np.ndarray, direction: np.ndarray) -> dict:
    """How a model's robustness relates to its score scale, on one seed's pairs (all [n]):
    ``slope`` of clean score against MOS (least squares), ``damage`` = mean move of the worst-case
    score in its scrambling direction (score units), ``damage_mos`` = damage / slope (MOS units:
    a model cannot lower it by shrinking its scale), and Zhang et al.'s robustness ``R``."""
    slope = float(np.polyfit(mos, clean, 1)[0])
    damage = float(np.mean(direction * (worst - clean)))
    return {"slope": slope, "damage": damage, "damage_mos": damage / slope if slope > 0 else float("nan"),
            "R": robustness_score(clean, worst)}
