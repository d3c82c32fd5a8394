"""Classical full-reference metrics in JAX (PSNR, SSIM, MS-SSIM, GMSD): the baselines BiRQA is
compared with, in two modes behind one lookup, ``get(name, mode) -> fn(ref, dist) -> [B]``:

- ``"reference"`` (default; ``reference.py``): the published MATLAB algorithms on the 8-bit
  images, for scores that match published tables;
- ``"float"`` (``metrics.py``): differentiable versions on unrounded luma, for losses.

``NAMES`` lists the metrics; ``BASELINES`` maps each to ``(reference-mode jitted fn,
higher_is_better)``. ``psnr``, ``ssim``, ``ms_ssim``, ``gmsd`` below are the float functions
(un-jitted); ``reference`` holds the reference ones.
"""

from birqa_jax.classical import reference
from birqa_jax.classical.metrics import MS_SSIM_MIN_SIZE, gmsd, ms_ssim, psnr, ssim
from birqa_jax.classical.registry import BASELINES, HIGHER_IS_BETTER, MODES, NAMES, get

__all__ = [
    "BASELINES", "HIGHER_IS_BETTER", "MODES", "MS_SSIM_MIN_SIZE", "NAMES", "get", "gmsd", "ms_ssim", "psnr",
    "reference", "ssim",
]
