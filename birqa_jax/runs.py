"""A training run's folder: what training writes and evaluation reads.

Layout of a run's ``workdir``:

- ``config.json`` (``CONFIG_FILE``): the training config (dataset, split, model, optimiser, ...);
- ``birqa.msgpack`` (``MODEL_FILE``): the exported best model, written when training finishes;
- ``checkpoints/latest`` and ``checkpoints/best``: Orbax checkpoints of the train state;
- ``metrics.jsonl``: one JSON record per logged step; ``results.json``: the test summary.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import ml_collections

from birqa_jax.data.from_config import plain
from birqa_jax.model import ModelConfig, load_model

MODEL_FILE = "birqa.msgpack"
CONFIG_FILE = "config.json"


class RunError(Exception):
    """A run folder that lacks what is asked of it, or holds something unreadable."""


def model_config(config: ml_collections.ConfigDict) -> ModelConfig:
    """The ``ModelConfig`` of a training config's ``model`` block."""
    return ModelConfig.from_dict(plain(config.model))


@dataclasses.dataclass(frozen=True)
class Run:
    """A finished training run: its config and its exported best model."""

    workdir: str
    config: ml_collections.ConfigDict
    params: Any
    model_config: ModelConfig
    meta: dict


def load_run(workdir: str) -> Run:
    """Read ``<workdir>/config.json`` and ``<workdir>/birqa.msgpack``; RunError says what is
    missing or unreadable."""
    if not os.path.isdir(workdir):
        raise RunError(f"workdir {workdir!r} does not exist")
    model_path = os.path.join(workdir, MODEL_FILE)
    if not os.path.isfile(model_path):
        raise RunError(
            f"{workdir!r} holds no exported model {MODEL_FILE}; train.py writes it when training "
            "finishes (an interrupted run only has checkpoints: rerun train.py with the same "
            "--workdir to finish it)"
        )
    config_path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise RunError(f"{workdir!r} has no {CONFIG_FILE}, so its dataset and split are unknown")
    try:
        with open(config_path) as f:
            config = ml_collections.ConfigDict(json.load(f))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{config_path!r} is not valid JSON: {e}") from e
    if "data" not in config or "name" not in config.data:
        raise RunError(f"{config_path!r} is not a training config (no data.name)")
    try:
        params, stored_config, meta = load_model(model_path)
    except ValueError as e:
        raise RunError(str(e)) from e
    return Run(workdir, config, params, stored_config, meta)
