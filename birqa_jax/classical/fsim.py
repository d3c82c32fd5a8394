"""FSIM and FSIMc: feature similarity (Zhang, Zhang, Mou & Zhang 2011), both modes.

As the authors' ``FeatureSIM.m``:

1. YIQ of the RGB values 0..255 (``Y = 0.299 R + 0.587 G + 0.114 B``, ``I = 0.596 R - 0.274 G
   - 0.322 B``, ``Q = 0.211 R - 0.523 G + 0.312 B``, unrounded);
2. ``F = max(1, round(min(H, W) / 256))``; ``conv2(., ones(F) / F^2, 'same')`` (zero borders),
   then every F-th pixel from the first;
3. phase congruency of Y (Kovesi's ``phasecong2`` as the script ships it: log-Gabor filters
   in the Fourier domain, 4 scales from wavelength 6 by factor 2, sigma_f 0.55, 4 orientations
   with angular sigma ``pi / 4 / 1.2``, a Butterworth lowpass of radius 0.45 and order 15, the
   noise threshold from the median of the finest scale's energy, k = 2, divided by 1.7);
4. gradient magnitude of Y with the Scharr pair ``[3 0 -3; 10 0 -10; 3 0 -3] / 16`` (conv2
   'same', zero borders);
5. ``S_PC = (2 PC1 PC2 + 0.85) / (PC1^2 + PC2^2 + 0.85)``, ``S_G`` the same with T = 160,
   ``PCm = max(PC1, PC2)``; FSIM = ``sum(S_PC S_G PCm) / sum(PCm)``; FSIMc, computed here (the value
   published for colour images), multiplies each term by ``real((S_I S_Q)^0.03)`` with
   ``S_I``, ``S_Q`` the same similarity on I and Q (T = 200).

One code path serves both modes; they differ only in the input: ``reference`` rounds to the
8-bit levels (``round(255 x)``, as the files hold them), ``float`` uses ``255 x`` unrounded and
is differentiable. The guards that keep gradients finite (square roots and the PC ratio at
exactly 0, the 0.03 power near 0) change no value except where MATLAB divides 0 by 0: a flat
image has PC = 0, and two flat images score the plain mean of the similarity map.

All functions take ``ref, dist: [B, H, W, 3]`` float RGB in [0, 1] (at least 8 px on the short
side after the downsampling) and return ``[B]`` float32 in [0, 1] (FSIMc: up to about 1),
higher = better, 1 for identical images.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from birqa_jax.classical.reference_mode import to_8bit
from birqa_jax.imageops import (
    box_downsample,
    matlab_downsample_factor,
    matlab_real_power,
    safe_sqrt,
    scharr_magnitude,
    similarity,
    weighted_mean_hw,
)
from birqa_jax.inputs import check_pair

SCALES, ORIENTS = 4, 4
MIN_WAVELENGTH, MULT, SIGMA_ON_F, D_THETA_ON_SIGMA = 6.0, 2.0, 0.55, 1.2
NOISE_K, PC_EPSILON = 2.0, 1e-4
T1, T2, T3, T4, LAMBDA = 0.85, 160.0, 200.0, 200.0, 0.03
FSIM_MIN_SIZE = 8  # short side after the downsampling (the 3x3 gradient and the median need a few pixels)
_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _grid(n: int) -> np.ndarray:
    """phasecong2's normalised frequency axis of length n (odd and even lengths differ)."""
    if n % 2:
        return np.arange(-(n - 1) / 2, (n - 1) / 2 + 1) / (n - 1)
    return np.arange(-n / 2, n / 2) / n


@functools.cache
def _filters(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The log-Gabor filters of an h x w image, the finest scale's energy and the noise factor.

    Returns ``(filters [SCALES, ORIENTS, h, w] float32`` in FFT order, ``em_n [ORIENTS]``: the
    sum of squares of the finest filter, ``noise [ORIENTS]``: ``2 sum_s |f_s|^2 + 4 sum_{s<t}
    f_s f_t`` summed over space, with ``f_s = real(ifft2(filter_s)) sqrt(h w)``), all float64
    facts of the size alone, computed once per shape.
    """
    x, y = np.meshgrid(_grid(w), _grid(h))
    radius = np.fft.ifftshift(np.sqrt(x * x + y * y))
    theta = np.fft.ifftshift(np.arctan2(-y, x))
    radius[0, 0] = 1.0
    lowpass = np.fft.ifftshift(1.0 / (1.0 + (np.sqrt(x * x + y * y) / 0.45) ** 30))
    log_gabor = []
    for s in range(SCALES):
        fo = 1.0 / (MIN_WAVELENGTH * MULT**s)
        g = np.exp(-(np.log(radius / fo) ** 2) / (2 * math.log(SIGMA_ON_F) ** 2)) * lowpass
        g[0, 0] = 0.0
        log_gabor.append(g)
    theta_sigma = math.pi / ORIENTS / D_THETA_ON_SIGMA
    filters = np.empty((SCALES, ORIENTS, h, w))
    for o in range(ORIENTS):
        angle = o * math.pi / ORIENTS
        ds = np.sin(theta) * math.cos(angle) - np.cos(theta) * math.sin(angle)
        dc = np.cos(theta) * math.cos(angle) + np.sin(theta) * math.sin(angle)
        spread = np.exp(-(np.arctan2(ds, dc) ** 2) / (2 * theta_sigma**2))
        for s in range(SCALES):
            filters[s, o] = log_gabor[s] * spread
    em_n = np.sum(filters[0] ** 2, axis=(1, 2))
    spatial = np.real(np.fft.ifft2(filters)) * math.sqrt(h * w)  # [S, O, h, w]
    pair_sum = sum(spatial[i] * spatial[j] for i in range(SCALES) for j in range(i + 1, SCALES))
    noise = 2.0 * np.sum(spatial**2, axis=(0, 2, 3)) + 4.0 * np.sum(pair_sum, axis=(1, 2))
    return filters.astype(np.float32), em_n, noise


def _kth_smallest_bits(bits: jax.Array, k: int) -> jax.Array:
    """The int32 pattern of the k-th smallest (1-based) of non-negative float32 values along the
    last axis, given as their bit patterns ``bits`` [..., n] (for non-negative floats the patterns
    sort as the values): a bisection on the pattern, 32 counting passes instead of a sort."""

    def halve(_, bounds):
        lo, hi = bounds  # count(bits <= lo) < k <= count(bits <= hi)
        mid = lo + (hi - lo) // 2
        enough = jnp.sum(bits <= mid[..., None], axis=-1) >= k
        return jnp.where(enough, lo, mid), jnp.where(enough, mid, hi)

    lo = jnp.full(bits.shape[:-1], -1, jnp.int32)
    _, hi = jax.lax.fori_loop(0, 32, halve, (lo, jnp.max(bits, axis=-1)))
    return hi


def _median(x: jax.Array) -> jax.Array:
    """``median(x, axis=-1)`` of non-negative float32 ``x`` [..., n], the same value as
    ``jnp.median`` (the mean of the two middle values for even n) without sorting: on the CPU,
    XLA's sort of the finest scale's energies took over half of FSIM's time. The derivative
    flows to the middle value(s), as through a sort (ties share it)."""
    n = x.shape[-1]
    bits = jax.lax.bitcast_convert_type(x, jnp.int32)

    def value(pattern: jax.Array) -> jax.Array:  # the entry with this pattern, differentiable through it
        hit = bits == jax.lax.stop_gradient(pattern)[..., None]
        return jnp.max(jnp.where(hit, x, 0.0), axis=-1)

    if n % 2:
        return value(_kth_smallest_bits(bits, (n + 1) // 2))
    # The (n/2 + 1)-th smallest from the n/2-th in one more pass: the same pattern when it occurs
    # more often than the n/2-th's rank needs, else the smallest pattern above it.
    lower = _kth_smallest_bits(bits, n // 2)
    repeated = jnp.sum(bits <= lower[..., None], axis=-1) > n // 2
    above = jnp.min(jnp.where(bits > lower[..., None], bits, jnp.iinfo(jnp.int32).max), axis=-1)
    return 0.5 * value(lower) + 0.5 * value(jnp.where(repeated, lower, above))


def phase_congruency(y: jax.Array) -> jax.Array:
    """``phasecong2`` of FeatureSIM.m on grey planes ``y`` [B, h, w] (0..255): [B, h, w] in [0, 1]."""
    h, w = y.shape[1:]
    filters, em_n, noise = _filters(h, w)
    eo = jnp.fft.ifft2(jnp.fft.fft2(y)[:, None, None] * filters)  # [B, S, O, h, w]
    # Per scale, as Python sums of [B, O, h, w] terms rather than reductions over the scale axis
    # of the complex responses: the same sums (the amplitude's added orientation first), which
    # XLA's CPU backend fuses into fewer passes over them (phase congruency at 270x480, batch 2:
    # 154 -> 114 ms; on a 270x480 test image the output was bit for bit the same).
    even = [jnp.real(eo[:, s]) for s in range(SCALES)]
    odd = [jnp.imag(eo[:, s]) for s in range(SCALES)]
    sum_e, sum_o = sum(even), sum(odd)  # [B, O, h, w]
    amp_all = sum(jnp.sum(safe_sqrt(e * e + o * o), axis=1) for e, o in zip(even, odd))  # [B, h, w]
    x_energy = safe_sqrt(sum_e * sum_e + sum_o * sum_o) + PC_EPSILON
    mean_e, mean_o = sum_e / x_energy, sum_o / x_energy
    energy = sum(e * mean_e + o * mean_o - jnp.abs(e * mean_o - o * mean_e) for e, o in zip(even, odd))
    # Noise: the median of the finest scale's squared amplitude estimates a Rayleigh parameter.
    finest = (even[0] ** 2 + odd[0] ** 2).reshape(y.shape[0], ORIENTS, -1)
    noise_power = -_median(finest) / math.log(0.5) / jnp.asarray(em_n, jnp.float32)
    tau = safe_sqrt(noise_power * jnp.asarray(noise / 2.0, jnp.float32))
    threshold = (tau * math.sqrt(math.pi / 2) + NOISE_K * math.sqrt(2 - math.pi / 2) * tau) / 1.7
    energy_all = jnp.sum(jnp.maximum(energy - threshold[..., None, None], 0.0), axis=1)
    has = amp_all > 0
    return jnp.where(has, energy_all / jnp.where(has, amp_all, 1.0), 0.0)


def _yiq(v: jax.Array) -> jax.Array:
    """[B, H, W, 3] RGB 0..255 -> [B, H, W, 3] Y, I, Q (float32, unrounded), channels last: the
    full-size planes are downsampled before anything transposes them."""
    return jnp.stack([sum(v[..., c] * jnp.float32(m[c]) for c in range(3)) for m in _YIQ], axis=-1)


def fsim_from_rgb255(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """FSIMc of FeatureSIM.m on RGB values 0..255 ``ref, dist`` [B, H, W, 3]: [B] float32."""
    f = matlab_downsample_factor(*ref.shape[1:3])
    planes = _yiq(jnp.concatenate([ref, dist], axis=0))
    if f > 1:
        planes = box_downsample(planes, f, "constant")
    planes = planes.transpose(0, 3, 1, 2)  # [2B, 3, h, w]
    if min(planes.shape[2:]) < FSIM_MIN_SIZE:
        raise ValueError(f"fsim: {planes.shape[2]}x{planes.shape[3]} after downsampling is below {FSIM_MIN_SIZE} px")
    b = ref.shape[0]
    y = planes[:, 0]
    pc, grad = phase_congruency(y), scharr_magnitude(y)
    pc_max = jnp.maximum(pc[:b], pc[b:])
    sim = similarity(pc[:b], pc[b:], T1) * similarity(grad[:b], grad[b:], T2)
    iq = similarity(planes[:b, 1], planes[b:, 1], T3) * similarity(planes[:b, 2], planes[b:, 2], T4)
    # MATLAB's real((S_I S_Q)^0.03): a negative product (opposite hues) weighs by |.|^0.03 cos(0.03 pi).
    sim = sim * matlab_real_power(iq, LAMBDA)
    # Weighted by PCm; where no pixel has phase congruency (two flat images, 0 / 0 in MATLAB) the
    # plain mean of the similarity map instead (1 for identical images).
    return weighted_mean_hw(sim, pc_max)


def fsim_reference(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """FSIMc of FeatureSIM.m on the 8-bit RGB images (not differentiable).

    Args:
      ref: [B, H, W, 3] float RGB in [0, 1]; at least 8 px on the short side after the
        downsampling by ``matlab_downsample_factor(H, W)``.
      dist: the distorted images, of ``ref``'s shape.

    Returns:
      [B] float32, higher = better; 1 for identical images.

    Raises:
      ValueError: the inputs are not float [B, H, W, 3] batches of one shape, or too small
        after the downsampling.
    """
    check_pair(ref, dist, who="fsim")
    return fsim_from_rgb255(to_8bit(ref), to_8bit(dist))


def fsim(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """Differentiable FSIMc: FeatureSIM.m on ``255 x`` unrounded RGB. [B] float32, higher = better.

    Not bounded by 1 for float inputs outside the 8-bit grid; equal to :func:`fsim_reference`
    up to float32 rounding on 8-bit inputs (the phase congruency's median is the one step
    whose derivative is sparse: it flows through the one or two middle values).
    """
    check_pair(ref, dist, who="fsim")
    return fsim_from_rgb255(255.0 * ref.astype(jnp.float32), 255.0 * dist.astype(jnp.float32))
