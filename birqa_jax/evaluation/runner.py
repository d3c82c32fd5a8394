"""The one scoring loop: score functions over image pairs, in batches of few distinct shapes.

Training-time validation, ``eval.py``, the robustness evaluation, ``birqa_jax.score`` and the CLI
all score through here. A score function is ``fn(ref, dist) -> [b]`` on float32 NHWC batches
in [0, 1] (BiRQA with its parameters bound, or a classical metric).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

import jax
import numpy as np

ScoreFns = Mapping[str, Callable[[jax.Array, jax.Array], jax.Array]]


def batch_plan(n: int, batch_size: int, *, fixed: bool = False) -> list[tuple[np.ndarray, int]]:
    """How to cover ``n`` items with batches: ``[(rows, real), ...]``.

    Every batch holds ``b = min(batch_size, n)`` rows except the last, whose missing rows repeat
    the final item (their results are dropped): padded to ``b`` with ``fixed=True`` (one shape
    for every batch, as an attack that is expensive to compile wants), else to the next power
    of two (at most log2(b) + 1 shapes, under 2x padding). ``real`` counts the rows that are
    items.
    """
    if n < 1 or batch_size < 1:
        raise ValueError(f"need at least one item and a positive batch size, got n={n}, batch_size={batch_size}")
    b = min(batch_size, n)
    plan = []
    for start in range(0, n, b):
        real = min(b, n - start)
        rows = b if fixed else min(b, 1 << (real - 1).bit_length())
        plan.append((np.minimum(np.arange(start, start + rows), n - 1), real))
    return plan


def score_arrays(score_fns: ScoreFns, ref: np.ndarray, dist: np.ndarray, batch_size: int | None = None,
                 *, fixed: bool = False) -> dict[str, np.ndarray]:
    """Every function's scores [N] (float64) of the pairs ``ref``, ``dist`` [N, H, W, 3].

    Batches follow ``batch_plan`` (``batch_size`` None: all N at once); each batch is sent to
    the device once and shared by all functions.
    """
    n = len(ref)
    out: dict[str, list] = {name: [] for name in score_fns}
    for rows, real in batch_plan(n, batch_size or n, fixed=fixed):
        r, d = jax.device_put((ref[rows], dist[rows]))
        for name, fn in score_fns.items():
            out[name].append(np.asarray(fn(r, d), np.float64)[:real])
    return {name: np.concatenate(v) for name, v in out.items()}


def _same_size_groups(examples: Iterable[dict], batch_size: int) -> Iterator[list[dict]]:
    """Consecutive one-pair examples in lists of at most ``batch_size`` pairs of one size."""
    group: list[dict] = []
    for ex in examples:
        if group and (len(group) == batch_size or ex["ref"].shape != group[0]["ref"].shape):
            yield group
            group = []
        group.append(ex)
    if group:
        yield group


def score_examples(
    score_fns: ScoreFns,
    examples: Iterable[dict],
    batch_size: int = 8,
    total: int | None = None,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Score every example with every function in ``score_fns``.

    Args:
      examples: one-pair dicts: ref, dist [1, H, W, 3] float in [0, 1], and any per-pair
        metadata as [1] arrays (as ``birqa_jax.data.eval_examples`` yields: mos, mos_raw, ref_id,
        dist_type). Consecutive pairs of one size are scored together, up to ``batch_size``.
      total, progress: show a progress bar over ``total`` pairs.

    Returns:
      name -> predictions [N] for each function, plus every metadata key [N] (no examples:
      empty predictions and no metadata).
    """
    from tqdm import tqdm

    out: dict[str, list] = {name: [] for name in score_fns}
    bar = tqdm(total=total, desc="scoring", unit="pair", disable=not progress, leave=False)
    for group in _same_size_groups(examples, batch_size):
        ref = np.concatenate([g["ref"] for g in group])
        dist = np.concatenate([g["dist"] for g in group])
        for name, scores in score_arrays(score_fns, ref, dist, batch_size).items():
            out[name].append(scores)
        for k in group[0].keys() - {"ref", "dist"}:
            out.setdefault(k, []).append(np.concatenate([g[k] for g in group]))
        bar.update(len(group))
    bar.close()
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}
