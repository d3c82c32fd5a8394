"""Input pipelines over the random-access data sources (grain, host-side numpy).

Exact resume and multi-host by construction: a training stream is a ``grain.MapDataset`` whose
element ``k`` is this process's slice of global batch ``k``, and global batch ``k`` is a pure
function of (source, indices, options, seed, k): which examples, their crops and flips, the MOS
band and the anchors. A resumed run only needs its step (``iterate(ds, start_step=step)``), and
every process computes the same global batch and keeps rows ``[p * B / P, (p + 1) * B / P)``.

Randomness: epoch ``e`` visits ``indices`` in the order ``default_rng([seed, 0, e])
.permutation``; batch ``k`` draws its crops and flips (and band and anchors) from
``default_rng([seed, 1, k])`` (``[seed, 2, k]`` for MOS-band batches).

Batches are dicts of numpy arrays: ``ref``, ``dist`` float32 [b, h, w, 3] in [0, 1], or with
``uint8=True`` uint8 0..255 as stored (a quarter of the bytes to copy and send; the training
step converts them on the device with ``inputs.as_float``, bitwise the host's ``v / 255``)
(the reference and distorted image, cropped and flipped identically), ``mos`` float32 [b] in
[0, 1] higher = better, ``mos_raw`` float32 [b] (the dataset's own score), ``ref_id`` and
``dist_type`` int32 [b]; MOS-band batches add ``anchor`` bool [b].

Reading cost: a pair costs one image decode (the distorted image; references are decoded once
per source, :class:`birqa_jax.data.source.IQASource`), or none with raw storage (``storage=
"raw"``), and batches are prepared by one thread per CPU core by default (:func:`iterate`).
``benchmarks/input_speed.py`` measures pairs/s per core.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import grain
import numpy as np
import tensorflow_datasets as tfds

from birqa_jax.data.base import REFERENCES, SPLIT, IQABuilder
from birqa_jax.data.source import REFERENCE_CACHE_BYTES, IQASource

ANCHOR_RULES = ("spread", "random", "quantile")
_SHUFFLE, _AUGMENT, _BAND = 0, 1, 2  # streams of the per-seed generators
_FLOAT_COLUMNS = ("mos", "mos_raw", "judge")


def load_source(
    name: str,
    data_dir: str,
    manual_dir: str | None = None,
    *,
    storage: str = "png",
    cache_bytes: int = REFERENCE_CACHE_BYTES,
    **builder_kwargs: Any,
) -> IQASource:
    """Returns the random-access data source of dataset ``name``, building it first if needed.

    A build of another version of the builder (an older storage format) in ``data_dir`` is not
    read: the dataset is built again in the current format, from ``manual_dir`` for a real
    dataset, which must hold the files the old build was made from (else
    :class:`~birqa_jax.data.base.SourceChangedError`; without ``manual_dir`` a
    FileNotFoundError says what to give).

    Args:
      name: a registered builder name, optionally with a config: ``"kadid10k"``,
        ``"live/original"``, ``"kadid_synthetic"``.
      data_dir: where built datasets are stored (``<data_dir>/<name>/<config>/<version>/``,
        raw builds under ``<data_dir>/raw/``); ``~`` is expanded.
      manual_dir: the folder with the official files (real datasets), passed to the builder as
        ``source_dir``; not needed once the dataset is built.
      storage: ``"png"`` (decoded when read) or ``"raw"`` (uint8 pixels, about twice PNG's
        bytes, nothing to decode); each is its own build.
      cache_bytes: bound of the per-source cache of decoded references (:class:`IQASource`).
      **builder_kwargs: passed to the builder, e.g. ``config=KadidSyntheticConfig(...)``,
        ``skip_bad_images=True``, ``num_workers=2``.

    Returns:
      :class:`IQASource` over split ``"full"``: ``len(source)``, ``source[i]`` -> dict of numpy
      values (images uint8 [H, W, 3] as ``ref`` and ``dist``, names as bytes).
    """
    if manual_dir is not None:
        builder_kwargs["source_dir"] = os.path.expanduser(manual_dir)
    builder = tfds.builder(name, data_dir=os.path.expanduser(data_dir), storage=storage, **builder_kwargs)
    if not builder.is_prepared():
        instructions = builder.MANUAL_DOWNLOAD_INSTRUCTIONS  # set by the builders of real datasets
        tfds_manual_dir = os.path.join(os.path.expanduser(data_dir), "downloads", "manual")
        others = builder.other_builds() if isinstance(builder, IQABuilder) else []
        if instructions and manual_dir is None and not os.path.isdir(tfds_manual_dir):
            state = f"{name} is not built in {data_dir} yet, and building it"
            if others:
                state = (
                    f"{name} in {others[0]} is version {others[0].name}, a format this version of "
                    f"birqa_jax does not read, and building version {builder.version}"
                )
            raise FileNotFoundError(
                f"{state} needs its official files: give "
                "their folder (train.py/eval.py: --config.data.manual_dir=FOLDER; load_source: manual_dir=).\n"
                f"{instructions}"
            )
        if others:
            print(builder.rebuild_note(others[0]), flush=True)
        origin = f"from {manual_dir or tfds_manual_dir}" if instructions else "(generated)"
        print(f"Building {builder.info.full_name} ({storage}) {origin} into {builder.data_path}", flush=True)
        # tfds prints "Downloading and preparing dataset Unknown size ..." and "downloaded and
        # prepared" lines of its own; nothing downloads here, and the lines around say what happens.
        builder._log_download_bytes = builder._log_download_done = lambda: None
        start = time.perf_counter()
        builder.download_and_prepare()
        count = builder.info.splits[SPLIT].num_examples
        seconds = time.perf_counter() - start
        print(f"Built {builder.info.full_name}: {count} examples in {seconds:.1f} s", flush=True)
    examples = builder.as_data_source(split=SPLIT)
    shared = builder.info.metadata.get("references")
    if not shared:
        return IQASource(examples)
    references = builder.as_data_source(split=shared.get("split", REFERENCES))
    return IQASource(examples, references, shared["ref_id"], cache_bytes)


def example_columns(source: Any) -> dict[str, np.ndarray]:
    """Per-example metadata of a source built by these builders, read without decoding images.

    Returns:
      column name -> [len(source)] array: ``ref_id``, ``group_id``, ``dist_type``,
      ``dist_level``, ``height``, ``width`` (int32), ``mos``, ``mos_raw`` (float32), equal to
      the examples' own fields (``bapps_2afc``: ``judge``, ``subset_id``, ``height``, ``width``).
    """
    info = getattr(source, "dataset_info", None)
    metadata = getattr(info, "metadata", None) or {}
    if "examples" not in metadata:
        raise ValueError(
            f"{source!r} carries no per-example metadata; load it with "
            "birqa_jax.data.load_source (or tfds.data_source of a birqa_jax.data builder)"
        )
    columns = {
        k: np.asarray(v, np.float32 if k in _FLOAT_COLUMNS else np.int32)
        for k, v in metadata["examples"].items()
    }
    for key, values in columns.items():
        if len(values) != len(source):
            raise ValueError(
                f"metadata column {key} has {len(values)} values for {len(source)} examples"
            )
    return columns


def group_ids(source: Any) -> np.ndarray:
    """[len(source)] int32 split group of every example: the reference id, or for
    ``kadid_synthetic`` the source photograph its reference was cropped from."""
    columns = example_columns(source)
    if "group_id" not in columns:
        raise ValueError(f"{source!r} has no reference groups (not a pair dataset)")
    return columns["group_id"]


def _check_indices(indices: Sequence[int] | np.ndarray, size: int) -> np.ndarray:
    indices = np.asarray(indices)
    if indices.ndim != 1 or indices.size == 0 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(
            f"indices must be a non-empty 1-D integer array, got {indices.dtype} {indices.shape}"
        )
    if indices.min() < 0 or indices.max() >= size:
        raise ValueError(f"indices must lie in [0, {size}), got [{indices.min()}, {indices.max()}]")
    return indices.astype(np.int64)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def _process_rows(batch_size: int, process_index: int, process_count: int) -> slice:
    """Rows of the global batch that process ``process_index`` of ``process_count`` loads."""
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(
            f"need 0 <= process_index < process_count, got {process_index}, {process_count}"
        )
    if batch_size < 1 or batch_size % process_count:
        raise ValueError(
            f"batch_size {batch_size} must be a positive multiple of process_count {process_count}"
        )
    local = batch_size // process_count
    return slice(process_index * local, (process_index + 1) * local)


def _check_crop(source: Any, indices: np.ndarray, crop_size: tuple[int, int]) -> tuple[int, int]:
    """Fails early, naming an example, when ``crop_size`` exceeds one of the chosen images."""
    h, w = (int(s) for s in crop_size)
    if h < 1 or w < 1:
        raise ValueError(f"crop_size must be two positive ints (H, W), got {crop_size}")
    columns = example_columns(source)
    heights, widths = columns["height"][indices], columns["width"][indices]
    small = np.flatnonzero((heights < h) | (widths < w))
    if small.size:
        i = int(indices[small[0]])
        raise ValueError(
            f"crop_size {h}x{w} exceeds {small.size} of the chosen images, e.g. example {i} "
            f"({heights[small[0]]}x{widths[small[0]]}); the smallest is "
            f"{heights.min()}x{widths.min()} (H x W)"
        )
    return h, w


@functools.lru_cache(maxsize=4)
def _epoch_order(seed: int, size: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, _SHUFFLE, epoch]).permutation(size)


@dataclasses.dataclass(frozen=True, eq=False)
class _TrainPlan:
    """Global batch ``step`` -> this process's rows: example index, crop position, flip."""

    indices: np.ndarray
    batch_size: int
    seed: int
    rows: slice

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        n, size = self.batch_size, len(self.indices)
        # Position in the endless concatenation of epochs; each epoch is a fresh permutation.
        epochs, offsets = np.divmod(step * n + np.arange(n, dtype=np.int64), size)
        picked = np.empty(n, np.int64)
        for epoch in np.unique(epochs):
            here = epochs == epoch
            picked[here] = self.indices[_epoch_order(self.seed, size, int(epoch))[offsets[here]]]
        rng = np.random.default_rng([self.seed, _AUGMENT, step])
        plan = {"index": picked, "crop": rng.random((n, 2)), "flip": rng.random(n) < 0.5}
        return {k: v[self.rows] for k, v in plan.items()}


def select_anchors(
    mos: np.ndarray, num_anchors: int, rule: str, rng: np.random.Generator
) -> np.ndarray:
    """Flags ``num_anchors`` items of a batch as clean anchors.

    Rules: ``"spread"``: the items closest to ``num_anchors`` MOS values evenly spaced from the
    batch's lowest to its highest MOS, each target from the lowest up taking the closest item
    not taken yet (so the lowest item is an anchor, and the highest unless a lower target took
    it); ``"quantile"``: the items at the batch's MOS quantiles
    ``(i + 1/2) / num_anchors`` (the middle items of equal-count MOS groups; extremes are not
    forced); ``"random"``: uniformly at random.

    Args:
      mos: [B] MOS of the batch.
      num_anchors: 0..B.
      rule: one of ``ANCHOR_RULES``.
      rng: used by ``"random"`` only.

    Returns:
      [B] bool, exactly ``num_anchors`` True.
    """
    size = len(mos)
    if not 0 <= num_anchors <= size:
        raise ValueError(f"num_anchors must be in [0, {size}], got {num_anchors}")
    anchor = np.zeros(size, bool)
    if num_anchors == 0:
        return anchor
    if rule == "spread":
        free = np.ones(size, bool)
        for target in np.linspace(mos.min(), mos.max(), num_anchors):
            candidates = np.flatnonzero(free)
            pick = candidates[np.argmin(np.abs(mos[candidates] - target))]
            anchor[pick], free[pick] = True, False
    elif rule == "quantile":
        ranks = ((np.arange(num_anchors) + 0.5) * size / num_anchors).astype(int)
        anchor[np.argsort(mos, kind="stable")[ranks]] = True
    elif rule == "random":
        anchor[rng.choice(size, num_anchors, replace=False)] = True
    else:
        raise ValueError(f"anchor_rule must be one of {ANCHOR_RULES}, got {rule!r}")
    return anchor


@dataclasses.dataclass(frozen=True, eq=False)
class _BandPlan:
    """Global batch ``step`` -> this process's rows of a MOS-band batch with anchors."""

    indices: np.ndarray
    mos: np.ndarray  # [len(indices)] normalised MOS of indices
    batch_size: int
    band_width: float
    num_anchors: int
    anchor_rule: str
    seed: int
    rows: slice

    @functools.cached_property
    def _by_mos(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(self.mos, kind="stable")
        return order, self.mos[order]

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        n = self.batch_size
        rng = np.random.default_rng([self.seed, _BAND, step])
        order, sorted_mos = self._by_mos
        # The band holds a uniformly drawn pivot example at a uniform position, so bands
        # follow the data's MOS density and every example can be drawn.
        pivot = self.mos[rng.integers(len(self.mos))]
        low = pivot - rng.random() * self.band_width
        high = max(low + self.band_width, pivot)  # keeps the pivot in despite rounding
        first = np.searchsorted(sorted_mos, low, "left")
        last = np.searchsorted(sorted_mos, high, "right")
        members = order[first:last]
        # A band sparser than the batch repeats examples rather than widening.
        chosen = rng.choice(members, n, replace=len(members) < n)
        plan = {
            "index": self.indices[chosen],
            "crop": rng.random((n, 2)),
            "flip": rng.random(n) < 0.5,
            "anchor": select_anchors(self.mos[chosen], self.num_anchors, self.anchor_rule, rng),
        }
        return {k: v[self.rows] for k, v in plan.items()}


def _as_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / np.float32(255.0)


def _copy_window(out: np.ndarray, image: np.ndarray, y: int, x: int, flip: bool) -> None:
    """``out`` [h, w, C] = the window of ``image`` at (y, x), mirrored left-right if ``flip``."""
    h, w = out.shape[:2]
    window = image[y : y + h, x : x + w]
    if not flip:
        out[...] = window
        return
    # numpy copies a mirrored [h, w, 3] window pixel by pixel, 3 bytes at a time; one channel
    # at a time is several times faster (benchmarks/README.md has the numbers).
    for c in range(window.shape[-1]):
        out[:, :, c] = window[:, ::-1, c]


@dataclasses.dataclass(frozen=True, eq=False)
class _LoadCrops:
    """Plan rows -> batch: read each pair, crop and flip ref and dist identically; images
    float32 in [0, 1], or uint8 as stored with ``uint8``."""

    source: Any
    crop_size: tuple[int, int]
    uint8: bool = False

    def __call__(self, plan: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        h, w = self.crop_size
        n = len(plan["index"])
        images = {"ref": np.empty((n, h, w, 3), np.uint8), "dist": np.empty((n, h, w, 3), np.uint8)}
        keys = ("mos", "mos_raw", "ref_id", "dist_type")
        fields: dict[str, list] = {k: [] for k in keys}
        for row, (index, (uy, ux), flip) in enumerate(zip(plan["index"], plan["crop"], plan["flip"])):
            example = self.source[int(index)]
            ref, dist = example["ref"], example["dist"]
            height, width = ref.shape[:2]
            if dist.shape != ref.shape or height < h or width < w:
                raise ValueError(
                    f"example {index} ({example['dist_name']!r}): ref {ref.shape}, dist "
                    f"{dist.shape}; need equal shapes of at least crop_size {h}x{w}"
                )
            y, x = int(uy * (height - h + 1)), int(ux * (width - w + 1))
            _copy_window(images["ref"][row], ref, y, x, flip)
            _copy_window(images["dist"][row], dist, y, x, flip)
            for key in keys:
                fields[key].append(example[key])
        convert = (lambda crops: crops) if self.uint8 else _as_float
        batch = {
            "ref": convert(images["ref"]),
            "dist": convert(images["dist"]),
            "mos": np.asarray(fields["mos"], np.float32),
            "mos_raw": np.asarray(fields["mos_raw"], np.float32),
            "ref_id": np.asarray(fields["ref_id"], np.int32),
            "dist_type": np.asarray(fields["dist_type"], np.int32),
        }
        if "anchor" in plan:
            batch["anchor"] = plan["anchor"]
        return batch


def train_dataset(
    source: Any,
    indices: Sequence[int] | np.ndarray,
    *,
    batch_size: int,
    crop_size: tuple[int, int],
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    uint8: bool = False,
) -> grain.MapDataset:
    """Endless shuffled training batches of random crops; element ``k`` is batch ``k``.

    Every epoch visits each of ``indices`` once in a new order; a global batch may span two
    epochs. Each pair gets one random crop position and horizontal flip (probability 1/2),
    applied to ref and dist alike.

    Args:
      source: data source of a pair dataset (``load_source``).
      indices: [N] example indices to draw from (e.g. ``split_indices(...)["train"]``).
      batch_size: GLOBAL batch size B, a multiple of ``process_count``.
      crop_size: (h, w); must fit every chosen image (checked here from the metadata).
      seed: non-negative int.
      process_index: p, this process's index in [0, P); it gets rows ``[p * B / P, (p + 1) * B / P)``
        of every global batch.
      process_count: P >= 1, the number of processes that share the global batch.
      uint8: images as stored, uint8 0..255, rather than float32 (the same pixels: ``v / 255``
        gives the float batch bitwise; the training loop sends uint8 and converts on the device).

    Returns:
      ``grain.MapDataset``; ``ds[k]`` is this process's part of global batch ``k``, a dict with
      ref, dist float32 [B / P, h, w, 3] in [0, 1] (uint8 with ``uint8``); mos, mos_raw float32
      [B / P]; ref_id, dist_type int32 [B / P].

    Raises:
      ValueError: ``indices`` not a non-empty 1-D integer array inside the source, a negative
        or non-integer ``seed``, ``batch_size`` not a positive multiple of ``process_count``,
        ``process_index`` outside [0, P), or a ``crop_size`` larger than one of the chosen images
        (named). An image whose stored size differs is reported when its batch is read.
    """
    indices = _check_indices(indices, len(source))
    rows = _process_rows(batch_size, process_index, process_count)
    crop = _check_crop(source, indices, crop_size)
    plan = _TrainPlan(indices, batch_size, _check_seed(seed), rows)
    return grain.MapDataset.range(sys.maxsize).map(plan).map(_LoadCrops(source, crop, uint8))


def mos_band_dataset(
    source: Any,
    indices: Sequence[int] | np.ndarray,
    *,
    batch_size: int,
    band_width: float,
    num_anchors: int,
    anchor_rule: str,
    crop_size: tuple[int, int],
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    uint8: bool = False,
) -> grain.MapDataset:
    """Endless batches drawn from narrow MOS bands, with clean anchors (anchored adversarial
    training); element ``k`` is batch ``k``.

    Global batch ``k``: draw a pivot example uniformly from ``indices`` and ``y_low = mos(pivot)
    - u * band_width`` with u ~ U[0, 1), so the band ``[y_low, y_low + band_width]`` of
    normalised MOS contains the pivot and bands cover the data in proportion to its density;
    draw B examples from the band without replacement (with replacement when the band holds
    fewer than B); flag ``num_anchors`` of them as anchors by ``anchor_rule``
    (:func:`select_anchors`) over the global batch; crop and flip as in :func:`train_dataset`.

    Args:
      source: data source of a pair dataset (``load_source``).
      indices: [N] example indices to draw from.
      batch_size: GLOBAL batch size B, a multiple of ``process_count``.
      band_width: R > 0, in normalised MOS units.
      num_anchors: anchors per GLOBAL batch, 0..B.
      anchor_rule: ``"spread"``, ``"random"`` or ``"quantile"``.
      crop_size: (h, w), as for :func:`train_dataset`.
      seed: non-negative int.
      process_index: p in [0, P), as for :func:`train_dataset`.
      process_count: P >= 1, as for :func:`train_dataset`.
      uint8: uint8 images as stored rather than float32, as for :func:`train_dataset`.

    Returns:
      ``grain.MapDataset`` of the :func:`train_dataset` batches plus ``anchor`` bool [B / P].

    Raises:
      ValueError: as :func:`train_dataset`, and for ``band_width <= 0``, an unknown
        ``anchor_rule`` or ``num_anchors`` outside [0, B].
    """
    indices = _check_indices(indices, len(source))
    rows = _process_rows(batch_size, process_index, process_count)
    crop = _check_crop(source, indices, crop_size)
    if not band_width > 0:
        raise ValueError(f"band_width must be positive, got {band_width}")
    if anchor_rule not in ANCHOR_RULES:
        raise ValueError(f"anchor_rule must be one of {ANCHOR_RULES}, got {anchor_rule!r}")
    if not 0 <= num_anchors <= batch_size:
        raise ValueError(f"num_anchors must be in [0, {batch_size}], got {num_anchors}")
    mos = example_columns(source)["mos"][indices]
    plan = _BandPlan(
        indices=indices,
        mos=mos,
        batch_size=batch_size,
        band_width=float(band_width),
        num_anchors=num_anchors,
        anchor_rule=anchor_rule,
        seed=_check_seed(seed),
        rows=rows,
    )
    return grain.MapDataset.range(sys.maxsize).map(plan).map(_LoadCrops(source, crop, uint8))


def default_workers() -> int:
    """Threads that prepare batches unless told otherwise: one per CPU core this process may
    run on (``os.sched_getaffinity``, else ``os.cpu_count``)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(cores, 1)


def iterate(
    ds: grain.MapDataset, start_step: int = 0, prefetch: int = 2, workers: int | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Iterates batches ``start_step, start_step + 1, ...`` of ``ds``.

    ``workers`` threads (None: :func:`default_workers`, one per core) prepare batches
    concurrently, keeping up to ``max(prefetch, workers)`` batches ahead (image decoding and
    array copies release the GIL). ``prefetch=0`` loads each batch on demand in the calling
    thread."""
    if start_step < 0 or prefetch < 0:
        raise ValueError(f"start_step and prefetch must be >= 0, got {start_step}, {prefetch}")
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1 (or None: one per core), got {workers}")
    if prefetch == 0:
        options = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)
    else:
        options = grain.ReadOptions(num_threads=workers, prefetch_buffer_size=max(prefetch, workers))
    return iter(ds[start_step:].to_iter_dataset(options))


@dataclasses.dataclass(frozen=True, eq=False)
class _LoadFull:
    source: Any
    uint8: bool = False

    def __call__(self, index: int) -> dict[str, np.ndarray]:
        example = self.source[int(index)]
        image = (lambda x: np.asarray(x, np.uint8)) if self.uint8 else _as_float
        return {
            "ref": image(example["ref"])[None],
            "dist": image(example["dist"])[None],
            "mos": np.asarray([example["mos"]], np.float32),
            "mos_raw": np.asarray([example["mos_raw"]], np.float32),
            "ref_id": np.asarray([example["ref_id"]], np.int32),
            "dist_type": np.asarray([example["dist_type"]], np.int32),
        }


def eval_examples(
    source: Any, indices: Sequence[int] | np.ndarray, *, uint8: bool = False, workers: int | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Full-resolution examples in ``indices`` order, one pair per batch, read ahead by
    ``workers`` threads (None: one per core, :func:`default_workers`).

    Images of one dataset can differ in size (LIVE, PieAPP), hence batches of one: a jitted
    model compiles once per distinct size.

    Args:
      source: data source of a pair dataset (``load_source``).
      indices: [N] example indices, read in this order.
      uint8: yield the images as stored, uint8 0..255 (a quarter of float32's bytes; the
        scoring loop ``evaluation.runner`` converts them on the device), not float32.
      workers: threads that read ahead (None: :func:`default_workers`).

    Raises:
      ValueError: ``indices`` not a non-empty 1-D integer array inside the source.

    Yields:
      ref, dist float32 [1, H, W, 3] in [0, 1] (uint8 [1, H, W, 3] with ``uint8``); mos,
      mos_raw float32 [1]; ref_id, dist_type int32 [1].
    """
    indices = _check_indices(indices, len(source))
    workers = default_workers() if workers is None else workers
    ds = grain.MapDataset.source(indices.tolist()).map(_LoadFull(source, uint8))
    return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=workers, prefetch_buffer_size=workers)))
