"""PIPAL training part (Jinjin et al. 2020; NTIRE 2021/2022 FR-IQA): 200 references, Elo."""

from __future__ import annotations

import collections
import pathlib
import re

from birqa_jax.data.base import PairEntry, PairIQABuilder, ScoreSpec, require_dir

_LAYOUT = """\
<source_dir>/
  Train_Ref/                  A0001.bmp..A0200.bmp
  Train_Dist/                 distorted Aaaaa_tt_vv.bmp (or the released parts
                              Distortion_1/ .. Distortion_4/, read together)
  Train_Label/*.txt           headerless lines `<distorted name>,<Elo score>`,
                              e.g. A0001_00_00.bmp,1520.0648"""
_NAME = re.compile(r"(A\d{4})_(\d{2})_(\d{2})\.bmp")
_PARTS = tuple(f"Distortion_{i}" for i in range(1, 5))


def _homes_of_missing(
    root: pathlib.Path, dist_dirs: list[pathlib.Path], dist_paths: dict[str, pathlib.Path]
) -> tuple[dict[str, pathlib.Path], pathlib.Path]:
    """Where a listed distorted image found in none of ``dist_dirs`` was expected: (reference
    ``A0001`` -> the one folder holding that reference's other distorted images, the folder for
    any other reference)."""
    folders = collections.defaultdict(set)
    for path in dist_paths.values():
        match = _NAME.fullmatch(path.name)
        if match is not None:
            folders[match[1]].add(path.parent)
    home_of = {ref: found.pop() for ref, found in folders.items() if len(found) == 1}
    if dist_dirs == [root / "Train_Dist"]:
        return home_of, dist_dirs[0]
    absent = [root / d for d in _PARTS if root / d not in dist_dirs]
    if len(absent) == 1:  # found in no extracted part, so in the one not extracted
        return home_of, absent[0]
    return home_of, root / "Distortion_1..4"  # no one folder to name


class Pipal(PairIQABuilder):
    """PIPAL training part: 200 references x 116 distorted = 23,200 pairs (traditional, GAN and
    restoration outputs).

    Scores: Elo (higher = better, about 1000-1800, no fixed scale); ``mos = (elo - lo) / (hi -
    lo)`` with lo/hi the observed min/max over the labels. The reference of ``A0001_tt_vv.bmp`` is
    ``A0001.bmp`` (the first five characters). ``dist_type`` and ``dist_level`` are the two
    numbers ``tt`` and ``vv`` of the name (distortion type and its variant, as PIPAL numbers
    them). Distorted images are read from ``Train_Dist/`` when it exists, else from
    ``Distortion_1/`` .. ``Distortion_4/`` together. A listed image found in none of the parts is
    reported in the part that holds the other distorted images of its reference, else in the one
    part folder that does not exist (an archive not extracted), else as
    ``Distortion_1..4/<name>``. Images are 288x288 BMP, stored as PNG.

    Only this training part of PIPAL has public labels, so PIPAL's official protocol here
    means: train on all of it (see :func:`birqa_jax.data.official_split`), evaluate on another
    dataset or on PIPAL's validation/test parts where their labels are available to you.
    """

    name = "pipal"
    SCORE = ScoreSpec("Elo", higher_is_better=True, documented_range=None)
    LAYOUT = _LAYOUT
    HOMEPAGE = "https://www.jasongt.com/projectpages/pipal.html"
    CITATION = """@inproceedings{jinjin2020pipal,
  title={PIPAL: a large-scale image quality assessment dataset for perceptual image restoration},
  author={Jinjin, Gu and Haoming, Cai and Haoyu, Chen and Xiaoxing, Ye and Ren, Jimmy S and Chao, Dong},
  booktitle={ECCV}, year={2020}}"""
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download the PIPAL training part (Train_Ref, Distortion_1..4 or Train_Dist, Train_Label) from
{HOMEPAGE} (NTIRE 2021/2022 perceptual IQA challenge), extract the archives into one folder and
pass it as `source_dir` (or TFDS `manual_dir`):
{_LAYOUT}"""

    def _list_entries(self, root: pathlib.Path) -> list[PairEntry]:
        ref_dir = require_dir(root / "Train_Ref", self.name, "reference folder", _LAYOUT)
        label_dir = require_dir(root / "Train_Label", self.name, "label folder", _LAYOUT)
        if (root / "Train_Dist").is_dir():
            dist_dirs = [root / "Train_Dist"]
        else:
            dist_dirs = [root / d for d in _PARTS if (root / d).is_dir()]
            if not dist_dirs:
                raise FileNotFoundError(
                    f"{self.name}: neither {root / 'Train_Dist'} nor {root / 'Distortion_1'}.. "
                    f"exists. Expected layout:\n{_LAYOUT}"
                )
        dist_paths = {p.name: p for d in dist_dirs for p in d.iterdir()}
        home_of, other_home = _homes_of_missing(root, dist_dirs, dist_paths)
        label_files = sorted(label_dir.glob("*.txt"))
        if not label_files:
            raise FileNotFoundError(
                f"{self.name}: no *.txt label file in {label_dir}. Expected layout:\n{_LAYOUT}"
            )
        entries = []
        for label_file in label_files:
            lines = self._read_text(label_file).splitlines()
            for line_number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                fields = [f.strip() for f in line.split(",")]
                try:
                    if len(fields) != 2:
                        raise ValueError
                    score = float(fields[1])
                except ValueError:
                    raise ValueError(
                        f"{self.name}: {label_file} line {line_number} is {line!r}; expected "
                        "headerless lines with two columns `<distorted name>,<Elo score>`"
                    ) from None
                match = _NAME.fullmatch(fields[0])
                if match is None:
                    raise ValueError(
                        f"{self.name}: {label_file} line {line_number}: name {fields[0]!r} is "
                        "not of the form Aaaaa_tt_vv.bmp"
                    )
                ref = f"{match[1]}.bmp"
                entries.append(
                    PairEntry(
                        ref_path=ref_dir / ref,
                        dist_path=dist_paths.get(
                            fields[0], home_of.get(match[1], other_home) / fields[0]
                        ),
                        ref_name=ref,
                        dist_name=fields[0],
                        mos_raw=score,
                        dist_type=int(match[2]),
                        dist_level=int(match[3]),
                    )
                )
        return entries
