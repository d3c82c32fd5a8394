"""evaluate_robustness on the two-level model (conftest.py) and six 32x32 pairs, its numbers
checked against scipy and hand-written formulas; one shared run (module fixture) keeps the
compilations to one per attack, and a second model reuses them all."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
import scipy.stats

from birqa_jax.adversarial import attacks
from birqa_jax.evaluation import robustness as robust_eval
from birqa_jax.evaluation import runner
from birqa_jax.model import apply_fn

EPS = (2 / 255, 8 / 255)
ATTACKS = ("pgd",)  # one compilation; it draws random starts and takes a settings override
N, BATCH = 6, 4  # two batches, the second padded: the compile-once check needs both


@pytest.fixture(scope="module")
def examples_uint8():
    from skimage import data

    img = data.astronaut()
    rng = np.random.default_rng(0)
    out = []
    for i in range(N):
        ref = img[60 * i : 60 * i + 32, 200 : 232]
        sigma = 0.02 + 0.03 * i
        dist = np.clip(ref + rng.normal(0, 255 * sigma, ref.shape), 0, 255).round().astype(np.uint8)
        out.append({"ref": ref[None], "dist": dist[None], "mos": np.array([1.0 - sigma], np.float32)})
    return out


@pytest.fixture(scope="module")
def examples(examples_uint8):
    """The same pairs as float32 in [0, 1]."""
    return [{**ex, "ref": ex["ref"] / np.float32(255), "dist": ex["dist"] / np.float32(255)}
            for ex in examples_uint8]


def _evaluate(params, config, examples):
    return robust_eval.evaluate_robustness(params, config, examples, attacks=ATTACKS, eps_list=EPS[::-1],
                                           batch_size=BATCH, attack_overrides={"pgd": {"steps": 3}})


@pytest.fixture(scope="module")
def run(examples_uint8, two_level_config, two_level_params):
    """The run on uint8 pairs, as ``evaluation.job.robustness_examples`` gives them (the attacks
    and the runner convert them on the device, bitwise as the float fixture ``examples``)."""
    before = attacks._attack._cache_size()
    result = _evaluate(two_level_params, two_level_config, examples_uint8)
    return result, attacks._attack._cache_size() - before


def test_result_layout(run):
    result, _ = run
    assert result["n"] == N and result["image_size"] == [32, 32] and result["batch_size"] == BATCH
    assert result["eps"] == list(EPS)  # sorted ascending
    assert set(result["attacks"]) == set(ATTACKS)
    assert result["attacks"]["pgd"]["settings"] == {"steps": 3}
    for entry in result["attacks"].values():
        for kind in robust_eval.KINDS:
            assert [s["eps"] for s in entry[kind]] == list(EPS)
            for s in entry[kind]:
                assert all(len(s[k]) == N for k in ("scores", "linf", "psnr", "ssim"))
    # mos above the mean (the three smallest sigmas) are pushed down
    assert result["n_pushed_down"] == 3


def test_each_attack_compiles_once(run):
    # eps and the direction are traced and the last batch is padded: one executable per attack
    # serves both batches, both budgets and both directions.
    _, compiled = run
    assert compiled == len(ATTACKS)


def test_a_second_model_compiles_nothing(run, examples_uint8, two_level_config, two_level_params):
    # The weights are traced arguments of the attacks and of the scoring: another model of the
    # same config reuses every program of the first run.
    result, _ = run
    other = jax.tree_util.tree_map(lambda p: p * 1.1, two_level_params)
    attack_programs = attacks._attack._cache_size()
    score_programs = runner.cache_size(apply_fn(two_level_config))
    second = _evaluate(other, two_level_config, examples_uint8)
    assert attacks._attack._cache_size() == attack_programs
    assert runner.cache_size(apply_fn(two_level_config)) == score_programs
    assert not np.allclose(second["clean_scores"], result["clean_scores"])


def test_numbers_match_independent_computation(run, examples, two_level_config, two_level_params):
    result, _ = run
    mos = np.array([ex["mos"][0] for ex in examples])
    clean = np.asarray(result["clean_scores"])
    assert result["clean"]["srocc"] == pytest.approx(scipy.stats.spearmanr(clean, mos).statistic)
    for name, entry in result["attacks"].items():
        for s in entry["scramble"]:
            scores = np.asarray(s["scores"])
            assert s["srocc"] == pytest.approx(scipy.stats.spearmanr(scores, mos).statistic)
            assert s["plcc"] == pytest.approx(scipy.stats.pearsonr(scores, mos).statistic)
        for s in entry["better"]:
            lo, hi = clean.min(), clean.max()
            f, fa = (clean - lo) / (hi - lo), (np.asarray(s["scores"]) - lo) / (hi - lo)
            assert s["gain"] == pytest.approx(np.mean(fa - f))
            assert s["R"] == pytest.approx(np.mean(np.log10(np.maximum(1 - f, f) / (np.abs(f - fa) + 1e-6))))
        curve = [result["clean"]["srocc"]] + [s["srocc"] for s in entry["scramble"]]
        e = [0.0, *EPS]
        area = sum((e[i + 1] - e[i]) * (curve[i] + curve[i + 1]) / 2 for i in range(len(EPS)))
        assert entry["srocc_integral"] == pytest.approx(area / EPS[-1])
        assert min(curve) - 1e-9 <= entry["srocc_integral"] <= max(curve) + 1e-9

    # Clean scores follow the examples' order through the padding (the runner scores them in
    # one batch of 8 rows over the 8 devices, 2 of them padded) and equal the model's own.
    fn = apply_fn(two_level_config)
    ref = np.concatenate([ex["ref"] for ex in examples])
    dist = np.concatenate([ex["dist"] for ex in examples])
    rows = [0, 1, 2, 3], [4, 5, 5, 5]
    want = np.concatenate([np.asarray(fn(two_level_params, ref[r], dist[r])) for r in rows])[:N]
    np.testing.assert_allclose(clean, want, rtol=1e-5, atol=1e-7)


def test_attacks_move_scores_as_directed_within_budget(run):
    result, _ = run
    clean = np.asarray(result["clean_scores"])
    mos = np.asarray(result["mos"])
    direction = np.where(mos > mos.mean(), -1.0, 1.0)
    for entry in result["attacks"].values():
        for s_scr, s_bet, eps in zip(entry["scramble"], entry["better"], EPS):
            for s in (s_scr, s_bet):
                assert max(s["linf"]) <= eps + 1e-6 and s["linf_max"] <= eps + 1e-6
                assert s["linf_mean"] > 0.5 * eps  # the attacks spend their budget
                assert math.isfinite(s["psnr_mean"]) and 0 < s["ssim_mean"] <= 1
            # Every image moves the way it is pushed: the ranking scrambles and the gain is positive.
            assert np.all(np.sign(np.asarray(s_scr["scores"]) - clean) == direction)
            assert s_scr["srocc"] <= result["clean"]["srocc"] + 1e-6
            assert np.all(np.asarray(s_bet["scores"]) > clean)
            assert s_bet["gain"] > 0 and math.isfinite(s_bet["R"])
        # A bigger budget scrambles at least as much.
        assert entry["scramble"][1]["srocc"] <= entry["scramble"][0]["srocc"] + 1e-6


def test_markdown_and_curves(run):
    result, _ = run
    md = robust_eval.robustness_markdown(result)
    lines = md.strip().splitlines()
    assert len(lines) == 2 + len(ATTACKS)
    assert "2/255" in lines[0] and "gain @8/255" in lines[0]
    pgd = result["attacks"]["pgd"]
    row = lines[2].split(" | ")
    assert row[0] == "| pgd" and row[1] == f"{result['clean']['srocc']:.3f}"
    assert row[2] == f"{pgd['scramble'][0]['srocc']:.3f}" and row[4] == f"{pgd['srocc_integral']:.3f}"
    assert row[5] == f"{pgd['better'][-1]['gain']:.3f}" and row[7] == f"{pgd['scramble'][-1]['linf_max'] * 255:.2f}"
    curves = robust_eval.srocc_curves(result)
    assert curves == {"pgd": {0.0: result["clean"]["srocc"], EPS[0]: pgd["scramble"][0]["srocc"],
                              EPS[1]: pgd["scramble"][1]["srocc"]}}


@pytest.mark.parametrize("kwargs, match", [
    (dict(attacks=("fgsm", "cw")), "unknown attack"),
    (dict(attacks=("fgsm",), eps_list=(8,)), r"\(0, 1\]"),
    (dict(attacks=("pgd",), attack_overrides={"pgd": {"iterations": 5}}), "takes no setting"),
    (dict(attacks=("fgsm",), attack_overrides={"pgd": {"steps": 5}}), "not run"),
])
def test_bad_options_raise(examples, two_level_config, two_level_params, kwargs, match):
    with pytest.raises(ValueError, match=match):
        robust_eval.evaluate_robustness(two_level_params, two_level_config, examples, **kwargs)


def test_bad_examples_raise(examples, two_level_config, two_level_params):
    mixed = examples[:2] + [{**examples[2], "dist": examples[2]["dist"][:, :16]}]
    with pytest.raises(ValueError, match="differ"):
        robust_eval.evaluate_robustness(two_level_params, two_level_config, mixed, attacks=("fgsm",))
    loud = examples[:2] + [{**examples[2], "dist": examples[2]["dist"] * 255}]
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        robust_eval.evaluate_robustness(two_level_params, two_level_config, loud, attacks=("fgsm",))
    with pytest.raises(ValueError, match="at least 3"):
        robust_eval.evaluate_robustness(two_level_params, two_level_config, examples[:2], attacks=("fgsm",))


# ----------------------------------------------------------------------------- the study's driver


def test_pair_keys_depend_on_attack_eps_restart_and_pair_only():
    a = robust_eval.pair_keys(2, 4, 0, np.array([5, 9]))
    assert a.shape == (2, 2) and a.dtype == np.uint32
    np.testing.assert_array_equal(a, robust_eval.pair_keys(2, 4, 0, np.array([9, 5]))[::-1])  # per pair, any order
    for other in ((3, 4, 0), (2, 8, 0), (2, 4, 1)):
        assert not np.array_equal(a, robust_eval.pair_keys(*other, np.array([5, 9])))


def test_attack_pairs_is_the_same_attack_in_any_batching(examples_uint8, two_level_config, two_level_params):
    """PGD's random start comes from each pair's own key, so the driver gives every pair the
    same attacked image however the pairs are batched; its scores are the model's scores of
    those images, and the perturbations stay within the budget."""
    ref = np.concatenate([ex["ref"] for ex in examples_uint8[:3]])
    dist = np.concatenate([ex["dist"] for ex in examples_uint8[:3]])
    direction = np.array([1.0, -1.0, 1.0], np.float32)
    keys = robust_eval.pair_keys(ATTACKS.index("pgd"), 8, 0, np.arange(3))
    model = runner.WithParams(apply_fn(two_level_config), two_level_params)

    def run(batch):
        return robust_eval.attack_pairs("pgd", model, ref, dist, direction, keys, eps=8 / 255, batch_size=batch,
                                        settings={"steps": 2})

    whole, split = run(3), run(2)
    np.testing.assert_array_equal(whole["adv"], split["adv"])
    np.testing.assert_allclose(whole["scores"], split["scores"], rtol=1e-6)
    want = apply_fn(two_level_config)(two_level_params, jax.numpy.asarray(ref / np.float32(255)), whole["adv"])
    np.testing.assert_allclose(whole["scores"], np.asarray(want), rtol=1e-5, atol=1e-6)
    assert whole["linf"].max() <= 8 / 255 + 1e-6 and np.all(whole["linf"] > 0)
    with pytest.raises(ValueError, match="one length"):
        robust_eval.attack_pairs("pgd", model, ref, dist, direction[:2], keys, eps=8 / 255, batch_size=2)
