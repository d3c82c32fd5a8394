"""VIF: visual information fidelity in the wavelet domain (Sheikh & Bovik 2006), both modes.

The variant is the authors' ``vifvec.m`` (the one pyiqa calibrates and the tables report):

1. A steerable pyramid of the grey image, 4 levels x 6 orientations, with Simoncelli's ``sp5``
   filters and ``'reflect1'`` borders (reflection about the edge pixel, no repeat): the
   pre-filter ``lo0`` (5x5), then per level six 7x7 band-pass filters on the current lowpass
   and a 9x9 lowpass with every second pixel kept (from the first).
2. Eight subbands are scored: orientations 1 and 4 of each level (``subbands = [4 7 ... 25]``
   of the reversed pyramid). Each is cropped to a multiple of M = 3 in both directions.
3. Distortion channel (``vifsub_est_M.m``): box sums over a window of ``2^lev + 1`` pixels
   (3 at the coarsest level, 17 at the finest), centred on the middle pixel of every 3x3 block,
   with ``'reflect1'`` borders; ``g = cov / var_ref`` and ``vv = (ss_dist - g cov) / w^2``
   with the script's guards (``tol = 1e-15``): ``g = 0`` where either variance vanishes or
   ``g < 0`` (then ``vv`` is the distorted sum of squares), ``vv >= tol``.
4. Reference GSM (``refparams_vecgsm.m``): C, the 9x9 covariance of all overlapping 3x3 blocks
   of the reference subband, its eigenvalues ``l_j``, and per non-overlapping block
   ``s = v^T C^-1 v / 9``.
5. ``offset = ceil(((w - 1) / 2) / 3)`` blocks are dropped on each side; the score is
   ``sum log2(1 + g^2 s l_j / (vv + 0.4)) / sum log2(1 + s l_j / 0.4)`` over subbands, blocks
   and eigenvalues (``sigma_nsq = 0.4``).

``reference`` runs this on MATLAB ``rgb2gray`` of the 8-bit images (0..255), as the published
tables; ``float`` on unrounded BT.601 luma x 255, differentiable (see :func:`vif`).
Both take ``[B, H, W, 3]`` float RGB in [0, 1] with at least ``VIF_MIN_SIZE`` px on the short
side and return ``[B]`` float32, higher = better: 1 for identical images, near 0 for images that
carry no information about the reference (above 1 is possible for contrast enhancement).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from birqa_jax.classical.reference_mode import gray_8bit
from birqa_jax.imageops import luma
from birqa_jax.inputs import check_pair

M = 3  # block side of the GSM vectors
SIGMA_NSQ = 0.4  # variance of the visual noise, for grey levels 0..255
TOL = 1e-15  # vifsub_est_M.m's tolerance for a vanishing variance
LEVELS = 4
# (level from the finest = 1, orientation index 0..5) of the eight scored subbands; the window of
# the distortion-channel estimate is 2^(5 - level) + 1 (the script's lev counts from the coarsest).
SUBBANDS = tuple((level, orient) for level in (4, 3, 2, 1) for orient in (3, 0))


def _mirror(quadrant: list[list[float]]) -> np.ndarray:
    """A filter symmetric about its centre row and column from its top-left quadrant (centre
    included): [k, k] -> [2k - 1, 2k - 1]."""
    q = np.array(quadrant, dtype=np.float64)
    rows = np.concatenate([q, q[-2::-1]], axis=0)
    return np.concatenate([rows, rows[:, -2::-1]], axis=1)


# Simoncelli's sp5Filters (matlabPyrTools), the published 8 digits.
_LO0 = _mirror([
    [0.00341614, -0.01551246, -0.03848215],
    [-0.01551246, 0.05586982, 0.15925570],
    [-0.03848215, 0.15925570, 0.40304148],
])
_LO = 2.0 * _mirror([
    [0.00085404, -0.00244917, -0.00387812, -0.00944432, -0.00962054],
    [-0.00244917, -0.00523281, -0.00661117, 0.00410600, 0.01002988],
    [-0.00387812, -0.00661117, 0.01396746, 0.03277038, 0.03981393],
    [-0.00944432, 0.00410600, 0.03277038, 0.06426333, 0.08169618],
    [-0.00962054, 0.01002988, 0.03981393, 0.08169618, 0.10096540],
])
# Orientation 1 (of 6): symmetric in the rows, antisymmetric in the columns; the first three
# columns of the 7x7 filter as sp5Filters lists them (column-major), the middle one is zero.
_B1_COLUMNS = np.array([
    [0.00277643, 0.00496194, 0.01026699, 0.01455399, 0.01026699, 0.00496194, 0.00277643],
    [-0.00986904, -0.00893064, 0.01189859, 0.02755155, 0.01189859, -0.00893064, -0.00986904],
    [-0.01021852, -0.03075356, -0.08226445, -0.11732297, -0.08226445, -0.03075356, -0.01021852],
]).T
_BAND = {0: np.concatenate([_B1_COLUMNS, np.zeros((7, 1)), -_B1_COLUMNS[:, ::-1]], axis=1)}
# Orientation 4 is orientation 1 turned by 90 degrees; the order-5 steerable basis changes sign.
_BAND[3] = -_BAND[0].T


# Smallest short side: the coarsest scored subband (H / 8) must keep one 3x3 block after one
# block is dropped on each side.
VIF_MIN_SIZE = 8 * 3 * M  # 72


def _correlate(x: jax.Array, filt: np.ndarray, step: int = 1) -> jax.Array:
    """matlabPyrTools ``corrDn(x, filt, 'reflect1', [step step])`` on planes [N, H, W]:
    correlation with reflected borders (numpy 'reflect'), outputs from the first pixel with the
    given step. -> [N, ceil(H / step), ceil(W / step)]."""
    r = filt.shape[0] // 2
    xp = jnp.pad(x, ((0, 0), (r, r), (r, r)), mode="reflect")[:, None]
    k = jnp.asarray(filt, jnp.float32)[None, None]
    out = jax.lax.conv_general_dilated(xp, k, (step, step), "VALID", precision=jax.lax.Precision.HIGHEST)
    return out[:, 0]


def _subbands(y: jax.Array) -> dict[tuple[int, int], jax.Array]:
    """The scored subbands of the sp5 pyramid of grey planes ``y`` [N, H, W] (0..255)."""
    lo = _correlate(y, _LO0)
    out = {}
    for level in range(1, LEVELS + 1):
        for orient in (0, 3):
            out[level, orient] = _correlate(lo, _BAND[orient])
        lo = _correlate(lo, _LO, step=2)
    return out


def _block_sums(x: jax.Array, w: int) -> jax.Array:
    """Sums over w x w windows centred on the middle pixel of every 3x3 block of ``x`` [N, H, W]
    (H, W multiples of 3), 'reflect1' borders: ``corrDn(x, ones(w), 'reflect1', [3 3], [2 2])``.
    -> [N, H / 3, W / 3]."""
    r = w // 2
    xp = jnp.pad(x, ((0, 0), (r, r), (r, r)), mode="reflect")
    h, wd = x.shape[1:]
    xp = xp[:, M // 2 : M // 2 + h - M + w, M // 2 : M // 2 + wd - M + w]
    return jax.lax.reduce_window(xp, 0.0, jax.lax.add, (1, w, w), (1, M, M), "VALID")


def _channel(y: jax.Array, yn: jax.Array, w: int) -> tuple[jax.Array, jax.Array]:
    """``vifsub_est_M.m`` for one subband pair [N, H, W]: gain g and noise variance vv per block."""
    n = float(w * w)
    # The five sums in one window reduction (the program compiles in about half the time of five).
    sx, sy, sxy, sxx, syy = jnp.split(_block_sums(jnp.concatenate([y, yn, y * yn, y * y, yn * yn]), w), 5)
    mx, my = sx / n, sy / n
    cov = sxy - n * mx * my
    ssx = jnp.maximum(sxx - n * mx * mx, 0.0)
    ssy = jnp.maximum(syy - n * my * my, 0.0)
    g = cov / (ssx + TOL)
    vv = (ssy - g * cov) / n
    flat_ref, flat_dist = ssx < TOL, ssy < TOL
    g = jnp.where(flat_ref | flat_dist, 0.0, g)
    vv = jnp.where(flat_ref, ssy, vv)
    vv = jnp.where(flat_dist, 0.0, vv)
    vv = jnp.where(g < 0, ssy, vv)
    g = jnp.maximum(g, 0.0)
    return g, jnp.maximum(vv, TOL)


def _gsm(y: jax.Array, ridge: float) -> tuple[jax.Array, jax.Array]:
    """``refparams_vecgsm.m`` for one reference subband [N, H, W] (multiples of 3): the
    eigenvalues [N, 9] of the covariance C of all overlapping 3x3 blocks, and
    ``s = v^T (C + ridge I)^-1 v / 9`` per non-overlapping block v: [N, H / 3, W / 3].

    The eigenvalues are read off as ``diag(V^T C V)`` with the eigenvectors V held constant:
    the same values, and the derivative of each (``v_j v_j^T``) stays defined where
    eigenvalues coincide (a flat image), where the derivative of ``eigh`` is not.

    The inverse comes from the same decomposition, not from ``jnp.linalg.solve``: with
    ``X0 = V diag(1 / (w + ridge)) V^T`` held constant, ``X = 2 X0 - X0 (C + ridge I) X0`` is
    one Newton step towards the inverse (its error is the square of X0's) whose derivative,
    ``-X0 dC X0``, is the inverse's. (A batched ``solve`` beside the rest of this program
    deadlocked XLA's CPU runtime at batch >= 4 with jax 0.10.2; the eigenvalue route uses no
    LU factorisation.)
    """
    n, h, w = y.shape
    shifted = jnp.stack([y[:, i : h - M + 1 + i, j : w - M + 1 + j].reshape(n, -1)
                         for j in range(M) for i in range(M)], axis=1)  # [N, 9, P]
    centred = shifted - jnp.mean(shifted, axis=2, keepdims=True)
    hi = jax.lax.Precision.HIGHEST
    c = jnp.einsum("nip,njp->nij", centred, centred, precision=hi) / shifted.shape[2]
    w_eig, v = jax.lax.stop_gradient(jnp.linalg.eigh(c))
    lam = jnp.einsum("nij,nik,nkj->nj", v, c, v, precision=hi)
    blocks = y.reshape(n, h // M, M, w // M, M).transpose(0, 4, 2, 1, 3).reshape(n, M * M, -1)
    c_reg = c + ridge * jnp.eye(M * M, dtype=c.dtype)
    x0 = jnp.einsum("nij,nj,nkj->nik", v, 1.0 / (w_eig + ridge), v, precision=hi)
    inv = 2.0 * x0 - jnp.einsum("nij,njk,nkl->nil", x0, c_reg, x0, precision=hi)
    s = jnp.sum(blocks * jnp.einsum("nij,njp->nip", inv, blocks, precision=hi), axis=1) / (M * M)
    return lam, s.reshape(n, h // M, w // M)


def vif_from_grey(ref: jax.Array, dist: jax.Array, ridge: float = 0.0) -> tuple[jax.Array, jax.Array]:
    """``vifvec.m`` on grey planes ``ref, dist`` [B, H, W] (0..255): the information the
    distorted image keeps and the reference's, each [B] float32 (VIF is their ratio).

    ``ridge`` (0 in the reference mode) is added to C's diagonal before its inverse, so that a
    flat reference (C = 0, where MATLAB's ``inv`` returns Inf) stays finite.
    """
    b = ref.shape[0]
    bands = _subbands(jnp.concatenate([ref, dist], axis=0))
    num = den = 0.0
    for level, orient in SUBBANDS:
        band = bands[level, orient]
        h, w = (band.shape[1] // M) * M, (band.shape[2] // M) * M
        y, yn = band[:b, :h, :w], band[b:, :h, :w]
        win = 2 ** (LEVELS + 1 - level) + 1
        g, vv = _channel(y, yn, win)
        lam, s = _gsm(y, ridge)
        off = math.ceil((win - 1) / 2 / M)
        g, vv, s = (t[:, off:-off, off:-off, None] for t in (g, vv, s))
        lam = lam[:, None, None, :]
        num = num + jnp.sum(jnp.log2(1.0 + g * g * s * lam / (vv + SIGMA_NSQ)), axis=(1, 2, 3))
        den = den + jnp.sum(jnp.log2(1.0 + s * lam / SIGMA_NSQ), axis=(1, 2, 3))
    return num, den


def vif_reference(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """VIF as ``vifvec.m`` on the 8-bit ``rgb2gray`` images (not differentiable).

    Args:
      ref: [B, H, W, 3] float RGB in [0, 1], at least ``VIF_MIN_SIZE`` (72) px on the short side.
      dist: the distorted images, of ``ref``'s shape.

    Returns:
      [B] float32, higher = better; 1 for identical images (NaN for a flat reference, as
      MATLAB).

    Raises:
      ValueError: the inputs are not float [B, H, W, 3] batches of one shape, or too small.
    """
    check_pair(ref, dist, who="vif", min_size=VIF_MIN_SIZE)
    num, den = vif_from_grey(gray_8bit(ref)[..., 0], gray_8bit(dist)[..., 0])
    return num / den


# Added to C's diagonal in the float mode (grey levels 0..255, squared): small against the
# block covariance of a natural image's subband, and enough to keep C^-1 finite for a flat one.
FLOAT_RIDGE = 1e-4
# Floor of the denominator in the float mode (the information of a flat reference is 0).
_FLOAT_DEN_FLOOR = 1e-6


def vif(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """Differentiable VIF: the ``vifvec.m`` algorithm on unrounded BT.601 luma x 255.

    Departures from the reference mode, all for finite gradients: C gets ``FLOAT_RIDGE`` on its
    diagonal, and the ratio's denominator is floored at 1e-6 (a flat reference gives 0, not
    NaN). The guards of ``vifsub_est_M.m`` are kept (``where``s, so the gradient is 0 through
    a masked gain).

    Args:
      ref: [B, H, W, 3] float32 RGB in [0, 1], at least ``VIF_MIN_SIZE`` (72) px on the short
        side.
      dist: the distorted images, of ``ref``'s shape.

    Returns:
      [B] float32, higher = better; 1 for identical (non-flat) images.

    Raises:
      ValueError: the inputs are not float [B, H, W, 3] batches of one shape, or too small.
    """
    check_pair(ref, dist, who="vif", min_size=VIF_MIN_SIZE)
    num, den = vif_from_grey(255.0 * luma(ref)[..., 0], 255.0 * luma(dist)[..., 0], FLOAT_RIDGE)
    return num / jnp.maximum(den, _FLOAT_DEN_FLOOR)
