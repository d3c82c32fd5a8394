"""Classical full-reference metrics in JAX (PSNR, SSIM, MS-SSIM, GMSD, VIF, FSIM, CW-SSIM, NLPD,
VSI, MAD):
the baselines BiRQA is compared with, in two modes behind one lookup,
``get(name, mode) -> fn(ref, dist) -> [B]``:

- ``"reference"`` (default; ``reference_mode.py``, and the ``*_reference`` functions of ``vif.py``,
  ``fsim.py``, ``cw_ssim.py``, ``nlpd.py``, ``vsi.py`` and ``mad.py``): the published MATLAB algorithms on the 8-bit
  images, for scores that match published tables;
- ``"float"`` (``float_mode.py``, ``vif.vif``, ``fsim.fsim``, ``cw_ssim.cw_ssim``, ``nlpd.nlpd``,
  ``vsi.vsi``, ``mad.mad``):
  differentiable versions on unrounded values, for losses.

``METRICS`` holds one ``ClassicalMetric`` entry per metric (both functions, direction, range,
smallest size, description, options); ``NAMES`` lists them, ``BASELINES`` maps each to
``(reference-mode jitted fn, higher_is_better)`` and ``MIN_SIZE`` gives the smallest short side
of each, all read from ``METRICS``. ``psnr``, ``ssim``, ``ms_ssim``, ``gmsd`` below are the
float functions (un-jitted); ``reference_mode`` holds their reference ones; ``vif``, ``fsim``,
``cw_ssim``, ``nlpd``, ``vsi`` and ``mad`` are the modules that hold both modes of those metrics.
"""

from birqa_jax.classical import cw_ssim, fsim, mad, nlpd, reference_mode, vif, vsi
from birqa_jax.classical.float_mode import MS_SSIM_MIN_SIZE, gmsd, ms_ssim, psnr, ssim
from birqa_jax.classical.registry import (
    BASELINES,
    HIGHER_IS_BETTER,
    METRICS,
    MIN_SIZE,
    MODES,
    NAMES,
    ClassicalMetric,
    Defaults,
    get,
)

__all__ = [
    "BASELINES", "HIGHER_IS_BETTER", "METRICS", "MIN_SIZE", "MODES", "MS_SSIM_MIN_SIZE", "NAMES", "ClassicalMetric",
    "Defaults", "cw_ssim", "fsim", "get", "gmsd", "mad", "ms_ssim", "nlpd", "psnr", "reference_mode", "ssim", "vif",
    "vsi",
]
