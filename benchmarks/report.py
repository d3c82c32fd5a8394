"""Every benchmark in one run, written to one JSON and one markdown file named after the device.

    python -m benchmarks.report                 # full sizes (for a GPU): each benchmark's defaults
    python -m benchmarks.report --quick         # reduced sizes that finish in minutes on a CPU
    python -m benchmarks.report --out-dir /tmp/results

Writes ``<out-dir>/<device>.json`` and ``<device>.md`` (device ``cpu``, ``nvidia-h200``, ...;
default out-dir ``benchmarks/results``). A benchmark that raises is recorded with its error,
the others still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from typing import Sequence

from benchmarks import aat_speed, common, peers, speed, train_speed

BENCHMARKS = {"speed": speed, "train_speed": train_speed, "aat_speed": aat_speed, "peers": peers}
FULL = {name: {} for name in BENCHMARKS}  # each run()'s defaults: 1080p, 384x384 / 256x256 crops
# Quick mode: a few minutes on two busy CPU cores; same code paths, smaller shapes and fewer calls.
QUICK = {
    "speed": dict(height=270, width=480, batches=(1, 4), iters=3, warmup=1),
    "train_speed": dict(height=96, width=96, batch=8, iters=3, warmup=1),
    "aat_speed": dict(height=64, width=64, per_device_batch=16, iters=3, warmup=1),
    "peers": dict(height=270, width=480, iters=3, warmup=1),
}
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def run_all(settings: dict[str, dict], mode: str) -> dict:
    """Run ``BENCHMARKS[name].run(**kwargs)`` for each ``name: kwargs`` of ``settings``, in order.

    Returns ``{"device", "mode", "env", "settings", "benchmarks": {name: result}, "wall_s"}``;
    a failed benchmark's result is ``{"benchmark", "error"}``; every result gets its ``wall_s``.
    ``env`` is taken before the first benchmark (each result has its own, taken after it).
    """
    unknown = set(settings) - set(BENCHMARKS)
    if unknown:
        raise ValueError(f"unknown benchmark(s) {sorted(unknown)}; known: {sorted(BENCHMARKS)}")
    env = common.environment()
    start = time.perf_counter()
    results = {}
    for name, kwargs in settings.items():
        t0 = time.perf_counter()
        try:
            result = BENCHMARKS[name].run(**kwargs)
        except Exception as e:  # recorded and reported; the other benchmarks still run
            traceback.print_exc()
            result = {"benchmark": name, "error": f"{type(e).__name__}: {e}"}
        result["wall_s"] = time.perf_counter() - t0
        results[name] = result
        print(section(result) + "\n", flush=True)
    return {"device": common.device_slug(env), "mode": mode, "env": env, "settings": settings,
            "benchmarks": results, "wall_s": time.perf_counter() - start}


def section(result: dict) -> str:
    """Markdown of one benchmark's result (its table, or its error)."""
    name = result["benchmark"]
    body = f"failed: `{result['error']}`" if "error" in result else BENCHMARKS[name].markdown(result)
    return f"## {name}\n\n{body}"


def markdown(report: dict) -> str:
    env = report["env"]
    lines = [f"# BiRQA benchmarks on {env['device_kind']}", "", common.env_line(env), "",
             f"Mode: {report['mode']}; total wall time {report['wall_s']:.0f} s. Pairs/s from the median call; "
             "warm-up calls (compilation) excluded.", ""]
    lines += [section(r) + "\n" for r in report["benchmarks"].values()]
    return "\n".join(lines)


def write(report: dict, out_dir: str) -> tuple[str, str]:
    """Write ``<out_dir>/<device>.json`` and ``.md``; returns both paths."""
    base = os.path.join(out_dir, report["device"])
    common.write_json(base + ".json", report)
    with open(base + ".md", "w") as f:
        f.write(markdown(report))
    return base + ".json", base + ".md"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="reduced sizes for a CPU (a few minutes)")
    p.add_argument("--out-dir", default=RESULTS_DIR, help=f"folder of the results (default {RESULTS_DIR})")
    a = p.parse_args(argv)
    report = run_all(QUICK if a.quick else FULL, "quick" if a.quick else "full")
    for path in write(report, a.out_dir):
        print("wrote", path)
    return 1 if any("error" in r for r in report["benchmarks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
