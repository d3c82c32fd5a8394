"""MAD: Most Apparent Distortion (Larson & Chandler, J. Electronic Imaging 19(1), 2010), both modes.

As the authors' ``MAD_index.m`` (2011 release, with its C helpers ``ical_std.c`` and
``ical_stat.c``) on a grey image ``v`` with values 0..255; M x N is its size (rows x columns).

Block grid (both indices): 16 x 16 blocks whose top-left corners step by 4 pixels,
``(4a, 4b)`` for ``4a <= M - 16``, ``4b <= N - 16``; a block's statistics are written to the
4 x 4 tile at its corner, so the maps are piecewise constant on tiles. Both indices are collapsed
over the pixels ``17:end-17`` of each axis (0-based ``16 .. M - 18``, all covered by tiles), which
needs ``MAD_MIN_SIZE`` = 34 px on the short side.

d_detect, the high-quality index (``hi_index``):

1. perceived luminance ``L = k v^(2.2/3)``, k = 0.02874: the paper's display model (b = 0,
   k, gamma = 2.2) then a cube root, as the script writes it (k outside the power: the cube
   root of ``k^3 v^2.2``); the 8-bit path reads a table at ``v + 1`` in uint8 arithmetic,
   which saturates, so 255 reads the entry of 254 (kept in the reference mode);
2. CSF filtering in the Fourier domain (no padding): ``real(ifft2(ifftshift(fftshift(fft2(L))
   .* C)))`` with ``C(r, c)`` on the centred grid ``u = r - (M - 1)/2``, ``w = c - (N - 1)/2``
   (half-integer offsets for even sizes), radial frequency ``f = |u + i w| / N * 64`` (both axes
   divided by N, as the script does), ``f / s(theta)`` with ``s = 0.15 cos(4 theta) + 0.85``,
   ``C = 2.6 (0.0192 + 0.114 f) exp(-(0.114 f)^1.1)``, and 0.9809 below f = 7.8909;
3. per block: ``m`` = mean of the filtered reference, ``s_e`` = standard deviation (normaliser
   255) of the filtered difference ``dist - ref``, ``s_r`` = the smallest standard deviation
   (normaliser 63) of the 8 x 8 reference windows at the corners of this block and of its
   neighbours one step down, right and diagonal, a neighbour counting only while its corner
   ``4a + 5 < M - 15`` (columns alike);
4. ``C_ref = log(s_r / m)``, ``C_err = log(s_e / m)`` (``-inf`` where m < 0.5); the visibility
   mask is ``C_err - max(C_ref, -5)`` where positive, else 0 (slope 1, both thresholds -5);
5. ``lmse`` = mean of ``(v_ref - v_dist)^2`` over the 16 x 16 window of rows ``p - 7 .. p + 8``
   (``imfilter(.., 'symmetric', 'same', 'conv')``; on the collapsed pixels the window never
   reaches the border);
6. ``d_detect = 200 sqrt(mean((mask lmse)^2))`` over the collapsed pixels.

d_appear, the low-quality index (``lo_index``):

1. log-Gabor decomposition of ``v`` (Kovesi's ``gaborconvolve`` as the script alters it): 5
   scales of wavelength 3 x 3^s, ``sigma_f`` ratio 0.55, 4 orientations ``o pi / 4`` with
   angular sigma ``pi / 4 / 1.5``, no lowpass, radius ``sqrt(x^2 + y^2)`` on the grid
   ``(-N/2 .. N/2 - 1) / (N/2)`` by ``(-M/2 .. M/2 - 1) / (M/2)``, the filter's value at
   ``(round(M/2 + 1), round(N/2 + 1))`` set to 0; ``EO = ifft2(fft2(v) .* fftshift(filter))``;
2. per block of ``|EO|`` (256 values): standard deviation (normaliser 255), skewness and
   kurtosis (population moments; both 0 where the block is constant);
3. ``map = sum_s w_s sum_o (|d std| + 2 |d skew| + |d kurt|)`` of reference against distorted,
   ``w = (0.5, 0.75, 1, 5, 6) / 13.25`` by scale;
4. ``d_appear = sqrt(mean(map^2))`` over the collapsed pixels.

MAD = ``d_appear^(1 - alpha) d_detect^alpha``, ``alpha = 1 / (1 + beta1 d_detect^beta2)`` with
``beta1 = exp(-2.55 / 3.35)`` = 0.4671 and ``beta2 = 1 / (3.35 ln 10)`` = 0.1296 (the script's
thresholds 2.55, 3.35; the paper rounds them to 0.467 and 0.130). MAD is 0 where either index is
0 (identical images).

One code path serves both modes; they differ in the grey input: ``reference`` is ``MAD_index.m``
on the 8-bit images (MATLAB ``rgb2gray`` of ``round(255 x)``, :func:`reference_mode.gray_8bit`,
and the saturating table of step 1), ``float`` is the same on ``255 x`` unrounded BT.601 luma
with ``k v^(2.2/3)`` (the script's path for non-integer input) and is differentiable. Float32
throughout; two things keep the float32 sums close to MATLAB's float64: the CSF filter is
applied to the luminance difference itself (linear, so the same map up to rounding, without the
cancellation of two filtered images), and the block moments are taken about each block's mean.
The guards that keep gradients finite (square roots and logarithms at 0, the moments of a
constant block, the final powers at 0) change no value.

Both functions take ``ref, dist: [B, H, W, 3]`` float RGB in [0, 1] (at least ``MAD_MIN_SIZE``
px on the short side) and return ``[B]`` float32 >= 0, lower = better, 0 for identical images.
Checked against a float64 transcription of the script (the tests): 3e-6 relative at worst.
The MAD values pyiqa publishes for its five TID2013 calibration pairs are not this algorithm's:
they are its own approximation run on each RGB channel and averaged (two of those pairs are
colour distortions that score 0 on grey).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from birqa_jax.classical.reference_mode import gray_8bit
from birqa_jax.imageops import luma, safe_sqrt
from birqa_jax.inputs import check_pair

BLOCK, STEP, SUB_BLOCK = 16, 4, 8  # block side, block step (tile side), the reference's small windows
EDGE = 16  # pixels dropped at the top/left of each axis (and 17 at the bottom/right)
MAD_MIN_SIZE = 2 * EDGE + 2  # the collapsed region 16 .. M - 18 is non-empty from 34 px
K_LUM, LUM_EXPONENT = 0.02874, 2.2 / 3.0
MEAN_LUM_THRESH = 0.5  # G: blocks darker than this carry no visible distortion
C_THRESH = -5.0  # Ci_thrsh = Cd_thrsh, with slope 1
CSF_NFREQ = 32
DETECT_SCALE = 200.0
N_SCALES, N_ORIENTS = 5, 4
MIN_WAVELENGTH, MULT, SIGMA_ON_F, D_THETA_ON_SIGMA = 3.0, 3.0, 0.55, 1.5
SCALE_WEIGHTS = (0.5, 0.75, 1.0, 5.0, 6.0)
THRESH1, THRESH2 = 2.55, 3.35
BETA1 = math.exp(-THRESH1 / THRESH2)
BETA2 = 1.0 / (math.log(10.0) * THRESH2)
_LOG_FLOOR = 1e-30  # variances below this are 0 for the logarithms (changes nothing: they fall under the thresholds)
_FLAT_VAR = 1e-18  # population variance at or below which a block counts as constant (skewness = kurtosis = 0)


def _block_count(n: int) -> int:
    """Number of block corners 0, 4, ... with a whole 16-px block inside an axis of n px."""
    return (n - BLOCK) // STEP + 1


@functools.cache
def _csf(h: int, w: int) -> np.ndarray:
    """``make_csf(M, N, 32)'`` in FFT order, symmetrised for a real transform: [h, w // 2 + 1] float32.

    ``real(ifft2(F .* C))`` of a real image equals ``ifft2(F .* (C(k) + C(-k)) / 2)``, whose
    product is Hermitian, so ``irfft2(rfft2(L) * csf)`` gives the same map with half the work.
    """
    u = np.arange(h) - (h - 1) / 2.0
    v = np.arange(w) - (w - 1) / 2.0
    plane = (u[:, None] + 1j * v[None, :]) / w * (2 * CSF_NFREQ)
    radfreq = np.abs(plane) / (0.15 * np.cos(4.0 * np.angle(plane)) + 0.85)
    csf = 2.6 * (0.0192 + 0.114 * radfreq) * np.exp(-((0.114 * radfreq) ** 1.1))
    csf[radfreq < 7.8909] = 0.9809
    c = np.fft.ifftshift(csf)
    mirrored = np.roll(c[::-1, ::-1], (1, 1), axis=(0, 1))  # c(-k)
    return (0.5 * (c + mirrored))[:, : w // 2 + 1].astype(np.float32)


@functools.cache
def _gabor_filters(h: int, w: int) -> np.ndarray:
    """The 20 log-Gabor filters of ``gaborconvolve`` in FFT order, scale-major: [5 * 4, h, w] float32."""
    x = (np.arange(w) - w / 2.0) / (w / 2.0)
    y = (np.arange(h) - h / 2.0) / (h / 2.0)
    xx, yy = np.meshgrid(x, y)
    radius = np.sqrt(xx * xx + yy * yy)
    centre = (math.floor(h / 2 + 1.5) - 1, math.floor(w / 2 + 1.5) - 1)  # MATLAB round(n/2 + 1), 0-based
    radius[centre] = 1.0
    log_radius = np.log(radius)
    theta = np.arctan2(-yy, xx)
    sin_t, cos_t = np.sin(theta), np.cos(theta)
    theta_sigma = math.pi / N_ORIENTS / D_THETA_ON_SIGMA
    filters = np.empty((N_SCALES, N_ORIENTS, h, w))
    for o in range(N_ORIENTS):
        angle = o * math.pi / N_ORIENTS
        ds = sin_t * math.cos(angle) - cos_t * math.sin(angle)
        dc = cos_t * math.cos(angle) + sin_t * math.sin(angle)
        spread = np.exp(-(np.arctan2(ds, dc) ** 2) / (2.0 * theta_sigma**2))
        for s in range(N_SCALES):
            rfo = 2.0 / (MIN_WAVELENGTH * MULT**s)  # centre frequency relative to Nyquist
            log_gabor = np.exp(-((log_radius - math.log(rfo)) ** 2) / (2.0 * math.log(SIGMA_ON_F) ** 2))
            log_gabor[centre] = 0.0
            filters[s, o] = np.fft.fftshift(log_gabor * spread)
    return filters.reshape(N_SCALES * N_ORIENTS, h, w).astype(np.float32)


@functools.cache
def _neighbour_masks(n: int) -> np.ndarray:
    """Which block corners of an n-px axis take their neighbour one step on into the minimum of
    ``ical_std.c`` (``4a + 5 < n - 15``): [blocks] bool."""
    return STEP * np.arange(_block_count(n)) + 5 < n - 15


@functools.cache
def _collapse_weights(n: int) -> np.ndarray:
    """How many collapsed pixels (``16 .. n - 18``) each 4-px tile of an n-px axis holds: [blocks] float32."""
    tiles = np.arange(EDGE, n - EDGE - 1) // STEP
    return np.bincount(tiles, minlength=_block_count(n)).astype(np.float32)


def _block_moments(x: jax.Array, cells: int, order: int) -> tuple[jax.Array, list[jax.Array]]:
    """Means and central moment sums of the square blocks of ``cells`` x ``cells`` tiles (4 px
    each) at the block corners of ``x`` [..., M, N]: ``(mean, [sum (x - mean)^k, k = 2..order])``,
    each [..., A, B].

    Each tile's sums are taken about the tile's own mean (the data is read once, not once per
    overlapping block) and moved to the block's mean exactly: with ``d`` the tile mean minus the
    block mean, ``sum (x - m)^k = sum_j C(k, j) d^(k - j) S_j`` over the tile's sums ``S_j`` about
    its mean (``S_0`` = 16, ``S_1`` = 0 up to rounding). ``d`` is of the order of the block's
    spread, so no term cancels the others (as the raw power sums would in float32).
    """
    a, b = _block_count(x.shape[-2]), _block_count(x.shape[-1])
    ta, tb = a + cells - 1, b + cells - 1
    tiles = x[..., : STEP * ta, : STEP * tb].reshape(*x.shape[:-2], ta, STEP, tb, STEP)
    tile_mean = jnp.mean(tiles, axis=(-3, -1))
    dev = tiles - tile_mean[..., :, None, :, None]
    stats, power = [tile_mean], dev
    for _ in range(order):  # S_1 .. S_order
        stats.append(jnp.sum(power, axis=(-3, -1)))
        power = power * dev
    # Every tile statistic at each of the block's cells x cells tile offsets: [order + 1, cells^2, ..., A, B].
    stats = jnp.stack(stats)
    rows = jnp.stack([stats[..., i : i + a, :] for i in range(cells)], axis=1)
    at = jnp.stack([rows[..., j : j + b] for j in range(cells)], axis=2)
    at = at.reshape(order + 1, cells * cells, *x.shape[:-2], a, b)
    mean = jnp.mean(at[0], axis=0)
    d = at[0] - mean
    central = []
    for k in range(2, order + 1):
        term = STEP * STEP * d**k
        for m in range(1, k + 1):
            term = term + math.comb(k, m) * d ** (k - m) * at[m]
        central.append(jnp.sum(term, axis=0))
    return mean, central


def _log_std(var: jax.Array) -> jax.Array:
    """log(sqrt(var)), floored far below anything the thresholds let through."""
    return 0.5 * jnp.log(jnp.maximum(var, _LOG_FLOOR))


def _luminance(v: jax.Array, saturating_table: bool) -> jax.Array:
    """``k v^(2.2/3)`` of grey levels (the 8-bit table reads 254 for 255); 0 at 0 with a zero derivative there."""
    if saturating_table:
        v = jnp.minimum(v, 254.0)
    pos = v > 0
    return jnp.where(pos, K_LUM * jnp.where(pos, v, 1.0) ** LUM_EXPONENT, 0.0)


def _collapse(tiles: jax.Array, h: int, w: int) -> jax.Array:
    """``sqrt(mean(map^2))`` over the collapsed pixels of an h x w image's tile map [B, A, B']
    (piecewise constant on tiles): [B]."""
    h_w, w_w = _collapse_weights(h), _collapse_weights(w)
    weights = h_w[:, None] * w_w[None, :]
    return safe_sqrt(jnp.sum(jnp.asarray(weights) * tiles * tiles, axis=(1, 2)) / float(weights.sum()))


def detection_index(ref: jax.Array, dist: jax.Array, saturating_table: bool = False) -> jax.Array:
    """d_detect of ``hi_index`` on grey planes ``ref, dist`` [B, M, N] (0..255): [B] float32."""
    h, w = ref.shape[1:]
    csf = jnp.asarray(_csf(h, w))

    def filtered(lum: jax.Array) -> jax.Array:
        return jnp.fft.irfft2(jnp.fft.rfft2(lum) * csf, s=(h, w))

    lum_ref = _luminance(ref, saturating_table)
    lum_ref, lum_err = filtered(lum_ref), filtered(_luminance(dist, saturating_table) - lum_ref)
    mean_ref, _ = _block_moments(lum_ref, BLOCK // STEP, 1)
    var_err = _block_moments(lum_err, BLOCK // STEP, 2)[1][0] / (BLOCK * BLOCK - 1)
    var_sub = _block_moments(lum_ref, SUB_BLOCK // STEP, 2)[1][0] / (SUB_BLOCK * SUB_BLOCK - 1)
    # The smallest of the 8x8 deviations at this corner and the next corners down, right and
    # diagonal, each taken while its corner is inside the bound of ical_std.c.
    rows_ok, cols_ok = (jnp.asarray(_neighbour_masks(n)) for n in (h, w))
    inf_row = jnp.full_like(var_sub[:, :1], jnp.inf)
    down = jnp.concatenate([var_sub[:, 1:], inf_row], axis=1)
    inf_col = jnp.full_like(var_sub[:, :, :1], jnp.inf)
    right = jnp.concatenate([var_sub[:, :, 1:], inf_col], axis=2)
    diagonal = jnp.concatenate([down[:, :, 1:], inf_col], axis=2)
    var_ref = var_sub
    var_ref = jnp.where(rows_ok[:, None], jnp.minimum(var_ref, down), var_ref)
    var_ref = jnp.where(cols_ok[None, :], jnp.minimum(var_ref, right), var_ref)
    var_ref = jnp.where(rows_ok[:, None] & cols_ok[None, :], jnp.minimum(var_ref, diagonal), var_ref)
    bright = mean_ref >= MEAN_LUM_THRESH
    log_mean = jnp.log(jnp.where(bright, mean_ref, 1.0))
    contrast_ref = _log_std(var_ref) - log_mean
    contrast_err = _log_std(var_err) - log_mean
    mask = jnp.where(bright, jnp.maximum(contrast_err - jnp.maximum(contrast_ref, C_THRESH), 0.0), 0.0)
    # lmse on the collapsed pixels: the 16x16 window of rows p - 7 .. p + 8 (inside the image there).
    # Source pixels 9 .. M - 10 of each axis, 'valid' box sums as two 1-D convolutions.
    err2 = ((ref - dist) ** 2)[:, None, EDGE - 7 : h - EDGE + 7, EDGE - 7 : w - EDGE + 7]
    for kernel in ((BLOCK, 1), (1, BLOCK)):
        err2 = jax.lax.conv_general_dilated(err2, jnp.ones((1, 1, *kernel), err2.dtype), (1, 1), "VALID")
    lmse = err2[:, 0] / (BLOCK * BLOCK)
    mask_px = jnp.repeat(jnp.repeat(mask, STEP, axis=1), STEP, axis=2)[:, EDGE : h - EDGE - 1, EDGE : w - EDGE - 1]
    mp = mask_px * lmse
    return DETECT_SCALE * safe_sqrt(jnp.mean(mp * mp, axis=(1, 2)))


def _block_statistics(mag: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``ical_stat.c`` of [..., M, N]: the blocks' standard deviation (normaliser 255), skewness and
    kurtosis (population moments, 0 for a constant block), each [..., A, B]."""
    _, (s2, s3, s4) = _block_moments(mag, BLOCK // STEP, 4)
    n = BLOCK * BLOCK
    m2 = s2 / n
    flat = m2 <= _FLAT_VAR
    inv_sd = jax.lax.rsqrt(jnp.where(flat, 1.0, m2))
    inv_var = inv_sd * inv_sd
    skew = jnp.where(flat, 0.0, (s3 / n) * inv_var * inv_sd)
    kurt = jnp.where(flat, 0.0, (s4 / n) * inv_var * inv_var)
    return safe_sqrt(s2 / (n - 1)), skew, kurt


def appearance_index(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """d_appear of ``lo_index`` on grey planes ``ref, dist`` [B, M, N] (0..255): [B] float32."""
    h, w = ref.shape[1:]
    spectra = jnp.fft.fft2(jnp.stack([ref, dist]))  # [2, B, M, N], complex64 for float32 planes
    weights = np.repeat(np.asarray(SCALE_WEIGHTS) / sum(SCALE_WEIGHTS), N_ORIENTS).astype(np.float32)

    def band(total, filt_weight):
        filt, weight = filt_weight
        eo = jnp.fft.ifft2(spectra * filt)
        mag = safe_sqrt(jnp.real(eo) ** 2 + jnp.imag(eo) ** 2)
        sd, skew, kurt = _block_statistics(mag)
        diff = jnp.abs(sd[0] - sd[1]) + 2.0 * jnp.abs(skew[0] - skew[1]) + jnp.abs(kurt[0] - kurt[1])
        return total + weight * diff, None

    zero = jnp.zeros((ref.shape[0], _block_count(h), _block_count(w)), ref.dtype)
    total, _ = jax.lax.scan(band, zero, (jnp.asarray(_gabor_filters(h, w)), jnp.asarray(weights)))
    return _collapse(total, h, w)


def combine(detect: jax.Array, appear: jax.Array) -> jax.Array:
    """``appear^(1 - alpha) detect^alpha``, ``alpha = 1 / (1 + beta1 detect^beta2)``; 0 where either is 0."""
    pos = (detect > 0) & (appear > 0)
    log_d = jnp.log(jnp.where(pos, detect, 1.0))
    log_a = jnp.log(jnp.where(pos, appear, 1.0))
    alpha = 1.0 / (1.0 + BETA1 * jnp.exp(BETA2 * log_d))
    return jnp.where(pos, jnp.exp((1.0 - alpha) * log_a + alpha * log_d), 0.0)


def mad_from_grey(ref: jax.Array, dist: jax.Array, saturating_table: bool = False) -> jax.Array:
    """MAD of ``MAD_index.m`` on grey planes ``ref, dist`` [B, M, N] (0..255): [B] float32.

    ``saturating_table``: read the luminance of 255 as 254, as the script's 8-bit table does.
    """
    if min(ref.shape[1:]) < MAD_MIN_SIZE:
        raise ValueError(f"mad: {ref.shape[2]}x{ref.shape[1]} grey image is below {MAD_MIN_SIZE} px on the short side")
    return combine(detection_index(ref, dist, saturating_table), appearance_index(ref, dist))


def mad_reference(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """MAD as ``MAD_index.m`` on the 8-bit ``rgb2gray`` images (not differentiable).

    Args:
      ref: [B, H, W, 3] float RGB in [0, 1], at least ``MAD_MIN_SIZE`` (34) px on the short side.
      dist: the distorted images, as ``ref``.
    Returns [B] float32 >= 0, lower = better; 0 for identical images.
    """
    check_pair(ref, dist, who="mad", min_size=MAD_MIN_SIZE)
    return mad_from_grey(gray_8bit(ref)[..., 0], gray_8bit(dist)[..., 0], saturating_table=True)


def mad(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """Differentiable MAD: the ``MAD_index.m`` algorithm on unrounded BT.601 luma x 255.

    Args:
      ref: [B, H, W, 3] float RGB in [0, 1], at least ``MAD_MIN_SIZE`` (34) px on the short side.
      dist: the distorted images, as ``ref``.
    Returns [B] float32 >= 0, lower = better; 0 for identical images. The detection index is
    piecewise smooth: its mask switches where a block's contrast crosses a threshold or its mean
    luminance crosses 0.5, and the reference's contrast is a minimum over four windows.
    """
    check_pair(ref, dist, who="mad", min_size=MAD_MIN_SIZE)
    return mad_from_grey(255.0 * luma(ref)[..., 0], 255.0 * luma(dist)[..., 0])
