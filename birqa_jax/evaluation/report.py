"""Evaluation reports: figures as PNG files (matplotlib's Agg canvas; no pyplot, no global
backend change), markdown tables and strict JSON.

Each figure function writes one PNG at 100 dpi, creating the parent folder if needed, and
returns the path it wrote.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from birqa_jax.evaluation import stats

DPI = 100


def _figure(width: float, height: float):
    """A matplotlib Figure on the Agg canvas. matplotlib is imported here, not with the module, so
    the tables and JSON helpers work where it is not installed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        raise ValueError(f"plots are written as PNG; the path must end in .png, got {path!r}")
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def scatter_with_fit(
    pred: ArrayLike,
    mos: ArrayLike,
    fit: stats.LogisticFit,
    path: str | os.PathLike,
    title: str,
    xlabel: str = "predicted score",
) -> str:
    """Predicted score vs MOS with the fitted logistic curve; SROCC and PLCC in a text box.

    Args:
      pred: [n] raw predictions (n >= 3, finite).
      mos: [n] MOS normalised to [0, 1], higher = better.
      fit: :func:`stats.fit_logistic` of ``pred`` and ``mos``; a failed fit draws no curve
        and says so in the legend.
      path: output ``.png`` (6.4 x 4.8 in at 100 dpi: 640 x 480 px).
      title: the figure's title.
      xlabel: the x axis label (name the metric's direction: GMSD is lower-better).

    Returns:
      ``path`` as a string.

    Raises:
      ValueError: ``path`` does not end in ``.png``, or ``pred`` and ``mos`` are not finite
        1-D arrays of one length with at least 3 items (:func:`stats.correlations`).
    """
    pred = np.asarray(pred, dtype=np.float64)
    mos = np.asarray(mos, dtype=np.float64)
    corr = stats.correlations(pred, mos)
    fig = _figure(6.4, 4.8)
    ax = fig.add_subplot()
    ax.scatter(pred, mos, s=8, alpha=0.5, label=f"images (n = {corr['n']})")
    if fit.ok:
        grid = np.linspace(pred.min(), pred.max(), 200)
        ax.plot(grid, fit.predict(grid), color="C3", lw=2, label="4-parameter logistic fit")
    else:
        ax.plot([], [], " ", label=f"logistic fit failed: {fit.message}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("MOS (normalised, higher = better)")
    ax.set_title(title)
    text = (
        f"SROCC = {corr['srocc']:.4f}\nPLCC = {corr['plcc']:.4f}\n"
        f"PLCC (fitted) = {corr['plcc_fitted']:.4f}"
    )
    ax.text(
        0.02, 0.98, text, transform=ax.transAxes, va="top", ha="left",
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8},
    )
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def per_type_bars(per_type_dict: Mapping[str, Mapping], path: str | os.PathLike, title: str) -> str:
    """Horizontal bars of |SROCC| per distortion type, each labelled with its value.

    Args:
      per_type_dict: type name -> correlations dict (:func:`stats.per_type`); its ``"srocc"``
        is drawn, types from top to bottom in the mapping's order.
      path: output ``.png``, 8 in wide (800 px) and 0.3 in per type plus 1.2 in (at least
        3 in) high.
      title: the figure's title.

    Returns:
      ``path`` as a string.

    Raises:
      ValueError: ``per_type_dict`` is empty, or ``path`` does not end in ``.png``.
    """
    if not per_type_dict:
        raise ValueError("per_type_dict is empty: nothing to plot")
    names = list(per_type_dict)
    values = np.array([float(per_type_dict[n]["srocc"]) for n in names])
    fig = _figure(8.0, max(3.0, 0.3 * len(names) + 1.2))
    ax = fig.add_subplot()
    y = np.arange(len(names))
    bars = ax.barh(y, np.nan_to_num(values), color="C0")
    ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], padding=3, fontsize=8)
    ax.set_yticks(y, labels=names, fontsize=8)
    ax.invert_yaxis()  # first type on top
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("SROCC (absolute)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def robustness_curves(
    results: Mapping[str, Mapping[float, float]],
    path: str | os.PathLike,
    title: str = "SROCC under attack",
) -> str:
    """SROCC vs L-inf budget, one line per attack.

    Args:
      results: attack name -> {eps in [0, 1] pixel units (e.g. 4/255): SROCC}; eps = 0 (the clean
        score) may be included. The x axis shows eps * 255 on a symmetric-log base-2 scale, so
        the usual budgets {1, 2, 4, 8, 16}/255 are evenly spaced.
      path: output ``.png`` (6.4 x 4.8 in at 100 dpi: 640 x 480 px).
      title: the figure's title.

    Returns:
      ``path`` as a string.

    Raises:
      ValueError: ``results`` is empty, an attack has no eps or one outside [0, 1], or ``path``
        does not end in ``.png``.
    """
    if not results:
        raise ValueError("results is empty: nothing to plot")
    fig = _figure(6.4, 4.8)
    ax = fig.add_subplot()
    ticks: set[float] = set()
    for attack, curve in results.items():
        eps = np.array(sorted(curve), dtype=np.float64)
        if eps.size == 0 or np.any(eps < 0) or np.any(eps > 1):
            raise ValueError(
                f"attack {attack!r}: eps must be non-empty and in [0, 1] units, got {eps.tolist()}"
            )
        x = eps * 255.0
        ticks.update(np.round(x, 6).tolist())
        ax.plot(x, [curve[e] for e in sorted(curve)], marker="o", label=attack)
    ax.set_xscale("symlog", base=2, linthresh=1.0)
    ax.set_xticks(sorted(ticks), labels=[f"{t:g}" for t in sorted(ticks)])
    ax.set_xlabel("L-inf budget eps (x 1/255)")
    ax.set_ylabel("SROCC with MOS")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def curves_with_bands(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | os.PathLike,
    title: str,
    ylabel: str = "SROCC with MOS",
) -> str:
    """A metric vs L-inf budget, one line per method with a shaded confidence band.

    Args:
      curves: method name -> {"eps": [K] budgets in [0, 1] pixel units (eps = 0 allowed: the
        clean value), "mean": [K], "lo": [K], "hi": [K]} (the band from lo to hi, e.g. a 95%
        bootstrap interval). The x axis is as in ``robustness_curves``.
      path: output ``.png`` (6.4 x 4.8 in at 100 dpi: 640 x 480 px).
      title: the figure's title.
      ylabel: the y axis label: the metric drawn.

    Returns:
      ``path`` as a string.

    Raises:
      ValueError: ``curves`` is empty, a method's eps are not strictly increasing in [0, 1], or
        ``path`` does not end in ``.png``.
    """
    if not curves:
        raise ValueError("curves is empty: nothing to plot")
    fig = _figure(6.4, 4.8)
    ax = fig.add_subplot()
    ticks: set[float] = set()
    for i, (name, c) in enumerate(curves.items()):
        eps = np.asarray(c["eps"], np.float64)
        if eps.size == 0 or np.any(eps < 0) or np.any(eps > 1) or np.any(np.diff(eps) <= 0):
            raise ValueError(f"{name!r}: eps must be increasing and in [0, 1] units, got {eps.tolist()}")
        x = eps * 255.0
        ticks.update(np.round(x, 6).tolist())
        ax.plot(x, c["mean"], marker="o", color=f"C{i % 10}", label=name)
        ax.fill_between(x, c["lo"], c["hi"], color=f"C{i % 10}", alpha=0.15, linewidth=0)
    ax.set_xscale("symlog", base=2, linthresh=1.0)
    ax.set_xticks(sorted(ticks), labels=[f"{t:g}" for t in sorted(ticks)])
    ax.set_xlabel("L-inf budget eps (x 1/255)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _cell(row: Mapping, col: str, digits: int) -> str:
    if col not in row:
        return "—"
    v = row[col]
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        s = f"{float(v):.{digits}f}"
        std = row.get(col + "_std")
        return s if std is None else f"{s} ± {float(std):.{digits}f}"
    return _escape(str(v))


def markdown_table(rows: Mapping[str, Mapping], columns: Sequence[str], digits: int = 4) -> str:
    """A GitHub-markdown table: one row per method, one column per metric key.

    Args:
      rows: method name -> metrics dict (e.g. :func:`stats.correlations` or
        :func:`stats.mean_std_over_splits` output).
      columns: the metric keys to show, in order.
      digits: decimals of floats.
    A float cell reads ``mean ± std`` when the row also holds ``<key>_std``; a missing key shows
    as "—", NaN as "nan".
    """
    if not columns:
        raise ValueError("no columns given")
    lines = ["| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        cells = [_cell(row, c, digits) for c in columns]
        lines.append(f"| {_escape(str(name))} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def jsonable(obj: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, tuples to lists, NaN and inf to None."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj
