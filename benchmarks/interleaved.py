"""BiRQA against its peers and against its own earlier revision, interleaved round by round.

    python -m benchmarks.interleaved --out benchmarks/results/cpu_interleaved.json
    python -m benchmarks.interleaved --rounds 2 --calls 1 --peer-size 64x96 --before-size 64x96

On a shared machine a ratio of two separate runs mixes the speed of the code with the load of
the moment. Here every contender is compiled (or built) first, then each round times ``calls``
calls of every contender in turn, the order rotated by one each round, and records the load
average at the start of the round. A ratio is formed within each round (the two contenders of a
round saw nearly the same load) and reported as the median over rounds with its range, next to
each contender's median call time over all rounds.

Two groups of contenders, each at its own size (batch 1, float32):

- ``before_after`` (default 1080x1920): the BiRQA forward of the packaged weights' config and of
  ``ModelConfig()`` as the model is today and as it was at git revision ``--before-rev`` (its
  ``pyramid.py`` and ``features.py``, read with ``git show`` from this checkout into fresh
  module objects; the parameter trees are the same, so both run the same parameters). Skipped
  with a reason when git or the revision is not available.
- ``peers`` (default 540x960): the same two BiRQA configs, and LPIPS (AlexNet taps), LPIPS
  (VGG-16 taps) and DISTS as built by ``benchmarks.peer_nets`` (random weights: speed only).
  When the ``lpips`` pip package is importable its own ``LPIPS(net="alex")`` with a random
  backbone runs too, as a check that ``peer_nets`` is not slower than the original. Needs
  torch; without it the group has BiRQA only and says why.

BiRQA parameters are untrained (speed does not depend on their values). Torch runs with its
default thread count, XLA with its own; both use every core.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import subprocess
import sys
import time
import types
from typing import Any, Callable, Sequence

import jax

from benchmarks import common
from birqa_jax.model import MIN_SIZE, BiRQA, ModelConfig, init_params

# The model before the speed work: a feature stage that materialised shifted copies (XLA bytes
# per 1080p pair 3.15 GB, now 0.81) and converted RGB to YCbCr with a tiny matrix product, the
# SCGB fine gate convolving the upsampled coarse level (now computed on the coarse grid) and GeM
# pooling through the general power function (benchmarks/README.md, "Cost analysis").
BEFORE_REV = "2d823a51"
MODEL_FILES = ("birqa_jax/model/features.py", "birqa_jax/model/pyramid.py")
IMAGEOPS_FILE = "birqa_jax/imageops.py"  # the image operations the features use, from the revision that split them out
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Contender:
    """A named zero-argument call and how to wait for its result."""

    def __init__(self, name: str, group: str, height: int, width: int, call: Callable[[], Any],
                 wait: Callable[[Any], Any] = jax.block_until_ready):
        self.name, self.group, self.height, self.width = name, group, height, width
        self.call, self.wait = call, wait
        self.times: list[float] = []
        self.round_medians: list[float] = []
        self.first_call_s: float | None = None
        self.extra: dict[str, Any] = {}

    def warm(self, warmup: int) -> None:
        """``warmup`` untimed calls; the first one's time is kept unless already known."""
        t0 = time.perf_counter()
        self.wait(self.call())
        if self.first_call_s is None:
            self.first_call_s = time.perf_counter() - t0
        for _ in range(warmup - 1):
            self.wait(self.call())

    def time_round(self, calls: int) -> None:
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            self.wait(self.call())
            times.append(time.perf_counter() - t0)
        self.times += times
        self.round_medians.append(statistics.median(times))


def _source_at(rev: str, path: str) -> str:
    try:
        return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True,
                              timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", "") or e
        raise RuntimeError(f"cannot read {path} at revision {rev!r} with git: {str(detail).strip()}") from e


def _module_from_source(name: str, source: str, origin: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = origin
    sys.modules[name] = module  # dataclasses look their module up while the classes are built
    exec(compile(source, origin, "exec"), module.__dict__)
    return module


def _source_or_none(rev: str, path: str) -> str | None:
    try:
        return _source_at(rev, path)
    except RuntimeError:
        return None


@contextlib.contextmanager
def _modules_in_place(**modules: types.ModuleType):
    """``sys.modules[name] = module`` (and the module as its package's attribute) while the body
    runs, so that an earlier revision's ``from birqa_jax.model import features`` gets that
    revision's module; everything is put back after."""
    saved = {name: sys.modules.get(name) for name in modules}
    parents = {}
    for name, module in modules.items():
        package, _, attr = name.rpartition(".")
        parent = sys.modules.get(package)
        parents[name] = (parent, attr, getattr(parent, attr, None))
        sys.modules[name] = module
        if parent is not None:
            setattr(parent, attr, module)
    try:
        yield
    finally:
        for name, module in saved.items():
            parent, attr, before = parents[name]
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
            if parent is not None and before is not None:
                setattr(parent, attr, before)


def load_model_at(rev: str) -> types.ModuleType:
    """The model module (``birqa_jax.model.pyramid``) as it was at git revision ``rev`` of this
    checkout, with the feature stage (and, from the revision that has one, the image operations)
    of that revision: fresh module objects, nothing on disk changes. Raises RuntimeError when git
    cannot produce them."""
    feats_path, pyramid_path = MODEL_FILES
    ops_source = _source_or_none(rev, IMAGEOPS_FILE)
    found: dict[str, types.ModuleType] = {}
    if ops_source is not None:
        found["birqa_jax.imageops"] = _module_from_source(f"_birqa_imageops_at_{rev}", ops_source,
                                                          f"{rev}:{IMAGEOPS_FILE}")
    with _modules_in_place(**found):
        feats = _module_from_source(f"_birqa_features_at_{rev}", _source_at(rev, feats_path), f"{rev}:{feats_path}")
    with _modules_in_place(**found, **{"birqa_jax.model.features": feats}):
        model = _module_from_source(f"_birqa_pyramid_at_{rev}", _source_at(rev, pyramid_path),
                                    f"{rev}:{pyramid_path}")
    model.features = feats  # the forward looks the feature stage up by this global name
    return model


def birqa_call(config: ModelConfig, params, height: int, width: int, seed: int,
               model_module: types.ModuleType | None = None) -> tuple[Callable[[], Any], float, float]:
    """A jitted forward of ``config`` on a random pair, compiled now (the model of
    ``model_module``, a ``load_model_at`` result, when given), the seconds its first call took
    and the score it gave."""
    ref, dist = common.random_pair(seed, 1, height, width)
    if model_module is None:
        model = BiRQA(config)
    else:
        model = model_module.BiRQA(model_module.ModelConfig.from_dict(config.to_dict()))
    fn = jax.jit(model.apply)
    t0 = time.perf_counter()
    score = jax.block_until_ready(fn(params, ref, dist))
    return functools.partial(fn, params, ref, dist), time.perf_counter() - t0, float(score[0])


def torch_contenders(height: int, width: int, seed: int) -> tuple[list[Contender], dict[str, Any]]:
    """The PyTorch peers at ``height`` x ``width`` on the CPU (empty, with the reason, without torch)."""
    try:
        import torch
    except ImportError as e:
        return [], {"skipped": f"torch not importable: {e}"}
    from benchmarks import peer_nets

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    ref = torch.rand(1, 3, height, width, generator=gen)
    dist = (ref + 0.05 * torch.randn(ref.shape, generator=gen)).clamp(0, 1)
    ref, dist = (t.contiguous(memory_format=torch.channels_last) for t in (ref, dist))
    nets = {
        "LPIPS (AlexNet taps), peer_nets": lambda: peer_nets.LPIPSLike("alex"),
        "LPIPS (VGG-16 taps), peer_nets": lambda: peer_nets.LPIPSLike("vgg"),
        "DISTS (VGG-16, L2 pooling), peer_nets": peer_nets.DISTSLike,
    }
    info: dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    try:
        import lpips  # the original package: random backbone, no download

        nets["LPIPS (AlexNet), lpips package"] = lambda: lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True,
                                                                     verbose=False)
        info["lpips"] = getattr(lpips, "__version__", "installed")
    except ImportError as e:
        info["lpips"] = f"not importable: {e}"
    out = []
    for name, build in nets.items():
        net = build().eval().to(memory_format=torch.channels_last)

        def call(net=net):
            with torch.inference_mode():
                return net(ref, dist)

        out.append(Contender(name, "peers", height, width, call, wait=lambda o: o.float().cpu()))
    return out, info


def _ratio(a: Contender, b: Contender) -> dict[str, float]:
    """Speed of ``a`` over speed of ``b`` (b's time / a's time) in each round: median, min, max."""
    r = [tb / ta for ta, tb in zip(a.round_medians, b.round_medians)]
    return {"median": statistics.median(r), "min": min(r), "max": max(r), "rounds": r}


def run(
    before_size: tuple[int, int] | None = (1080, 1920),
    peer_size: tuple[int, int] | None = (540, 960),
    rounds: int = 5,
    calls: int = 2,
    warmup: int = 2,
    before_rev: str = BEFORE_REV,
    with_torch: bool = True,
    configs: dict[str, ModelConfig] | None = None,
    seed: int = 0,
) -> dict:
    """Build every contender, then time them round by round. ``before_size``/``peer_size``: the
    two groups' ``(height, width)``, None to leave a group out. ``configs``: the BiRQA configs by
    label (default: ``"packaged"``, the packaged weights' config, and ``"default"``,
    ``ModelConfig()``). Returns ``{"benchmark": "interleaved", "env", "settings", "groups",
    "rows", "ratios", "rounds"}``.
    """
    if rounds < 1 or calls < 1 or warmup < 1:
        raise ValueError(f"rounds, calls and warmup must be >= 1, got {rounds}, {calls}, {warmup}")
    for size in (before_size, peer_size):
        if size is not None and min(size) < MIN_SIZE:
            raise ValueError(f"sizes must be at least {MIN_SIZE} on each side, got {size[0]}x{size[1]}")
    if configs is None:
        from benchmarks.cost import packaged_config

        configs = {"packaged": packaged_config(), "default": ModelConfig()}
    params = {label: init_params(cfg, seed) for label, cfg in configs.items()}
    groups: dict[str, dict[str, Any]] = {}
    contenders: list[Contender] = []

    def birqa(label: str, group: str, size: tuple[int, int], module=None, suffix: str = "") -> Contender:
        cfg = configs[label]
        widths = "-".join(map(str, cfg.widths))
        call, first_call_s, score = birqa_call(cfg, params[label], *size, seed, module)
        c = Contender(f"BiRQA {label} ({widths}){suffix}", group, *size, call)
        c.first_call_s = first_call_s  # trace, compile and run
        c.extra["score"] = score  # variants of one config at one size must agree
        contenders.append(c)
        return c

    ratios: dict[str, dict[str, float]] = {}
    pairs: list[tuple[str, Contender, Contender]] = []
    if before_size is not None:
        try:
            old = load_model_at(before_rev)
        except RuntimeError as e:
            groups["before_after"] = {"skipped": str(e)}
        else:
            groups["before_after"] = {"height": before_size[0], "width": before_size[1], "before_rev": before_rev}
            for label in configs:
                before = birqa(label, "before_after", before_size, old, f", model at {before_rev}")
                after = birqa(label, "before_after", before_size, None, ", today")
                pairs.append((f"{label}: today / model at {before_rev}", after, before))
    if peer_size is not None:
        ours = {label: birqa(label, "peers", peer_size) for label in configs}
        peers, info = torch_contenders(*peer_size, seed) if with_torch else ([], {"skipped": "with_torch=False"})
        groups["peers"] = {"height": peer_size[0], "width": peer_size[1], **info}
        contenders += peers
        for peer in peers:
            for label, c in ours.items():
                pairs.append((f"{label} / {peer.name}", c, peer))

    for c in contenders:
        c.warm(warmup)
    round_log = []
    for r in range(rounds):
        k = r % len(contenders)
        order = contenders[k:] + contenders[:k]
        load = list(os.getloadavg())
        t0 = time.perf_counter()
        for c in order:
            c.time_round(calls)
        round_log.append({"round": r, "loadavg_start": load, "wall_s": time.perf_counter() - t0,
                          "order": [c.name for c in order]})
    for name, a, b in pairs:
        ratios[name] = _ratio(a, b)

    rows = []
    for c in contenders:
        timing = {"first_call_s": c.first_call_s, "median_s": statistics.median(c.times),
                  "mean_s": statistics.fmean(c.times), "min_s": min(c.times), "max_s": max(c.times),
                  "times_s": c.times}
        rows.append(common.timing_row(c.name, batch=1, height=c.height, width=c.width, dtype="float32",
                                      timing=timing, group=c.group, round_medians_s=c.round_medians,
                                      **c.extra))
    return {
        "benchmark": "interleaved",
        "env": common.environment(),
        "settings": {"rounds": rounds, "calls_per_round": calls, "warmup": warmup, "seed": seed,
                     "before_size": list(before_size) if before_size else None,
                     "peer_size": list(peer_size) if peer_size else None, "before_rev": before_rev,
                     "configs": {label: cfg.to_dict() for label, cfg in configs.items()},
                     "weights": "untrained BiRQA, random peer weights: speed only"},
        "groups": groups,
        "rows": rows,
        "ratios": ratios,
        "rounds": round_log,
        "loadavg_end": list(os.getloadavg()),
    }


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [f"{s['rounds']} rounds x {s['calls_per_round']} calls, interleaved; batch 1, float32, "
             f"{s['weights']}:", "", common.table(result["rows"], [("group", "group")]), "",
             "| ratio (speed of the first over the second, per round) | median | min | max |",
             "| --- | --- | --- | --- |"]
    for name, r in result["ratios"].items():
        lines.append(f"| {name} | {r['median']:.2f} | {r['min']:.2f} | {r['max']:.2f} |")
    for name, g in result["groups"].items():
        if "skipped" in g:
            lines.append(f"\n{name}: skipped ({g['skipped']})")
    loads = [r["loadavg_start"][0] for r in result["rounds"]] + [result["loadavg_end"][0]]
    lines.append(f"\n1-minute load average over the rounds: {min(loads):.2f}-{max(loads):.2f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before-size", type=common.parse_size, default=(1080, 1920),
                   help="HEIGHTxWIDTH of the before/after group (default 1080x1920)")
    p.add_argument("--peer-size", type=common.parse_size, default=(540, 960),
                   help="HEIGHTxWIDTH of the peer group (default 540x960)")
    p.add_argument("--no-before", action="store_true", help="leave the before/after group out")
    p.add_argument("--no-peers", action="store_true", help="leave the peer group out")
    p.add_argument("--before-rev", default=BEFORE_REV, help=f"git revision of the earlier model ({BEFORE_REV})")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=2, help="timed calls of each contender per round")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls of each contender first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the results as JSON here")
    a = p.parse_args(argv)
    result = run(None if a.no_before else a.before_size, None if a.no_peers else a.peer_size, rounds=a.rounds,
                 calls=a.calls, warmup=a.warmup, before_rev=a.before_rev, seed=a.seed)
    return common.report_result(result, markdown, a.out)


if __name__ == "__main__":
    main(sys.argv[1:])
