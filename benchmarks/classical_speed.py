"""The classical metrics (``classical.NAMES``, 8-bit reference mode, jitted) against pyiqa's
implementations of the same metrics, interleaved round by round in one process.

    python -m benchmarks.classical_speed --out benchmarks/results/cpu_classical_speed.json
    python -m benchmarks.classical_speed --sizes 384x512 --batches 1 --metrics vif fsim --rounds 2

For every size x batch (default 384x512 and 1080x1920, batch 1 and 16) one group: each metric's
jitted ``classical.get(name)`` and, where torch and pyiqa import, ``pyiqa.create_metric`` of the
same metric on the same pair (NCHW float32 on the CPU, ``torch.inference_mode``). Every
contender is called ``warmup`` times first (the JAX compilation is kept as ``first_call_s``), then
each round times ``calls`` calls of every contender of the group in turn, the order rotated by
one each round, and records the load average at its start; the ratio pyiqa / ours is formed
within each round and reported as the median over rounds with its range. A pyiqa contender that
fails to build or run is skipped with its error.

The inputs are a random reference and the reference plus Gaussian noise (sigma 0.05), clipped to
[0, 1]; the speed of these metrics does not depend on the content.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from benchmarks import common
from benchmarks.interleaved import Contender
from birqa_jax import classical

# pyiqa's name of each classical metric (the same algorithm; its own conventions differ in details
# such as the grey conversion, see tests/test_classical_reference.py).
PYIQA_NAMES = {"psnr": "psnr", "psnr_y": "psnry", "ssim": "ssim", "ms_ssim": "ms_ssim", "gmsd": "gmsd",
               "vif": "vif", "fsim": "fsim", "cw_ssim": "cw_ssim", "nlpd": "nlpd", "vsi": "vsi",
               "mad": "mad"}
SIZES = ((384, 512), (1080, 1920))
BATCHES = (1, 16)


def _pair(seed: int, batch: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.random((batch, height, width, 3), dtype=np.float32)
    dist = np.clip(ref + rng.normal(0, 0.05, ref.shape).astype(np.float32), 0, 1)
    return ref, dist


def _pyiqa_contender(name: str, ref: np.ndarray, dist: np.ndarray, group: str) -> Contender:
    import pyiqa
    import torch

    metric = pyiqa.create_metric(PYIQA_NAMES[name], device="cpu")
    r, d = (torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))) for x in (ref, dist))

    def call():
        with torch.inference_mode():
            return metric(d, r)  # pyiqa's full-reference metrics take (distorted, reference)

    return Contender(f"{name}, pyiqa", group, ref.shape[1], ref.shape[2], call, wait=lambda o: o.float().cpu())


def run(
    sizes: Sequence[tuple[int, int]] = SIZES,
    batches: Sequence[int] = BATCHES,
    metrics: Sequence[str] = classical.NAMES,
    rounds: int = 3,
    calls: int = 1,
    warmup: int = 1,
    with_pyiqa: bool = True,
    seed: int = 0,
) -> dict:
    """Time every metric of ``metrics`` (and pyiqa's) in one group per size x batch.

    Returns ``{"benchmark": "classical_speed", "env", "settings", "torch", "rows", "ratios",
    "rounds", "skipped"}``; ``ratios[group][metric]`` is pyiqa's time over ours per round
    (above 1: ours is faster).
    """
    for name in metrics:
        classical.get(name)  # unknown names fail here, before any timing
    torch_info: dict[str, Any] = {}
    if with_pyiqa:
        try:
            import pyiqa
            import torch

            torch_info = {"torch": torch.__version__, "pyiqa": pyiqa.__version__, "threads": torch.get_num_threads()}
        except Exception as e:  # noqa: BLE001 (a broken torch install raises more than ImportError)
            torch_info = {"skipped": f"torch/pyiqa not importable: {type(e).__name__}: {e}"}
            with_pyiqa = False
    rows, ratios, round_log, skipped = [], {}, [], {}
    for height, width in sizes:
        for batch in batches:
            group = f"{height}x{width}, batch {batch}"
            ref, dist = _pair(seed, batch, height, width)
            jref, jdist = jax.device_put(ref), jax.device_put(dist)
            pairs: list[tuple[str, Contender, Contender | None]] = []
            contenders: list[Contender] = []
            for name in metrics:
                if min(height, width) < classical.MIN_SIZE[name]:
                    skipped[f"{group}: {name}"] = f"needs {classical.MIN_SIZE[name]} px on the short side"
                    continue
                fn = classical.get(name)
                ours = Contender(f"{name}, birqa_jax", group, height, width, lambda fn=fn, r=jref, d=jdist: fn(r, d))
                theirs = None
                if with_pyiqa and name in PYIQA_NAMES:
                    try:
                        theirs = _pyiqa_contender(name, ref, dist, group)
                        theirs.warm(warmup)
                    except Exception as e:  # noqa: BLE001
                        skipped[f"{group}: {name}, pyiqa"] = f"{type(e).__name__}: {e}"
                        theirs = None
                ours.warm(warmup)
                contenders += [c for c in (ours, theirs) if c is not None]
                pairs.append((name, ours, theirs))
            for r in range(rounds):
                k = r % max(1, len(contenders))
                load = list(os.getloadavg())
                t0 = time.perf_counter()
                for c in contenders[k:] + contenders[:k]:
                    c.time_round(calls)
                round_log.append({"group": group, "round": r, "loadavg_start": load,
                                  "wall_s": time.perf_counter() - t0})
            for c in contenders:
                timing = {"first_call_s": c.first_call_s, "median_s": statistics.median(c.times),
                          "mean_s": statistics.fmean(c.times), "min_s": min(c.times), "max_s": max(c.times),
                          "times_s": c.times}
                rows.append(common.timing_row(c.name, batch=batch, height=height, width=width, dtype="float32",
                                              timing=timing, group=group, round_medians_s=c.round_medians))
            ratios[group] = {}
            for name, ours, theirs in pairs:
                if theirs is not None:
                    rr = [tb / ta for ta, tb in zip(ours.round_medians, theirs.round_medians)]
                    ratios[group][name] = {"median": statistics.median(rr), "min": min(rr), "max": max(rr),
                                           "rounds": rr}
    return {
        "benchmark": "classical_speed",
        "env": common.environment(),
        "settings": {"sizes": [list(s) for s in sizes], "batches": list(batches), "metrics": list(metrics),
                     "rounds": rounds, "calls_per_round": calls, "warmup": warmup, "seed": seed,
                     "mode": "reference (8-bit, as published), jitted"},
        "torch": torch_info,
        "rows": rows,
        "ratios": ratios,
        "rounds": round_log,
        "skipped": skipped,
        "loadavg_end": list(os.getloadavg()),
    }


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [(f"{s['rounds']} rounds x {s['calls_per_round']} calls per contender, interleaved within each "
              f"size x batch; {s['mode']}; pyiqa: {result['torch'] or 'not run'}."), "",
             "| size | batch | metric | birqa_jax ms | pyiqa ms | pyiqa / ours (median, range over rounds) |",
             "| --- | --- | --- | --- | --- | --- |"]
    by_name = {(r["group"], r["what"]): r for r in result["rows"]}
    for group, per_metric in result["ratios"].items():
        names = [r["what"].split(",")[0] for r in result["rows"] if r["group"] == group and "birqa_jax" in r["what"]]
        for name in names:
            ours = by_name[group, f"{name}, birqa_jax"]
            theirs = by_name.get((group, f"{name}, pyiqa"))
            size, batch = group.split(", batch ")
            ratio = per_metric.get(name)
            ratio_text = f"{ratio['median']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f})" if ratio else "-"
            theirs_ms = f"{theirs['median_s'] * 1e3:,.1f}" if theirs else "-"
            lines.append(f"| {size} | {batch} | {name} | {ours['median_s'] * 1e3:,.1f} | {theirs_ms} | {ratio_text} |")
    for what, why in result["skipped"].items():
        lines.append(f"\nskipped {what}: {why}")
    loads = [r["loadavg_start"][0] for r in result["rounds"]] + [result["loadavg_end"][0]]
    lines.append(f"\n1-minute load average over the rounds: {min(loads):.2f}-{max(loads):.2f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=common.parse_size, nargs="+", default=list(SIZES),
                   help="HEIGHTxWIDTH, several allowed (default 384x512 1080x1920)")
    p.add_argument("--batches", type=int, nargs="+", default=list(BATCHES), help="default 1 16")
    p.add_argument("--metrics", nargs="+", default=list(classical.NAMES), choices=list(classical.NAMES))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=1, help="timed calls of each contender per round")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls of each contender first")
    p.add_argument("--no-pyiqa", action="store_true", help="time birqa_jax only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the results as JSON here")
    a = p.parse_args(argv)
    result = run(a.sizes, a.batches, a.metrics, rounds=a.rounds, calls=a.calls, warmup=a.warmup,
                 with_pyiqa=not a.no_pyiqa, seed=a.seed)
    return common.report_result(result, markdown, a.out)


if __name__ == "__main__":
    main(sys.argv[1:])
