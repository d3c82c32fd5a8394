"""The four BiRQA quality features, as pure jit/vmap/grad-safe functions.

Conventions: images are NHWC float32 RGB in [0, 1]; ``ref`` is the pristine reference and
``dist`` the distorted image, with identical shapes. Every feature map keeps the input's spatial
size (borders use symmetric padding, scipy's ``mode='reflect'``), so the stack can be fed to a
convolutional pyramid at full resolution.

The definitions are this project's reconstruction (docs/reconstruction.md): the paper names
the features (SSIM map, YCbCr colour difference, LBP texture, information map) but does not
publish their exact form. The image operations they are built from (colour conversion,
Gaussian moments, the SSIM terms and their constants) live in ``birqa_jax.imageops``.

Layout: every map is a plane [N, H, W] (the two lumas padded once and stacked on a leading
axis, ``imageops.padded_pair``); the feature stack is assembled on the channel axis at the end.
The soft LBP distance carries a hand-written reverse-mode rule (``jax.custom_vjp``), as the
stencils of ``imageops`` do, so forward-mode differentiation through the features is not
available.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from birqa_jax.imageops import (
    gaussian_kernel,
    pad_symmetric,
    padded_moments,
    padded_pair,
    ssim_from_moments,
    ycbcr_channel,
)

# The information map's constant C of log(1 + sigma^2 / C). Its value equals SSIM's C2 for data
# range 1 (0.03^2) but it is a constant of its own: changing SSIM's constants leaves it alone.
INFO_C = 0.03**2

# Offsets (row, col) of the 8 LBP neighbours at radius 1, in the order and rounding of
# skimage.feature.local_binary_pattern: neighbour p sits at angle 2*pi*p/8.
_LBP_OFFSETS = tuple(
    (round(-math.sin(2 * math.pi * p / 8), 5), round(math.cos(2 * math.pi * p / 8), 5))
    for p in range(8)
)


def _bilinear_taps(rp: float, cp: float) -> tuple[tuple[int, int, float], ...]:
    """``(row shift, col shift, weight)`` of the bilinear sample at offset (rp, cp), weights that
    vanish left out, in the order the neighbour's sum adds them."""
    r0, c0 = math.floor(rp), math.floor(cp)
    fr, fc = rp - r0, cp - c0
    return tuple((dr, dc, wr * wc) for dr, wr in ((r0, 1.0 - fr), (r0 + 1, fr))
                 for dc, wc in ((c0, 1.0 - fc), (c0 + 1, fc)) if abs(wr * wc) > 1e-12)


_LBP_TAPS = tuple(_bilinear_taps(rp, cp) for rp, cp in _LBP_OFFSETS)


def _window(x: jax.Array, top: int, left: int, h: int, w: int, axes: tuple[int, int]) -> jax.Array:
    """``x[top:top+h, left:left+w]`` on the two spatial ``axes``."""
    x = jax.lax.slice_in_dim(x, top, top + h, axis=axes[0])
    return jax.lax.slice_in_dim(x, left, left + w, axis=axes[1])


def _padded_neighbours(yp: jax.Array, r: int, axes: tuple[int, int] = (1, 2)) -> list[jax.Array]:
    """The 8 bilinearly sampled radius-1 neighbours of each pixel of ``yp``, padded by ``r`` >= 1
    on its spatial ``axes`` (symmetric padding: its first ring is the edge value), each of the
    unpadded size: [N, H+2r, W+2r, C] -> [N, H, W, C] with the default axes."""
    h, w = yp.shape[axes[0]] - 2 * r, yp.shape[axes[1]] - 2 * r
    out = []
    for taps in _LBP_TAPS:
        v = 0.0
        for dr, dc, wgt in taps:
            v = v + _window(yp, r + dr, r + dc, h, w, axes) * jnp.asarray(wgt, yp.dtype)
        out.append(v)
    return out


def _soft_bit(neighbour: jax.Array, centre: jax.Array, temperature: float) -> jax.Array:
    d = neighbour - centre
    if temperature == 0:
        return (d >= 0).astype(centre.dtype)
    return jax.nn.sigmoid(d / temperature)


def soft_lbp_bits(y: jax.Array, temperature: float) -> jax.Array:
    """Soft LBP bits sigmoid((neighbour_k - centre) / t): [N, H, W, C] -> [N, H, W, C, 8].

    As ``temperature`` -> 0 the bits become the hard code ``neighbour_k >= centre``; with
    ``temperature == 0`` the hard step is returned (not differentiable; for testing).
    """
    return jnp.stack([_soft_bit(v, y, temperature) for v in _padded_neighbours(pad_symmetric(y, 1), 1)], axis=-1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _padded_soft_lbp_distance(p: jax.Array, r: int, temperature: float) -> jax.Array:
    """Mean over the 8 neighbours of |soft bit of x - soft bit of y| from the planes ``p`` =
    [x, y] ([2, B, H+2r, W+2r], padded by ``r`` >= 1; the centres are the unpadded interior)
    -> [B, H, W]. The bits are summed one by one, so no stack of the 8 is materialised."""
    return _soft_lbp_distance(p, r, temperature)


def _lbp_centres(p: jax.Array, r: int) -> jax.Array:
    return _window(p, r, r, p.shape[2] - 2 * r, p.shape[3] - 2 * r, (2, 3))


def _soft_lbp_distance(p, r, temperature):
    centre = _lbp_centres(p, r)
    total = None
    for v in _padded_neighbours(p, r, (2, 3)):
        bits = _soft_bit(v, centre, temperature)
        term = jnp.abs(bits[0] - bits[1])
        total = term if total is None else total + term
    return total / 8.0


def _soft_lbp_distance_bwd(r, temperature, p, g):
    if temperature == 0:  # hard bits: a step function, zero gradient as JAX's autodiff gives
        return (jnp.zeros_like(p),)
    centre = _lbp_centres(p, r)
    h, w = centre.shape[2], centre.shape[3]
    g = g / 8.0
    g_centre, g_ring = None, None
    for taps, v in zip(_LBP_TAPS, _padded_neighbours(p, r, (2, 3))):
        bits = _soft_bit(v, centre, temperature)
        bx, by = bits[0], bits[1]
        s = jnp.where(bx - by >= 0, g, -g)  # d|d|/dd as JAX's autodiff of abs: +1 at 0
        u = jnp.stack([s * bx * (1 - bx), -s * by * (1 - by)]) / temperature
        g_centre = -u if g_centre is None else g_centre - u
        # Neighbour tap (dr, dc) read p[r + dr + i, r + dc + j]: its cotangent reaches the ring of
        # p one pixel around the centre grid as shifted reads of u zero-padded by 2.
        up = jnp.pad(u, ((0, 0), (0, 0), (2, 2), (2, 2)))
        for dr, dc, wgt in taps:
            term = _window(up, 1 - dr, 1 - dc, h + 2, w + 2, (2, 3)) * jnp.asarray(wgt, p.dtype)
            g_ring = term if g_ring is None else g_ring + term
    g_ring = g_ring + jnp.pad(g_centre, ((0, 0), (0, 0), (1, 1), (1, 1)))  # the centres, one pixel in
    return (jnp.pad(g_ring, ((0, 0), (0, 0), (r - 1, r - 1), (r - 1, r - 1))),)


_padded_soft_lbp_distance.defvjp(
    lambda p, r, temperature: (_soft_lbp_distance(p, r, temperature), p),
    _soft_lbp_distance_bwd,
)


def lbp_code(y: jax.Array) -> jax.Array:
    """Hard LBP code sum_k 2^k [neighbour_k >= centre] of ``y`` [N, H, W, C], as float."""
    bits = soft_lbp_bits(y, 0.0)
    return bits @ jnp.asarray(2.0 ** np.arange(8), y.dtype)


def information_map(v: jax.Array, c: float = INFO_C) -> jax.Array:
    """log(1 + sigma^2 / c) from a local variance ``v``; detail raises it, blur lowers it."""
    return jnp.log1p(jnp.maximum(v, 0.0) / c)


FEATURE_NAMES = ("ssim", "d_cb", "d_cr", "lbp", "info_ref", "info_dist", "y_ref", "y_dist")


@functools.partial(jax.jit, static_argnames=("lbp_temperature", "info_c", "include_luma"))
def feature_stack(
    ref: jax.Array,
    dist: jax.Array,
    lbp_temperature: float = 0.02,
    info_c: float = INFO_C,
    include_luma: bool = True,
) -> jax.Array:
    """All BiRQA features of a pair, stacked on the channel axis.

    Args:
      ref: [N, H, W, 3] float RGB in [0, 1] (computed in float32).
      dist: [N, H, W, 3], the distorted images, of ``ref``'s shape.
      lbp_temperature: temperature of the soft LBP bits (in units of luma).
      info_c: the constant C of the information map log(1 + sigma^2 / C).
      include_luma: also carry Y of the reference and of the distorted image.

    Returns:
      [N, H, W, F] float32 with channels ``FEATURE_NAMES`` (the last two only with
      ``include_luma``): SSIM map on Y, |dCb|, |dCr|, mean |soft LBP bit difference| on Y,
      information map of ref and of dist.
    """
    # The channels come from ycbcr_channel, as rgb_to_ycbcr's do: a one-ulp change of luma
    # moves the SSIM and information maps by up to ~1e-4 in flat regions (their variances are
    # divided by C2 ~ 1e-3), so the model and the public functions must round alike. Every map
    # is computed as a plane [N, H, W] (see imageops.padded_pair) and the planes are stacked once.
    ref, dist = ref.astype(jnp.float32), dist.astype(jnp.float32)
    y_r, y_d = ycbcr_channel(ref, 0), ycbcr_channel(dist, 0)  # [N, H, W] each
    taps = gaussian_kernel()
    r = len(taps) // 2
    # Both lumas padded once; the moments' filters and the LBP neighbours read the same planes.
    p = padded_pair(y_r, y_d, r)
    mx, my, vx, vy, cxy = padded_moments(p, taps)
    planes = [
        ssim_from_moments(mx, my, vx, vy, cxy),
        *(jnp.abs(ycbcr_channel(ref, k) - ycbcr_channel(dist, k)) for k in (1, 2)),
        _padded_soft_lbp_distance(p, r, lbp_temperature),
        information_map(vx, info_c),
        information_map(vy, info_c),
    ]
    if include_luma:
        planes += [y_r, y_d]
    return jnp.stack(planes, axis=-1)


def num_features(include_luma: bool = True) -> int:
    """The number of channels of ``feature_stack``: 8, or 6 without the two lumas."""
    return len(FEATURE_NAMES) if include_luma else len(FEATURE_NAMES) - 2
