"""The 8-bit reference mode of the classical baselines (``classical.reference_mode``).

1. Golden checks against an independent float64 transcription of the MATLAB code written here
   (``rgb2gray`` on uint8, ``ssim_index.m``, ``msssim.m``, ``GMSD.m``, ``psnr``), with MATLAB's
   ``filter2``/``conv2``/``imfilter`` rebuilt from their definitions on top of scipy's 'full'
   and 'valid' 2-D correlations (not from the JAX helpers), on natural photographs.
2. Power: every one-line bug listed in ``MUTATIONS`` (swapped grey coefficients, no rounding,
   'same' instead of 'valid', ...) moves the transcription's scores on the same images by far
   more than the golden tolerance, so the golden checks fail if the JAX code has that bug.
3. The MATLAB values pyiqa publishes for five TID2013 pairs (its ``ResultsCalibra``; the
   images are in tests/data/tid2013_calibration).
4. Cross-checks against pyiqa and piq (optional: ``pip install -e .[crosscheck]``), skipped
   when they cannot be imported.
"""

from __future__ import annotations

import dataclasses
import io
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
from PIL import Image
from skimage import data
from skimage.metrics import peak_signal_noise_ratio

from birqa_jax import classical
from birqa_jax.classical import reference_mode as ref_mode

# --------------------------------------------------- MATLAB transcription (float64, independent)

# MATLAB rgb2gray, written out here rather than imported from the module under test.
MATLAB_GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)
BT601 = (0.299, 0.587, 0.114)
MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


@dataclasses.dataclass(frozen=True)
class Options:
    """The reference algorithms, with switches for the one-line bugs the tests must catch."""

    gray_coeffs: tuple = MATLAB_GRAY
    round_gray: bool = True  # uint8 rgb2gray rounds; double rgb2gray does not
    ssim_shape: str = "valid"  # filter2 shape in ssim_index(_new)
    ms_down: str = "symmetric"  # imfilter border of msssim.m's 2x2 lowpass ('zeros' = conv2)
    ms_last: str = "ssim"  # scale 5 contributes mssim(5) ('cs': mcs(5) instead)
    ms_last_exponent: bool = True  # mssim(5) ^ w(5) (False: the old ssim_mscale_new.m)
    ms_weights: tuple = MS_WEIGHTS
    gmsd_down: str = "zeros"  # conv2 'same' (zero borders) before (1:2:end)
    gmsd_phase: int = 0  # (1:2:end): start at the first pixel
    gmsd_T: float = 170.0
    gmsd_ddof: int = 1  # std2
    psnr_on: str = "rgb"


MATLAB = Options()


def matlab_round(x: np.ndarray) -> np.ndarray:
    """MATLAB's conversion to an integer class: round half away from zero."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def rgb2gray(u8: np.ndarray, o: Options = MATLAB) -> np.ndarray:
    """MATLAB rgb2gray of a uint8 [..., 3] image, as float64 (its uint8 values)."""
    c = o.gray_coeffs
    v = u8[..., 0] * c[0] + u8[..., 1] * c[1] + u8[..., 2] * c[2]  # double arithmetic
    return np.clip(matlab_round(v), 0, 255) if o.round_gray else v


def fspecial_gaussian(n: int = 11, sigma: float = 1.5) -> np.ndarray:
    """fspecial('gaussian', n, sigma)."""
    t = np.arange(n) - (n - 1) / 2
    h = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma**2))
    h[h < np.finfo(float).eps * h.max()] = 0
    return h / h.sum()


def filter2(h: np.ndarray, x: np.ndarray, shape: str) -> np.ndarray:
    """MATLAB filter2 (2-D correlation); 'same' is the centre of 'full' with zero borders."""
    if shape == "valid":
        return scipy.signal.correlate2d(x, h, mode="valid")
    full = scipy.signal.correlate2d(x, h, mode="full")
    r0, c0 = (h.shape[0] - 1) // 2, (h.shape[1] - 1) // 2  # = floor(m / 2) for odd m
    return full[r0 : r0 + x.shape[0], c0 : c0 + x.shape[1]]


def conv2_same(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """MATLAB conv2(x, h, 'same'): the full convolution from row/col floor(size(h) / 2) (0-based)."""
    full = scipy.signal.convolve2d(x, h, mode="full")
    r0, c0 = h.shape[0] // 2, h.shape[1] // 2
    return full[r0 : r0 + x.shape[0], c0 : c0 + x.shape[1]]


def imfilter_same(x: np.ndarray, h: np.ndarray, border: str) -> np.ndarray:
    """MATLAB imfilter(x, h, border, 'same') (correlation; kernel centre floor((size + 1) / 2))."""
    before = [(m + 1) // 2 - 1 for m in h.shape]
    after = [m - 1 - b for m, b in zip(h.shape, before)]
    pad = tuple(zip(before, after))
    xp = np.pad(x, pad, mode="symmetric") if border == "symmetric" else np.pad(x, pad)
    return scipy.signal.correlate2d(xp, h, mode="valid")


def ssim_index(x: np.ndarray, y: np.ndarray, o: Options = MATLAB) -> tuple[float, float]:
    """Wang's ssim_index_new.m (K = [0.01 0.03], L = 255): (mssim, mcs)."""
    w = fspecial_gaussian()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = filter2(w, x, o.ssim_shape), filter2(w, y, o.ssim_shape)
    s11 = filter2(w, x * x, o.ssim_shape) - mu1 * mu1
    s22 = filter2(w, y * y, o.ssim_shape) - mu2 * mu2
    s12 = filter2(w, x * y, o.ssim_shape) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    cs_map = (2 * s12 + c2) / (s11 + s22 + c2)
    return float(ssim_map.mean()), float(cs_map.mean())


def ref_ssim(a: np.ndarray, b: np.ndarray, o: Options = MATLAB) -> float:
    return ssim_index(rgb2gray(a, o), rgb2gray(b, o), o)[0]


def ref_ms_ssim(a: np.ndarray, b: np.ndarray, o: Options = MATLAB) -> float:
    """Wang's msssim.m, 'product' method, on rgb2gray images."""
    x, y = rgb2gray(a, o), rgb2gray(b, o)
    lowpass = np.ones((2, 2)) / 4
    mssim, mcs = [], []
    for _ in range(5):
        s, c = ssim_index(x, y, o)
        mssim.append(s)
        mcs.append(c)
        x = imfilter_same(x, lowpass, o.ms_down)[::2, ::2]
        y = imfilter_same(y, lowpass, o.ms_down)[::2, ::2]
    w = np.array(o.ms_weights)
    last = mssim[4] if o.ms_last == "ssim" else mcs[4]
    last = last ** w[4] if o.ms_last_exponent else last
    return float(np.prod(np.array(mcs[:4]) ** w[:4]) * last)


def ref_gmsd(a: np.ndarray, b: np.ndarray, o: Options = MATLAB) -> float:
    """Xue et al.'s GMSD.m on rgb2gray images (0..255)."""
    dx = np.array([[1.0, 0, -1], [1, 0, -1], [1, 0, -1]]) / 3
    ave = np.ones((2, 2)) / 4
    maps = []
    for img in (rgb2gray(a, o), rgb2gray(b, o)):
        smooth = conv2_same(img, ave) if o.gmsd_down == "zeros" else imfilter_same(img, ave, "symmetric")
        y = smooth[o.gmsd_phase :: 2, o.gmsd_phase :: 2]
        maps.append(np.sqrt(conv2_same(y, dx) ** 2 + conv2_same(y, dx.T) ** 2))
    m1, m2 = maps
    q = (2 * m1 * m2 + o.gmsd_T) / (m1**2 + m2**2 + o.gmsd_T)
    return float(np.std(q, ddof=o.gmsd_ddof))


def ref_psnr(a: np.ndarray, b: np.ndarray, o: Options = MATLAB) -> float:
    """MATLAB psnr(A, ref) of uint8 images: peak 255, MSE over every element."""
    if o.psnr_on == "gray":
        a, b = rgb2gray(a, o), rgb2gray(b, o)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def ref_psnr_y(a: np.ndarray, b: np.ndarray, o: Options = MATLAB) -> float:
    mse = np.mean((rgb2gray(a, o) - rgb2gray(b, o)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


REFERENCES = {"psnr": ref_psnr, "psnr_y": ref_psnr_y, "ssim": ref_ssim, "ms_ssim": ref_ms_ssim, "gmsd": ref_gmsd}

# Golden tolerances (float32 JAX against the float64 transcription). Seen: PSNR 3e-6 dB, SSIM
# 6e-7, MS-SSIM 3e-7, GMSD 1e-7 relative.
ATOL = {"psnr": 2e-5, "psnr_y": 2e-5, "ssim": 1e-5, "ms_ssim": 1e-5, "gmsd": 0.0}
RTOL = {"psnr": 0.0, "psnr_y": 0.0, "ssim": 0.0, "ms_ssim": 0.0, "gmsd": 1e-5}


# ----------------------------------------------------------------------------- images (uint8)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _distortions(img: np.ndarray, seed: int) -> np.ndarray:
    """[6, H, W, 3] uint8: noise, blur, strong JPEG, contrast, and two near-identical versions
    (one grey level on 3% of the pixels; JPEG quality 95), where GMSD is ~1e-3 and the 8-bit
    rounding matters most."""
    rng = np.random.default_rng(seed)
    f = img.astype(np.float64)
    noise = f + rng.normal(0, 10, f.shape)
    blur = scipy.ndimage.gaussian_filter(f, sigma=(1.2, 1.2, 0))
    contrast = 0.7 * f + 40
    lsb = f + (rng.random(f.shape[:2]) < 0.03)[..., None] * rng.choice([-1.0, 1.0], f.shape)
    out = [np.clip(matlab_round(d), 0, 255).astype(np.uint8) for d in (noise, blur, contrast, lsb)]
    return np.stack(out[:2] + [_jpeg(img, 15)] + out[2:] + [_jpeg(img, 95)])


def _pairs(img: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    dist = _distortions(img, seed)
    return np.broadcast_to(img, dist.shape).copy(), dist


PHOTOS = {
    "astronaut": lambda: data.astronaut()[40:232, 150:406],
    "coffee": lambda: data.coffee()[100:292, 180:436],
    "chelsea": lambda: data.chelsea()[50:242, 100:356],
}


@pytest.fixture(scope="module", params=sorted(PHOTOS))
def photo_pairs(request):
    """Natural 192x256 crops (an MS-SSIM size, even at every scale), six distortions each: uint8."""
    return _pairs(PHOTOS[request.param](), seed=len(request.param))


@pytest.fixture(scope="module")
def odd_pairs():
    """A 177x203 crop: odd at scales 1-4 (177, 89, 45, 23), so the borders of the lowpass count."""
    r, d = _pairs(data.rocket()[120:297, 300:503], seed=5)
    return r[[0, 1, 2, 4]], d[[0, 1, 2, 4]]


@pytest.fixture(scope="module")
def tiny_pairs():
    """9x13 crops (odd, 5x7 after GMSD's halving): borders dominate, n - 1 matters."""
    r, d = _pairs(data.coffee()[200:209, 300:313], seed=3)
    return r[:4], d[:4]


def _f32(u8: np.ndarray) -> jax.Array:
    """uint8 -> float32 in [0, 1], as the input pipeline and birqa_jax.inputs produce them."""
    return jnp.asarray(u8.astype(np.float32) / np.float32(255.0))


def _scores(name: str, ref: np.ndarray, dist: np.ndarray) -> np.ndarray:
    return np.asarray(classical.get(name)(_f32(ref), _f32(dist)), np.float64)


def _want(name: str, ref: np.ndarray, dist: np.ndarray, o: Options = MATLAB) -> np.ndarray:
    return np.array([REFERENCES[name](a, b, o) for a, b in zip(ref, dist)])


# ------------------------------------------------------------- the transcription's MATLAB facts


def test_transcription_helpers_by_hand():
    x = np.array([[1.0, 2, 3, 4, 5]])
    h = np.array([[0.5, 0.5]])
    np.testing.assert_allclose(conv2_same(x, h), [[1.5, 2.5, 3.5, 4.5, 2.5]])  # zero border
    np.testing.assert_allclose(imfilter_same(x, h, "symmetric"), [[1.5, 2.5, 3.5, 4.5, 5.0]])
    np.testing.assert_allclose(filter2(np.array([[1.0, 2, 3]]), x, "same"), [[8, 14, 20, 26, 14]])
    np.testing.assert_allclose(filter2(np.array([[1.0, 2, 3]]), x, "valid"), [[14, 20, 26]])
    # conv2 flips the kernel, filter2 does not.
    np.testing.assert_allclose(conv2_same(x, np.array([[1.0, 0, -1]])), [[2, 2, 2, 2, -4]])
    assert fspecial_gaussian().shape == (11, 11) and math.isclose(fspecial_gaussian().sum(), 1.0)
    np.testing.assert_array_equal(matlab_round(np.array([0.5, 1.5, 2.5, 2.4999])), [1, 2, 3, 2])


def test_rgb2gray_exact_for_every_colour():
    """All 2^24 8-bit colours give MATLAB's grey level (float64 sum, half away from zero),
    including the 236 colours whose luma lies within 1e-5 of a tie."""
    c = np.array(MATLAB_GRAY)
    assert ref_mode.RGB2GRAY_COEFFS == MATLAB_GRAY
    v = np.arange(256, dtype=np.float64)
    g, b = np.meshgrid(v, v, indexing="ij")
    fn = jax.jit(ref_mode.rgb2gray)
    near_ties = 0
    for r in range(256):
        luma = r * c[0] + g * c[1] + b * c[2]
        near_ties += int(np.sum(np.abs(luma - np.floor(luma) - 0.5) < 1e-5))
        rgb = np.stack([np.full_like(g, r), g, b], axis=-1).astype(np.float32)
        got = np.asarray(fn(jnp.asarray(rgb)))[..., 0]
        np.testing.assert_array_equal(got, np.floor(luma + 0.5), err_msg=f"R = {r}")
    assert near_ties == 236


def test_rgb2gray_hand_values():
    u8 = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [1, 0, 0], [246, 197, 108]])
    got = np.asarray(ref_mode.rgb2gray(jnp.asarray(u8, jnp.float32)))[:, 0]
    # 76.2287, 149.696, 29.0753, 254.99999999999974, 0.2989, 201.5000046
    np.testing.assert_array_equal(got, [76, 150, 29, 255, 0, 202])
    np.testing.assert_array_equal(got, rgb2gray(u8))


def test_inputs_are_quantised_to_8_bits(photo_pairs):
    """Floats off the 8-bit grid score as the 8-bit image they round to (round(255 x))."""
    ref, dist = photo_pairs
    jitter = np.random.default_rng(0).uniform(-0.49, 0.49, dist.shape).astype(np.float32) / 255
    off_grid = jnp.clip(_f32(dist) + jitter, 0.0, 1.0)
    for name in ("psnr", "ssim", "gmsd"):
        fn = classical.get(name)
        np.testing.assert_array_equal(np.asarray(fn(_f32(ref), off_grid)), np.asarray(fn(_f32(ref), _f32(dist))))


def test_to_8bit_rounds_and_saturates_as_im2uint8():
    """Every level of 0..255 (from k / 255), round-half-even between levels, saturation outside
    [0, 1] and NaN -> 0, as MATLAB's im2uint8; inside a jitted program as well as eagerly."""
    levels = np.arange(256, dtype=np.float32)
    odd = np.array([-3.0, -0.4 / 255, 1.4 / 255, 254.6 / 255, 1.0 + 0.4 / 255, 300.0 / 255, np.nan, np.inf, -np.inf],
                   np.float32)
    want = np.array([0, 0, 1, 255, 255, 255, 0, 255, 0], np.float32)
    for fn in (ref_mode.to_8bit, jax.jit(ref_mode.to_8bit)):
        np.testing.assert_array_equal(np.asarray(fn(jnp.asarray(levels / np.float32(255)))), levels)
        np.testing.assert_array_equal(np.asarray(fn(jnp.asarray(odd))), want)
    assert np.asarray(ref_mode.to_8bit(jnp.float32(0.5))) == 128.0  # 127.5: the even neighbour


# --------------------------------------------------------------------------------- golden checks


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_mode_matches_matlab_transcription(photo_pairs, name):
    ref, dist = photo_pairs
    got = _scores(name, ref, dist)
    np.testing.assert_allclose(got, _want(name, ref, dist), rtol=RTOL[name], atol=ATOL[name])


@pytest.mark.parametrize("name", ["ms_ssim", "gmsd", "ssim"])
def test_reference_mode_odd_sizes(odd_pairs, name):
    ref, dist = odd_pairs
    np.testing.assert_allclose(_scores(name, ref, dist), _want(name, ref, dist), rtol=RTOL[name], atol=ATOL[name])


@pytest.mark.parametrize("name", ["gmsd", "psnr", "psnr_y"])
def test_reference_mode_tiny_images(tiny_pairs, name):
    ref, dist = tiny_pairs
    np.testing.assert_allclose(_scores(name, ref, dist), _want(name, ref, dist), rtol=RTOL[name], atol=ATOL[name])


def test_ssim_downsample_option_matches_ssim_m():
    """``reference_mode.ssim(downsample=True)`` is ssim.m's f x f pre-filter (f = 2 at 384 px)."""
    ref, dist = _pairs(data.astronaut()[:384, :512], seed=2)
    ref, dist = ref[:2], dist[:2]
    got = np.asarray(jax.jit(ref_mode.ssim, static_argnames="downsample")(_f32(ref), _f32(dist), downsample=True))
    box = np.ones((2, 2)) / 4
    half = lambda u8: imfilter_same(rgb2gray(u8), box, "symmetric")[::2, ::2]  # noqa: E731
    want = [ssim_index(half(a), half(b))[0] for a, b in zip(ref, dist)]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_psnr_equals_skimage_on_uint8(photo_pairs):
    ref, dist = photo_pairs
    want = [peak_signal_noise_ratio(a, b) for a, b in zip(ref, dist)]  # data_range 255 from uint8
    np.testing.assert_allclose(_scores("psnr", ref, dist), want, atol=2e-5)


def test_identical_images(photo_pairs):
    ref, _ = photo_pairs
    x = _f32(ref)  # the fixture's shape: reuses the compiled functions
    assert np.all(np.isposinf(np.asarray(classical.get("psnr")(x, x))))
    assert np.all(np.isposinf(np.asarray(classical.get("psnr_y")(x, x))))
    np.testing.assert_allclose(np.asarray(classical.get("ssim")(x, x)), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(classical.get("ms_ssim")(x, x)), 1.0, atol=1e-6)
    assert np.all(np.asarray(classical.get("gmsd")(x, x)) == 0.0)
    # An inverted image has negative cs at every scale: clipped to 0 (MATLAB: complex).
    np.testing.assert_array_equal(np.asarray(classical.get("ms_ssim")(x, 1.0 - x)), 0.0)


# ------------------------------------------------- power: each one-line bug fails a golden check

MUTATIONS = {
    "gray coefficients R<->B": ("ssim", Options(gray_coeffs=MATLAB_GRAY[::-1])),
    "gray coefficients BT.601 0.299/0.587/0.114": ("gmsd", Options(gray_coeffs=BT601)),
    "gray not rounded (ssim)": ("ssim", Options(round_gray=False)),
    "gray not rounded (gmsd)": ("gmsd", Options(round_gray=False)),
    "gray not rounded (ms_ssim)": ("ms_ssim", Options(round_gray=False)),
    "ssim 'same' instead of 'valid'": ("ssim", Options(ssim_shape="same")),
    "ms_ssim 'same' instead of 'valid'": ("ms_ssim", Options(ssim_shape="same")),
    "ms_ssim cs at the lowpass scale": ("ms_ssim", Options(ms_last="cs")),
    "ms_ssim no exponent on mssim(5)": ("ms_ssim", Options(ms_last_exponent=False)),
    "ms_ssim weights reversed": ("ms_ssim", Options(ms_weights=MS_WEIGHTS[::-1])),
    "gmsd (2:2:end) instead of (1:2:end)": ("gmsd", Options(gmsd_phase=1)),
    "gmsd T = 170 / 255^2": ("gmsd", Options(gmsd_T=170 / 255**2)),
    "psnr on grey instead of RGB": ("psnr", Options(psnr_on="gray")),
}
# Borders of the 2x2 lowpass only count where a side is odd.
ODD_ONLY = {
    "ms_ssim imfilter zero border": ("ms_ssim", Options(ms_down="zeros")),
    "gmsd symmetric instead of zero border": ("gmsd", Options(gmsd_down="symmetric")),
}
# n vs n - 1 moves GMSD by 1 / (2n): 4e-5 on 192x256 (4x the tolerance), 3% on the tiny images.
TINY_ONLY = {"gmsd population std": ("gmsd", Options(gmsd_ddof=0))}


def _departure(name: str, ref, dist, o: Options) -> float:
    """How far the bug moves the transcription's scores, in units of the golden tolerance."""
    want, bad = _want(name, ref, dist), _want(name, ref, dist, o)
    tol = ATOL[name] + RTOL[name] * np.abs(want)
    return float(np.max(np.abs(bad - want) / tol))


@pytest.mark.parametrize("bug", sorted(MUTATIONS))
def test_golden_checks_catch_one_line_bugs(bug):
    """Each bug, applied to the transcription, moves at least one score by 10x the golden
    tolerance on the fixture images (the JAX code sits within 0.1x of it): JAX code with that
    bug fails the golden check."""
    ref, dist = _pairs(PHOTOS["astronaut"](), seed=len("astronaut"))
    name, o = MUTATIONS[bug]
    assert _departure(name, ref, dist, o) > 10, bug


@pytest.mark.parametrize("bug", sorted(ODD_ONLY))
def test_odd_size_checks_catch_border_bugs(odd_pairs, bug):
    name, o = ODD_ONLY[bug]
    assert _departure(name, *odd_pairs, o) > 10, bug


def test_tiny_image_check_catches_population_std(tiny_pairs):
    name, o = TINY_ONLY["gmsd population std"]
    assert _departure(name, *tiny_pairs, o) > 10


def test_float_mode_departs_from_reference(photo_pairs):
    """The float mode is not the reference: near-identical pairs show it most (GMSD ~2x)."""
    ref, dist = photo_pairs
    near = slice(4, 6)  # the one-grey-level and JPEG-95 pairs
    r = _scores("gmsd", ref[near], dist[near])
    f = np.asarray(classical.get("gmsd", "float")(_f32(ref[near]), _f32(dist[near])))
    assert np.all(np.abs(r - f) > 0.1 * r)


# ------------------------------------------------------------------------------- the registry


def test_registry():
    assert classical.NAMES == (
        "psnr", "psnr_y", "ssim", "ms_ssim", "gmsd", "vif", "fsim", "cw_ssim", "nlpd", "vsi", "mad",
    )
    for name in classical.NAMES:
        fn, higher = classical.BASELINES[name]
        assert fn is classical.get(name) is classical.get(name, "reference")
        assert higher == classical.HIGHER_IS_BETTER[name] == (name not in ("gmsd", "nlpd", "mad"))
        assert classical.get(name, "float") is not fn
    with pytest.raises(ValueError, match="unknown classical metric 'lpips'"):
        classical.get("lpips")
    with pytest.raises(ValueError, match="unknown mode 'matlab'"):
        classical.get("ssim", mode="matlab")


def test_reference_mode_validates_and_vmaps():
    with pytest.raises(ValueError, match="at least 161"):
        classical.get("ms_ssim")(jnp.zeros((1, 160, 200, 3)), jnp.zeros((1, 160, 200, 3)))
    with pytest.raises(ValueError, match="float in \\[0, 1\\]"):
        ref_mode.gmsd(jnp.zeros((1, 8, 8, 3), jnp.uint8), jnp.zeros((1, 8, 8, 3), jnp.uint8))
    with pytest.raises(ValueError, match="smaller than the 11-px window"):
        ref_mode.ssim(jnp.zeros((1, 8, 64, 3)), jnp.zeros((1, 8, 64, 3)))
    ref, dist = _pairs(data.coffee()[:40, :48], seed=1)
    split = (2, 3, 40, 48, 3)
    stacked = jax.jit(jax.vmap(ref_mode.gmsd))(_f32(ref).reshape(split), _f32(dist).reshape(split))
    np.testing.assert_allclose(np.asarray(stacked).ravel(), _scores("gmsd", ref, dist), rtol=1e-6)


# ---------------------------------------------- MATLAB values published with pyiqa's images

# ResultsCalibra/results_original.csv of pyiqa (chaofengc/IQA-PyTorch): MATLAB on five TID2013
# pairs, grey by rgb2gray, SSIM by ssim_index.m without downsampling, PSNR on RGB.
PUBLISHED = {
    "psnr": (21.11, 20.99, 27.01, 23.3, 21.62),
    "ssim": (0.6993, 0.9978, 0.9989, 0.9669, 0.6519),
    "gmsd": (
        0.220347639470143, 0.0005220585050504579, 0.0004482814810014102, 0.134631933046914, 0.204996493556054,
    ),
    "ms_ssim": (0.6733, 0.9996, 0.9998, 0.9566, 0.8462),
}


@pytest.mark.parametrize("name, decimals", [("psnr", 2), ("ssim", 4)])
def test_published_matlab_values_to_every_printed_digit(calibration_pairs, name, decimals):
    got = _scores(name, *calibration_pairs)
    np.testing.assert_allclose(got, PUBLISHED[name], atol=0.5 * 10**-decimals + 1e-6)


def test_published_matlab_gmsd(calibration_pairs):
    got = _scores("gmsd", *calibration_pairs)
    np.testing.assert_allclose(got, PUBLISHED["gmsd"], rtol=1e-5)  # seen: 1e-7 (float32)
    want = _want("gmsd", *calibration_pairs)
    np.testing.assert_allclose(want, PUBLISHED["gmsd"], rtol=1e-12)  # the transcription: 1e-13


def test_published_matlab_ms_ssim(calibration_pairs):
    """I04, I06, I08 agree to the printed precision (1e-4); I03 and I19 do not (0.6700 and
    0.8418 against 0.6733 and 0.8462), as pyiqa's own implementation does not (0.6698, 0.8418):
    see ``reference_mode.ms_ssim``. The transcription is the reference for those two."""
    got = _scores("ms_ssim", *calibration_pairs)
    np.testing.assert_allclose(got[1:4], PUBLISHED["ms_ssim"][1:4], atol=1e-4)
    np.testing.assert_allclose(got, _want("ms_ssim", *calibration_pairs), atol=1e-5)


# ------------------------------------------------------------- cross-checks: pyiqa and piq


def _torch_pair(ref_u8, dist_u8, gray: bool):
    """NCHW float64 tensors in [0, 1]; with ``gray``, the MATLAB grey image in all 3 channels."""
    torch = pytest.importorskip("torch")
    if gray:
        ref_u8, dist_u8 = (np.repeat(rgb2gray(u)[..., None], 3, axis=-1) for u in (ref_u8, dist_u8))
    return tuple(torch.from_numpy(u.transpose(0, 3, 1, 2) / 255.0) for u in (ref_u8, dist_u8))


def _without_eps(psnr_db: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """pyiqa's and piq's PSNR is -10 log10(MSE + 1e-8) on [0, 1] data; undo the 1e-8 (0.09 dB at
    63 dB) to compare the MSE itself."""
    return -10.0 * np.log10(10.0 ** (-psnr_db / 10.0) - eps)


def _import_or_skip(module: str):
    """``pytest.importorskip`` that also skips on a broken install (e.g. a torchvision built for
    another torch raises RuntimeError on import)."""
    try:
        return pytest.importorskip(module)
    except pytest.skip.Exception:
        raise
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"{module} does not import: {type(e).__name__}: {e}")


# pyiqa's defaults: grey = round(255 (0.299 R + 0.587 G + 0.114 B)) (YIQ, not rgb2gray), cs maps
# clipped at 0 (ReLU), GMSD's sqrt with +1e-12. Fed our MATLAB grey image in all three channels,
# its grey step returns that image (0.299 + 0.587 + 0.114 = 1), so what is left to compare is
# the algorithm: tolerances below. On RGB its grey differs from rgb2gray by one level on some
# pixels, which moves near-identical pairs most (tolerances: "rgb").
PYIQA_TOL = {
    # name: (atol on the MATLAB grey input, atol on RGB). Seen on the fixture images, grey / RGB:
    # PSNR 8e-6 / 8e-6 dB, SSIM 1.5e-6 / 2.9e-5, MS-SSIM 1.1e-6 / 2.4e-5, GMSD 6e-9 / 2e-5.
    "psnr": (1e-4, 1e-4),  # RGB both ways (after undoing pyiqa's +1e-8 on the MSE)
    "ssim": (1e-5, 3e-4),
    "ms_ssim": (1e-5, 3e-4),
    "gmsd": (1e-7, 2e-4),
}


@pytest.mark.parametrize("name", sorted(PYIQA_TOL))
def test_crosscheck_pyiqa(photo_pairs, name):
    _import_or_skip("torch")
    pyiqa = _import_or_skip("pyiqa")
    ref, dist = photo_pairs
    metric = pyiqa.create_metric(name, device="cpu")
    ours = _scores(name, ref, dist)
    tol_gray, tol_rgb = PYIQA_TOL[name]
    # pyiqa's FR metrics take (distorted, reference).
    r, d = _torch_pair(ref, dist, gray=name != "psnr")
    fix = _without_eps if name == "psnr" else (lambda v: v)
    theirs = fix(metric(d, r).detach().numpy().reshape(-1))
    np.testing.assert_allclose(theirs, ours, atol=tol_gray)
    r, d = _torch_pair(ref, dist, gray=False)
    theirs_rgb = fix(metric(d, r).detach().numpy().reshape(-1))
    np.testing.assert_allclose(theirs_rgb, ours, atol=tol_rgb)


def test_crosscheck_piq(photo_pairs):
    """piq on the MATLAB grey image (1 channel, [0, 1]): SSIM without its downsampling and
    MS-SSIM agree (our sizes are even at every scale, where piq's replicate padding does not
    act); piq's GMSD is the population std (n, not n - 1) with a +eps in sqrt."""
    _import_or_skip("torch")
    piq = _import_or_skip("piq")
    ref, dist = photo_pairs
    r, d = _torch_pair(ref, dist, gray=True)
    r, d = r[:, :1], d[:, :1]
    piq_ssim = piq.ssim(d, r, data_range=1.0, downsample=False, reduction="none").numpy()
    np.testing.assert_allclose(piq_ssim, _scores("ssim", ref, dist), atol=1e-5)
    piq_ms_ssim = piq.multi_scale_ssim(d, r, data_range=1.0, reduction="none").numpy()
    np.testing.assert_allclose(piq_ms_ssim, _scores("ms_ssim", ref, dist), atol=1e-5)
    n = (ref.shape[1] // 2) * (ref.shape[2] // 2)
    piq_gmsd = piq.gmsd(d, r, data_range=1.0, reduction="none").numpy() * math.sqrt(n / (n - 1))
    np.testing.assert_allclose(piq_gmsd, _scores("gmsd", ref, dist), rtol=1e-5)
    rgb_r, rgb_d = _torch_pair(ref, dist, gray=False)
    piq_psnr = _without_eps(piq.psnr(rgb_d, rgb_r, data_range=1.0, reduction="none").numpy())
    np.testing.assert_allclose(piq_psnr, _scores("psnr", ref, dist), atol=1e-4)


def test_vif_gsm_field_is_the_covariance_eigenvalues_and_the_normalised_quadratic_form():
    """``_gsm`` against numpy: C is the 3x3 neighbourhoods' covariance normalised by their count
    (vifvec.m's ``cov``), lam its eigenvalues, s each block's ``b^T C^-1 b / 9``. The VIF
    ratio depends only on the product s * lam, so a C off by a constant factor is invisible
    there and is checked here."""
    from birqa_jax.classical import vif

    m = vif.M
    y = np.random.default_rng(3).normal(size=(1, 4 * m, 5 * m)).astype(np.float64)
    lam, s = vif._gsm(jnp.asarray(y, jnp.float32), 0.0)
    h, w = y.shape[1:]
    shifted = np.stack([y[0, i:h - m + 1 + i, j:w - m + 1 + j].ravel() for j in range(m) for i in range(m)])
    c = np.cov(shifted, bias=True)
    np.testing.assert_allclose(np.sort(np.asarray(lam[0])), np.linalg.eigvalsh(c), rtol=1e-3, atol=1e-5)
    blocks = y[0].reshape(h // m, m, w // m, m).transpose(3, 1, 0, 2).reshape(m * m, -1)
    want = np.einsum("ip,ij,jp->p", blocks, np.linalg.inv(c), blocks) / (m * m)
    np.testing.assert_allclose(np.asarray(s[0]).ravel(), want, rtol=1e-3)


def _vifsub_channel(x: np.ndarray, y: np.ndarray, w: int, tol: float = 1e-15) -> tuple[np.ndarray, np.ndarray]:
    """vifsub_est_M.m's distortion channel in float64 for one plane pair [H, W] (multiples of 3):
    window sums of ``w x w`` centred on the middle pixel of every 3x3 block, 'reflect1' borders
    (numpy's 'reflect'), then the script's guards in its order."""
    r, n = w // 2, float(w * w)

    def sums(p):
        q = np.pad(p, r, mode="reflect")
        return np.array([[q[i:i + w, j:j + w].sum() for j in range(1, p.shape[1], 3)]
                         for i in range(1, p.shape[0], 3)])

    mx, my = sums(x) / n, sums(y) / n
    ssx, ssy = np.maximum(sums(x * x) - n * mx * mx, 0), np.maximum(sums(y * y) - n * my * my, 0)
    cov = sums(x * y) - n * mx * my
    g = cov / (ssx + tol)
    vv = (ssy - g * cov) / n
    g[ssx < tol], vv[ssx < tol] = 0, ssy[ssx < tol]
    g[ssy < tol], vv[ssy < tol] = 0, 0
    vv[g < 0] = ssy[g < 0]
    g[g < 0] = 0
    return g, np.maximum(vv, tol)


def test_vif_channel_is_vifsub_est_m_on_flat_near_flat_and_anticorrelated_blocks():
    """``_channel`` against a float64 transcription of vifsub_est_M.m, where its guards act: a
    natural-like pair (gain about 1), a near-flat pair whose block variances lie between the
    tolerance and 1 (zero mean, amplitude 2e-8: where the floors of the variances and the
    tolerance added to ssx decide g and vv), a flat reference (g = 0, vv = ssy), a reference
    with an anticorrelated left half and a flat right half in the distorted image (g < 0, ssy = 0),
    3x3 blocks of zero covariance (g exactly 0, which keeps vv = ssy / n: the script replaces vv
    only where g < 0), and a near-flat reference against a constant grey 50 (ssy exactly 0 while
    the rounding leaves cov non-zero: only the flat-distortion guard zeroes g). The published
    values never reach these branches: their subbands are far from flat."""
    from birqa_jax.classical import vif

    rng = np.random.default_rng(5)
    shape = (12, 15)
    x0 = 100 + 20 * rng.standard_normal(shape)
    x1 = 2e-8 * rng.standard_normal(shape)
    x3 = 10 * rng.standard_normal(shape)
    y3 = np.concatenate([-x3[:, :6], np.zeros((12, 9))], axis=1)
    cols, rows = np.tile([1.0, 0.0, -1.0], (3, 1)), np.tile([[1.0], [0.0], [-1.0]], (1, 3))  # sum(cols * rows) = 0
    ref = np.stack([x0, x1, np.zeros(shape), x3, np.tile(cols, (4, 5)), x1])
    dist = np.stack([x0 + 5 * rng.standard_normal(shape), 0.5 * x1 + 2e-8 * rng.standard_normal(shape),
                     10 * rng.standard_normal(shape), y3, np.tile(rows, (4, 5)), np.full(shape, 50.0)])
    for w in (3, 5):
        g, vv = vif._channel(jnp.asarray(ref, jnp.float32), jnp.asarray(dist, jnp.float32), w)
        # Case 4 at w = 5: at two reflected corners the covariance is zero only up to rounding, and
        # the rounding decides g < 0 (vv = ssy) in either program; at w = 3 it is exactly zero.
        for i in range(len(ref)) if w == 3 else (0, 1, 2, 3, 5):
            # The transcription on the float32-rounded planes the JAX program sees.
            want_g, want_vv = _vifsub_channel(ref[i].astype(np.float32).astype(np.float64),
                                              dist[i].astype(np.float32).astype(np.float64), w)
            np.testing.assert_allclose(np.asarray(g[i]), want_g, rtol=1e-3, atol=1e-6, err_msg=f"g, case {i}, w {w}")
            np.testing.assert_allclose(np.asarray(vv[i]), want_vv, rtol=1e-3, atol=0, err_msg=f"vv, case {i}, w {w}")
        assert np.all(np.asarray(g[2]) == 0) and np.any(np.asarray(g[3]) == 0) and np.all(np.asarray(g[0]) > 0.5)
        assert np.all(np.asarray(g[5]) == 0) and (w != 3 or np.all(np.asarray(g[4]) == 0))
