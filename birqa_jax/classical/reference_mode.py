"""The 8-bit reference mode: PSNR, SSIM, MS-SSIM and GMSD as the published MATLAB code computes them.

Published tables of these baselines (TID2013, KADID-10k, LIVE, CSIQ, and the values the
PyTorch toolboxes calibrate against) come from the authors' MATLAB scripts run on the 8-bit
files. To land on those numbers every step has to match, so each function here:

1. returns the input to its 8-bit levels: ``v = round(255 x)`` (the images came from 8-bit
   files, so this undoes the division by 255 exactly; other inputs are quantised to 8 bits);
2. converts to grey as MATLAB's ``rgb2gray`` does on a uint8 image (:func:`rgb2gray`): luma
   ``0.298936021293775 R + 0.587043074451121 G + 0.114020904255103 B`` rounded to an integer
   (half away from zero) -- PSNR on RGB skips this step;
3. runs the reference algorithm on those 0..255 values.

Checked against the MATLAB values that pyiqa publishes for five TID2013 pairs
(``ResultsCalibra/results_original.csv``): PSNR, SSIM and GMSD agree to every digit published
(GMSD, printed to 15 digits, to 1e-7 relative here and 1e-13 in the tests' float64
transcription); MS-SSIM agrees on three pairs and differs by 0.003 and 0.004 on the other two,
where pyiqa's own implementation differs by the same amounts (see :func:`ms_ssim`).

Every function is jit/vmap-compatible, ``(ref, dist) -> [B]`` on ``ref, dist: [B, H, W, 3]``
float RGB in [0, 1]; none is differentiable (the rounding has a zero gradient): the float
functions in ``classical.float_mode`` are the ones for losses. Computation is float32 (int32 for
GMSD's gradients); against a float64 transcription of the MATLAB code the scores agree to
about 1e-6 (tested to 1e-5).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from birqa_jax.classical.float_mode import (
    GMSD_T,
    MS_SSIM_MIN_SIZE,
    MS_SSIM_WEIGHTS,
)
from birqa_jax.imageops import SSIM_K1, SSIM_K2, box_downsample, gaussian_kernel, matlab_downsample_factor
from birqa_jax.inputs import check_pair

__all__ = [
    "PEAK", "RGB2GRAY_COEFFS", "gmsd", "gray_8bit", "ms_ssim", "psnr", "psnr_y", "rgb2gray", "ssim", "to_8bit",
]

# MATLAB rgb2gray: the first row of inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703]) (NTSC
# YIQ -> RGB), not BT.601's rounded 0.299 / 0.587 / 0.114.
RGB2GRAY_COEFFS = (0.298936021293775, 0.587043074451121, 0.114020904255103)
PEAK = 255.0  # L, the dynamic range of 8-bit images
SSIM_WINDOW = 11  # fspecial('gaussian', 11, 1.5)
SSIM_SIGMA = 1.5


def _split_coefficient(c: float) -> tuple[float, float]:
    """``c = hi + lo`` with ``hi`` a multiple of 2^-15 (so ``hi * v`` for an 8-bit ``v`` and the sum
    of three such products are exact in float32) and ``lo`` the small rest (|lo| <= 2^-16)."""
    hi = round(c * 2**15) / 2**15
    return hi, c - hi


_GRAY_HI, _GRAY_LO = zip(*(_split_coefficient(c) for c in RGB2GRAY_COEFFS))


def to_8bit(x: jax.Array) -> jax.Array:
    """The 8-bit levels of ``x`` in [0, 1]: ``round(255 x)`` as float32 integers 0..255.

    Values outside [0, 1] saturate at 0 and 255 and NaN becomes 0, as MATLAB's ``im2uint8``
    does: XLA's float-to-uint8 conversion saturates. (A ``clip`` instead kept this step out of
    the fusion that consumes it on the CPU: PSNR at 1080p took 5x as long.)
    """
    return jnp.round(x.astype(jnp.float32) * PEAK).astype(jnp.uint8).astype(jnp.float32)


def rgb2gray(v: jax.Array) -> jax.Array:
    """MATLAB ``rgb2gray`` of 8-bit RGB levels: ``v`` [..., 3] (integers 0..255, any float dtype)
    -> [..., 1] float32 integers 0..255, bit for bit.

    MATLAB forms the weighted sum in float64 and rounds half away from zero. In float32 the plain
    sum rounds 42 of the 2^24 colours to the wrong integer (the closest colour to a tie,
    (246, 197, 108), is 201.5000046), so the sum is split: the coefficients' leading 15 bits give
    an exact float32 sum ``h``, the remainder a correction ``l`` with an error near 1e-9; the
    result is ``floor(h) + [frac(h) - 0.5 + l >= 0]``, exact for every colour (tested on all).
    """
    v = v.astype(jnp.float32)
    channels = [v[..., i : i + 1] for i in range(3)]
    h = sum(c * jnp.float32(w) for c, w in zip(channels, _GRAY_HI))
    lo = sum(c * jnp.float32(w) for c, w in zip(channels, _GRAY_LO))
    base = jnp.floor(h)
    return base + ((h - base - 0.5) + lo >= 0).astype(jnp.float32)


def gray_8bit(x: jax.Array) -> jax.Array:
    """[B, H, W, 3] in [0, 1] -> the 8-bit MATLAB grey image [B, H, W, 1] (float32 0..255)."""
    return rgb2gray(to_8bit(x))


def _mean_hw(x: jax.Array) -> jax.Array:
    """Mean of [B, h, w, 1] over h and w: [B] (row means first, which keeps float32 sums short)."""
    return jnp.mean(jnp.mean(x[..., 0], axis=2), axis=1)


def psnr(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """PSNR of the 8-bit RGB images, as MATLAB's ``psnr(A, ref)`` and skimage's
    ``peak_signal_noise_ratio`` compute it on uint8 RGB arrays.

    ``10 log10(255^2 / MSE)`` with the MSE over all pixels and all three channels (no grey
    conversion: the published PSNR columns are on RGB). [B] float32 dB, higher = better;
    identical 8-bit images give +inf.
    """
    check_pair(ref, dist, who="psnr")
    d = to_8bit(ref) - to_8bit(dist)
    mse = jnp.mean(jnp.mean(d * d, axis=(2, 3)), axis=1)
    return 10.0 * jnp.log10(PEAK * PEAK / mse)


def psnr_y(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """PSNR of the 8-bit ``rgb2gray`` images (peak 255): [B] float32 dB, +inf when they are equal."""
    check_pair(ref, dist, who="psnr_y")
    d = gray_8bit(ref) - gray_8bit(dist)
    return 10.0 * jnp.log10(PEAK * PEAK / _mean_hw(d * d))


def _filter_valid(x: jax.Array) -> jax.Array:
    """``filter2(fspecial('gaussian', 11, 1.5), x, 'valid')`` on [B, H, W, C]: [B, H-10, W-10, C].

    The 2-D window is the outer product of the normalised 1-D taps, so two 1-D passes of shifted
    slices give the same weights as the 11x11 window (no padding, only windows inside the image).
    """
    taps = gaussian_kernel(SSIM_SIGMA)
    assert len(taps) == SSIM_WINDOW
    for axis in (1, 2):
        n = x.shape[axis] - SSIM_WINDOW + 1
        x = sum(jax.lax.slice_in_dim(x, i, i + n, axis=axis) * jnp.float32(w) for i, w in enumerate(taps))
    return x


def _ssim_maps(x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Wang's ``ssim_index_new`` on 0..255 grey images [B, H, W, 1]: the 'valid' SSIM map and the
    contrast-structure map cs, each [B, H-10, W-10, 1]."""
    c1, c2 = (SSIM_K1 * PEAK) ** 2, (SSIM_K2 * PEAK) ** 2
    # Moments are shift-invariant: centring the 0..255 values on 128 shrinks the float32
    # cancellation in E[x^2] - E[x]^2 about fourfold.
    xs, ys = x - 128.0, y - 128.0
    f = _filter_valid(jnp.concatenate([xs, ys, xs * xs, ys * ys, xs * ys], axis=-1))
    mx, my, mxx, myy, mxy = (f[..., i : i + 1] for i in range(5))
    vx, vy, cxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    mx, my = mx + 128.0, my + 128.0
    cs = (2.0 * cxy + c2) / (vx + vy + c2)
    lum = (2.0 * mx * my + c1) / (mx * mx + my * my + c1)
    return lum * cs, cs


def ssim(ref: jax.Array, dist: jax.Array, downsample: bool = False) -> jax.Array:
    """SSIM as Wang's ``ssim_index.m`` on the 8-bit ``rgb2gray`` images.

    11x11 Gaussian window (sigma 1.5), K = (0.01, 0.03), L = 255, 'valid' filtering (only
    windows that fit inside the image), the score is the mean of the valid SSIM map. By default
    without the automatic downsampling of the later ``ssim.m``: the published tables (and
    pyiqa's MATLAB calibration) use ``ssim_index.m``, which has none.

    Args:
      ref: [B, H, W, 3] float RGB in [0, 1], at least 11 px on the short side (after the
        downsampling, when asked for).
      dist: the distorted images, of ``ref``'s shape.
      downsample: first apply ``ssim.m``'s pre-processing (f = round(min(H, W) / 256); an f x f
        box with symmetric borders, then every f-th pixel). Static under ``jax.jit``.

    Returns:
      [B] float32, higher = better; 1 for identical 8-bit images.

    Raises:
      ValueError: the inputs are not float [B, H, W, 3] batches of one shape, or the (downsampled)
        grey image is smaller than the 11-px window.
    """
    check_pair(ref, dist, who="ssim")
    x, y = gray_8bit(ref), gray_8bit(dist)
    if downsample:
        f = matlab_downsample_factor(*x.shape[1:3])
        if f > 1:
            x, y = box_downsample(x, f, "symmetric"), box_downsample(y, f, "symmetric")
    if min(x.shape[1:3]) < SSIM_WINDOW:
        raise ValueError(f"ssim: {x.shape[2]}x{x.shape[1]} (width x height) grey image is smaller than the 11-px "
                         "window")
    return _mean_hw(_ssim_maps(x, y)[0])


def ms_ssim(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """MS-SSIM as Wang's ``msssim.m`` on the 8-bit ``rgb2gray`` images.

    Five scales. At each scale ``ssim_index_new``'s mean SSIM and mean cs over the 'valid' region
    (window, K and L as :func:`ssim`); between scales ``imfilter(img, ones(2)/4, 'symmetric',
    'same')`` then ``img(1:2:end, 1:2:end)`` (odd sizes round up). The lowpass (coarsest) scale
    is the only one whose luminance term counts: the score is
    ``prod(mcs(1:4) .^ w(1:4)) * mssim(5) ^ w(5)``, w = ``MS_SSIM_WEIGHTS`` as published (not
    renormalised), as the product form of ``msssim.m`` (the earlier ``ssim_mscale_new.m`` left
    the exponent off ``mssim(5)``).

    Where MATLAB's ``msssim.m`` departs: it returns -Inf below 176 px on the short side
    (min(M, N) / 16 < 11); this runs from 161 px (every scale still holds one window). A
    negative mean cs (anti-correlated images) makes MATLAB's result complex; here that term is
    clipped to 0, giving 0.

    The MATLAB MS-SSIM values pyiqa publishes for five TID2013 pairs are matched on three of them
    (I04, I06, I08, to 1e-4) but not on I03 and I19 (0.6700 and 0.8418 here against published
    0.6733 and 0.8462); pyiqa's own implementation gives 0.6698 and 0.8418 on them, the float64
    transcription in the tests the same as this, and no variant of the down-sampling, window,
    grey conversion or pooling tried reproduces the published pair, so those two published
    values are taken to come from a differently configured run.

    Args:
      ref: [B, H, W, 3] float RGB in [0, 1], at least ``MS_SSIM_MIN_SIZE`` (161) px on the short
        side.
      dist: the distorted images, of ``ref``'s shape.

    Returns:
      [B] float32 in [0, 1], higher = better.

    Raises:
      ValueError: the inputs are not float [B, H, W, 3] batches of one shape, or too small.
    """
    check_pair(ref, dist, who="ms_ssim", min_size=MS_SSIM_MIN_SIZE)
    x, y = gray_8bit(ref), gray_8bit(dist)
    score = 1.0
    for j, w in enumerate(MS_SSIM_WEIGHTS):
        ssim_map, cs_map = _ssim_maps(x, y)
        if j < len(MS_SSIM_WEIGHTS) - 1:
            term = _mean_hw(cs_map)
            x, y = box_downsample(x, 2, "symmetric"), box_downsample(y, 2, "symmetric")
        else:
            term = _mean_hw(ssim_map)
        score = score * jnp.maximum(term, 0.0) ** w
    return score


def _half_sums(g: jax.Array) -> jax.Array:
    """4x ``conv2(g, ones(2)/4, 'same')`` sampled at ``(1:2:end, 1:2:end)``, in int32: the sum of
    each 2x2 block starting at an even pixel, zeros beyond the image. [B, H, W] -> [B, ceil(H/2),
    ceil(W/2)]."""
    h, w = g.shape[1:3]
    g = jnp.pad(g, ((0, 0), (0, h % 2), (0, w % 2)))
    return g[:, 0::2, 0::2] + g[:, 1::2, 0::2] + g[:, 0::2, 1::2] + g[:, 1::2, 1::2]


def _prewitt_sq(s: jax.Array) -> jax.Array:
    """``12^2 |grad|^2`` of ``s / 4`` with MATLAB's Prewitt pair ``[1 0 -1; 1 0 -1; 1 0 -1] / 3``
    (conv2 'same', zero borders), from int32 block sums ``s`` [B, h, w]: exact int32 (at most
    2 * 3060^2 < 2^31)."""
    h, w = s.shape[1:3]
    p = jnp.pad(s, ((0, 0), (1, 1), (1, 1)))

    def win(dr: int, dc: int) -> jax.Array:
        return p[:, 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]

    gx = sum(win(dr, 1) - win(dr, -1) for dr in (-1, 0, 1))
    gy = sum(win(1, dc) - win(-1, dc) for dc in (-1, 0, 1))
    return gx * gx + gy * gy


def gmsd(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """GMSD as Xue et al.'s ``GMSD.m`` on the 8-bit ``rgb2gray`` images (0..255).

    ``conv2(Y, fspecial('average', 2), 'same')`` then ``(1:2:end, 1:2:end)``; Prewitt gradient
    magnitudes ``m`` with the filters divided by 3 (conv2 'same', zero borders);
    ``GMS = (2 m_r m_d + T) / (m_r^2 + m_d^2 + T)``, T = 170; the score is ``std2(GMS)`` (n - 1
    normaliser).

    Exactness: the grey levels are integers, so 4x the block means and 12x the gradients are
    integers, computed in int32 (``a = (12 m_r)^2``, ``b = (12 m_d)^2`` exactly). The deviation
    ``1 - GMS = (m_r - m_d)^2 / (m_r^2 + m_d^2 + T) = (a - b)^2 / ((sqrt a + sqrt b)^2 (a + b +
    144 T))`` then has no cancellation, and ``std2(GMS)`` is its standard deviation; so even
    near-identical pairs (GMSD ~ 5e-4) keep float32's relative precision.

    Args:
      ref: [B, H, W, 3] float RGB in [0, 1], at least 4 px on the short side.
      dist: the distorted images, of ``ref``'s shape.

    Returns:
      [B] float32 >= 0, lower = better; exactly 0 for identical 8-bit images.

    Raises:
      ValueError: the inputs are not float [B, H, W, 3] batches of one shape, or too small.
    """
    check_pair(ref, dist, who="gmsd", min_size=4)
    a, b = (_prewitt_sq(_half_sums(gray_8bit(x)[..., 0].astype(jnp.int32))) for x in (ref, dist))
    diff = (a - b).astype(jnp.float32)
    fa, fb = a.astype(jnp.float32), b.astype(jnp.float32)
    root_sum = jnp.sqrt(fa) + jnp.sqrt(fb)
    same = a == b  # includes a = b = 0, where the closed form would be 0 / 0
    den = jnp.where(same, 1.0, root_sum * root_sum * (fa + fb + 144.0 * GMSD_T))
    dev = jnp.where(same, 0.0, diff * diff / den)[..., None]
    n = dev.shape[1] * dev.shape[2]
    centred = dev - _mean_hw(dev)[:, None, None, None]
    return jnp.sqrt(_mean_hw(centred * centred) * (n / (n - 1)))

