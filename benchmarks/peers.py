"""Peer metrics' speed in PyTorch: LPIPS (AlexNet, VGG-16) and DISTS, random weights.

    python -m benchmarks.peers                                  # 1080x1920 on CUDA, 270x480 on CPU
    python -m benchmarks.peers --size 135x240 --iters 3 --out peers.json

The networks (``benchmarks.peer_nets``) have the published architectures and RANDOM weights:
the numbers are speeds only. Each runs on CUDA if available, else on the CPU, in inference mode
with channels-last tensors, in float32 and under bfloat16 autocast. Needs only torch; without
it the result says ``"skipped": "torch not importable: ..."``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from benchmarks import common

LABEL = "random weights, speed only"
CPU_SIZE = (270, 480)  # a quarter of 1080p per side keeps a CPU run to seconds per network
CUDA_SIZE = (1080, 1920)
DTYPES = ("float32", "bfloat16")


def run(
    height: int | None = None,
    width: int | None = None,
    batch: int = 1,
    dtypes: Sequence[str] = DTYPES,
    iters: int = 10,
    warmup: int = 3,
    seed: int = 0,
) -> dict:
    """Time each peer network on a random [batch, 3, height, width] pair in [0, 1].

    ``height``/``width`` default to 1080x1920 on CUDA and 270x480 on the CPU. ``dtypes``:
    ``"float32"`` and/or ``"bfloat16"`` (autocast; the DISTS statistics stay float32).
    Returns ``{"benchmark": "peers", "env", "torch", "settings", "rows"}``, or
    ``{"benchmark": "peers", "env", "skipped": reason}`` when torch does not import.
    """
    try:
        import torch
    except ImportError as e:
        return {"benchmark": "peers", "env": common.environment(), "skipped": f"torch not importable: {e}"}
    from benchmarks import peer_nets

    unknown = set(dtypes) - set(DTYPES)
    if unknown:
        raise ValueError(f"dtypes must be among {DTYPES}, got {sorted(unknown)}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if height is None or width is None:
        height, width = CUDA_SIZE if device.type == "cuda" else CPU_SIZE
    if min(height, width) < 32:
        raise ValueError(f"height and width must be >= 32 for the networks' pooling, got {height}x{width}")
    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the random weights
    ref = torch.rand(batch, 3, height, width, generator=gen)
    dist = (ref + 0.05 * torch.randn(ref.shape, generator=gen)).clamp(0, 1)
    ref, dist = (t.to(device).contiguous(memory_format=torch.channels_last) for t in (ref, dist))

    networks = {
        "LPIPS (AlexNet taps)": lambda: peer_nets.LPIPSLike("alex"),
        "LPIPS (VGG-16 taps)": lambda: peer_nets.LPIPSLike("vgg"),
        "DISTS (VGG-16, L2 pooling)": peer_nets.DISTSLike,
    }
    rows = []
    for name, build in networks.items():
        net = build().eval().to(device, memory_format=torch.channels_last)
        for dtype in dtypes:
            def call(net=net, dtype=dtype):
                with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=dtype == "bfloat16"):
                    return net(ref, dist)

            # Copying the [batch] scores to the host waits for the device (CUDA runs asynchronously).
            timing = common.time_calls(call, warmup=warmup, iters=iters, wait=lambda out: out.float().cpu())
            rows.append(common.timing_row(f"{name}, {LABEL}", batch=batch, height=height, width=width,
                                          dtype=dtype if dtype == "float32" else "bfloat16 autocast",
                                          timing=timing, device=device.type))
        del net
    return {
        "benchmark": "peers",
        "env": common.environment(),
        "torch": {
            "version": torch.__version__,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "cuda": torch.version.cuda,
            "threads": torch.get_num_threads(),
            "cudnn_benchmark": True,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        },
        "settings": {"height": height, "width": width, "batch": batch, "dtypes": list(dtypes), "iters": iters,
                     "warmup": warmup, "seed": seed, "weights": LABEL, "layout": "channels_last",
                     "mode": "inference_mode; ref and dist in one backbone call"},
        "rows": rows,
    }


def markdown(result: dict) -> str:
    if "skipped" in result:
        return f"PyTorch peers: skipped ({result['skipped']})."
    t = result["torch"]
    head = f"PyTorch peers (torch {t['version']} on {t['device']}, {LABEL}, channels-last, inference mode):\n\n"
    return head + common.table(result["rows"], [("device", "device")])


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=common.parse_size, help="HEIGHTxWIDTH (default 1080x1920 on CUDA, 270x480 on CPU)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    common.add_run_args(p, iters=10, warmup=3, widths=False)
    a = p.parse_args(argv)
    height, width = a.size if a.size else (None, None)
    result = run(height, width, batch=a.batch, dtypes=a.dtypes, iters=a.iters, warmup=a.warmup, seed=a.seed)
    return common.report_result(result, markdown, a.out)


if __name__ == "__main__":
    main(sys.argv[1:])
