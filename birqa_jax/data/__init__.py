"""Datasets and input pipelines (needs the ``data`` extras: tensorflow-datasets, grain,
array-record, openpyxl; never TensorFlow).

Builders (TFDS, stored as ArrayRecord, read with ``tfds.data_source`` or :func:`load_source`):
``kadid10k``, ``tid2013``, ``tid2008``, ``live`` (configs ``realigned``, ``original``),
``csiq``, ``pipal``, ``pieapp``, ``bapps_2afc`` read the official files from a folder you give;
``kadid_synthetic`` is generated from scikit-image's photographs. Importing this package
registers them with TFDS::

    from birqa_jax import data
    source = data.load_source("kadid10k", data_dir="~/tfds", manual_dir="~/kadid10k")
    splits = data.split_indices(data.group_ids(source), split_id=0)
    ds = data.train_dataset(source, splits["train"], batch_size=32, crop_size=(192, 256), seed=0)
    for batch in data.iterate(ds, start_step=step): ...
"""

from birqa_jax.data.bapps import Bapps2afc
from birqa_jax.data.csiq import Csiq
from birqa_jax.data.from_config import data_dir_path, load_data
from birqa_jax.data.kadid10k import Kadid10k
from birqa_jax.data.live import Live
from birqa_jax.data.pieapp import PieApp
from birqa_jax.data.pipal import Pipal
from birqa_jax.data.pipeline import (
    ANCHOR_RULES,
    default_workers,
    eval_examples,
    example_columns,
    group_ids,
    iterate,
    load_source,
    mos_band_dataset,
    select_anchors,
    train_dataset,
)
from birqa_jax.data.source import IQASource
from birqa_jax.data.splits import held_out_split, official_split, split_indices
from birqa_jax.data.synthetic import (
    KadidSynthetic,
    KadidSyntheticConfig,
    reference_crops,
    source_ids,
    type_level_mos,
)
from birqa_jax.data.tid import Tid2008, Tid2013

__all__ = [
    "ANCHOR_RULES",
    "Bapps2afc",
    "Csiq",
    "IQASource",
    "Kadid10k",
    "KadidSynthetic",
    "KadidSyntheticConfig",
    "Live",
    "PieApp",
    "Pipal",
    "Tid2008",
    "Tid2013",
    "data_dir_path",
    "default_workers",
    "eval_examples",
    "example_columns",
    "group_ids",
    "held_out_split",
    "iterate",
    "load_data",
    "load_source",
    "mos_band_dataset",
    "official_split",
    "reference_crops",
    "select_anchors",
    "source_ids",
    "split_indices",
    "train_dataset",
    "type_level_mos",
]
