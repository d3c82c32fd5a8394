"""``train_and_evaluate(config, workdir)``: the training loop behind ``train.py``.

Clean training and (anchored) adversarial fine-tuning share this loop; the config's ``aat``
block switches the data to MOS-band batches with anchors and puts the attack inside the step.
A run is resumable: state (params, optimiser, step, RNG, counters) is checkpointed, and batch k
of the input stream is a pure function of (seed, k), so restarting with the same workdir
continues exactly where the last checkpoint left off.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from birqa_jax import parallel
from birqa_jax.classical import BASELINES
from birqa_jax.data import iterate, mos_band_dataset, train_dataset
from birqa_jax.data.from_config import load_data, plain
from birqa_jax.evaluation import report, runner
from birqa_jax.evaluation.job import EvalSet, evaluate_set
from birqa_jax.files import atomic_write_bytes
from birqa_jax.model import BiRQA, ModelConfig, apply_fn, init_params, load_model, save_model
from birqa_jax.runs import CONFIG_FILE, MODEL_FILE, model_config
from birqa_jax.train import step as training
from birqa_jax.train.checkpoints import Checkpoints


def initial_params(config, model_cfg: ModelConfig):
    """Fresh parameters, or those of ``config.init_from`` (a model file or a run's workdir)."""
    if not config.init_from:
        return init_params(model_cfg, config.seed)
    path = config.init_from
    if os.path.isdir(path):
        path = os.path.join(path, MODEL_FILE)
    params, stored_cfg, _ = load_model(path)
    if stored_cfg != model_cfg:
        raise ValueError(f"init_from {path!r} has model config {stored_cfg}, this run {model_cfg}")
    return params


def _train_stream(source, indices, config):
    # uint8 batches: a quarter of float32's bytes to copy and send; the step converts them.
    common = dict(batch_size=config.batch_size, crop_size=tuple(config.data.crop_size), seed=config.seed,
                  process_index=jax.process_index(), process_count=jax.process_count(), uint8=True)
    if config.aat.enabled and config.aat.anchored:  # AAT: MOS-band batches with clean anchors
        return mos_band_dataset(source, indices, band_width=config.aat.band_width,
                                     num_anchors=config.aat.num_anchors, anchor_rule=config.aat.anchor_rule,
                                     **common)
    return train_dataset(source, indices, **common)  # clean or plain adversarial training


def optimizer_args(config) -> tuple:
    """``(learning_rate, num_steps, warmup_steps, weight_decay, grad_clip)`` of a training config:
    the arguments of ``train.step.make_optimizer``."""
    return (config.learning_rate, config.num_steps, config.warmup_steps, config.weight_decay, config.grad_clip)


@functools.lru_cache(maxsize=8)
def _compiled_step(model_cfg: ModelConfig, optimizer_args: tuple, mesh, weights, attack):
    """One compiled step per distinct setting in this process (runs in one process share it)."""
    return training.make_train_step(BiRQA(model_cfg), training.make_optimizer(*optimizer_args), mesh, weights, attack)


def train_step_for(config, mesh) -> Callable:
    """The jitted, data-parallel ``train_step(state, batch)`` a training config runs (its model,
    optimiser, loss terms and attack), compiled once per distinct setting in this process."""
    return _compiled_step(model_config(config), optimizer_args(config), mesh, loss_weights(config),
                          attack_spec(config))


def loss_weights(config) -> training.LossWeights:
    """The loss terms of a training config's ``loss`` block."""
    return training.LossWeights(**plain(config.loss))


def attack_spec(config) -> training.AttackSpec | None:
    """The attack inside the train step that a config's ``aat`` block asks for (None: clean)."""
    a = config.aat
    if not a.enabled:
        return None
    return training.AttackSpec(name=a.attack, eps=a.eps, settings=plain(a.settings), anchored=a.anchored,
                               num_attacked=a.num_attacked, eps_ramp_steps=a.eps_ramp_steps,
                               objective=a.get("objective", "away"), temperature=a.get("temperature", 0.02))


def _local_copy(params):
    """The (replicated) parameters on this process's first device, for evaluation: the runner
    replicates them over the local devices once per evaluation, not once per batch."""
    return jax.device_put(jax.device_get(params), jax.local_devices()[0])


class _MetricsLog:
    """``metrics.jsonl``: one JSON record per logged step. Opened at step ``start`` of a resumed
    run, it first drops the records of later steps (logged after the checkpoint the run resumes
    from), so that every step appears once."""

    def __init__(self, workdir: str, start: int):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.primary = jax.process_index() == 0
        if self.primary and os.path.isfile(self.path):
            with open(self.path) as f:
                lines = f.readlines()
            kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= start]
            if len(kept) != len(lines):
                atomic_write_bytes(self.path, "".join(kept).encode())

    def write(self, record: dict) -> None:
        if self.primary:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


@contextlib.contextmanager
def _stop_on_interrupt():
    """Within: the first Ctrl-C (SIGINT) only appends to the yielded list, so that the loop
    stops after the step in progress and checkpoints it; a second one interrupts at once. Off
    the main thread (where signal handlers cannot be set) Ctrl-C keeps its usual effect."""
    requested: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handler(signum, frame):
        signal.signal(signal.SIGINT, previous)
        requested.append(True)
        print("\nCtrl-C: stopping after the step in progress (press again to abort)", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, stop_at: int | None = None) -> dict:
    """Train (or fine-tune) BiRQA as ``config`` says; checkpoints and results go to ``workdir``.

    ``stop_at``: leave after this step (checkpointed), as a preempted job would; starting again
    with the same workdir resumes there. Ctrl-C stops the same way after the step in progress.
    Returns the final summary (also in results.json), or for a run that stopped early
    ``{"stopped_at": step}`` (plus ``"interrupted": True`` after Ctrl-C).
    """
    from tqdm import tqdm

    training.maybe_initialize_distributed()
    os.makedirs(workdir, exist_ok=True)
    primary = jax.process_index() == 0
    if primary:
        with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
            f.write(config.to_json_best_effort(indent=2))

    source, splits = load_data(config.data)
    model_cfg = model_config(config)
    tx = training.make_optimizer(*optimizer_args(config))
    schedule = training.make_schedule(*optimizer_args(config)[:3])
    mesh = parallel.make_mesh()
    if config.batch_size % mesh.devices.size:
        raise ValueError(f"batch_size {config.batch_size} is not a multiple of the {mesh.devices.size} devices")

    template = training.create_train_state(initial_params(config, model_cfg), tx, config.seed)
    ckpts = Checkpoints(workdir, config.keep_checkpoints)
    restored = ckpts.restore_latest(template)
    state = restored if restored is not None else template
    start = int(state.step)
    if restored is not None and primary:
        print(f"Resuming from step {start} in {workdir}")
    state = training.replicate(state, mesh)

    train_step = train_step_for(config, mesh)
    stream = iterate(_train_stream(source, splits["train"], config), start_step=start, prefetch=config.prefetch,
                     workers=config.data.workers or None)
    predict = apply_fn(model_cfg)
    log = _MetricsLog(workdir, start)
    best = ckpts.best_val_srocc()
    best = -np.inf if best is None else best
    end = config.num_steps if stop_at is None else min(stop_at, config.num_steps)
    keys = ("ref", "dist", "mos", "anchor")

    bar = tqdm(total=config.num_steps, initial=start, desc="training", unit="step", disable=not primary)
    t_last, n_last = time.perf_counter(), start
    waited = 0.0  # seconds spent waiting for batches since the last log
    step = saved = start
    with _stop_on_interrupt() as interrupted:
        for step in range(start + 1, end + 1):
            t_wait = time.perf_counter()
            batch = next(stream)
            waited += time.perf_counter() - t_wait
            state, metrics = train_step(state, training.global_batch({k: batch[k] for k in keys if k in batch}, mesh))
            if step % config.log_every == 0 or step == end:
                m = {k: float(v) for k, v in jax.device_get(metrics).items()}
                now = time.perf_counter()
                m.update(step=step, lr=float(schedule(step)), nonfinite_total=int(state.nonfinite),
                         pairs_per_s=(step - n_last) * config.batch_size / (now - t_last),
                         data_wait_s=waited, data_wait_frac=waited / (now - t_last))
                t_last, n_last, waited = now, step, 0.0
                log.write(m)
                # slope: the scores' scale in label units (a shrinking scale is visible at a glance).
                bar.set_postfix(loss=f"{m['loss']:.4f}", slope=f"{m['pred_slope']:.2f}", lr=f"{m['lr']:.2e}",
                                pairs_s=f"{m['pairs_per_s']:.1f}", data_wait=f"{m['data_wait_frac']:.0%}")
                if int(state.consecutive_nonfinite) >= config.max_consecutive_nonfinite:
                    raise FloatingPointError(
                        f"{int(state.consecutive_nonfinite)} consecutive steps had a non-finite loss or gradient "
                        f"(last at step {step}); stopping. Lower the learning rate or check the data."
                    )
            if "val" in splits and (step % config.eval_every == 0 or step == config.num_steps):
                params = _local_copy(state.params)
                val = _evaluate(config, source, splits, "val", {"birqa": runner.WithParams(predict, params)})
                v = val.get("birqa", {"srocc": float("nan"), "plcc": float("nan")})  # absent: no finite scores
                log.write({"step": step, "val_srocc": v["srocc"], "val_plcc": v["plcc"]})
                bar.write(f"step {step}: val SROCC {v['srocc']:.4f} PLCC {v['plcc']:.4f}")
                if np.isfinite(v["srocc"]) and v["srocc"] > best:
                    best = v["srocc"]
                    ckpts.save_best(step, state, best)
            if step % config.checkpoint_every == 0 or step == end:
                ckpts.save(step, state)
                saved = step
            bar.update(1)
            if interrupted:
                break
        if interrupted and saved < step:
            ckpts.save(step, state)
    bar.close()

    if interrupted or end < config.num_steps:
        ckpts.close()
        if primary:
            how = "run the same command to resume" if interrupted else "run again without stop_at to continue"
            print(f"stopped at step {step}; {how}")
        return {"stopped_at": step, "interrupted": True} if interrupted else {"stopped_at": step}
    return _finish(config, workdir, source, splits, model_cfg, predict, ckpts, state, template)


def finetune(config: ml_collections.ConfigDict, source=None, splits=None) -> tuple[Any, ModelConfig, list[dict]]:
    """Train as ``train_and_evaluate`` does, in memory: no workdir, validation, checkpoints or
    test evaluation; the same data stream, attack, loss and compiled step, the final step kept.
    The entry point of studies that fine-tune many short runs (experiments/robustness_study.py).

    Args:
      config: a training config (``configs/*.py``), typically with ``init_from`` set.
      source: the data set (a data source of ``data.load_data(config.data)``); pass it with
        ``splits`` to reuse one decoded source across runs. When either is None both are
        loaded here.
      splits: split name -> example indices, as ``data.load_data`` returns them; training reads
        ``splits["train"]``.

    Returns:
      ``(params, model_config, log)``: the final parameters on the host, the model config, and
      one dict of scalar metrics per ``config.log_every`` steps (``step`` included).
    """
    if source is None or splits is None:
        source, splits = load_data(config.data)
    model_cfg = model_config(config)
    mesh = parallel.make_mesh()
    tx = training.make_optimizer(*optimizer_args(config))
    state = training.replicate(training.create_train_state(initial_params(config, model_cfg), tx, config.seed), mesh)
    train_step = train_step_for(config, mesh)
    stream = iterate(_train_stream(source, splits["train"], config), prefetch=config.prefetch)
    keys = ("ref", "dist", "mos", "anchor")
    log = []
    for step in range(1, config.num_steps + 1):
        batch = next(stream)
        state, metrics = train_step(state, training.global_batch({k: batch[k] for k in keys if k in batch}, mesh))
        if step % config.log_every == 0 or step == config.num_steps:
            log.append({"step": step, **{k: float(v) for k, v in jax.device_get(metrics).items()}})
    if int(state.nonfinite):
        print(f"  note: {int(state.nonfinite)} steps had a non-finite loss and were skipped", flush=True)
    return jax.device_get(state.params), model_cfg, log


def _evaluate(config, source, splits, part: str, score_fns: dict, progress: bool = False) -> dict:
    """Correlations with MOS of each score function on the split ``part`` (full-size images)."""
    eval_set = EvalSet(f"{config.data.name}-{part}", config.data.name, part, source, splits[part])
    summary, _ = evaluate_set(eval_set, score_fns, config.eval_batch_size, progress=progress, verbose=False)
    return summary["results"]


def _finish(config, workdir, source, splits, model_cfg, predict, ckpts, state, template) -> dict:
    """Export the best model, evaluate it and the baselines on the test split, write results."""
    best = ckpts.restore_best(template)
    ckpts.close()
    best = state if best is None else best  # no validation split or result: the final state
    params, best_step = _local_copy(best.params), int(best.step)
    model_path = os.path.join(workdir, MODEL_FILE)
    if jax.process_index() == 0:
        save_model(model_path, params, model_cfg, meta={"dataset": config.data.name, "step": best_step})

    summary = {"dataset": config.data.name, "best_step": best_step, "model_file": model_path}
    if "test" not in splits:  # e.g. 8:2 train/test has it; PIPAL's official split trains on all
        print(f"No test split in this configuration; model exported to {model_path}")
        return summary
    fns = {"birqa": runner.WithParams(predict, params)}
    for name in config.test_baselines:
        fns[name] = BASELINES[name][0]
    test = _evaluate(config, source, splits, "test", fns, progress=True)
    summary.update(test_examples=len(splits["test"]), test=test)
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "results.json"), "w") as f:
            json.dump(summary, f, indent=2, default=float)
        cols = ["srocc", "krocc", "plcc", "plcc_fitted", "rmse_fitted"]
        print(f"\nTest split of {config.data.name} ({len(splits['test'])} pairs), best checkpoint step {best_step}:")
        print(report.markdown_table(test, cols))
        print(f"Model exported to {model_path}")
    return summary
