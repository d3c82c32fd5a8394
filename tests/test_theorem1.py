"""Theorem 1's diagnostics of an AAT batch (``train.theorem1``), checked by hand."""

import jax
import numpy as np
import pytest

from birqa_jax.train.theorem1 import aat_diagnostics, mos_spacing, strict_two_sided_coverage, two_sided_coverage


def test_strict_coverage_by_hand():
    mos = np.array([0.2, 0.4, 0.6, 0.8])
    assert strict_two_sided_coverage(mos, np.array([True, False, False, True])) == 1.0
    assert strict_two_sided_coverage(mos, np.array([False, True, False, True])) == 0.5  # item 0.2 has none below
    assert strict_two_sided_coverage(mos, np.ones(4, bool)) == 1.0  # no items
    assert strict_two_sided_coverage(mos, np.zeros(4, bool)) == 0.0  # no anchors


def test_ties_are_covered_only_in_the_old_measure():
    # Item 1 shares its MOS with anchor 0: the ranking loss drops that pair, so only anchor 2
    # (above) orders it. Item 3 sits strictly between the anchors.
    mos = np.array([0.2, 0.2, 0.6, 0.4])
    anchor = np.array([True, False, True, False])
    assert two_sided_coverage(mos, anchor) == 1.0
    assert strict_two_sided_coverage(mos, anchor) == 0.5
    # Every item tied with an anchor on one side: covered before, not strictly.
    assert two_sided_coverage(np.array([0.3, 0.3, 0.3]), np.array([True, False, True])) == 1.0
    assert strict_two_sided_coverage(np.array([0.3, 0.3, 0.3]), np.array([True, False, True])) == 0.0


def test_mos_spacing_by_hand():
    # (anchor, item) pairs: (0.2, 0.22) gap 0.02, (0.2, 0.2) tied, (0.5, 0.22) 0.28, (0.5, 0.2) 0.3.
    mos = np.array([0.2, 0.22, 0.2, 0.5])
    anchor = np.array([True, False, False, True])
    s = {k: float(v) for k, v in mos_spacing(mos, anchor, margin=0.05).items()}
    assert s["min_label_gap"] == pytest.approx(0.02, abs=1e-7)
    assert s["tied_pairs"] == 0.25
    assert s["pairs_below_margin"] == pytest.approx(1 / 3)  # only 0.02 < 0.05
    # A relative margin below 1 never asks for more than the label gap; above, it always does.
    assert float(mos_spacing(mos, anchor, margin=0.0, margin_rel=0.5)["pairs_below_margin"]) == 0.0
    assert float(mos_spacing(mos, anchor, margin=0.05, margin_rel=0.9)["pairs_below_margin"]) == 1.0
    # No pair with distinct MOS: documented zeros, no inf.
    none = mos_spacing(np.array([0.3, 0.3]), np.array([True, False]), margin=0.05)
    assert float(none["min_label_gap"]) == 0.0 and float(none["pairs_below_margin"]) == 0.0
    assert float(none["tied_pairs"]) == 1.0


def test_diagnostics_inside_jit():
    mos = np.array([0.2, 0.22, 0.2, 0.5], np.float32)
    pred = mos + np.array([0.1, 0.0, 0.0, -0.05], np.float32)
    anchor = np.array([True, False, False, True])
    eager = aat_diagnostics(pred, mos, anchor, 0.05)
    jitted = jax.jit(aat_diagnostics, static_argnums=(3, 4))(pred, mos, anchor, 0.05, 0.0)
    assert set(eager) == {"anchor_max_err", "two_sided_coverage", "strict_coverage", "min_label_gap", "tied_pairs",
                          "pairs_below_margin", "band_width"}
    for k in eager:
        assert float(eager[k]) == pytest.approx(float(jitted[k]), abs=1e-6)
    assert float(eager["anchor_max_err"]) == pytest.approx(0.1, abs=1e-6)
    assert float(eager["band_width"]) == pytest.approx(0.3, abs=1e-6)
    with pytest.raises(ValueError, match=r"\[B\] arrays"):
        strict_two_sided_coverage(mos, anchor[:3])
