"""The one validator of image inputs, shared by the model API, the classical metrics, the attacks,
the evaluation and the command line.

Two kinds of check, kept apart because only one of them can run under ``jax.jit``:

- trace time (numpy arrays, jax arrays and tracers alike; a wrong input fails with a ValueError
  before XLA sees it): ``check_batch`` / ``check_pair`` (shape and dtype) and
  ``to_float_traced`` (uint8/uint16 -> float32 in [0, 1], other floats -> float32);
- host side (concrete values only): ``check_values`` (finite, inside [0, 1]), ``read_image``
  (files and PIL images) and ``to_float_pair`` / ``to_float_pairs``, the entry of user images.

Accepted user images: numpy or jax arrays, PIL images and image file paths. Arrays are HW or
HW1 (grayscale, replicated to RGB), HWC or NHWC with 3 channels; uint8 (0..255), uint16
(0..65535) or float (float16, bfloat16, float32, float64) in [0, 1]. Float values at most
``FLOAT_TOLERANCE`` outside [0, 1] (rounding in a user's own pipeline) are clipped; values
further out, NaN and Inf are rejected. Files and PIL images: EXIF orientation applied, 8- and
16-bit, grayscale, palette, CMYK and YCbCr become RGB in [0, 1]; transparent images (RGBA, LA,
palette or colour-key transparency) are composited over white, as a viewer on a white page
shows them, so pixels hidden by transparency never count.

Image files that cannot be scored are a ValueError naming the file and the reason, never an
error or warning of the image library: unreadable or corrupt data, a folder or device in place
of a file, a header declaring more than ``MAX_PIXELS`` pixels (checked before any pixel is
decoded; raise the limit to read larger images), an animated or multi-page image (refused:
save the frame to score as a still image). A missing file is a FileNotFoundError.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

# Float inputs up to this far outside [0, 1] are clipped; further out they are rejected.
FLOAT_TOLERANCE = 1e-3
# Largest image file read, in pixels (width * height, 8192 x 8192), checked on the header before
# decoding: a small file can declare a huge size. Set it higher to read larger images (the CLI's
# --max-pixels); the image library's own limit follows it while birqa reads a file.
MAX_PIXELS = 8192 * 8192
# Integer dtypes accepted as images, with the value that means white.
INT_WHITE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


# uint8 -> float32 as a table: bitwise the host's ``v / 255`` (XLA turns a division by 255 into
# a multiplication that is one ulp off for about half the values), so uint8 and float input
# score the same.
_UINT8_TO_UNIT = np.arange(256, dtype=np.float32) / np.float32(255)


def _accepted(dtype) -> bool:
    return np.dtype(dtype) in INT_WHITE or jnp.issubdtype(dtype, jnp.floating)


def as_float(x: jax.Array) -> jax.Array:
    """Images as the model takes them, traceable: uint8 0..255 -> float32 ``v / 255`` (exactly
    the host's value), uint16 -> ``v / 65535``, float -> float32. The dtype is not checked here
    (``to_float_traced`` checks it)."""
    if x.dtype == jnp.uint8:
        return jnp.asarray(_UINT8_TO_UNIT)[x]
    white = INT_WHITE.get(np.dtype(x.dtype))
    x = jnp.asarray(x, jnp.float32)
    return x / white if white else x


def check_batch(name: str, x, *, who: str = "", channels: int = 3) -> None:
    """``x`` must be a float batch ``[B, H, W, channels]`` (static shape/dtype only, through
    chex; ValueError naming the problem)."""
    prefix = f"{who}: " if who else ""
    shape = f"{prefix}{name} must be [B, H, W, {channels}], got shape {tuple(x.shape)}"
    chex.assert_shape(x, (None, None, None, channels), custom_message=shape, exception_type=ValueError)
    chex.assert_type(x, float, custom_message=f"{prefix}{name} must be float in [0, 1], got dtype {x.dtype}",
                     exception_type=ValueError)


def check_pair(ref, dist, *, who: str = "", min_size: int = 1) -> None:
    """``ref`` and ``dist``: float batches ``[B, H, W, 3]`` of one shape, at least ``min_size``
    pixels on the short side (static shape/dtype only; safe on tracers)."""
    check_batch("ref", ref, who=who)
    check_batch("dist", dist, who=who)
    prefix = f"{who}: " if who else ""
    chex.assert_equal_shape(
        [ref, dist], custom_message=f"{prefix}ref and dist shapes differ: {tuple(ref.shape)} vs {tuple(dist.shape)}",
        exception_type=ValueError)
    h, w = ref.shape[1:3]
    if min(h, w) < min_size:
        raise ValueError(f"{prefix}images of {w}x{h} (width x height) are too small, need at least {min_size} px "
                         "on the short side")


def to_float_traced(ref, dist, *, who: str, min_size: int = 1) -> tuple[jax.Array, jax.Array]:
    """Trace-time entry of a pair inside jitted code: ``[B, H, W, 3]`` uint8 (0..255), uint16
    (0..65535) or float in [0, 1] -> float32 in [0, 1]; shape, dtype and size are checked
    (values are not: they are traced)."""
    out = []
    for name, x in (("ref", ref), ("dist", dist)):
        if not _accepted(x.dtype):
            raise ValueError(f"{who}: {name} must be uint8 (0..255), uint16 or float in [0, 1], got dtype {x.dtype}")
        out.append(as_float(x))
    check_pair(*out, who=who, min_size=min_size)
    return out[0], out[1]


def _shortest(v) -> str:
    return np.format_float_positional(np.float32(v), trim="-")


def check_values(name: str, x, *, tolerance: float = 0.0) -> None:
    """Concrete ``x`` must be finite and inside [-tolerance, 1 + tolerance] (host-side; not for
    tracers)."""
    x = np.asarray(x)
    if not x.size:
        return
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or Inf")
    lo, hi = x.min(), x.max()
    if lo < -tolerance or hi > 1.0 + tolerance:
        clipped = f" (values up to {tolerance:g} outside are clipped)" if tolerance else ""
        raise ValueError(
            f"float {name} must be in [0, 1]{clipped}, got values in [{_shortest(lo)}, {_shortest(hi)}] "
            "(pass uint8 for 0..255 images)"
        )


def positive_int(name: str, value) -> int:
    """``value`` as an int when it is a whole number >= 1 (a Python or numpy integer, not a bool,
    float or string), else a ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def size_text(shape: Sequence[int]) -> str:
    """``"W x H"`` of an HW, HWC or NHWC shape: sizes are printed width first, as image tools do."""
    h, w = shape[-3:-1] if len(shape) >= 3 else shape[:2]
    return f"{w}x{h}"


_PIL_LOCK = threading.Lock()


@contextlib.contextmanager
def _pil_reading(limit: int | None) -> Iterator[None]:
    """PIL's decompression-bomb check at ``limit`` pixels (None: off) with its warning raised as
    an error, for one read; the user's own PIL settings and warning filters are restored after.
    PIL keeps both process-wide, hence the lock."""
    from PIL import Image

    with _PIL_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limit
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


class _Refused(ValueError):
    """A file refused by a check of this module, told apart from PIL's own ValueErrors inside
    ``read_image`` (users get a plain ValueError with its message)."""


def _reason(e: BaseException) -> str:
    from PIL import Image, UnidentifiedImageError

    if isinstance(e, UnidentifiedImageError):
        return "not an image file in a format PIL reads (or its header is corrupt)"
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"a part of it declares more than MAX_PIXELS ({MAX_PIXELS}) pixels"
    if isinstance(e, MemoryError):
        return "out of memory while decoding it"
    return str(e) or type(e).__name__


def read_image(source) -> np.ndarray:
    """An image file (path) or a PIL image as float32 RGB ``[H, W, 3]`` in [0, 1].

    The EXIF orientation is applied; 8-bit modes are divided by 255, 16-bit (``I;16``, ``I``) by
    65535, 32-bit float (``F``) kept as is (and validated later); palette, grayscale, CMYK, YCbCr
    become RGB; transparency is composited over white. FileNotFoundError for a missing file;
    ValueError naming the file and the reason for anything else that cannot be read (the module
    docstring lists them).
    """
    from PIL import Image

    if isinstance(source, Image.Image):
        try:
            return _decode(source, "the PIL image")
        except _Refused as e:
            raise ValueError(str(e)) from None
        except Exception as e:  # a lazily opened PIL image decodes here
            raise ValueError(f"cannot read the PIL image: {_reason(e)}") from e
    path = os.fspath(source)
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder, not an image file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such image file: {path}")
    if not os.path.isfile(path):
        raise ValueError(f"{path} is not a regular file (a device, pipe or socket), not an image file")
    try:
        with _pil_reading(None), Image.open(path) as im:  # the header only: nothing decoded yet
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise _Refused(f"{path}: its header declares {w}x{h} = {w * h} pixels, more than the limit of "
                               f"{MAX_PIXELS} (birqa_jax.inputs.MAX_PIXELS, the CLI's --max-pixels); raise it to "
                               "read larger images")
            if getattr(im, "is_animated", False):
                raise _Refused(f"{path}: an animated or multi-page image ({getattr(im, 'n_frames', 'several')} "
                               "frames); BiRQA scores still images: save the frame to score as its own file")
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # for parts of the file decoded below (tiles, frames)
            return _decode(im, path)
    except _Refused as e:
        raise ValueError(str(e)) from None
    except Exception as e:  # PIL raises OSError, ValueError, SyntaxError, struct.error... for bad data
        raise ValueError(f"cannot read image {path}: {_reason(e)}") from e


def _decode(im, what: str) -> np.ndarray:
    from PIL import ImageOps

    return _pil_to_array(ImageOps.exif_transpose(im), what)


def _pil_to_array(im, what: str) -> np.ndarray:
    if im.mode == "F":  # 32-bit float: kept as is, validated with every float input
        return np.repeat(np.asarray(im, np.float32)[..., None], 3, -1)
    if im.mode.startswith("I"):  # 16-bit (I;16*), or 32-bit integer holding 16-bit values (I)
        x = np.asarray(im, np.float32)
        if x.min() < 0 or x.max() > 65535:
            raise _Refused(f"{what}: 32-bit integer image with values outside 0..65535")
        return np.repeat(x[..., None] / 65535.0, 3, -1)
    if im.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info:
        from PIL import Image

        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    try:
        rgb = im.convert("RGB")
    except ValueError as e:
        raise _Refused(f"{what}: cannot convert image mode {im.mode} to RGB: {e}") from e
    return np.asarray(rgb, np.float32) / 255.0


def _is_file_or_pil(x) -> bool:
    from PIL import Image

    return isinstance(x, (str, os.PathLike, Image.Image))


def _as_array(x, name: str) -> np.ndarray:
    """One image-like input as a numpy array: files and PIL images read, arrays fetched."""
    if isinstance(x, jax.core.Tracer):
        raise TypeError(
            f"{name} is a JAX tracer: scoring reads values on the host, so it cannot run under jax.jit, "
            "grad or vmap. Inside traced code use the pure function birqa_jax.create_metric(name).apply"
            "(params, ref, dist) or .as_loss()."
        )
    if _is_file_or_pil(x):
        return read_image(x)
    return np.asarray(x)


def _to_unit(name: str, x: np.ndarray) -> np.ndarray:
    """One NHWC array as float32 in [0, 1]: integers scaled, floats checked (``FLOAT_TOLERANCE``
    outside [0, 1] clipped)."""
    if not _accepted(x.dtype):
        raise ValueError(f"images must be uint8 (0..255), uint16 (0..65535) or float in [0, 1], got dtype {x.dtype}")
    white = INT_WHITE.get(x.dtype)
    if white:
        return x.astype(np.float32) / white
    x = x.astype(np.float32)
    check_values(name, x, tolerance=FLOAT_TOLERANCE)
    return np.clip(x, 0.0, 1.0)


def to_float_pair(ref, dist, *, min_size: int = 1) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate an image pair and convert it to float32 NHWC in [0, 1].

    ``ref``, ``dist``: arrays (HW, HWC or NHWC), PIL images or file paths, in any form of the
    module docstring; two arrays must share one dtype (so 0..255 and [0, 1] are never mixed).
    Returns ``(ref, dist, single)`` where ``single`` says the input was one pair (not NHWC).
    ValueError names any problem.
    """
    arrays = not (_is_file_or_pil(ref) or _is_file_or_pil(dist))
    ref, dist = _as_array(ref, "ref"), _as_array(dist, "dist")
    if ref.shape != dist.shape:
        sizes = ""
        if min(ref.ndim, dist.ndim) >= 2 and size_text(ref.shape) != size_text(dist.shape):
            sizes = f" (ref {size_text(ref.shape)}, dist {size_text(dist.shape)}, width x height)"
        raise ValueError(f"ref and dist must have the same shape, got {ref.shape} and {dist.shape}{sizes}")
    if arrays and ref.dtype != dist.dtype:
        raise ValueError(f"ref and dist must have the same dtype, got {ref.dtype} and {dist.dtype}")
    if ref.ndim == 2:
        ref, dist = ref[..., None], dist[..., None]
    single = ref.ndim == 3
    if single:
        ref, dist = ref[None], dist[None]
    if ref.ndim != 4:
        raise ValueError(f"images must be HWC or NHWC (or HW grayscale), got shape {ref.shape}")
    if ref.shape[-1] == 1:
        ref, dist = np.repeat(ref, 3, -1), np.repeat(dist, 3, -1)
    if ref.shape[-1] != 3:
        raise ValueError(f"images must have 3 (RGB) or 1 (grayscale) channels, got shape {ref.shape}")
    h, w = ref.shape[1:3]
    if h < min_size or w < min_size:
        raise ValueError(f"images must be at least {min_size}x{min_size} pixels, got {w}x{h} (width x height)")
    return _to_unit("ref", ref), _to_unit("dist", dist), single


def _is_image_list(x) -> bool:
    """A list/tuple of images (arrays, PIL images, paths), not a nested list of numbers."""
    return isinstance(x, (list, tuple)) and not (x and isinstance(x[0], (list, tuple, int, float)))


def to_float_pairs(ref, dist, *, min_size: int = 1) -> tuple[list[tuple[np.ndarray, np.ndarray]], bool]:
    """Pairs in any accepted form -> ``([(ref, dist), ...], single)``: float32 NHWC batches in
    [0, 1], each of one image size.

    ``ref``, ``dist``: one pair or one batch as for ``to_float_pair`` (one batch returned), or
    two equally long lists of single images (arrays, PIL images, paths), whose sizes may differ
    from pair to pair (one ``[1, H, W, 3]`` batch per pair; an empty list gives none).
    """
    if not (_is_image_list(ref) or _is_image_list(dist)):
        r, d, single = to_float_pair(ref, dist, min_size=min_size)
        return [(r, d)], single
    if not (_is_image_list(ref) and _is_image_list(dist)) or len(ref) != len(dist):
        raise ValueError(f"ref and dist must both be lists of the same length, got {_describe(ref)} and "
                         f"{_describe(dist)}")
    pairs = []
    for i, (r, d) in enumerate(zip(ref, dist)):
        try:
            r, d, single = to_float_pair(r, d, min_size=min_size)
        except ValueError as e:
            raise ValueError(f"pair {i}: {e}") from None
        if not single:
            raise ValueError(f"pair {i}: list items must be single images (HW or HWC), got a batch of {len(r)}")
        pairs.append((r, d))
    return pairs, False


def _describe(x: Any) -> str:
    if isinstance(x, Sequence) and not isinstance(x, str):
        return f"a {type(x).__name__} of {len(x)}"
    return f"a {type(x).__name__}"
