"""Shared pieces of the benchmarks: timing, the run's environment, tables and JSON files.

Every benchmark reports the same row format (``timing_row``): the settings of the measured call,
its median and mean wall time over the timed iterations, and pairs per second from the median.
Warm-up calls are never timed into the statistics; the first call's time (for JAX, mostly
compilation) is kept apart as ``first_call_s``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import statistics
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

from birqa_jax.model import ModelConfig


def parse_size(text: str) -> tuple[int, int]:
    """``"HxW"`` (height first, e.g. ``"1080x1920"``) -> ``(1080, 1920)``; both positive."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ValueError(f"size must be HEIGHTxWIDTH with positive integers, e.g. 1080x1920; got {text!r}")
    return int(m.group(1)), int(m.group(2))


def time_calls(
    call: Callable[[], Any],
    *,
    warmup: int,
    iters: int,
    wait: Callable[[Any], Any] = jax.block_until_ready,
) -> dict[str, Any]:
    """Wall time of ``call()`` after ``warmup`` untimed calls; each timed call is waited for.

    ``wait(output)`` blocks until the call's work is done (``jax.block_until_ready`` for JAX,
    a device-to-host copy for torch). Returns seconds: ``first_call_s`` (the first warm-up call,
    which compiles), ``median_s``, ``mean_s``, ``min_s``, ``max_s`` and every timed
    iteration in ``times_s``.
    """
    if warmup < 1:
        raise ValueError(f"warmup must be >= 1 (the first call compiles and is never timed), got {warmup}")
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    t0 = time.perf_counter()
    wait(call())
    first_call_s = time.perf_counter() - t0
    for _ in range(warmup - 1):
        wait(call())
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        wait(call())
        times.append(time.perf_counter() - t0)
    return {
        "first_call_s": first_call_s,
        "median_s": statistics.median(times),
        "mean_s": statistics.fmean(times),
        "min_s": min(times),
        "max_s": max(times),
        "times_s": times,
    }


def timing_row(what: str, *, batch: int, height: int, width: int, dtype: str, timing: dict, **extra) -> dict:
    """One result row: settings, ``timing`` (from ``time_calls``) and ``pairs_per_s`` =
    ``batch / median_s`` (``pairs_per_s_mean`` from the mean)."""
    return {
        "what": what,
        "batch": batch,
        "height": height,
        "width": width,
        "dtype": dtype,
        **extra,
        **timing,
        "iters": len(timing["times_s"]),
        "pairs_per_s": batch / timing["median_s"],
        "pairs_per_s_mean": batch / timing["mean_s"],
    }


def environment() -> dict[str, Any]:
    """Where and when the numbers were taken: JAX device and versions, date, host load."""
    import jaxlib

    dev = jax.devices()[0]
    return {
        "device_kind": dev.device_kind,
        "platform": dev.platform,
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "python": platform.python_version(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        # Other processes share this machine's cores: the 1/5/15-minute load says how much.
        "loadavg": list(os.getloadavg()),
    }


def device_slug(env: dict[str, Any]) -> str:
    """File-name form of the device: ``"cpu"``, or the device kind such as ``"nvidia-h200"``."""
    if env["platform"] == "cpu":
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", env["device_kind"].lower()).strip("-")


def random_pair(seed: int, batch: int, height: int, width: int) -> tuple[jax.Array, jax.Array]:
    """A random reference and a noisy copy: [batch, height, width, 3] float32 in [0, 1], on the
    default device. Drawn with numpy: a jax.random draw compiles a program per shape (about a
    second each on the CPU), which the benchmarks would pay before timing anything."""
    rng = np.random.default_rng(seed)
    ref = rng.random((batch, height, width, 3), dtype=np.float32)
    dist = np.clip(ref + np.float32(0.05) * rng.standard_normal(ref.shape, dtype=np.float32), 0.0, 1.0)
    return jax.device_put(ref), jax.device_put(dist)


def table(rows: Sequence[dict], extra: Sequence[tuple[str, str]] = ()) -> str:
    """Markdown table of timing rows; ``extra`` adds ``(header, key)`` columns after ``what``."""
    headers = ["what", *(h for h, _ in extra), "dtype", "batch", "H x W", "median ms", "mean ms", "pairs/s",
               "first call s"]
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    for r in rows:
        cells = [r["what"], *(str(r[k]) for _, k in extra), r["dtype"], str(r["batch"]),
                 f"{r['height']} x {r['width']}", f"{1e3 * r['median_s']:.2f}", f"{1e3 * r['mean_s']:.2f}",
                 f"{r['pairs_per_s']:,.1f}", f"{r['first_call_s']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def env_line(env: dict[str, Any]) -> str:
    """One markdown line naming the device, versions, date and load."""
    load = ", ".join(f"{x:.2f}" for x in env["loadavg"])
    return (f"{env['device_kind']} ({env['platform']}, {env['device_count']} device(s)), jax {env['jax_version']}, "
            f"{env['date_utc']}, load average {load} on {env['cpu_count']} CPUs")


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON, creating the folder if needed."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def report_result(result: dict[str, Any], markdown, out: str | None) -> dict[str, Any]:
    """The end of every benchmark's ``main``: print the environment and the table, write JSON."""
    print(env_line(result["env"]))
    print(markdown(result))
    if out:
        write_json(out, result)
    return result


def local_devices(count: int | None = None) -> list:
    """The first ``count`` local devices (all of them for None): a data-parallel benchmark's mesh."""
    devices = jax.local_devices()
    if count is not None and not 1 <= count <= len(devices):
        raise ValueError(f"devices must be in 1..{len(devices)}, got {count}")
    return devices[:count]


def add_run_args(p, *, iters: int, warmup: int, widths: bool = True) -> None:
    """The options every benchmark CLI shares: call counts, seed, JSON output (and widths)."""
    if widths:
        p.add_argument("--widths", type=int, nargs="+", default=list(ModelConfig().widths), help="pyramid widths")
    p.add_argument("--iters", type=int, default=iters, help="timed calls per setting")
    p.add_argument("--warmup", type=int, default=warmup, help="untimed calls first (the first compiles)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the results as JSON here")
