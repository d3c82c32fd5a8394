"""KADID-10k (Lin, Hosu, Saupe 2019): 81 references, 10,125 distorted images, MOS 1-5."""

from __future__ import annotations

import csv
import io
import pathlib
import re

from birqa_jax.data.base import (
    PairEntry,
    PairIQABuilder,
    ScoreSpec,
    casefold_index,
    require_dir,
    require_file,
)

_LAYOUT = """\
<source_dir>/                 the extracted kadid10k/ folder
  dmos.csv                    header dist_img,ref_img,dmos,var
                              e.g. I01_01_01.png,I01.png,4.57,0.496
  images/                     references I01.png..I81.png and distorted Iaa_tt_ll.png together
                              (aa reference, tt type 01-25, ll level 01-05)"""
_COLUMNS = ("dist_img", "ref_img", "dmos", "var")
# Matched against the case-folded name: copies of the dataset differ in name case.
_NAME = re.compile(r"i(\d{2})_(\d{2})_(\d{2})\.png")


class Kadid10k(PairIQABuilder):
    """KADID-10k: 81 pristine references x 25 distortion types x 5 levels = 10,125 pairs.

    Scores: the ``dmos`` column of ``dmos.csv`` is, despite its name, a MOS (1 = bad, 5 =
    excellent, higher = better). ``mos_raw`` is that value; ``mos = (mos_raw - 1) / 4`` over the
    documented 1-5 scale. ``dist_type`` 1-25 and ``dist_level`` 1-5 come from the file name
    ``Iaa_tt_ll.png``. Names in ``dmos.csv`` are matched to the files case-insensitively (as for
    TID); ``ref_name``/``dist_name`` are the names on disk. Images are 512x384 (W x H) PNG,
    stored byte for byte.
    """

    name = "kadid10k"
    SCORE = ScoreSpec("MOS (column `dmos`)", higher_is_better=True, documented_range=(1.0, 5.0))
    LAYOUT = _LAYOUT
    HOMEPAGE = "http://database.mmsp-kn.de/kadid-10k-database.html"
    CITATION = """@inproceedings{lin2019kadid,
  title={KADID-10k: A Large-scale Artificially Distorted IQA Database},
  author={Lin, Hanhe and Hosu, Vlad and Saupe, Dietmar},
  booktitle={QoMEX}, year={2019}}"""
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download kadid10k.zip from {HOMEPAGE}, extract it, and pass the extracted folder as
`source_dir` (or TFDS `manual_dir`):
{_LAYOUT}"""

    def _list_entries(self, root: pathlib.Path) -> list[PairEntry]:
        images = require_dir(root / "images", self.name, "image folder", self.LAYOUT)
        score_file = require_file(root / "dmos.csv", self.name, "score file", self.LAYOUT)
        files = casefold_index(images)
        reader = csv.DictReader(io.StringIO(self._read_text(score_file), newline=""))
        header = [c.strip() for c in reader.fieldnames or []]
        if not {"dist_img", "ref_img", "dmos"} <= set(header):
            raise ValueError(
                f"{self.name}: {score_file} has columns {header}; expected the header "
                f"{','.join(_COLUMNS)}"
            )
        reader.fieldnames = header
        entries = []
        for row_number, row in enumerate(reader, start=2):
            if any(row[c] is None for c in ("dist_img", "ref_img", "dmos")):
                raise ValueError(
                    f"{self.name}: {score_file} line {row_number} has too few columns; "
                    f"expected {','.join(_COLUMNS)}"
                )
            dist = row["dist_img"].strip()
            match = _NAME.fullmatch(dist.casefold())
            if match is None:
                raise ValueError(
                    f"{self.name}: {score_file} line {row_number}: distorted image name "
                    f"{dist!r} is not of the form Iaa_tt_ll.png"
                )
            try:
                score = float(row["dmos"])
            except (TypeError, ValueError) as e:
                raise ValueError(
                    f"{self.name}: {score_file} line {row_number}: dmos {row['dmos']!r} is "
                    "not a number"
                ) from e
            ref = row["ref_img"].strip()
            # A name missing on disk keeps its listed spelling so the error can report it.
            ref_path = files.get(ref.casefold(), images / ref)
            dist_path = files.get(dist.casefold(), images / dist)
            entries.append(
                PairEntry(
                    ref_path=ref_path,
                    dist_path=dist_path,
                    ref_name=ref_path.name,
                    dist_name=dist_path.name,
                    mos_raw=score,
                    dist_type=int(match[2]),
                    dist_level=int(match[3]),
                )
            )
        return entries
