"""The float mode of the classical baselines: differentiable PSNR, SSIM, MS-SSIM, GMSD in JAX.

Every metric is a pure, jit/vmap/grad-compatible function ``(ref, dist) -> [B]`` of
``ref, dist: [B, H, W, 3] float32 RGB in [0, 1]`` (shape checks run at trace time, so a wrong
input fails with a ValueError before XLA sees it). Each follows its original definition on
continuous values; the docstrings say where a choice had to be made. SSIM-type metrics and GMSD
work on unrounded BT.601 luma (``imageops.luma``), which is why they are smooth enough
for losses, and why they do not reproduce published tables: for that, the 8-bit reference mode
(``classical.reference_mode``) rounds to 8 bits and converts to grey as MATLAB does.
``classical.get(name, mode="float")`` returns these, jitted; to jit ``psnr`` or ``ssim`` with a
non-default option, mark it static (``jax.jit(ssim, static_argnames="downsample")``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from birqa_jax import imageops
from birqa_jax.imageops import (
    box_downsample,
    local_moments,
    luma,
    matlab_downsample_factor,
    ssim_from_moments,
    ssim_map,
    ssim_terms,
)
from birqa_jax.inputs import check_pair

# Half-width of the 11-tap Gaussian window: the valid region drops this many pixels per border.
_SSIM_RADIUS = 5
_SSIM_WINDOW = 2 * _SSIM_RADIUS + 1

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# Smallest short side for MS-SSIM: every scale (ceil-halved 4 times) must hold one 11-px window.
MS_SSIM_MIN_SIZE = 16 * (_SSIM_WINDOW - 1) + 1  # 161: ceil(161 / 16) == 11

GMSD_T = 170.0  # stability constant for luma in [0, 255]
_PREWITT = np.array([1.0, 1.0, 1.0]) / 3.0  # smoothing taps of the Prewitt filter (/3)


def _valid_mean(x: jax.Array) -> jax.Array:
    """Mean over H, W, C of the region where the 11-tap window needs no padding: [B]."""
    r = _SSIM_RADIUS
    return jnp.mean(x[:, r:-r, r:-r, :], axis=(1, 2, 3))


def psnr(ref: jax.Array, dist: jax.Array, luma: bool = False) -> jax.Array:
    """Peak signal-to-noise ratio in dB, data range 1.

    Args:
      ref: [B, H, W, 3] float32 RGB in [0, 1].
      dist: the distorted images, of ``ref``'s shape.
      luma: compute on BT.601 Y instead of on the three RGB channels.

    Returns:
      [B] float32, higher = better. Identical images give +inf (not capped: the MSE is 0);
      callers that correlate scores must exclude such pairs.

    Raises:
      ValueError: the inputs are not float [B, H, W, 3] batches of one shape.
    """
    check_pair(ref, dist, who="psnr_y" if luma else "psnr")
    if luma:
        a, b = imageops.luma(ref), imageops.luma(dist)
    else:
        a, b = ref.astype(jnp.float32), dist.astype(jnp.float32)
    return imageops.psnr(a, b)


def ssim(ref: jax.Array, dist: jax.Array, downsample: bool = True) -> jax.Array:
    """SSIM (Wang et al. 2004) on BT.601 luma, 11-tap Gaussian window (sigma 1.5), K = (0.01, 0.03).

    Args:
      ref: [B, H, W, 3] float32 RGB in [0, 1]; at least 11 px on the short side after the
        optional downsampling.
      dist: the distorted images, of ``ref``'s shape.
      downsample: the reference MATLAB code's pre-processing (the evaluation default): an f x f
        box filter with symmetric borders, then every f-th pixel, with
        ``f = matlab_downsample_factor(H, W)`` (f = 1, a no-op, below 384 px on the short side).

    Returns:
      [B] float32 in [-1, 1], higher = better: the mean SSIM over the valid region (5-px border
      dropped). With ``downsample=False`` it equals skimage's ``structural_similarity(
      gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)`` on Y.

    Raises:
      ValueError: the inputs are not float [B, H, W, 3] batches of one shape, or the (downsampled)
        luma is smaller than the 11-px window.
    """
    check_pair(ref, dist, who="ssim")
    x, y = luma(ref), luma(dist)
    if downsample:
        f = matlab_downsample_factor(*x.shape[1:3])
        if f > 1:
            x, y = box_downsample(x, f, "symmetric"), box_downsample(y, f, "symmetric")
    if min(x.shape[1:3]) < _SSIM_WINDOW:
        raise ValueError(f"ssim: {x.shape[2]}x{x.shape[1]} (width x height) luma is smaller than the 11-px window")
    return _valid_mean(ssim_map(x, y))


def ms_ssim(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003) on BT.601 luma.

    Five scales with weights ``MS_SSIM_WEIGHTS``; between scales a 2x2 box filter (symmetric
    borders) and every second pixel, as the reference MATLAB code (odd sizes round up). At
    scales 1-4 the mean contrast-structure term cs over the valid region, at scale 5 the mean
    SSIM (luminance x cs); the score is ``prod(cs_j ** w_j) * ssim_5 ** w_5``.

    Negative means (possible for anti-correlated images) are clipped to 0 before the
    fractional powers (a ReLU), so the score is 0 rather than NaN; the gradient is undefined
    where a scale's term is exactly 0.

    Args:
      ref: [B, H, W, 3] float32 RGB in [0, 1], at least ``MS_SSIM_MIN_SIZE`` (161) px on the
        short side so that the fifth scale still holds an 11-px window.
      dist: the distorted images, of ``ref``'s shape.

    Returns:
      [B] float32 in [0, 1], higher = better.

    Raises:
      ValueError: the inputs are not float [B, H, W, 3] batches of one shape, or too small.
    """
    check_pair(ref, dist, who="ms_ssim", min_size=MS_SSIM_MIN_SIZE)
    x, y = luma(ref), luma(dist)
    score = 1.0
    for j, w in enumerate(MS_SSIM_WEIGHTS):
        moments = local_moments(x, y)
        if j < len(MS_SSIM_WEIGHTS) - 1:
            _, (cs_num, cs_den) = ssim_terms(*moments)
            term = _valid_mean(cs_num / cs_den)
            x, y = box_downsample(x, 2, "symmetric"), box_downsample(y, 2, "symmetric")
        else:
            term = _valid_mean(ssim_from_moments(*moments))
        score = score * jnp.maximum(term, 0.0) ** w
    return score


def _prewitt_magnitude(y: jax.Array) -> jax.Array:
    """|gradient| of ``y`` [B, H, W, C], Prewitt filters [1 0 -1]/3, zero borders (conv2 'same').

    The square root is guarded so that flat patches (magnitude 0) get a zero, not a NaN, gradient.
    """
    yp = jnp.pad(y, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = y.shape[1:3]

    def window(dr: int, dc: int) -> jax.Array:
        return yp[:, 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w, :]

    gx = sum(t * (window(dr, 1) - window(dr, -1)) for dr, t in zip((-1, 0, 1), _PREWITT))
    gy = sum(t * (window(1, dc) - window(-1, dc)) for dc, t in zip((-1, 0, 1), _PREWITT))
    sq = gx * gx + gy * gy
    flat = sq == 0
    return jnp.where(flat, 0.0, jnp.sqrt(jnp.where(flat, 1.0, sq)))


def gmsd(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """Gradient magnitude similarity deviation (Xue et al. 2014).

    As the authors' MATLAB code: luma scaled to [0, 255]; a 2x2 box filter with zero borders
    (``conv2(..., 'same')``) and every second pixel; Prewitt gradient magnitudes (filters
    divided by 3, zero borders); ``GMS = (2 m_r m_d + T) / (m_r^2 + m_d^2 + T)`` with T = 170;
    the score is the standard deviation of the GMS map with MATLAB ``std2``'s n - 1 normaliser.

    Args:
      ref: [B, H, W, 3] float32 RGB in [0, 1], at least 4 px on the short side.
      dist: the distorted images, of ``ref``'s shape.

    Returns:
      [B] float32 >= 0, lower = better; identical images give exactly 0.

    Raises:
      ValueError: the inputs are not float [B, H, W, 3] batches of one shape, or too small.
    """
    check_pair(ref, dist, who="gmsd", min_size=4)
    y = 255.0 * jnp.concatenate([luma(ref), luma(dist)], axis=-1)
    m = _prewitt_magnitude(box_downsample(y, 2, "constant"))
    mr, md = m[..., :1], m[..., 1:]
    # The same GMS written as 1 - (m_r - m_d)^2 / (...): exactly 1 where the magnitudes agree
    # whatever the compiler fuses (the ratio form leaves ~1e-8 under jit), and no cancellation.
    gms = 1.0 - (mr - md) ** 2 / (mr * mr + md * md + GMSD_T)
    # sqrt guarded like the Prewitt magnitude: identical images (variance 0, the optimum of a
    # loss) get a zero gradient, not NaN.
    var = jnp.var(gms, axis=(1, 2, 3), ddof=1)
    return jnp.where(var > 0, jnp.sqrt(jnp.where(var > 0, var, 1.0)), 0.0)
