"""Clean training throughput: pairs/s of ``training.make_train_step`` on all local devices.

    python -m benchmarks.train_speed                            # 384x384 crops, global batch 32
    python -m benchmarks.train_speed --size 96x96 --batch 8 --iters 3

The step is the library's data-parallel step (shard_map over a 1-D mesh of the local devices,
train state donated) with the default ``ModelConfig`` widths (``--widths`` to change them),
AdamW after gradient clipping (``training.make_optimizer``) and the default loss weights. The
batch is random and stays on the devices, so input loading is not measured.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Sequence

import numpy as np

from benchmarks import common
from birqa_jax import parallel
from birqa_jax.model import MIN_SIZE, BiRQA, ModelConfig, init_params
from birqa_jax.train import step as training

# Optimiser settings only shape the update's arithmetic, which costs the same for any values.
OPTIMIZER = dict(learning_rate=1e-4, num_steps=10_000, warmup_steps=100, weight_decay=1e-4, grad_clip=1.0)


def host_batch(seed: int, batch: int, height: int, width: int, anchors: tuple[int, int] | None = None) -> dict:
    """Random numpy training batch.

    Returns ``ref``, ``dist`` [batch, height, width, 3] float32 in [0, 1] (dist = ref + noise),
    ``mos`` [batch] float32 in [0, 1] and, with ``anchors = (a, n)``, ``anchor`` [batch] bool
    with ``a`` evenly spaced anchors in each run of ``n`` items (``n`` divides ``batch``).
    """
    rng = np.random.default_rng(seed)
    ref = rng.random((batch, height, width, 3), dtype=np.float32)
    dist = np.clip(ref + rng.normal(0, 0.05, ref.shape).astype(np.float32), 0, 1)
    out = {"ref": ref, "dist": dist, "mos": rng.random(batch, dtype=np.float32)}
    if anchors is not None:
        a, n = anchors
        if not 0 < a <= n or batch % n:
            raise ValueError(f"need 0 < anchors ({a}) <= group ({n}) and the batch ({batch}) a multiple of {n}")
        group = np.zeros(n, bool)
        group[np.round(np.linspace(0, n - 1, a)).astype(int)] = True
        out["anchor"] = np.tile(group, batch // n)
    return out


def stepper(step: Callable, state: training.TrainState, batch: dict) -> tuple[Callable[[], Any], dict]:
    """``(call, last)``: ``call()`` runs ``state, metrics = step(state, batch)`` on the donated
    state and returns both; ``last`` holds the latest ``"state"`` and ``"metrics"``."""
    last = {"state": state, "metrics": None}

    def call():
        last["state"], last["metrics"] = step(last["state"], batch)
        return last["state"], last["metrics"]

    return call, last


def run(
    height: int = 384,
    width: int = 384,
    batch: int = 32,
    dtype: str = "float32",
    widths: Sequence[int] = ModelConfig().widths,
    iters: int = 10,
    warmup: int = 2,
    seed: int = 0,
    devices: int | None = None,
) -> dict:
    """Time clean train steps on a random global batch of ``batch`` pairs of height x width,
    data-parallel over the first ``devices`` local devices (default all).

    Returns ``{"benchmark": "train_speed", "env", "settings", "rows"}``; one row whose
    ``pairs_per_s`` counts the pairs of the global batch per second (all devices together).
    """
    if min(height, width) < MIN_SIZE:
        raise ValueError(f"height and width must be >= {MIN_SIZE}, got {height}x{width}")
    devices = common.local_devices(devices)
    if batch < 1 or batch % len(devices):
        raise ValueError(f"the global batch ({batch}) must be a positive multiple of the "
                         f"{len(devices)} local device(s)")
    cfg = ModelConfig(widths=tuple(widths), dtype=dtype)
    mesh = parallel.make_mesh(devices)
    tx = training.make_optimizer(**OPTIMIZER)
    step = training.make_train_step(BiRQA(cfg), tx, mesh)
    state = training.replicate(training.create_train_state(init_params(cfg, seed), tx, seed), mesh)
    data = training.global_batch(host_batch(seed, batch, height, width), mesh)
    call, _ = stepper(step, state, data)
    timing = common.time_calls(call, warmup=warmup, iters=iters)
    row = common.timing_row("clean train step", batch=batch, height=height, width=width, dtype=dtype,
                            timing=timing, devices=len(devices))
    return {
        "benchmark": "train_speed",
        "env": common.environment(),
        "settings": {"height": height, "width": width, "batch": batch, "dtype": dtype, "devices": len(devices),
                     "iters": iters, "warmup": warmup, "seed": seed, "optimizer": OPTIMIZER,
                     "model_config": cfg.to_dict()},
        "rows": [row],
    }


def markdown(result: dict) -> str:
    s = result["settings"]
    return (f"Clean training (training.make_train_step, AdamW), widths {s['model_config']['widths']}, "
            f"global batch over {s['devices']} device(s):\n\n" + common.table(result["rows"], [("devices", "devices")]))


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=common.parse_size, default=(384, 384), help="crop HEIGHTxWIDTH (default 384x384)")
    p.add_argument("--batch", type=int, default=32, help="global batch, a multiple of the local device count")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--devices", type=int, help="use the first N local devices (default all)")
    common.add_run_args(p, iters=10, warmup=2)
    a = p.parse_args(argv)
    result = run(*a.size, batch=a.batch, dtype=a.dtype, widths=a.widths, iters=a.iters, warmup=a.warmup,
                 seed=a.seed, devices=a.devices)
    return common.report_result(result, markdown, a.out)


if __name__ == "__main__":
    main(sys.argv[1:])
