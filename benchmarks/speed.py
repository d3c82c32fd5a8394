"""Inference speed: BiRQA pairs/s through ``model.apply_fn`` and the feature stage alone.

    python -m benchmarks.speed                                  # 1080x1920, batch 1 and 8, fp32 and bf16
    python -m benchmarks.speed --size 270x480 --iters 3 --out speed.json

The model runs with the default ``ModelConfig`` widths (``--widths`` to change them) and
untrained parameters (speed does not depend on their values); ``--dtypes`` sets
``ModelConfig.dtype``, the compute dtype of the pyramid (features and parameters stay float32).
The feature stage is ``features.feature_stack`` at batch 1 with the config's feature settings.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Sequence

from benchmarks import common
from birqa_jax.model import MIN_SIZE, ModelConfig, apply_fn, features, init_params


def run(
    height: int = 1080,
    width: int = 1920,
    batches: Sequence[int] = (1, 8),
    dtypes: Sequence[str] = ("float32", "bfloat16"),
    widths: Sequence[int] = ModelConfig().widths,
    iters: int = 20,
    warmup: int = 3,
    seed: int = 0,
) -> dict:
    """Time the feature stage (batch 1) and the whole model for every batch x dtype.

    Inputs: a random [batch, height, width, 3] float32 pair in [0, 1] on the default device.
    ``dtypes`` are ``ModelConfig.dtype`` values and ``widths`` the pyramid's ``ModelConfig.widths``.
    Returns ``{"benchmark": "speed", "env", "settings", "rows"}``; rows as ``common.timing_row``.
    """
    if min(height, width) < MIN_SIZE:
        raise ValueError(f"height and width must be >= {MIN_SIZE}, got {height}x{width}")
    if not batches or min(batches) < 1:
        raise ValueError(f"batches must be positive, got {list(batches)}")
    configs = {d: ModelConfig(widths=tuple(widths), dtype=d) for d in dtypes}  # rejects unknown dtypes
    base = ModelConfig(widths=tuple(widths))
    params = init_params(base, seed)  # parameters do not depend on the compute dtype
    timed = dict(warmup=warmup, iters=iters)
    rows = []

    ref, dist = common.random_pair(seed, 1, height, width)
    timing = common.time_calls(
        lambda: features.feature_stack(ref, dist, lbp_temperature=base.lbp_temperature,
                                       info_c=base.info_c, include_luma=base.include_luma),
        **timed,
    )
    rows.append(common.timing_row("features.feature_stack", batch=1, height=height, width=width,
                                  dtype="float32", timing=timing))

    for batch in batches:
        ref, dist = common.random_pair(seed, batch, height, width)
        for dtype, cfg in configs.items():
            fn = apply_fn(cfg)
            timing = common.time_calls(functools.partial(fn, params, ref, dist), **timed)
            rows.append(common.timing_row("BiRQA apply_fn", batch=batch, height=height, width=width,
                                          dtype=dtype, timing=timing))
    return {
        "benchmark": "speed",
        "env": common.environment(),
        "settings": {"height": height, "width": width, "batches": list(batches), "dtypes": list(dtypes),
                     "iters": iters, "warmup": warmup, "seed": seed, "model_config": base.to_dict()},
        "rows": rows,
    }


def markdown(result: dict) -> str:
    widths = result["settings"]["model_config"]["widths"]
    return f"Inference, widths {widths}, untrained parameters:\n\n" + common.table(result["rows"])


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=common.parse_size, default=(1080, 1920), help="HEIGHTxWIDTH (default 1080x1920)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    common.add_run_args(p, iters=20, warmup=3)
    a = p.parse_args(argv)
    result = run(*a.size, batches=a.batches, dtypes=a.dtypes, widths=a.widths, iters=a.iters, warmup=a.warmup,
                 seed=a.seed)
    return common.report_result(result, markdown, a.out)


if __name__ == "__main__":
    main(sys.argv[1:])
