"""Correlation statistics against scipy and hand-computed cases."""

import dataclasses
import math
import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.stats

from birqa_jax.evaluation import report
from birqa_jax.evaluation import stats as ev


@pytest.fixture(scope="module")
def noisy_pair():
    rng = np.random.default_rng(0)
    x = rng.normal(size=120)
    mos = 1.0 / (1.0 + np.exp(-2.0 * x)) + rng.normal(0.0, 0.1, size=x.size)
    return x, mos


def test_signed_statistics_match_scipy(noisy_pair):
    x, mos = noisy_pair
    assert ev.srocc(x, mos) == pytest.approx(scipy.stats.spearmanr(x, mos).statistic, abs=1e-12)
    assert ev.krocc(x, mos) == pytest.approx(scipy.stats.kendalltau(x, mos).statistic, abs=1e-12)
    assert ev.plcc(x, mos) == pytest.approx(scipy.stats.pearsonr(x, mos).statistic, abs=1e-12)
    # Signed: a reversed metric gives the negated values.
    assert ev.srocc(-x, mos) == pytest.approx(-ev.srocc(x, mos), abs=1e-12)


def test_correlations_absolute_and_direction(noisy_pair):
    x, mos = noisy_pair
    up, down = ev.correlations(x, mos), ev.correlations(-3.0 * x + 7.0, mos)
    assert up["direction"] == 1 and down["direction"] == -1
    for key in ("srocc", "krocc", "plcc", "plcc_fitted", "rmse_fitted"):
        assert down[key] == pytest.approx(up[key], rel=1e-5), key
    assert up["srocc"] == pytest.approx(abs(scipy.stats.spearmanr(x, mos).statistic))
    assert up["krocc"] == pytest.approx(abs(scipy.stats.kendalltau(x, mos).statistic))
    assert up["plcc"] == pytest.approx(abs(scipy.stats.pearsonr(x, mos).statistic))
    assert up["fit_ok"] and up["n"] == x.size and not up["constant"]
    # The logistic fit can only help the linear correlation on sigmoidal data.
    assert up["plcc_fitted"] >= up["plcc"]


def test_perfect_monotone_and_reversed():
    x = np.linspace(0.0, 3.0, 30)
    mos = np.exp(x)  # monotone but not linear
    fwd, rev = ev.correlations(x, mos), ev.correlations(-x, mos)
    for r in (fwd, rev):
        assert r["srocc"] == pytest.approx(1.0) and r["krocc"] == pytest.approx(1.0)
        assert r["plcc"] < 0.99  # raw PLCC sees the non-linearity
    assert (fwd["direction"], rev["direction"]) == (1, -1)


def test_constant_predictions_flagged_without_crash_or_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = ev.correlations(np.full(10, 0.3), np.arange(10.0))
    assert r["constant"] and not r["fit_ok"] and "pred is constant" in r["fit_message"]
    assert all(math.isnan(r[k]) for k in ("srocc", "krocc", "plcc", "plcc_fitted", "rmse_fitted"))
    assert math.isnan(ev.srocc(np.ones(5), np.arange(5.0)))


@pytest.mark.parametrize("sign", [1, -1])
def test_logistic_fit_recovers_parameters(sign):
    true = (4.5, 1.2, 0.3, 0.15)
    x = np.linspace(-0.5, 1.2, 80)
    mos = ev.logistic4(x, *true)
    fit = ev.fit_logistic(sign * x, mos)
    assert fit.ok, fit.message
    assert fit.direction == sign
    np.testing.assert_allclose(fit.params[:3], true[:3], rtol=1e-5, atol=1e-6)
    assert abs(fit.params[3]) == pytest.approx(true[3], rel=1e-5)
    np.testing.assert_allclose(fit.predict(sign * x), mos, atol=1e-7)


def test_logistic_formula_by_hand():
    # At x = b3 the logistic is halfway between b2 and b1; far right it tends to b1.
    assert ev.logistic4(np.array([2.0]), 5.0, 1.0, 2.0, -0.5)[0] == pytest.approx(3.0)
    assert ev.logistic4(np.array([1e3]), 5.0, 1.0, 2.0, 0.5)[0] == pytest.approx(5.0)


def test_failed_fit_is_reported(monkeypatch, noisy_pair):
    def no_convergence(*args, **kwargs):
        raise RuntimeError("Optimal parameters not found: maxfev reached")

    monkeypatch.setattr(scipy.optimize, "curve_fit", no_convergence)
    x, mos = noisy_pair
    r = ev.correlations(x, mos)
    assert not r["fit_ok"] and "maxfev" in r["fit_message"]
    assert math.isnan(r["plcc_fitted"]) and math.isnan(r["rmse_fitted"])
    assert r["srocc"] > 0.5  # rank statistics do not depend on the fit
    with pytest.raises(ValueError, match="fit failed"):
        ev.fit_logistic(x, mos).predict(x)


def test_non_finite_fit_is_reported_with_its_direction(monkeypatch, noisy_pair):
    monkeypatch.setattr(scipy.optimize, "curve_fit", lambda *a, **k: (np.array([np.inf, 0.0, 0.0, 1.0]), None))
    x, mos = noisy_pair
    fit = ev.fit_logistic(-x, mos)
    assert not fit.ok and fit.message.startswith("non-finite parameters")
    assert fit.direction == -1 and all(math.isnan(b) for b in fit.params)
    with pytest.raises(dataclasses.FrozenInstanceError):  # a result cannot be edited into a success
        fit.ok = True


@pytest.mark.parametrize(
    "pred, mos, match",
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], "differ in length"),
        ([1.0, np.nan, 3.0], [1.0, 2.0, 3.0], "non-finite"),
        ([1.0, 2.0, 3.0], [1.0, np.inf, 3.0], "non-finite"),
        ([1.0, 2.0], [1.0, 2.0], "at least 3"),
        (np.ones((3, 2)), np.ones((3, 2)), "1-D"),
        (["a", "b", "c"], [1.0, 2.0, 3.0], "real numbers"),
    ],
)
def test_input_validation(pred, mos, match):
    for fn in (ev.srocc, ev.krocc, ev.plcc, ev.correlations, ev.fit_logistic):
        with pytest.raises(ValueError, match=match):
            fn(pred, mos)


def test_two_afc_hand_triplets():
    d0 = [1.0, 2.0, 3.0, 3.0]
    d1 = [2.0, 1.0, 3.0, 5.0]
    judge = [0.2, 0.7, 0.4, 1.0]
    # 0.8 (p0 closer, 80% chose p0) + 0.7 (p1 closer) + 0.5 (tie) + 0.0 (everyone chose p1)
    assert ev.two_afc_score(d0, d1, judge) == pytest.approx((0.8 + 0.7 + 0.5 + 0.0) / 4)
    assert ev.two_afc_score([0.1], [0.9], [0.0]) == 1.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ev.two_afc_score([1.0], [2.0], [1.5])
    with pytest.raises(ValueError, match="differ in length"):
        ev.two_afc_score([1.0, 2.0], [2.0], [0.5])


def test_per_type_matches_subsets(noisy_pair):
    x, mos = noisy_pair
    types = np.arange(x.size) % 3 + 1
    out = ev.per_type(x, mos, types, names={1: "blur", 2: "noise"})
    assert list(out) == ["blur", "noise", "3"]
    # Each type's entry is correlations() of its items, every key: the fitted PLCC and RMSE tell
    # predictions from MOS, where the rank and linear correlations are symmetric in the two.
    for name, t in (("blur", 1), ("noise", 2), ("3", 3)):
        want = ev.correlations(x[types == t], mos[types == t])
        assert out[name].keys() == want.keys()
        for key, value in want.items():
            assert out[name][key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key
    with pytest.raises(ValueError, match="type 9 has 2 items"):
        ev.per_type(x[:5], mos[:5], [1, 1, 1, 9, 9])
    with pytest.raises(ValueError, match="types must be 1-D with 120 labels"):
        ev.per_type(x, mos, types[:-1])


def test_mean_std_over_splits():
    splits = [
        {"srocc": 0.8, "fit_ok": True, "fit_message": "converged", "n": 10},
        {"srocc": 0.9, "fit_ok": False, "fit_message": "failed", "n": 12},
    ]
    out = ev.mean_std_over_splits(splits)
    assert out["srocc"] == pytest.approx(0.85) and out["srocc_std"] == pytest.approx(0.05)
    assert out["fit_ok"] == 0.5 and out["n"] == 11.0 and out["n_splits"] == 2
    assert "fit_message" not in out
    assert math.isnan(ev.mean_std_over_splits([{"srocc": 0.8}, {"srocc": math.nan}])["srocc"])
    with pytest.raises(ValueError, match="'srocc' is missing"):
        ev.mean_std_over_splits([{"srocc": 0.8}, {"plcc": 0.9}])
    with pytest.raises(ValueError, match="no splits"):
        ev.mean_std_over_splits([])


def test_markdown_table():
    rows = {
        "SSIM": {"srocc": 0.71234, "srocc_std": 0.01, "fit_ok": True, "n": 100},
        "a|b": {"srocc": math.nan},
    }
    table = report.markdown_table(rows, ["srocc", "fit_ok", "n"], digits=3)
    assert table == (
        "| method | srocc | fit_ok | n |\n"
        "|---|---|---|---|\n"
        "| SSIM | 0.712 ± 0.010 | yes | 100 |\n"
        "| a\\|b | nan | — | — |\n"
    )


def test_too_few_items_for_the_fit_reported():
    r = ev.correlations([1.0, 2.0, 3.0, 5.0], [0.1, 0.4, 0.3, 0.9])
    assert r["srocc"] == pytest.approx(0.8) and r["n"] == 4
    assert not r["fit_ok"] and "need 5" in r["fit_message"] and math.isnan(r["plcc_fitted"])
