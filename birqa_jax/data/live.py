"""LIVE Image Quality Assessment Database, release 2 (Sheikh et al.): 29 references, DMOS."""

from __future__ import annotations

import pathlib

import numpy as np
import scipy.io
import tensorflow_datasets as tfds

from birqa_jax.data.base import PairEntry, PairIQABuilder, ScoreSpec, require_dir, require_file

# The 982 entries of the .mat files, in this folder order, numbered img1.bmp.. per folder.
FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))
NUM_ENTRIES = sum(n for _, n in FOLDERS)
# config name -> (score file, score variable, the file's variable flagging reference copies)
_CONVENTIONS = {
    "realigned": ("dmos_realigned.mat", "dmos_new", "orgs"),
    "original": ("dmos.mat", "dmos", "orgs"),
}
_LAYOUT = """\
<source_dir>/                 the extracted databaserelease2/ folder
  jp2k/ jpeg/ wn/ gblur/ fastfading/   img<k>.bmp, k from 1 (227, 233, 174, 174, 174 entries)
  refimgs/                    the 29 references (.bmp)
  dmos.mat                    dmos [1, 982], orgs [1, 982] (1 = copy of its reference)
  dmos_realigned.mat          dmos_new [1, 982], dmos_std, orgs
  refnames_all.mat            refnames_all: cell [1, 982] of reference file names"""


def _load_mat(
    path: pathlib.Path, variables: tuple[str, ...], dataset: str
) -> dict[str, np.ndarray]:
    """The named variables of a MATLAB v5 file, each flattened to NUM_ENTRIES values."""
    try:
        mat = scipy.io.loadmat(str(path))
    except (ValueError, OSError) as e:
        raise ValueError(f"{dataset}: cannot read {path} as a MATLAB file: {e}") from e
    found = sorted(k for k in mat if not k.startswith("__"))
    if not set(variables) <= set(found):
        raise ValueError(f"{dataset}: {path} has variables {found}; expected {list(variables)}")
    out = {}
    for name in variables:
        values = np.asarray(mat[name]).ravel()
        if values.size != NUM_ENTRIES:
            raise ValueError(
                f"{dataset}: {path} variable {name} has {values.size} entries; expected "
                f"{NUM_ENTRIES} ({', '.join(f'{n} {f}' for f, n in FOLDERS)})"
            )
        out[name] = values
    return out


class Live(PairIQABuilder):
    """LIVE release 2: 29 references, 779 distorted images in 5 types (982 entries less 203
    copies of references flagged by ``orgs``, which are dropped).

    Scores are DMOS (lower = better) and two conventions exist, chosen by the config:
    ``realigned`` (default): ``dmos_new`` of ``dmos_realigned.mat``, the realigned scores
    recommended by the database authors; ``original``: ``dmos`` of ``dmos.mat``. ``orgs`` comes
    from the same file as the scores; without ``dmos_realigned.mat`` the error points to
    ``live/original``. ``mos_raw`` is the DMOS; ``mos = (hi - dmos) / (hi - lo)`` with lo/hi the
    observed min/max over the kept entries (DMOS has no fixed scale), so higher = better.
    ``dist_type``: 1 jp2k, 2 jpeg, 3 wn, 4 gblur, 5 fastfading; ``dist_level`` -1; ``dist_name``
    is ``<folder>/img<k>.bmp``. Images are BMP of varying size, stored as PNG.
    """

    name = "live"
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="realigned", description="dmos_new of dmos_realigned.mat"),
        tfds.core.BuilderConfig(name="original", description="dmos of dmos.mat"),
    ]
    DEFAULT_CONFIG_NAME = "realigned"
    SCORE = ScoreSpec("DMOS", higher_is_better=False, documented_range=None)
    LAYOUT = _LAYOUT
    HOMEPAGE = "https://live.ece.utexas.edu/research/quality/subjective.htm"
    CITATION = """@article{sheikh2006statistical,
  title={A statistical evaluation of recent full reference image quality assessment algorithms},
  author={Sheikh, Hamid R and Sabir, Muhammad F and Bovik, Alan C},
  journal={IEEE Transactions on Image Processing}, volume={15}, number={11}, year={2006}}"""
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Request and download LIVE release 2 (databaserelease2.zip) from {HOMEPAGE}, extract it, and pass
the extracted folder as `source_dir` (or TFDS `manual_dir`):
{_LAYOUT}"""

    def _list_entries(self, root: pathlib.Path) -> list[PairEntry]:
        score_name, score_var, orgs_var = _CONVENTIONS[self.builder_config.name]
        if self.builder_config.name == "realigned" and not (root / score_name).is_file():
            raise FileNotFoundError(
                f"{self.name}: score file {root / score_name} not found; to use the original "
                "DMOS of dmos.mat instead, load the config `live/original`. Expected layout:\n"
                f"{_LAYOUT}"
            )
        score_file = require_file(root / score_name, self.name, "score file", _LAYOUT)
        names_file = require_file(root / "refnames_all.mat", self.name, "reference list", _LAYOUT)
        ref_dir = require_dir(root / "refimgs", self.name, "reference folder", _LAYOUT)
        for folder, _ in FOLDERS:
            require_dir(root / folder, self.name, "distorted folder", _LAYOUT)
        scores = _load_mat(self._score_file(score_file), (score_var, orgs_var), self.name)
        names = _load_mat(self._score_file(names_file), ("refnames_all",), self.name)
        ref_names = names["refnames_all"]
        numbered = [(t, f, k) for t, (f, n) in enumerate(FOLDERS, start=1) for k in range(1, n + 1)]
        entries = []
        for i, (dist_type, folder, k) in enumerate(numbered):
            if scores[orgs_var][i] == 1:
                continue
            ref = str(np.asarray(ref_names[i]).ravel()[0]).strip()
            entries.append(
                PairEntry(
                    ref_path=ref_dir / ref,
                    dist_path=root / folder / f"img{k}.bmp",
                    ref_name=ref,
                    dist_name=f"{folder}/img{k}.bmp",
                    mos_raw=float(scores[score_var][i]),
                    dist_type=dist_type,
                )
            )
        return entries
