"""The 25 KADID-10k distortion types at 5 levels each, in numpy/scipy/Pillow.

Follows the definitions of KADID-10k (Lin, Hosu, Saupe, "KADID-10k: A Large-scale Artificially
Distorted IQA Database", QoMEX 2019) and the per-level parameters of the authors' generator (the
same one that produced KADIS-700k). Level 1 is the mildest, level 5 the strongest; the human mean
MOS of every (type, level) pair is in `kadid10k_type_level_mos.csv`, whose `type_name` column
`DISTORTION_NAMES` reproduces.

Conventions: images are `[H, W, 3] uint8` sRGB; every distortion works in float32 `[0, 1]` and
rounds back to uint8 (`round(255 * x)`, clipped), as MATLAB's `im2uint8` does. All randomness
comes from the `np.random.Generator` passed to `distort`, so a result is a pure function of
(image, type, level, generator state).

Where this module differs from the original generator:
  * Four KADID parameters are exact no-ops (Gaussian blur sigma 0.1, motion blur length 1, Lab
    saturation factor 1, mean shift 0: their MOS, about 4.6, is that of a pristine image). Each is
    replaced by a near-invisible setting that still alters a natural image: sigma 0.35, length
    1.05, factor 1.05, shift +0.01.
  * Denoise: KADID denoises with DnCNN; here total-variation denoising (Chambolle) per channel,
    with weight equal to the noise standard deviation (close to the PSNR-optimal weight).
  * Colour quantisation uses Pillow's median cut plus Floyd-Steinberg dithering where MATLAB's
    `rgb2ind` uses minimum-variance quantisation plus dithering.
  * Patch counts (non-eccentricity, colour block) are per image as in KADID (512x384 images),
    so on smaller images the patches cover a larger fraction of the area.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import interpolate, ndimage, signal
from skimage import restoration

NUM_TYPES = 25
NUM_LEVELS = 5

DISTORTION_NAMES: dict[int, str] = {
    1: "GBLUR",
    2: "Lens_Blur",
    3: "Motion_Blur",
    4: "Color_Diffusion",
    5: "Color_Shift",
    6: "Color_Quantization",
    7: "Saturation_Dist._HSV",
    8: "Saturation_Dist._Lab",
    9: "JP2K",
    10: "JPEG",
    11: "AWGN",
    12: "AWGN_YCbCr",
    13: "Impulse_Noise",
    14: "Multiplicative_Noise",
    15: "Denoising",
    16: "Brighten",
    17: "Darken",
    18: "Mean_Shift",
    19: "Jitter",
    20: "Non-eccentricity_patch",
    21: "Pixelate",
    22: "Quantization",
    23: "Color_Block",
    24: "High_Sharpen",
    25: "Contrast_Dist.",
}

# Smallest image side: the non-eccentricity patches need 16 px of margin on each side of a
# 16 px patch, and JPEG2000's 6 wavelet resolutions need at least 32 px.
MIN_SIDE = 48

_Array = np.ndarray
_Distortion = Callable[[_Array, float, np.random.Generator], _Array]


# --------------------------------------------------------------------------------------------
# Shared helpers. Float images are [H, W, 3] float32 in [0, 1] unless stated.


def _to_float(image: _Array) -> _Array:
    return image.astype(np.float32) / 255.0


def _to_uint8(x: _Array) -> _Array:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _apply_curve(image: _Array, curve: Callable[[_Array], _Array]) -> _Array:
    """Apply a pointwise intensity map to a uint8 image through a 256-entry lookup table."""
    lut = _to_uint8(curve(np.arange(256, dtype=np.float64) / 255.0))
    return lut[image]


def _minmax(x: _Array) -> _Array:
    """Stretch to [0, 1]; a constant array is returned unchanged (MATLAB `mapmm`)."""
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else x


def _gaussian(x: _Array, sigma: float) -> _Array:
    """Gaussian blur over the two spatial axes; MATLAB `imgaussfilt` support (radius ceil(2
    sigma)) and replicated borders."""
    return ndimage.gaussian_filter(
        x, sigma, mode="nearest", radius=math.ceil(2 * sigma), axes=(0, 1)
    )


def _filter2d(x: _Array, kernel: _Array) -> _Array:
    """Correlate every channel of `x` [H, W, C] with an odd, point-symmetric `kernel` [k, k],
    replicating borders. FFT based: lens and motion kernels reach 17x17."""
    r = kernel.shape[0] // 2
    padded = np.pad(x, ((r, r), (r, r), (0, 0)), mode="edge")
    out = signal.fftconvolve(padded, kernel[:, :, None], mode="valid", axes=(0, 1))
    return out.astype(np.float32)


@functools.lru_cache(maxsize=None)
def _disk_kernel(radius: float) -> _Array:
    """Anti-aliased disk (MATLAB `fspecial('disk')`): each tap is the fraction of its pixel
    square covered by the disk, estimated on a 16x16 sub-pixel grid; normalised to sum 1."""
    r = math.ceil(radius - 0.5)
    sub = (np.arange(16) + 0.5) / 16 - 0.5
    pos = (np.arange(-r, r + 1)[:, None] + sub[None, :]).ravel()  # sub-pixel centres
    inside = (pos[:, None] ** 2 + pos[None, :] ** 2) <= radius**2
    n = 2 * r + 1
    cover = inside.reshape(n, 16, n, 16).mean(axis=(1, 3))
    kernel = cover / cover.sum()
    kernel.flags.writeable = False
    return kernel


def _motion_kernel(length: float, angle_deg: float) -> _Array:
    """Linear motion blur (MATLAB `fspecial('motion')`): a segment of `length` pixels through
    the centre at `angle_deg`; each tap weighs max(0, 1 - distance to the segment)."""
    half = (length - 1) / 2
    r = math.ceil(half) + 1
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    theta = math.radians(angle_deg)
    ux, uy = math.cos(theta), -math.sin(theta)  # rows grow downwards
    t = np.clip(xx * ux + yy * uy, -half, half)
    dist = np.hypot(xx - t * ux, yy - t * uy)
    kernel = np.maximum(0.0, 1.0 - dist)
    return kernel / kernel.sum()


# sRGB (D65) <-> CIE Lab, as skimage and MATLAB define them. Own implementation: it is faster
# than skimage's, and it leaves out-of-gamut Lab unclipped until the final RGB (as MATLAB does)
# instead of warning about it.
_XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=np.float32,
)
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB.astype(np.float64)).astype(np.float32)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
_LAB_DELTA = 6.0 / 29.0


def _rgb_to_lab(rgb: _Array) -> _Array:
    """rgb: [..., 3] float in [0, 1] -> Lab [..., 3] float32 (L in [0, 100])."""
    rgb = rgb.astype(np.float32)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    t = (lin @ _XYZ_FROM_RGB.T) / _WHITE_D65
    f = np.where(
        t > _LAB_DELTA**3, np.cbrt(np.maximum(t, 0)), t / (3 * _LAB_DELTA**2) + 4.0 / 29.0
    )
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def _lab_to_rgb(lab: _Array) -> _Array:
    """Lab [..., 3] -> sRGB [..., 3] float32, unclipped (out-of-gamut colours leave [0, 1])."""
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    t = np.where(f > _LAB_DELTA, f**3, 3 * _LAB_DELTA**2 * (f - 4.0 / 29.0))
    lin = (t * _WHITE_D65) @ _RGB_FROM_XYZ.T
    gamma = 1.055 * np.maximum(lin, 0.0031308) ** (1 / 2.4) - 0.055
    return np.where(lin <= 0.0031308, 12.92 * lin, gamma).astype(np.float32)


# ITU-R BT.601 studio-swing YCbCr (MATLAB `rgb2ycbcr` on [0, 1] doubles).
_YCBCR_MATRIX = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]],
    dtype=np.float64,
) / 255.0
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0
_RGB_FROM_YCBCR = np.linalg.inv(_YCBCR_MATRIX)


def _rgb_to_ycbcr(rgb: _Array) -> _Array:
    """rgb: [..., 3] in [0, 1] -> YCbCr [..., 3] in [0, 1] (Y in [16, 235] / 255)."""
    return (rgb @ _YCBCR_MATRIX.T + _YCBCR_OFFSET).astype(np.float32)


def _ycbcr_to_rgb(ycc: _Array) -> _Array:
    return ((ycc - _YCBCR_OFFSET) @ _RGB_FROM_YCBCR.T).astype(np.float32)


def _quadratic_curve(t: _Array, mid: float) -> _Array:
    """The parabola through (0, 0), (0.5, mid), (1, 1) (MATLAB `spline` on three knots),
    clipped to [0, 1]: KADID's brighten/darken tone curve."""
    return np.clip((2 - 4 * mid) * t * t + (4 * mid - 1) * t, 0.0, 1.0)


def _multi_otsu_thresholds(hist: _Array, n_thresholds: int) -> _Array:
    """Exact multi-level Otsu (MATLAB `multithresh`) by dynamic programming.

    hist: [L] counts of the values 0..L-1. Returns `n_thresholds` non-decreasing integer
    thresholds t_k in [0, L-1]: values <= t_1 form class 0, t_k < v <= t_{k+1} class k.
    Maximises the between-class variance, i.e. the sum over classes of (sum of values)^2 /
    count. Classes may be empty when the image has fewer distinct values than classes.
    """
    levels = hist.shape[0]
    count = np.concatenate([[0.0], np.cumsum(hist, dtype=np.float64)])
    total = np.concatenate([[0.0], np.cumsum(hist * np.arange(levels), dtype=np.float64)])
    # gain[i, j]: score of one class made of the values i..j-1 (empty when j <= i).
    dc = count[None, :] - count[:, None]
    ds = total[None, :] - total[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(dc > 0, ds * ds / dc, 0.0)
    gain[np.tril_indices(levels + 1, -1)] = -np.inf
    best = gain[0].copy()  # best[j]: best score of one class covering values 0..j-1
    choice = []
    for _ in range(n_thresholds):
        scores = best[:, None] + gain
        choice.append(np.argmax(scores, axis=0))
        best = scores[choice[-1], np.arange(levels + 1)]
    bounds = [levels]
    for arg in reversed(choice):
        bounds.append(int(arg[bounds[-1]]))
    return np.clip(np.array(bounds[:0:-1]) - 1, 0, levels - 1)


def _cubic_weights(frac: _Array) -> tuple[_Array, _Array, _Array, _Array]:
    """Keys cubic-convolution weights with a = -0.5 (Catmull-Rom, MATLAB 'bicubic') of the
    taps at offsets -1, 0, 1, 2 from floor(position), for fractional parts `frac` in [0, 1)."""
    f2 = frac * frac
    f3 = f2 * frac
    return (
        0.5 * (-f3 + 2 * f2 - frac),
        0.5 * (3 * f3 - 5 * f2 + 2),
        0.5 * (-3 * f3 + 4 * f2 + frac),
        0.5 * (f3 - f2),
    )


def _warp_bicubic(x: _Array, dy: _Array, dx: _Array) -> _Array:
    """Sample x [H, W, C] float32 at (row + dy, col + dx), dy and dx [H, W] float32, with
    bicubic interpolation and replicated borders."""
    h, w, c = x.shape
    # Edge padding wide enough for every tap makes each tap one flat gather at a fixed offset.
    pad = math.ceil(max(np.abs(dy).max(), np.abs(dx).max())) + 2
    flat = np.pad(x, ((pad, pad), (pad, pad), (0, 0)), mode="edge").reshape(-1, c)
    row_stride = w + 2 * pad
    ys = np.arange(h, dtype=np.float32)[:, None] + dy
    xs = np.arange(w, dtype=np.float32)[None, :] + dx
    y0, x0 = np.floor(ys), np.floor(xs)
    wy, wx = _cubic_weights(ys - y0), _cubic_weights(xs - x0)
    # Flat index of the tap at offset (-1, -1) of every output pixel.
    corner = (y0.astype(np.intp) + pad - 1) * row_stride + (x0.astype(np.intp) + pad - 1)
    out = np.zeros_like(x)
    for i in range(4):
        row = np.zeros_like(x)
        for j in range(4):
            row += wx[j][..., None] * flat.take(corner + (i * row_stride + j), axis=0)
        out += wy[i][..., None] * row
    return out


# --------------------------------------------------------------------------------------------
# The distortions. Each maps (uint8 image, level parameter, rng) -> uint8 image.


def _gaussian_blur(image: _Array, sigma: float, rng: np.random.Generator) -> _Array:
    return _to_uint8(_gaussian(_to_float(image), sigma))


def _lens_blur(image: _Array, radius: float, rng: np.random.Generator) -> _Array:
    return _to_uint8(_filter2d(_to_float(image), _disk_kernel(radius)))


def _motion_blur(image: _Array, length: float, rng: np.random.Generator) -> _Array:
    kernel = _motion_kernel(length, rng.uniform(0.0, 180.0))
    return _to_uint8(_filter2d(_to_float(image), kernel))


def _color_diffusion(image: _Array, amount: float, rng: np.random.Generator) -> _Array:
    # Blur the chroma (a, b) with sigma 1.5 * amount + 2, then amplify it by `amount`.
    lab = _rgb_to_lab(_to_float(image))
    lab[..., 1:] = _gaussian(lab[..., 1:], 1.5 * amount + 2) * amount
    return _to_uint8(_lab_to_rgb(lab))


def _color_shift(image: _Array, amount: float, rng: np.random.Generator) -> _Array:
    # Shift the green channel by `amount` pixels in a random direction, blended in where the
    # image has edges (weight: smoothed, range-normalised gradient magnitude).
    x = _to_float(image)
    gray = x @ np.array([0.2989, 0.5870, 0.1140], dtype=np.float32)
    gy, gx = np.gradient(gray)
    e = _minmax(_gaussian(np.hypot(gx, gy), 4.0))
    e = _minmax(np.clip(e, 0.1, 1.0))
    lo, hi = np.percentile(e, [1, 99])
    e = _minmax(np.clip(e, lo, hi))
    direction = rng.random(2)
    dy, dx = np.rint(direction / np.linalg.norm(direction) * amount).astype(int)
    h, w = gray.shape
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    shifted = x[rows[:, None], cols[None, :], 1]
    x[..., 1] = shifted * e + x[..., 1] * (1 - e)
    return _to_uint8(x)


def _color_quantization(image: _Array, n_colors: float, rng: np.random.Generator) -> _Array:
    pil = Image.fromarray(image)
    palette = pil.quantize(
        colors=int(n_colors), method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    dithered = pil.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
    return np.array(dithered.convert("RGB"))


def _hsv_saturation(image: _Array, factor: float, rng: np.random.Generator) -> _Array:
    # Scaling HSV saturation by `factor` (kept unclipped, so a negative factor swaps to the
    # complementary hue) moves each channel towards V = max(R, G, B):
    # hsv2rgb(h, factor * s, v) = v + factor * (rgb - v).
    x = _to_float(image)
    v = x.max(axis=-1, keepdims=True)
    return _to_uint8(v + factor * (x - v))


def _lab_saturation(image: _Array, factor: float, rng: np.random.Generator) -> _Array:
    lab = _rgb_to_lab(_to_float(image))
    lab[..., 1:] *= factor
    return _to_uint8(_lab_to_rgb(lab))


def _jpeg2000(image: _Array, ratio: float, rng: np.random.Generator) -> _Array:
    buffer = io.BytesIO()
    Image.fromarray(image).save(
        buffer, format="JPEG2000", quality_mode="rates", quality_layers=[ratio], irreversible=True
    )
    return np.array(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def _jpeg(image: _Array, quality: float, rng: np.random.Generator) -> _Array:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    return np.array(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def _white_noise(image: _Array, var: float, rng: np.random.Generator) -> _Array:
    x = _to_float(image)
    return _to_uint8(x + math.sqrt(var) * rng.standard_normal(x.shape, dtype=np.float32))


def _color_component_noise(image: _Array, var: float, rng: np.random.Generator) -> _Array:
    # White noise on Y, Cb and Cr (MATLAB `imnoise` clips the noisy YCbCr to [0, 1]).
    ycc = _rgb_to_ycbcr(_to_float(image))
    noisy = np.clip(ycc + math.sqrt(var) * rng.standard_normal(ycc.shape, dtype=np.float32), 0, 1)
    return _to_uint8(_ycbcr_to_rgb(noisy))


def _impulse_noise(image: _Array, density: float, rng: np.random.Generator) -> _Array:
    # Salt and pepper on each channel value independently (MATLAB `imnoise` on an RGB array).
    u = rng.random(image.shape)
    out = image.copy()
    out[u < density / 2] = 0
    out[(u >= density / 2) & (u < density)] = 255
    return out


def _multiplicative_noise(image: _Array, var: float, rng: np.random.Generator) -> _Array:
    # Speckle: x + n * x with n uniform, zero mean, variance `var` (MATLAB 'speckle').
    x = _to_float(image)
    n = math.sqrt(12 * var) * (rng.random(x.shape, dtype=np.float32) - 0.5)
    return _to_uint8(x + n * x)


def _denoise(image: _Array, var: float, rng: np.random.Generator) -> _Array:
    # Artefacts of a denoiser: white noise, then TV denoising of each channel (see module doc).
    sigma = math.sqrt(var)
    x = _to_float(image)
    noisy = np.clip(x + sigma * rng.standard_normal(x.shape, dtype=np.float32), 0, 1)
    return _to_uint8(restoration.denoise_tv_chambolle(noisy, weight=sigma, channel_axis=-1))


def _brighten(image: _Array, amount: float, rng: np.random.Generator) -> _Array:
    # Average of the tone curve on RGB (weight 2) and on Lab lightness (weight 1).
    mid = 0.5 + amount / 2
    x = _to_float(image)
    lab = _rgb_to_lab(x)
    lab[..., 0] = 100.0 * _quadratic_curve(lab[..., 0] / 100.0, mid)
    via_lab = np.clip(_lab_to_rgb(lab), 0, 1)
    return _to_uint8((2 * _quadratic_curve(x, mid) + via_lab) / 3)


def _darken(image: _Array, amount: float, rng: np.random.Generator) -> _Array:
    return _apply_curve(image, lambda t: _quadratic_curve(t, 0.5 - amount / 2))


def _mean_shift(image: _Array, shift: float, rng: np.random.Generator) -> _Array:
    return _apply_curve(image, lambda t: t + shift)


def _jitter(image: _Array, amount: float, rng: np.random.Generator) -> _Array:
    # Five rounds of resampling at positions displaced by N(0, amount^2) pixels.
    x = _to_float(image)
    for _ in range(5):
        dy, dx = amount * rng.standard_normal((2,) + x.shape[:2], dtype=np.float32)
        x = _warp_bicubic(x, dy, dx)
    return _to_uint8(x)


def _non_eccentricity(image: _Array, n_patches: float, rng: np.random.Generator) -> _Array:
    # Copy 16x16 patches to a random offset of up to +-8 px, the source kept 16 px off the
    # borders; later patches may copy already moved content, as in KADID's sequential loop.
    patch, margin = 16, 16
    h, w, _ = image.shape
    out = image.copy()
    for u in rng.random((int(n_patches), 4)):
        top = margin + int(u[0] * (h - patch - 2 * margin))
        left = margin + int(u[1] * (w - patch - 2 * margin))
        new_top = top + round((u[2] - 0.5) * margin)
        new_left = left + round((u[3] - 0.5) * margin)
        block = out[top : top + patch, left : left + patch].copy()
        out[new_top : new_top + patch, new_left : new_left + patch] = block
    return out


def _pixelate(image: _Array, strength: float, rng: np.random.Generator) -> _Array:
    # Nearest-neighbour downscale by z = 0.95 - strength^0.6, then back up.
    h, w, _ = image.shape
    z = 0.95 - strength**0.6
    small = Image.fromarray(image).resize(
        (math.ceil(z * w), math.ceil(z * h)), Image.Resampling.NEAREST
    )
    return np.array(small.resize((w, h), Image.Resampling.NEAREST))


def _quantization(image: _Array, n_thresholds: float, rng: np.random.Generator) -> _Array:
    # Multi-level Otsu thresholds over all channel values; each class is mapped to its upper
    # threshold, the lowest class to 0 and the highest to 255 (MATLAB `imquantize`).
    hist = np.bincount(image.ravel(), minlength=256)
    thresholds = _multi_otsu_thresholds(hist, int(n_thresholds))
    values = np.concatenate([[0], thresholds[1:], [255]])
    lut = values[np.searchsorted(thresholds, np.arange(256), side="left")].astype(np.uint8)
    return lut[image]


def _color_block(image: _Array, n_blocks: float, rng: np.random.Generator) -> _Array:
    # Paste 32x32 blocks of uniform random colour at random positions.
    size = 32
    h, w, _ = image.shape
    out = image.copy()
    for _ in range(int(n_blocks)):
        top = rng.integers(0, h - size + 1)
        left = rng.integers(0, w - size + 1)
        out[top : top + size, left : left + size] = rng.integers(0, 256, 3, dtype=np.uint8)
    return out


def _high_sharpen(image: _Array, amount: float, rng: np.random.Generator) -> _Array:
    # Unsharp masking of Lab lightness, Gaussian radius 3 (MATLAB `imsharpen`).
    lab = _rgb_to_lab(_to_float(image))
    lightness = lab[..., :1]
    lab[..., :1] = lightness + amount * (lightness - _gaussian(lightness, 3.0))
    return _to_uint8(_lab_to_rgb(lab))


def _contrast(image: _Array, amount: float, rng: np.random.Generator) -> _Array:
    # Not-a-knot cubic spline (MATLAB `spline`) through 0.3 -> 0.25 - a/4, 0.5 -> 0.5 and
    # 0.7 -> 0.75 + a/4: a > 0 raises contrast, a < 0 lowers it.
    curve = interpolate.CubicSpline(
        [0.0, 0.3, 0.5, 0.7, 1.0], [0.0, 0.25 - amount / 4, 0.5, 0.75 + amount / 4, 1.0]
    )
    return _apply_curve(image, curve)


# type id -> (distortion, parameter of levels 1..5). Parameters are KADID's except the four
# no-op settings replaced as the module docstring explains (marked "KADID: ...").
_DISTORTIONS: dict[int, tuple[_Distortion, tuple[float, ...]]] = {
    1: (_gaussian_blur, (0.35, 0.5, 1.0, 2.0, 5.0)),  # sigma, px; KADID: 0.1 at level 1
    2: (_lens_blur, (1.0, 2.0, 4.0, 6.0, 8.0)),  # disk radius, px
    3: (_motion_blur, (1.05, 2.0, 4.0, 6.0, 10.0)),  # length, px; KADID: 1 at level 1
    4: (_color_diffusion, (1.0, 3.0, 6.0, 8.0, 12.0)),  # amount
    5: (_color_shift, (1.0, 3.0, 6.0, 8.0, 12.0)),  # shift, px
    6: (_color_quantization, (64, 48, 32, 16, 8)),  # colours
    7: (_hsv_saturation, (0.4, 0.2, 0.1, 0.0, -0.4)),  # saturation factor
    8: (_lab_saturation, (1.05, 2.0, 3.0, 6.0, 9.0)),  # chroma factor; KADID: 1 at level 1
    9: (_jpeg2000, (16, 32, 45, 120, 400)),  # compression ratio
    10: (_jpeg, (43, 36, 24, 7, 4)),  # quality
    11: (_white_noise, (0.001, 0.002, 0.003, 0.005, 0.01)),  # variance
    12: (_color_component_noise, (0.0001, 0.0005, 0.001, 0.002, 0.003)),  # variance
    13: (_impulse_noise, (0.001, 0.005, 0.01, 0.02, 0.03)),  # density
    14: (_multiplicative_noise, (0.001, 0.005, 0.01, 0.02, 0.05)),  # variance
    15: (_denoise, (0.01, 0.03, 0.05, 0.1, 0.15)),  # noise variance before denoising
    16: (_brighten, (0.1, 0.2, 0.4, 0.7, 1.1)),  # amount
    17: (_darken, (0.05, 0.1, 0.2, 0.4, 0.8)),  # amount
    18: (_mean_shift, (0.15, 0.08, 0.01, -0.08, -0.15)),  # shift; KADID: 0 at level 3
    19: (_jitter, (0.05, 0.1, 0.2, 0.5, 1.0)),  # displacement std, px
    20: (_non_eccentricity, (20, 40, 60, 80, 100)),  # patches
    21: (_pixelate, (0.01, 0.05, 0.1, 0.2, 0.5)),  # strength
    22: (_quantization, (20, 16, 13, 10, 7)),  # thresholds
    23: (_color_block, (2, 4, 6, 8, 10)),  # blocks
    24: (_high_sharpen, (1.0, 2.0, 3.0, 6.0, 12.0)),  # amount
    25: (_contrast, (0.3, 0.15, 0.0, -0.4, -0.6)),  # amount
}


def _check_int(name: str, value: object, upper: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int in [1, {upper}], got {value!r}")
    if not 1 <= value <= upper:
        raise ValueError(f"{name} must be in [1, {upper}], got {value}")


def distort(image: np.ndarray, type_id: int, level: int, rng: np.random.Generator) -> np.ndarray:
    """Apply KADID-10k distortion `type_id` at `level` to an image.

    Args:
      image: [H, W, 3] uint8 RGB, H and W at least `MIN_SIDE` (48). Not modified.
      type_id: distortion type, 1..25 (names in `DISTORTION_NAMES`).
      level: 1 (mildest) .. 5 (strongest).
      rng: source of all randomness (noise, blur direction, patch positions); the result is
        deterministic given its state. Deterministic types draw nothing from it.

    Returns:
      [H, W, 3] uint8, a new array.

    Raises:
      ValueError: for a type_id or level out of range or not an int, an image that is not
        uint8, not [H, W, 3] or smaller than 48 px on a side, or an rng that is not a
        `np.random.Generator`.
    """
    _check_int("type_id", type_id, NUM_TYPES)
    _check_int("level", level, NUM_LEVELS)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must have shape [H, W, 3], got {image.shape}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(f"image must be at least {MIN_SIDE} px on each side, got {image.shape}")
    fn, params = _DISTORTIONS[int(type_id)]
    return fn(image, params[int(level) - 1], rng)
