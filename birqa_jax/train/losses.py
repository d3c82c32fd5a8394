"""Training losses over a batch of predictions ``pred`` [B] and normalised MOS ``mos`` [B]
(both higher = better). All are jit/grad-safe and optionally take a boolean/float ``mask``
[B] that removes items (padding, or items a loss should not see)."""

from __future__ import annotations

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


def _pair_loss(diff_pred: jax.Array, sign: jax.Array, margin: float, kind: str) -> jax.Array:
    z = sign * diff_pred  # > 0 when the predicted order agrees with the MOS order
    if kind == "hinge":
        return jax.nn.relu(margin - z)
    if kind == "logistic":
        return jax.nn.softplus(margin - z)
    raise ValueError(f"ranking loss kind must be 'hinge' or 'logistic', got {kind!r}")


def ranking_loss(
    pred: jax.Array, mos: jax.Array, mask: jax.Array | None = None, margin: float = 0.0, kind: str = "hinge"
) -> jax.Array:
    """Mean over ordered pairs (i, j) with mos_i != mos_j of a penalty on mis-ordered predictions.

    hinge: max(0, margin - s_ij (pred_i - pred_j)); logistic: softplus(margin - s_ij (pred_i -
    pred_j)), with s_ij = sign(mos_i - mos_j). Tied MOS pairs are ignored.
    """
    w = _weights(pred, mask)
    sign = jnp.sign(mos[:, None] - mos[None, :])
    pair_w = (sign != 0) * w[:, None] * w[None, :]
    loss = _pair_loss(pred[:, None] - pred[None, :], sign, margin, kind)
    return (pair_w * loss).sum() / jnp.maximum(pair_w.sum(), 1.0)


def anchored_ranking_loss(
    pred: jax.Array,
    mos: jax.Array,
    anchor: jax.Array,
    mask: jax.Array | None = None,
    margin: float = 0.0,
    kind: str = "hinge",
) -> jax.Array:
    """Ranking loss over (anchor a, item j) pairs only: each non-anchor item is ordered against
    the clean anchors of its batch, for every pair with y_a != y_j (Anchored Adversarial
    Training). ``anchor``: [B] bool, True for clean anchors."""
    w = _weights(pred, mask)
    a = anchor.astype(pred.dtype) * w
    item = (1.0 - anchor.astype(pred.dtype)) * w
    sign = jnp.sign(mos[None, :] - mos[:, None])  # [anchor, item]: sign(y_j - y_a)
    pair_w = (sign != 0) * a[:, None] * item[None, :]
    loss = _pair_loss(pred[None, :] - pred[:, None], sign, margin, kind)
    return (pair_w * loss).sum() / jnp.maximum(pair_w.sum(), 1.0)
