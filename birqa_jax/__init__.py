"""birqa-jax: BiRQA full-reference image quality assessment in JAX/Flax.

Quick use::

    import birqa_jax
    s = birqa_jax.score(ref, dist)                  # packaged default weights
    params = birqa_jax.init_params()                # or untrained weights
    s = birqa_jax.score(ref, dist, params=params)

The package's layers, lowest first (a module imports only from layers below its own):
``inputs``; ``model``; ``classical``, ``adversarial``, ``data``; ``evaluation``; ``train``;
``metric`` and ``cli``; this package's public face.
"""

from birqa_jax.metric import default_weights_path, load, perceptual_loss, prepare_pair, score
from birqa_jax.model import MIN_SIZE, BiRQA, ModelConfig, init_params, load_model, param_count, save_model

__version__ = "0.1.0"

__all__ = [
    "BiRQA", "MIN_SIZE", "ModelConfig", "default_weights_path", "init_params", "load", "load_model",
    "param_count", "perceptual_loss", "prepare_pair", "save_model", "score",
]
