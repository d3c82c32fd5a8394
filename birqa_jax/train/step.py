"""Train state, optimiser, and the data-parallel train step (clean and adversarial).

The step follows the pmap programming model written with ``jax.shard_map`` over a 1-D device
mesh with axis ``"data"``: every device runs the same program on its slice of the global batch.
Predictions are all-gathered so that the batch losses (PLCC, ranking) see the GLOBAL batch:
the updated parameters then do not depend on the number of devices.

Gradient convention (the pmap model; ``shard_map`` runs with ``check_vma=False``, so a
replicated argument is just a per-device copy, as under ``pmap``): every device differentiates
the same global loss with respect to its copy of the parameters. The transpose of the
all-gather sums the N devices' identical cotangents, so each device's gradient is N times its
own items' share, and ``pmean`` over ``"data"`` yields exactly the full-batch gradient. A test
checks 8 devices against 1 for the same global batch.

Adversarial training plugs in through ``attack``: inside the same jitted step the attack runs on
the non-anchor items, its output is ``stop_gradient``-ed, and the update uses the clean anchors
and the attacked items (Anchored Adversarial Training), or attacks every item (plain
adversarial training).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from birqa_jax.adversarial import attacks
from birqa_jax.model import BiRQA
from birqa_jax.train import losses
from birqa_jax.train.anchors import aat_diagnostics

AXIS = "data"


@flax.struct.dataclass
class TrainState:
    """Everything a resumed run needs besides the data position (a function of ``step``).

    ``rng`` is raw uint32 key data (checkpoint-friendly); ``nonfinite`` counts skipped updates
    and ``consecutive_nonfinite`` the current run of them.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array
    nonfinite: jax.Array
    consecutive_nonfinite: jax.Array


@dataclasses.dataclass(frozen=True)
class LossWeights:
    plcc: float = 1.0
    mse: float = 1.0
    rank: float = 0.5
    rank_margin: float = 0.0
    rank_kind: str = "hinge"


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """The attack run inside the train step: ``name`` from ``adversarial.ATTACKS``, L-inf
    ``eps`` in [0, 1] units, and ``settings`` of that attack (``{"steps": 3, "step_size":
    2 / 255}`` for PGD, ``{"queries": 100}`` for Square; checked here, not at trace time).
    ``anchored`` keeps the batch's anchors clean (AAT), else every item is attacked (plain
    adversarial training). The objective pushes each prediction away from its MOS."""

    name: str = "pgd"
    eps: float = 4 / 255
    settings: Any = ()  # a mapping; kept as sorted (key, value) pairs so the spec is hashable
    anchored: bool = True

    def __post_init__(self):
        items = tuple(sorted(dict(self.settings).items()))
        attacks.check_settings(self.name, dict(items))
        object.__setattr__(self, "settings", items)


def attack_batch(model: BiRQA, params, spec: AttackSpec, item_keys: jax.Array, ref: jax.Array, dist: jax.Array,
                 mos: jax.Array, anchor: jax.Array | None) -> jax.Array:
    """The training attack: every item pushed away from its MOS within ``spec.eps`` (anchors,
    when given, left clean); ``stop_gradient``-ed, so the update sees a fixed input.

    ``item_keys``: [B] keys, one per item (``item_keys`` below: from each item's global index),
    so that the result does not depend on how the batch is split over devices.
    """
    objective = attacks.away_objective(lambda r, d: model.apply(params, r, d), ref, mos)
    adv = attacks.ATTACKS[spec.name](objective, dist, eps=spec.eps, rng=item_keys, **dict(spec.settings))
    if anchor is not None:
        adv = jnp.where(anchor[:, None, None, None], dist, adv)
    return jax.lax.stop_gradient(adv)


def item_keys(key: jax.Array, first: jax.Array, batch: int) -> jax.Array:
    """[batch] keys for the items whose global indices start at ``first``: ``key`` folded with
    each index."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(first + jnp.arange(batch))


def make_schedule(learning_rate: float, num_steps: int, warmup_steps: int, end_lr_factor: float = 0.01):
    """Linear warm-up to ``learning_rate``, then cosine decay to ``end_lr_factor`` of it."""
    return optax.warmup_cosine_decay_schedule(
        0.0, learning_rate, max(warmup_steps, 1), max(num_steps, warmup_steps + 1), learning_rate * end_lr_factor
    )


def make_optimizer(
    learning_rate: float, num_steps: int, warmup_steps: int, weight_decay: float, grad_clip: float
) -> optax.GradientTransformation:
    """AdamW on ``make_schedule``, after global-norm gradient clipping."""
    schedule = make_schedule(learning_rate, num_steps, warmup_steps)
    return optax.chain(optax.clip_by_global_norm(grad_clip), optax.adamw(schedule, weight_decay=weight_decay))


def create_train_state(params, tx: optax.GradientTransformation, seed: int) -> TrainState:
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        rng=jax.random.key_data(jax.random.key(seed)),
        nonfinite=jnp.zeros((), jnp.int32),
        consecutive_nonfinite=jnp.zeros((), jnp.int32),
    )


def combined_loss(pred, mos, anchor, w: LossWeights):
    """PLCC + MSE + ranking over the batch; with anchors the ranking is the anchored one."""
    parts = {"plcc": losses.plcc_loss(pred, mos), "mse": losses.mse_loss(pred, mos)}
    if anchor is None:
        parts["rank"] = losses.ranking_loss(pred, mos, margin=w.rank_margin, kind=w.rank_kind)
    else:
        parts["rank"] = losses.anchored_ranking_loss(pred, mos, anchor, margin=w.rank_margin, kind=w.rank_kind)
    total = w.plcc * parts["plcc"] + w.mse * parts["mse"] + w.rank * parts["rank"]
    return total, parts


def make_mesh(devices=None) -> Mesh:
    """1-D mesh over all (global) devices, axis ``"data"``."""
    devices = np.asarray(devices if devices is not None else jax.devices())
    return Mesh(devices.reshape(-1), (AXIS,))


def replicate(tree, mesh: Mesh):
    """Copy a pytree replicated onto every device of ``mesh`` (identical on every process).

    Always a copy, never an alias: the train step donates its state, which must not delete
    arrays the caller still holds (such as the initial parameters)."""
    host = jax.tree_util.tree_map(lambda x: np.array(jax.device_get(x)), tree)
    return jax.device_put(host, NamedSharding(mesh, P()))


def global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assemble this process's slice of the batch into global arrays sharded over ``"data"``."""
    sharding = NamedSharding(mesh, P(AXIS))
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local_batch.items()}


def make_train_step(
    model: BiRQA,
    tx: optax.GradientTransformation,
    mesh: Mesh,
    weights: LossWeights = LossWeights(),
    attack: AttackSpec | None = None,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """The jitted ``train_step(state, batch) -> (state, metrics)``; ``state`` is donated.

    ``batch``: dict of global arrays sharded over ``"data"``: ``ref``, ``dist`` [B, h, w, 3]
    float32 in [0, 1], ``mos`` [B] (normalised, higher = better) and, for AAT, ``anchor`` [B]
    bool. B must be a multiple of the number of devices. Metrics are scalars (replicated).
    A non-finite loss or gradient leaves params and optimiser state unchanged and counts it.
    """
    def per_device(state: TrainState, batch: dict):
        ref, dist, mos = batch["ref"], batch["dist"], batch["mos"]
        b = mos.shape[0]
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        metrics = {}

        anchor_local = batch.get("anchor") if (attack is None or attack.anchored) else None
        if attack is not None:
            keys = item_keys(key, jax.lax.axis_index(AXIS) * b, b)
            adv = attack_batch(model, state.params, attack, keys, ref, dist, mos, anchor_local)
            metrics["attack_linf"] = jax.lax.pmax(jnp.max(jnp.abs(adv - dist)), AXIS)
            dist = adv

        gather = functools.partial(jax.lax.all_gather, axis_name=AXIS, tiled=True)
        mos_all = gather(mos)
        anchor_all = None if anchor_local is None else gather(anchor_local)

        def loss_fn(params):
            pred = gather(model.apply(params, ref, dist))
            total, parts = combined_loss(pred, mos_all, anchor_all, weights)
            return total, (total, parts, pred)

        grads, (total, parts, pred) = jax.grad(loss_fn, has_aux=True)(state.params)
        grads = jax.lax.pmean(grads, AXIS)
        updates, new_opt = tx.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)

        finite = jnp.isfinite(total) & jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)])
        )
        keep = lambda new, old: jax.tree_util.tree_map(lambda a, c: jnp.where(finite, a, c), new, old)
        bad = 1 - finite.astype(jnp.int32)
        new_state = state.replace(
            step=state.step + 1,
            params=keep(new_params, state.params),
            opt_state=keep(new_opt, state.opt_state),
            nonfinite=state.nonfinite + bad,
            consecutive_nonfinite=(state.consecutive_nonfinite + 1) * bad,
        )
        metrics.update(
            loss=total,
            grad_norm=optax.tree.norm(grads),
            finite=finite,
            **{f"loss_{k}": v for k, v in parts.items()},
        )
        if anchor_all is not None:
            metrics.update(aat_diagnostics(pred, mos_all, anchor_all))
        # Every value is already identical on all devices; pmean guards against rounding drift.
        metrics = jax.tree_util.tree_map(lambda x: jax.lax.pmean(x.astype(jnp.float32), AXIS), metrics)
        return new_state, metrics

    step = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=(P(), P()), check_vma=False)
    return jax.jit(step, donate_argnums=0)


def maybe_initialize_distributed() -> None:
    """Join a multi-process run when the standard coordinator variables are set.

    ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (or a cluster
    environment JAX detects by itself, such as SLURM or Cloud TPU) start
    ``jax.distributed.initialize``; a single-process run does nothing.
    """
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        jax.distributed.initialize(
            coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )
