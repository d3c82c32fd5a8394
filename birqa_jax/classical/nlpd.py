"""NLPD: normalised Laplacian pyramid distance (Laparra, Balle, Berardino & Simoncelli 2016).

As the authors' ``NLP_dist.m`` (``laplacian_pyramid_s.m`` and ``DN_filters.m``), on grey values
in [0, 1]:

1. A Laplacian pyramid of 6 levels with the 5-tap binomial-like filter ``[.05 .25 .4 .25 .05]``
   (outer product): down = ``imfilter(J, f, 'symmetric')`` then every second pixel from the
   first; up = the coarse image padded by one replicated pixel, zero-inserted (x4), filtered with
   zero borders and cropped to the finer size; band = ``J - up``. The 6th level is the lowpass
   residual.
2. Divisive normalisation of every level: ``band / (sigma + conv2(|band|, F, 'same'))`` with the
   published 3x3 neighbour weights F and constants sigma of each level.
3. NLPD = the mean over the 6 levels of the root-mean-square difference of the normalised
   coefficients.

``reference`` runs on MATLAB ``rgb2gray`` of the 8-bit images divided by 255; ``float`` on
unrounded BT.601 luma in [0, 1], differentiable. Inputs ``[B, H, W, 3]`` float RGB in [0, 1]
with at least ``NLPD_MIN_SIZE`` px on the short side; ``[B]`` float32 >= 0, **lower = better**,
0 for identical images.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from birqa_jax.classical.reference_mode import gray_8bit
from birqa_jax.imageops import luma
from birqa_jax.inputs import check_pair

LEVELS = 6
_TAPS = (0.05, 0.25, 0.4, 0.25, 0.05)
# DN_filters.m: per level the 3x3 weights of the neighbours' amplitudes (conv2, so applied
# rotated by 180 degrees) and the constant sigma.
DN_SIGMAS = (0.0248, 0.0185, 0.0179, 0.0191, 0.0220, 0.2782)
DN_FILTERS = (
    ((0.0, 0.1011, 0.0), (0.1493, 0.0, 0.1460), (0.0, 0.1015, 0.0)),
    ((0.0, 0.0757, 0.0), (0.1986, 0.0, 0.1846), (0.0, 0.0837, 0.0)),
    ((0.0, 0.0477, 0.0), (0.2138, 0.0, 0.2243), (0.0, 0.0467, 0.0)),
    ((0.0, 0.0, 0.0), (0.2503, 0.0, 0.2616), (0.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (0.2598, 0.0, 0.2552), (0.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (0.2215, 0.0, 0.0717), (0.0, 0.0, 0.0)),
)
# Five halvings leave the residual at least 2 px (the 3x3 normalisation and the replicate
# padding of the upsampling need one neighbour).
NLPD_MIN_SIZE = 2 ** (LEVELS - 1) + 1  # 33


def _filter(x: jax.Array, mode: str) -> jax.Array:
    """``imfilter(x, f' * f, mode, 'same')`` on planes [N, H, W] ('symmetric' or zero borders)."""
    pad = ((0, 0), (2, 2), (2, 2))
    xp = jnp.pad(x, pad, mode="symmetric") if mode == "symmetric" else jnp.pad(x, pad)
    h, w = x.shape[1:]
    rows = sum(t * xp[:, i : i + h, :] for i, t in enumerate(_TAPS))
    return sum(t * rows[:, :, i : i + w] for i, t in enumerate(_TAPS))


def _upsample(small: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """``laplacian_pyramid_s``'s upsample of [N, h, w] to ``shape`` (H, W) = (2h - odd, 2w - odd)."""
    p = jnp.pad(small, ((0, 0), (1, 1), (1, 1)), mode="edge")
    n, hp, wp = p.shape
    r = jnp.zeros((n, 2 * hp, 2 * wp), p.dtype).at[:, ::2, ::2].set(4.0 * p)
    r = _filter(r, "zeros")
    return r[:, 2 : 2 + shape[0], 2 : 2 + shape[1]]


def _normalise(band: jax.Array, level: int) -> jax.Array:
    """``band / (sigma + conv2(|band|, F, 'same'))`` of one level [N, H, W]."""
    f = np.array(DN_FILTERS[level])[::-1, ::-1]  # conv2 turns the kernel round
    a = jnp.pad(jnp.abs(band), ((0, 0), (1, 1), (1, 1)))
    h, w = band.shape[1:]
    amp = sum(f[i, j] * a[:, i : i + h, j : j + w] for i in range(3) for j in range(3) if f[i, j])
    return band / (DN_SIGMAS[level] + amp)


def _pyramid(y: jax.Array) -> list[jax.Array]:
    """The normalised Laplacian pyramid of grey planes [N, H, W]: 6 levels, finest first."""
    out = []
    j = y
    for level in range(LEVELS - 1):
        small = _filter(j, "symmetric")[:, ::2, ::2]
        out.append(_normalise(j - _upsample(small, j.shape[1:]), level))
        j = small
    out.append(_normalise(j, LEVELS - 1))
    return out


def nlpd_from_grey(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """``NLP_dist`` of grey planes ``ref, dist`` [B, H, W] in [0, 1]: [B] float32.

    The root of each level's mean square has a zero (not NaN) derivative where the level is
    identical in both images.
    """
    b = ref.shape[0]
    levels = _pyramid(jnp.concatenate([ref, dist], axis=0))
    total = 0.0
    for z in levels:
        ms = jnp.mean((z[:b] - z[b:]) ** 2, axis=(1, 2))
        pos = ms > 0
        total = total + jnp.where(pos, jnp.sqrt(jnp.where(pos, ms, 1.0)), 0.0)
    return total / LEVELS


def nlpd_reference(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """NLPD as ``NLP_dist.m`` on the 8-bit ``rgb2gray`` images / 255 (not differentiable).

    Args:
      ref: [B, H, W, 3] float RGB in [0, 1], at least ``NLPD_MIN_SIZE`` (33) px on the short side.
      dist: the distorted images, of ``ref``'s shape.

    Returns:
      [B] float32 >= 0, lower = better; 0 for identical 8-bit images.

    Raises:
      ValueError: the inputs are not float [B, H, W, 3] batches of one shape, or too small.
    """
    check_pair(ref, dist, who="nlpd", min_size=NLPD_MIN_SIZE)
    return nlpd_from_grey(gray_8bit(ref)[..., 0] / 255.0, gray_8bit(dist)[..., 0] / 255.0)


def nlpd(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """Differentiable NLPD: the same algorithm on unrounded BT.601 luma in [0, 1].

    Args:
      ref: [B, H, W, 3] float32 RGB in [0, 1], at least ``NLPD_MIN_SIZE`` (33) px on the short
        side.
      dist: the distorted images, of ``ref``'s shape.

    Returns:
      [B] float32 >= 0, lower = better; 0 for identical images.

    Raises:
      ValueError: the inputs are not float [B, H, W, 3] batches of one shape, or too small.
    """
    check_pair(ref, dist, who="nlpd", min_size=NLPD_MIN_SIZE)
    return nlpd_from_grey(luma(ref)[..., 0], luma(dist)[..., 0])
