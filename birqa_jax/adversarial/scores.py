"""Robustness scores of a quality metric under attack (host-side NumPy; docs/robustness.md).

Inputs are 1-D arrays of per-image values (MOS, clean scores, attacked scores) on the host;
all scores are returned as Python floats.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _vector(name: str, x: ArrayLike) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} contains NaN or inf")
    return v


def _scaled_pair(clean: ArrayLike, attacked: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Both score vectors min-max scaled with the clean scores' range, so clean is in [0, 1]."""
    f, fa = _vector("clean", clean), _vector("attacked", attacked)
    if f.shape != fa.shape:
        raise ValueError(f"clean {f.shape} and attacked {fa.shape} differ in shape")
    lo, hi = f.min(), f.max()
    if hi == lo:
        raise ValueError("clean scores are all equal: min-max scaling is undefined")
    return (f - lo) / (hi - lo), (fa - lo) / (hi - lo)


def scrambling_direction(mos: ArrayLike) -> np.ndarray:
    """Attack directions that scramble the ranking: -1 where MOS > mean(MOS), else +1.

    Args:
      mos: [N] mean opinion scores, higher = better.

    Returns:
      [N] float32 of +1 (make the image look better) and -1 (look worse), the ``direction``
      argument of ``attacks.run_attack``.
    """
    m = _vector("mos", mos)
    return np.where(m > m.mean(), -1.0, 1.0).astype(np.float32)


def absolute_gain(clean: ArrayLike, attacked: ArrayLike) -> float:
    """Mean score change ``mean(f' - f)``, both min-max scaled on the clean scores ``f``.

    Args:
      clean: [N] finite scores of the images before the attack, not all equal.
      attacked: [N] finite scores of the same images after the attack.

    Returns:
      The mean change, in units of the clean scores' range (positive: the attack raised them).

    Raises:
      ValueError: an input that is not a non-empty finite 1-D array, shapes that differ, or
        clean scores that are all equal.
    """
    f, fa = _scaled_pair(clean, attacked)
    return float(np.mean(fa - f))


def robustness_score(clean: ArrayLike, attacked: ArrayLike) -> float:
    """Zhang et al. (2022) robustness R: ``mean log10(max(1 - f, f) / (|f - f'| + 1e-6))``.

    Higher is more robust. ``f`` and ``f'`` are the clean and attacked scores, both min-max
    scaled on the clean ones; ``max(1 - f, f)`` is the largest change the scale allows, so R
    compares the change achieved with the change possible. An untouched image contributes up to
    log10(1e6) = 6.

    Args:
      clean: [N] finite scores of the images before the attack, not all equal.
      attacked: [N] finite scores of the same images after the attack.

    Returns:
      R, at most 6; negative when the attack moves scores further than the scale allows.

    Raises:
      ValueError: an input that is not a non-empty finite 1-D array, shapes that differ, or
        clean scores that are all equal.
    """
    f, fa = _scaled_pair(clean, attacked)
    return float(np.mean(np.log10(np.maximum(1.0 - f, f) / (np.abs(f - fa) + 1e-6))))


def eps_integral(eps_values: ArrayLike, srocc_values: ArrayLike) -> float:
    """Area under SROCC-vs-eps (trapezoidal rule) divided by the eps range: the mean SROCC.

    Args:
      eps_values: [K >= 2] strictly increasing budgets; include eps = 0 with the clean SROCC to
        cover the sweep from the clean model.
      srocc_values: [K] SROCC at each budget.
    """
    e, s = _vector("eps_values", eps_values), _vector("srocc_values", srocc_values)
    if e.shape != s.shape or e.size < 2:
        raise ValueError(
            f"need at least 2 (eps, SROCC) pairs of equal length, got {e.size} and {s.size}"
        )
    if np.any(np.diff(e) <= 0):
        raise ValueError(f"eps_values must be strictly increasing, got {e.tolist()}")
    return float(np.trapezoid(s, e) / (e[-1] - e[0]))
