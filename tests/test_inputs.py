"""The one input path (``birqa_jax.inputs``): files and PIL images in every common mode, float
tolerance, half-precision floats, lists, empty batches, tracers, trace-time conversion."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from birqa_jax import inputs


def _rgb(h=40, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _smooth(h=48, w=32):
    """A smooth, asymmetric RGB image (uint8) that survives JPEG."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([255 * y / (h - 1), 255 * x / (w - 1), 128 + 0 * x], -1).astype(np.uint8)


def test_exif_rotated_jpeg_is_read_upright(tmp_path):
    upright = _smooth()
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # 32x48 pixels on disk
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    path = tmp_path / "rotated.jpg"
    stored.save(path, quality=95, exif=exif)
    got = inputs.read_image(path)
    assert got.shape == (48, 32, 3) and got.dtype == np.float32
    assert np.abs(got - upright / 255.0).mean() < 0.02


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    gray = np.linspace(0, 65535, 40 * 48).reshape(40, 48).astype(np.uint16)
    Image.fromarray(gray).save(tmp_path / "g16.png")
    got = inputs.read_image(tmp_path / "g16.png")
    assert got.shape == (40, 48, 3)
    np.testing.assert_allclose(got[..., 1], gray / 65535.0, atol=1e-6)
    assert 0.45 < got.mean() < 0.55  # not nearly white


@pytest.mark.parametrize("mode", ["P", "PA", "LA", "RGBA", "CMYK", "YCbCr", "L", "1", "I;16"])
def test_pil_modes_become_rgb(mode):
    rgb = Image.fromarray(_rgb())
    im = rgb.convert(mode) if mode != "I;16" else Image.fromarray((np.asarray(rgb.convert("L"), np.uint16) * 257))
    got = inputs.read_image(im)
    want = np.asarray(im.convert("RGB") if mode != "I;16" else rgb.convert("L").convert("RGB"), np.float32) / 255
    assert got.shape == (40, 48, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_palette_pil_image_is_scored_as_colours_not_indices():
    rgb = Image.fromarray(_rgb())
    ref, dist, single = inputs.to_float_pair(rgb.convert("P"), rgb.convert("P").convert("RGB"))
    assert single and ref.shape == (1, 40, 48, 3)
    np.testing.assert_array_equal(ref, dist)


def test_paths_pil_and_arrays_mix(tmp_path):
    a = _rgb()
    Image.fromarray(a).save(tmp_path / "a.png")
    ref, dist, single = inputs.to_float_pair(str(tmp_path / "a.png"), a)  # a file and a uint8 array
    assert single
    np.testing.assert_array_equal(ref, dist)
    with pytest.raises(FileNotFoundError, match="no such image file"):
        inputs.to_float_pair(tmp_path / "missing.png", a)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image .*bad.png"):
        inputs.read_image(tmp_path / "bad.png")


def test_float_overshoot_within_tolerance_is_clipped_beyond_rejected():
    x = np.full((40, 48, 3), 0.5, np.float32)
    x[0, 0, 0], x[0, 1, 0] = 1 + 1e-6, -1e-4
    ref, _, _ = inputs.to_float_pair(x, x)
    assert ref.max() == 1.0 and ref.min() == 0.0
    x[0, 0, 0] = 1.002
    with pytest.raises(ValueError, match=r"must be in \[0, 1\].*clipped.*got values in \[-0\.0001, 1\.002\]"):
        inputs.to_float_pair(x, x)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, np.float16, np.float64])
def test_half_and_double_precision_floats_accepted(dtype):
    x = _rgb() / 255.0
    ref, _, _ = inputs.to_float_pair(x.astype(dtype), x.astype(dtype))
    assert ref.dtype == np.float32
    np.testing.assert_allclose(ref[0], x, atol=5e-3)


def test_lists_of_images_of_different_sizes():
    refs, dists = [_rgb(40, 48), _rgb(64, 64)], [_rgb(40, 48, 1), _rgb(64, 64, 1)]
    pairs, single = inputs.to_float_pairs(refs, dists)
    assert not single and [r.shape for r, _ in pairs] == [(1, 40, 48, 3), (1, 64, 64, 3)]
    assert inputs.to_float_pairs([], []) == ([], False)
    with pytest.raises(ValueError, match="same length"):
        inputs.to_float_pairs(refs, dists[:1])
    with pytest.raises(ValueError, match="pair 1: ref and dist must have the same shape"):
        inputs.to_float_pairs(refs, [dists[0], dists[0]])
    with pytest.raises(ValueError, match="both be lists"):  # a list against a batch as long as it
        inputs.to_float_pairs(refs, _rgb(2, 48))
    # Without a metric's minimum, one pixel is an image.
    inputs.check_pair(jnp.zeros((1, 1, 1, 3)), jnp.zeros((1, 1, 1, 3)))


def test_empty_batch_is_valid():
    empty = np.zeros((0, 40, 48, 3), np.float32)
    ref, dist, single = inputs.to_float_pair(empty, empty)
    assert ref.shape == (0, 40, 48, 3) and not single


@pytest.mark.parametrize("x, message", [
    (np.zeros((40, 48, 3), np.int32), "dtype int32"),
    (np.zeros((40, 48, 3), bool), "dtype bool"),
    (np.zeros((40, 48, 5), np.uint8), "channels"),
])
def test_other_inputs_get_clear_errors(x, message):
    with pytest.raises(ValueError, match=message):
        inputs.to_float_pair(x, x)


def test_tracer_on_the_host_path_says_what_to_use_instead():
    with pytest.raises(TypeError, match=r"tracer.*create_metric\(name\)\.apply"):
        jax.jit(lambda r: inputs.to_float_pair(r, r)[0])(jnp.zeros((1, 40, 48, 3)))


def test_traced_conversion_and_checks():
    u8 = _rgb()[None]
    r, d = jax.jit(lambda a, b: inputs.to_float_traced(a, b, who="t"))(u8, u8)
    np.testing.assert_allclose(np.asarray(r), u8 / 255.0, atol=1e-7)
    with pytest.raises(ValueError, match="t: ref must be uint8.*got dtype int32"):
        inputs.to_float_traced(jnp.zeros((1, 40, 48, 3), jnp.int32), u8, who="t")
    with pytest.raises(ValueError, match=r"must be \[B, H, W, 3\]"):
        inputs.to_float_traced(u8[0], u8[0], who="t")
    inputs.check_batch("x", jnp.zeros((1, 8, 8, 3), jnp.bfloat16))  # a float, not "not a float"
