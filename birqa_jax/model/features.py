"""The four BiRQA quality features, as pure jit/vmap/grad-safe functions.

Conventions: images are NHWC float32 RGB in [0, 1]; ``ref`` is the pristine reference and
``dist`` the distorted image, with identical shapes. Every feature map keeps the input's spatial
size (borders use symmetric padding, scipy's ``mode='reflect'``), so the stack can be fed to a
convolutional pyramid at full resolution.

The definitions are this project's reconstruction (see the README): the paper names
the features (SSIM map, YCbCr colour difference, LBP texture, information map) but does not
publish their exact form.

Layout: internally every map is a plane [N, H, W] (the reference's and the distorted image's
lumas are stacked on a leading axis, ``_padded_pair``), so the stencils run along the minor
axes, and the feature stack is assembled on the channel axis once at the end.

Gradients: the stencils (the Gaussian moments' row and column passes and the soft LBP distance)
carry hand-written reverse-mode rules (``jax.custom_vjp``) that read the cotangent through the
same shifted windows as the forward pass, where JAX's own transpose would place one padded copy
per window and tap; the symmetric padding of the planes has one that folds the borders back
(``_pad_planes``). The values are those of JAX's autodiff up to float rounding (the tests
compare them). Forward-mode differentiation (``jax.jvp``, ``jax.jacfwd``) through these
functions is therefore not available: JAX raises an error that says so.
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


def _bilinear_taps(rp: float, cp: float) -> tuple[tuple[int, int, float], ...]:
    """``(row shift, col shift, weight)`` of the bilinear sample at offset (rp, cp), weights that
    vanish left out, in the order the neighbour's sum adds them."""
    r0, c0 = math.floor(rp), math.floor(cp)
    fr, fc = rp - r0, cp - c0
    return tuple((dr, dc, wr * wc) for dr, wr in ((r0, 1.0 - fr), (r0 + 1, fr))
                 for dc, wc in ((c0, 1.0 - fc), (c0 + 1, fc)) if abs(wr * wc) > 1e-12)


_LBP_TAPS = tuple(_bilinear_taps(rp, cp) for rp, cp in _LBP_OFFSETS)


def rgb_to_ycbcr(rgb: jax.Array) -> jax.Array:
    """BT.601 full-range YCbCr. ``rgb``: [..., 3] in [0, 1] -> [..., 3], Y in [0, 1], Cb/Cr in [0, 1]."""
    return jnp.stack([_ycbcr_channel(rgb, k) for k in range(3)], axis=-1)


def _ycbcr_channel(rgb: jax.Array, k: int) -> jax.Array:
    """Channel ``k`` (0 = Y, 1 = Cb, 2 = Cr) of ``rgb_to_ycbcr``: [..., 3] -> [...].

    Written out as three multiply-adds in a fixed order rather than as a matrix product: on the
    CPU a [..., 3] x [3, 3] dot is a library GEMM call with tiny dimensions that took about half
    of the feature stage's time, where multiply-adds fuse into the loops that read the channel
    (and a slice ``[..., :1]`` of the stack computes the luma alone). Every caller goes through
    here, so the luma rounds the same way in the model, the classical metrics and the tests."""
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


def _pad_symmetric(x: jax.Array, r: int, axes: tuple[int, ...] = (1, 2)) -> jax.Array:
    """``jnp.pad(x, r, mode="symmetric")`` on ``axes`` (scipy's ``mode='reflect'``), as gathers of
    constant indices: the same values, but XLA builds the padded tensor in one or two fused loops
    where padding by concatenation materialises a copy per axis and per border."""
    for axis in axes:
        x = jnp.take(x, _symmetric_index(x.shape[axis], r), axis=axis, mode="clip")
    return x


def _symmetric_index(n: int, r: int) -> np.ndarray:
    """Source index of each position of a length-``n`` axis padded symmetrically by ``r``."""
    return np.pad(np.arange(n), r, mode="symmetric")


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _pad_planes(x: jax.Array, r: int) -> jax.Array:
    """``_pad_symmetric`` of the last two axes (planes [..., H, W] -> [..., H+2r, W+2r]): the
    columns first, then the rows, which XLA compiles to two small gathers whose result stays
    in the row-major layout that the stencils read. Its gradient folds the padded borders back
    onto the image (``_fold_planes``) where JAX's transpose of the gathers is a scatter-add."""
    return _pad_symmetric(x, r, (x.ndim - 1, x.ndim - 2))


def _fold_axis(g: jax.Array, r: int, axis: int) -> jax.Array:
    """The transpose of symmetric padding by ``r`` along ``axis``: the interior plus each
    border strip reversed onto the edge it mirrors."""
    n = g.shape[axis] - 2 * r
    if r > n:  # reflected more than once (tiny images): sum the copies by index
        moved = jnp.moveaxis(g, axis, 0)
        out = jnp.zeros((n, *moved.shape[1:]), g.dtype).at[_symmetric_index(n, r)].add(moved)
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


_pad_planes.defvjp(lambda x, r: (_pad_planes(x, r), None), lambda r, _, g: _fold_planes(r, g))


def _correlate_valid(xp: jax.Array, taps, axis: int) -> jax.Array:
    """Correlate the padded ``xp`` with ``taps`` along ``axis`` (output shorter by ``len(taps) - 1``)
    as a sum of shifted slices, which XLA fuses into one loop over the output; its gradient is
    the same form on the zero-padded cotangent (``_correlate_full``)."""
    return _correlate_valid_vjp(xp, tuple(float(w) for w in taps), axis)


def _shifted_sum(xp: jax.Array, taps: tuple[float, ...], axis: int) -> jax.Array:
    n = xp.shape[axis] - len(taps) + 1
    out = None
    for i, w in enumerate(taps):
        term = jax.lax.slice_in_dim(xp, i, i + n, axis=axis) * jnp.asarray(w, xp.dtype)
        out = term if out is None else out + term
    return out


def _correlate_full(g: jax.Array, taps: tuple[float, ...], axis: int) -> jax.Array:
    """The transpose of ``_correlate_valid``: ``sum_i taps[i] * g`` shifted by i along ``axis``
    (zeros outside; output longer by ``len(taps) - 1``), as a valid correlation of ``g``
    zero-padded once with the reversed taps."""
    widths = [(0, 0)] * g.ndim
    widths[axis] = (len(taps) - 1, len(taps) - 1)
    return _shifted_sum(jnp.pad(g, widths), taps[::-1], axis)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _correlate_valid_vjp(xp, taps, axis):
    return _shifted_sum(xp, taps, axis)


_correlate_valid_vjp.defvjp(lambda xp, taps, axis: (_shifted_sum(xp, taps, axis), None),
                            lambda taps, axis, _, g: (_correlate_full(g, taps, axis),))


def _filter_axis(x: jax.Array, taps: np.ndarray, axis: int) -> jax.Array:
    """Correlate ``x`` with symmetric ``taps`` along ``axis`` (symmetric padding, same size)."""
    return _correlate_valid(_pad_symmetric(x, len(taps) // 2, (axis,)), taps, axis)


def gaussian_filter(x: jax.Array, sigma: float = 1.5, truncate: float = 3.5) -> jax.Array:
    """Separable Gaussian blur of ``x`` [N, H, W, C] over H and W (scipy ``mode='reflect'``)."""
    taps = gaussian_kernel(sigma, truncate)
    return _filter_axis(_filter_axis(x, taps, 1), taps, 2)


def local_moments(x: jax.Array, y: jax.Array, sigma: float = 1.5):
    """Gaussian-weighted local means, variances and covariance of ``x`` and ``y`` [N, H, W, C].

    Population (not sample) statistics, as ``use_sample_covariance=False`` in skimage. Both
    images are padded once, as planes (``_padded_pair``), and the five filters share one pass
    (``_padded_moments``).
    """
    taps = gaussian_kernel(sigma)
    n, c = x.shape[0], x.shape[-1]
    p = _padded_pair(_to_planes(x), _to_planes(y), len(taps) // 2)
    return tuple(_from_planes(m, n, c) for m in _padded_moments(p, taps))


def _to_planes(v: jax.Array) -> jax.Array:
    """[N, H, W, C] -> planes [N * C, H, W] (plane n * C + k is channel k of image n; for C = 1
    the move costs nothing)."""
    n, h, w, c = v.shape
    return jnp.moveaxis(v, 3, 1).reshape(n * c, h, w)


def _from_planes(v: jax.Array, n: int, c: int) -> jax.Array:
    """Planes [N * C, H, W] back to [N, H, W, C]."""
    return jnp.moveaxis(v.reshape(n, c, *v.shape[1:]), 1, 3)


def _padded_pair(x: jax.Array, y: jax.Array, r: int) -> jax.Array:
    """The planes ``x`` and ``y`` [B, H, W] padded by ``r`` and stacked, [2, B, H+2r, W+2r] (x
    first). Each image is padded on its own and the two are stacked after (stacked first, the
    pair ended up on the minor axis of XLA's layout for the padded planes). On planes a pixel's
    neighbours along a row are the next elements in memory, so XLA vectorises each stencil along
    the row. With the pair [x | y] and the five moments on the minor axis instead, the feature stage at
    1080x1920 took 263 ms instead of 112 forward and 683 ms instead of 219 for its VJP on a
    2-core CPU (the two forms alternated in one process, medians of 7)."""
    return jnp.stack([_pad_planes(x, r), _pad_planes(y, r)])


def _padded_moments(p: jax.Array, taps: np.ndarray):
    """``local_moments`` of the planes ``p`` = [x, y] ([2, B, H+2r, W+2r]), already
    symmetrically padded by the taps' radius r, each as [B, H, W].

    The row pass forms the five moment planes of each shifted row window itself, so only the
    two padded images are read and only the row-filtered moments are written; the column pass
    filters those. Centring on 0.5 (moments are shift-invariant) shrinks the float32
    cancellation in E[x^2] - E[x]^2 about fourfold for images in [0, 1].
    """
    taps = tuple(float(w) for w in taps)
    mx, my, mxx, myy, mxy = _correlate_valid(_moment_rows(p, taps), taps, 3)
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
    a0, a1, a2, a3, a4 = _correlate_full(g, taps, 2)
    xs, ys = p[0] - 0.5, p[1] - 0.5
    return (jnp.stack([a0 + 2 * xs * a2 + ys * a4, a1 + 2 * ys * a3 + xs * a4]),)


_moment_rows.defvjp(lambda p, taps: (_row_moments(p, taps), p), _moment_rows_bwd)


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


def lbp_neighbours(y: jax.Array) -> jax.Array:
    """Bilinearly sampled radius-1 neighbours of each pixel: [N, H, W, C] -> [N, H, W, C, 8].

    Sampling positions, order and interpolation follow skimage's ``local_binary_pattern`` with
    P=8, R=1; borders use edge padding (skimage pads with zeros, which invents texture).
    """
    return jnp.stack(_padded_neighbours(_pad_symmetric(y, 1), 1), axis=-1)


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
    return jnp.stack([_soft_bit(v, y, temperature) for v in _padded_neighbours(_pad_symmetric(y, 1), 1)], axis=-1)


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
    # The channels come from _ycbcr_channel, as rgb_to_ycbcr's do: a one-ulp change of luma
    # moves the SSIM and information maps by up to ~1e-4 in flat regions (their variances are
    # divided by C2 ~ 1e-3), so the model and the public functions must round alike. Every map
    # is computed as a plane [N, H, W] (see _padded_pair) and the planes are stacked once.
    ref, dist = ref.astype(jnp.float32), dist.astype(jnp.float32)
    y_r, y_d = _ycbcr_channel(ref, 0), _ycbcr_channel(dist, 0)  # [N, H, W] each
    taps = gaussian_kernel()
    r = len(taps) // 2
    # Both lumas padded once; the moments' filters and the LBP neighbours read the same planes.
    p = _padded_pair(y_r, y_d, r)
    mx, my, vx, vy, cxy = _padded_moments(p, taps)
    planes = [
        ssim_from_moments(mx, my, vx, vy, cxy),
        *(jnp.abs(_ycbcr_channel(ref, k) - _ycbcr_channel(dist, k)) for k in (1, 2)),
        _padded_soft_lbp_distance(p, r, lbp_temperature),
        information_map(vx, info_c),
        information_map(vy, info_c),
    ]
    if include_luma:
        planes += [y_r, y_d]
    return jnp.stack(planes, axis=-1)


def num_features(include_luma: bool = True) -> int:
    return len(FEATURE_NAMES) if include_luma else len(FEATURE_NAMES) - 2
