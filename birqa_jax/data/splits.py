"""Reference-disjoint train/val/test splits (host-side numpy).

Protocol: the examples of one reference image (or, for ``kadid_synthetic``, of one source
photograph, since its references are crops of it) always land in the same split, so a model is
never tested on content it was trained on. Random splits are seeded by ``split_id`` (0-9 by
convention: results are reported as the mean over 10 splits). Cross-dataset evaluation needs
no split: train on one dataset and evaluate on all indices of another
(``np.arange(len(source))``). ``held_out_split`` names the groups to leave out instead of
drawing them (for ``kadid_synthetic``, photographs: ``synthetic.source_ids``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_NAMES = {2: ("train", "test"), 3: ("train", "val", "test")}


def split_indices(
    group_ids: np.ndarray, split_id: int = 0, ratios: Sequence[float] = (0.6, 0.2, 0.2)
) -> dict[str, np.ndarray]:
    """Random reference-disjoint split of a dataset's examples.

    The distinct groups are shuffled with ``np.random.default_rng(split_id)`` and cut at the
    cumulative ratios (rounded to whole groups), so the ratios hold for groups; the example
    counts follow the group sizes.

    Args:
      group_ids: [N] integer group of each example (``group_ids(source)``).
      split_id: the seed, a non-negative int (0-9 by convention); same id, same split.
      ratios: (train, val, test) or (train, test) fractions, positive, summing to 1.

    Returns:
      ``{"train", "val", "test"}`` (or ``{"train", "test"}``) -> sorted int64 example indices;
      disjoint, together all N examples, no group in two of them.

    Raises:
      ValueError: bad ``group_ids``/``ratios``/``split_id``, or too few groups to give every
        split at least one.
    """
    group_ids = np.asarray(group_ids)
    if group_ids.ndim != 1 or not np.issubdtype(group_ids.dtype, np.integer):
        raise ValueError(
            f"group_ids must be a 1-D integer array, got {group_ids.dtype} {group_ids.shape}"
        )
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) not in _NAMES or min(ratios) <= 0 or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"ratios must be 2 or 3 positive fractions summing to 1, got {ratios}")
    if isinstance(split_id, bool) or not isinstance(split_id, (int, np.integer)) or split_id < 0:
        raise ValueError(f"split_id must be a non-negative int, got {split_id!r}")
    groups = np.unique(group_ids)
    order = np.random.default_rng(int(split_id)).permutation(groups)
    cuts = np.round(np.cumsum(ratios)[:-1] * len(groups)).astype(int)
    parts = np.split(order, cuts)
    if any(len(p) == 0 for p in parts):
        raise ValueError(
            f"{len(groups)} reference groups cannot give each of the splits {ratios} at least one"
        )
    names = _NAMES[len(ratios)]
    return {name: np.flatnonzero(np.isin(group_ids, part)) for name, part in zip(names, parts)}


def held_out_split(
    group_ids: np.ndarray, test_groups: Sequence[int], val_groups: Sequence[int] = ()
) -> dict[str, np.ndarray]:
    """A split that leaves named groups out: ``test_groups`` (and ``val_groups``) are held out,
    every other group trains. No group is in two parts, by construction.

    Args:
      group_ids: [N] integer group of each example (``group_ids(source)``).
      test_groups: the groups of the test part (at least one, all present in ``group_ids``).
      val_groups: the groups of the validation part; empty: no validation part.

    Returns:
      ``{"train", "val", "test"}`` (or ``{"train", "test"}`` without ``val_groups``) -> sorted
      int64 example indices.

    Raises:
      ValueError: a named group that no example has, a group named twice, no test group, or no
        group left to train on.
    """
    group_ids = np.asarray(group_ids)
    if group_ids.ndim != 1 or not np.issubdtype(group_ids.dtype, np.integer):
        raise ValueError(
            f"group_ids must be a 1-D integer array, got {group_ids.dtype} {group_ids.shape}"
        )
    test, val = [int(g) for g in test_groups], [int(g) for g in val_groups]
    if not test:
        raise ValueError("held_out_split needs at least one test group")
    named = test + val
    if len(set(named)) < len(named):
        raise ValueError(f"groups named more than once: test {test}, val {val}")
    present = set(np.unique(group_ids).tolist())
    missing = sorted(set(named) - present)
    if missing:
        raise ValueError(f"groups {missing} have no examples (groups present: {sorted(present)})")
    if not present - set(named):
        raise ValueError(f"holding out test {test} and val {val} leaves no group to train on")
    parts = {"train": np.flatnonzero(~np.isin(group_ids, named))}
    if val:
        parts["val"] = np.flatnonzero(np.isin(group_ids, val))
    parts["test"] = np.flatnonzero(np.isin(group_ids, test))
    return parts


def official_split(dataset: str, num_examples: int) -> dict[str, np.ndarray]:
    """The official split of a dataset, restricted to the part this project can read.

    - ``pipal``: PIPAL's official protocol trains on its training part and tests on its
      validation/test parts, whose labels were withheld by the NTIRE challenges; the loaded data
      is the labelled training part, so the official split is ``{"train": all}``.
    - ``pieapp``: the loaded data is PieAPP's official test split: ``{"test": all}``.
    - ``bapps_2afc``: the loaded data is BAPPS's official 2AFC validation set: ``{"test": all}``.

    Other datasets have no official split: use :func:`split_indices`.
    """
    names = {"pipal": "train", "pieapp": "test", "bapps_2afc": "test"}
    if dataset not in names:
        raise ValueError(
            f"{dataset!r} has no official split (known: {sorted(names)}); use split_indices"
        )
    return {names[dataset]: np.arange(num_examples)}
