"""A training run's folder and the data a config names: what training writes, evaluation reads.

Layout of a run's ``workdir``:

- ``config.json``: the training config (dataset, split, model, optimiser, ...);
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
import numpy as np

from birqa_jax.data.pipeline import group_ids, load_source
from birqa_jax.data.splits import held_out_split, official_split, split_indices
from birqa_jax.data.synthetic import KadidSynthetic, KadidSyntheticConfig, source_ids
from birqa_jax.model import ModelConfig, load_model

MODEL_FILE = "birqa.msgpack"
CONFIG_FILE = "config.json"


class RunError(Exception):
    """A run folder that lacks what is asked of it, or holds something unreadable."""


def plain(cd) -> dict[str, Any]:
    """A config block as a dict of plain values (lists become tuples)."""
    d = cd.to_dict() if isinstance(cd, ml_collections.ConfigDict) else dict(cd)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def model_config(config: ml_collections.ConfigDict) -> ModelConfig:
    """The ``ModelConfig`` of a training config's ``model`` block."""
    return ModelConfig.from_dict(plain(config.model))


def data_dir_path(data_dir: str) -> str:
    """The folder a config's ``data_dir`` names. ``~`` is expanded and an absolute path kept; a
    relative one (the default ``data_cache``) is a folder of the user's cache,
    ``$XDG_CACHE_HOME/birqa_jax/`` (by default ``~/.cache/birqa_jax/``), so that ``train.py`` and
    ``eval.py`` run from any folder share one build and never build one in the current folder,
    unless the current folder holds that folder already (a build made there before is used,
    not built again)."""
    path = os.path.expanduser(data_dir)
    if os.path.isabs(path) or os.path.isdir(path):
        return os.path.abspath(path)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "birqa_jax", path)


def load_data(data_config: ml_collections.ConfigDict) -> tuple[Any, dict[str, np.ndarray]]:
    """The source of a config's ``data`` block (built first if needed) and its split indices."""
    kwargs: dict[str, Any] = {}
    if data_config.name == "kadid_synthetic":
        wanted = KadidSyntheticConfig(**plain(data_config.synthetic))
        registered = {c.name: c for c in KadidSynthetic.BUILDER_CONFIGS}
        if wanted.name not in registered:
            kwargs["config"] = wanted
        elif registered[wanted.name].options() == wanted.options():
            kwargs["config"] = wanted.name
        else:
            raise ValueError(f"kadid_synthetic config {wanted.name!r} is built-in with options "
                             f"{registered[wanted.name].options()}; give changed options another name "
                             "(--config.data.synthetic.name=...)")
    manual_dir = os.path.expanduser(data_config.manual_dir) if data_config.manual_dir else None
    # Run folders written before the storage option existed hold configs without it.
    kwargs["storage"] = data_config.get("storage", "png")
    source = load_source(data_config.name, data_dir_path(data_config.data_dir), manual_dir, **kwargs)
    if data_config.split == "official":
        splits = official_split(data_config.name, len(source))
    elif data_config.split == "photos":  # kadid_synthetic: leave named photographs out
        if data_config.name != "kadid_synthetic":
            raise ValueError(f"split 'photos' names kadid_synthetic photographs; {data_config.name} has none")
        splits = held_out_split(group_ids(source), source_ids(data_config.test_photos),
                                source_ids(data_config.val_photos))
    else:
        splits = split_indices(group_ids(source), data_config.split_id, tuple(data_config.ratios))
    return source, splits


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
