"""L-inf adversarial attacks on full-reference quality scores, as pure jit/vmap-safe functions.

Threat model (docs/robustness.md): pixels live in [0, 1]; the reference stays fixed and only the
distorted image is perturbed, inside the L-inf ball of radius ``eps`` around it (``eps`` in
[0, 1] units: 4/255, not the 8/255 of [-1, 1] code) intersected with [0, 1].

Objectives. An attack maximises a per-item objective ``objective(x) -> [B]`` of the perturbed
batch ``x: [B, H, W, 3]``. Three builders cover the uses, so no attack is written twice:

- ``direction_objective(score_fn, ref, direction)``: ``direction_i * score_i``. Evaluation:
  ``direction = +1`` makes an image look better, ``-1`` worse (``robustness.scrambling_direction``
  gives the ranking-scrambling directions from MOS).
- ``away_objective(score_fn, ref, target)``: ``|score_i - target_i|``. Training: push each
  prediction away from its label.
- ``ranking_objective(score_fn, ref, mos, anchor_scores, anchor_mos)``: a soft count of the
  clean anchors each item's score crosses. Training (AAT): attack what SROCC measures.

``score_fn(ref, dist) -> [B]`` is any differentiable JAX function, higher = better quality, e.g.
``functools.partial(model.apply_fn(config), params)`` inside a traced function. Items are
independent: gradient attacks differentiate the sum of the objective over the batch, so item i
moves along d objective_i / d x_i only, and all per-item state (step sizes, best points,
accepted proposals) is kept per item.

Every attack returns only the adversarial batch, so it can run inside a jitted train step (wrap
it in ``jax.lax.stop_gradient`` there). ``run_attack`` adds the perturbation statistics of
``perturbation_stats`` and the evaluation protocol's default settings (docs/robustness.md); it
takes a model as a pure ``score_fn(params, ref, dist)`` plus ``params``, traced, so that one
compiled attack serves every weight set of a model config.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from birqa_jax.imageops import luma, psnr, ssim_map
from birqa_jax.inputs import as_float, check_batch, check_pair, check_values

ScoreFn = Callable[[jax.Array, jax.Array], jax.Array]
Objective = Callable[[jax.Array], jax.Array]
Scalar = float | jax.Array

# APGD constants of Croce & Hein (2020): momentum weight, oscillation threshold, first
# checkpoint, checkpoint-interval decrement and minimum interval (fractions of the budget).
_APGD_ALPHA = 0.75
_APGD_RHO = 0.75
_APGD_P1 = 0.22
_APGD_DECREMENT = 0.03
_APGD_MIN_INTERVAL = 0.06

# Square Attack schedule (Andriushchenko et al. 2020): the square's area fraction halves after
# these iterations of a 10000-query run; shorter runs rescale their iteration count to it.
_SQUARE_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


# ----------------------------------------------------------------------------- validation


def _check_per_item(name: str, v: jax.Array, batch: int) -> None:
    if jnp.shape(v) != (batch,):
        raise ValueError(f"{name} must have shape [B] = ({batch},), got {tuple(jnp.shape(v))}")


def _check_eps(eps: Scalar) -> None:
    if jnp.ndim(eps) != 0:
        raise ValueError(f"eps must be a scalar, got shape {jnp.shape(eps)}")
    if isinstance(eps, (bool, str)):
        raise ValueError(f"eps must be a number in (0, 1] ([0, 1] pixel units, e.g. 4/255), got {eps!r}")
    if not isinstance(eps, jax.core.Tracer) and not 0.0 < float(eps) <= 1.0:
        raise ValueError(f"eps must be in (0, 1] ([0, 1] pixel units, e.g. 4/255), got {eps}")


def _check_count(name: str, n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be a positive Python int (a static loop bound), got {n!r}")


# ----------------------------------------------------------------------------- objectives


def direction_objective(score_fn: ScoreFn, ref: jax.Array, direction: jax.Array) -> Objective:
    """Objective ``x -> direction * score_fn(ref, x)``: [B]; +1 pushes a score up, -1 down.

    Args:
      score_fn: ``(ref, dist) -> [B]`` differentiable quality score, higher = better.
      ref: [B, H, W, 3] float32 in [0, 1], the fixed reference.
      direction: [B] float32, +1 or -1 per item.
    """
    check_batch("ref", ref)
    _check_per_item("direction", direction, ref.shape[0])

    def objective(x: jax.Array) -> jax.Array:
        return direction * score_fn(ref, x)

    return objective


def away_objective(score_fn: ScoreFn, ref: jax.Array, target: jax.Array) -> Objective:
    """Objective ``x -> |score_fn(ref, x) - target|``: [B]; pushes predictions off their labels.

    Args:
      score_fn: ``(ref, dist) -> [B]`` differentiable quality score.
      ref: [B, H, W, 3] float32 in [0, 1], the fixed reference.
      target: [B] float32, the label (MOS on the model's scale) of each item.
    """
    check_batch("ref", ref)
    _check_per_item("target", target, ref.shape[0])

    def objective(x: jax.Array) -> jax.Array:
        return jnp.abs(score_fn(ref, x) - target)

    return objective


def ranking_objective(score_fn: ScoreFn, ref: jax.Array, mos: jax.Array, anchor_scores: jax.Array,
                      anchor_mos: jax.Array, temperature: float = 0.02) -> Objective:
    """Objective ``x -> [B]``: how far each item's score crosses the clean anchors' scores.

    For item j and every anchor a with ``anchor_mos_a != mos_j`` (s = sign(mos_j -
    anchor_mos_a)), the soft violation ``t * softplus(-s (score_j - anchor_scores_a) / t)``
    grows as the score moves to the wrong side of the anchor; the objective is its mean over
    the anchors. Maximising it mis-orders items against clean references, which is what SROCC
    under attack measures (training: Anchored Adversarial Training's attack).

    Args:
      score_fn: ``(ref, dist) -> [B]`` differentiable quality score.
      ref: [B, H, W, 3] float32 in [0, 1], the fixed reference.
      mos: [B] labels of the attacked items.
      anchor_scores: [A] clean scores of the anchors; treated as constants (no gradient).
      anchor_mos: [A] labels of the anchors, on the scale of ``mos``.
      temperature: softness t, in score units (about the labels' resolution).

    Returns:
      The objective, ``x: [B, H, W, 3] -> [B]``: per item, the mean soft violation over the
      anchors whose label differs from the item's (0 when there is none).

    Raises:
      ValueError: ``ref`` is not a float [B, H, W, 3] batch, ``mos`` is not [B], or
        ``anchor_scores`` and ``anchor_mos`` are not 1-D of one length.
    """
    check_batch("ref", ref)
    _check_per_item("mos", mos, ref.shape[0])
    if jnp.ndim(anchor_scores) != 1 or jnp.shape(anchor_scores) != jnp.shape(anchor_mos):
        raise ValueError(f"anchor_scores and anchor_mos must be [A] of one length, got {jnp.shape(anchor_scores)} "
                         f"and {jnp.shape(anchor_mos)}")
    sign = jnp.sign(mos[:, None] - anchor_mos[None, :])  # [B, A]
    counted = (sign != 0).astype(jnp.float32)
    anchors = jax.lax.stop_gradient(anchor_scores)[None, :]

    def objective(x: jax.Array) -> jax.Array:
        s = score_fn(ref, x)[:, None]
        violation = temperature * jax.nn.softplus(-sign * (s - anchors) / temperature)
        return (counted * violation).sum(axis=1) / jnp.maximum(counted.sum(axis=1), 1.0)

    return objective


def _evaluate(objective: Objective, x: jax.Array) -> jax.Array:
    f = objective(x)
    _check_per_item("objective(x)", f, x.shape[0])
    return f


def _value_and_grad(objective: Objective, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-item objective [B] and its gradient [B, H, W, 3] (gradient of the batch sum)."""

    def total(x):
        f = _evaluate(objective, x)
        return jnp.sum(f), f

    (_, f), g = jax.value_and_grad(total, has_aux=True)(x)
    return f, g


def _ball(dist: jax.Array, eps: Scalar) -> tuple[jax.Array, jax.Array]:
    """Per-pixel bounds of the feasible set: the eps ball around ``dist`` within [0, 1]."""
    return jnp.maximum(dist - eps, 0.0), jnp.minimum(dist + eps, 1.0)


def _per_item(v: jax.Array) -> jax.Array:
    return v[:, None, None, None]


def item_keys(rng: jax.Array | None, batch: int) -> jax.Array:
    """One PRNG key per item for the random attacks: [B] typed keys.

    ``rng`` is one key (typed, or raw ``uint32[2]`` as ``jax.random.PRNGKey`` makes), split
    into ``batch`` keys; or already [B] keys, one per item, used as they are. A data-parallel
    step derives the latter from each item's global index, so that an attack's result does not
    depend on how the batch is sharded over devices.
    """
    if rng is None:
        raise ValueError("this attack is random: pass rng, a PRNG key or one key per item")
    if not jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
        rng = jax.random.wrap_key_data(rng)
    if rng.ndim == 0:
        return jax.random.split(rng, batch)
    if rng.shape != (batch,):
        raise ValueError(f"rng must be one key or [B] = ({batch},) keys, got shape {tuple(rng.shape)}")
    return rng


# ----------------------------------------------------------------------------- sign-gradient


def fgsm(objective: Objective, dist: jax.Array, *, eps: Scalar, rng: jax.Array | None = None) -> jax.Array:
    """FGSM: one signed-gradient step of size ``eps``.

    Args:
      objective: ``x -> [B]`` to maximise (``direction_objective`` or ``away_objective``).
      dist: [B, H, W, 3] float32 in [0, 1], the image to perturb.
      eps: L-inf budget in [0, 1] pixel units.
      rng: unused (deterministic); every attack takes it, so callers need not know which do.

    Returns:
      [B, H, W, 3] float32 within ``eps`` of ``dist`` (L-inf) and within [0, 1].
    """
    check_batch("dist", dist)
    _check_eps(eps)
    lo, hi = _ball(dist, eps)
    _, g = _value_and_grad(objective, dist)
    return jnp.clip(dist + eps * jnp.sign(g), lo, hi)


def _signed_ascent(objective, dist, start, eps, steps, step_size):
    lo, hi = _ball(dist, eps)

    def body(_, x):
        _, g = _value_and_grad(objective, x)
        return jnp.clip(x + step_size * jnp.sign(g), lo, hi)

    return jax.lax.fori_loop(0, steps, body, start)


def ifgsm(
    objective: Objective,
    dist: jax.Array,
    *,
    eps: Scalar,
    rng: jax.Array | None = None,
    steps: int = 10,
    step_size: Scalar = 1.0 / 255.0,
) -> jax.Array:
    """I-FGSM (BIM): ``steps`` signed steps of ``step_size`` from ``dist``, each projected.

    Same arguments and result as ``fgsm``; returns the last iterate (by definition, no
    best-point tracking).
    """
    check_batch("dist", dist)
    _check_eps(eps)
    _check_count("steps", steps)
    return _signed_ascent(objective, dist, dist, eps, steps, step_size)


def pgd(
    objective: Objective,
    dist: jax.Array,
    *,
    eps: Scalar,
    rng: jax.Array,
    steps: int = 10,
    step_size: Scalar | None = None,
) -> jax.Array:
    """PGD (Madry et al. 2018): I-FGSM from a uniform random point of the eps ball.

    ``step_size`` defaults to ``eps / 4``; ``rng`` (see ``item_keys``) draws each item's start.
    Same arguments and result as ``ifgsm``.
    """
    check_batch("dist", dist)
    _check_eps(eps)
    _check_count("steps", steps)
    lo, hi = _ball(dist, eps)
    keys = item_keys(rng, dist.shape[0])
    noise = jax.vmap(lambda k: jax.random.uniform(k, dist.shape[1:], dist.dtype, minval=-eps, maxval=eps))(keys)
    start = jnp.clip(dist + noise, lo, hi)
    step = eps / 4 if step_size is None else step_size
    return _signed_ascent(objective, dist, start, eps, steps, step)


def mifgsm(
    objective: Objective,
    dist: jax.Array,
    *,
    eps: Scalar,
    rng: jax.Array | None = None,
    steps: int = 10,
    decay: float = 1.0,
) -> jax.Array:
    """MI-FGSM (Dong et al. 2018): signed steps of ``eps / steps`` along an accumulated gradient.

    The momentum is ``m <- decay * m + g / ||g||_1`` with the L1 norm taken per item, so every
    item's history is weighted on its own scale. Same arguments and result as ``ifgsm``.
    """
    check_batch("dist", dist)
    _check_eps(eps)
    _check_count("steps", steps)
    lo, hi = _ball(dist, eps)
    step = eps / steps

    def body(_, carry):
        x, m = carry
        _, g = _value_and_grad(objective, x)
        l1 = jnp.sum(jnp.abs(g), axis=(1, 2, 3), keepdims=True)
        m = decay * m + g / jnp.where(l1 > 0, l1, 1.0)  # a zero gradient adds nothing
        return jnp.clip(x + step * jnp.sign(m), lo, hi), m

    x, _ = jax.lax.fori_loop(0, steps, body, (dist, jnp.zeros_like(dist)))
    return x


# ----------------------------------------------------------------------------- APGD


def apgd_checkpoints(steps: int) -> tuple[int, ...]:
    """Iterations at which APGD may halve its step: ``ceil(p_j * steps)`` for j >= 1, < steps.

    ``p_0 = 0``, ``p_1 = 0.22``, ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``; duplicates
    (short budgets) are merged. For 100 steps: (22, 41, 57, 70, 80, 87, 93, 99).
    """
    _check_count("steps", steps)
    p_prev, p = 0.0, _APGD_P1
    out: list[int] = []
    while p < 1.0:
        w = math.ceil(round(p * steps, 9))  # round: 0.41 * 100 must give 41, not 42
        if 0 < w < steps and (not out or w > out[-1]):
            out.append(w)
        p_prev, p = p, p + max(p - p_prev - _APGD_DECREMENT, _APGD_MIN_INTERVAL)
    return tuple(out)


def apgd(
    objective: Objective,
    dist: jax.Array,
    *,
    eps: Scalar,
    rng: jax.Array | None = None,
    steps: int = 100,
    random_start: bool = False,
) -> jax.Array:
    """APGD (Croce & Hein 2020, L-inf), returning each item's best point.

    Starts at ``dist`` (with ``random_start``: at a uniform random point of the eps ball drawn
    from ``rng``, as AutoAttack's restarts do) with step ``2 * eps``; each iteration takes a
    signed step and mixes it with the previous move (momentum 0.75, none on the first step). At
    each checkpoint of ``apgd_checkpoints(steps)`` an item halves its step and restarts from its
    best point if fewer than 75% of the steps since the last checkpoint increased its objective,
    or if its step was not halved at the last checkpoint and its best objective has not improved
    since.
    ``steps`` gradient evaluations plus one forward pass. Same arguments and result as ``fgsm``.
    """
    check_batch("dist", dist)
    _check_eps(eps)
    lo, hi = _ball(dist, eps)
    ckpts = apgd_checkpoints(steps)
    # Static per-iteration tables: is it a checkpoint, and how many steps the interval ending
    # there spans (the oscillation test compares its count of improving steps with rho * that).
    is_ckpt = np.zeros(steps, bool)
    interval = np.ones(steps, np.float32)
    is_ckpt[list(ckpts)] = True
    interval[list(ckpts)] = np.diff((0,) + ckpts)
    is_ckpt, interval = jnp.asarray(is_ckpt), jnp.asarray(interval)

    b = dist.shape[0]
    start = dist
    if random_start:
        keys = item_keys(rng, b)
        noise = jax.vmap(lambda k: jax.random.uniform(k, dist.shape[1:], dist.dtype, minval=-eps, maxval=eps))(keys)
        start = jnp.clip(dist + noise, lo, hi)
    state = dict(
        x=start,
        x_prev=start,
        f_prev=jnp.full((b,), jnp.inf, dist.dtype),  # no improving step is counted at i = 0
        eta=jnp.full((b,), 2.0, dist.dtype) * eps,
        x_best=start,
        g_best=jnp.zeros_like(dist),
        f_best=jnp.full((b,), -jnp.inf, dist.dtype),
        n_up=jnp.zeros((b,), dist.dtype),
        f_best_ckpt=jnp.full((b,), -jnp.inf, dist.dtype),
        halved_ckpt=jnp.zeros((b,), bool),
    )

    def body(i, s):
        x, x_prev, eta = s["x"], s["x_prev"], s["eta"]
        f, g = _value_and_grad(objective, x)
        better = f > s["f_best"]
        x_best = jnp.where(_per_item(better), x, s["x_best"])
        g_best = jnp.where(_per_item(better), g, s["g_best"])
        f_best = jnp.where(better, f, s["f_best"])
        n_up = s["n_up"] + (f > s["f_prev"])

        oscillating = n_up < _APGD_RHO * interval[i]
        stagnating = ~s["halved_ckpt"] & (f_best <= s["f_best_ckpt"])
        halve = is_ckpt[i] & (oscillating | stagnating)
        eta = jnp.where(halve, eta / 2, eta)
        x = jnp.where(_per_item(halve), x_best, x)
        g = jnp.where(_per_item(halve), g_best, g)
        f = jnp.where(halve, f_best, f)
        # i = 0 opens the first interval; every checkpoint opens the next one.
        opens = is_ckpt[i] | (i == 0)
        n_up = jnp.where(opens, 0.0, n_up)
        f_best_ckpt = jnp.where(opens, f_best, s["f_best_ckpt"])
        halved_ckpt = jnp.where(opens, halve, s["halved_ckpt"])

        z = jnp.clip(x + _per_item(eta) * jnp.sign(g), lo, hi)
        a = jnp.where(i == 0, 1.0, _APGD_ALPHA)
        x_next = jnp.clip(x + a * (z - x) + (1 - a) * (x - x_prev), lo, hi)
        return dict(
            x=x_next,
            x_prev=x,
            f_prev=f,
            eta=eta,
            x_best=x_best,
            g_best=g_best,
            f_best=f_best,
            n_up=n_up,
            f_best_ckpt=f_best_ckpt,
            halved_ckpt=halved_ckpt,
        )

    s = jax.lax.fori_loop(0, steps, body, state)
    f_last = _evaluate(objective, s["x"])
    return jnp.where(_per_item(f_last > s["f_best"]), s["x"], s["x_best"])


# ----------------------------------------------------------------------------- Korhonen & You


def spatial_activity_map(x: jax.Array) -> jax.Array:
    """Where a perturbation hides: Sobel gradient magnitude of luma, scaled, dilated.

    Args:
      x: [B, H, W, 3] float32 RGB in [0, 1].

    Returns:
      [B, H, W, 1] float32 in [0, 1]: ``sqrt(sobel_rows(Y)^2 + sobel_cols(Y)^2)`` (borders
      reflected as scipy's ``mode='reflect'``), divided by its per-image maximum (all zeros for
      a flat image), then a 3x3 maximum filter.
    """
    check_batch("x", x)
    y = luma(x)
    h, w = y.shape[1:3]
    yp = jnp.pad(y, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="symmetric")

    def win(dr, dc):
        return yp[:, 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]

    smooth_c = {dr: win(dr, -1) + 2 * win(dr, 0) + win(dr, 1) for dr in (-1, 1)}
    smooth_r = {dc: win(-1, dc) + 2 * win(0, dc) + win(1, dc) for dc in (-1, 1)}
    g_rows = smooth_c[1] - smooth_c[-1]
    g_cols = smooth_r[1] - smooth_r[-1]
    mag = jnp.sqrt(g_rows**2 + g_cols**2)
    peak = jnp.max(mag, axis=(1, 2, 3), keepdims=True)
    mag = mag / jnp.where(peak > 0, peak, 1.0)
    return jax.lax.reduce_window(mag, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 1, 1, 1), "SAME")


def korhonen(
    objective: Objective,
    dist: jax.Array,
    *,
    eps: Scalar,
    rng: jax.Array | None = None,
    steps: int = 10,
    lr: float = 0.005,
) -> jax.Array:
    """Korhonen & You (2022) style attack: Adam on a perturbation confined to textured areas.

    The image is ``x = clip(dist + m * delta, 0, 1)`` with ``m = spatial_activity_map(dist)``;
    Adam (learning rate ``lr``) maximises the objective over ``delta`` for ``steps`` steps,
    clipping ``delta`` to [-eps, eps] after each one. The gradient in ``delta`` is the image
    gradient masked by ``m``. The mask scales the perturbation rather than only the gradient
    because Adam normalises each coordinate's gradient, which would cancel a fixed per-pixel
    factor; this way flat regions (m ~ 0) stay nearly untouched. Same result as ``fgsm``.
    """
    check_batch("dist", dist)
    _check_eps(eps)
    _check_count("steps", steps)
    mask = jax.lax.stop_gradient(spatial_activity_map(dist))
    opt = optax.adam(lr)

    def image(delta):
        return jnp.clip(dist + mask * delta, 0.0, 1.0)

    def body(_, carry):
        delta, opt_state = carry
        _, g = _value_and_grad(lambda d: objective(image(d)), delta)
        updates, opt_state = opt.update(-g, opt_state)  # optax minimises
        delta = jnp.clip(optax.apply_updates(delta, updates), -eps, eps)
        return delta, opt_state

    delta0 = jnp.zeros_like(dist)
    delta, _ = jax.lax.fori_loop(0, steps, body, (delta0, opt.init(delta0)))
    return image(delta)


# ----------------------------------------------------------------------------- Square (black box)


def _square_fraction(i: jax.Array, queries: int, p_init: float) -> jax.Array:
    """Area fraction of the square at iteration ``i``: ``p_init`` halved on the paper schedule."""
    it = (i * 10000) // queries
    halvings = sum((it > t).astype(jnp.int32) for t in _SQUARE_HALVINGS)
    return p_init / (2.0**halvings)


def square(
    objective: Objective,
    dist: jax.Array,
    *,
    eps: Scalar,
    rng: jax.Array,
    queries: int = 1000,
    p_init: float = 0.05,
) -> jax.Array:
    """Square Attack (Andriushchenko et al. 2020, L-inf): random search with forward passes only.

    The perturbation stays on the corners of the eps ball: it starts as vertical stripes of
    random sign per column and channel; each iteration redraws, per item, one random square
    (side ``sqrt(p * H * W)`` with ``p`` shrinking from ``p_init`` on the paper's schedule,
    between 1 and min(H, W) - 1) to one random sign per channel, and keeps it if the objective
    increases. ``queries`` counts every evaluation of the objective; no gradient is ever taken,
    so it also scores models that mask their gradients. ``rng`` (see ``item_keys``) draws each
    item's stripes and squares. Returns each item's best point, within ``eps`` of ``dist`` and
    within [0, 1].
    """
    check_batch("dist", dist)
    _check_eps(eps)
    _check_count("queries", queries)
    b, h, w, c = dist.shape
    max_side = max(min(h, w) - 1, 1)
    rows = jnp.arange(h)[None, :, None, None]
    cols = jnp.arange(w)[None, None, :, None]

    def image(delta):
        return jnp.clip(dist + delta, 0.0, 1.0)

    split = jax.vmap(jax.random.split)(item_keys(rng, b))
    k_init, k_loop = split[:, 0], split[:, 1]
    stripes = jax.vmap(lambda k: jax.random.rademacher(k, (1, w, c), dist.dtype))(k_init)
    delta = jnp.broadcast_to(eps * stripes, dist.shape)
    f = _evaluate(objective, image(delta))

    def body(i, carry):
        delta, f = carry
        p = _square_fraction(i, queries, p_init)
        side = jnp.clip(jnp.round(jnp.sqrt(p * h * w)).astype(jnp.int32), 1, max_side)

        def draw(key):  # one item's square: top-left corner and colour
            k_r, k_c, k_s = jax.random.split(jax.random.fold_in(key, i), 3)
            return (jax.random.randint(k_r, (), 0, h - side + 1), jax.random.randint(k_c, (), 0, w - side + 1),
                    jax.random.rademacher(k_s, (1, 1, c), dist.dtype))

        r0, c0, signs = jax.vmap(draw)(k_loop)
        r0, c0 = _per_item(r0), _per_item(c0)
        inside = (rows >= r0) & (rows < r0 + side) & (cols >= c0) & (cols < c0 + side)
        colour = eps * signs
        proposal = jnp.where(inside, colour, delta)
        f_new = _evaluate(objective, image(proposal))
        better = f_new > f
        return jnp.where(_per_item(better), proposal, delta), jnp.where(better, f_new, f)

    delta, _ = jax.lax.fori_loop(1, queries, body, (delta, f))
    return image(delta)


# ----------------------------------------------------------------------------- registry


ATTACKS: dict[str, Callable[..., jax.Array]] = {
    "fgsm": fgsm,
    "ifgsm": ifgsm,
    "pgd": pgd,
    "mifgsm": mifgsm,
    "apgd": apgd,
    "korhonen": korhonen,
    "square": square,
}


def check_settings(name: str, settings) -> None:
    """Raise ValueError unless ``name`` is an attack of ``ATTACKS`` that accepts every keyword
    of ``settings`` (its keyword-only options besides ``eps`` and ``rng``).

    Every attack has the signature ``attack(objective, dist, *, eps, rng, **settings)``; the
    deterministic ones accept ``rng`` and ignore it."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose one of {sorted(ATTACKS)}")
    params = inspect.signature(ATTACKS[name]).parameters
    accepted = {p for p, v in params.items() if v.kind is v.KEYWORD_ONLY} - {"eps", "rng"}
    unknown = set(settings) - accepted
    if unknown:
        raise ValueError(f"{name} takes no setting(s) {sorted(unknown)}; it accepts {sorted(accepted)}")


@jax.jit
def perturbation_stats(adv: jax.Array, dist: jax.Array) -> dict[str, jax.Array]:
    """Size of each perturbation: L-inf, PSNR and SSIM of ``adv`` against ``dist``.

    Args:
      adv: [B, H, W, 3] float32 in [0, 1], the attacked images.
      dist: [B, H, W, 3] float32 in [0, 1], the images before the attack (same shape).

    Returns:
      ``{"linf": [B], "psnr": [B], "ssim": [B]}`` float32: max |adv - dist|; PSNR in dB for peak
      1 (inf for identical images); SSIM on BT.601 luma (``imageops.ssim_map``, Gaussian sigma
      1.5, reflected borders) averaged over the whole image.

    Raises:
      ValueError: the inputs are not float [B, H, W, 3] batches of one shape (at trace time).
    """
    check_pair(adv, dist, who="perturbation_stats")
    linf = jnp.max(jnp.abs(adv - dist), axis=(1, 2, 3))
    ssim = jnp.mean(ssim_map(luma(adv), luma(dist)), axis=(1, 2, 3))
    return {"linf": linf, "psnr": psnr(adv, dist), "ssim": ssim}


def _check_images(ref, dist) -> None:
    """Static checks of an attack's pair: [B, H, W, 3] of one shape, both uint8 or both float."""
    if ref.dtype == np.uint8 and dist.dtype == np.uint8:
        check_pair(jax.ShapeDtypeStruct(ref.shape, jnp.float32), jax.ShapeDtypeStruct(dist.shape, jnp.float32),
                   who="run_attack")
    else:
        check_pair(ref, dist, who="run_attack")


@functools.partial(jax.jit, static_argnames=("name", "score_fn", "settings"))
def _attack(params, ref, dist, direction, eps, rng, *, name, score_fn, settings):
    """The attack and its perturbation statistics in one program; ``params`` is traced (None:
    ``score_fn`` takes no parameters), ``score_fn`` and the settings are static."""
    fn = score_fn if params is None else functools.partial(score_fn, params)
    ref, dist = as_float(ref), as_float(dist)
    objective = direction_objective(fn, ref, direction)
    adv = ATTACKS[name](objective, dist, eps=eps, rng=rng, **dict(settings))
    return adv, perturbation_stats(adv, dist)


def run_attack(
    name: str,
    score_fn: Callable,
    ref: jax.Array,
    dist: jax.Array,
    direction: jax.Array,
    *,
    eps: float,
    rng: jax.Array,
    params=None,
    validate: bool = True,
    **overrides,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Run a registered attack with the evaluation protocol's defaults and measure its perturbations.

    Defaults: fgsm one step of ``eps``; ifgsm 10 steps of 1/255; pgd 10 steps of ``eps / 4``
    from a random start; mifgsm 10 steps, decay 1.0; apgd 100 iterations; korhonen 10 Adam
    steps at lr 0.005; square 1000 queries. Override any setting of the attack function by a
    keyword holding a Python scalar (``steps=50``); each distinct value compiles anew.

    Args:
      name: a key of ``ATTACKS``.
      score_fn: the quality score, higher = better: a pure ``(params, ref, dist) -> [B]`` when
        ``params`` is given (a model: ``model.apply_fn(config)``), else ``(ref, dist) -> [B]``.
        The attack compiles once per ``score_fn`` object, settings, shapes and dtypes; the
        parameters are a traced argument, so any number of weight sets of one ``score_fn``
        share that compilation. Pass the same function object across calls (a new closure
        compiles anew, and a closure over weights makes them compile-time constants).
      ref: [B, H, W, 3] references, float32 in [0, 1] or uint8 0..255 (converted on the
        device); never perturbed.
      dist: [B, H, W, 3] images to perturb, of ``ref``'s shape, float32 in [0, 1] or uint8.
      direction: [B] float32 of +1 (push the score up) or -1 (push it down).
      eps: L-inf budget in (0, 1], [0, 1] pixel units (4/255, ...).
      rng: PRNG key, or [B] keys (``item_keys``); used by pgd, square and apgd with
        ``random_start=True``, ignored by the others.
      params: the model's parameters (a pytree), or None for a ``score_fn`` without any.
      validate: check the values of ``ref``, ``dist`` (in [0, 1]) and ``direction`` (+1 or -1)
        on the host; a caller that has checked them already (the robustness evaluation, with
        its batches on the device) passes False to skip the device-to-host copies.
      **overrides: settings of the attack function (its keyword-only options besides ``eps``
        and ``rng``), as Python scalars; they replace the defaults above.

    Returns:
      ``(adv, stats)``: adv [B, H, W, 3] float32 within ``eps`` of ``dist`` (L-inf) and in
      [0, 1], stats as ``perturbation_stats(adv, dist)``.

    Raises:
      ValueError: an unknown attack or setting, images that are not [B, H, W, 3] of one shape
        (or not both uint8 or both float), ``direction`` not [B], ``eps`` outside (0, 1], and,
        with ``validate``, float values outside [0, 1] or a ``direction`` other than +1/-1.
    """
    check_settings(name, overrides)
    _check_images(ref, dist)
    direction = jnp.asarray(direction, jnp.float32)
    _check_per_item("direction", direction, dist.shape[0])
    _check_eps(eps)
    if validate:
        for label, x in (("ref", ref), ("dist", dist)):
            if x.dtype != np.uint8:
                check_values(label, x)
        if not bool(jnp.all(jnp.abs(direction) == 1.0)):
            raise ValueError("direction must hold only +1 and -1")
    return _attack(
        params,
        ref,
        dist,
        direction,
        jnp.float32(eps),
        rng,
        name=name,
        score_fn=score_fn,
        settings=tuple(sorted(overrides.items())),
    )
