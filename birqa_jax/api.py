"""Scoring API: score image pairs, and use BiRQA as a differentiable loss.

Higher scores mean better quality (closer to the reference). The trained default weights ship
inside the package (``birqa_jax/assets/birqa_default.msgpack``); they were trained on the
synthetic ``kadid_synthetic`` set (see the README), so for real use prefer weights trained on a
real dataset and pass them with ``params=``/``load()``.
"""

from __future__ import annotations

import functools
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from birqa_jax.io import load_model
from birqa_jax.model import MIN_SIZE, BiRQA, ModelConfig

DEFAULT_WEIGHTS = os.path.join(os.path.dirname(__file__), "assets", "birqa_default.msgpack")


def default_weights_path() -> str:
    """Path of the packaged default weights; a clear error says how to make them if absent."""
    if not os.path.isfile(DEFAULT_WEIGHTS):
        raise FileNotFoundError(
            "no default BiRQA weights are packaged with this installation "
            f"(expected {DEFAULT_WEIGHTS}). Train them with `python train.py` (the embedded default "
            "config exports them to <workdir>/birqa.msgpack) and pass params=birqa_jax.load(path), "
            "or pass explicitly initialised params (birqa_jax.init_params())."
        )
    return DEFAULT_WEIGHTS


@functools.lru_cache(maxsize=None)
def _load_cached(path: str, mtime: float):
    params, config, _ = load_model(path)
    return jax.device_put(params), config


def load(path: str | None = None):
    """Load ``(params, config)`` from a model file, or the packaged default weights."""
    path = os.path.abspath(path or default_weights_path())
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no BiRQA model file at {path!r}")
    return _load_cached(path, os.path.getmtime(path))


@functools.lru_cache(maxsize=None)
def apply_fn(config: ModelConfig) -> Callable:
    """The jitted ``(params, ref, dist) -> [B]`` score function of ``config`` (cached, so one
    compilation per config and input shape for the whole process)."""
    return jax.jit(BiRQA(config).apply)


def prepare_pair(ref, dist) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate and convert an image pair to float32 NHWC in [0, 1].

    Accepts numpy or jax arrays, HWC or NHWC, uint8 (0..255) or float in [0, 1]. Grayscale
    input (HW, HW1 or NHW1) is replicated to 3 channels; anything else with a channel count
    other than 3 is rejected. Returns ``(ref, dist, single)`` where ``single`` says the input
    was one pair (HWC).
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
    if h < MIN_SIZE or w < MIN_SIZE:
        raise ValueError(f"images must be at least {MIN_SIZE}x{MIN_SIZE} pixels, got {h}x{w}")
    if ref.dtype == np.uint8:
        return ref.astype(np.float32) / 255.0, dist.astype(np.float32) / 255.0, single
    if not np.issubdtype(ref.dtype, np.floating):
        raise ValueError(f"images must be uint8 or float in [0, 1], got dtype {ref.dtype}")
    for name, x in (("ref", ref), ("dist", dist)):
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} contains NaN or Inf")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"float {name} must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}] "
                "(pass uint8 for 0..255 images)"
            )
    return ref.astype(np.float32), dist.astype(np.float32), single


def score(ref, dist, params=None, config: ModelConfig | None = None, batch_size: int | None = None):
    """BiRQA score of each (ref, dist) pair; higher = better quality.

    Args:
      ref, dist: a pair (HWC) or a batch (NHWC) of RGB images, uint8 or float in [0, 1].
      params: model parameters; ``None`` uses the packaged default weights (and their config).
      config: the model config of ``params`` (default ``ModelConfig()``).
      batch_size: score at most this many pairs per device call (bounds memory).

    Returns:
      a Python float for a single pair, else a float32 numpy array [N].
    """
    if params is None:
        if config is not None:
            raise ValueError("config given without params: pass both, or neither for the default weights")
        params, config = load()
    config = config or ModelConfig()
    ref, dist, single = prepare_pair(ref, dist)
    fn = apply_fn(config)
    n = ref.shape[0]
    step = batch_size or n
    out = np.concatenate([np.asarray(fn(params, ref[i : i + step], dist[i : i + step])) for i in range(0, n, step)])
    return float(out[0]) if single else out


def perceptual_loss(params, ref: jax.Array, dist: jax.Array, config: ModelConfig = ModelConfig()) -> jax.Array:
    """Differentiable BiRQA loss for use inside your own jitted JAX code: ``-mean(score)``.

    ref, dist: [B, H, W, 3] float32 in [0, 1] (not validated: this is traced). LOWER loss =
    HIGHER predicted quality = closer to the reference. Gradients flow to ``dist`` (and to
    ``ref`` and ``params`` if you differentiate with respect to them).
    """
    return -jnp.mean(BiRQA(config).apply(params, ref, dist))
