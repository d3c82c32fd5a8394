"""TID2013 and TID2008 (Ponomarenko et al.): 25 references, MOS 0-9, one shared layout."""

from __future__ import annotations

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
<source_dir>/                 the extracted archive
  reference_images/           I01.BMP..I25.BMP (name case varies, e.g. i25.bmp)
  distorted_images/           iaa_tt_l.bmp (aa reference, tt type, l level; name case varies)
  mos_with_names.txt          one line per distorted image: `<mos> <name>`, no header"""
_NAME = re.compile(r"i(\d{2})_(\d{2})_(\d)\.bmp")


class _Tid(PairIQABuilder, skip_registration=True):
    """TID layout reader; subclasses fix the number of types and levels."""

    NUM_TYPES: int
    NUM_LEVELS: int
    SCORE = ScoreSpec("MOS", higher_is_better=True, documented_range=(0.0, 9.0))
    LAYOUT = _LAYOUT

    def _list_entries(self, root: pathlib.Path) -> list[PairEntry]:
        ref_dir = require_dir(root / "reference_images", self.name, "reference folder", _LAYOUT)
        dist_dir = require_dir(root / "distorted_images", self.name, "distorted folder", _LAYOUT)
        score_file = require_file(root / "mos_with_names.txt", self.name, "score file", _LAYOUT)
        refs, dists = casefold_index(ref_dir), casefold_index(dist_dir)
        entries = []
        for line_number, line in enumerate(self._read_text(score_file).splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            try:
                if len(fields) != 2:
                    raise ValueError
                score = float(fields[0])
            except ValueError:
                raise ValueError(
                    f"{self.name}: {score_file} line {line_number} is {line!r}; expected two "
                    "space-separated columns `<mos> <image name>`, no header"
                ) from None
            match = _NAME.fullmatch(fields[1].casefold())
            if match is None:
                raise ValueError(
                    f"{self.name}: {score_file} line {line_number}: image name {fields[1]!r} is "
                    "not of the form iaa_tt_l.bmp"
                )
            dist_type, level = int(match[2]), int(match[3])
            if not (1 <= dist_type <= self.NUM_TYPES and 1 <= level <= self.NUM_LEVELS):
                raise ValueError(
                    f"{self.name}: {score_file} line {line_number}: {fields[1]!r} has type "
                    f"{dist_type} / level {level}; expected "
                    f"1-{self.NUM_TYPES} / 1-{self.NUM_LEVELS}"
                )
            ref_key = f"i{match[1]}.bmp"
            # A name missing on disk keeps its listed spelling so the error can report it.
            ref_path = refs.get(ref_key, ref_dir / ref_key)
            dist_path = dists.get(fields[1].casefold(), dist_dir / fields[1])
            entries.append(
                PairEntry(
                    ref_path=ref_path,
                    dist_path=dist_path,
                    ref_name=ref_path.name,
                    dist_name=dist_path.name,
                    mos_raw=score,
                    dist_type=dist_type,
                    dist_level=level,
                )
            )
        return entries


class Tid2013(_Tid):
    """TID2013: 25 references x 24 distortion types x 5 levels = 3,000 pairs.

    Scores: MOS on the documented 0-9 scale (higher = better); ``mos = mos_raw / 9``. Names in
    ``mos_with_names.txt`` and on disk differ in case (``I01_11_1.BMP``, ``i01_01_2.bmp``,
    reference ``i25.bmp``) and are matched case-insensitively; ``ref_name``/``dist_name`` are the
    names on disk. Images are 512x384 BMP, stored as PNG.
    """

    name = "tid2013"
    NUM_TYPES, NUM_LEVELS = 24, 5
    HOMEPAGE = "http://www.ponomarenko.info/tid2013.htm"
    CITATION = """@article{ponomarenko2015tid2013,
  title={Image database TID2013: Peculiarities, results and perspectives},
  author={Ponomarenko, Nikolay and others},
  journal={Signal Processing: Image Communication}, volume={30}, pages={57--77}, year={2015}}"""
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download tid2013.rar from {HOMEPAGE}, extract it, and pass the extracted folder as `source_dir`
(or TFDS `manual_dir`):
{_LAYOUT}"""


class Tid2008(_Tid):
    """TID2008: 25 references x 17 distortion types x 4 levels = 1,700 pairs.

    Same layout, score scale and case-insensitive name matching as :class:`Tid2013`;
    ``mos = mos_raw / 9``.
    """

    name = "tid2008"
    NUM_TYPES, NUM_LEVELS = 17, 4
    HOMEPAGE = "http://www.ponomarenko.info/tid2008.htm"
    CITATION = """@article{ponomarenko2009tid2008,
  title={TID2008 - A database for evaluation of full-reference visual quality assessment metrics},
  author={Ponomarenko, Nikolay and others},
  journal={Advances of Modern Radioelectronics}, volume={10}, pages={30--45}, year={2009}}"""
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download tid2008.rar from {HOMEPAGE}, extract it, and pass the extracted folder as `source_dir`
(or TFDS `manual_dir`):
{_LAYOUT}"""
