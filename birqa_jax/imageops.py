"""Image operations shared by the model's features, the classical metrics and the attacks.

The lowest layer of the package (it imports only jax and numpy): BT.601 colour conversion,
Gaussian windows and filtering, symmetric padding, Gaussian local moments and the SSIM terms
(constants ``SSIM_K1``, ``SSIM_K2``, overridable per call as ``k1``/``k2``), PSNR, the similarity
ratio ``(2ab + c) / (a^2 + b^2 + c)``, the Scharr gradient magnitude, MATLAB's downsampling
factor, box downsampling and bilinear ``imresize`` (``imresize_bilinear``). Every function is
pure and jit/vmap/grad-safe.

Conventions: images are [N, H, W, C] float32 with values in [0, 1] (data range 1) unless an
argument says otherwise. Borders use symmetric padding (scipy ``mode='reflect'``), so filtered
maps keep the input's size.

Layout: the Gaussian moments run on planes [..., H, W] (``to_planes``, ``padded_pair``), so a
pixel's neighbours along a row are adjacent in memory and XLA vectorises the shifted-slice sums
along the row.

Gradients: the stencils (``correlate_valid`` and the row pass of ``padded_moments``) carry
hand-written reverse-mode rules (``jax.custom_vjp``) that read the cotangent through the same
shifted windows as the forward pass, and the symmetric padding of planes folds the borders back
(``pad_planes``); the values are those of JAX's autodiff up to float rounding. Forward-mode
differentiation (``jax.jvp``) through them is not available.
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

# SSIM's stabilising constants: C1 = (K1 L)^2 and C2 = (K2 L)^2 for data range L (Wang et al. 2004).
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def rgb_to_ycbcr(rgb: jax.Array) -> jax.Array:
    """BT.601 full-range YCbCr. ``rgb``: [..., 3] in [0, 1] -> [..., 3], Y in [0, 1], Cb/Cr in [0, 1]."""
    return jnp.stack([ycbcr_channel(rgb, k) for k in range(3)], axis=-1)


def ycbcr_channel(rgb: jax.Array, k: int) -> jax.Array:
    """Channel ``k`` (0 = Y, 1 = Cb, 2 = Cr) of ``rgb_to_ycbcr``: [..., 3] -> [...].

    Written out as three multiply-adds in a fixed order rather than as a matrix product: on the
    CPU a [..., 3] x [3, 3] dot is a library GEMM call with tiny dimensions, a large share of the
    feature stage's time (benchmarks/README.md has the numbers), where multiply-adds fuse into
    the loops that read the channel (and a slice ``[..., :1]`` of the stack computes the luma
    alone). Every caller goes through here, so the luma rounds the same way in the model, the
    classical metrics and the tests."""
    m = _YCBCR_MATRIX[k]
    v = rgb[..., 0] * jnp.asarray(m[0], rgb.dtype) + rgb[..., 1] * jnp.asarray(m[1], rgb.dtype) \
        + rgb[..., 2] * jnp.asarray(m[2], rgb.dtype)
    return v + jnp.asarray(_YCBCR_OFFSET[k], rgb.dtype) if _YCBCR_OFFSET[k] else v


def gaussian_kernel(sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
    """Normalised 1-D Gaussian taps, radius ``int(truncate * sigma + 0.5)`` as scipy.ndimage."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def pad_symmetric(x: jax.Array, r: int, axes: tuple[int, ...] = (1, 2)) -> jax.Array:
    """``jnp.pad(x, r, mode="symmetric")`` on ``axes`` (scipy's ``mode='reflect'``), as gathers of
    constant indices: the same values, but XLA builds the padded tensor in one or two fused loops
    where padding by concatenation materialises a copy per axis and per border."""
    for axis in axes:
        x = jnp.take(x, symmetric_index(x.shape[axis], r), axis=axis, mode="clip")
    return x


def symmetric_index(n: int, r: int) -> np.ndarray:
    """Source index of each position of a length-``n`` axis padded symmetrically by ``r``."""
    return np.pad(np.arange(n), r, mode="symmetric")


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def pad_planes(x: jax.Array, r: int) -> jax.Array:
    """``pad_symmetric`` of the last two axes (planes [..., H, W] -> [..., H+2r, W+2r]): the
    columns first, then the rows, which XLA compiles to two small gathers whose result stays
    in the row-major layout that the stencils read. Its gradient folds the padded borders back
    onto the image (``_fold_planes``) where JAX's transpose of the gathers is a scatter-add."""
    return pad_symmetric(x, r, (x.ndim - 1, x.ndim - 2))


def _fold_axis(g: jax.Array, r: int, axis: int) -> jax.Array:
    """The transpose of symmetric padding by ``r`` along ``axis``: the interior plus each
    border strip reversed onto the edge it mirrors."""
    n = g.shape[axis] - 2 * r
    if r > n:  # reflected more than once (tiny images): sum the copies by index
        moved = jnp.moveaxis(g, axis, 0)
        out = jnp.zeros((n, *moved.shape[1:]), g.dtype).at[symmetric_index(n, r)].add(moved)
        return jnp.moveaxis(out, 0, axis)
    widths = [(0, 0)] * g.ndim
    inner = jax.lax.slice_in_dim(g, r, r + n, axis=axis)
    head = jax.lax.rev(jax.lax.slice_in_dim(g, 0, r, axis=axis), (axis,))
    tail = jax.lax.rev(jax.lax.slice_in_dim(g, n + r, n + 2 * r, axis=axis), (axis,))
    widths[axis] = (0, n - r)
    out = inner + jnp.pad(head, widths)
    widths[axis] = (n - r, 0)
    return out + jnp.pad(tail, widths)


def _fold_planes(r, g):
    return (_fold_axis(_fold_axis(g, r, g.ndim - 2), r, g.ndim - 1),)


pad_planes.defvjp(lambda x, r: (pad_planes(x, r), None), lambda r, _, g: _fold_planes(r, g))


def correlate_valid(xp: jax.Array, taps, axis: int) -> jax.Array:
    """Correlate the padded ``xp`` with ``taps`` along ``axis`` (output shorter by ``len(taps) - 1``)
    as a sum of shifted slices, which XLA fuses into one loop over the output; its gradient is
    the same form on the zero-padded cotangent (``correlate_full``)."""
    return _correlate_valid_vjp(xp, tuple(float(w) for w in taps), axis)


def _shifted_sum(xp: jax.Array, taps: tuple[float, ...], axis: int) -> jax.Array:
    n = xp.shape[axis] - len(taps) + 1
    out = None
    for i, w in enumerate(taps):
        term = jax.lax.slice_in_dim(xp, i, i + n, axis=axis) * jnp.asarray(w, xp.dtype)
        out = term if out is None else out + term
    return out


def correlate_full(g: jax.Array, taps: tuple[float, ...], axis: int) -> jax.Array:
    """The transpose of ``correlate_valid``: ``sum_i taps[i] * g`` shifted by i along ``axis``
    (zeros outside; output longer by ``len(taps) - 1``), as a valid correlation of ``g``
    zero-padded once with the reversed taps."""
    widths = [(0, 0)] * g.ndim
    widths[axis] = (len(taps) - 1, len(taps) - 1)
    return _shifted_sum(jnp.pad(g, widths), taps[::-1], axis)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _correlate_valid_vjp(xp, taps, axis):
    return _shifted_sum(xp, taps, axis)


_correlate_valid_vjp.defvjp(lambda xp, taps, axis: (_shifted_sum(xp, taps, axis), None),
                            lambda taps, axis, _, g: (correlate_full(g, taps, axis),))


def filter_axis(x: jax.Array, taps: np.ndarray, axis: int) -> jax.Array:
    """Correlate ``x`` with symmetric ``taps`` along ``axis`` (symmetric padding, same size)."""
    return correlate_valid(pad_symmetric(x, len(taps) // 2, (axis,)), taps, axis)


def gaussian_filter(x: jax.Array, sigma: float = 1.5, truncate: float = 3.5) -> jax.Array:
    """Separable Gaussian blur of ``x`` [N, H, W, C] over H and W (scipy ``mode='reflect'``)."""
    taps = gaussian_kernel(sigma, truncate)
    return filter_axis(filter_axis(x, taps, 1), taps, 2)


def local_moments(x: jax.Array, y: jax.Array, sigma: float = 1.5):
    """Gaussian-weighted local means, variances and covariance of ``x`` and ``y`` [N, H, W, C].

    Population (not sample) statistics, as ``use_sample_covariance=False`` in skimage. Both
    images are padded once, as planes (``padded_pair``), and the five filters share one pass
    (``padded_moments``).
    """
    taps = gaussian_kernel(sigma)
    n, c = x.shape[0], x.shape[-1]
    p = padded_pair(to_planes(x), to_planes(y), len(taps) // 2)
    return tuple(from_planes(m, n, c) for m in padded_moments(p, taps))


def to_planes(v: jax.Array) -> jax.Array:
    """[N, H, W, C] -> planes [N * C, H, W] (plane n * C + k is channel k of image n; for C = 1
    the move costs nothing)."""
    n, h, w, c = v.shape
    return jnp.moveaxis(v, 3, 1).reshape(n * c, h, w)


def from_planes(v: jax.Array, n: int, c: int) -> jax.Array:
    """Planes [N * C, H, W] back to [N, H, W, C]."""
    return jnp.moveaxis(v.reshape(n, c, *v.shape[1:]), 1, 3)


def padded_pair(x: jax.Array, y: jax.Array, r: int) -> jax.Array:
    """The planes ``x`` and ``y`` [B, H, W] padded symmetrically by ``r`` and stacked:
    [2, B, H+2r, W+2r], x first. Each image is padded on its own and the two are stacked after,
    which keeps the padded planes row-major in XLA's layout (benchmarks/README.md has the
    measurements)."""
    return jnp.stack([pad_planes(x, r), pad_planes(y, r)])


def padded_moments(p: jax.Array, taps: np.ndarray):
    """``local_moments`` of the planes ``p`` = [x, y] ([2, B, H+2r, W+2r]), already
    symmetrically padded by the taps' radius r, each as [B, H, W].

    The row pass forms the five moment planes of each shifted row window itself, so only the
    two padded images are read and only the row-filtered moments are written; the column pass
    filters those. Centring on 0.5 (moments are shift-invariant) shrinks the float32
    cancellation in E[x^2] - E[x]^2 about fourfold for images in [0, 1].
    """
    taps = tuple(float(w) for w in taps)
    mx, my, mxx, myy, mxy = correlate_valid(_moment_rows(p, taps), taps, 3)
    vx = mxx - mx * mx
    vy = myy - my * my
    cxy = mxy - mx * my
    return mx + 0.5, my + 0.5, vx, vy, cxy


def _row_moments(p: jax.Array, taps: tuple[float, ...]) -> jax.Array:
    """[xs, ys, xs^2, ys^2, xs*ys] (xs = x - 0.5) of the planes ``p`` = [x, y] filtered along
    the rows, [5, B, H, W+2r]. Each moment is accumulated on its own and the five are stacked
    once: the same sums in the same order as a stack per window, but XLA fuses the eleven
    windows into the loop that writes each moment instead of materialising one stack per
    window."""
    h = p.shape[2] - len(taps) + 1
    acc = [None] * 5
    for i, w in enumerate(taps):
        win = jax.lax.slice_in_dim(p, i, i + h, axis=2) - 0.5
        xs, ys = win[0], win[1]
        wi = jnp.asarray(w, p.dtype)
        for j, t in enumerate((xs, ys, xs * xs, ys * ys, xs * ys)):
            acc[j] = t * wi if acc[j] is None else acc[j] + t * wi
    return jnp.stack(acc)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _moment_rows(p, taps):
    return _row_moments(p, taps)


def _moment_rows_bwd(taps, p, g):
    # Window i of the forward reads rows i..i+H of p, so the cotangent g_j of moment j reaches
    # p row k as sum_i taps[i] g_j[k - i] (a full correlation) times the derivative of moment j
    # at that row, which depends on p's own value there: d/dx = g0 + 2 xs g2 + ys g4 and
    # d/dy = g1 + 2 ys g3 + xs g4.
    a0, a1, a2, a3, a4 = correlate_full(g, taps, 2)
    xs, ys = p[0] - 0.5, p[1] - 0.5
    return (jnp.stack([a0 + 2 * xs * a2 + ys * a4, a1 + 2 * ys * a3 + xs * a4]),)


_moment_rows.defvjp(lambda p, taps: (_row_moments(p, taps), p), _moment_rows_bwd)


def ssim_map(x: jax.Array, y: jax.Array, sigma: float = 1.5, *, k1: float = SSIM_K1, k2: float = SSIM_K2) -> jax.Array:
    """Per-pixel SSIM of ``x`` and ``y`` [N, H, W, C] in [0, 1] (data range 1), same shape.

    Its mean over ``[5:-5, 5:-5]`` equals ``skimage.metrics.structural_similarity(x, y,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``.
    """
    return ssim_from_moments(*local_moments(x, y, sigma), k1=k1, k2=k2)


def ssim_terms(mx, my, vx, vy, cxy, *, k1: float = SSIM_K1, k2: float = SSIM_K2, data_range: float = 1.0):
    """SSIM's luminance and contrast-structure terms from the ``local_moments``.

    Args:
      mx: local mean of x (any shape; the five moments share one shape, or broadcast).
      my: local mean of y.
      vx: local variance of x.
      vy: local variance of y.
      cxy: local covariance of x and y.
      k1: SSIM's luminance constant; C1 = (k1 data_range)^2.
      k2: SSIM's contrast constant; C2 = (k2 data_range)^2.
      data_range: the images' value range (1 for [0, 1]).

    Returns:
      ``((l_num, l_den), (cs_num, cs_den))``: ``l = (2 mx my + C1) / (mx^2 + my^2 + C1)`` and
      ``cs = (2 cxy + C2) / (vx + vy + C2)`` as numerator and denominator (MS-SSIM uses ``cs``
      alone at its finer scales).
    """
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    return (2 * mx * my + c1, mx * mx + my * my + c1), (2 * cxy + c2, vx + vy + c2)


def ssim_from_moments(mx, my, vx, vy, cxy, *, k1: float = SSIM_K1, k2: float = SSIM_K2) -> jax.Array:
    """The SSIM map ``l * cs`` (data range 1) from the ``local_moments``, with one division."""
    (ln, ld), (cn, cd) = ssim_terms(mx, my, vx, vy, cxy, k1=k1, k2=k2)
    return (ln * cn) / (ld * cd)


def luma(x: jax.Array) -> jax.Array:
    """BT.601 Y of ``x`` [B, H, W, 3] in [0, 1] -> [B, H, W, 1] float32 (unrounded)."""
    return ycbcr_channel(x.astype(jnp.float32), 0)[..., None]


def psnr(x: jax.Array, y: jax.Array) -> jax.Array:
    """PSNR in dB for data range 1 of ``x``, ``y`` [B, ...]: [B] float32 (+inf where they are equal)."""
    return -10.0 * jnp.log10(jnp.mean((x - y) ** 2, axis=tuple(range(1, x.ndim))))


def safe_sqrt(v: jax.Array) -> jax.Array:
    """``sqrt(v)`` for ``v >= 0`` with a zero (not infinite) derivative at 0."""
    pos = v > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, v, 1.0)), 0.0)


def similarity(a: jax.Array, b: jax.Array, c: float) -> jax.Array:
    """The similarity ratio ``(2 a b + c) / (a^2 + b^2 + c)`` of two maps of one shape (1 where
    they are equal; ``c`` > 0 keeps it finite)."""
    return (2.0 * a * b + c) / (a * a + b * b + c)


def matlab_real_power(x: jax.Array, p: float) -> jax.Array:
    """MATLAB's ``real(x .^ p)`` for a fractional ``p``: ``|x|^p``, times ``cos(p pi)`` where ``x``
    is negative (the principal power's real part). The floor at 1e-30 keeps the derivative finite
    at 0."""
    return jnp.maximum(jnp.abs(x), 1e-30) ** p * jnp.where(x < 0, math.cos(p * math.pi), 1.0)


def weighted_mean_hw(values: jax.Array, weight: jax.Array) -> jax.Array:
    """``sum(values * weight) / sum(weight)`` over the last two axes ([B, h, w] -> [B]); where
    the weights sum to 0 (MATLAB: 0 / 0) the plain mean of ``values`` instead."""
    total = jnp.sum(weight, axis=(-2, -1))
    weighted = jnp.sum(values * weight, axis=(-2, -1)) / jnp.where(total > 0, total, 1.0)
    return jnp.where(total > 0, weighted, jnp.mean(values, axis=(-2, -1)))


_SCHARR = np.array([3.0, 10.0, 3.0]) / 16.0


def scharr_magnitude(y: jax.Array) -> jax.Array:
    """Gradient magnitude of planes ``y`` [B, h, w] with the Scharr pair ``[3 0 -3; 10 0 -10;
    3 0 -3] / 16`` and its transpose, as MATLAB's ``conv2(y, ., 'same')`` (zero borders):
    [B, h, w], with a finite gradient where it is 0."""
    h, w = y.shape[1:]
    p = jnp.pad(y, ((0, 0), (1, 1), (1, 1)))

    def win(dr: int, dc: int) -> jax.Array:
        return p[:, 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]

    gx = sum(t * (win(dr, 1) - win(dr, -1)) for dr, t in zip((-1, 0, 1), _SCHARR))
    gy = sum(t * (win(1, dc) - win(-1, dc)) for dc, t in zip((-1, 0, 1), _SCHARR))
    return safe_sqrt(gx * gx + gy * gy)


def matlab_downsample_factor(height: int, width: int) -> int:
    """The published MATLAB scripts' ``F = max(1, round(min(H, W) / 256))``, half-up (1 below 384
    px on the short side, 2 at 384, 4 at 1080)."""
    return max(1, math.floor(min(height, width) / 256 + 0.5))


def box_downsample(x: jax.Array, f: int, pad_mode: str) -> jax.Array:
    """MATLAB ``imfilter``/``conv2`` 'same' with an f x f box, then ``x(1:f:end, 1:f:end)``.

    The box is anchored as MATLAB anchors even and odd kernels (origin ``floor((f + 1) / 2)``),
    so for f = 2 every output is the mean of a 2x2 block starting at an even pixel. Borders are
    padded with ``pad_mode`` ('symmetric' as imfilter's option, 'constant' = zeros as conv2).
    ``x``: [B, H, W, C] -> [B, ceil(H / f), ceil(W / f), C].
    """
    before = (f + 1) // 2 - 1
    for axis in (1, 2):
        n = x.shape[axis]
        m = -(-n // f)  # outputs: ceil(n / f)
        pad = [(0, 0)] * 4
        pad[axis] = (before, max(0, m * f - n - before))
        xp = jnp.pad(x, pad, mode=pad_mode)
        xp = jax.lax.slice_in_dim(xp, 0, m * f, axis=axis)
        shape = xp.shape[:axis] + (m, f) + xp.shape[axis + 1 :]
        x = xp.reshape(shape).mean(axis=axis + 1)
    return x


@functools.cache
def imresize_weights(n_in: int, n_out: int) -> np.ndarray:
    """The [n_out, n_in] float64 matrix of MATLAB ``imresize(..., 'bilinear')`` along one axis.

    MATLAB's ``contributions``: scale ``s = n_out / n_in``; output pixel ``i`` (1-based) sits at
    ``u = i / s + (1 - 1 / s) / 2`` in input coordinates; the triangle kernel ``max(0, 1 - |d|)``,
    widened to ``s max(0, 1 - s |d|)`` when shrinking (antialiasing, on by default for bilinear),
    weighs the ``ceil(width) + 2`` input pixels from ``floor(u - width / 2)`` (width 2, or 2 / s
    when shrinking); the weights are divided by their sum and indices outside ``1..n_in`` are
    mirrored (``[1..n, n..1]`` repeated), so border weights add onto the pixels they mirror.
    Every row sums to 1.
    """
    if n_in < 1 or n_out < 1:
        raise ValueError(f"imresize: sizes must be positive, got {n_in} -> {n_out}")
    scale = n_out / n_in
    shrink = scale < 1
    width = 2.0 / scale if shrink else 2.0
    u = np.arange(1, n_out + 1, dtype=np.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    taps = int(math.ceil(width)) + 2
    idx = np.floor(u - width / 2)[:, None] + np.arange(taps)[None, :]
    d = u[:, None] - idx
    w = scale * np.maximum(0.0, 1.0 - np.abs(scale * d)) if shrink else np.maximum(0.0, 1.0 - np.abs(d))
    w /= w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in - 1, -1, -1)])
    src = mirror[np.mod(idx.astype(np.int64) - 1, 2 * n_in)]
    out = np.zeros((n_out, n_in))
    np.add.at(out, (np.repeat(np.arange(n_out), taps), src.ravel()), w.ravel())
    return out


def imresize_bilinear(x: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
    """MATLAB ``imresize(x, out_hw, 'bilinear')`` of planes ``x`` [..., H, W] -> [..., h, w].

    Separable: the rows then the columns, each a product with a precomputed weight matrix
    (``imresize_weights``; antialiased when shrinking, as MATLAB's default). Exact to float
    rounding for any pair of sizes in either direction (MATLAB's order of the two passes only
    changes the rounding), linear, so differentiable in both modes, and jit/vmap-compatible. The
    products run at full float32 precision (no reduced-precision matmul on accelerators), and
    on ``x - x[..., :1, :1]`` with that corner added back, so a constant plane stays exactly
    constant (the rows of the weights sum to 1 only to float rounding). Upscaling equals
    ``skimage.transform.resize(x, out_hw, order=1, mode='edge', anti_aliasing=False)``.
    """
    h, w = int(out_hw[0]), int(out_hw[1])
    wr = jnp.asarray(imresize_weights(x.shape[-2], h), x.dtype)
    wc = jnp.asarray(imresize_weights(x.shape[-1], w).T, x.dtype)
    corner = x[..., :1, :1]
    hi = jax.lax.Precision.HIGHEST
    y = jnp.matmul(jnp.matmul(wr, x - corner, precision=hi), wc, precision=hi)
    return y + corner
