"""The four BiRQA quality features, as pure jit/vmap/grad-safe functions.

Conventions: images are NHWC float32 RGB in [0, 1]; ``ref`` is the pristine reference and
``dist`` the distorted image, with identical shapes. Every feature map keeps the input's spatial
size (borders use symmetric padding, scipy's ``mode='reflect'``), so the stack can be fed to a
convolutional pyramid at full resolution.

The definitions are this project's reconstruction (see the README): the paper names
the features (SSIM map, YCbCr colour difference, LBP texture, information map) but does not
publish their exact form.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

# ITU-R BT.601 full-range (JPEG) RGB -> YCbCr, for values in [0, 1]; chroma offset 0.5.
_YCBCR_MATRIX = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.168735892, -0.331264108, 0.5],
        [0.5, -0.418687589, -0.081312411],
    ],
    dtype=np.float64,
)
_YCBCR_OFFSET = np.array([0.0, 0.5, 0.5], dtype=np.float64)

SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2

# Offsets (row, col) of the 8 LBP neighbours at radius 1, in the order and rounding of
# skimage.feature.local_binary_pattern: neighbour p sits at angle 2*pi*p/8.
_LBP_OFFSETS = tuple(
    (round(-math.sin(2 * math.pi * p / 8), 5), round(math.cos(2 * math.pi * p / 8), 5))
    for p in range(8)
)


def rgb_to_ycbcr(rgb: jax.Array) -> jax.Array:
    """BT.601 full-range YCbCr. ``rgb``: [..., 3] in [0, 1] -> [..., 3], Y in [0, 1], Cb/Cr in [0, 1]."""
    m = jnp.asarray(_YCBCR_MATRIX, rgb.dtype)
    return rgb @ m.T + jnp.asarray(_YCBCR_OFFSET, rgb.dtype)


def gaussian_kernel(sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
    """Normalised 1-D Gaussian taps, radius ``int(truncate * sigma + 0.5)`` as scipy.ndimage."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _filter_axis(x: jax.Array, taps: np.ndarray, axis: int) -> jax.Array:
    """Correlate ``x`` with symmetric ``taps`` along ``axis`` as a sum of shifted slices.

    XLA fuses the shifted adds into one loop over the output.
    """
    r = len(taps) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    xp = jnp.pad(x, pad, mode="symmetric")
    n = x.shape[axis]
    out = None
    for i, w in enumerate(taps):
        term = jax.lax.slice_in_dim(xp, i, i + n, axis=axis) * jnp.asarray(w, x.dtype)
        out = term if out is None else out + term
    return out


def gaussian_filter(x: jax.Array, sigma: float = 1.5, truncate: float = 3.5) -> jax.Array:
    """Separable Gaussian blur of ``x`` [N, H, W, C] over H and W (scipy ``mode='reflect'``)."""
    taps = gaussian_kernel(sigma, truncate)
    return _filter_axis(_filter_axis(x, taps, 1), taps, 2)


def local_moments(x: jax.Array, y: jax.Array, sigma: float = 1.5):
    """Gaussian-weighted local means, variances and covariance of ``x`` and ``y`` [N, H, W, C].

    Population (not sample) statistics, as ``use_sample_covariance=False`` in skimage. All five
    filters run in one call on a stacked tensor so XLA shares the padding and the loop.
    """
    c = x.shape[-1]
    # Centring on 0.5 (moments are shift-invariant) shrinks the float32 cancellation in
    # E[x^2] - E[x]^2 about fourfold for images in [0, 1].
    xs, ys = x - 0.5, y - 0.5
    stacked = jnp.concatenate([xs, ys, xs * xs, ys * ys, xs * ys], axis=-1)
    f = gaussian_filter(stacked, sigma)
    mx, my, mxx, myy, mxy = (f[..., i * c : (i + 1) * c] for i in range(5))
    vx = mxx - mx * mx
    vy = myy - my * my
    cxy = mxy - mx * my
    return mx + 0.5, my + 0.5, vx, vy, cxy


def ssim_map(x: jax.Array, y: jax.Array, sigma: float = 1.5) -> jax.Array:
    """Per-pixel SSIM of ``x`` and ``y`` [N, H, W, C] in [0, 1] (data range 1), same shape.

    Its mean over ``[5:-5, 5:-5]`` equals ``skimage.metrics.structural_similarity(x, y,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``.
    """
    return ssim_from_moments(*local_moments(x, y, sigma))


def ssim_terms(mx, my, vx, vy, cxy):
    """SSIM's luminance and contrast-structure terms from the ``local_moments``, each as
    ``(numerator, denominator)``: ``l = (2 mx my + C1) / (mx^2 + my^2 + C1)`` and ``cs = (2 cxy
    + C2) / (vx + vy + C2)``. MS-SSIM uses ``cs`` alone at its finer scales."""
    return (2 * mx * my + SSIM_C1, mx * mx + my * my + SSIM_C1), (2 * cxy + SSIM_C2, vx + vy + SSIM_C2)


def ssim_from_moments(mx, my, vx, vy, cxy) -> jax.Array:
    """The SSIM map ``l * cs`` from the ``local_moments`` (one division)."""
    (ln, ld), (cn, cd) = ssim_terms(mx, my, vx, vy, cxy)
    return (ln * cn) / (ld * cd)


def _shift(xp: jax.Array, dr: int, dc: int, h: int, w: int) -> jax.Array:
    """Window of the 1-padded image ``xp`` [N, H+2, W+2, C] at offset (dr, dc) from the centre."""
    return xp[:, 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w, :]


def lbp_neighbours(y: jax.Array) -> jax.Array:
    """Bilinearly sampled radius-1 neighbours of each pixel: [N, H, W, C] -> [N, H, W, C, 8].

    Sampling positions, order and interpolation follow skimage's ``local_binary_pattern`` with
    P=8, R=1; borders use edge padding (skimage pads with zeros, which invents texture).
    """
    n, h, w, c = y.shape
    yp = jnp.pad(y, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    out = []
    for rp, cp in _LBP_OFFSETS:
        r0, c0 = math.floor(rp), math.floor(cp)
        fr, fc = rp - r0, cp - c0
        v = 0.0
        for dr, wr in ((r0, 1.0 - fr), (r0 + 1, fr)):
            for dc, wc in ((c0, 1.0 - fc), (c0 + 1, fc)):
                wgt = wr * wc
                if abs(wgt) > 1e-12:
                    v = v + _shift(yp, dr, dc, h, w) * jnp.asarray(wgt, y.dtype)
        out.append(v)
    return jnp.stack(out, axis=-1)


def soft_lbp_bits(y: jax.Array, temperature: float) -> jax.Array:
    """Soft LBP bits sigmoid((neighbour_k - centre) / t): [N, H, W, C] -> [N, H, W, C, 8].

    As ``temperature`` -> 0 the bits become the hard code ``neighbour_k >= centre``; with
    ``temperature == 0`` the hard step is returned (not differentiable; for testing).
    """
    d = lbp_neighbours(y) - y[..., None]
    if temperature == 0:
        return (d >= 0).astype(y.dtype)
    return jax.nn.sigmoid(d / temperature)


def lbp_code(y: jax.Array) -> jax.Array:
    """Hard LBP code sum_k 2^k [neighbour_k >= centre] of ``y`` [N, H, W, C], as float."""
    bits = soft_lbp_bits(y, 0.0)
    return bits @ jnp.asarray(2.0 ** np.arange(8), y.dtype)


def information_map(v: jax.Array, c: float = SSIM_C2) -> jax.Array:
    """log(1 + sigma^2 / c) from a local variance ``v``; detail raises it, blur lowers it."""
    return jnp.log1p(jnp.maximum(v, 0.0) / c)


FEATURE_NAMES = ("ssim", "d_cb", "d_cr", "lbp", "info_ref", "info_dist", "y_ref", "y_dist")


@functools.partial(jax.jit, static_argnames=("lbp_temperature", "info_c", "include_luma"))
def feature_stack(
    ref: jax.Array,
    dist: jax.Array,
    lbp_temperature: float = 0.02,
    info_c: float = SSIM_C2,
    include_luma: bool = True,
) -> jax.Array:
    """All BiRQA features of a pair, stacked on the channel axis.

    Args:
      ref, dist: [N, H, W, 3] float32 RGB in [0, 1].
      lbp_temperature: temperature of the soft LBP bits (in units of luma).
      info_c: the constant C of the information map log(1 + sigma^2 / C).
      include_luma: also carry Y of the reference and of the distorted image.

    Returns:
      [N, H, W, F] float32 with channels ``FEATURE_NAMES`` (the last two only with
      ``include_luma``): SSIM map on Y, |dCb|, |dCr|, mean |soft LBP bit difference| on Y,
      information map of ref and of dist.
    """
    ycc_r = rgb_to_ycbcr(ref.astype(jnp.float32))
    ycc_d = rgb_to_ycbcr(dist.astype(jnp.float32))
    y_r, y_d = ycc_r[..., :1], ycc_d[..., :1]

    moments = local_moments(y_r, y_d)
    vx, vy = moments[2], moments[3]
    chroma = jnp.abs(ycc_r[..., 1:] - ycc_d[..., 1:])
    lbp = jnp.mean(
        jnp.abs(soft_lbp_bits(y_r, lbp_temperature) - soft_lbp_bits(y_d, lbp_temperature)),
        axis=-1,
    )
    feats = [ssim_from_moments(*moments), chroma, lbp, information_map(vx, info_c), information_map(vy, info_c)]
    if include_luma:
        feats += [y_r, y_d]
    return jnp.concatenate(feats, axis=-1)


def num_features(include_luma: bool = True) -> int:
    return len(FEATURE_NAMES) if include_luma else len(FEATURE_NAMES) - 2
