"""PieAPP test split (Prashnani et al. 2018): per-image scores of the test references."""

from __future__ import annotations

import csv
import io
import pathlib

from birqa_jax.data.base import PairEntry, PairIQABuilder, ScoreSpec, format_names, require_dir

_SUFFIX = "_per_image_score.csv"
_COLUMNS = ("distorted image", "score for distorted image")
_LAYOUT = """\
<source_dir>/                 the extracted PieAPP dataset folder
  reference_images/test/<ref>.png
  distorted_images/test/<ref>/<distorted image>
  labels/test/<ref>_per_image_score.csv    columns ` distorted image`, ` score for distorted
                                           image` (the names start with a space)"""


class PieApp(PairIQABuilder):
    """PieAPP test split, per-image scores: one example per (test reference, distorted image).

    PieAPP's labels are pairwise preferences; only the test split also ships a per-image score
    (``labels/test/<ref>_per_image_score.csv``, column names starting with a space), which is
    what this builder reads; the train/val pairwise labels are not used. Scores: lower = better
    (no fixed scale); ``mos = (hi - score) / (hi - lo)`` with lo/hi the observed min/max over all
    listed images. The reference is ``reference_images/test/<ref>.*`` (matched by stem),
    ``dist_name`` is ``<ref>/<distorted image>``; ``dist_type``/``dist_level`` are -1. A row whose
    distorted image is the reference itself (same stem) is not a pair: it is skipped and the
    number of such rows printed.
    """

    name = "pieapp"
    SCORE = ScoreSpec("PieAPP per-image score", higher_is_better=False, documented_range=None)
    LAYOUT = _LAYOUT
    HOMEPAGE = "https://web.ece.ucsb.edu/~ekta/projects/PieAPPv0.1/"
    CITATION = """@inproceedings{prashnani2018pieapp,
  title={PieAPP: Perceptual Image-Error Assessment through Pairwise Preference},
  author={Prashnani, Ekta and Cai, Hong and Mostofi, Yasamin and Sen, Pradeep},
  booktitle={CVPR}, year={2018}}"""
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download the PieAPP dataset (PieAPPv0.1) from {HOMEPAGE}, extract it, and pass the extracted
folder as `source_dir` (or TFDS `manual_dir`):
{_LAYOUT}"""

    def _list_entries(self, root: pathlib.Path) -> list[PairEntry]:
        ref_dir, dist_root, label_dir = (
            require_dir(root / part / "test", self.name, f"{part} folder", _LAYOUT)
            for part in ("reference_images", "distorted_images", "labels")
        )
        label_files = sorted(label_dir.glob(f"*{_SUFFIX}"))
        if not label_files:
            raise FileNotFoundError(
                f"{self.name}: no *{_SUFFIX} file in {label_dir}. Expected layout:\n{_LAYOUT}"
            )
        refs_by_stem = {p.stem: p for p in ref_dir.iterdir() if p.is_file()}
        entries, self_rows = [], []
        for label_file in label_files:
            ref = label_file.name[: -len(_SUFFIX)]
            ref_path = refs_by_stem.get(ref, ref_dir / f"{ref}.png")
            reader = csv.DictReader(io.StringIO(self._read_text(label_file), newline=""))
            # The released files name their columns with a leading space.
            columns = {c.strip(): c for c in reader.fieldnames or []}
            if not set(_COLUMNS) <= set(columns):
                raise ValueError(
                    f"{self.name}: {label_file} has columns {list(reader.fieldnames or [])}; "
                    f"expected {[' ' + c for c in _COLUMNS]} (leading space optional)"
                )
            for row_number, row in enumerate(reader, start=2):
                name = (row[columns["distorted image"]] or "").strip()
                if pathlib.PurePath(name).stem == ref:
                    self_rows.append(f"{label_file.name} line {row_number}")
                    continue
                try:
                    score = float(row[columns["score for distorted image"]])
                except (TypeError, ValueError):
                    raise ValueError(
                        f"{self.name}: {label_file} line {row_number}: score "
                        f"{row[columns['score for distorted image']]!r} is not a number"
                    ) from None
                entries.append(
                    PairEntry(
                        ref_path=ref_path,
                        dist_path=dist_root / ref / name,
                        ref_name=ref_path.name,
                        dist_name=f"{ref}/{name}",
                        mos_raw=score,
                    )
                )
        if self_rows:
            print(
                f"{self.name}: skipped {len(self_rows)} rows that list the reference itself as "
                f"a distorted image: {format_names(self_rows)}"
            )
        return entries
