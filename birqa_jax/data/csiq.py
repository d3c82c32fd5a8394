"""CSIQ (Larson and Chandler 2010): 30 references, 866 distorted images, DMOS 0-1."""

from __future__ import annotations

import pathlib

import openpyxl

from birqa_jax.data.base import PairEntry, PairIQABuilder, ScoreSpec, require_dir, require_file

# dst_type in the score sheet -> (folder under dst_imgs/, token in the file name); dist_type is
# the 1-based position in this order.
TYPES = {
    "noise": ("awgn", "AWGN"),
    "jpeg": ("jpeg", "JPEG"),
    "jpeg 2000": ("jpeg2000", "jpeg2000"),
    "fnoise": ("fnoise", "fnoise"),
    "blur": ("blur", "BLUR"),
    "contrast": ("contrast", "contrast"),
}
SHEET = "all_by_image"
HEADER_ROW = 4
COLUMNS = ("image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos")
_LAYOUT = """\
<source_dir>/
  src_imgs/<image>.png                          the 30 references
  dst_imgs/<folder>/<image>.<TOKEN>.<level>.png folder/TOKEN: awgn/AWGN, jpeg/JPEG,
                                                jpeg2000/jpeg2000, fnoise/fnoise, blur/BLUR,
                                                contrast/contrast
  csiq.DMOS.xlsx                                sheet all_by_image, header on row 4:
                                                image, dst_idx, dst_type, dst_lev, dmos_std, dmos"""


def _image_name(value: object) -> str:
    """The sheet's image cell as a file stem: names such as 1600 are stored as numbers."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


class Csiq(PairIQABuilder):
    """CSIQ: 30 references x 6 distortion types x 4-5 levels = 866 pairs.

    Scores: DMOS on the documented 0-1 scale (lower = better) from sheet ``all_by_image`` of
    ``csiq.DMOS.xlsx``, whose header is on row 4; ``mos = 1 - dmos``. Image names that look like
    integers (``1600``) are read as strings. ``dist_type``: 1 noise (AWGN), 2 jpeg, 3 jpeg 2000,
    4 fnoise, 5 blur, 6 contrast; ``dist_level`` is ``dst_lev``. Images are 512x512 PNG.
    """

    name = "csiq"
    SCORE = ScoreSpec("DMOS", higher_is_better=False, documented_range=(0.0, 1.0))
    LAYOUT = _LAYOUT
    HOMEPAGE = "https://s2.smu.edu/~eclarson/csiq.html"
    CITATION = """@article{larson2010most,
  title={Most apparent distortion: full-reference image quality assessment and the role of strategy},
  author={Larson, Eric C and Chandler, Damon M},
  journal={Journal of Electronic Imaging}, volume={19}, number={1}, year={2010}}"""
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download the CSIQ images (src_imgs, dst_imgs) and csiq.DMOS.xlsx from {HOMEPAGE} and lay them
out as follows; pass the folder as `source_dir` (or TFDS `manual_dir`):
{_LAYOUT}"""

    def _list_entries(self, root: pathlib.Path) -> list[PairEntry]:
        src = require_dir(root / "src_imgs", self.name, "reference folder", _LAYOUT)
        dst = require_dir(root / "dst_imgs", self.name, "distorted folder", _LAYOUT)
        score_file = require_file(root / "csiq.DMOS.xlsx", self.name, "score file", _LAYOUT)
        rows = self._read_sheet(self._score_file(score_file))
        entries = []
        for row_number, row in rows:
            dst_type = str(row["dst_type"]).strip().casefold()
            if dst_type not in TYPES:
                raise ValueError(
                    f"{self.name}: {score_file} row {row_number}: dst_type {row['dst_type']!r}; "
                    f"expected one of {list(TYPES)}"
                )
            folder, token = TYPES[dst_type]
            try:
                level, score = int(row["dst_lev"]), float(row["dmos"])
            except (TypeError, ValueError) as e:
                raise ValueError(
                    f"{self.name}: {score_file} row {row_number}: dst_lev {row['dst_lev']!r} or "
                    f"dmos {row['dmos']!r} is not a number"
                ) from e
            image = _image_name(row["image"])
            dist_name = f"{image}.{token}.{level}.png"
            entries.append(
                PairEntry(
                    ref_path=src / f"{image}.png",
                    dist_path=dst / folder / dist_name,
                    ref_name=f"{image}.png",
                    dist_name=dist_name,
                    mos_raw=score,
                    dist_type=list(TYPES).index(dst_type) + 1,
                    dist_level=level,
                )
            )
        return entries

    def _read_sheet(self, path: pathlib.Path) -> list[tuple[int, dict[str, object]]]:
        """(row number, {column: value}) for every non-empty row below the header."""
        try:
            workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as e:  # openpyxl raises zipfile, KeyError and XML errors alike
            raise ValueError(f"{self.name}: cannot read {path} as an xlsx workbook: {e}") from e
        try:
            if SHEET not in workbook.sheetnames:
                raise ValueError(
                    f"{self.name}: {path} has sheets {workbook.sheetnames}; expected {SHEET!r}"
                )
            values = list(workbook[SHEET].iter_rows(values_only=True))
        finally:
            workbook.close()
        header = values[HEADER_ROW - 1] if len(values) >= HEADER_ROW else ()
        header = [str(c).strip().casefold() if c is not None else "" for c in header]
        needed = ("image", "dst_type", "dst_lev", "dmos")
        if not set(needed) <= set(header):
            raise ValueError(
                f"{self.name}: {path} sheet {SHEET!r} row {HEADER_ROW} has columns "
                f"{[c for c in header if c]}; expected {', '.join(COLUMNS)}"
            )
        position = {name: header.index(name) for name in needed}
        rows = []
        for row_number, row in enumerate(values[HEADER_ROW:], start=HEADER_ROW + 1):
            if all(c is None for c in row):
                continue
            cells = {name: row[i] if i < len(row) else None for name, i in position.items()}
            rows.append((row_number, cells))
        return rows
