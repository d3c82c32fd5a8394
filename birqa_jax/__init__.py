"""birqa-jax: BiRQA full-reference image quality assessment in JAX/Flax.

Quick use::

    import birqa_jax
    birqa_jax.list_metrics()                        # ['birqa', 'birqa_robust', 'birqa_clean', 'psnr', ..., 'gmsd']
    m = birqa_jax.create_metric("birqa")            # packaged weights and their config together
    s = m(ref, dist)                                # arrays, PIL images or file paths
    s = birqa_jax.score(ref, dist)                  # the same in one line
    loss = m.as_loss()(m.params, ref, dist)         # inside your own jitted code

BiRQA: higher = better quality; the score is unbounded, trained towards MOS normalised to
[0, 1] (an identical pair scores about 0.75-0.85: ``metric.IDENTICAL_PAIR`` has each weight set's range).

The package's layers, lowest first (a module imports only from layers below its own):
``inputs``, ``version``; ``model``; ``classical``, ``adversarial``, ``data``; ``evaluation``; ``train``;
``metric`` and ``cli``; this package's public face.
"""

from birqa_jax.metric import (
    Metric,
    create_metric,
    default_weights_path,
    list_metrics,
    load,
    perceptual_loss,
    prepare_pair,
    score,
)
from birqa_jax.model import MIN_SIZE, BiRQA, ModelConfig, init_params, load_model, param_count, save_model
from birqa_jax.version import __version__

__all__ = [
    "BiRQA", "MIN_SIZE", "Metric", "ModelConfig", "__version__", "create_metric", "default_weights_path",
    "init_params", "list_metrics", "load", "load_model", "param_count", "perceptual_loss", "prepare_pair",
    "save_model", "score",
]
