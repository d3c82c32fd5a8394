"""The float (differentiable) mode of the classical baselines against independent float64
numpy/scipy/skimage references. The 8-bit reference mode is tested in test_classical_reference.py.

The references below are written from the papers and the authors' MATLAB code, not from the JAX
implementation: 'valid' 2-D correlations (scipy.signal) instead of padded separable filters,
scipy.ndimage box and Prewitt filters instead of reshapes and shifted slices.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.signal
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from birqa_jax import classical, imageops
from birqa_jax.classical import float_mode as bl

# ---------------------------------------------------------------- independent references (float64)


def luma_ref(rgb: np.ndarray) -> np.ndarray:
    """BT.601 Y of [H, W, 3] in [0, 1]."""
    return rgb @ np.array([0.299, 0.587, 0.114])


def matlab_box_downsample_ref(img: np.ndarray, f: int, mode: str) -> np.ndarray:
    """imfilter/conv2(img, ones(f)/f^2, ..., 'same') then img(1:f:end, 1:f:end).

    MATLAB anchors an f-tap kernel at floor((f + 1) / 2) (1-based), scipy.ndimage at f // 2
    (0-based): for even f the scipy window must move one pixel right (origin -1).
    """
    origin = -1 if f % 2 == 0 else 0
    out = ndi.uniform_filter(img, size=f, mode=mode, origin=origin)
    return out[::f, ::f]


def gaussian_window() -> np.ndarray:
    """MATLAB fspecial('gaussian', 11, 1.5)."""
    t = np.arange(-5, 6)
    g = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * 1.5**2))
    return g / g.sum()


def ssim_terms_ref(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean SSIM, mean cs) over the 'valid' region, as Wang's ssim_index_new.m (data range 1)."""
    w = gaussian_window()

    def filt(a):
        return scipy.signal.correlate2d(a, w, mode="valid")

    c1, c2 = 0.01**2, 0.03**2
    mx, my = filt(x), filt(y)
    sxx, syy, sxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
    return float(np.mean(lum * cs)), float(np.mean(cs))


def ms_ssim_ref(ref_rgb: np.ndarray, dist_rgb: np.ndarray) -> float:
    """Wang's msssim.m on BT.601 Y, with negative terms clipped to 0."""
    x, y = luma_ref(ref_rgb), luma_ref(dist_rgb)
    weights = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    cs_values = []
    for _ in range(4):
        cs_values.append(ssim_terms_ref(x, y)[1])
        x = matlab_box_downsample_ref(x, 2, "reflect")
        y = matlab_box_downsample_ref(y, 2, "reflect")
    terms = np.maximum(np.array(cs_values + [ssim_terms_ref(x, y)[0]]), 0.0)
    return float(np.prod(terms**weights))


def gmsd_ref(ref_rgb: np.ndarray, dist_rgb: np.ndarray) -> float:
    """Xue et al.'s GMSD.m on 255 * BT.601 Y."""
    maps = []
    for rgb in (ref_rgb, dist_rgb):
        y = matlab_box_downsample_ref(255.0 * luma_ref(rgb), 2, "constant")
        gx = ndi.prewitt(y, axis=1, mode="constant") / 3.0
        gy = ndi.prewitt(y, axis=0, mode="constant") / 3.0
        maps.append(np.hypot(gx, gy))
    m1, m2 = maps
    gms = (2 * m1 * m2 + 170.0) / (m1**2 + m2**2 + 170.0)
    return float(np.std(gms, ddof=1))


# ------------------------------------------------------------------------------------ fixtures


def _distortions(img: np.ndarray, seed: int) -> np.ndarray:
    """[3, H, W, 3]: white noise, Gaussian blur, contrast reduction of ``img`` [H, W, 3]."""
    rng = np.random.default_rng(seed)
    noise = np.clip(img + rng.normal(0.0, 0.06, img.shape), 0.0, 1.0)
    blur = ndi.gaussian_filter(img, sigma=(1.6, 1.6, 0))
    contrast = 0.5 + 0.6 * (img - 0.5)
    return np.stack([noise, blur, contrast])


def _pairs(img: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    dist = _distortions(img, seed)
    return np.broadcast_to(img, dist.shape).copy(), dist


@pytest.fixture(scope="module")
def small():
    """Natural 64x96 crops (astronaut, coffee) with three distortions each: [6, 64, 96, 3]."""
    crops = [data.astronaut()[100:164, 180:276], data.coffee()[150:214, 200:296]]
    refs, dists = zip(*(_pairs(c / 255.0, i) for i, c in enumerate(crops)))
    return np.concatenate(refs), np.concatenate(dists)


@pytest.fixture(scope="module")
def medium():
    """Natural 161x181 crops (the smallest MS-SSIM size, odd at every scale): [3, 161, 181, 3]."""
    return _pairs(data.chelsea()[60:221, 120:301] / 255.0, 7)


_EAGER = {
    "psnr": bl.psnr,
    "psnr_y": functools.partial(bl.psnr, luma=True),
    "ssim": bl.ssim,
    "ms_ssim": bl.ms_ssim,
    "gmsd": bl.gmsd,
}


def _variant(name: str, mode: str):
    """A baseline run eagerly (op by op) or jitted (the registry's jit, whose cache tests share)."""
    return _EAGER[name] if mode == "eager" else classical.get(name, "float")


def _f32(a):
    return jnp.asarray(a, jnp.float32)


# ------------------------------------------------------------------------- helper hand facts


def test_box_downsample_reference_by_hand():
    rows = np.repeat(np.array([[1.0, 2.0, 3.0, 4.0, 5.0]]), 3, axis=0)
    # imfilter([1 2 3 4 5], [.5 .5], 'symmetric', 'same') = [1.5 2.5 3.5 4.5 5]; (1:2:end)
    np.testing.assert_allclose(matlab_box_downsample_ref(rows, 2, "reflect")[0], [1.5, 3.5, 5.0])
    # conv2 zero borders: the last odd sample is averaged with a zero.
    np.testing.assert_allclose(matlab_box_downsample_ref(rows, 2, "constant")[0], [1.5, 3.5, 2.5])
    # f = 3 is centred: (1+1+2)/3, (3+4+5)/3
    np.testing.assert_allclose(matlab_box_downsample_ref(rows, 3, "reflect")[0], [4 / 3, 4.0])
    # The JAX helper agrees on the same hand cases.
    x = jnp.asarray(rows[None, :, :, None])
    for f, mode, ref_mode in ((2, "symmetric", "reflect"), (2, "constant", "constant"), (3, "symmetric", "reflect")):
        got = np.asarray(imageops.box_downsample(x, f, mode))[0, :, :, 0]
        np.testing.assert_allclose(got, matlab_box_downsample_ref(rows, f, ref_mode), atol=1e-6)


@pytest.mark.parametrize(
    "hw, f", [((100, 900), 1), ((383, 512), 1), ((384, 512), 2), ((640, 700), 3), ((896, 1000), 4)]
)
def test_ssim_downsample_factor(hw, f):
    # 383 / 256 = 1.496 -> 1; 640 / 256 = 2.5 -> 3 with MATLAB's half-up rounding (Python: 2).
    assert imageops.matlab_downsample_factor(*hw) == f


# ------------------------------------------------------------------------------ the baselines


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_psnr_matches_skimage(small, mode):
    ref, dist = small
    fn, fn_y = _variant("psnr", mode), _variant("psnr_y", mode)
    got, got_y = np.asarray(fn(_f32(ref), _f32(dist))), np.asarray(fn_y(_f32(ref), _f32(dist)))
    r32, d32 = ref.astype(np.float32).astype(np.float64), dist.astype(np.float32).astype(np.float64)
    want = [peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(r32, d32)]
    want_y = [
        peak_signal_noise_ratio(luma_ref(a), luma_ref(b), data_range=1.0) for a, b in zip(r32, d32)
    ]
    assert got.shape == (len(ref),)
    np.testing.assert_allclose(got, want, atol=1e-4)  # dB; float32 MSE (seen: 2e-6)
    np.testing.assert_allclose(got_y, want_y, atol=1e-4)
    # Identical images: +inf, not capped.
    assert np.all(np.isposinf(np.asarray(fn(_f32(ref[:2]), _f32(ref[:2])))))


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_ssim_without_downsampling_matches_skimage(small, mode):
    """Below 384 px the MATLAB downsampling factor is 1, so the default equals skimage too."""
    ref, dist = small
    assert imageops.matlab_downsample_factor(*ref.shape[1:3]) == 1
    fn = functools.partial(bl.ssim, downsample=False) if mode == "eager" else _variant("ssim", mode)
    got = np.asarray(fn(_f32(ref), _f32(dist)))
    want = [
        structural_similarity(
            luma_ref(a), luma_ref(b), gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, data_range=1.0,
        )
        for a, b in zip(ref, dist)
    ]
    np.testing.assert_allclose(got, want, atol=1e-5)  # float32 vs float64 (seen: 4e-7)


@pytest.mark.parametrize(
    "crop, f",
    [
        (lambda: data.astronaut()[:384, :512], 2),
        # centred 3x3 box; 640 and 704 are not multiples of 3
        (lambda: data.hubble_deep_field()[:640, :704], 3),
    ],
)
def test_ssim_with_matlab_downsampling(crop, f):
    img = crop() / 255.0
    ref, dist = _pairs(img, 3)
    ref, dist = ref[:2], dist[:2]
    assert imageops.matlab_downsample_factor(*img.shape[:2]) == f
    got = np.asarray(classical.get("ssim", "float")(_f32(ref), _f32(dist)))
    want = []
    for a, b in zip(ref, dist):
        x = matlab_box_downsample_ref(luma_ref(a), f, "reflect")
        y = matlab_box_downsample_ref(luma_ref(b), f, "reflect")
        want.append(ssim_terms_ref(x, y)[0])
    np.testing.assert_allclose(got, want, atol=1e-5)  # seen: 1.4e-7; f = 2 instead of 3: 0.07 off


def test_ms_ssim_matches_reference(medium):
    # Jitted only: run op by op, the five scales compile ~250 one-op programs (20 s of the suite's
    # CPU time); the functions it calls run eagerly above (SSIM's terms, the box downsampling).
    ref, dist = medium
    fn = _variant("ms_ssim", "jit")
    got = np.asarray(fn(_f32(ref), _f32(dist)))
    want = [ms_ssim_ref(a, b) for a, b in zip(ref, dist)]
    np.testing.assert_allclose(got, want, atol=1e-5)  # seen: 1.4e-7
    assert np.all((got > 0.3) & (got < 1.0))


def test_ms_ssim_hand_facts(medium):
    ref, _ = medium
    fn = classical.get("ms_ssim", "float")
    np.testing.assert_allclose(np.asarray(fn(_f32(ref), _f32(ref))), 1.0, atol=1e-5)
    # An inverted image has negative contrast-structure at every scale: clipped to 0, not NaN.
    np.testing.assert_array_equal(np.asarray(fn(_f32(ref), _f32(1.0 - ref))), 0.0)


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_gmsd_matches_reference(small, mode):
    ref, dist = small
    fn = _variant("gmsd", mode)
    got = np.asarray(fn(_f32(ref), _f32(dist)))
    want = [gmsd_ref(a, b) for a, b in zip(ref, dist)]
    np.testing.assert_allclose(got, want, rtol=1e-5)  # seen: 3.4e-7 relative
    assert np.all(got > 0.01)
    # GMSD(x, x) is exactly 0, jitted or not.
    assert np.all(np.asarray(fn(_f32(ref), _f32(ref))) == 0.0)


def test_gmsd_odd_size_matches_reference(medium):
    ref, dist = medium
    got = np.asarray(classical.get("gmsd", "float")(_f32(ref), _f32(dist)))
    np.testing.assert_allclose(got, [gmsd_ref(a, b) for a, b in zip(ref, dist)], rtol=1e-5)


def test_registry_directions_and_ranking(small):
    """Every float-mode baseline ranks mild noise above strong noise, in its own direction."""
    ref, _ = small
    rng = np.random.default_rng(1)
    mild = np.clip(ref + rng.normal(0, 0.02, ref.shape), 0, 1)
    strong = np.clip(ref + rng.normal(0, 0.1, ref.shape), 0, 1)
    assert classical.HIGHER_IS_BETTER == {
        "psnr": True, "psnr_y": True, "ssim": True, "ms_ssim": True, "gmsd": False, "vif": True, "fsim": True,
        "cw_ssim": True, "nlpd": False, "vsi": True, "mad": False,
    }
    for name, higher_is_better in classical.HIGHER_IS_BETTER.items():
        if classical.MIN_SIZE[name] > min(ref.shape[1:3]):
            continue  # MS-SSIM (161 px) and VIF (72 px): covered above and in test_classical_fr.py
        fn = classical.get(name, "float")
        a = np.asarray(fn(_f32(ref), _f32(mild)))
        b = np.asarray(fn(_f32(ref), _f32(strong)))
        assert np.all((a > b) if higher_is_better else (a < b)), name


def test_gmsd_gradient_finite_on_flat_patches(small):
    """grad w.r.t. dist is finite where both images are flat (zero gradient magnitude)."""
    ref, dist = small
    ref, dist = ref.copy(), dist.copy()
    ref[:, 10:40, 10:40] = 0.5
    dist[:, 10:40, 10:40] = 0.5
    g = jax.jit(jax.grad(lambda d: bl.gmsd(_f32(ref), d).sum()))(_f32(dist))
    assert np.all(np.isfinite(np.asarray(g))) and np.any(np.asarray(g) != 0)


@pytest.mark.parametrize(
    "fn, ref_shape, dist_shape, match",
    [
        (bl.psnr, (1, 32, 32, 3), (1, 32, 30, 3), "shapes differ"),
        (bl.ssim, (32, 32, 3), (32, 32, 3), r"\[B, H, W, 3\]"),
        (bl.gmsd, (1, 32, 32, 4), (1, 32, 32, 4), r"\[B, H, W, 3\]"),
        (bl.ms_ssim, (1, 160, 200, 3), (1, 160, 200, 3), "at least 161"),
        (bl.ssim, (1, 8, 64, 3), (1, 8, 64, 3), "smaller than the 11-px window"),
    ],
)
def test_input_validation(fn, ref_shape, dist_shape, match):
    with pytest.raises(ValueError, match=match):
        fn(jnp.zeros(ref_shape), jnp.zeros(dist_shape))
    with pytest.raises(ValueError, match=match):
        jax.jit(fn)(jnp.zeros(ref_shape), jnp.zeros(dist_shape))


def test_integer_images_rejected():
    x = jnp.zeros((1, 32, 32, 3), jnp.uint8)
    with pytest.raises(ValueError, match="float in \\[0, 1\\], got dtype uint8"):
        bl.psnr(x, x)


def test_vmap_over_an_extra_axis_matches_the_batch(small):
    ref, dist = small
    split = (2, 3, 64, 96, 3)
    stacked = jax.jit(jax.vmap(bl.gmsd))(_f32(ref).reshape(split), _f32(dist).reshape(split))
    batched = classical.get("gmsd", "float")(_f32(ref), _f32(dist))
    np.testing.assert_allclose(np.asarray(stacked).ravel(), np.asarray(batched), rtol=1e-6)
