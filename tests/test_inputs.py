"""The one input path (``birqa_jax.inputs``): files and PIL images in every common mode, float
tolerance, half-precision floats, lists, empty batches, tracers, trace-time conversion; files
that cannot be scored (oversized headers, animations, folders, devices, truncated data) as a
ValueError naming the file and the reason, with nothing of PIL's leaking."""

import os
import struct
import warnings
import zlib

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
    with pytest.raises(ValueError, match=r"pair 1: ref and dist must have the same shape.*"
                                         r"\(ref 64x64, dist 48x40, width x height\)"):
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


def png_claiming(path, width, height):
    """A 4x4 PNG whose header declares ``width`` x ``height`` (its checksum fixed, as a crafted
    file would have it)."""
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    chunk = data[12:29]  # "IHDR" + its 13 bytes
    chunk[4:12] = struct.pack(">II", width, height)
    data[12:29] = chunk
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(chunk)))
    path.write_bytes(bytes(data))


def test_oversized_header_is_refused_before_decoding_and_the_limit_can_be_raised(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    png_claiming(tmp_path / "bomb.png", 100_000, 100_000)  # PIL alone: DecompressionBombError
    png_claiming(tmp_path / "big.png", 10_000, 10_000)  # PIL alone: DecompressionBombWarning
    Image.fromarray(_rgb()).save(tmp_path / "a.png")  # 48x40 = 1920 pixels
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # the user's own PIL limit, left alone
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning of PIL's would fail the test
        for name, size in (("bomb.png", "100000x100000 = 10000000000"), ("big.png", "10000x10000 = 100000000")):
            with pytest.raises(ValueError, match=rf"{name}: its header declares {size} pixels, more than the limit "
                                                 rf"of {inputs.MAX_PIXELS} \(birqa_jax.inputs.MAX_PIXELS"):
                inputs.read_image(tmp_path / name)
        assert inputs.read_image(tmp_path / "a.png").shape == (40, 48, 3)
        monkeypatch.setattr(inputs, "MAX_PIXELS", 1919)
        with pytest.raises(ValueError, match="48x40 = 1920 pixels, more than the limit of 1919"):
            inputs.read_image(tmp_path / "a.png")
    assert PILImage.MAX_IMAGE_PIXELS == 1000


def test_animated_and_multipage_images_are_refused_still_gif_read(tmp_path):
    frames = [Image.fromarray(_rgb(seed=i)) for i in range(3)]
    for name in ("a.gif", "a.tif", "a.png"):
        frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:])
        with pytest.raises(ValueError, match=rf"{name}: an animated or multi-page image \(3 frames\)"):
            inputs.read_image(tmp_path / name)
    frames[0].save(tmp_path / "still.gif")
    got = inputs.read_image(tmp_path / "still.gif")
    assert got.shape == (40, 48, 3) and np.abs(got - _rgb() / 255).mean() < 0.1  # palette-quantised


def test_transparent_pixels_are_composited_over_white(tmp_path):
    rgb = _rgb()
    alpha = np.zeros((40, 48), np.uint8)
    alpha[:, 16:32], alpha[:, 32:] = 128, 255
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "rgba.png")
    got = inputs.read_image(tmp_path / "rgba.png") * 255
    np.testing.assert_allclose(got[:, :16], 255, atol=1e-3)  # hidden pixels: white, whatever their colour
    np.testing.assert_allclose(got[:, 16:32], rgb[:, 16:32] / 255 * 128 + 255 * 127 / 255, atol=1)
    np.testing.assert_allclose(got[:, 32:], rgb[:, 32:], atol=1e-3)
    keyed = Image.fromarray(rgb).quantize(4)  # palette with one colour marked transparent (PNG tRNS)
    index = keyed.getpixel((0, 0))
    keyed.save(tmp_path / "keyed.png", transparency=index)
    got = inputs.read_image(tmp_path / "keyed.png")
    hidden = np.asarray(keyed) == index
    assert hidden.any() and (~hidden).any()
    np.testing.assert_array_equal(got[hidden], 1.0)
    np.testing.assert_allclose(got[~hidden], np.asarray(keyed.convert("RGB"))[~hidden] / 255, atol=1e-6)


def test_folders_devices_and_broken_files_get_their_reason(tmp_path):
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ValueError, match="folder.png is a folder, not an image file"):
        inputs.read_image(tmp_path / "folder.png")
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(ValueError, match="pipe.png is not a regular file"):
        inputs.read_image(tmp_path / "pipe.png")
    Image.fromarray(_rgb()).save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:300])
    with pytest.raises(ValueError, match=r"cannot read image .*cut.png: image file is truncated"):
        inputs.read_image(tmp_path / "cut.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"cannot read image .*text.png: not an image file in a format PIL reads"):
        inputs.read_image(tmp_path / "text.png")


def test_positive_int_takes_whole_numbers_only():
    assert inputs.positive_int("n", 3) == 3 and inputs.positive_int("n", np.int64(2)) == 2
    for bad in (0, -1, 2.5, "4", True, None):
        with pytest.raises(ValueError, match=f"n must be a positive integer, got {bad!r}"):
            inputs.positive_int("n", bad)


@pytest.mark.parametrize("bad", [-1, 65536])
def test_32bit_integer_image_outside_16_bits_is_refused(bad):
    """A mode-I PIL image (32-bit integers) is read as 16-bit levels; a value below 0 or above
    65535, either alone, is refused with the reason."""
    values = np.full((8, 8), 1000, np.int32)
    values[0, 0] = bad
    with pytest.raises(ValueError, match="32-bit integer image with values outside 0..65535"):
        inputs.read_image(Image.fromarray(values, mode="I"))
    values[0, 0] = 65535
    got = inputs.read_image(Image.fromarray(values, mode="I"))
    assert got[0, 0, 0] == 1.0 and got[1, 1, 0] == pytest.approx(1000 / 65535)


def test_check_values_default_tolerance_is_zero():
    inputs.check_values("x", np.array([0.0, 1.0]))
    for bad in (1.0001, -0.0001):
        with pytest.raises(ValueError, match="x"):
            inputs.check_values("x", np.array([0.5, bad]))


@pytest.mark.parametrize("shape", [(40, 48), (40, 48, 1), (2, 40, 48, 1)])
def test_grayscale_arrays_are_replicated_to_rgb(shape):
    grey = np.random.default_rng(0).integers(0, 256, shape, np.uint8)
    ref, dist, single = inputs.to_float_pair(grey, grey)
    assert ref.shape[-1] == 3 and single == (len(shape) < 4)
    want = (grey if grey.ndim > 2 else grey[..., None]).astype(np.float32) / 255
    np.testing.assert_array_equal(ref, np.broadcast_to(want.reshape(ref.shape[:-1] + (1,)), ref.shape))
