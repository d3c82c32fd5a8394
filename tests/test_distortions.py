"""Tests for birqa_jax.data.distortions: every (type, level) on a natural image, strength
ordering, determinism, argument errors, and the building blocks against skimage, hand-computed
values and noise statistics."""

import math

import numpy as np
import pytest
from skimage import color, data, filters

from birqa_jax.data import distortions as D
from birqa_jax.data.distortions import DISTORTION_NAMES, NUM_LEVELS, NUM_TYPES, distort

TYPES = range(1, NUM_TYPES + 1)
LEVELS = range(1, NUM_LEVELS + 1)
RANDOM_TYPES = (3, 5, 11, 12, 13, 14, 15, 19, 20, 23)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """96x128 crop of astronaut(): face, hair, suit and background."""
    return np.ascontiguousarray(data.astronaut()[60:156, 160:288])


@pytest.fixture(scope="module")
def outputs(image) -> dict[tuple[int, int], np.ndarray]:
    """distort(image, t, lv) for every type and level, each with a fresh seed-0 generator."""
    return {(t, lv): distort(image, t, lv, np.random.default_rng(0)) for t in TYPES for lv in LEVELS}


def _gray(value: int, shape=(96, 128)) -> np.ndarray:
    return np.full(shape + (3,), value, dtype=np.uint8)


def test_names_match_kadid_table():
    assert sorted(DISTORTION_NAMES) == list(TYPES)
    assert DISTORTION_NAMES[1] == "GBLUR"
    assert DISTORTION_NAMES[9] == "JP2K"
    assert DISTORTION_NAMES[20] == "Non-eccentricity_patch"
    assert DISTORTION_NAMES[25] == "Contrast_Dist."


@pytest.mark.parametrize("type_id", TYPES)
def test_every_level_returns_changed_uint8(image, outputs, type_id):
    before = image.copy()
    for level in LEVELS:
        out = outputs[type_id, level]
        assert out.dtype == np.uint8 and out.shape == image.shape
        assert out.flags.c_contiguous and out.flags.writeable
        assert not np.array_equal(out, image), f"type {type_id} level {level} left image as is"
    np.testing.assert_array_equal(image, before)  # input untouched


# Level 1 is the mildest, level 5 the strongest: on the crop, PSNR falls level by level for every
# type but mean shift and contrast (signed levels: KADID orders them by MOS, not by size) and the
# randomly placed patches and blocks (their damage depends on where they land).
@pytest.mark.parametrize("type_id", sorted(set(TYPES) - {18, 20, 23, 25}))
def test_psnr_falls_with_level(image, outputs, type_id):
    psnrs = [_psnr(image, outputs[type_id, level]) for level in LEVELS]
    assert all(a > b for a, b in zip(psnrs, psnrs[1:])), psnrs


@pytest.mark.parametrize("type_id", TYPES)
def test_deterministic_given_generator_state(image, outputs, type_id):
    again = distort(image, type_id, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(again, outputs[type_id, 3])
    other = distort(image, type_id, 3, np.random.default_rng(1))
    assert np.array_equal(other, again) == (type_id not in RANDOM_TYPES)


def test_non_contiguous_input_matches_contiguous():
    view = data.astronaut()[::3, ::3]  # strided view, 171x171
    for type_id in (1, 9, 21):
        np.testing.assert_array_equal(
            distort(view, type_id, 2, np.random.default_rng(0)),
            distort(np.ascontiguousarray(view), type_id, 2, np.random.default_rng(0)),
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"type_id": 0}, "type_id must be in"),
        ({"type_id": 26}, "type_id must be in"),
        ({"type_id": 1.0}, "type_id must be an int"),
        ({"type_id": True}, "type_id must be an int"),
        ({"level": 0}, "level must be in"),
        ({"level": 6}, "level must be in"),
        ({"image": _gray(0).astype(np.float32)}, "must be uint8"),
        ({"image": _gray(0)[..., 0]}, r"shape \[H, W, 3\]"),
        ({"image": np.zeros((96, 128, 4), np.uint8)}, r"shape \[H, W, 3\]"),
        ({"image": _gray(0, (40, 128))}, "at least 48 px"),
        ({"rng": np.random.RandomState(0)}, "numpy.random.Generator"),
        ({"rng": 0}, "numpy.random.Generator"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    args = {"image": _gray(128), "type_id": 1, "level": 1, "rng": np.random.default_rng(0)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        distort(**args)


# ---- building blocks against independent references ----------------------------------------


def test_lab_conversion_matches_skimage(image):
    rgb = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    for x in (rgb, image.astype(np.float32) / 255):
        lab = color.rgb2lab(x)
        np.testing.assert_allclose(D._rgb_to_lab(x), lab, atol=2e-3)
        np.testing.assert_allclose(D._lab_to_rgb(lab), color.lab2rgb(lab), atol=1e-5)


def test_ycbcr_matches_skimage():
    rgb = np.random.default_rng(0).random((64, 64, 3))
    np.testing.assert_allclose(D._rgb_to_ycbcr(rgb) * 255, color.rgb2ycbcr(rgb), atol=1e-3)
    np.testing.assert_allclose(D._ycbcr_to_rgb(D._rgb_to_ycbcr(rgb)), rgb, atol=1e-5)


@pytest.mark.parametrize("level", [1, 2, 3, 4])  # factors 0.4, 0.2, 0.1, 0
def test_hsv_saturation_matches_skimage(image, outputs, level):
    hsv = color.rgb2hsv(image)
    hsv[..., 1] *= D._DISTORTIONS[7][1][level - 1]
    expected = np.rint(color.hsv2rgb(hsv) * 255)
    assert np.abs(outputs[7, level].astype(np.float64) - expected).max() <= 1


@pytest.mark.parametrize("classes", [2, 3, 4])
def test_multi_otsu_matches_skimage(classes):
    gray = data.camera()
    hist = np.bincount(gray.ravel(), minlength=256)
    np.testing.assert_array_equal(
        D._multi_otsu_thresholds(hist, classes - 1), filters.threshold_multiotsu(gray, classes)
    )


def test_quantization_uses_at_most_n_plus_one_values(outputs):
    for level, n_thresholds in zip(LEVELS, D._DISTORTIONS[22][1]):
        assert len(np.unique(outputs[22, level])) <= n_thresholds + 1


def test_color_quantization_uses_at_most_n_colours(outputs):
    for level, n_colors in zip(LEVELS, D._DISTORTIONS[6][1]):
        assert len(np.unique(outputs[6, level].reshape(-1, 3), axis=0)) <= n_colors


def test_color_quantization_levels_use_kadids_palette_sizes(outputs):
    # KADID's generator quantises to 64, 48, 32, 16 and 8 colours; the crop has enough colours
    # for the dithered image to use every palette entry.
    counts = [len(np.unique(outputs[6, level].reshape(-1, 3), axis=0)) for level in LEVELS]
    assert counts == [64, 48, 32, 16, 8]


@pytest.mark.parametrize("radius", [1.0, 4.0, 8.0])
def test_disk_kernel_is_normalised_disk(radius):
    kernel = D._disk_kernel(radius)
    assert kernel.shape == (2 * math.ceil(radius - 0.5) + 1,) * 2
    assert kernel.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(kernel, kernel.T)
    np.testing.assert_allclose(kernel, kernel[::-1, ::-1])
    # Fully covered taps weigh 1 / (disk area).
    assert kernel.max() == pytest.approx(1 / (math.pi * radius**2), rel=0.01)


def test_motion_kernel_hand_computed():
    horizontal = D._motion_kernel(2.0, 0.0)
    centre = horizontal.shape[0] // 2
    np.testing.assert_allclose(horizontal[centre, centre - 1 : centre + 2], [0.25, 0.5, 0.25])
    assert horizontal.sum() == pytest.approx(horizontal[centre].sum())
    np.testing.assert_allclose(D._motion_kernel(2.0, 90.0), horizontal.T, atol=1e-12)
    single = D._motion_kernel(1.0, 37.0)  # a point: identity
    c = single.shape[0] // 2
    assert single[c, c] == 1.0 and single.sum() == 1.0


def test_bicubic_warp_reproduces_linear_ramp():
    h, w = 16, 20
    ramp = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :, None], (h, w, 3))
    zero = np.zeros((h, w), np.float32)
    np.testing.assert_array_equal(D._warp_bicubic(np.ascontiguousarray(ramp), zero, zero), ramp)
    shifted = D._warp_bicubic(np.ascontiguousarray(ramp), zero, zero + 0.3)
    # Columns whose four taps lie inside the image are exact (Catmull-Rom keeps linear signals).
    np.testing.assert_allclose(shifted[:, 1:-2], ramp[:, 1:-2] + 0.3, atol=1e-5)
    # Last column: taps at w-2, w-1, w-1, w-1 (replicated) with weights w_-1(0.3) and 1 - w_-1.
    w_minus1 = 0.5 * (-(0.3**3) + 2 * 0.3**2 - 0.3)
    np.testing.assert_allclose(shifted[:, -1], (w - 1) - w_minus1, atol=1e-5)


def test_noise_statistics_on_gray():
    gray = _gray(128, (192, 256))
    values = gray.size
    # White noise, level 5: variance 0.01.
    diff = distort(gray, 11, 5, np.random.default_rng(0)).astype(np.float64) - 128
    assert diff.std() / 255 == pytest.approx(0.1, rel=0.03)
    assert abs(diff.mean()) < 0.5
    # Impulse noise, level 5: density 0.03, half black and half white.
    out = distort(gray, 13, 5, np.random.default_rng(0))
    assert (out == 0).sum() / values == pytest.approx(0.015, rel=0.1)
    assert (out == 255).sum() / values == pytest.approx(0.015, rel=0.1)
    assert ((out == 0) | (out == 128) | (out == 255)).all()
    # Speckle, level 5: x + n x with var(n) = 0.05, n uniform.
    diff = distort(gray, 14, 5, np.random.default_rng(0)).astype(np.float64) - 128
    assert diff.std() / 128 == pytest.approx(math.sqrt(0.05), rel=0.03)
    assert np.abs(diff).max() <= 128 * math.sqrt(12 * 0.05) / 2 + 1


def test_tone_curves_hand_computed():
    gray = _gray(100)
    assert (distort(gray, 18, 1, np.random.default_rng(0)) == 138).all()  # 100 + 0.15 * 255
    assert (distort(gray, 18, 5, np.random.default_rng(0)) == 62).all()
    # Darken by 0.4: the parabola through (0, 0), (0.5, 0.3), (1, 1) is 0.8 t^2 + 0.2 t.
    t = 100 / 255
    expected = round(255 * (0.8 * t * t + 0.2 * t))
    assert (distort(gray, 17, 4, np.random.default_rng(0)) == expected).all()
    # Black and white are fixed points of every tone curve.
    for type_id in (16, 17, 25):
        for value in (0, 255):
            assert (distort(_gray(value), type_id, 3, np.random.default_rng(0)) == value).all()


def test_color_block_pastes_uniform_blocks():
    out = distort(_gray(128, (64, 64)), 23, 1, np.random.default_rng(0))  # two 32x32 blocks
    changed = (out != 128).any(axis=-1)
    assert 0 < changed.sum() <= 2 * 32 * 32
    assert len(np.unique(out[changed], axis=0)) <= 2


def test_brighten_by_hand_with_skimage_lab():
    # Level 3 brightens by 0.4: the parabola through (0, 0), (0.5, 0.7), (1, 1) is -0.8 t^2 +
    # 1.8 t, applied to RGB (weight 2) and to Lab lightness (weight 1, skimage's conversions).
    def curve(t):
        return -0.8 * t * t + 1.8 * t

    t = 100 / 255
    lightness = color.rgb2lab(np.full((1, 1, 3), t))[0, 0, 0]
    via_lab = color.lab2rgb(np.array([[[100 * curve(lightness / 100), 0.0, 0.0]]]))[0, 0]
    want = np.round(255 * (2 * curve(t) + via_lab) / 3)
    got = distort(_gray(100), 16, 3, np.random.default_rng(0))
    assert np.abs(got.astype(int) - want).max() <= 1


def test_motion_blur_angle_is_uniform_over_a_half_turn(monkeypatch):
    # A line kernel at angle a + 180 is the one at a: the angle is drawn from [0, 180).
    angles = []
    monkeypatch.setattr(D, "_motion_kernel", lambda length, angle: angles.append(angle))
    monkeypatch.setattr(D, "_filter2d", lambda x, kernel: x)
    rng = np.random.default_rng(0)
    for _ in range(1000):
        D._motion_blur(_gray(128, (4, 4)), 1.0, rng)
    assert 0.0 <= min(angles) < 1.0 and 179.0 < max(angles) < 180.0


def test_non_eccentricity_moves_one_patch_within_the_margins():
    # Pixels that encode their own position: the moved 16x16 patch names its source, which lies
    # 16 px or more inside every border, at most 8 px from where it lands.
    rows, cols = np.mgrid[0:64, 0:80]
    image = np.stack([rows, cols, np.zeros_like(rows)], -1).astype(np.uint8)
    sources = set()
    for seed in range(100):
        out = D._non_eccentricity(image, 1, np.random.default_rng(seed))
        moved = np.argwhere((out != image).any(-1))
        if moved.size == 0:  # a zero offset
            continue
        (top, left), (bottom, _right) = moved.min(0), moved.max(0)
        src_top, src_left = out[top, left, :2]
        np.testing.assert_array_equal(out[top:top + 16, left:left + 16, 0] - src_top, rows[:16, :16])
        assert 16 <= src_top <= 64 - 32 and 16 <= src_left <= 80 - 32
        assert abs(int(src_top) - top) <= 8 and abs(int(src_left) - left) <= 8 and bottom - top < 16
        sources.add((int(src_top), int(src_left)))
    assert len(sources) > 20


def test_color_block_lands_on_every_position_where_it_fits():
    rng = np.random.default_rng(0)
    tops = set()
    for _ in range(60):
        out = D._color_block(_gray(128, (34, 35)), 1, rng)
        changed = np.argwhere((out != 128).any(-1))
        tops.add(tuple(changed.min(0)))
        assert tuple(changed.max(0) - changed.min(0)) == (31, 31)
    assert {t for t, _ in tops} == {0, 1, 2} and {c for _, c in tops} == {0, 1, 2, 3}
