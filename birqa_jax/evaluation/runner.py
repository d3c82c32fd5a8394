"""The one scoring loop: score functions over image pairs, in fixed-size batches sharded over devices.

Training-time validation, ``eval.py``, the robustness evaluation, ``birqa_jax.score`` and the CLI
all score through here. A score function is one of

- ``WithParams(fn, params)``: a model, as a pure ``fn(params, ref, dist) -> [b]`` (BiRQA's
  ``model.apply_fn(config)``) and its parameters. The runner jits ``fn`` with ``params`` a
  traced argument and the uint8 -> float32 conversion inside, so one compilation per ``fn``
  object and batch shape serves any number of weight sets (``cache_size`` counts them);
- a plain ``fn(ref, dist) -> [b]`` (a classical metric of ``classical.BASELINES``), called as it
  is on float32 device batches (converted there once per batch for all plain functions). For
  a model prefer ``WithParams``: ``jax.jit`` of a closure over weights makes them compile-time
  constants (one compilation per weight set), and a closure calling a jitted ``apply(params,
  r, d)`` works but needs its weights uncommitted or on the scoring devices (each batch then
  copies them), where ``WithParams`` replicates them over the devices once per call.

Images come as uint8 (0..255) or float in [0, 1], NHWC. Each batch is sent to the devices once,
shared by every function: uint8 stays uint8 on the wire (a quarter of float32's bytes) and is
converted to float32 on the device (``inputs.as_float``: bitwise the host's ``v / 255``, so
uint8 and float input give the same scores); float arrives as float32.

Batches and padding. With ``d`` devices (``jax.local_devices()`` unless ``devices`` names
others) the batch size is rounded up to ``B``, a multiple of ``d``, and every batch is split
along its rows over a 1-D mesh of the ``d`` devices (``NamedSharding``; XLA partitions the
batch; parameters are replicated). A batch short of real pairs is padded with copies of its
last pair; only the first ``real`` rows of a result are kept, so padded rows never reach a
result. Row counts:

- ``score_arrays`` (N pairs of one size, known in advance): every batch has
  ``min(B, N rounded up to d)`` rows, the last one padded: one shape per call.
- ``score_examples`` (a stream; consecutive pairs of one shape and dtypes form a group of at
  most ``B``): a full group has ``B`` rows, and so does a short group of a size that has
  already filled a batch (the tail of a run of one size: still one shape per size). A short
  group of a size not yet seen in a full batch (a folder of photos of different sizes, each
  alone) is padded only to the next power of two of its rows per device, ``d * 2^k >= n``,
  at most ``B``: a lone pair takes one row per device, not ``B`` rows, and a size needs at
  most ``log2(B / d) + 2`` shapes.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from birqa_jax.inputs import as_float
from birqa_jax.parallel import AXIS, make_mesh


@dataclasses.dataclass(frozen=True, eq=False)
class WithParams:
    """A model to score: a pure ``fn(params, ref, dist) -> [b]`` and its ``params`` (a pytree).

    Keep ``fn`` one object across calls (``model.apply_fn(config)`` is cached per config): the
    runner compiles per ``fn`` object and shape, never per ``params``."""

    fn: Callable[[Any, jax.Array, jax.Array], jax.Array]
    params: Any


ScoreFn = Callable[[jax.Array, jax.Array], jax.Array]
ScoreFns = Mapping[str, "ScoreFn | WithParams"]


_as_float_jit = jax.jit(as_float)


@functools.lru_cache(maxsize=None)
def _compiled(fn: Callable) -> Callable:
    """The runner's jitted ``(params, ref, dist) -> [b]`` of a pure ``fn``: images as they
    arrived (uint8 or float32), converted on the device; ``params`` traced."""

    def run(params, ref, dist):
        return fn(params, as_float(ref), as_float(dist))

    return jax.jit(run)


def cache_size(fn: Callable) -> int:
    """How many programs the runner has compiled for the pure score function ``fn`` (one per
    batch shape, dtype and device set; never one per weight set)."""
    return _compiled(fn)._cache_size()


def round_up(n: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` (a positive int) that is >= ``n``."""
    return -(-n // multiple) * multiple


def batch_plan(n: int, rows: int) -> list[tuple[np.ndarray, int]]:
    """Cover ``n`` items with batches of exactly ``rows`` rows: ``[(indices, real), ...]``.

    The last batch's missing rows repeat the final item; ``real`` counts the rows that are
    items (the rest are dropped from results)."""
    if n < 1 or rows < 1:
        raise ValueError(f"need at least one item and a positive batch size, got n={n}, rows={rows}")
    return [(np.minimum(np.arange(start, start + rows), n - 1), min(rows, n - start))
            for start in range(0, n, rows)]


def group_rows(n: int, batch_rows: int, devices: int, size_filled: bool) -> int:
    """Rows of a batch holding ``n`` real pairs of one size (``score_examples``' rule, see the
    module docstring): ``batch_rows`` (a multiple of ``devices``) when the group is full or its
    size has filled a batch before, else ``devices * 2^k >= n``, at most ``batch_rows``."""
    if n >= batch_rows or size_filled:
        return batch_rows
    per_device = -(-n // devices)
    return min(batch_rows, devices * (1 << (per_device - 1).bit_length()))


def _host(x, name: str) -> np.ndarray:
    """A host batch as it goes on the wire: uint8 as is, any float as float32."""
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"{name} must be [N, H, W, 3], got shape {x.shape}")
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must be uint8 (0..255) or float in [0, 1], got dtype {x.dtype}")
    return x.astype(np.float32, copy=False)


@functools.lru_cache(maxsize=None)
def _mesh(devices: tuple) -> Mesh:
    return make_mesh(devices)


class _Scorer:
    """Score functions bound to a device mesh: parameters placed (replicated) once, batches
    padded, placed (split by rows) and scored, one batch in flight while the next is prepared."""

    def __init__(self, score_fns: ScoreFns, devices: Sequence[jax.Device] | None):
        devices = tuple(devices) if devices is not None else tuple(jax.local_devices())
        if not devices:
            raise ValueError("no devices to score on")
        self.n_devices = len(devices)
        mesh = _mesh(devices)
        self.rows_sharding = NamedSharding(mesh, PartitionSpec(AXIS))
        replicated = NamedSharding(mesh, PartitionSpec())
        self.fns = {}
        for name, fn in score_fns.items():
            if isinstance(fn, WithParams):
                self.fns[name] = (True, _compiled(fn.fn), jax.device_put(fn.params, replicated))
            else:
                self.fns[name] = (False, fn, None)
        self._pending: list = []

    def submit(self, ref: np.ndarray, dist: np.ndarray, indices: np.ndarray, real: int, sink: dict) -> None:
        """Dispatch one padded batch (``indices`` into ``ref``/``dist``); its first ``real``
        results are appended to ``sink[name]`` once the next batch has been dispatched."""
        r, d = jax.device_put((ref[indices], dist[indices]), self.rows_sharding)
        floats = None
        outs = {}
        for name, (pure, fn, params) in self.fns.items():
            if pure:
                outs[name] = fn(params, r, d)
            else:  # a plain function gets float32 batches, converted once on the device
                if floats is None:
                    floats = (_as_float_jit(r), _as_float_jit(d))
                outs[name] = fn(*floats)
        self.flush()
        self._pending.append((outs, real, sink))

    def flush(self) -> None:
        for outs, real, sink in self._pending:
            for name, out in outs.items():
                out = np.asarray(out, np.float64)
                if out.ndim != 1:
                    raise ValueError(f"score function {name!r} must return [b], got shape {out.shape}")
                sink.setdefault(name, []).append(out[:real])
        self._pending = []


def score_arrays(score_fns: ScoreFns, ref, dist, batch_size: int | None = None, *,
                 devices: Sequence[jax.Device] | None = None) -> dict[str, np.ndarray]:
    """Every function's scores [N] (float64) of the pairs ``ref``, ``dist`` [N, H, W, 3].

    Args:
      score_fns: name -> ``WithParams`` or plain ``fn(ref, dist) -> [b]`` (module docstring).
      ref: [N, H, W, 3] references, uint8 (0..255) or float in [0, 1]. Values are not checked.
      dist: [N, H, W, 3] distorted images of ``ref``'s shape, uint8 or float (its own dtype).
      batch_size: pairs per batch (None: all N), rounded up to a multiple of the device count;
        every batch has ``min(that, N rounded up to the device count)`` rows, the last padded.
      devices: the devices to split batches over (default: all local devices).

    Returns:
      name -> [N] float64 scores, in the order of the pairs (``[0]`` arrays when N = 0).

    Raises:
      ValueError: images that are not [N, H, W, 3] uint8 or float, shapes that differ, no
        devices, or a score function that does not return one score per row.
    """
    ref, dist = _host(ref, "ref"), _host(dist, "dist")
    if ref.shape != dist.shape:
        raise ValueError(f"ref and dist shapes differ: {ref.shape} vs {dist.shape}")
    scorer = _Scorer(score_fns, devices)
    n, d = len(ref), scorer.n_devices
    if n == 0:
        return {name: np.zeros(0) for name in score_fns}
    rows = min(round_up(batch_size or n, d), round_up(n, d))
    sink: dict[str, list] = {}
    for indices, real in batch_plan(n, rows):
        scorer.submit(ref, dist, indices, real, sink)
    scorer.flush()
    return {name: np.concatenate(sink[name]) for name in score_fns}


def _kind(ex: dict) -> tuple:
    ref, dist = np.asarray(ex["ref"]), np.asarray(ex["dist"])
    return ref.shape, ref.dtype, dist.shape, dist.dtype


def _groups(examples: Iterable[dict], limit: int) -> Iterator[list[dict]]:
    """Consecutive one-pair examples in lists of at most ``limit`` pairs of one shape and dtypes
    (a uint8 and a float image are never concatenated: that would cast without scaling)."""
    group: list[dict] = []
    kind = None
    for ex in examples:
        k = _kind(ex)
        if group and (len(group) == limit or k != kind):
            yield group
            group = []
        group.append(ex)
        kind = k
    if group:
        yield group


def score_examples(
    score_fns: ScoreFns,
    examples: Iterable[dict],
    batch_size: int = 8,
    total: int | None = None,
    progress: bool = False,
    *,
    devices: Sequence[jax.Device] | None = None,
) -> dict[str, np.ndarray]:
    """Score every example with every function in ``score_fns``.

    Args:
      score_fns: name -> ``WithParams`` or plain ``fn(ref, dist) -> [b]`` (module docstring).
      examples: one-pair dicts: ref, dist [1, H, W, 3], uint8 (0..255) or float in [0, 1], and
        any per-pair metadata as [1] arrays (as ``birqa_jax.data.eval_examples`` yields: mos,
        mos_raw, ref_id, dist_type). Consecutive pairs of one shape and dtypes are scored
        together, up to ``batch_size`` rounded up to a multiple of the device count; batch rows
        follow the rule of the module docstring.
      batch_size: pairs per batch (at least 1), rounded up to a multiple of the device count.
      total: the number of pairs, for the progress bar only (None: unknown).
      progress: show a progress bar over the pairs.
      devices: the devices to split batches over (default: all local devices).

    Returns:
      name -> predictions [N] float64 for each function, plus every metadata key [N] (no
      examples: empty predictions and no metadata).

    Raises:
      ValueError: images that are not uint8 or float batches [b, H, W, 3], ref and dist shapes
        that differ, no devices, or a score function that does not return one score per row.
    """
    from tqdm import tqdm

    scorer = _Scorer(score_fns, devices)
    d = scorer.n_devices
    limit = round_up(max(int(batch_size), 1), d)
    filled: set = set()  # (shape, dtype) of the sizes that have filled a batch
    sink: dict[str, list] = {name: [] for name in score_fns}
    meta: dict[str, list] = {}
    bar = tqdm(total=total, desc="scoring", unit="pair", disable=not progress, leave=False)
    for group in _groups(examples, limit):
        ref = _host(np.concatenate([g["ref"] for g in group]), "ref")
        dist = _host(np.concatenate([g["dist"] for g in group]), "dist")
        if ref.shape != dist.shape:
            raise ValueError(f"ref and dist shapes differ: {ref.shape} vs {dist.shape}")
        n, key = len(ref), (ref.shape[1:], ref.dtype.str, dist.dtype.str)
        rows = group_rows(n, limit, d, key in filled)
        if rows == limit:
            filled.add(key)
        (indices, real), = batch_plan(n, rows)
        scorer.submit(ref, dist, indices, real, sink)
        for k in group[0].keys() - {"ref", "dist"}:
            meta.setdefault(k, []).append(np.concatenate([g[k] for g in group]))
        bar.update(len(group))
    scorer.flush()
    bar.close()
    out = {k: np.concatenate(v) if v else np.zeros(0) for k, v in sink.items()}
    out.update({k: np.concatenate(v) for k, v in meta.items()})
    return out
