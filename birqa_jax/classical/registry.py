"""One lookup for both modes of the classical baselines.

``get(name, mode)`` returns a jitted ``fn(ref, dist) -> [B]`` on ``[B, H, W, 3]`` float RGB in
[0, 1]:

- ``mode="reference"`` (the default; evaluation and the training loop's test baselines):
  ``classical.reference_mode``, the published MATLAB algorithms on the 8-bit images (``round(255 x)``,
  MATLAB ``rgb2gray`` with integer rounding, 0..255 values), so the numbers can stand next to
  published tables. Not differentiable.
- ``mode="float"``: ``classical.float_mode``, the differentiable versions on unrounded BT.601 luma
  in [0, 1], for losses and gradients. Not comparable with published tables (SSIM differs by up
  to 0.1 where its downsampling applies, GMSD by a factor of 2 on near-identical pairs).

What each name computes in each mode:

========  ===========================================  ============================================
name      reference                                    float
========  ===========================================  ============================================
psnr      8-bit RGB, MSE over all 3 channels, peak 255  RGB in [0, 1], peak 1 (same value up to the
          (MATLAB ``psnr``, skimage on uint8)           8-bit rounding of the input)
psnr_y    8-bit ``rgb2gray`` grey, peak 255             unrounded BT.601 Y, peak 1
ssim      ``ssim_index.m``: no downsampling, 'valid'    BT.601 Y, with ``ssim.m``'s downsampling
                                                        (f = round(min(H, W) / 256))
ms_ssim   ``msssim.m`` on 8-bit grey                    the same algorithm on unrounded BT.601 Y
gmsd      ``GMSD.m`` on 8-bit grey (0..255)             the same algorithm on 255 x unrounded Y
vif       ``vifvec.m`` (wavelet VIF) on 8-bit grey      the same on 255 x unrounded Y, with a ridge
                                                        on the GSM covariance (``classical.vif``)
fsim      FSIMc of ``FeatureSIM.m`` on 8-bit RGB        the same on 255 x unrounded RGB
                                                        (``classical.fsim``)
cw_ssim   ``cwssim_index.m`` (4 levels, 8 orientations,  the same on 255 x unrounded Y
          K = 0) on 8-bit grey                          (``classical.cw_ssim``)
nlpd      ``NLP_dist.m`` on 8-bit grey / 255 (within    the same on unrounded Y in [0, 1]
          1.1e-3 of the published values, not exact)    (``classical.nlpd``)
========  ===========================================  ============================================

``BASELINES`` maps each name to ``(reference-mode fn, higher_is_better)``: what existing
callers (``evaluation.job``, ``train.loop``) score with. GMSD and NLPD are lower-better.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax

from birqa_jax.classical import cw_ssim, float_mode, fsim, nlpd, reference_mode, vif

NAMES = ("psnr", "psnr_y", "ssim", "ms_ssim", "gmsd", "vif", "fsim", "cw_ssim", "nlpd")
MODES = ("reference", "float")
HIGHER_IS_BETTER = {
    "psnr": True, "psnr_y": True, "ssim": True, "ms_ssim": True, "gmsd": False, "vif": True, "fsim": True,
    "cw_ssim": True, "nlpd": False,
}
# Smallest short side each metric accepts (in both modes).
MIN_SIZE = {
    "psnr": 1, "psnr_y": 1, "ssim": 11, "ms_ssim": float_mode.MS_SSIM_MIN_SIZE, "gmsd": 4, "vif": vif.VIF_MIN_SIZE,
    "fsim": fsim.FSIM_MIN_SIZE, "cw_ssim": cw_ssim.CW_SSIM_MIN_SIZE,
    "nlpd": nlpd.NLPD_MIN_SIZE,
}

_psnr_float = jax.jit(float_mode.psnr, static_argnames="luma")

_FNS: dict[tuple[str, str], Callable[[jax.Array, jax.Array], jax.Array]] = {
    ("psnr", "reference"): jax.jit(reference_mode.psnr),
    ("psnr_y", "reference"): jax.jit(reference_mode.psnr_y),
    ("ssim", "reference"): jax.jit(reference_mode.ssim),  # ssim_index.m: no downsampling
    ("ms_ssim", "reference"): jax.jit(reference_mode.ms_ssim),
    ("gmsd", "reference"): jax.jit(reference_mode.gmsd),
    ("vif", "reference"): jax.jit(vif.vif_reference),
    ("fsim", "reference"): jax.jit(fsim.fsim_reference),
    ("cw_ssim", "reference"): jax.jit(cw_ssim.cw_ssim_reference),
    ("nlpd", "reference"): jax.jit(nlpd.nlpd_reference),
    # The float mode exactly as the baselines registry held it before the reference mode.
    ("psnr", "float"): _psnr_float,
    ("psnr_y", "float"): functools.partial(_psnr_float, luma=True),
    ("ssim", "float"): jax.jit(float_mode.ssim, static_argnames="downsample"),  # with the downsampling
    ("ms_ssim", "float"): jax.jit(float_mode.ms_ssim),
    ("gmsd", "float"): jax.jit(float_mode.gmsd),
    ("vif", "float"): jax.jit(vif.vif),
    ("fsim", "float"): jax.jit(fsim.fsim),
    ("cw_ssim", "float"): jax.jit(cw_ssim.cw_ssim),
    ("nlpd", "float"): jax.jit(nlpd.nlpd),
}


def get(name: str, mode: str = "reference") -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The jitted baseline ``name`` (one of ``NAMES``) in ``mode`` ("reference" or "float").

    The same function object on every call, so its compilation cache is shared.
    """
    if name not in NAMES:
        raise ValueError(f"unknown classical metric {name!r}; choose from {', '.join(NAMES)}")
    if mode not in MODES:
        raise ValueError(
            f"unknown mode {mode!r} for {name}; choose 'reference' (8-bit, as published) or 'float' (differentiable)"
        )
    return _FNS[name, mode]


BASELINES: dict[str, tuple[Callable[[jax.Array, jax.Array], jax.Array], bool]] = {
    name: (get(name, "reference"), HIGHER_IS_BETTER[name]) for name in NAMES
}
