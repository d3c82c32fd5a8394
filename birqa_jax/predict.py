"""Run a score function over a dataset's full-resolution examples (BiRQA or a baseline)."""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np

_META = ("mos", "mos_raw", "ref_id", "dist_type")


def _same_size_batches(examples: Iterable[dict], batch_size: int) -> Iterator[list[dict]]:
    """Group consecutive one-pair examples into lists of at most ``batch_size`` same-size pairs."""
    group: list[dict] = []
    for ex in examples:
        if group and (len(group) == batch_size or ex["ref"].shape != group[0]["ref"].shape):
            yield group
            group = []
        group.append(ex)
    if group:
        yield group


def predict_examples(
    score_fns: dict[str, Callable],
    examples: Iterable[dict],
    batch_size: int = 8,
    total: int | None = None,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Score every example with every function in ``score_fns``.

    Args:
      score_fns: name -> ``fn(ref, dist) -> [b]`` on float32 NHWC batches in [0, 1].
      examples: one-pair dicts as yielded by ``birqa_jax.data.eval_examples`` (ref, dist
        [1, H, W, 3]; mos, mos_raw, ref_id, dist_type [1]). Consecutive pairs of one size are
        stacked into batches of up to ``batch_size``, so each size compiles once per batch size.
      total, progress: show a progress bar over ``total`` pairs.

    Returns:
      name -> predictions [N] for each function, plus mos, mos_raw, ref_id, dist_type [N].
    """
    from tqdm import tqdm

    out: dict[str, list] = {k: [] for k in (*score_fns, *_META)}
    bar = tqdm(total=total, desc="evaluating", unit="pair", disable=not progress, leave=False)
    for group in _same_size_batches(examples, batch_size):
        ref = np.concatenate([g["ref"] for g in group])
        dist = np.concatenate([g["dist"] for g in group])
        for name, fn in score_fns.items():
            out[name].append(np.asarray(fn(ref, dist), np.float64))
        for k in _META:
            out[k].append(np.concatenate([g[k] for g in group]))
        bar.update(len(group))
    bar.close()
    if not out["mos"]:
        raise ValueError("no examples to evaluate")
    return {k: np.concatenate(v) for k, v in out.items()}
