"""The one validator of image inputs, shared by the model API, the classical metrics, the attacks
and the evaluation.

Two kinds of check, kept apart because only one of them can run under ``jax.jit``:

- ``check_batch`` / ``check_pair``: shape and dtype, read from the array's static type, so they
  work on numpy arrays, jax arrays and tracers alike (a wrong input fails with a ValueError at
  trace time, before XLA sees it).
- ``check_values``: the values themselves (finite, inside [0, 1]); host-side, for concrete
  arrays only.

``to_float_pair`` is the host-side entry of user images: it validates a pair in any accepted
form and returns float32 NHWC batches in [0, 1].
"""

from __future__ import annotations

import numpy as np


def check_batch(name: str, x, *, who: str = "", channels: int = 3) -> None:
    """``x`` must be a float batch ``[B, H, W, channels]`` (static shape/dtype only)."""
    prefix = f"{who}: " if who else ""
    if len(x.shape) != 4 or x.shape[-1] != channels:
        raise ValueError(f"{prefix}{name} must be [B, H, W, {channels}], got shape {tuple(x.shape)}")
    if not np.issubdtype(np.dtype(x.dtype), np.floating):
        raise ValueError(f"{prefix}{name} must be float in [0, 1], got dtype {x.dtype}")


def check_pair(ref, dist, *, who: str = "", min_size: int = 1) -> None:
    """``ref`` and ``dist``: float batches ``[B, H, W, 3]`` of one shape, at least ``min_size``
    pixels on the short side (static shape/dtype only; safe on tracers)."""
    check_batch("ref", ref, who=who)
    check_batch("dist", dist, who=who)
    prefix = f"{who}: " if who else ""
    if tuple(ref.shape) != tuple(dist.shape):
        raise ValueError(f"{prefix}ref and dist shapes differ: {tuple(ref.shape)} vs {tuple(dist.shape)}")
    h, w = ref.shape[1:3]
    if min(h, w) < min_size:
        raise ValueError(f"{prefix}images of {h}x{w} are too small, need at least {min_size} px on the short side")


def check_values(name: str, x) -> None:
    """Concrete ``x`` must be finite and inside [0, 1] (host-side; not for tracers)."""
    x = np.asarray(x)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or Inf")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"float {name} must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}] (pass uint8 for 0..255 images)"
        )


def to_float_pair(ref, dist, *, min_size: int = 1) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate an image pair and convert it to float32 NHWC in [0, 1].

    Accepts numpy or jax arrays, HWC or NHWC, uint8 (0..255) or float in [0, 1]. Grayscale
    input (HW, HW1 or NHW1) is replicated to 3 channels; any other channel count but 3 is
    rejected. Returns ``(ref, dist, single)`` where ``single`` says the input was one pair (HWC).
    """
    ref, dist = np.asarray(ref), np.asarray(dist)
    if ref.shape != dist.shape:
        raise ValueError(f"ref and dist must have the same shape, got {ref.shape} and {dist.shape}")
    if ref.dtype != dist.dtype:
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
        raise ValueError(f"images must be at least {min_size}x{min_size} pixels, got {h}x{w}")
    if ref.dtype == np.uint8:
        return ref.astype(np.float32) / 255.0, dist.astype(np.float32) / 255.0, single
    if not np.issubdtype(ref.dtype, np.floating):
        raise ValueError(f"images must be uint8 or float in [0, 1], got dtype {ref.dtype}")
    check_values("ref", ref)
    check_values("dist", dist)
    return ref.astype(np.float32), dist.astype(np.float32), single
