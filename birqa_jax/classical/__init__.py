"""Classical full-reference metrics in JAX (PSNR, SSIM, MS-SSIM, GMSD): the baselines BiRQA is
compared with. ``BASELINES`` maps each name to ``(jitted fn, higher_is_better)``."""

from birqa_jax.classical.metrics import BASELINES, MS_SSIM_MIN_SIZE, gmsd, ms_ssim, psnr, ssim

__all__ = ["BASELINES", "MS_SSIM_MIN_SIZE", "gmsd", "ms_ssim", "psnr", "ssim"]
