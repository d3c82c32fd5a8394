"""Theorem 1's assumptions on an Anchored Adversarial Training batch, measured per batch.

The anchored ranking term (``losses.anchored_ranking_loss``) orders every attacked item against
the clean anchors of its batch. It bounds an item's error only when the anchors are accurate,
cover the item from both sides in MOS, and are spaced so that their order says something
(pairs with tied MOS are dropped from the loss; pairs closer than the ranking margin ask the
predictions to spread further apart than the labels). These functions measure all three. They
run inside the jitted train step and on host arrays alike.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _checked(mos, anchor) -> tuple[jax.Array, jax.Array]:
    mos, anchor = jnp.asarray(mos), jnp.asarray(anchor, bool)
    if mos.shape != anchor.shape or mos.ndim != 1:
        raise ValueError(f"mos and anchor must be [B] arrays, got {mos.shape} and {anchor.shape}")
    return mos, anchor


def _fraction_of_items(covered: jax.Array, anchor: jax.Array) -> jax.Array:
    items = ~anchor
    n = items.sum()
    return jnp.where(n > 0, (covered & items).sum() / jnp.maximum(n, 1), 1.0)


def two_sided_coverage(mos, anchor) -> jax.Array:
    """Fraction of non-anchor items that have an anchor with MOS >= theirs and one with MOS <=
    theirs: a scalar in [0, 1]; 1.0 when every item is an anchor, 0.0 when none is.

    An anchor with the item's own MOS counts on both sides here, although the ranking loss drops
    tied pairs; ``strict_two_sided_coverage`` counts only the pairs the loss uses.

    Args:
      mos: [B] MOS of a batch.
      anchor: [B] bool, True for the anchors.

    Raises:
      ValueError: ``mos`` and ``anchor`` are not 1-D of one shape.
    """
    mos, anchor = _checked(mos, anchor)
    a_hi = jnp.max(jnp.where(anchor, mos, -jnp.inf))
    a_lo = jnp.min(jnp.where(anchor, mos, jnp.inf))
    return _fraction_of_items((a_hi >= mos) & (a_lo <= mos), anchor)


def strict_two_sided_coverage(mos, anchor) -> jax.Array:
    """Fraction of non-anchor items with an anchor of strictly higher MOS and one of strictly
    lower MOS: the coverage the anchored ranking loss actually provides (it ignores ties).
    A scalar in [0, 1]; 1.0 when every item is an anchor, 0.0 when none is.

    Args:
      mos: [B] MOS of a batch.
      anchor: [B] bool, True for the anchors.

    Raises:
      ValueError: ``mos`` and ``anchor`` are not 1-D of one shape.
    """
    mos, anchor = _checked(mos, anchor)
    a_hi = jnp.max(jnp.where(anchor, mos, -jnp.inf))
    a_lo = jnp.min(jnp.where(anchor, mos, jnp.inf))
    return _fraction_of_items((a_hi > mos) & (a_lo < mos), anchor)


def mos_spacing(mos, anchor, margin: float = 0.0, margin_rel: float = 0.0) -> dict[str, jax.Array]:
    """The MOS resolution of a batch's (anchor, item) pairs, the spacing Theorem 1 relies on.

    Returns scalars:
      ``min_label_gap``: the smallest non-zero |y_a - y_j| over (anchor, non-anchor item) pairs
        (0.0 when no pair has distinct MOS);
      ``tied_pairs``: the fraction of those pairs with y_a == y_j (dropped by the ranking loss);
      ``pairs_below_margin``: among the non-tied pairs, the fraction whose label gap is smaller
        than the prediction gap the ranking loss asks for, ``margin + margin_rel * |y_a - y_j|``
        (``losses.ranking_loss``): the loss pushes those predictions further apart than their
        labels are (0.0 when no pair is non-tied).

    Args:
      mos: [B] MOS of a batch.
      anchor: [B] bool, True for the anchors.
      margin: the ranking loss's absolute margin.
      margin_rel: the ranking loss's margin per unit of label gap.

    Raises:
      ValueError: ``mos`` and ``anchor`` are not 1-D of one shape.
    """
    mos, anchor = _checked(mos, anchor)
    pair = anchor[:, None] & ~anchor[None, :]  # [anchor, item]
    gap = jnp.abs(mos[:, None] - mos[None, :])
    distinct = pair & (gap > 0)
    n_pairs, n_distinct = pair.sum(), distinct.sum()
    below = distinct & (gap < margin + margin_rel * gap)
    min_gap = jnp.min(jnp.where(distinct, gap, jnp.inf))
    return {
        "min_label_gap": jnp.where(n_distinct > 0, min_gap, 0.0),
        "tied_pairs": jnp.where(n_pairs > 0, (pair & (gap == 0)).sum() / jnp.maximum(n_pairs, 1), 0.0),
        "pairs_below_margin": jnp.where(n_distinct > 0, below.sum() / jnp.maximum(n_distinct, 1), 0.0),
    }


def aat_diagnostics(pred, mos, anchor, margin: float = 0.0, margin_rel: float = 0.0) -> dict[str, jax.Array]:
    """One batch's max anchor error |pred_a - y_a| (assumption A1; 0 without anchors), two-sided
    coverage (ties counted as covered) and strict coverage, the MOS spacing of ``mos_spacing``, and
    the MOS band width the batch spans. ``pred``, ``mos``: [B]; ``anchor``: [B] bool; margins
    of the ranking loss."""
    anchor_err = jnp.max(jnp.where(anchor, jnp.abs(pred - mos), 0.0))
    return {
        "anchor_max_err": anchor_err,
        "two_sided_coverage": two_sided_coverage(mos, anchor),
        "strict_coverage": strict_two_sided_coverage(mos, anchor),
        **mos_spacing(mos, anchor, margin, margin_rel),
        "band_width": jnp.max(mos) - jnp.min(mos),
    }
