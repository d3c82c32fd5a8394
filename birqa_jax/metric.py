"""The public scoring API: load weights with their config, score image pairs, and use BiRQA as a
differentiable loss.

Higher scores mean better quality (closer to the reference). The trained default weights ship
inside the package (``birqa_jax/assets/birqa_default.msgpack``); they were trained on the
synthetic ``kadid_synthetic`` set (see the README), so for real use prefer weights trained on a
real dataset and pass them with ``params=``/``load()``.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from birqa_jax.evaluation.runner import score_arrays
from birqa_jax.inputs import to_float_pair
from birqa_jax.model import MIN_SIZE, BiRQA, ModelConfig, apply_fn, load_model

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


def prepare_pair(ref, dist) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate and convert an image pair to float32 NHWC in [0, 1] (``inputs.to_float_pair``
    with BiRQA's minimum size): HWC or NHWC, uint8 or float in [0, 1], grayscale replicated.
    Returns ``(ref, dist, single)``, ``single`` saying the input was one pair (HWC)."""
    return to_float_pair(ref, dist, min_size=MIN_SIZE)


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
    out = score_arrays({"birqa": lambda r, d: fn(params, r, d)}, ref, dist, batch_size)["birqa"].astype(np.float32)
    return float(out[0]) if single else out


def perceptual_loss(params, ref: jax.Array, dist: jax.Array, config: ModelConfig = ModelConfig()) -> jax.Array:
    """Differentiable BiRQA loss for use inside your own jitted JAX code: ``-mean(score)``.

    ref, dist: [B, H, W, 3] float32 in [0, 1] (not validated: this is traced). LOWER loss =
    HIGHER predicted quality = closer to the reference. Gradients flow to ``dist`` (and to
    ``ref`` and ``params`` if you differentiate with respect to them).
    """
    return -jnp.mean(BiRQA(config).apply(params, ref, dist))
