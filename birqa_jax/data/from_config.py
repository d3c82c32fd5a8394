"""The data set and split a training config's ``data`` block names, built on first use.

``load_data(config.data)`` returns the source (a random-access data source of the TFDS
builder's ArrayRecord files, built first if needed) and the split indices; ``data_dir_path``
resolves the config's ``data_dir`` (a relative name is a folder of the user's cache).
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections
import numpy as np

from birqa_jax.data.pipeline import group_ids, load_source
from birqa_jax.data.splits import held_out_split, official_split, split_indices
from birqa_jax.data.synthetic import KadidSynthetic, KadidSyntheticConfig, source_ids


def plain(cd) -> dict[str, Any]:
    """A config block as a dict of plain values (lists become tuples)."""
    d = cd.to_dict() if isinstance(cd, ml_collections.ConfigDict) else dict(cd)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


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
    # A data block without ``storage`` (the config of an older run folder) means PNG storage.
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
