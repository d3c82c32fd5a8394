"""VSI: visual saliency-induced index (Zhang, Shen & Li, IEEE TIP 2014), both modes.

As the authors' ``VSI.m``, on RGB values 0..255:

1. visual saliency of each image by SDSP (sigma_F 1.34, omega_0 0.021, sigma_D 145, sigma_C
   0.001):

   a. each RGB channel resized to 256 x 256 by MATLAB's ``imresize(., [256 256], 'bilinear')``
      (``imageops.imresize_bilinear``: triangle kernel, widened by 1 / scale when shrinking,
      mirrored borders);
   b. CIELab as the script's own ``RGB2Lab``: sRGB gamma (``v / 12.92`` up to 0.04045, else
      ``((v + 0.055) / 1.055)^2.4`` on ``v = value / 255``), the sRGB/D65 matrix
      ``[0.4124564 0.3575761 0.1804375; 0.2126729 0.7151522 0.0721750; 0.0193339 0.1191920
      0.9503041]``, divided by the D50 reference white the script uses (0.9642, 1, 0.8251),
      ``f(t) = t^(1/3)`` above 0.008856, else ``(903.3 t + 16) / 116``; ``L = 116 f_y - 16``,
      ``a = 500 (f_x - f_y)``, ``b = 200 (f_y - f_z)``;
   c. frequency prior: ``sqrt(L_g^2 + a_g^2 + b_g^2)``, each ``_g`` the channel filtered in the
      Fourier domain by the script's ``logGabor(256, 256, omega_0, sigma_F)``: frequencies
      ``(k - (fix(n / 2) + 1)) / (n - mod(n, 2))`` on a meshgrid, set to 0 where ``u^2 + v^2 >
      0.25``, ifftshifted, radius 1 at the origin, ``exp(-log(r / omega_0)^2 / (2 sigma_F^2))``
      (0 where the radius was zeroed), 0 at the origin;
   d. location prior ``exp(-((y - 128)^2 + (x - 128)^2) / sigma_D^2)``, 1-based ``y``, ``x``;
   e. colour prior ``1 - exp(-(a_n^2 + b_n^2) / sigma_C^2)``, ``a_n``, ``b_n`` the a and b
      channels min-max normalised over the image;
   f. the product of the three priors resized back to H x W (``imresize``, bilinear), then
      ``mat2gray`` (min-max to [0, 1]);

2. opponent colours ``L = 0.06 R + 0.63 G + 0.27 B``, ``M = 0.30 R + 0.04 G - 0.35 B``,
   ``N = 0.34 R - 0.60 G + 0.17 B``;
3. ``F = max(1, round(min(H, W) / 256))``; L, M, N and the two saliency maps
   ``conv2(., fspecial('average', F), 'same')`` (zero borders), then every F-th pixel;
4. gradient magnitude of L with the Scharr pair ``[3 0 -3; 10 0 -10; 3 0 -3] / 16`` (conv2
   'same', zero borders);
5. similarity maps ``(2 x y + C) / (x^2 + y^2 + C)``: ``S_VS`` of the saliency maps (C = 1.27),
   ``S_GM`` of the gradients (C = 386), ``S_M``, ``S_N`` of M and N (C = 130); VSI =
   ``sum(S_GM^0.40 S_VS real((S_M S_N)^0.020) VS_m) / sum(VS_m)`` with ``VS_m = max(VS_1, VS_2)``.
   ``real()`` of a negative ``S_M S_N`` (opposite hues) weighs that pixel by
   ``|S_M S_N|^0.02 cos(0.02 pi)``, as MATLAB's principal power does.

MATLAB's 0 / 0 cases, as MATLAB computes them: an image whose a or b channel is constant after
the resize (a flat colour, black, white) has NaN colour prior, and ``mat2gray`` turns the NaN
map into 1 everywhere (``min(NaN, 1)`` is 1), so its saliency is 1 everywhere; a constant
saliency map that is not NaN is clipped to [0, 1] by ``mat2gray`` instead of normalised; if the
weights ``VS_m`` sum to 0 the score is the plain mean of the similarity map (MATLAB: NaN; it
does not happen for the saliency maps SDSP produces). The guards that keep gradients finite
(square roots at exactly 0, divisions by those constant ranges, the cube root in its unused
branch, the 0.02 power near 0) change no value elsewhere.

One code path serves both modes; they differ only in the input: ``reference`` rounds to the
8-bit levels (``round(255 x)``, as the files hold them), ``float`` uses ``255 x`` unrounded and
is differentiable (reverse mode).

Checked against a float64 transcription of ``VSI.m`` (``tests/test_vsi.py``): within 1.1e-7
on the five TID2013 pairs of pyiqa's calibration table, where it gives 0.92442419, 0.94969149,
0.98760581, 0.95386206, 0.92720259. No MATLAB run of ``VSI.m`` on those pairs is published: the
"VSI" row of that table (0.9139, 0.9620, 0.9922, 0.9571, 0.9262), by pyiqa's own notes, comes
from the IQA-optimization PyTorch port, which runs SDSP on the full-size image (no 256 x 256
resize) with a D65 white and 0-based coordinates, and downsamples with an unpadded stride-F box;
it differs from ``VSI.m`` by up to 0.0123.

All functions take ``ref, dist: [B, H, W, 3]`` float RGB in [0, 1] (at least ``VSI_MIN_SIZE``
px on the short side) and return ``[B]`` float32 in (0, 1] (every factor of a term is at most 1
and positive), higher = better, 1 for identical images.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from birqa_jax.classical.reference_mode import to_8bit
from birqa_jax.imageops import (
    box_downsample,
    imresize_bilinear,
    matlab_downsample_factor,
    matlab_real_power,
    safe_sqrt,
    scharr_magnitude,
    similarity,
    weighted_mean_hw,
)
from birqa_jax.inputs import check_pair

C_VS, C_GM, C_CHROMA = 1.27, 386.0, 130.0
ALPHA, LAMBDA = 0.40, 0.020
SIGMA_F, OMEGA_0, SIGMA_D, SIGMA_C = 1.34, 0.021, 145.0, 0.001
SDSP_SIZE = 256  # SDSP works on a 256 x 256 resize of the image
VSI_MIN_SIZE = 8  # short side of the input (the 3x3 gradient needs a few pixels)
LAB_EPSILON, LAB_KAPPA = 0.008856, 903.3
_SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]])
_WHITE = (0.9642, 1.0, 0.8251)  # the D50 reference white of VSI.m's RGB2Lab
_OPPONENT = np.array([[0.06, 0.63, 0.27], [0.30, 0.04, -0.35], [0.34, -0.60, 0.17]])


@functools.cache
def _log_gabor(rows: int, cols: int) -> np.ndarray:
    """SDSP's ``logGabor(rows, cols, omega_0, sigma_F)`` (float64, FFT order, 0 at the origin)."""
    u1, u2 = np.meshgrid((np.arange(1, cols + 1) - (cols // 2 + 1)) / (cols - cols % 2),
                         (np.arange(1, rows + 1) - (rows // 2 + 1)) / (rows - rows % 2))
    inside = u1 * u1 + u2 * u2 <= 0.25
    radius = np.fft.ifftshift(np.sqrt(u1 * u1 + u2 * u2) * inside)
    inside = np.fft.ifftshift(inside)
    radius[0, 0] = 1.0
    lg = np.exp(-(np.log(np.where(inside, radius, 1.0) / OMEGA_0) ** 2) / (2 * SIGMA_F**2))
    lg = np.where(inside, lg, 0.0)  # MATLAB: log(0) = -Inf, exp(-Inf) = 0
    lg[0, 0] = 0.0
    return lg


@functools.cache
def _location_prior(rows: int, cols: int) -> np.ndarray:
    """``exp(-||(y, x) - (rows / 2, cols / 2)||^2 / sigma_D^2)`` on 1-based coordinates."""
    y = np.arange(1, rows + 1)[:, None] - rows / 2
    x = np.arange(1, cols + 1)[None, :] - cols / 2
    return np.exp(-(y * y + x * x) / SIGMA_D**2)


def _lab(v: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """VSI.m's ``RGB2Lab`` of RGB planes ``v`` [..., 3, h, w] (0..255): L, a, b, each [..., h, w]."""
    c = v / 255.0
    lin = jnp.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    r, g, b = lin[..., 0, :, :], lin[..., 1, :, :], lin[..., 2, :, :]
    f = []
    for row, white in zip(_SRGB_TO_XYZ, _WHITE):
        t = (r * jnp.float32(row[0]) + g * jnp.float32(row[1]) + b * jnp.float32(row[2])) / jnp.float32(white)
        above = t > LAB_EPSILON
        # The cube root only where it is used: its derivative at 0 is infinite.
        f.append(jnp.where(above, jnp.cbrt(jnp.where(above, t, 1.0)), (LAB_KAPPA * t + 16.0) / 116.0))
    fx, fy, fz = f
    return 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)


def _min_max(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-image minimum and range of [B, h, w], each [B, 1, 1]."""
    lo = jnp.min(x, axis=(1, 2), keepdims=True)
    return lo, jnp.max(x, axis=(1, 2), keepdims=True) - lo


def saliency(v: jax.Array) -> jax.Array:
    """SDSP's visual saliency of RGB images ``v`` [B, H, W, 3] (0..255): [B, H, W] in [0, 1]."""
    h, w = v.shape[1:3]
    small = imresize_bilinear(jnp.moveaxis(v, 3, 1), (SDSP_SIZE, SDSP_SIZE))  # [B, 3, 256, 256]
    lab = jnp.stack(_lab(small), axis=1)
    lg = _log_gabor(SDSP_SIZE, SDSP_SIZE)
    # The log-Gabor is real and even (lg[k] = lg[-k]), so the product keeps the spectrum Hermitian
    # and real(ifft2(fft2(x) lg)) is the inverse real FFT of the half spectrum.
    half = jnp.asarray(lg[:, : SDSP_SIZE // 2 + 1], jnp.float32)
    band = jnp.fft.irfft2(jnp.fft.rfft2(lab) * half, s=(SDSP_SIZE, SDSP_SIZE))
    frequency = safe_sqrt(jnp.sum(band * band, axis=1))
    location = jnp.asarray(_location_prior(SDSP_SIZE, SDSP_SIZE), jnp.float32)
    a_lo, a_range = _min_max(lab[:, 1])
    b_lo, b_range = _min_max(lab[:, 2])
    # A constant a or b channel is 0 / 0 = NaN in MATLAB, and mat2gray makes the NaN map all 1.
    nan_map = (a_range == 0) | (b_range == 0)
    a_n = (lab[:, 1] - a_lo) / jnp.where(nan_map, 1.0, a_range)
    b_n = (lab[:, 2] - b_lo) / jnp.where(nan_map, 1.0, b_range)
    colour = 1.0 - jnp.exp(-(a_n * a_n + b_n * b_n) / SIGMA_C**2)
    vs = imresize_bilinear(frequency * location * colour, (h, w))
    lo, span = _min_max(vs)
    flat = span == 0  # mat2gray of a constant map: the values themselves, clipped to [0, 1]
    vs = jnp.where(flat, jnp.clip(vs, 0.0, 1.0), (vs - lo) / jnp.where(flat, 1.0, span))
    return jnp.where(nan_map, 1.0, vs)


def vsi_from_rgb255(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """VSI of VSI.m on RGB values 0..255 ``ref, dist`` [B, H, W, 3]: [B] float32."""
    b = ref.shape[0]
    v = jnp.concatenate([ref, dist], axis=0)
    vs = saliency(v)
    opponent = [sum(v[..., c] * jnp.float32(m[c]) for c in range(3)) for m in _OPPONENT]
    planes = jnp.stack([*opponent, vs], axis=-1)  # [2B, H, W, 4]: L, M, N, VS
    f = matlab_downsample_factor(*ref.shape[1:3])
    if f > 1:
        planes = box_downsample(planes, f, "constant")
    lum, m, n, vs = (planes[..., i] for i in range(4))
    grad = scharr_magnitude(lum)
    weight = jnp.maximum(vs[:b], vs[b:])
    sim = similarity(grad[:b], grad[b:], C_GM) ** ALPHA * similarity(vs[:b], vs[b:], C_VS)
    chroma = similarity(m[:b], m[b:], C_CHROMA) * similarity(n[:b], n[b:], C_CHROMA)
    # MATLAB's real((S_M S_N)^0.02): a negative product weighs by |.|^0.02 cos(0.02 pi).
    return weighted_mean_hw(sim * matlab_real_power(chroma, LAMBDA), weight)


def vsi_reference(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """VSI of VSI.m on the 8-bit RGB images (not differentiable).

    Args:
      ref: [B, H, W, 3] float RGB in [0, 1], at least ``VSI_MIN_SIZE`` px on the short side.
      dist: the distorted images, the same shape.
    Returns [B] float32, higher = better; 1 for identical images.
    """
    check_pair(ref, dist, who="vsi", min_size=VSI_MIN_SIZE)
    return vsi_from_rgb255(to_8bit(ref), to_8bit(dist))


def vsi(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """Differentiable VSI: VSI.m on ``255 x`` unrounded RGB. [B] float32, higher = better.

    Equal to :func:`vsi_reference` up to float32 rounding on 8-bit inputs. The minima and maxima
    of the saliency (the a/b normalisation, ``mat2gray``) pass their derivative to the one pixel
    that attains them.

    Args:
      ref: [B, H, W, 3] float RGB in [0, 1], at least ``VSI_MIN_SIZE`` px on the short side.
      dist: the distorted images, the same shape.
    Returns [B] float32, higher = better; 1 for identical images.
    """
    check_pair(ref, dist, who="vsi", min_size=VSI_MIN_SIZE)
    return vsi_from_rgb255(255.0 * ref.astype(jnp.float32), 255.0 * dist.astype(jnp.float32))
