"""One process of the multi-host test (run by tests/test_training.py, not collected by pytest).

Usage: python multihost_worker.py MODEL STEPS RUN [RUN ...], MODEL a model file (``save_model``:
the initial parameters and their config), each RUN either OUT.npy or OUT.npy,WORKDIR,STOP_AT.
Reads JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID; each process has 2 CPU
devices and feeds its own rows of every global batch. The RUNs train one after the other from
MODEL's parameters with one compiled step (a launch pays for one compilation); process 0
saves each run's final parameters to its OUT.npy. With WORKDIR, the run resumes from the latest
Orbax checkpoint there (if any) and checkpoints after step STOP_AT and after the last step; it
leaves after STOP_AT when that comes first, as a preempted job would, and then writes nothing.
"""

import os
import sys

import jax
import numpy as np
import optax

from birqa_jax import parallel
from birqa_jax.model import BiRQA, load_model
from birqa_jax.train import step as training
from birqa_jax.train.checkpoints import Checkpoints

GLOBAL_BATCH = 8


def optimizer():
    """Plain SGD: Adam and clipping would hide a gradient scaled by the device count. Its rate
    moves the two-level model's weights by up to ~4e-2 in 3 steps, far above the tolerance."""
    return optax.sgd(1e-2)


def global_batches(steps):
    """The same global batches as tests/test_training.py's reference run."""
    rng = np.random.default_rng(123)
    for _ in range(steps):
        ref = rng.random((GLOBAL_BATCH, 32, 32, 3), dtype=np.float32)
        dist = np.clip(ref + rng.normal(0, 0.1, ref.shape).astype(np.float32), 0, 1)
        yield {"ref": ref, "dist": dist, "mos": rng.random(GLOBAL_BATCH, dtype=np.float32)}


def train(step, tx, mesh, params, out, steps, workdir=None, stop_at=None):
    p, n = jax.process_index(), jax.process_count()
    state = training.replicate(training.create_train_state(params, tx, 0), mesh)
    ckpts = Checkpoints(workdir) if workdir else None
    if ckpts is not None:
        restored = ckpts.restore_latest(state)
        state = state if restored is None else restored
    start = int(state.step)
    rows = slice(p * GLOBAL_BATCH // n, (p + 1) * GLOBAL_BATCH // n)
    for i, batch in enumerate(global_batches(steps)):
        if i < start:
            continue  # batch i is consumed by step i + 1: skip the steps already taken
        state, _ = step(state, training.global_batch({k: v[rows] for k, v in batch.items()}, mesh))
        if ckpts is not None and i + 1 in (stop_at, steps):
            ckpts.save(i + 1, state)
            if i + 1 == stop_at:
                break
    if ckpts is not None:
        ckpts.close()
    flat = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(jax.device_get(state.params))])
    if p == 0 and int(state.step) == steps:  # a run that left early writes nothing
        np.save(out, flat)


def main(model, steps, runs):
    training.maybe_initialize_distributed()
    assert jax.device_count() == 2 * jax.process_count() and jax.local_device_count() == 2
    # Read from the test's file rather than initialised here: each of the four processes would
    # compile the initialisation (about 2 CPU-s) for the parameters the test already has.
    params, config, _ = load_model(model)
    tx = optimizer()
    mesh = parallel.make_mesh()
    step = training.make_train_step(BiRQA(config), tx, mesh)
    for run in runs:
        out, *rest = run.split(",")
        train(step, tx, mesh, params, out, steps, *rest[:1], *(int(a) for a in rest[1:2]))
    jax.distributed.shutdown()


if __name__ == "__main__":
    # Set before JAX initialises its backend (on first use, not on import).
    # Two CPU devices per process; the other flags of the test process (its compile preset) stay.
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    os.environ["XLA_FLAGS"] = " ".join([*flags, "--xla_force_host_platform_device_count=2"])
    os.environ["JAX_PLATFORMS"] = "cpu"
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
