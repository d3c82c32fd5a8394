"""Correlation statistics of an IQA metric against human scores (host-side numpy/scipy).

Conventions:
- ``pred`` are a metric's scores, ``mos`` the human scores, both 1-D of the same length ``n``.
  ``mos`` is expected higher = better (normalise DMOS datasets first).
- Reported correlations are absolute values: a lower-better metric (GMSD, a distance) gets
  positive correlations too. The sign is kept as ``direction`` (+1 when the predictions rise with
  MOS, -1 when they fall, taken from the sign of the Spearman correlation).
- PLCC is reported raw and after the 4-parameter logistic
  ``f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2`` (VQEG), fitted on the predictions
  turned to rise with MOS (``direction * pred``), from the initial guess
  ``[max(mos), min(mos), mean(x), std(x) / 4]``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import scipy.optimize
import scipy.special
import scipy.stats
from numpy.typing import ArrayLike


def _as_vector(x: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(x)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"{name} must be real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if a.ndim != 1:
        a = np.squeeze(a)
        if a.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {np.shape(x)}")
    if not np.all(np.isfinite(a)):
        bad = np.flatnonzero(~np.isfinite(a))
        raise ValueError(
            f"{name} has {bad.size} non-finite values (NaN/Inf), first at index {bad[0]}"
        )
    return a


def _pair(pred: ArrayLike, mos: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 copies: 1-D (or [n, 1]), same length, finite, n >= 3."""
    p, m = _as_vector(pred, "pred"), _as_vector(mos, "mos")
    if p.size != m.size:
        raise ValueError(f"pred and mos differ in length: {p.size} vs {m.size}")
    if p.size < 3:
        raise ValueError(f"need at least 3 items, got {p.size}")
    return p, m


def _is_constant(x: np.ndarray) -> bool:
    return bool(np.all(x == x[0]))


def srocc(pred: ArrayLike, mos: ArrayLike) -> float:
    """Spearman rank correlation, signed; NaN when either input is constant."""
    p, m = _pair(pred, mos)
    if _is_constant(p) or _is_constant(m):
        return math.nan
    return float(scipy.stats.spearmanr(p, m).statistic)


def krocc(pred: ArrayLike, mos: ArrayLike) -> float:
    """Kendall rank correlation (tau-b), signed; NaN when either input is constant."""
    p, m = _pair(pred, mos)
    if _is_constant(p) or _is_constant(m):
        return math.nan
    return float(scipy.stats.kendalltau(p, m).statistic)


def plcc(pred: ArrayLike, mos: ArrayLike) -> float:
    """Pearson linear correlation, signed; NaN when either input is constant."""
    p, m = _pair(pred, mos)
    if _is_constant(p) or _is_constant(m):
        return math.nan
    return float(scipy.stats.pearsonr(p, m).statistic)


def _direction(p: np.ndarray, m: np.ndarray) -> int:
    """-1 when ``p`` falls as ``m`` rises (negative Spearman), else +1 (also when undefined)."""
    return -1 if srocc(p, m) < 0 else 1


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The 4-parameter logistic ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``: b2 -> b1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (b1 - b2) * scipy.special.expit((x - b3) / abs(b4)) + b2


@dataclasses.dataclass(frozen=True)
class LogisticFit:
    """Result of :func:`fit_logistic`.

    Attributes:
      params: (b1, b2, b3, b4) of :func:`logistic4` in units of ``mos`` (b1, b2) and of
        ``direction * pred`` (b3, b4); NaN when the fit failed.
      direction: +1 or -1; the logistic is a function of ``direction * pred``.
      ok: whether the fit converged to finite parameters.
      message: "converged" (with any warnings raised during the fit), or why the fit failed.
    """

    params: tuple[float, float, float, float]
    direction: int
    ok: bool
    message: str

    def predict(self, pred: ArrayLike) -> np.ndarray:
        """Map raw predictions (same direction as the fitted ones) to the MOS scale.

        Raises ValueError when the fit failed: a failed fit has no curve to apply.
        """
        if not self.ok:
            raise ValueError(f"the logistic fit failed ({self.message}); it cannot predict")
        x = np.asarray(pred, dtype=np.float64)
        return logistic4(self.direction * x, *self.params)


def fit_logistic(pred: ArrayLike, mos: ArrayLike) -> LogisticFit:
    """Least-squares fit of the 4-parameter logistic from ``pred`` [n] to ``mos`` [n].

    The predictions are first turned to rise with MOS (``direction`` = sign of the Spearman
    correlation, +1 for ties or constant input), so one initial guess
    ``[max(mos), min(mos), mean(x), std(x) / 4]`` serves higher- and lower-better metrics.
    A failure (no convergence, non-finite parameters, constant input, fewer than 5 items) is
    reported through ``ok=False`` and ``message``, never raised and never replaced by a fallback.
    """
    p, m = _pair(pred, mos)
    nan4 = (math.nan,) * 4
    direction = _direction(p, m)
    if _is_constant(p) or _is_constant(m):
        which = "pred" if _is_constant(p) else "mos"
        return LogisticFit(nan4, direction, False, f"{which} is constant: no logistic fits")
    if p.size <= 4:
        return LogisticFit(nan4, direction, False, f"{p.size} items cannot fix 4 parameters, need 5")
    x = direction * p
    p0 = [m.max(), m.min(), x.mean(), x.std() / 4]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", scipy.optimize.OptimizeWarning)
        try:
            params, _ = scipy.optimize.curve_fit(logistic4, x, m, p0=p0, maxfev=20000)
        except (RuntimeError, ValueError) as err:
            return LogisticFit(nan4, direction, False, f"curve_fit failed: {err}")
    if not np.all(np.isfinite(params)):
        return LogisticFit(nan4, direction, False, f"non-finite parameters {params.tolist()}")
    notes = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    message = "converged" + (f" (warnings: {'; '.join(notes)})" if notes else "")
    return LogisticFit(tuple(float(b) for b in params), direction, True, message)


def correlations(pred: ArrayLike, mos: ArrayLike) -> dict:
    """All standard correlations of ``pred`` [n] against ``mos`` [n] (n >= 3).

    Returns a dict:
      srocc, krocc, plcc: absolute Spearman, Kendall and raw Pearson correlations (so a
        lower-better metric also scores positive; ``direction`` keeps the sign).
      plcc_fitted, rmse_fitted: |Pearson| and RMSE (in ``mos`` units) after the logistic fit.
      direction: +1 if the predictions rise with MOS, -1 if they fall (sign of the SROCC).
      fit_ok, fit_message: the logistic fit's outcome; when it failed the fitted metrics are NaN.
      constant: True when ``pred`` or ``mos`` is constant; then every correlation is NaN
        (undefined), ``fit_ok`` is False and ``fit_message`` says which input was constant.
      n: the number of items.
    Raises ValueError for mismatched lengths, NaN/Inf, or fewer than 3 items.
    """
    p, m = _pair(pred, mos)
    fit = fit_logistic(p, m)
    out = {
        "srocc": abs(srocc(p, m)),
        "krocc": abs(krocc(p, m)),
        "plcc": abs(plcc(p, m)),
        "plcc_fitted": math.nan,
        "rmse_fitted": math.nan,
        "direction": fit.direction,
        "fit_ok": fit.ok,
        "fit_message": fit.message,
        "constant": _is_constant(p) or _is_constant(m),
        "n": int(p.size),
    }
    if fit.ok:
        fitted = fit.predict(p)
        # A fit that converged to a flat curve gives constant output: its PLCC is undefined.
        out["plcc_fitted"] = math.nan if _is_constant(fitted) else abs(plcc(fitted, m))
        out["rmse_fitted"] = float(np.sqrt(np.mean((fitted - m) ** 2)))
    return out


def two_afc_score(d0: ArrayLike, d1: ArrayLike, judge: ArrayLike) -> float:
    """BAPPS 2AFC score: mean of ``(d0<d1)*(1-judge) + (d0>d1)*judge + (d0==d1)*0.5``.

    Args:
      d0: [n] distances of patches p0 to the reference (lower = more similar). Pass a negated
        score for a higher-better metric.
      d1: [n] distances of patches p1 to the reference, likewise.
      judge: [n] fraction of people who preferred p1, in [0, 1].

    Returns:
      The score in [0, 1]; human agreement is the ceiling, not 1.

    Raises:
      ValueError: inputs that are not finite real 1-D arrays of one length n >= 1, or a
        ``judge`` outside [0, 1].
    """
    a, b, j = (_as_vector(v, name) for v, name in ((d0, "d0"), (d1, "d1"), (judge, "judge")))
    if not a.size == b.size == j.size:
        raise ValueError(f"d0, d1 and judge differ in length: {a.size}, {b.size}, {j.size}")
    if a.size == 0:
        raise ValueError("need at least one triplet, got none")
    if np.any((j < 0) | (j > 1)):
        raise ValueError(f"judge must lie in [0, 1], got range [{j.min()}, {j.max()}]")
    score = (a < b) * (1 - j) + (a > b) * j + (a == b) * 0.5
    return float(score.mean())


def per_type(
    pred: ArrayLike,
    mos: ArrayLike,
    types: ArrayLike,
    names: Mapping[Hashable, str] | None = None,
) -> dict[str, dict]:
    """:func:`correlations` within each distortion type.

    Args:
      pred: [n] a metric's scores.
      mos: [n] human scores, higher = better.
      types: [n] type labels (ints or strings).
      names: optional label -> display name (e.g. ``{1: "Gaussian blur"}``); labels not in it
        keep ``str(label)``.

    Returns:
      Display name -> :func:`correlations` dict, in sorted label order.

    Raises:
      ValueError: as :func:`correlations` for ``pred`` and ``mos``, ``types`` not 1-D of
        length n, or a type with fewer than 3 items.
    """
    p, m = _pair(pred, mos)
    t = np.asarray(types)
    if t.ndim != 1 or t.size != p.size:
        raise ValueError(f"types must be 1-D with {p.size} labels, got shape {t.shape}")
    names = names or {}
    out = {}
    for label in np.unique(t):
        key = label.item() if hasattr(label, "item") else label
        sel = t == label
        if sel.sum() < 3:
            raise ValueError(f"distortion type {key!r} has {int(sel.sum())} items, need at least 3")
        out[names.get(key, str(key))] = correlations(p[sel], m[sel])
    return out


def mean_std_over_splits(results: Sequence[Mapping]) -> dict[str, float]:
    """Mean and standard deviation of every numeric key over splits.

    Args:
      results: one dict per split (e.g. :func:`correlations` outputs).
    Returns ``{key: mean, key + "_std": std, ..., "n_splits": k}`` for every key whose value is
    a number in every split. The std is the population std (numpy's ddof=0). Booleans count as
    0/1, so ``fit_ok`` becomes the fraction of splits whose fit converged; NaN values propagate
    (a split with an undefined correlation makes the mean NaN rather than hiding it). Strings
    are skipped. Raises ValueError for an empty list or a numeric key missing from some split.
    """
    if not results:
        raise ValueError("no splits given")

    def numeric(v) -> bool:
        return isinstance(v, (int, float, np.integer, np.floating, np.bool_))

    keys = [k for k, v in results[0].items() if numeric(v)]
    out: dict[str, float] = {}
    for k in keys:
        missing = [i for i, r in enumerate(results) if k not in r or not numeric(r[k])]
        if missing:
            raise ValueError(f"key {k!r} is missing or not numeric in splits {missing}")
        v = np.array([float(r[k]) for r in results])
        out[k] = float(v.mean())
        out[k + "_std"] = float(v.std())
    out["n_splits"] = len(results)
    return out
