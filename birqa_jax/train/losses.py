"""Training losses over a batch of predictions ``pred`` [B] and normalised MOS ``mos`` [B]
(both higher = better). All are jit/grad-safe and optionally take a boolean/float ``mask``
[B] that removes items (padding, or items a loss should not see).

Ranking margins: a pair (i, j) with y_i != y_j is asked for a prediction gap of at least
``margin + margin_rel * |y_i - y_j|``: an absolute margin, a margin relative to the label gap,
or both. An absolute margin larger than a pair's label gap asks the predictions to spread
further apart than the labels (``theorem1.mos_spacing`` measures how often that happens).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def _weights(pred: jax.Array, mask: jax.Array | None) -> jax.Array:
    return jnp.ones_like(pred) if mask is None else mask.astype(pred.dtype)


def plcc_loss(pred: jax.Array, mos: jax.Array, mask: jax.Array | None = None, eps: float = 1e-8) -> jax.Array:
    """1 - Pearson correlation over the batch, in [0, 2].

    A constant batch (of predictions or of MOS) has no defined correlation: its loss is 1 and
    its gradient finite (``eps`` keeps the normaliser away from zero).
    """
    w = _weights(pred, mask)
    n = jnp.maximum(w.sum(), 1.0)
    pc = pred - (w * pred).sum() / n
    mc = mos - (w * mos).sum() / n
    cov = (w * pc * mc).sum()
    norm = jnp.sqrt((w * pc * pc).sum() * (w * mc * mc).sum() + eps)
    return 1.0 - cov / norm


def mse_loss(pred: jax.Array, mos: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Mean squared error between predictions and normalised MOS."""
    w = _weights(pred, mask)
    return (w * (pred - mos) ** 2).sum() / jnp.maximum(w.sum(), 1.0)


def _pair_loss(diff_pred: jax.Array, sign: jax.Array, margin, kind: str) -> jax.Array:
    z = sign * diff_pred  # > 0 when the predicted order agrees with the MOS order
    if kind == "hinge":
        return jax.nn.relu(margin - z)
    if kind == "logistic":
        return jax.nn.softplus(margin - z)
    raise ValueError(f"ranking loss kind must be 'hinge' or 'logistic', got {kind!r}")


def ranking_loss(
    pred: jax.Array,
    mos: jax.Array,
    mask: jax.Array | None = None,
    margin: float = 0.0,
    kind: str = "hinge",
    margin_rel: float = 0.0,
) -> jax.Array:
    """Mean over ordered pairs (i, j) with mos_i != mos_j of a penalty on mis-ordered predictions.

    hinge: max(0, m_ij - s_ij (pred_i - pred_j)); logistic: softplus(m_ij - s_ij (pred_i -
    pred_j)), with s_ij = sign(mos_i - mos_j) and m_ij = margin + margin_rel * |mos_i - mos_j|.
    Tied MOS pairs are ignored.
    """
    w = _weights(pred, mask)
    gap = mos[:, None] - mos[None, :]
    sign = jnp.sign(gap)
    pair_w = (sign != 0) * w[:, None] * w[None, :]
    loss = _pair_loss(pred[:, None] - pred[None, :], sign, margin + margin_rel * jnp.abs(gap), kind)
    return (pair_w * loss).sum() / jnp.maximum(pair_w.sum(), 1.0)


def anchored_ranking_loss(
    pred: jax.Array,
    mos: jax.Array,
    anchor: jax.Array,
    mask: jax.Array | None = None,
    margin: float = 0.0,
    kind: str = "hinge",
    margin_rel: float = 0.0,
    stop_anchor_gradient: bool = False,
) -> jax.Array:
    """Ranking loss over (anchor a, item j) pairs only: each non-anchor item is ordered against
    the clean anchors of its batch, for every pair with y_a != y_j (Anchored Adversarial
    Training). ``anchor``: [B] bool, True for clean anchors; margins as in ``ranking_loss``.

    ``stop_anchor_gradient``: the anchors' predictions enter as constants, so the term can only
    be lowered by moving the (attacked) items, never by moving the clean anchors away from
    them; the anchors are then fitted by the regression terms alone (Theorem 1 takes them as
    accurate references)."""
    w = _weights(pred, mask)
    a = anchor.astype(pred.dtype) * w
    item = (1.0 - anchor.astype(pred.dtype)) * w
    gap = mos[None, :] - mos[:, None]  # [anchor, item]: y_j - y_a
    sign = jnp.sign(gap)
    pair_w = (sign != 0) * a[:, None] * item[None, :]
    pred_anchor = jax.lax.stop_gradient(pred) if stop_anchor_gradient else pred
    loss = _pair_loss(pred[None, :] - pred_anchor[:, None], sign, margin + margin_rel * jnp.abs(gap), kind)
    return (pair_w * loss).sum() / jnp.maximum(pair_w.sum(), 1.0)


def clean_anchored_ranking_loss(
    pred: jax.Array,
    anchor_pred: jax.Array,
    mos: jax.Array,
    margin: float = 0.0,
    margin_rel: float = 0.0,
    kind: str = "hinge",
    mask: jax.Array | None = None,
) -> jax.Array:
    """Ranking of every attacked prediction against every clean anchor of the batch.

    For each ordered pair (anchor i, item j) with ``mos_i != mos_j`` the attacked score
    ``pred_j`` must sit on the right side of the clean score ``anchor_pred_i`` by
    ``margin + margin_rel * |mos_j - mos_i|``. The anchors enter under ``stop_gradient``: the
    term can only move the attacked items, and because the margin is in label units a model
    cannot satisfy it by shrinking its whole scale.

    Args:
      pred: [B] scores of the attacked images.
      anchor_pred: [B] scores of the same items' clean images (every item is an anchor).
      mos: [B] normalised MOS, higher = better.
      margin: absolute margin, in score units (as in ``ranking_loss``).
      margin_rel: margin per unit of label gap ``|mos_j - mos_i|`` (as in ``ranking_loss``).
      kind: ``"hinge"`` or ``"logistic"`` (as in ``ranking_loss``).
      mask: optional [B] weights of the items (padding).

    Returns:
      Scalar mean penalty over the counted pairs (0 when no pair has distinct labels).

    Raises:
      ValueError: ``kind`` is neither ``"hinge"`` nor ``"logistic"``.
    """
    w = _weights(pred, mask)
    anchor_pred = jax.lax.stop_gradient(anchor_pred)
    gap = mos[None, :] - mos[:, None]  # [anchor i, item j]: y_j - y_i
    sign = jnp.sign(gap)
    pair_w = (sign != 0) * w[:, None] * w[None, :]
    loss = _pair_loss(pred[None, :] - anchor_pred[:, None], sign, margin + margin_rel * jnp.abs(gap), kind)
    return (pair_w * loss).sum() / jnp.maximum(pair_w.sum(), 1.0)


def scaled_consistency_loss(pred: jax.Array, pred_clean: jax.Array, mask: jax.Array | None = None,
                            eps: float = 1e-6, stop_variance: bool = True) -> jax.Array:
    """Scale-invariant consistency: ``mean((pred - pred_clean)^2) / Var(pred_clean)``.

    The squared gap between each attacked and clean score is divided by the batch variance of
    the clean scores: shrinking every score by a factor a shrinks numerator and denominator
    alike, so the *value* cannot be lowered by collapsing the score scale (the plain
    ``consistency_loss`` can). With ``stop_variance`` (the default) the variance is a constant
    of the gradient, which then still points towards a smaller scale (d/da of a^2 g / sg(V) >
    0), and in training the score scale does shrink under it (docs/robustness.md).
    ``stop_variance=False`` differentiates the variance too, and the gradient along a pure
    rescaling is zero.

    Args:
      pred: [B] scores of the attacked images.
      pred_clean: [B] scores of the same items' clean images.
      mask: optional [B] weights of the items.
      eps: added to the variance (a constant batch divides by ``eps``).
      stop_variance: hold the variance constant in the gradient.

    Returns:
      Scalar: the weighted mean squared gap divided by (the weighted variance of
      ``pred_clean`` + ``eps``).
    """
    w = _weights(pred, mask)
    n = jnp.maximum(w.sum(), 1.0)
    centred = pred_clean - (w * pred_clean).sum() / n
    var = (w * centred**2).sum() / n
    if stop_variance:
        var = jax.lax.stop_gradient(var)
    return (w * (pred - pred_clean) ** 2).sum() / n / (var + eps)


def score_slope(pred: jax.Array, mos: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Least-squares slope of ``pred`` against ``mos`` over the batch: ``cov / var(mos)``.

    The scale of a model's scores in label units: 1 when scores move one for one with MOS. A
    recipe that lowers its attack damage by shrinking every score shows it as a falling slope
    (docs/robustness.md). [B], [B] -> scalar."""
    pc = pred - pred.mean()
    mc = mos - mos.mean()
    return (pc * mc).sum() / ((mc * mc).sum() + eps)


def consistency_loss(pred: jax.Array, pred_clean: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Mean squared gap between each item's prediction on its attacked image (``pred``) and on
    its clean image (``pred_clean``), both [B]; gradients flow through both (as in TRADES), so
    the model learns to give an attacked image the score of its clean version. ``mask``: the
    attacked items."""
    w = _weights(pred, mask)
    return (w * (pred - pred_clean) ** 2).sum() / jnp.maximum(w.sum(), 1.0)


def score_slopes(
    score_fn: Callable[[jax.Array, jax.Array], jax.Array], ref: jax.Array, dist: jax.Array, h: float = 0.01,
    pred: jax.Array | None = None,
) -> jax.Array:
    """Finite-difference slope of each item's score along the sign of its input gradient
    (Liu et al., CVPR 2024): ``(f(ref, dist + h * s) - f(ref, dist)) / h`` with
    ``s = sign(d f / d dist)`` held constant; for small ``h`` it is the L1 norm of the input
    gradient, the quantity an L-inf attacker exploits. Penalising the mean absolute slope
    (weight about 1e-3, ``h = 0.01``; ``LossWeights.slope``) flattens the score around the
    training images.

    Args:
      score_fn: ``(ref, dist) -> [B]``, differentiable, e.g. the model with its parameters bound.
      ref: [B, H, W, 3] float32 in [0, 1], the references.
      dist: [B, H, W, 3] float32 in [0, 1]; ``dist + h * s`` may leave [0, 1] by ``h`` (a probe,
        not an image the model is scored on).
      h: the finite-difference step, in [0, 1] pixel units.
      pred: ``score_fn(ref, dist)`` when the caller has it already (saves a forward pass).

    Returns:
      [B] slopes; >= 0 up to the curvature over ``h``. Differentiable in the parameters that
      ``score_fn`` closes over (the direction ``s`` is a constant).
    """
    direction = jax.lax.stop_gradient(jnp.sign(jax.grad(lambda x: score_fn(ref, x).sum())(dist)))
    base = score_fn(ref, dist) if pred is None else pred
    return (score_fn(ref, dist + h * direction) - base) / h
