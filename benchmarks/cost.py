"""XLA cost analysis: FLOPs and bytes accessed per pair, per model stage and for a train step.

    python -m benchmarks.cost                                    # 1080x1920, both configs, fp32 and bf16
    python -m benchmarks.cost --size 270x480 --train-size 64x64 --out cost.json

Numbers come from XLA's cost analysis of the compiled program on the default backend
(``jax.jit(f).lower(...).compile().cost_analysis()``), not from a timer: they do not depend on
the machine's load. Each stage is compiled as its own function with the input shapes it sees
inside the model (so every intermediate tensor of that stage counts, and its inputs are read
from memory once): the feature stage (``features.feature_stack``), each pyramid level, each
CSRAM and SCGB block, the reliability head, then the whole forward (``BiRQA.apply``) as one
program, where XLA may fuse across stage boundaries. The configs are ``ModelConfig()`` and the
packaged weights' config (read from ``birqa_jax/assets/birqa_default.msgpack``), each with
``dtype`` float32 and bfloat16; parameters are random (costs do not depend on their values).
The classical metrics (``classical.NAMES``, both modes, batch 1) are costed as whole programs
at the same size. The train step is the fused anchored-AAT step (``train.step.make_train_step`` with
``AttackSpec("pgd")``, the ``benchmarks.aat_speed`` settings) on smaller crops, per pair of its
batch.

Two byte counts per program:

* ``bytes_accessed``: XLA's own count. Inside a fused loop it charges every sliced read of an
  operand separately, so a stencil written as shifted slices (a separable filter, LBP
  neighbours) pays once per tap even though its windows stay in cache, while a convolution or a
  reduce-window reading the same data pays once.
* ``buffer_bytes``: the top-level buffers of the optimised program, each instruction's output
  written once and each distinct operand read once, from the HLO text. It is what the program
  moves to and from memory when every fused stencil hits the cache; it ignores the tap count.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from benchmarks import common
from birqa_jax import classical, parallel
from birqa_jax.model import (
    CSRAM,
    MIN_SIZE,
    SCGB,
    BiRQA,
    ModelConfig,
    PyramidLevel,
    ReliabilityHead,
    features,
    init_params,
    load_model,
)

PACKAGED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "birqa_jax", "assets",
                        "birqa_default.msgpack")
NOTE = ("Each stage is compiled as its own function with its input shapes inside the model: its intermediate "
        "tensors count and its inputs are read once; the whole forward is one program (XLA may fuse across "
        "stages). bytes_accessed is XLA's count (a sliced read inside a fusion counts per slice); buffer_bytes "
        "counts each top-level buffer once per writer and reader.")

_DTYPE_BYTES = {"f64": 8, "s64": 8, "u64": 8, "c64": 8, "f32": 4, "s32": 4, "u32": 4, "bf16": 2, "f16": 2,
                "s16": 2, "u16": 2, "s8": 1, "u8": 1, "pred": 1}
_ARRAY = re.compile(r"\b(" + "|".join(_DTYPE_BYTES) + r")\[([\d,]*)\]")
_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.+?)\s+([\w\-]+)\((.*)$")
_FREE = {"parameter", "constant", "bitcast", "get-tuple-element", "tuple"}


def _shape_bytes(shape_text: str) -> int:
    """Bytes of every array in an HLO shape (a tuple counts all its elements)."""
    total = 0
    for dt, dims in _ARRAY.findall(shape_text):
        n = 1
        for d in filter(None, dims.split(",")):
            n *= int(d)
        total += n * _DTYPE_BYTES[dt]
    return total


def buffer_bytes(hlo_text: str) -> int | None:
    """Bytes of the top-level buffers of an optimised HLO module: for each instruction of the
    entry computation (parameters, constants, bitcasts and tuple plumbing excepted), its output
    once plus each distinct operand once. None if the text has no entry computation."""
    start = hlo_text.find("\nENTRY ")
    if start < 0:
        return None
    lines = hlo_text[start + 1:].splitlines()[1:]
    shapes, total = {}, 0
    for line in lines:
        if line.startswith("}"):
            break
        m = _INSTR.match(line)
        if not m:
            continue
        name, shape, op, rest = m.groups()
        shapes[name] = _shape_bytes(shape)
        if op in _FREE:
            continue
        args = rest.split(")", 1)[0] if op != "fusion" else rest.split("), kind=", 1)[0]
        operands = dict.fromkeys(re.findall(r"%([\w.\-]+)", args))
        total += shapes[name] + sum(shapes.get(o, 0) for o in operands)
    return total


def program_cost(fn: Callable, *args) -> dict[str, Any]:
    """XLA cost of ``jax.jit(fn)`` compiled for ``args`` (arrays or ``jax.ShapeDtypeStruct``):
    ``flops``, ``bytes_accessed``, ``transcendentals`` and ``buffer_bytes`` of the whole call."""
    return compiled_cost(jax.jit(fn).lower(*args).compile())


def compiled_cost(compiled) -> dict[str, Any]:
    """``flops``, ``bytes_accessed``, ``transcendentals`` and ``buffer_bytes`` of a compiled
    program (``jax.stages.Compiled``)."""
    ca = compiled.cost_analysis()
    if isinstance(ca, (list, tuple)):  # older jax: one dict per program
        ca = ca[0]
    return {"flops": float(ca.get("flops", 0.0)), "bytes_accessed": float(ca.get("bytes accessed", 0.0)),
            "transcendentals": float(ca.get("transcendentals", 0.0)), "buffer_bytes": buffer_bytes(compiled.as_text())}


def _spec(x) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(x.shape, x.dtype)


def _shape_text(args) -> str:
    leaves = jax.tree_util.tree_leaves(args)
    return " + ".join(f"{jnp.dtype(a.dtype).name}{list(a.shape)}" for a in leaves)


def stage_costs(config: ModelConfig, params, height: int, width: int, batch: int = 1) -> list[dict[str, Any]]:
    """Cost rows of each stage of ``BiRQA(config)`` and of the whole forward for a batch of
    ``batch`` pairs of ``height x width``; ``params`` of ``config`` (values do not matter).

    Each row: ``stage``, ``inputs`` (dtype and shape of every input), the ``program_cost``
    fields for the whole batch and ``per_pair`` (those divided by ``batch``)."""
    dtype = jnp.dtype(config.dtype)
    p = params["params"]
    img = jax.ShapeDtypeStruct((batch, height, width, 3), jnp.float32)
    feats_fn = lambda r, d: features.feature_stack(  # noqa: E731
        r, d, lbp_temperature=config.lbp_temperature, info_c=config.info_c, include_luma=config.include_luma)
    stages: list[tuple[str, Callable, tuple]] = [("features", feats_fn, (img, img))]
    x = jax.ShapeDtypeStruct(jax.eval_shape(feats_fn, img, img).shape, dtype)  # the model casts the features

    levels = []
    for i, w in enumerate(config.widths):
        level = PyramidLevel(w, dtype)
        fn = (lambda m, q: lambda v: m.apply({"params": q}, v))(level, p[f"level_{i}"])
        stages.append((f"level_{i}", fn, (x,)))
        x = _spec(jax.eval_shape(fn, x))
        if levels:
            block = CSRAM(dtype)
            fn = (lambda m, q: lambda c, f: m.apply({"params": q}, c, f))(block, p[f"csram_{i}"])
            stages.append((f"csram_{i}", fn, (x, levels[-1])))
            x = _spec(jax.eval_shape(fn, x, levels[-1]))
        levels.append(x)
    for i in reversed(range(len(levels) - 1)):
        block = SCGB(dtype, config.cross_gate_coarse)
        fn = (lambda m, q: lambda f, c: m.apply({"params": q}, f, c))(block, p[f"scgb_{i}"])
        stages.append((f"scgb_{i}", fn, (levels[i], levels[i + 1])))
        levels[i], levels[i + 1] = map(_spec, jax.eval_shape(fn, levels[i], levels[i + 1]))
    head = ReliabilityHead(config.head_hidden, config.gem_init, config.gem_input)
    stages.append(("head", lambda *ls: head.apply({"params": p["head"]}, list(ls)), tuple(levels)))
    model = BiRQA(config)
    stages.append(("forward", lambda r, d: model.apply(params, r, d), (img, img)))

    rows = []
    for name, fn, args in stages:
        cost = program_cost(fn, *args)
        rows.append({"stage": name, "inputs": _shape_text(args), **cost,
                     "per_pair": {k: (v / batch if v is not None else None) for k, v in cost.items()}})
    return rows


def train_step_cost(config: ModelConfig, height: int, width: int, per_device_batch: int = 16, num_anchors: int = 4,
                    eps: float = 4 / 255, steps: int = 3, seed: int = 0) -> dict[str, Any]:
    """Cost of one fused anchored-AAT train step (PGD-``steps`` inside the step, AdamW update)
    on one device, for ``per_device_batch`` pairs of ``height x width`` (``num_anchors`` clean
    anchors), as ``benchmarks.aat_speed`` runs it. Returns the ``program_cost`` fields for the
    batch, ``per_pair`` and the settings."""
    from benchmarks.train_speed import OPTIMIZER, host_batch
    from birqa_jax.train import step as training

    mesh = parallel.make_mesh(jax.devices()[:1])
    tx = training.make_optimizer(**OPTIMIZER)
    spec = training.AttackSpec(name="pgd", eps=eps, settings={"steps": steps}, anchored=True)
    step = training.make_train_step(BiRQA(config), tx, mesh, attack=spec)
    state = training.replicate(training.create_train_state(init_params(config, seed), tx, seed), mesh)
    batch = training.global_batch(host_batch(seed, per_device_batch, height, width,
                                             (num_anchors, per_device_batch)), mesh)
    cost = compiled_cost(step.lower(state, batch).compile())
    return {"stage": "aat_train_step", "inputs": f"float32[{per_device_batch}, {height}, {width}, 3] x 2",
            "height": height, "width": width, "batch": per_device_batch, "num_anchors": num_anchors,
            "attack": f"pgd-{steps}", "eps": eps, **cost,
            "per_pair": {k: (v / per_device_batch if v is not None else None) for k, v in cost.items()}}


def classical_costs(height: int, width: int, names: Sequence[str] = classical.NAMES) -> list[dict[str, Any]]:
    """XLA cost of each classical metric's whole program (``classical.get(name, mode)``) on one
    ``height`` x ``width`` float32 pair, in both modes: rows ``{"metric", "mode", "per_pair"}``."""
    pair = [jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32)] * 2
    return [{"metric": name, "mode": mode, "per_pair": program_cost(classical.get(name, mode), *pair)}
            for name in names if min(height, width) >= classical.MIN_SIZE[name] for mode in classical.MODES]


def packaged_config() -> ModelConfig:
    """The config of the packaged default weights (``birqa_jax/assets/birqa_default.msgpack``)."""
    return load_model(PACKAGED)[1]


def run(
    height: int = 1080,
    width: int = 1920,
    dtypes: Sequence[str] = ("float32", "bfloat16"),
    configs: dict[str, ModelConfig] | None = None,
    train_size: tuple[int, int] | None = (256, 256),
    train_batch: int = 16,
    train_anchors: int = 4,
    train_steps: int = 3,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    classical_names: Sequence[str] = (),
) -> dict:
    """Cost rows of every stage, for each config x dtype, at batch 1, and of the fused AAT
    step (float32, per config) on ``train_size`` crops (None skips it).

    ``configs``: name -> ``ModelConfig`` (default ``{"default": ModelConfig(), "packaged": the
    packaged weights' config}``); each is costed with ``dtype`` replaced by each of ``dtypes``,
    with ``params[name]`` if given, else random parameters.
    Returns ``{"benchmark": "cost", "env", "settings", "note", "rows", "train"}``: ``rows`` as
    ``stage_costs`` plus ``config``, ``widths`` and ``dtype``; ``train`` as ``train_step_cost``
    plus ``config`` and ``widths``; ``classical`` as ``classical_costs`` for ``classical_names``.
    """
    if min(height, width) < MIN_SIZE:
        raise ValueError(f"height and width must be >= {MIN_SIZE}, got {height}x{width}")
    if configs is None:
        configs = {"default": ModelConfig(), "packaged": packaged_config()}
    rows, train = [], []
    for name, base in configs.items():
        p = params[name] if params and name in params else init_params(base, seed)  # float32 for every dtype
        for dtype in dtypes:
            cfg = ModelConfig.from_dict({**base.to_dict(), "dtype": dtype})
            for r in stage_costs(cfg, p, height, width):
                rows.append({"config": name, "widths": list(cfg.widths), "dtype": dtype, **r})
        if train_size is not None:
            t = train_step_cost(base, *train_size, per_device_batch=train_batch, num_anchors=train_anchors,
                                steps=train_steps, seed=seed)
            train.append({"config": name, "widths": list(base.widths), "dtype": base.dtype, **t})
    return {
        "benchmark": "cost",
        "env": common.environment(),
        "settings": {"height": height, "width": width, "batch": 1, "dtypes": list(dtypes),
                     "configs": {k: v.to_dict() for k, v in configs.items()},
                     "train": None if train_size is None else {
                         "height": train_size[0], "width": train_size[1], "batch": train_batch,
                         "num_anchors": train_anchors, "attack": f"pgd-{train_steps}", "dtype": "float32"},
                     "seed": seed, "source": "jax.jit(f).lower(...).compile().cost_analysis()"},
        "note": NOTE,
        "rows": rows,
        "train": train,
        "classical": classical_costs(height, width, classical_names),
    }


def _g(x: float | None, scale: float = 1e9) -> str:
    return "-" if x is None else f"{x / scale:,.3f}"


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [f"XLA cost analysis per pair at {s['height']}x{s['width']}, batch 1 ({result['env']['platform']} "
             f"backend). {result['note']}", "",
             "| config | widths | dtype | stage | inputs | GFLOP | GB accessed (XLA) | GB buffers |",
             "|" + " --- |" * 8]
    for r in result["rows"]:
        pp = r["per_pair"]
        widths = "-".join(map(str, r["widths"]))
        lines.append(f"| {r['config']} | {widths} | {r['dtype']} | {r['stage']} | {r['inputs']} | {_g(pp['flops'])} | "
                     f"{_g(pp['bytes_accessed'])} | {_g(pp['buffer_bytes'])} |")
    if result["train"]:
        t0 = result["train"][0]
        lines += ["", f"Fused AAT train step ({t0['attack']}, eps {t0['eps'] * 255:.0f}/255, {t0['num_anchors']} "
                      f"anchors of {t0['batch']}, {t0['height']}x{t0['width']} crops, float32, one device), per pair:",
                  "", "| config | widths | GFLOP | GB accessed (XLA) | GB buffers |", "|" + " --- |" * 5]
        for t in result["train"]:
            pp = t["per_pair"]
            lines.append(f"| {t['config']} | {'-'.join(map(str, t['widths']))} | {_g(pp['flops'])} | "
                         f"{_g(pp['bytes_accessed'])} | {_g(pp['buffer_bytes'])} |")
    if result.get("classical"):
        lines += ["", f"Classical metrics, whole program per pair at {s['height']}x{s['width']} (float32):", "",
                  "| metric | mode | GFLOP | GB accessed (XLA) | GB buffers |", "|" + " --- |" * 5]
        for c in result["classical"]:
            pp = c["per_pair"]
            lines.append(f"| {c['metric']} | {c['mode']} | {_g(pp['flops'])} | {_g(pp['bytes_accessed'])} | "
                         f"{_g(pp['buffer_bytes'])} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=common.parse_size, default=(1080, 1920), help="HEIGHTxWIDTH (default 1080x1920)")
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    p.add_argument("--widths", type=int, nargs="+", action="append",
                   help="cost these widths instead of the two default configs (repeatable)")
    p.add_argument("--train-size", type=common.parse_size, default=(256, 256),
                   help="crop of the AAT train step (default 256x256)")
    p.add_argument("--train-batch", type=int, default=16)
    p.add_argument("--train-steps", type=int, default=3, help="PGD steps inside the train step")
    p.add_argument("--no-train", action="store_true", help="skip the train step")
    p.add_argument("--classical", nargs="*", default=list(classical.NAMES), choices=list(classical.NAMES),
                   help="classical metrics to cost (default all; none: --classical with no name)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the results as JSON here")
    a = p.parse_args(argv)
    configs = None
    if a.widths:
        configs = {"-".join(map(str, w)): ModelConfig(widths=tuple(w)) for w in a.widths}
    result = run(*a.size, dtypes=a.dtypes, configs=configs, train_size=None if a.no_train else a.train_size,
                 train_batch=a.train_batch, train_steps=a.train_steps, seed=a.seed, classical_names=a.classical)
    return common.report_result(result, markdown, a.out)


if __name__ == "__main__":
    main(sys.argv[1:])
