"""VSI (``classical.vsi``) in both modes, and MATLAB's bilinear ``imresize`` (``imageops``).

1. ``imageops.imresize_bilinear`` against cases derived by hand from MATLAB's kernel formula,
   a loop transcription of MATLAB's ``contributions``, skimage (upscaling) and PIL (the
   interior of a downscaling, where no mirrored pixel contributes).
2. Reference mode against a float64 transcription of the authors' ``VSI.m`` (below): on the five
   TID2013 calibration pairs (``VSI_M_VALUES``) and on small crops, flat and saturated images.
3. Float mode: equal to the reference mode on 8-bit inputs; reverse-mode gradients against
   central finite differences; finite gradients on identical, flat and saturated images.
4. Properties: identical images score 1, batch independence, input checks.
"""

from __future__ import annotations

import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
from skimage import data

from birqa_jax.classical.vsi import VSI_MIN_SIZE, vsi, vsi_reference
from birqa_jax.imageops import imresize_bilinear, imresize_weights

# --------------------------------------------------------------- float64 transcription of VSI.m


@functools.cache
def _matlab_contributions(n_in: int, n_out: int) -> np.ndarray:
    """MATLAB imresize's ``contributions`` for the bilinear kernel, pixel by pixel and tap by tap
    (1-based as in MATLAB), gathered into a dense [n_out, n_in] matrix."""
    scale = n_out / n_in
    antialias = scale < 1
    width = 2.0 / scale if antialias else 2.0
    out = np.zeros((n_out, n_in))
    mirror = list(range(1, n_in + 1)) + list(range(n_in, 0, -1))
    for i in range(1, n_out + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = []
        for j in range(math.ceil(width) + 2):
            idx = left + j
            dist = u - idx
            w = scale * max(0.0, 1 - abs(scale * dist)) if antialias else max(0.0, 1 - abs(dist))
            taps.append((mirror[(idx - 1) % len(mirror)] - 1, w))
        total = sum(w for _, w in taps)
        for idx, w in taps:
            out[i - 1, idx] += w / total
    return out


def _m_imresize(x: np.ndarray, hw) -> np.ndarray:
    return _matlab_contributions(x.shape[0], hw[0]) @ x @ _matlab_contributions(x.shape[1], hw[1]).T


def _m_conv2_same(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """MATLAB conv2(x, k, 'same'): the full convolution from row/column ceil((k - 1) / 2)."""
    full = scipy.signal.convolve2d(x, k, mode="full")
    r0, c0 = math.ceil((k.shape[0] - 1) / 2), math.ceil((k.shape[1] - 1) / 2)
    return full[r0 : r0 + x.shape[0], c0 : c0 + x.shape[1]]


def _m_rgb2lab(img: np.ndarray) -> np.ndarray:
    v = img / 255.0
    lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    t = np.einsum("hwc,kc->hwk", lin, m) / np.array([0.9642, 1.0, 0.8251])
    f = np.where(t > 0.008856, np.cbrt(t), (903.3 * t + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def _m_log_gabor(rows: int, cols: int, omega0: float, sigma_f: float) -> np.ndarray:
    u1, u2 = np.meshgrid((np.arange(1, cols + 1) - (cols // 2 + 1)) / (cols - cols % 2),
                         (np.arange(1, rows + 1) - (rows // 2 + 1)) / (rows - rows % 2))
    mask = (u1**2 + u2**2 <= 0.25).astype(float)
    u1, u2 = np.fft.ifftshift(u1 * mask), np.fft.ifftshift(u2 * mask)
    radius = np.sqrt(u1**2 + u2**2)
    radius[0, 0] = 1
    with np.errstate(divide="ignore"):
        lg = np.exp(-(np.log(radius / omega0) ** 2) / (2 * sigma_f**2))
    lg[0, 0] = 0
    return lg


def _m_mat2gray(a: np.ndarray) -> np.ndarray:
    """mat2gray with MATLAB's NaN rules: min/max skip NaN (all-NaN gives NaN), min(NaN, 1) = 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slice
        lo, hi = np.nanmin(a), np.nanmax(a)
    out = a if lo == hi else (a - lo) / (hi - lo)
    return np.fmax(0.0, np.fmin(out, 1.0))


def _m_sdsp(img: np.ndarray) -> np.ndarray:
    rows0, cols0 = img.shape[:2]
    ds = np.stack([_m_imresize(img[..., c], (256, 256)) for c in range(3)], -1)
    lab = _m_rgb2lab(ds)
    lg = _m_log_gabor(256, 256, 0.021, 1.34)
    sf = np.sqrt(sum(np.real(np.fft.ifft2(np.fft.fft2(lab[..., c]) * lg)) ** 2 for c in range(3)))
    yy, xx = np.meshgrid(np.arange(1, 257), np.arange(1, 257), indexing="ij")
    sd = np.exp(-((yy - 128.0) ** 2 + (xx - 128.0) ** 2) / 145.0**2)
    with np.errstate(invalid="ignore"):
        na = (lab[..., 1] - lab[..., 1].min()) / (lab[..., 1].max() - lab[..., 1].min())
        nb = (lab[..., 2] - lab[..., 2].min()) / (lab[..., 2].max() - lab[..., 2].min())
    sc = 1 - np.exp(-(na**2 + nb**2) / 0.001**2)
    return _m_mat2gray(_m_imresize(sf * sd * sc, (rows0, cols0)))


def _m_vsi(image1: np.ndarray, image2: np.ndarray) -> float:
    """VSI.m on two RGB images (0..255 values, float64)."""
    s1, s2 = _m_sdsp(image1), _m_sdsp(image2)
    rows, cols = image1.shape[:2]

    def opp(img, c):
        return c[0] * img[..., 0] + c[1] * img[..., 1] + c[2] * img[..., 2]

    lmn = [(0.06, 0.63, 0.27), (0.30, 0.04, -0.35), (0.34, -0.60, 0.17)]
    planes = [opp(image1, c) for c in lmn] + [opp(image2, c) for c in lmn] + [s1, s2]
    f = max(1, math.floor(min(rows, cols) / 256 + 0.5))
    planes = [_m_conv2_same(p, np.ones((f, f)) / f**2)[::f, ::f] for p in planes]
    l1, m1, n1, l2, m2, n2, s1, s2 = planes
    dx = np.array([[3, 0, -3], [10, 0, -10], [3, 0, -3]]) / 16

    def grad(x):
        return np.sqrt(_m_conv2_same(x, dx) ** 2 + _m_conv2_same(x, dx.T) ** 2)

    def sim(a, b, c):
        return (2 * a * b + c) / (a * a + b * b + c)

    weight = np.maximum(s1, s2)
    chroma = np.real((sim(m1, m2, 130) * sim(n1, n2, 130)).astype(complex) ** 0.02)
    s = sim(grad(l1), grad(l2), 386) ** 0.40 * sim(s1, s2, 1.27) * chroma * weight
    return float(s.sum() / weight.sum())


# ------------------------------------------------------------------------------------ imresize


@pytest.mark.parametrize("n_in, n_out", [(5, 2), (7, 3), (9, 2), (3, 7), (6, 4), (300, 256)])
def test_imresize_weights_are_mirror_symmetric(n_in, n_out):
    """Resizing is the same from either end: W[i, j] = W[n_out - 1 - i, n_in - 1 - j], so the
    symmetric border handling folds the taps beyond the right edge as those beyond the left."""
    w = imresize_weights(n_in, n_out)
    np.testing.assert_allclose(w, w[::-1, ::-1], atol=1e-12)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("n_in, n_out", [(0, 4), (4, 0)])
def test_imresize_weights_refuse_an_empty_axis(n_in, n_out):
    with pytest.raises(ValueError, match="sizes must be positive"):
        imresize_weights(n_in, n_out)


def test_imresize_hand_cases():
    """4 -> 2: scale 1/2, kernel 1/2 tri(d / 2) over 4 px; output 1 at u = 1.5 weighs pixels
    -1..4 by 0, 1/8, 3/8, 3/8, 1/8, 0, and pixel 0 mirrors pixel 1. 2 -> 4: scale 2, plain
    triangle at u = 0.75, 1.25, 1.75, 2.25 (pixel 0 mirrors pixel 1, pixel 3 pixel 2)."""
    np.testing.assert_array_equal(imresize_weights(4, 2), [[0.5, 0.375, 0.125, 0], [0, 0.125, 0.375, 0.5]])
    np.testing.assert_array_equal(imresize_weights(2, 4), [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    np.testing.assert_array_equal(imresize_weights(5, 5), np.eye(5))
    col = jnp.asarray([[1.0], [2.0], [3.0], [4.0]])
    np.testing.assert_allclose(np.asarray(imresize_bilinear(col, (2, 1)))[:, 0], [1.625, 3.375], rtol=1e-6)
    row = jnp.asarray([[10.0, 30.0]])
    np.testing.assert_allclose(np.asarray(imresize_bilinear(row, (1, 4)))[0], [10, 15, 25, 30], rtol=1e-6)


@pytest.mark.parametrize("n_in, n_out", [(384, 256), (512, 256), (256, 384), (256, 37), (37, 256), (7, 3),
                                          (3, 7), (1, 5), (5, 1), (10, 9)])
def test_imresize_weights_match_matlab_contributions(n_in, n_out):
    np.testing.assert_allclose(imresize_weights(n_in, n_out), _matlab_contributions(n_in, n_out), atol=1e-15)


def test_imresize_against_skimage_and_pil():
    """Upscaling is skimage's order-1 resize with edge borders; shrinking matches PIL's
    antialiased bilinear (same triangle widened by 1 / scale) away from the borders, where PIL
    renormalises the clipped kernel instead of mirroring."""
    from PIL import Image
    from skimage.transform import resize

    x = np.random.default_rng(0).uniform(0, 255, (37, 53))
    up = np.asarray(imresize_bilinear(jnp.asarray(x, jnp.float32), (80, 120)))
    np.testing.assert_allclose(up, resize(x, (80, 120), order=1, mode="edge", anti_aliasing=False), atol=1e-3)
    y = np.random.default_rng(1).uniform(0, 255, (120, 90))
    down = np.asarray(imresize_bilinear(jnp.asarray(y, jnp.float32), (50, 41)))
    pil = np.asarray(Image.fromarray(y.astype(np.float32), "F").resize((41, 50), Image.BILINEAR))
    np.testing.assert_allclose(down[3:-3, 3:-3], pil[3:-3, 3:-3], atol=1e-3)
    assert np.abs(down - pil).max() > 0.1  # the borders differ (mirroring)


def test_imresize_batched_and_constant():
    """Planes [..., H, W] with leading axes; a constant plane stays exactly constant."""
    x = jnp.asarray(np.random.default_rng(2).uniform(0, 1, (2, 3, 12, 17)), jnp.float32)
    got = np.asarray(imresize_bilinear(x, (5, 30)))
    want = np.stack([[_m_imresize(np.asarray(p, np.float64), (5, 30)) for p in img] for img in x])
    np.testing.assert_allclose(got, want, atol=2e-6)
    const = np.asarray(imresize_bilinear(jnp.full((1, 384, 512), 93.7), (256, 256)))
    assert np.all(const == np.float32(93.7))


# ---------------------------------------------------------------- reference mode: VSI.m values

# VSI.m (the float64 transcription above) on the five TID2013 calibration pairs I03, I04, I06,
# I08, I19. Here (float32): within 1.1e-7 of them; the tolerance adds a float32 margin.
#
# No MATLAB run of VSI.m on these pairs is published. The "VSI" row of pyiqa's calibration table
# (ResultsCalibra/results_official.csv and results_compare/vsi_opt_result.txt: 0.91382939,
# 0.96196967, 0.99220151, 0.95711297, 0.92621893) is, by pyiqa's own notes, the output of the
# IQA-optimization PyTorch port, which departs from VSI.m (SDSP on the full-size image without
# the 256 x 256 resize, a D65 white, 0-based coordinates, an unpadded stride-F downsampling);
# VSI.m differs from it by up to 0.0123 (I04), as pyiqa's own VSI does (I03).
VSI_M_VALUES = (0.92442419, 0.94969149, 0.98760581, 0.95386206, 0.92720259)
VSI_M_ATOL = 1e-6
PUBLISHED_ROW = (0.9139, 0.9620, 0.9922, 0.9571, 0.9262)  # results_official.csv, "vsi"
PYIQA_DEVIATION = 0.0124  # pyiqa 0.1.16 on I04: 0.9497 against 0.9620 (calibration_summary.csv), rounded up


def test_vsi_m_values_on_calibration_pairs(calibration_pairs):
    ref_u8, dist_u8 = calibration_pairs
    transcribed = [_m_vsi(r.astype(np.float64), d.astype(np.float64)) for r, d in zip(ref_u8, dist_u8)]
    np.testing.assert_allclose(transcribed, VSI_M_VALUES, atol=5e-9, rtol=0)
    ref, dist = (jnp.asarray(x.astype(np.float32) / np.float32(255.0)) for x in calibration_pairs)
    got = np.asarray(jax.jit(vsi_reference)(ref, dist), np.float64)
    np.testing.assert_allclose(got, VSI_M_VALUES, atol=VSI_M_ATOL, rtol=0)
    # The published row is met within pyiqa's own calibration tolerance (its VSI is 0.0123 off it).
    np.testing.assert_allclose(got, PUBLISHED_ROW, atol=PYIQA_DEVIATION, rtol=0)


# ------------------------------------------------------------------------------------ fixtures
# Every call below uses one batch shape ([3, 33, 40, 3]: odd and even sides, shrunk back from
# SDSP's 256 x 256) so each mode compiles once, and its gradient once.


def _f32(u8: np.ndarray) -> jax.Array:
    return jnp.asarray(u8.astype(np.float32) / np.float32(255.0))


@pytest.fixture(scope="module")
def small_pairs():
    """33x40 natural crops and three distortions each (noise, blur, contrast): uint8 [3, 33, 40, 3],
    and the unit-variance noise field of the first distortion ([33, 40, 3] float64)."""
    img = data.astronaut()[100:133, 180:220].astype(np.float64)
    noise = np.random.default_rng(0).normal(size=img.shape)
    dist = np.stack([img + 12 * noise, scipy.ndimage.gaussian_filter(img, sigma=(1.5, 1.5, 0)), 0.6 * img + 50])
    ref = np.broadcast_to(img, dist.shape)
    u8 = (np.clip(np.round(ref), 0, 255).astype(np.uint8), np.clip(np.round(dist), 0, 255).astype(np.uint8))
    return u8, noise


MODES = {"reference": jax.jit(vsi_reference), "float": jax.jit(vsi)}


@functools.cache
def _grad():
    return jax.jit(jax.grad(lambda r, d: jnp.sum(vsi(r, d)), argnums=(0, 1)))


def test_reference_mode_matches_transcription(small_pairs):
    """Small odd-sized crops (F = 1, the saliency shrunk back from 256 x 256), and MATLAB's 0 / 0
    cases: a flat grey, black or white image has a constant a channel, NaN colour prior and
    saliency 1 everywhere after mat2gray."""
    (ref_u8, dist_u8), _ = small_pairs
    flat, black, white = (np.full_like(ref_u8[0], v) for v in (128, 0, 255))
    for r, d in ((ref_u8, dist_u8), (np.stack([flat, ref_u8[0], black]), np.stack([dist_u8[0], flat, white]))):
        want = [_m_vsi(a.astype(np.float64), b.astype(np.float64)) for a, b in zip(r, d)]
        got = np.asarray(MODES["reference"](_f32(r), _f32(d)), np.float64)
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(_m_sdsp(flat.astype(np.float64)), 1.0)


def test_identical_images_and_batch_independence(small_pairs):
    """Identical images score 1 in both modes, distorted ones less; each pair's score does not
    depend on the rest of the batch (a permuted batch gives the permuted scores)."""
    (ref_u8, dist_u8), _ = small_pairs
    ref, dist = _f32(ref_u8), _f32(dist_u8)
    for mode, fn in MODES.items():
        np.testing.assert_allclose(np.asarray(fn(ref, ref)), 1.0, atol=1e-6, err_msg=mode)
        scores = np.asarray(fn(ref, dist))
        assert np.all(scores < 1 - 1e-3), (mode, scores)
        perm = np.array([2, 0, 1])
        np.testing.assert_allclose(np.asarray(fn(ref[perm], dist[perm])), scores[perm], rtol=1e-6, atol=1e-7)


def test_float_equals_reference_on_8bit_inputs(small_pairs):
    (ref_u8, dist_u8), _ = small_pairs
    ref, dist = _f32(ref_u8), _f32(dist_u8)
    np.testing.assert_allclose(np.asarray(MODES["float"](ref, dist)), np.asarray(MODES["reference"](ref, dist)),
                               atol=1e-6)


def test_input_checks():
    x = jnp.zeros((1, VSI_MIN_SIZE - 1, 40, 3))
    with pytest.raises(ValueError, match=f"at least {VSI_MIN_SIZE}"):
        vsi_reference(x, x)
    with pytest.raises(ValueError, match="at least"):
        vsi(x, x)
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
        vsi(jnp.zeros((1, 32, 40)), jnp.zeros((1, 32, 40)))
    with pytest.raises(ValueError, match="shapes differ"):
        vsi_reference(jnp.zeros((1, 32, 40, 3)), jnp.zeros((1, 32, 41, 3)))


# ------------------------------------------------------------------------- float mode: gradients


def test_float_gradient_matches_finite_differences(small_pairs):
    """Directional derivative along a random direction (Gaussian, the noise field of the first
    pair, so the derivative is large next to float32's resolution of a score, about 6e-8 / 2h),
    for each image.

    The inputs are moved off the 8-bit grid (a uniform dither of +-0.5 levels): on the grid,
    resized pixels tie for the minima and maxima that normalise the colour prior and the saliency,
    and the score has a kink at the point itself. Those extrema still change hands at about 1e-4
    along a random direction, hence the short step.
    """
    (ref_u8, dist_u8), noise = small_pairs
    dither = np.random.default_rng(3).uniform(-0.5, 0.5, (2, *ref_u8.shape)) / 255
    r = 0.05 + 0.9 * _f32(ref_u8) + jnp.asarray(dither[0], jnp.float32)
    d = 0.05 + 0.9 * _f32(dist_u8) + jnp.asarray(dither[1], jnp.float32)
    v = jnp.asarray(np.broadcast_to(noise, d.shape), jnp.float32)
    gr, gd = _grad()(r, d)
    fn, h = MODES["float"], 1e-4
    for g, (plus, minus) in ((gd, ((r, d + h * v), (r, d - h * v))), (gr, ((r + h * v, d), (r - h * v, d)))):
        fd = (float(jnp.sum(fn(*plus))) - float(jnp.sum(fn(*minus)))) / (2 * h)
        ad = float(jnp.sum(g * v))
        assert abs(fd) > 0.5 and ad == pytest.approx(fd, rel=0.03), (ad, fd)


def test_float_gradient_finite_on_degenerate_images(small_pairs):
    """Finite scores and gradients (both images) on identical, flat, saturated and black pairs."""
    (ref_u8, _), _ = small_pairs
    x = _f32(ref_u8)
    flat, white, black = jnp.full_like(x, 0.5), jnp.ones_like(x), jnp.zeros_like(x)
    # Three pairs per call, the fixture's batch shape: identical, flat ref, flat dist; both flat,
    # saturated dist, black ref (and white against black).
    for r, d in ((jnp.stack([x[0], flat[0], x[1]]), jnp.stack([x[0], x[1], flat[1]])),
                 (jnp.stack([flat[0], x[0], black[0]]), jnp.stack([flat[0], white[0], white[0]]))):
        gr, gd = _grad()(r, d)
        assert bool(jnp.all(jnp.isfinite(MODES["float"](r, d))))
        assert bool(jnp.all(jnp.isfinite(gr)) & jnp.all(jnp.isfinite(gd)))
