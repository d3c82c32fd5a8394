"""Shared machinery of the IQA dataset builders: TFDS, written as ArrayRecord, no TensorFlow.

Every builder writes the split ``"full"`` in a fixed order (example ``i`` of the data source is
the ``i``-th example the builder generated; TFDS hash-shuffling is disabled), so indices from
:func:`birqa_jax.data.split_indices` stay meaningful across rebuilds.

References are stored once. A pair dataset (every builder but ``bapps_2afc``) writes each
reference image once, into the split ``"references"`` (one row per reference, in ``ref_id``
order), and an example of ``"full"`` holds its distorted image and points at its reference by
``ref_id``; :func:`birqa_jax.data.load_source` returns an :class:`~birqa_jax.data.source.IQASource`
that puts the reference back into every example (``source[i]["ref"]``), decoding each reference
once and keeping it in a bounded cache. Both splits share one feature spec
(:func:`pair_features`): the image is ``image`` (the distorted image in ``"full"``, the
reference in ``"references"``, whose other fields are placeholders: no score, no type).

Storage (the builders' ``storage`` option, ``"png"`` by default): ``"png"`` stores images
losslessly as PNG bytes in a ``tfds.features.Image`` feature, decoded with Pillow by
``tfds.data_source`` (uint8 [H, W, 3]); TensorFlow is never imported. PNG rather than zlib
bytes in a ``Tensor``: PNG is about a quarter smaller, for a slower encode and decode, and
official RGB PNG files (KADID-10k, CSIQ, BAPPS) are stored byte for byte without re-encoding
(benchmarks/README.md, "Design measurements behind the code", has the numbers). ``"raw"``
stores the uint8 pixels as they are (``tfds.features.Tensor``, bytes encoding): nothing to
decode when read, for about twice PNG's bytes (docs/datasets.md). A raw build lives in
``<data_dir>/raw/``, beside the PNG build of the same dataset in ``<data_dir>/``.

Records are written uncompressed (``ARRAY_RECORD_OPTIONS``): ArrayRecord's default compression
(brotli) does not shrink PNG bytes and costs raw pixels a decompression at every read
(benchmarks/README.md has the numbers). Readers take either kind.

Per-example metadata (reference id, group, distortion type and level, scores, image size) is
also written to the dataset's ``metadata.json`` and read back by
:func:`birqa_jax.data.example_columns`, so splits and samplers never decode an image.

Errors are never silent: a missing folder or score file names the path and the expected layout,
a listed image that is missing or cannot be decoded is reported by name (``skip_bad_images=True``
drops such examples instead and reports their count and names). Text score files are read as
UTF-8 with or without a byte-order mark (:func:`read_text`).

A build records the size and modification time of every source file it read or looked for
(``metadata["source_files"]``); loading the built dataset again with a source folder whose files
differ raises :class:`SourceChangedError` (see :class:`ManualIQABuilder`). A build of another
version of the builder (an older storage format) is not read: :func:`birqa_jax.data.load_source`
rebuilds the dataset in the current format when its source files are those the old build was
made from (:meth:`IQABuilder.rebuild_note`), and otherwise says why it cannot.
"""

from __future__ import annotations

import abc
import collections
import contextlib
import dataclasses
import inspect
import io
import json
import os
import pathlib
import stat
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image
from tensorflow_datasets.core import file_adapters

SPLIT = "full"
# Pair datasets: the split holding each reference image once, in ``ref_id`` order.
REFERENCES = "references"
# Image storage formats (the builders' ``storage`` option) and the folder of raw builds.
STORAGES = ("png", "raw")
RAW_DIR = "raw"
# ArrayRecord writer options: one record per chunk (random access), no compression.
ARRAY_RECORD_OPTIONS = "group_size:1,uncompressed"
# zlib level 1 inside PNG: 3x faster to encode than Pillow's default (6), about 10 % more bytes.
PNG_COMPRESS_LEVEL = 1
# Names of missing or unreadable images quoted in an error message (the count is always given).
_MAX_NAMES_SHOWN = 10


class ImageReadError(ValueError):
    """An image file exists but cannot be decoded (truncated, corrupt, not an image)."""


class SourceChangedError(ValueError):
    """The source folder's files differ from those a built dataset was made from."""


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes of ``image``: uint8 [H, W, 3]."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected a uint8 [H, W, 3] image, got {image.dtype} {image.shape}")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def check_storage(storage: str) -> str:
    """``storage`` if it is one of ``STORAGES``, else ValueError."""
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
    return storage


def image_feature(storage: str) -> tfds.features.FeatureConnector:
    """The feature of one uint8 [H, W, 3] image stored as ``storage``: PNG bytes (decoded when
    read) or the raw pixels (bytes encoding: read without decoding)."""
    if check_storage(storage) == "png":
        return tfds.features.Image(shape=(None, None, 3))
    return tfds.features.Tensor(shape=(None, None, 3), dtype=np.uint8, encoding="bytes")


def store_image(image: np.ndarray, storage: str) -> bytes | np.ndarray:
    """uint8 [H, W, 3] ``image`` as an ``image_feature(storage)`` value."""
    return encode_png(image) if check_storage(storage) == "png" else image


def read_image_file(path: pathlib.Path, storage: str = "png") -> tuple[bytes | np.ndarray, tuple[int, int]]:
    """Decodes ``path`` completely and returns it as stored with ``storage`` and its size (H, W).

    The full decode makes a corrupt file fail here, at build time, with its name. ``"png"``: an
    RGB PNG file is returned byte for byte; any other format or mode (BMP, grey or palette PNG)
    is converted to 8-bit RGB and re-encoded losslessly. ``"raw"``: the 8-bit RGB pixels, uint8
    [H, W, 3], the pixels the PNG bytes decode to.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ImageReadError: the file cannot be decoded as an image.
    """
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            size = (im.height, im.width)
            if storage == "png" and im.format == "PNG" and im.mode == "RGB":
                return data, size
            return store_image(np.asarray(im.convert("RGB")), storage), size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"cannot decode image {path}: {e}") from e


def require_dir(path: pathlib.Path, dataset: str, what: str, layout: str) -> pathlib.Path:
    """``path`` if it is a folder, else FileNotFoundError naming it and the expected layout."""
    if not path.is_dir():
        raise FileNotFoundError(
            f"{dataset}: {what} {path} is not a folder. Expected layout:\n{layout}"
        )
    return path


def require_file(path: pathlib.Path, dataset: str, what: str, layout: str) -> pathlib.Path:
    """``path`` if it is a file, else FileNotFoundError naming it and the expected layout."""
    if not path.is_file():
        raise FileNotFoundError(f"{dataset}: {what} {path} not found. Expected layout:\n{layout}")
    return path


def read_text(path: pathlib.Path, dataset: str) -> str:
    """The text of score file ``path``: UTF-8, a leading byte-order mark dropped (files saved by
    Excel or Notepad start with one)."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{dataset}: {path} is not UTF-8 text: {e}") from e


def casefold_index(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """Lower-case file name -> path of the files in ``folder``, for datasets whose names differ
    in case between the score file and the disk (TID, KADID-10k copies)."""
    return {p.name.casefold(): p for p in folder.iterdir() if p.is_file()}


def file_stamp(path: pathlib.Path) -> list[int] | None:
    """[size in bytes, modification time in ns] of file ``path``; None where there is no file."""
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns] if stat.S_ISREG(st.st_mode) else None


def source_changes(
    then: Mapping[str, list[int] | None], now: Mapping[str, list[int] | None]
) -> list[str]:
    """How two source fingerprints (relative path -> ``file_stamp``; an absent path counts as
    None) differ: one line per kind of change, empty when they agree."""
    changed, gone, added = [], [], []
    for name in sorted(then.keys() | now.keys()):
        before, after = then.get(name), now.get(name)
        if before is None and after is not None:
            added.append(name)
        elif before is not None and after is None:
            gone.append(name)
        elif before != after:
            detail = f"{before[0]} -> {after[0]} bytes" if before[0] != after[0] else "modified"
            changed.append(f"{name} ({detail})")
    kinds = ((changed, "changed"), (gone, "gone"), (added, "added"))
    return [f"{len(names)} {what}: {format_names(names)}" for names, what in kinds if names]


def format_names(names: Sequence[str]) -> str:
    """``"a, b, c"``, or the first few names and the count of the rest."""
    shown = ", ".join(names[:_MAX_NAMES_SHOWN])
    rest = len(names) - _MAX_NAMES_SHOWN
    return shown + (f" and {rest} more" if rest > 0 else "")


def pair_features(storage: str = "png") -> tfds.features.FeaturesDict:
    """The spec of both splits of every reference/distorted pair dataset.

    image: uint8 [H, W, 3] (``image_feature(storage)``): in ``"full"`` the distorted image, in
    ``"references"`` the reference; mos_raw: float32, the score as the dataset's file gives it;
    mos: float32 in [0, 1], higher = better; ref_id: int32 index of the reference in the
    dataset's sorted reference names; ref_name, dist_name: text (bytes when read back);
    dist_type, dist_level: int32, -1 where the dataset has none. A row of ``"references"`` has
    ``reference_row`` values in the fields that describe a distorted image.
    """
    return tfds.features.FeaturesDict(
        {
            "image": image_feature(storage),
            "mos_raw": np.float32,
            "mos": np.float32,
            "ref_id": np.int32,
            "ref_name": tfds.features.Text(),
            "dist_name": tfds.features.Text(),
            "dist_type": np.int32,
            "dist_level": np.int32,
        }
    )


def reference_row(image: bytes | np.ndarray, ref_id: int, ref_name: str) -> dict[str, Any]:
    """A row of the ``"references"`` split of :func:`pair_features`: the reference ``image`` (as
    stored), its id and name; the score is NaN, the distorted image's name empty, its type and
    level -1."""
    nan = np.float32(np.nan)
    return {
        "image": image,
        "ref_id": ref_id,
        "ref_name": ref_name,
        "dist_name": "",
        "mos_raw": nan,
        "mos": nan,
        "dist_type": -1,
        "dist_level": -1,
    }


# Pair datasets since references are stored once.
PAIR_VERSION = tfds.core.Version("2.0.0")
PAIR_RELEASE_NOTES = {
    "1.0.0": "First release.",
    "2.0.0": (
        "References stored once, in the split `references`; an example of `full` holds its "
        "distorted image as `image` and points at its reference by `ref_id` (load_source puts "
        "`ref` and `dist` back). Option storage='raw' (uint8 pixels, no decoding when read). "
        "Records written without compression."
    ),
}


@dataclasses.dataclass(frozen=True)
class ScoreSpec:
    """How a dataset's scores read and how they are normalised to ``mos`` in [0, 1].

    ``mos = (raw - lo) / (hi - lo)``, flipped to ``1 - that`` when lower raw scores are better.
    ``documented_range`` is the scale the dataset documents (raw scores outside it are an
    error); ``None`` means min-max over the scores the dataset's files list.
    """

    name: str
    higher_is_better: bool
    documented_range: tuple[float, float] | None


def normalise_scores(
    raw: np.ndarray, spec: ScoreSpec, names: Sequence[str], dataset: str
) -> tuple[np.ndarray, tuple[float, float]]:
    """Min-max normalises ``raw`` [N] to [0, 1], higher = better. Returns (mos [N], (lo, hi))."""
    if not np.all(np.isfinite(raw)):
        bad = [names[i] for i in np.flatnonzero(~np.isfinite(raw))]
        raise ValueError(f"{dataset}: non-finite {spec.name} for {format_names(bad)}")
    if spec.documented_range is None:
        lo, hi = float(raw.min()), float(raw.max())
    else:
        lo, hi = spec.documented_range
        outside = np.flatnonzero((raw < lo) | (raw > hi))
        if outside.size:
            bad = [f"{names[i]} ({raw[i]:g})" for i in outside]
            raise ValueError(
                f"{dataset}: {spec.name} outside the documented range [{lo:g}, {hi:g}] for "
                f"{format_names(bad)}"
            )
    if hi <= lo:
        raise ValueError(f"{dataset}: all {spec.name} scores equal {lo:g}; cannot normalise")
    mos = (raw - lo) / (hi - lo)
    return (mos if spec.higher_is_better else 1.0 - mos), (lo, hi)


@dataclasses.dataclass(frozen=True)
class Record:
    """One example to build from files.

    name: reported when one of its images is missing or unreadable.
    images: feature name -> image file; all images of a record (and its reference) must have
      one size.
    features: the other features, stored as given; with a reference they include its
      ``ref_id`` and ``ref_name``.
    columns: per-example metadata numbers, written to ``metadata.json`` as well.
    reference: the reference image file, stored once in the split ``"references"`` for all
      the records that share it (pair datasets); None: no shared image.
    """

    name: str
    images: Mapping[str, pathlib.Path]
    features: Mapping[str, Any]
    columns: Mapping[str, int | float]
    reference: pathlib.Path | None = None

    @property
    def paths(self) -> list[pathlib.Path]:
        """Every image file the record needs: its own and its reference."""
        return [*self.images.values(), *([self.reference] if self.reference else [])]


class ExampleColumns:
    """Accumulates per-example metadata columns in example order; stored as the dataset metadata."""

    def __init__(self) -> None:
        self._columns: dict[str, list] = collections.defaultdict(list)

    def append(self, **values: int | float) -> None:
        """Adds one example's values to their columns (numpy scalars stored as Python numbers).

        Args:
          **values: column name -> the example's number. Every example should name the same
            columns, so that position i of each column is example i.
        """
        for key, value in values.items():
            self._columns[key].append(value.item() if isinstance(value, np.generic) else value)

    def store(self, info: tfds.core.DatasetInfo, **extra: Any) -> None:
        """Writes the columns (and ``extra`` dataset-level entries) into ``info.metadata``."""
        info.metadata.update(extra)
        info.metadata["examples"] = dict(self._columns)


@contextlib.contextmanager
def _array_records_written_with(options: str) -> Iterator[None]:
    """Within: tfds writes ArrayRecord files with writer ``options`` (tfds 4.9.10 has no
    setting for them and writes ``group_size:1`` with the default compression)."""
    from array_record.python.array_record_module import ArrayRecordWriter

    adapter = file_adapters.ArrayRecordFileAdapter
    original = adapter.__dict__["write_examples"]

    def write_examples(cls, path, iterator):
        writer = ArrayRecordWriter(os.fspath(path), options)
        for _, serialized_example in iterator:
            writer.write(serialized_example)
        writer.close()

    adapter.write_examples = classmethod(write_examples)
    try:
        yield
    finally:
        adapter.write_examples = original


class IQABuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of this package's builders: ArrayRecord storage by default (random access for
    ``tfds.data_source``), the split ``"full"`` in generation order (pair datasets add
    ``"references"``), metadata in ``info.metadata``.

    Args:
      storage: ``"png"`` (default) or ``"raw"``: how images are stored (module docstring). A raw
        build is stored under ``<data_dir>/raw/`` (``<data_dir>/raw/<name>/<config>/<version>``),
        so both can be built from one ``data_dir``.
      **kwargs: ``data_dir``, ``config``, ``version``, ``file_format`` as for any TFDS builder.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "First release."}

    def __init__(self, *, storage: str = "png", file_format: str = "array_record", **kwargs: Any):
        self._storage = check_storage(storage)  # read by _info and _build_data_dir, set first
        super().__init__(file_format=file_format, **kwargs)

    @property
    def storage(self) -> str:
        """``"png"`` or ``"raw"``."""
        return self._storage

    def _build_data_dir(self, given_data_dir: str | None) -> tuple[str, str]:
        root, dataset_dir = super()._build_data_dir(given_data_dir)
        if self._storage == "raw":
            dataset_dir = os.path.join(root, RAW_DIR, os.path.relpath(dataset_dir, root))
        return root, dataset_dir

    def _download_and_prepare(self, dl_manager: Any, download_config: Any) -> None:
        with _array_records_written_with(ARRAY_RECORD_OPTIONS):
            super()._download_and_prepare(dl_manager, download_config)

    def other_builds(self) -> list[pathlib.Path]:
        """Folders of other versions of this dataset (same config and storage) under
        ``data_dir`` that hold a finished build, newest version first."""
        parent = pathlib.Path(self.data_path).parent
        found = []
        for folder in parent.iterdir() if parent.is_dir() else ():
            try:
                version = tfds.core.Version(folder.name)
            except ValueError:
                continue
            if version != self.version and (folder / "dataset_info.json").is_file():
                found.append((version, folder))
        return [folder for _, folder in sorted(found, reverse=True)]

    def rebuild_note(self, other: pathlib.Path) -> str:
        """What to print before building this version while ``other`` (from
        :meth:`other_builds`) holds another version. A generated dataset is rebuilt as it is
        (the same examples in the same order); builders of official files check their source
        first (:meth:`ManualIQABuilder.rebuild_note`)."""
        return (
            f"{self.name}: {other} holds version {other.name}, a format this version of birqa_jax "
            f"does not read ({self.version}: {self.release_notes.get(str(self.version), '')}); "
            f"building version {self.version} (the old folder is no longer read and can be deleted)"
        )

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        """The file that defines the builder class (TFDS's ``code_path`` of a builder)."""
        # tfds 4.9.10 resolves this through the `importlib_resources` backport, which it only
        # installs on Python < 3.9; the class's own file is the same answer.
        return epath.Path(inspect.getfile(cls))

    def _make_info(
        self, features: tfds.features.FeaturesDict, **kwargs: Any
    ) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(self.__doc__ or "").strip(),
            features=features,
            metadata=tfds.core.MetadataDict(),
            # Example i is the i-th generated, so indices and metadata columns agree.
            disable_shuffling=True,
            **kwargs,
        )


class ManualIQABuilder(IQABuilder, skip_registration=True):
    """A builder that reads an official dataset layout from a folder the user gives.

    The folder is ``source_dir`` (a plain path) or else TFDS's ``manual_dir``
    (``download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=...))``).
    Subclasses define ``LAYOUT`` (shown in every layout error), ``_features()``,
    ``_list_records(root)`` and ``_dataset_metadata()``; ``_list_records`` reads every score file
    through ``_read_text`` or ``_score_file`` so that the build's source fingerprint covers it.

    Source fingerprint: the build records [size, modification time] of each score file it read
    and each listed image (or that the image was missing) in ``metadata["source_files"]``.
    Loading the built dataset with ``source_dir`` given (``as_data_source``, hence
    ``load_source`` with ``manual_dir``) reads the score files again, compares the fingerprint
    and raises :class:`SourceChangedError` naming the files that changed, were added or are
    gone. It raises rather than rebuilding, because a rebuild can renumber the examples and so
    move them between the splits of earlier runs: to rebuild, delete the built folder (the error
    names it); without ``source_dir`` the build is used as it is. Copying the source folder
    without keeping modification times (``cp -r`` rather than ``cp -a``) counts as a change.

    Args:
      source_dir: folder holding the official files, laid out as ``LAYOUT`` says.
      skip_bad_images: drop examples whose listed images are missing or unreadable, and report
        how many (default: fail and name them).
      **kwargs: ``data_dir``, ``config``, ``version``, ``file_format`` as for any TFDS builder.
    """

    LAYOUT: ClassVar[str]
    HOMEPAGE: ClassVar[str]
    CITATION: ClassVar[str]

    def __init__(
        self,
        *,
        source_dir: str | os.PathLike | None = None,
        skip_bad_images: bool = False,
        **kwargs: Any,
    ):
        self._source_dir = None if source_dir is None else pathlib.Path(source_dir).expanduser()
        self._skip_bad_images = skip_bad_images
        self._score_files: set[pathlib.Path] = set()
        self._source_checked = False  # the source was read (built or checked) by this builder
        super().__init__(**kwargs)

    @abc.abstractmethod
    def _features(self) -> tfds.features.FeaturesDict:
        """The example spec."""

    @abc.abstractmethod
    def _list_records(self, root: pathlib.Path) -> list[Record]:
        """Reads the score files under ``root`` and lists the examples in their final order."""

    @abc.abstractmethod
    def _dataset_metadata(self) -> dict[str, Any]:
        """Dataset-level metadata (JSON-serialisable), known after ``_list_records``."""

    def _info(self) -> tfds.core.DatasetInfo:
        return self._make_info(self._features(), homepage=self.HOMEPAGE, citation=self.CITATION)

    def _source_root(self, dl_manager: tfds.download.DownloadManager) -> pathlib.Path:
        root = self._source_dir if self._source_dir is not None else dl_manager.manual_dir
        return require_dir(pathlib.Path(root), self.name, "source folder", self.LAYOUT)

    def _score_file(self, path: pathlib.Path) -> pathlib.Path:
        """Records ``path`` as a score file of this build (for the source fingerprint)."""
        self._score_files.add(path)
        return path

    def _read_text(self, path: pathlib.Path) -> str:
        """The text of score file ``path`` (:func:`read_text`), recorded like ``_score_file``."""
        return read_text(self._score_file(path), self.name)

    def _read_source(
        self, root: pathlib.Path
    ) -> tuple[list[Record], dict[str, list[int] | None]]:
        """The records listed under ``root`` and the source fingerprint: relative path ->
        ``file_stamp`` of every score file read and every listed image (None: missing)."""
        self._score_files = set()
        records = self._list_records(root)
        paths = {p for r in records for p in r.paths} | self._score_files
        return records, {p.relative_to(root).as_posix(): file_stamp(p) for p in paths}

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = self._source_root(dl_manager)
        records, fingerprint = self._read_source(root)
        self._source_checked = True
        if not records:
            raise ValueError(f"{self.name}: the score files list no images")
        images = {p for r in records for p in r.paths}
        absent = {p for p in images if fingerprint[p.relative_to(root).as_posix()] is None}
        missing = [r.name for r in records if absent.intersection(r.paths)]
        if missing and not self._skip_bad_images:
            raise FileNotFoundError(
                f"{self.name}: {len(absent)} of {len(images)} listed image files are missing "
                f"(needed by {len(missing)} of {len(records)} examples): "
                f"{format_names(sorted(map(str, absent)))}. Expected layout:\n{self.LAYOUT}"
            )
        missing_set = set(missing)
        records = [r for r in records if r.name not in missing_set]
        references = self._read_references(records)
        splits = {SPLIT: self._generate_examples(records, missing, fingerprint, references)}
        if any(r.reference for r in records):
            splits[REFERENCES] = self._generate_references(records, references)
        return splits

    def _read_references(
        self, records: list[Record]
    ) -> dict[pathlib.Path, tuple[bytes | np.ndarray, tuple[int, int]] | ImageReadError]:
        """Every reference of ``records``, read once, as stored with this build's storage (or the
        ImageReadError of an unreadable one, with ``skip_bad_images``; else it is raised)."""
        out: dict[pathlib.Path, Any] = {}
        for path in dict.fromkeys(r.reference for r in records if r.reference):
            try:
                out[path] = read_image_file(path, self._storage)
            except ImageReadError as e:
                if not self._skip_bad_images:
                    raise
                out[path] = e
        if out and all(isinstance(v, ImageReadError) for v in out.values()):
            raise ValueError(f"{self.name}: no readable reference (skipped {len(out)})")
        return out

    def _generate_references(
        self, records: list[Record], references: Mapping[pathlib.Path, Any]
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yields the readable references of ``records`` once each, in ``ref_id`` order
        (:func:`reference_row`); their ids, row by row, go to ``metadata["references"]``."""
        by_id = {}
        for r in records:
            if r.reference and not isinstance(references[r.reference], ImageReadError):
                by_id.setdefault(int(r.features["ref_id"]), (r.reference, r.features["ref_name"]))
        ids = sorted(by_id)
        for row, ref_id in enumerate(ids):
            path, ref_name = by_id[ref_id]
            yield row, reference_row(references[path][0], ref_id, ref_name)
        self.info.metadata["references"] = {"split": REFERENCES, "ref_id": ids}

    def as_data_source(self, *args: Any, **kwargs: Any) -> Any:
        """``tfds`` data source; first checks ``source_dir`` against the build's fingerprint."""
        self._check_source_unchanged()
        return super().as_data_source(*args, **kwargs)

    def _source_changes(self, recorded: Mapping[str, list[int] | None], what: str, how: str) -> None:
        """SourceChangedError (``what``: the message's start, ``how``: its advice) when the
        files under ``source_dir`` differ from the ``recorded`` fingerprint."""
        try:
            _, fingerprint = self._read_source(self._source_dir)
        except (OSError, ValueError) as e:
            raise SourceChangedError(f"{what}: it no longer reads: {e}\n{how}") from e
        changes = source_changes(recorded, fingerprint)
        if changes:
            raise SourceChangedError(f"{what}: {'; '.join(changes)}. {how}")

    def _check_source_unchanged(self) -> None:
        recorded = self.info.metadata.get("source_files")
        # Without a source folder the build is used as it is; builds made before fingerprints
        # were recorded cannot be checked.
        if self._source_dir is None or recorded is None or self._source_checked:
            return
        what = (
            f"{self.name}: the source folder {self._source_dir} differs from the files the "
            f"dataset in {self.data_path} was built from"
        )
        how = (
            f"To rebuild from the current files, delete {self.data_path} and load again; to use "
            "the existing build as it is, load it without a source folder (manual_dir)."
        )
        self._source_changes(recorded, what, how)
        self._source_checked = True

    def rebuild_note(self, other: pathlib.Path) -> str:
        """Before building this version while ``other`` holds another one: the source folder
        must hold the files ``other`` was built from (its fingerprint), so that the new build
        has the same examples in the same order and earlier runs' splits keep their meaning;
        otherwise SourceChangedError says what changed and how to rebuild anyway."""
        try:
            recorded = json.loads((other / "metadata.json").read_text()).get("source_files")
        except (OSError, ValueError):
            recorded = None
        if self._source_dir is not None and recorded is not None:
            what = (
                f"{self.name}: {other} holds version {other.name}, which this version of "
                f"birqa_jax does not read, and the source folder {self._source_dir} differs "
                "from the files it was built from, so that a build of the current files could "
                "number the examples differently"
            )
            how = (
                f"To build version {self.version} from the current files, delete {other} and "
                "load again."
            )
            self._source_changes(recorded, what, how)
        return super().rebuild_note(other)

    def _generate_examples(
        self,
        records: list[Record],
        skipped: list[str],
        fingerprint: dict[str, list[int] | None],
        references: Mapping[pathlib.Path, Any],
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yields (index, example); writes the metadata columns and the source fingerprint
        (relative path -> ``file_stamp``) once all examples are out."""
        columns = ExampleColumns()
        skipped = list(skipped)
        index = 0
        for record in records:
            try:
                if isinstance(references.get(record.reference), ImageReadError):
                    raise references[record.reference]
                images = {key: read_image_file(path, self._storage) for key, path in record.images.items()}
            except ImageReadError:
                if not self._skip_bad_images:
                    raise
                skipped.append(record.name)
                continue
            sizes = {key: size for key, (_, size) in images.items()}
            if record.reference:
                sizes["reference"] = references[record.reference][1]
            if len(set(sizes.values())) != 1:
                raise ValueError(f"{self.name}: images of {record.name} differ in size: {sizes}")
            height, width = next(iter(sizes.values()))
            yield index, {**{k: image for k, (image, _) in images.items()}, **record.features}
            columns.append(**record.columns, height=height, width=width)
            index += 1
        if index == 0:
            raise ValueError(f"{self.name}: no readable examples (skipped {len(skipped)})")
        if skipped:
            print(
                f"{self.name}: skipped {len(skipped)} examples with missing or unreadable "
                f"images (skip_bad_images=True): {format_names(skipped)}"
            )
        columns.store(
            self.info,
            skipped=skipped,
            source_files=fingerprint,
            storage=self._storage,
            **self._dataset_metadata(),
        )


@dataclasses.dataclass(frozen=True)
class PairEntry:
    """One reference/distorted pair as a dataset's score file lists it."""

    ref_path: pathlib.Path
    dist_path: pathlib.Path
    ref_name: str
    dist_name: str
    mos_raw: float
    dist_type: int = -1
    dist_level: int = -1


class PairIQABuilder(ManualIQABuilder, skip_registration=True):
    """A reference/distorted pair dataset with one subjective score per pair.

    Subclasses define ``SCORE`` and ``_list_entries(root)``. ``ref_id`` is the index of the
    reference in the sorted (case-insensitive) list of reference names the score file uses;
    ``group_id`` (for splits) equals ``ref_id``. Each reference is stored once, in the split
    ``"references"`` (:func:`pair_features`).
    """

    VERSION = PAIR_VERSION
    RELEASE_NOTES: ClassVar[dict[str, str]] = PAIR_RELEASE_NOTES
    SCORE: ClassVar[ScoreSpec]

    @abc.abstractmethod
    def _list_entries(self, root: pathlib.Path) -> list[PairEntry]:
        """Reads the score file(s) under ``root`` and lists the pairs in their final order."""

    def _features(self) -> tfds.features.FeaturesDict:
        return pair_features(self._storage)

    def _list_records(self, root: pathlib.Path) -> list[Record]:
        entries = self._list_entries(root)
        if not entries:
            return []
        names = [e.dist_name for e in entries]
        if len(set(names)) != len(names):
            dups = sorted(n for n, c in collections.Counter(names).items() if c > 1)
            raise ValueError(f"{self.name}: images listed more than once: {format_names(dups)}")
        raw = np.array([e.mos_raw for e in entries], np.float64)
        mos, (lo, hi) = normalise_scores(raw, self.SCORE, names, self.name)
        self._ref_names = sorted({e.ref_name for e in entries}, key=str.casefold)
        self._score_range = (lo, hi)
        ref_ids = {name: i for i, name in enumerate(self._ref_names)}
        records = []
        for entry, m in zip(entries, mos.astype(np.float32)):
            ref_id = ref_ids[entry.ref_name]
            raw32 = np.float32(entry.mos_raw)
            records.append(
                Record(
                    name=entry.dist_name,
                    images={"image": entry.dist_path},
                    reference=entry.ref_path,
                    features={
                        "mos_raw": raw32,
                        "mos": m,
                        "ref_id": ref_id,
                        "ref_name": entry.ref_name,
                        "dist_name": entry.dist_name,
                        "dist_type": entry.dist_type,
                        "dist_level": entry.dist_level,
                    },
                    columns={
                        "ref_id": ref_id,
                        "group_id": ref_id,
                        "dist_type": entry.dist_type,
                        "dist_level": entry.dist_level,
                        "mos": float(m),
                        "mos_raw": float(raw32),
                    },
                )
            )
        return records

    def _dataset_metadata(self) -> dict[str, Any]:
        lo, hi = self._score_range
        return {
            "ref_names": self._ref_names,
            "score": {
                "name": self.SCORE.name,
                "higher_is_better": self.SCORE.higher_is_better,
                "range": [lo, hi],
                "range_from": "documented" if self.SCORE.documented_range else "observed",
            },
        }
