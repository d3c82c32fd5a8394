"""The BiRQA network: quality features (``features``), the bidirectional pyramid and its head
(``pyramid``), and the portable weights file (``weights``)."""

from birqa_jax.model.pyramid import (
    CSRAM,
    MIN_SIZE,
    SCGB,
    BiRQA,
    ModelConfig,
    PyramidLevel,
    ReliabilityHead,
    apply_fn,
    init_params,
    param_count,
)
from birqa_jax.model.weights import load_model, save_model

__all__ = [
    "CSRAM", "MIN_SIZE", "SCGB", "BiRQA", "ModelConfig", "PyramidLevel", "ReliabilityHead", "apply_fn",
    "init_params", "load_model", "param_count", "save_model",
]
