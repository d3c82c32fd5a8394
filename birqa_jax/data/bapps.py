"""BAPPS 2AFC validation set (Zhang et al. 2018, the LPIPS paper): ref/p0/p1 triplets."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from birqa_jax.data.base import ManualIQABuilder, Record, image_feature, require_dir

# The 2AFC validation subsets; subset_id is the position in this tuple.
SUBSETS = ("cnn", "color", "deblur", "frameinterp", "superres", "traditional")
_PATCHES = ("ref", "p0", "p1")
_PARTS = (*_PATCHES, "judge")
_LAYOUT = """\
<source_dir>/                 the `dataset/` folder the BAPPS download script extracts
  2afc/val/<subset>/          subsets cnn, color, deblur, frameinterp, superres, traditional
    ref/<id>.png  p0/<id>.png  p1/<id>.png    64x64 patches
    judge/<id>.npy            fraction of people who preferred p1, shape [1]"""


class Bapps2afc(ManualIQABuilder):
    """BAPPS 2AFC validation triplets: a reference patch, two distorted patches, and the
    fraction of people who judged ``p1`` closer to the reference.

    Example spec (not the pair spec): ``ref``, ``p0``, ``p1`` uint8 [64, 64, 3] (every triplet has
    its own reference, stored in the example; PNG or raw, ``storage``); ``judge``
    float32 in [0, 1] (preference for p1); ``subset`` text and ``subset_id`` int32 (index in
    ``SUBSETS``); ``name`` text ``<subset>/<id>``. The 2AFC score of a metric with distances
    d0, d1 (lower = more similar) is the mean of ``(d0 < d1) * (1 - judge) + (d0 > d1) * judge +
    (d0 == d1) * 0.5``. Subsets missing from the folder are left out (listed in the metadata).
    A triplet is any id with a file in one of ``ref/``, ``p0/``, ``p1/``, ``judge/``: a missing
    patch (ref, p0 or p1 alike) is reported, or skipped with ``skip_bad_images``, as for any
    missing image; a missing judge file is an error.
    """

    name = "bapps_2afc"
    LAYOUT = _LAYOUT
    HOMEPAGE = "https://github.com/richzhang/PerceptualSimilarity"
    CITATION = """@inproceedings{zhang2018unreasonable,
  title={The Unreasonable Effectiveness of Deep Features as a Perceptual Metric},
  author={Zhang, Richard and Isola, Phillip and Efros, Alexei A and Shechtman, Eli and Wang, Oliver},
  booktitle={CVPR}, year={2018}}"""
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download the 2AFC validation set with `scripts/download_dataset_valonly.sh` of {HOMEPAGE}
(it extracts `dataset/2afc/val/...`) and pass the `dataset/` folder as `source_dir` (or TFDS
`manual_dir`):
{_LAYOUT}"""

    def _features(self) -> tfds.features.FeaturesDict:
        return tfds.features.FeaturesDict(
            {
                "ref": image_feature(self._storage),
                "p0": image_feature(self._storage),
                "p1": image_feature(self._storage),
                "judge": np.float32,
                "subset": tfds.features.Text(),
                "subset_id": np.int32,
                "name": tfds.features.Text(),
            }
        )

    def _list_records(self, root: pathlib.Path) -> list[Record]:
        val = require_dir(root / "2afc" / "val", self.name, "2AFC validation folder", _LAYOUT)
        subsets = sorted(p.name for p in val.iterdir() if p.is_dir())
        unknown = [s for s in subsets if s not in SUBSETS]
        if unknown or not subsets:
            raise ValueError(
                f"{self.name}: {val} holds subsets {subsets}; expected some of {list(SUBSETS)}"
            )
        self._subsets = subsets
        records = []
        for subset in subsets:
            parts = {p: require_dir(val / subset / p, self.name, "folder", _LAYOUT) for p in _PARTS}
            # Ids from every folder, so that a missing ref is reported like a missing p0 or p1.
            stems = {f.stem for p in _PATCHES for f in parts[p].glob("*.png")}
            stems |= {f.stem for f in parts["judge"].glob("*.npy")}
            for stem in sorted(stems):
                name = f"{subset}/{stem}"
                judge = self._read_judge(self._score_file(parts["judge"] / f"{stem}.npy"), name)
                judge, subset_id = np.float32(judge), SUBSETS.index(subset)
                records.append(
                    Record(
                        name=name,
                        images={p: parts[p] / f"{stem}.png" for p in _PATCHES},
                        features={
                            "judge": judge,
                            "subset": subset,
                            "subset_id": subset_id,
                            "name": name,
                        },
                        columns={"judge": float(judge), "subset_id": subset_id},
                    )
                )
        return records

    def _read_judge(self, path: pathlib.Path, name: str) -> float:
        """The judge value of one triplet: a .npy holding one number in [0, 1]."""
        if not path.is_file():
            raise FileNotFoundError(f"{self.name}: judge file of {name} missing: {path}")
        try:
            value = np.load(path)
        except (OSError, ValueError) as e:
            raise ValueError(f"{self.name}: cannot read {path} as .npy: {e}") from e
        if value.size != 1 or not 0.0 <= float(value.ravel()[0]) <= 1.0:
            raise ValueError(
                f"{self.name}: {path} holds {value!r}; expected one number in [0, 1]"
            )
        return float(value.ravel()[0])

    def _dataset_metadata(self) -> dict[str, Any]:
        return {"subsets": self._subsets}

