"""``kadid_synthetic``: KADID-style pairs made from the natural images bundled with scikit-image.

No download: references are crops of the colour photographs that ship with scikit-image,
distorted with the 25 KADID-10k types at 5 levels (:mod:`birqa_jax.data.distortions`). The label
of a (type, level) is the human mean MOS that KADID-10k measured for it (the packaged
``kadid10k_type_level_mos.csv``), so a model trained here learns KADID's type/level ordering,
though not its per-image variation. Default: 40 references x 125 = 5,000 pairs of 192x256.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import importlib.resources
import math
import multiprocessing
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from skimage import data as skdata

from birqa_jax.data.base import (
    PAIR_RELEASE_NOTES,
    PAIR_VERSION,
    REFERENCES,
    SPLIT,
    ExampleColumns,
    IQABuilder,
    pair_features,
    reference_row,
    store_image,
)
from birqa_jax.data.distortions import DISTORTION_NAMES, MIN_SIDE, NUM_LEVELS, NUM_TYPES, distort

# Natural colour photographs scikit-image ships (no download); a reference's group id for
# splits is the position of its source in this tuple. motorcycle is the left view of
# skimage.data.stereo_motorcycle (the right view would be a near-duplicate across groups).
SOURCES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "motorcycle",
    "immunohistochemistry",
    "hubble_deep_field",
)
MOS_TABLE = "kadid10k_type_level_mos.csv"
# The photographs the packaged default weights never trained on: split 0 of the 6:2:2 rule
# trains on coffee, hubble_deep_field, motorcycle and rocket (test chelsea; astronaut and
# immunohistochemistry validated it). ``split="photos"`` with these as test photographs keeps
# that training set and tests on three unseen photographs (configs/study_*.py).
UNSEEN_BY_DEFAULT = ("astronaut", "chelsea", "immunohistochemistry")
# num_workers=None: worker processes for a build of at least this many examples, else none:
# spawning a worker (importing tfds and grain) only pays for a build of that size
# (benchmarks/README.md has the numbers).
AUTO_WORKERS, AUTO_WORKERS_MIN_EXAMPLES = 2, 1000


def source_ids(names) -> tuple[int, ...]:
    """Group ids (positions in ``SOURCES``) of photographs given by name, for
    ``splits.held_out_split``; an unknown name raises ValueError listing the known ones."""
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise ValueError(f"unknown photograph(s) {unknown}; kadid_synthetic's are {list(SOURCES)}")
    return tuple(SOURCES.index(n) for n in names)


def type_level_mos() -> tuple[np.ndarray, np.ndarray]:
    """KADID-10k's human MOS per distortion type and level, from the packaged CSV.

    Returns:
      (mean, std): float64 [NUM_TYPES, NUM_LEVELS], indexed ``[type_id - 1, level - 1]``; mean
      MOS on the 1-5 scale (higher = better) and its standard deviation over the 81 references.
    """
    text = importlib.resources.files("birqa_jax").joinpath("assets", MOS_TABLE).read_text()
    mean = np.full((NUM_TYPES, NUM_LEVELS), np.nan)
    std = np.full((NUM_TYPES, NUM_LEVELS), np.nan)
    for row in csv.DictReader(text.splitlines()):
        t, level = int(row["type_id"]) - 1, int(row["level"]) - 1
        mean[t, level], std[t, level] = float(row["mean_mos"]), float(row["std_mos"])
    if np.isnan(mean).any() or np.isnan(std).any():
        raise ValueError(f"{MOS_TABLE} does not cover all {NUM_TYPES} x {NUM_LEVELS} type/levels")
    return mean, std


@functools.cache
def _source_image(name: str) -> np.ndarray:
    """uint8 [H, W, 3] photograph ``name`` of SOURCES."""
    if name == "motorcycle":
        return skdata.stereo_motorcycle()[0]
    return getattr(skdata, name)()


@dataclasses.dataclass(frozen=True)
class ReferenceCrop:
    """A reference image: the crop at (y, x) of size crop_size of source image ``source``."""

    source: str
    source_id: int
    y: int
    x: int

    @property
    def name(self) -> str:
        """The reference's name, ``<source>_y<y>_x<x>``."""
        return f"{self.source}_y{self.y}_x{self.x}"

    def image(self, crop_size: tuple[int, int]) -> np.ndarray:
        """The crop's pixels.

        Args:
          crop_size: (h, w) of the crop; it must fit in the photograph at (y, x), as it does for
            the crops :func:`reference_crops` makes with this size.

        Returns:
          uint8 [h, w, 3], C-contiguous.
        """
        h, w = crop_size
        window = _source_image(self.source)[self.y : self.y + h, self.x : self.x + w]
        return np.ascontiguousarray(window)


def reference_crops(num_refs: int, crop_size: tuple[int, int]) -> list[ReferenceCrop]:
    """The first ``num_refs`` reference crops of size ``crop_size`` (H, W).

    Each source image is tiled by the fewest crops that cover it (``ceil(H / h) x ceil(W / w)``,
    evenly spaced, overlapping where the size does not divide), and the crops are taken round
    robin over the sources so that any prefix spreads over as many sources as possible.

    Raises:
      ValueError: if fewer than ``num_refs`` crops exist at this size.
    """
    h, w = crop_size
    per_source = []
    for source_id, source in enumerate(SOURCES):
        height, width = _source_image(source).shape[:2]
        if height < h or width < w:
            continue
        ys = np.linspace(0, height - h, math.ceil(height / h)).round().astype(int).tolist()
        xs = np.linspace(0, width - w, math.ceil(width / w)).round().astype(int).tolist()
        per_source.append([ReferenceCrop(source, source_id, y, x) for y in ys for x in xs])
    crops = [
        tiles[i]
        for i in range(max((len(t) for t in per_source), default=0))
        for tiles in per_source
        if i < len(tiles)
    ]
    if len(crops) < num_refs:
        raise ValueError(
            f"only {len(crops)} reference crops of {h}x{w} exist; asked for {num_refs}"
        )
    return crops[:num_refs]


def _example_rngs(
    seed: int, ref_id: int, type_id: int, level: int
) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent (distortion, label noise) generators of one example: a pure function of its
    coordinates, so examples can be made in any order and in parallel."""
    children = np.random.SeedSequence([seed, ref_id, type_id, level]).spawn(2)
    return tuple(np.random.default_rng(c) for c in children)


def _distorted_images(task: tuple[ReferenceCrop, int, tuple[int, int], int, tuple, str]) -> list:
    """Every (type, level) distortion of one reference, as stored (PNG bytes or uint8 pixels);
    runs in worker processes.

    ``task``: (crop, ref_id, crop_size, seed, ((type_id, level), ...), storage).
    """
    crop, ref_id, crop_size, seed, type_levels, storage = task
    image = crop.image(crop_size)
    return [
        store_image(distort(image, t, level, _example_rngs(seed, ref_id, t, level)[0]), storage)
        for t, level in type_levels
    ]


@dataclasses.dataclass(eq=False)
class KadidSyntheticConfig(tfds.core.BuilderConfig):
    """Options of ``kadid_synthetic``; each distinct set of options needs its own ``name``
    (the name is the folder the build is stored in; reusing a name with other options is an
    error).

    num_refs: reference crops (see :func:`reference_crops`); crop_size: (H, W) of every image,
    each side at least 48; seed: seeds the distortions and the label noise; label_noise: std of
    Gaussian noise added to each label, in units of KADID's per-(type, level) spread over
    references (``std_mos``), result clipped to [1, 5]; 0 = exact table labels; dist_types,
    levels: the distortion types (1-25) and levels (1-5) applied to every reference.
    """

    num_refs: int = 40
    crop_size: tuple[int, int] = (192, 256)
    seed: int = 0
    label_noise: float = 0.0
    dist_types: tuple[int, ...] = tuple(range(1, NUM_TYPES + 1))
    levels: tuple[int, ...] = tuple(range(1, NUM_LEVELS + 1))

    def options(self) -> dict[str, Any]:
        """The options as JSON values (stored with the build and compared on reuse)."""
        return {
            "num_refs": self.num_refs,
            "crop_size": list(self.crop_size),
            "seed": self.seed,
            "label_noise": self.label_noise,
            "dist_types": list(self.dist_types),
            "levels": list(self.levels),
        }


class KadidSynthetic(IQABuilder):
    """KADID-style synthetic pairs: skimage photographs x 25 KADID distortion types x 5 levels.

    Example spec: the pair spec of :func:`birqa_jax.data.base.pair_features` (each reference
    stored once, in the split ``"references"``). ``ref_id`` is the
    crop's index in :func:`reference_crops`, ``ref_name`` ``<source>_y<y>_x<x>``, ``dist_name``
    ``<ref_name>_<tt>_<ll>.png``. Labels: ``mos_raw`` is KADID-10k's human mean MOS of the
    (type, level) (1-5, higher = better), plus optional label noise; ``mos = (mos_raw - 1) / 4``.
    Splits must group by source photograph, not by crop: the metadata's ``group_id`` (read by
    :func:`birqa_jax.data.group_ids`) is the source's index in ``SOURCES``.

    Deterministic given the config: example (ref, type, level) uses generators seeded by
    (seed, ref, type, level), whatever the number of worker processes.

    Args:
      num_workers: processes distorting references in parallel (1 = in this process); None:
        ``AUTO_WORKERS`` for builds of at least ``AUTO_WORKERS_MIN_EXAMPLES`` examples, else 1.
      **kwargs: ``data_dir``, ``config`` (a :class:`KadidSyntheticConfig` or ``"default"``),
        ``storage`` (``"png"`` or ``"raw"``, :class:`birqa_jax.data.base.IQABuilder`).
    """

    name = "kadid_synthetic"
    VERSION = PAIR_VERSION
    RELEASE_NOTES = PAIR_RELEASE_NOTES
    BUILDER_CONFIGS = [KadidSyntheticConfig(name="default", description="40 refs x 125, 192x256")]
    DEFAULT_CONFIG_NAME = "default"

    def __init__(self, *, num_workers: int | None = None, **kwargs: Any):
        self._num_workers = num_workers
        super().__init__(**kwargs)
        self._validate_config()
        stored = self.info.metadata.get("config") if self.is_prepared() else None
        if stored is not None and stored != self.builder_config.options():
            raise ValueError(
                f"{self.name}/{self.builder_config.name} in {self.data_path} was built with "
                f"options {stored}, not {self.builder_config.options()}; give these options "
                "another config name"
            )

    def _validate_config(self) -> None:
        config = self.builder_config
        if min(config.crop_size) < MIN_SIDE:
            raise ValueError(f"crop_size {config.crop_size}: each side must be at least {MIN_SIDE}")
        if config.num_refs < 1 or config.label_noise < 0:
            raise ValueError(f"need num_refs >= 1 and label_noise >= 0, got {config.options()}")
        bad = [t for t in config.dist_types if t not in DISTORTION_NAMES]
        bad += [lv for lv in config.levels if not 1 <= lv <= NUM_LEVELS]
        repeated = len(set(config.dist_types)) < len(config.dist_types)
        repeated |= len(set(config.levels)) < len(config.levels)
        if bad or repeated or not config.dist_types or not config.levels:
            raise ValueError(
                f"dist_types must be distinct values in 1-{NUM_TYPES} and levels distinct values "
                f"in 1-{NUM_LEVELS}; got {config.dist_types}, {config.levels}"
            )

    def _info(self) -> tfds.core.DatasetInfo:
        return self._make_info(pair_features(self._storage))

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # nothing to download
        return {SPLIT: self._generate_examples(), REFERENCES: self._generate_references()}

    def _generate_references(self) -> Iterator[tuple[int, dict[str, Any]]]:
        crop_size = tuple(self.builder_config.crop_size)
        crops = reference_crops(self.builder_config.num_refs, crop_size)
        for ref_id, crop in enumerate(crops):
            yield ref_id, reference_row(store_image(crop.image(crop_size), self._storage), ref_id, crop.name)
        self.info.metadata["references"] = {"split": REFERENCES, "ref_id": list(range(len(crops)))}

    def _generate_examples(self) -> Iterator[tuple[int, dict[str, Any]]]:
        config = self.builder_config
        crop_size = tuple(config.crop_size)
        crops = reference_crops(config.num_refs, crop_size)
        type_levels = tuple((t, lv) for t in config.dist_types for lv in config.levels)
        mean, std = type_level_mos()
        tasks = [(crop, i, crop_size, config.seed, type_levels, self._storage) for i, crop in enumerate(crops)]
        workers = self._num_workers
        if workers is None:
            big = len(tasks) * len(type_levels) >= AUTO_WORKERS_MIN_EXAMPLES
            workers = AUTO_WORKERS if big else 1
        columns = ExampleColumns()
        key = 0
        with _map_in_workers(workers) as mapper:
            for (crop, ref_id, *_), dists in zip(tasks, mapper(_distorted_images, tasks)):
                for (t, level), dist in zip(type_levels, dists):
                    mos_raw = mean[t - 1, level - 1]
                    if config.label_noise > 0:
                        noise_rng = _example_rngs(config.seed, ref_id, t, level)[1]
                        noise = noise_rng.normal(0.0, config.label_noise * std[t - 1, level - 1])
                        mos_raw = np.clip(mos_raw + noise, 1.0, 5.0)
                    mos_raw = np.float32(mos_raw)
                    mos = np.float32((mos_raw - 1.0) / 4.0)
                    yield key, {
                        "image": dist,
                        "mos_raw": mos_raw,
                        "mos": mos,
                        "ref_id": ref_id,
                        "ref_name": crop.name,
                        "dist_name": f"{crop.name}_{t:02d}_{level:02d}.png",
                        "dist_type": t,
                        "dist_level": level,
                    }
                    columns.append(
                        ref_id=ref_id,
                        group_id=crop.source_id,
                        dist_type=t,
                        dist_level=level,
                        mos=mos,
                        mos_raw=mos_raw,
                        height=crop_size[0],
                        width=crop_size[1],
                    )
                    key += 1
        columns.store(
            self.info,
            config=config.options(),
            storage=self._storage,
            ref_names=[c.name for c in crops],
            sources=list(SOURCES),
            score={
                "name": "KADID-10k type/level mean MOS",
                "higher_is_better": True,
                "range": [1.0, 5.0],
                "range_from": "documented",
            },
        )


@contextlib.contextmanager
def _map_in_workers(num_workers: int) -> Iterator[Any]:
    """An ordered, lazy ``map``: over ``num_workers`` spawned processes, or in this process when
    ``num_workers <= 1``. Spawn, not fork: the parent may be running JAX's threads."""
    if num_workers <= 1:
        yield map
        return
    with multiprocessing.get_context("spawn").Pool(num_workers) as pool:
        yield functools.partial(pool.imap, chunksize=1)
