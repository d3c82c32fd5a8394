"""CW-SSIM: complex wavelet structural similarity (Sampat, Wang, Gupta, Bovik & Markey 2009).

As the authors' ``cwssim_index.m`` with the settings of the published tables (4 levels, 8
orientations, ``guardb = 0``, ``K = 0``):

1. Simoncelli's complex steerable pyramid in the Fourier domain (``buildSCFpyr(img, 4, 7)``):
   the centred DFT times the radial lowpass ``lo0``; at each level the spectrum is cropped to the
   half-size window (``lodims = ceil((dims - 0.5) / 2)``) and multiplied by the level's radial
   lowpass; the oriented bands of a level are ``ifft2`` of the spectrum times the radial highpass
   and the angular mask ``2 sqrt(c) cos(theta - pi b / 8)^7`` on one half plane. The radial and
   angular profiles are matlabPyrTools' lookup tables (``rcosFn``, 1024 steps per pi), read by
   linear interpolation (``pointOp``).
2. Only the 8 bands of the 4th level count. For each, ``c = b1 conj(b2)`` and
   ``v = |b1|^2 + |b2|^2`` are averaged over 7x7 windows ('valid'); the map
   ``2 |mean c| / mean v`` is pooled with the Gaussian ``fspecial('gaussian', size - 6, rows / 4)``;
   the score is the mean over the 8 orientations.

Everything but the two FFTs depends only on the image size: the masks are float64 numpy
constants built once per shape, and the level-4 spectrum is one crop of the full DFT times
their product.

``reference`` runs on MATLAB ``rgb2gray`` of the 8-bit images; ``float`` on unrounded BT.601
luma x 255, differentiable (the modulus and the ratio are guarded near 0, where MATLAB divides 0
by 0 for a flat image: a window without band energy in either image scores 1, one with energy in
one image only 0). Inputs ``[B, H, W, 3]`` float RGB in [0, 1] with at least ``CW_SSIM_MIN_SIZE``
px on the short side; ``[B]`` float32 in [0, 1], higher = better, 1 for identical images.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from birqa_jax.classical.reference_mode import gray_8bit
from birqa_jax.imageops import luma
from birqa_jax.inputs import check_pair

LEVELS, ORIENTS, WINDOW = 4, 8, 7
# buildSCFpyr allows floor(log2(min(H, W))) - 2 levels: 4 needs 64 px.
CW_SSIM_MIN_SIZE = 64
_LUT = 1024  # steps per pi of the angular table
# Band energy (grey levels 0..255, squared) below which a window counts as empty: the bands of a
# flat image are not exactly 0 (the lookup tables leave ~1e-30 at DC), and dividing by such
# values overflows the gradient. Bands of 8-bit images are many orders above it.
_TINY = 1e-6


def _rcos() -> tuple[np.ndarray, np.ndarray]:
    """``rcosFn(1, -1/2, [0 1])``: the raised-cosine table (positions X, values Y), flat ends."""
    sz = 256
    x = np.pi * np.arange(-sz - 1, 2) / (2 * sz)
    y = np.cos(x) ** 2
    y[0], y[sz + 2] = y[1], y[sz + 1]
    return -0.5 + (2 / np.pi) * (x + np.pi / 4), y


def _point_op(v: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``pointOp``: the table (x, y) at ``v`` by linear interpolation (clamped; the tables used
    here are flat at the ends or never read beyond them)."""
    return np.interp(v, x, y)


def _crop_start(dims: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """buildSCFpyrLevs' half-size window of a centred spectrum: (0-based start, size) per axis."""
    ctr = [math.ceil((d + 0.5) / 2) for d in dims]
    lodims = [math.ceil((d - 0.5) / 2) for d in dims]
    loctr = [math.ceil((d + 0.5) / 2) for d in lodims]
    return tuple(c - lc for c, lc in zip(ctr, loctr)), tuple(lodims)


@functools.cache
def _spectral_masks(h: int, w: int) -> tuple[tuple[slice, slice], np.ndarray, tuple[int, int]]:
    """The level-4 window of the centred DFT of an h x w image, and the 8 complete masks
    (radial lowpasses of levels 0-3, level 4's highpass, the angular mask) on it:
    ``(window slices, masks [8, h4, w4] float64, (h4, w4))``."""
    ctr = [math.ceil((d + 0.5) / 2) for d in (h, w)]  # 1-based centre
    xr, yr = np.meshgrid((np.arange(1, w + 1) - ctr[1]) / (w / 2), (np.arange(1, h + 1) - ctr[0]) / (h / 2))
    angle = np.arctan2(yr, xr)
    rad = np.sqrt(xr * xr + yr * yr)
    rad[ctr[0] - 1, ctr[1] - 1] = rad[ctr[0] - 1, ctr[1] - 2]
    log_rad = np.log2(rad)
    xrcos, yrcos = _rcos()
    yrcos = np.sqrt(yrcos)
    yircos = np.sqrt(1.0 - yrcos**2)
    mask = _point_op(log_rad, xrcos, yircos)  # lo0
    r0 = c0 = 0
    dims = (h, w)
    for level in range(1, LEVELS):  # the lowpass of levels 1..3, each on its cropped window
        (dr, dc), dims = _crop_start(dims)
        r0, c0 = r0 + dr, c0 + dc
        mask = mask[dr : dr + dims[0], dc : dc + dims[1]]
        lr = log_rad[r0 : r0 + dims[0], c0 : c0 + dims[1]]
        mask = mask * _point_op(lr, xrcos - level, yircos)
    window = (slice(r0, r0 + dims[0]), slice(c0, c0 + dims[1]))
    lr, ang = log_rad[window], angle[window]
    mask = mask * _point_op(lr, xrcos - LEVELS, yrcos)  # level 4's highpass
    order = ORIENTS - 1
    const = 2 ** (2 * order) * math.factorial(order) ** 2 / (ORIENTS * math.factorial(2 * order))
    xcosn = np.pi * np.arange(-(2 * _LUT + 1), _LUT + 2) / _LUT
    alfa = np.mod(np.pi + xcosn, 2 * np.pi) - np.pi
    ycosn = 2 * math.sqrt(const) * np.cos(xcosn) ** order * (np.abs(alfa) < np.pi / 2)
    masks = np.stack([mask * _point_op(ang, xcosn + np.pi * b / ORIENTS, ycosn) for b in range(ORIENTS)])
    return window, masks, dims


def _level4_bands(y: jax.Array) -> jax.Array:
    """The 8 oriented bands of level 4 of ``buildSCFpyr(y, 4, 7)`` for grey planes [N, H, W]:
    [N, 8, H4, W4] complex64 (without the constant factor (-i)^7, which no score sees)."""
    window, masks, _ = _spectral_masks(*y.shape[1:])
    spectrum = jnp.fft.fftshift(jnp.fft.fft2(y), axes=(-2, -1))[:, window[0], window[1]]
    banddft = spectrum[:, None] * jnp.asarray(masks, jnp.float32)
    return jnp.fft.ifft2(jnp.fft.ifftshift(banddft, axes=(-2, -1)))


def _box_valid(x: jax.Array) -> jax.Array:
    """``filter2(ones(7) / 49, x, 'valid')`` over the last two axes."""
    dims = (1,) * (x.ndim - 2) + (WINDOW, WINDOW)
    return jax.lax.reduce_window(x, 0.0, jax.lax.add, dims, (1,) * x.ndim, "VALID") / (WINDOW * WINDOW)


def _fspecial_gaussian(h: int, w: int, sigma: float) -> np.ndarray:
    """``fspecial('gaussian', [h w], sigma)``."""
    y, x = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    g = np.exp(-(x * x + y * y) / (2 * sigma**2))
    g[g < np.finfo(np.float64).eps * g.max()] = 0
    return g / g.sum()


def cw_ssim_from_grey(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """``cwssim_index(ref, dist, 4, 8, 0, 0)`` on grey planes [B, H, W] (0..255): [B] float32."""
    b = ref.shape[0]
    bands = _level4_bands(jnp.concatenate([ref, dist], axis=0))
    b1, b2 = bands[:b], bands[b:]
    corr = b1 * jnp.conj(b2)
    var = _box_valid(jnp.real(b1) ** 2 + jnp.imag(b1) ** 2 + jnp.real(b2) ** 2 + jnp.imag(b2) ** 2)
    cr, ci = _box_valid(jnp.real(corr)), _box_valid(jnp.imag(corr))
    mag2 = cr * cr + ci * ci
    has = mag2 > _TINY * _TINY
    mag = jnp.where(has, jnp.sqrt(jnp.where(has, mag2, 1.0)), 0.0)
    busy = var > _TINY
    cssim = jnp.where(busy, 2.0 * mag / jnp.where(busy, var, 1.0), 1.0)
    hs, ws = cssim.shape[-2:]
    weights = _fspecial_gaussian(hs, ws, (hs + WINDOW - 1) / 4)
    return jnp.mean(jnp.sum(cssim * jnp.asarray(weights, jnp.float32), axis=(-2, -1)), axis=1)


def cw_ssim_reference(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """CW-SSIM as ``cwssim_index.m`` (4 levels, 8 orientations, K = 0) on the 8-bit ``rgb2gray``
    images (not differentiable).

    Args:
      ref: [B, H, W, 3] float RGB in [0, 1], at least ``CW_SSIM_MIN_SIZE`` (64) px on the short
        side.
      dist: the distorted images, of ``ref``'s shape.

    Returns:
      [B] float32 in [0, 1], higher = better; 1 for identical images.

    Raises:
      ValueError: the inputs are not float [B, H, W, 3] batches of one shape, or too small.
    """
    check_pair(ref, dist, who="cw_ssim", min_size=CW_SSIM_MIN_SIZE)
    return cw_ssim_from_grey(gray_8bit(ref)[..., 0], gray_8bit(dist)[..., 0])


def cw_ssim(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """Differentiable CW-SSIM: the same algorithm on unrounded BT.601 luma x 255.

    Args:
      ref: [B, H, W, 3] float32 RGB in [0, 1], at least ``CW_SSIM_MIN_SIZE`` (64) px on the
        short side.
      dist: the distorted images, of ``ref``'s shape.

    Returns:
      [B] float32 in [0, 1], higher = better; 1 for identical images.

    Raises:
      ValueError: the inputs are not float [B, H, W, 3] batches of one shape, or too small.
    """
    check_pair(ref, dist, who="cw_ssim", min_size=CW_SSIM_MIN_SIZE)
    return cw_ssim_from_grey(255.0 * luma(ref)[..., 0], 255.0 * luma(dist)[..., 0])
