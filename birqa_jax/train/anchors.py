"""Theorem 1's assumptions on an Anchored Adversarial Training batch, measured per batch.

The anchored ranking term (``losses.anchored_ranking_loss``) orders every attacked item against
the clean anchors of its batch. It bounds an item's error only when the anchors are accurate
and cover the item from both sides in MOS; these functions measure both. They run inside the
jitted train step and on host arrays alike.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def two_sided_coverage(mos, anchor) -> jax.Array:
    """Fraction of non-anchor items that have an anchor with MOS >= theirs and one with MOS <=
    theirs: a scalar in [0, 1]; 1.0 when every item is an anchor, 0.0 when none is.

    Args:
      mos: [B] MOS of a batch; anchor: [B] bool anchor flags.
    """
    mos, anchor = jnp.asarray(mos), jnp.asarray(anchor, bool)
    if mos.shape != anchor.shape or mos.ndim != 1:
        raise ValueError(f"mos and anchor must be [B] arrays, got {mos.shape} and {anchor.shape}")
    a_hi = jnp.max(jnp.where(anchor, mos, -jnp.inf))
    a_lo = jnp.min(jnp.where(anchor, mos, jnp.inf))
    items = ~anchor
    covered = items & (a_hi >= mos) & (a_lo <= mos)
    n = items.sum()
    return jnp.where(n > 0, covered.sum() / jnp.maximum(n, 1), 1.0)


def aat_diagnostics(pred, mos, anchor) -> dict[str, jax.Array]:
    """One batch's max anchor error |pred_a - y_a| (assumption A1), two-sided coverage, and the
    MOS band width the batch spans. ``pred``, ``mos``: [B]; ``anchor``: [B] bool."""
    anchor_err = jnp.max(jnp.where(anchor, jnp.abs(pred - mos), 0.0))
    return {
        "anchor_max_err": anchor_err,
        "two_sided_coverage": two_sided_coverage(mos, anchor),
        "band_width": jnp.max(mos) - jnp.min(mos),
    }
