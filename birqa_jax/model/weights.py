"""One portable file per trained model: the parameters and the model config that built them.

Format: a msgpack map (flax.serialization) ``{"format": "birqa-jax", "version": 1,
"config": <ModelConfig as JSON>, "params": <parameter state dict>, "meta": <JSON>}``. The file
is written atomically (temporary file + rename), so a crash never leaves a half-written model.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np
from flax import serialization

from birqa_jax.files import atomic_write_bytes
from birqa_jax.model.pyramid import ModelConfig, init_params

FORMAT = "birqa-jax"
VERSION = 1


def save_model(path: str | os.PathLike, params, config: ModelConfig, meta: dict[str, Any] | None = None) -> None:
    """Save ``params`` with ``config`` (and optional JSON-able ``meta``) to one file."""
    host_params = jax.tree_util.tree_map(lambda x: np.asarray(jax.device_get(x)), params)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": json.dumps(config.to_dict()),
        "meta": json.dumps(meta or {}),
        "params": serialization.to_state_dict(host_params),
    }
    atomic_write_bytes(path, serialization.msgpack_serialize(payload))


def load_model(path: str | os.PathLike):
    """Load a file written by ``save_model``. Returns ``(params, config, meta)``.

    Raises FileNotFoundError for a missing file and ValueError naming the problem for a file
    that is not a BiRQA model, is truncated, or whose parameters do not fit its config.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no BiRQA model file at {path!r}")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        payload = serialization.msgpack_restore(raw)
    except Exception as e:  # msgpack raises several unrelated types for corrupt input
        raise ValueError(f"{path!r} is not a readable BiRQA model file (corrupt or truncated): {e}") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a BiRQA model file (missing format tag {FORMAT!r})")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path!r} has format version {payload.get('version')}, this library reads {VERSION}")
    config = ModelConfig.from_dict(json.loads(payload["config"]))
    template = jax.eval_shape(lambda: init_params(config))
    try:
        params = serialization.from_state_dict(template, payload["params"])
    except (ValueError, KeyError) as e:
        raise ValueError(f"{path!r}: parameters do not match the stored model config: {e}") from e
    bad = _shape_mismatches(template, params)
    if bad:
        raise ValueError(f"{path!r}: parameter shapes do not match the stored model config: {bad[:5]}")
    params = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), params)
    return params, config, json.loads(payload.get("meta", "{}"))


def _shape_mismatches(template, params) -> list[str]:
    t_leaves = jax.tree_util.tree_leaves_with_path(template)
    p_leaves = jax.tree_util.tree_leaves(params)
    return [
        jax.tree_util.keystr(k)
        for (k, t), p in zip(t_leaves, p_leaves)
        if tuple(t.shape) != tuple(np.shape(p))
    ]
