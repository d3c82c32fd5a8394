"""Train state, optimiser, and the data-parallel train step (clean and adversarial).

The step follows the pmap programming model written with ``jax.shard_map`` over a 1-D device
mesh with axis ``parallel.AXIS``: every device runs the same program on its slice of the global batch.
Predictions are all-gathered so that the batch losses (PLCC, ranking) see the GLOBAL batch:
the updated parameters then do not depend on the number of devices.

Gradient convention (the pmap model; ``shard_map`` runs with ``check_vma=False``, so a
replicated argument is just a per-device copy, as under ``pmap``): every device differentiates
the same global loss with respect to its copy of the parameters. The transpose of the
all-gather sums the N devices' identical cotangents, so each device's gradient is N times its
own items' share, and ``pmean`` over that axis yields exactly the full-batch gradient. A test
checks 8 devices against 1 for the same global batch.

Adversarial training plugs in through ``attack``: inside the same jitted step the attack runs on
the non-anchor items, its output is ``stop_gradient``-ed, and the update uses the clean anchors
and the attacked items (Anchored Adversarial Training), or attacks every item (plain
adversarial training). ``AttackSpec`` and ``LossWeights`` hold every option of it
(docs/robustness.md).
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
from birqa_jax.inputs import as_float
from birqa_jax.model import BiRQA
from birqa_jax.parallel import AXIS
from birqa_jax.train import losses
from birqa_jax.train.theorem1 import aat_diagnostics

OBJECTIVES = ("away", "rank")


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
    """The loss terms and their options (a config's ``loss`` block).

    plcc, mse, rank: weights of 1 - Pearson, MSE on normalised MOS, and the ranking term (over
      all pairs, or over (anchor, item) pairs in AAT); ``losses``.
    rank_margin, rank_margin_rel: the ranking margin a pair with label gap g asks of its
      prediction gap, ``rank_margin + rank_margin_rel * g``; rank_kind: "hinge" or "logistic".
    rank_anchor_stop_grad: AAT's anchored term sees the anchors' predictions as constants
      (``losses.anchored_ranking_loss``), so it can only move the attacked items.
    consistency: weight of the mean squared gap between each attacked item's prediction and its
      prediction on the clean image (``losses.consistency_loss``; one more forward pass).
    slope, slope_h: weight and step of the finite-difference slope penalty
      (``losses.score_slopes``, Liu et al. 2024: weight 1e-3, h = 0.01; two more passes).
    clean: weight of PLCC + MSE on the clean images' predictions (one more forward and
      backward pass), which keeps the clean anchors accurate while the attacked items train.
    anchor_rank, anchor_margin, anchor_margin_rel: weight and margins of the ranking of every
      attacked prediction against every item's clean prediction under stop_gradient
      (``losses.clean_anchored_ranking_loss``), margin ``anchor_margin + anchor_margin_rel * gap``.
    scaled_consistency: weight of ``losses.scaled_consistency_loss``, the attacked-vs-clean gap
      over the clean scores' batch variance (a scale the model cannot escape by shrinking);
      scaled_consistency_stop_var: that variance held constant in the gradient.
    """

    plcc: float = 1.0
    mse: float = 1.0
    rank: float = 0.5
    rank_margin: float = 0.0
    rank_kind: str = "hinge"
    rank_margin_rel: float = 0.0
    rank_anchor_stop_grad: bool = False
    consistency: float = 0.0
    slope: float = 0.0
    slope_h: float = 0.01
    clean: float = 0.0
    anchor_rank: float = 0.0
    anchor_margin: float = 0.0
    anchor_margin_rel: float = 0.5
    scaled_consistency: float = 0.0
    scaled_consistency_stop_var: bool = True

    def needs_clean_predictions(self) -> bool:
        """Whether the loss compares attacked with clean predictions (it then needs an attack)."""
        return bool(self.consistency or self.clean or self.anchor_rank or self.scaled_consistency)


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """The attack run inside the train step: ``name`` from ``adversarial.ATTACKS``, L-inf
    ``eps`` in [0, 1] units, and ``settings`` of that attack (``{"steps": 3, "step_size":
    2 / 255}`` for PGD, ``{"queries": 100}`` for Square; checked here, not at trace time).
    ``anchored`` keeps the batch's anchors clean (AAT), else every item is attacked (plain
    adversarial training). ``objective``: "away" pushes each prediction away from its MOS
    (``attacks.away_objective``); "rank" pushes it across the clean scores of the batch's
    other items (``attacks.ranking_objective``, softness ``temperature``), what SROCC punishes.

    ``num_attacked``: attack only the first that many candidates of the global batch (the
    non-anchors in AAT, every item otherwise; batches come in random order), leaving the rest
    clean; -1 attacks every candidate. ``eps_ramp_steps``: a curriculum that grows the budget
    linearly, ``eps * min(1, (step + 1) / eps_ramp_steps)``, with a ``step_size`` setting
    scaled alike; 0 keeps ``eps`` from the first step."""

    name: str = "pgd"
    eps: float = 4 / 255
    settings: Any = ()  # a mapping; kept as sorted (key, value) pairs so the spec is hashable
    anchored: bool = True
    num_attacked: int = -1
    eps_ramp_steps: int = 0
    objective: str = "away"
    temperature: float = 0.02

    def __post_init__(self):
        items = tuple(sorted(dict(self.settings).items()))
        attacks.check_settings(self.name, dict(items))
        object.__setattr__(self, "settings", items)
        if not isinstance(self.num_attacked, int) or self.num_attacked < -1:
            raise ValueError(f"num_attacked must be an int >= 0, or -1 for all, got {self.num_attacked!r}")
        if not isinstance(self.eps_ramp_steps, int) or self.eps_ramp_steps < 0:
            raise ValueError(f"eps_ramp_steps must be an int >= 0, got {self.eps_ramp_steps!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"attack objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if not self.temperature > 0:
            raise ValueError(f"attack temperature must be > 0, got {self.temperature!r}")

    def eps_at(self, step: jax.Array) -> Any:
        """The budget at (0-based) ``step``: ``eps``, or its curriculum value."""
        if not self.eps_ramp_steps:
            return self.eps
        return self.eps * jnp.minimum(1.0, (step + 1) / self.eps_ramp_steps)


def attacked_items(anchor: jax.Array | None, batch: int, num_attacked: int = -1) -> jax.Array:
    """[batch] bool: the items a training attack perturbs. Candidates are the non-anchors (every
    item when ``anchor`` is None); ``num_attacked`` >= 0 keeps the first that many of them."""
    candidate = jnp.ones((batch,), bool) if anchor is None else ~anchor
    if num_attacked < 0:
        return candidate
    return candidate & (jnp.cumsum(candidate) <= num_attacked)


def attack_batch(model: BiRQA, params, spec: AttackSpec, item_keys: jax.Array, ref: jax.Array, dist: jax.Array,
                 mos: jax.Array, anchor: jax.Array | None, eps: Any = None, anchor_scores: jax.Array | None = None,
                 anchor_mos: jax.Array | None = None) -> jax.Array:
    """The training attack on ``spec.objective`` within ``spec.eps`` (items flagged in
    ``anchor``, the anchors or any other item to keep clean, left clean); ``stop_gradient``-ed,
    so the update sees a fixed input. ``anchor_scores``, ``anchor_mos`` [A]: the clean scores
    and labels the "rank" objective orders each item against (the global batch's).

    ``item_keys``: [B] keys, one per item (``item_keys`` below: from each item's global index),
    so that the result does not depend on how the batch is split over devices. ``eps``: a budget
    other than ``spec.eps`` (the curriculum's, ``spec.eps_at``); a ``step_size`` setting is
    scaled by ``eps / spec.eps``.
    """
    settings = dict(spec.settings)
    if eps is None:
        eps = spec.eps
    elif "step_size" in settings:
        settings["step_size"] = settings["step_size"] * eps / spec.eps
    score = lambda r, d: model.apply(params, r, d)  # noqa: E731
    if spec.objective == "rank":
        objective = attacks.ranking_objective(score, ref, mos, anchor_scores, anchor_mos, spec.temperature)
    else:
        objective = attacks.away_objective(score, ref, mos)
    adv = attacks.ATTACKS[spec.name](objective, dist, eps=eps, rng=item_keys, **settings)
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
    """The state before the first step.

    Args:
      params: the model's parameters (a pytree); the state holds them as given, not a copy.
      tx: the optimiser; its state is initialised from ``params``.
      seed: seeds the state's PRNG key (the attacks' random starts).

    Returns:
      A ``TrainState`` at step 0 with ``rng`` the raw key data of ``jax.random.key(seed)`` and
      both non-finite counters at 0.
    """
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        rng=jax.random.key_data(jax.random.key(seed)),
        nonfinite=jnp.zeros((), jnp.int32),
        consecutive_nonfinite=jnp.zeros((), jnp.int32),
    )


def combined_loss(pred, mos, anchor, w: LossWeights, attacked=None, pred_clean=None, slopes=None,
                  anchor_pred=None):
    """PLCC + MSE + ranking over the batch; with anchors the ranking is the anchored one.

    Optional terms, each given with its input: ``pred_clean`` [B] (the predictions on the clean
    images) adds ``w.consistency`` times the consistency loss and ``w.scaled_consistency``
    times the scale-invariant one over the ``attacked`` items, and ``w.clean`` times PLCC + MSE
    of the clean predictions; ``anchor_pred`` [B] (clean predictions, constants) adds
    ``w.anchor_rank`` times the ranking of ``pred`` against them; ``slopes`` [B]
    (``losses.score_slopes``) adds ``w.slope`` times their mean absolute value.
    """
    parts = {"plcc": losses.plcc_loss(pred, mos), "mse": losses.mse_loss(pred, mos)}
    margins = dict(margin=w.rank_margin, kind=w.rank_kind, margin_rel=w.rank_margin_rel)
    if anchor is None:
        parts["rank"] = losses.ranking_loss(pred, mos, **margins)
    else:
        parts["rank"] = losses.anchored_ranking_loss(pred, mos, anchor, stop_anchor_gradient=w.rank_anchor_stop_grad,
                                                     **margins)
    total = w.plcc * parts["plcc"] + w.mse * parts["mse"] + w.rank * parts["rank"]
    if pred_clean is not None and w.consistency:
        parts["consistency"] = losses.consistency_loss(pred, pred_clean, attacked)
        total = total + w.consistency * parts["consistency"]
    if pred_clean is not None and w.scaled_consistency:
        parts["scaled_consistency"] = losses.scaled_consistency_loss(
            pred, pred_clean, attacked, stop_variance=w.scaled_consistency_stop_var)
        total = total + w.scaled_consistency * parts["scaled_consistency"]
    if pred_clean is not None and w.clean:
        parts["clean"] = losses.plcc_loss(pred_clean, mos) + losses.mse_loss(pred_clean, mos)
        total = total + w.clean * parts["clean"]
    if anchor_pred is not None and w.anchor_rank:
        parts["anchor_rank"] = losses.clean_anchored_ranking_loss(
            pred, anchor_pred, mos, margin=w.anchor_margin, margin_rel=w.anchor_margin_rel, kind=w.rank_kind)
        total = total + w.anchor_rank * parts["anchor_rank"]
    if slopes is not None:
        parts["slope"] = jnp.mean(jnp.abs(slopes))
        total = total + w.slope * parts["slope"]
    return total, parts


def replicate(tree, mesh: Mesh):
    """Copy a pytree replicated onto every device of ``mesh`` (identical on every process).

    Always a copy, never an alias: the train step donates its state, which must not delete
    arrays the caller still holds (such as the initial parameters)."""
    host = jax.tree_util.tree_map(lambda x: np.array(jax.device_get(x)), tree)
    return jax.device_put(host, NamedSharding(mesh, P()))


def global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assemble this process's slice of the batch into global arrays sharded over ``parallel.AXIS``."""
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

    ``batch``: dict of global arrays sharded over ``parallel.AXIS``: ``ref``, ``dist`` [B, h, w,
    3] uint8 0..255 (converted inside the step by ``inputs.as_float``: bitwise the host's
    ``v / 255``, so the result equals that of the float batch) or float32 in [0, 1], ``mos`` [B]
    (normalised, higher = better) and, for AAT, ``anchor`` [B] bool. B must be a multiple of
    the number of devices. Metrics are scalars (replicated). A non-finite loss or gradient
    leaves params and optimiser state unchanged and counts it.
    """
    if weights.needs_clean_predictions() and attack is None:
        raise ValueError("loss.consistency, clean, anchor_rank and scaled_consistency compare attacked and clean "
                         "predictions: each needs an attack")
    # Clean scores of the whole batch before the attack: the "rank" objective's anchors and the
    # anchored ranking's (constants, so one forward pass without a gradient serves both).
    needs_anchor_scores = attack is not None and (attack.objective == "rank" or bool(weights.anchor_rank))

    def per_device(state: TrainState, batch: dict):
        ref, dist, mos = as_float(batch["ref"]), as_float(batch["dist"]), batch["mos"]
        clean_dist = dist
        b = mos.shape[0]
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        metrics = {}

        gather = functools.partial(jax.lax.all_gather, axis_name=AXIS, tiled=True)
        mos_all = gather(mos)
        anchor_local = batch.get("anchor") if (attack is None or attack.anchored) else None
        anchor_all = None if anchor_local is None else gather(anchor_local)
        attacked_all = anchor_scores = None
        if needs_anchor_scores:
            anchor_scores = jax.lax.stop_gradient(gather(model.apply(state.params, ref, clean_dist)))
        if attack is not None:
            first = jax.lax.axis_index(AXIS) * b
            attacked_all = attacked_items(anchor_all, mos_all.shape[0], attack.num_attacked)
            attacked_local = jax.lax.dynamic_slice_in_dim(attacked_all, first, b)
            eps = attack.eps_at(state.step)
            keys = item_keys(key, first, b)
            adv = attack_batch(model, state.params, attack, keys, ref, dist, mos, ~attacked_local,
                               eps=None if attack.eps_ramp_steps == 0 else eps, anchor_scores=anchor_scores,
                               anchor_mos=mos_all)
            metrics["attack_linf"] = jax.lax.pmax(jnp.max(jnp.abs(adv - dist)), AXIS)
            if attack.eps_ramp_steps:
                metrics["attack_eps"] = eps
            dist = adv

        def loss_fn(params):
            score = lambda r, d: model.apply(params, r, d)  # noqa: E731
            local = score(ref, dist)
            pred = gather(local)
            extra = {}
            if weights.consistency or weights.clean or weights.scaled_consistency:
                extra["pred_clean"] = gather(score(ref, clean_dist))
            if weights.anchor_rank:
                extra["anchor_pred"] = anchor_scores
            if weights.slope:
                extra["slopes"] = gather(losses.score_slopes(score, ref, dist, weights.slope_h, pred=local))
            total, parts = combined_loss(pred, mos_all, anchor_all, weights, attacked=attacked_all, **extra)
            return total, (total, parts, pred, extra.get("pred_clean"))

        grads, (total, parts, pred, pred_clean) = jax.grad(loss_fn, has_aux=True)(state.params)
        grads = jax.lax.pmean(grads, AXIS)
        updates, new_opt = tx.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)

        finite = jnp.isfinite(total) & jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)])
        )

        def keep(new, old):
            return jax.tree_util.tree_map(lambda a, c: jnp.where(finite, a, c), new, old)

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
            # The score scale in label units (docs/robustness.md): a recipe that shrinks every
            # score to lower its attack damage shows a falling slope here.
            pred_slope=losses.score_slope(pred, mos_all),
            pred_std=jnp.std(pred),
        )
        if pred_clean is not None:
            metrics["clean_slope"] = losses.score_slope(pred_clean, mos_all)
        if anchor_all is not None:
            metrics.update(aat_diagnostics(pred, mos_all, anchor_all, weights.rank_margin, weights.rank_margin_rel))
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
