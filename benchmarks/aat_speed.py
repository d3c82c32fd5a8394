"""Anchored adversarial training: the fused step against the same work as two jitted calls.

    python -m benchmarks.aat_speed                              # PGD-3, 256x256, 16 per device
    python -m benchmarks.aat_speed --size 64x64 --per-device-batch 8 --iters 3

"fused": ``train.step.make_train_step(..., attack=AttackSpec("pgd", eps, {"steps": steps}))``, which runs
PGD on the batch and the update in one jitted program. "separate": a jitted call of the same
``train.step.attack_batch`` (PGD away from each MOS, anchors kept clean) producing the
adversarial batch, then the clean ``make_train_step`` on it (anchors in the batch,
so the loss is the same anchored one). The separate attack derives its per-item random starts
exactly as the fused step does, so both variants compute the same update: the results carry
both variants' last-step loss and gradient norm, which must agree. ``--widths`` changes the
default ``ModelConfig`` widths.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from benchmarks import common
from benchmarks.train_speed import OPTIMIZER, host_batch, stepper
from birqa_jax import parallel
from birqa_jax.model import MIN_SIZE, BiRQA, ModelConfig, init_params
from birqa_jax.train import step as training

Step = Callable[[training.TrainState, dict], tuple[training.TrainState, dict]]


def make_steps(model: BiRQA, tx, mesh, spec: training.AttackSpec) -> tuple[Step, Step]:
    """``(fused, separate)`` train steps ``(state, batch) -> (state, metrics)``, state donated.

    ``batch``: global arrays sharded over ``"data"``: ``ref``, ``dist`` [B, H, W, 3] float32 in
    [0, 1], ``mos`` [B], ``anchor`` [B] bool. ``spec`` must be an anchored PGD attack.
    """
    if spec.name != "pgd" or not spec.anchored:
        raise ValueError(f"the comparison is defined for anchored PGD, got {spec}")
    fused = training.make_train_step(model, tx, mesh, attack=spec)
    clean = training.make_train_step(model, tx, mesh)

    def attack(params, rng_data, step, ref, dist, mos, anchor):
        # The fused step's keys: the state's key folded with the step, then each item's global index.
        key = jax.random.fold_in(jax.random.wrap_key_data(rng_data), step)
        keys = training.item_keys(key, 0, dist.shape[0])
        return training.attack_batch(model, params, spec, keys, ref, dist, mos, anchor)

    attack = jax.jit(attack, out_shardings=NamedSharding(mesh, P(parallel.AXIS)))

    def separate(state, batch):
        adv = attack(state.params, state.rng, state.step, batch["ref"], batch["dist"], batch["mos"], batch["anchor"])
        return clean(state, {**batch, "dist": adv})

    return fused, separate


def run(
    height: int = 256,
    width: int = 256,
    per_device_batch: int = 16,
    num_anchors: int = 4,
    eps: float = 4 / 255,
    steps: int = 3,
    dtype: str = "float32",
    widths: Sequence[int] = ModelConfig().widths,
    iters: int = 10,
    warmup: int = 2,
    seed: int = 0,
    devices: int | None = None,
) -> dict:
    """Time the fused and the separate AAT step on the first ``devices`` local devices (default
    all).

    Each device holds ``per_device_batch`` pairs, ``num_anchors`` of them clean anchors. Both
    variants start from the same state and run the same steps on the same batch, so their last
    step's metrics must agree.

    Returns ``{"benchmark": "aat_speed", "env", "settings", "rows", "fused_over_separate",
    "last_step"}``: two rows (global batch pairs/s), the ratio of their pairs/s, and
    ``last_step = {"loss": [fused, separate], "grad_norm": [fused, separate], "attack_linf"}``.
    """
    if min(height, width) < MIN_SIZE:
        raise ValueError(f"height and width must be >= {MIN_SIZE}, got {height}x{width}")
    if per_device_batch < 1:
        raise ValueError(f"per_device_batch must be >= 1, got {per_device_batch}")
    devices = common.local_devices(devices)
    batch = per_device_batch * len(devices)
    cfg = ModelConfig(widths=tuple(widths), dtype=dtype)
    spec = training.AttackSpec(name="pgd", eps=eps, settings={"steps": steps}, anchored=True)
    mesh = parallel.make_mesh(devices)
    tx = training.make_optimizer(**OPTIMIZER)
    fused, separate = make_steps(BiRQA(cfg), tx, mesh, spec)
    params = init_params(cfg, seed)
    data = training.global_batch(host_batch(seed, batch, height, width, (num_anchors, per_device_batch)), mesh)

    rows, last = [], []
    for what, step in (("AAT fused (one jit)", fused), ("AAT separate (attack jit + clean step)", separate)):
        state = training.replicate(training.create_train_state(params, tx, seed), mesh)
        call, latest = stepper(step, state, data)
        timing = common.time_calls(call, warmup=warmup, iters=iters)
        rows.append(common.timing_row(what, batch=batch, height=height, width=width, dtype=dtype, timing=timing,
                                      devices=len(devices)))
        last.append({k: float(v) for k, v in jax.device_get(latest["metrics"]).items()})
    return {
        "benchmark": "aat_speed",
        "env": common.environment(),
        "settings": {"height": height, "width": width, "per_device_batch": per_device_batch, "batch": batch,
                     "num_anchors_per_device": num_anchors, "attack": "pgd", "eps": eps, "steps": steps,
                     "step_size": "eps / 4", "dtype": dtype, "devices": len(devices), "iters": iters,
                     "warmup": warmup, "seed": seed, "optimizer": OPTIMIZER, "model_config": cfg.to_dict()},
        "rows": rows,
        "fused_over_separate": rows[0]["pairs_per_s"] / rows[1]["pairs_per_s"],
        "last_step": {"loss": [m["loss"] for m in last], "grad_norm": [m["grad_norm"] for m in last],
                      "attack_linf": last[0]["attack_linf"]},
    }


def markdown(result: dict) -> str:
    s = result["settings"]
    head = (f"Anchored adversarial training, PGD-{s['steps']} eps {s['eps'] * 255:.0f}/255, "
            f"{s['num_anchors_per_device']} anchors of {s['per_device_batch']} per device:\n\n")
    check = result["last_step"]
    ratio = (f"\n\nfused / separate pairs/s: {result['fused_over_separate']:.2f} (last step's loss "
             f"{check['loss'][0]:.6g} fused, {check['loss'][1]:.6g} separate)")
    return head + common.table(result["rows"], [("devices", "devices")]) + ratio


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=common.parse_size, default=(256, 256), help="crop HEIGHTxWIDTH (default 256x256)")
    p.add_argument("--per-device-batch", type=int, default=16)
    p.add_argument("--anchors", type=int, default=4, help="clean anchors among each device's pairs")
    p.add_argument("--eps", type=float, default=4 / 255, help="L-inf budget in [0, 1] pixel units")
    p.add_argument("--steps", type=int, default=3, help="PGD steps")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--devices", type=int, help="use the first N local devices (default all)")
    common.add_run_args(p, iters=10, warmup=2)
    a = p.parse_args(argv)
    result = run(*a.size, per_device_batch=a.per_device_batch, num_anchors=a.anchors, eps=a.eps, steps=a.steps,
                 dtype=a.dtype, widths=a.widths, iters=a.iters, warmup=a.warmup, seed=a.seed, devices=a.devices)
    return common.report_result(result, markdown, a.out)


if __name__ == "__main__":
    main(sys.argv[1:])
