"""Tests of birqa_jax.adversarial.scores against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from birqa_jax.adversarial import scores as R


def test_scrambling_direction():
    # mean = 2.5: above it -> -1 (make worse), at or below -> +1 (make better)
    got = R.scrambling_direction([1.0, 4.0, 2.5, 2.0, 3.0, 2.5])
    np.testing.assert_array_equal(got, [1, -1, 1, 1, -1, 1])
    assert got.dtype == np.float32


def test_absolute_gain():
    # clean [1, 2, 3] scales to [0, .5, 1]; attacked [2, 2, 4] to [.5, .5, 1.5]
    assert R.absolute_gain([1, 2, 3], [2, 2, 4]) == pytest.approx((0.5 + 0 + 0.5) / 3)
    assert R.absolute_gain([1, 2, 3], [1, 2, 3]) == 0.0


def test_robustness_score():
    # scaled clean f = [0, .5, 1], attacked f' = [.25, .5, .5]
    want = np.mean(
        [
            math.log10(1.0 / (0.25 + 1e-6)),
            math.log10(0.5 / (0.0 + 1e-6)),
            math.log10(1.0 / (0.5 + 1e-6)),
        ]
    )
    assert R.robustness_score([10, 20, 30], [15, 20, 20]) == pytest.approx(want, rel=1e-12)
    # a larger change gives a lower score
    clean = [10, 20, 30]
    assert R.robustness_score(clean, [15, 25, 25]) < R.robustness_score(clean, [11, 21, 29])


def test_eps_integral():
    # trapezoids over eps = 0, 2, 4, 8 (/255 units cancel): (2*(.9+.7) + 2*(.7+.6) + 4*(.6+.2)) / 2
    eps = np.array([0, 2, 4, 8]) / 255
    area = (2 * (0.9 + 0.7) + 2 * (0.7 + 0.6) + 4 * (0.6 + 0.2)) / 2
    assert R.eps_integral(eps, [0.9, 0.7, 0.6, 0.2]) == pytest.approx(area / 8)
    assert R.eps_integral([1, 3], [0.5, 0.5]) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: R.absolute_gain([1, 1, 1], [1, 2, 3]), "all equal"),
        (lambda: R.robustness_score([1, 2], [1, 2, 3]), "differ in shape"),
        (lambda: R.robustness_score([1, np.nan], [1, 2]), "NaN"),
        (lambda: R.scrambling_direction(np.ones((2, 2))), "1-D"),
        (lambda: R.eps_integral([0, 2, 1], [1, 1, 1]), "strictly increasing"),
        (lambda: R.eps_integral([0], [1]), "at least 2"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
