"""experiments/robustness_study.py: its statistics on numbers with known answers, the
leave-photographs-out split, and a tiny end-to-end run that resumes without redoing work."""

import dataclasses
import json
import os
import warnings

import numpy as np
import pytest
import scipy.stats

from birqa_jax.data import held_out_split, reference_crops, source_ids, split_indices
from birqa_jax.data.synthetic import SOURCES, UNSEEN_BY_DEFAULT
from birqa_jax.evaluation import paired
from experiments import robustness_study as study

# ----------------------------------------------------------------------------- statistics


def test_srocc_rows_equals_scipy_with_ties():
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 5, (4, 30)).astype(float)  # many ties
    mos = rng.integers(0, 7, (4, 30)).astype(float)
    got = paired.srocc_rows(pred, mos)
    want = [scipy.stats.spearmanr(p, m).statistic for p, m in zip(pred, mos)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isnan(paired.srocc_rows(np.ones((1, 5)), mos[:1, :5]))[0]


def test_bootstrap_draws_every_image_with_replacement_and_constant_rows_are_silent():
    idx = paired.bootstrap_indices(7, 400, seed=0)
    assert idx.shape == (400, 7) and set(np.unique(idx)) == set(range(7))
    assert any(len(set(row)) < 7 for row in idx)  # with replacement: replicates repeat images
    counts = np.bincount(idx.ravel(), minlength=7) / idx.size  # uniform over the images
    np.testing.assert_allclose(counts, 1 / 7, atol=0.02)
    with warnings.catch_warnings():  # a replicate that draws one image n times is NaN, no warning
        warnings.simplefilter("error")
        assert np.isnan(paired.srocc_rows(np.ones((1, 5)), np.arange(5.0)[None]))[0]


def _metric(scores, mos, idx):
    return paired.paired_srocc(scores, mos, idx)


def test_paired_bootstrap_known_answers():
    rng = np.random.default_rng(1)
    n, seeds = 60, 3
    mos = [rng.random(n) for _ in range(seeds)]
    idx = [paired.bootstrap_indices(n, 500, seed=s) for s in range(seeds)]
    good = [m + rng.normal(0, 0.05, n) for m in mos]  # SROCC near 1
    noise = [rng.random(n) for _ in range(seeds)]  # SROCC near 0
    a, b = _metric(good, mos, idx), _metric(noise, mos, idx)
    assert a.value > 0.9 and abs(b.value) < 0.3
    assert a.per_seed == pytest.approx([scipy.stats.spearmanr(g, m).statistic for g, m in zip(good, mos)])
    lo, hi = a.ci()
    assert lo < a.value < hi and hi - lo < 0.1
    assert paired.compare(a, b)["verdict"] == "better"
    assert paired.compare(b, a)["verdict"] == "worse"
    # Paired: the same arm, or a monotone transform of it (same ranks), differs by exactly 0 in
    # every replicate; unpaired resampling could not give a zero-width interval.
    same = paired.compare(a, _metric([np.exp(3 * g) for g in good], mos, idx))
    assert same["delta"] == 0 and same["lo"] == 0 and same["hi"] == 0 and same["verdict"] == "non-inferior"
    assert same["seed_deltas"] == [0.0, 0.0, 0.0] and same["seeds_positive"] == 0
    # Two arms both near 0 on 60 images: the interval is wider than the margin either way.
    other = _metric([rng.random(n) for _ in range(seeds)], mos, idx)
    assert paired.compare(b, other)["verdict"] == "inconclusive"


def test_verdict_rule():
    assert study.NON_INFERIORITY_MARGIN == paired.NON_INFERIORITY_MARGIN == 0.02  # pre-registered
    assert paired.verdict(0.01, 0.2) == "better"
    assert paired.verdict(-0.015, 0.1) == "non-inferior"  # the loss B - A is below 0.02 at its upper bound
    assert paired.verdict(-0.015, -0.01) == "non-inferior"  # within the margin, though worse
    assert paired.verdict(-0.2, -0.01) == "worse"
    assert paired.verdict(-0.03, 0.1) == "inconclusive"
    assert paired.verdict(-0.02, 0.1) == "inconclusive"  # the bound must be strictly inside the margin


def test_area_weights_and_combined_metrics():
    w = paired.trapezoid_weights([0, 2, 4, 8])
    np.testing.assert_allclose(w, [1 / 8, 2 / 8, 3 / 8, 2 / 8])
    y = np.array([0.9, 0.7, 0.5, 0.1])
    assert w @ y == pytest.approx(np.trapezoid(y, [0, 2, 4, 8]) / 8)
    m1 = paired.PairedEstimate(0.8, np.array([0.7, 0.9]), [0.8, 0.8])
    m2 = paired.PairedEstimate(0.4, np.array([0.3, 0.5]), [0.2, 0.6])
    c = paired.combine([m1, m2], [0.5, 0.5])
    assert c.value == pytest.approx(0.6) and c.per_seed == pytest.approx([0.5, 0.7])
    np.testing.assert_allclose(c.replicates, [0.5, 0.7])


def test_worst_case_and_masking_check_by_hand():
    clean = np.array([0.5, 0.5, 0.5])
    direction = np.array([-1.0, 1.0, -1.0])  # push down, up, down
    attacked = {"fgsm": np.array([0.4, 0.6, 0.6]), "apgd": np.array([0.3, 0.55, 0.7])}
    worst, won = paired.worst_case(clean, attacked, direction)
    np.testing.assert_allclose(worst, [0.3, 0.6, 0.5])  # item 2: no attack moved it down
    assert won == ["apgd", "fgsm", "clean"]
    m = paired.masking_check(clean, worst, np.array([0.45, 0.5, 0.4]), direction, scale=0.1)
    assert m["whitebox_damage"] == pytest.approx((2 + 1 + 0) / 3)
    assert m["square_damage"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert m["square_beats_whitebox"] == pytest.approx(1 / 3) and not m["flag"]


def test_comparison_pairs():
    pairs = study.comparison_pairs(["clean", "plain_at", "aat", "aat_sg"])
    assert pairs == [("plain_at", "clean"), ("aat", "clean"), ("aat_sg", "clean"), ("aat", "plain_at"),
                     ("aat_sg", "plain_at"), ("aat_sg", "aat")]
    assert study.comparison_pairs(["packaged", "aat"]) == [("aat", "packaged")]


def test_new_arms_comparisons_and_the_decision_rule():
    arms = ["packaged", "plain_at", "aat_full", "aat_full_nocons", "aat_full_long"]
    pairs = study.comparison_pairs(arms)
    for pair in (("aat_full", "plain_at"), ("aat_full_nocons", "plain_at"), ("aat_full_nocons", "aat_full"),
                 ("aat_full_long", "aat_full"), ("plain_at", "packaged")):
        assert pair in pairs, pair
    preset = study.PRESETS["cpu"]

    def comparisons(worst_lo, clean_lo):
        return [{"a": "aat_full", "b": "plain_at", "metric": "worst@4", "lo": worst_lo},
                {"a": "aat_full", "b": "plain_at", "metric": "clean", "lo": clean_lo}]

    assert study.decide(comparisons(0.001, -0.5), preset) == "AAT better"
    assert study.decide(comparisons(-0.019, -0.019), preset) == "AAT at least as good"
    assert study.decide(comparisons(-0.019, -0.021), preset) == "plain AT stays"
    assert study.decide(comparisons(-0.021, 0.1), preset) == "plain AT stays"
    assert study.decide([], preset) is None
    assert study.decide(comparisons(0.001, -0.5), preset, "aat_full_v2") is None  # only aat_full's rows given
    # The arms differ from plain AT only where their description says.
    assert study.ARMS["aat_full_nocons"].overrides == {**study.ARMS["aat_full"].overrides,
                                                       "loss.scaled_consistency": 0.0}
    assert {k: v for k, v in study.ARMS["aat_full"].overrides.items() if k in study.ARMS["plain_at"].overrides} == \
        study.ARMS["plain_at"].overrides
    assert study.ARMS["aat_full_long"].overrides["num_steps"] == study.LONG_STEPS


def test_the_equal_length_rule_compares_long_aat_with_long_plain_at():
    pairs = study.comparison_pairs(["plain_at", "aat_full_v2", "plain_at_long", "aat_full_v2_long"])
    for pair in (("aat_full_v2_long", "plain_at_long"), ("plain_at_long", "plain_at"),
                 ("aat_full_v2_long", "aat_full_v2"), ("aat_full_v2", "plain_at")):
        assert pair in pairs, pair
    assert ("plain_at_long", "aat_full_v2_long") not in pairs
    preset = study.PRESETS["cpu"]
    rows = [{"a": "aat_full_v2_long", "b": "plain_at_long", "metric": "worst@4", "lo": 0.002},
            {"a": "aat_full_v2_long", "b": "plain_at_long", "metric": "clean", "lo": -0.5},
            {"a": "aat_full_v2_long", "b": "plain_at", "metric": "worst@4", "lo": -0.5},
            {"a": "aat_full_v2_long", "b": "plain_at", "metric": "clean", "lo": -0.5}]
    assert study.decide(rows, preset, "aat_full_v2_long", "plain_at_long") == "AAT better"
    assert study.decide(rows, preset, "aat_full_v2_long") == "plain AT stays"  # against plain_at: another row
    assert study.ARMS["plain_at_long"].overrides == {**study.ARMS["plain_at"].overrides, "num_steps": study.LONG_STEPS}


def test_the_second_length_level_compares_at_equal_length_and_against_the_shipped_model():
    arms = ["plain_at_long", "aat_full_v2_long", "plain_at_xlong", "aat_full_v2_xlong"]
    pairs = study.comparison_pairs(arms)
    for pair in (("aat_full_v2_xlong", "plain_at_xlong"), ("aat_full_v2_xlong", "aat_full_v2_long"),
                 ("plain_at_xlong", "plain_at_long"), ("plain_at_xlong", "aat_full_v2_long")):
        assert pair in pairs, pair
    assert len(pairs) == len(set(pairs))
    assert ("aat_full_v2_xlong", "plain_at_long") not in pairs
    preset = study.PRESETS["cpu"]

    def rows(method_lo, length_lo, length_clean_lo, winner="aat_full_v2_xlong"):
        return [{"a": "aat_full_v2_xlong", "b": "plain_at_xlong", "metric": "worst@4", "lo": method_lo},
                {"a": "aat_full_v2_xlong", "b": "plain_at_xlong", "metric": "clean", "lo": -0.5},
                {"a": winner, "b": "aat_full_v2_long", "metric": "worst@4", "lo": length_lo},
                {"a": winner, "b": "aat_full_v2_long", "metric": "clean", "lo": length_clean_lo}]

    assert study.decide_xlength(rows(0.001, 0.001, -0.019), preset) == (
        "AAT better at 800 steps; `aat_full_v2_xlong` replaces `aat_full_v2_long` if its seed-0 model passes "
        "the clean admission check")
    assert study.decide_xlength(rows(0.001, 0.0, -0.019), preset).endswith("`aat_full_v2_long` stays shipped")
    assert study.decide_xlength(rows(0.001, 0.001, -0.021), preset).endswith("`aat_full_v2_long` stays shipped")
    # Plain AT wins the method test: its own 800-step run is the one measured against the shipped model.
    got = study.decide_xlength(rows(-0.5, 0.001, 0.0, winner="plain_at_xlong"), preset)
    assert got.startswith("plain AT stays at 800 steps; `plain_at_xlong` replaces"), got
    assert study.decide_xlength(rows(-0.5, 0.001, 0.0), preset) is None  # the winner's rows are missing
    assert study.decide_xlength([], preset) is None
    assert study.ARMS["aat_full_v2_xlong"].overrides == {**study.ARMS["aat_full_v2_long"].overrides,
                                                         "num_steps": study.XLONG_STEPS}
    assert study.ARMS["plain_at_xlong"].overrides == {**study.ARMS["plain_at"].overrides,
                                                      "num_steps": study.XLONG_STEPS}


def test_the_training_attack_arm_is_the_shipped_recipe_with_pgd7_and_must_beat_it_to_replace_it():
    arm, shipped = study.STRONG_ATTACK_ARM, study.SHIPPED_LONG
    assert (arm, shipped) in study.comparison_pairs([shipped, arm])
    assert (arm, shipped) not in study.comparison_pairs([arm])
    assert study.ARMS[arm].overrides == {**study.ARMS[shipped].overrides, "aat.settings.steps": 7,
                                         "aat.settings.step_size": 1 / 255}
    preset = study.PRESETS["cpu"]

    def rows(worst_lo, clean_lo):
        return [{"a": arm, "b": shipped, "metric": "worst@4", "lo": worst_lo},
                {"a": arm, "b": shipped, "metric": "clean", "lo": clean_lo}]

    assert study.decide_replacement(rows(0.001, -0.019), preset, arm) == (
        f"`{arm}` replaces `{shipped}` if its seed-0 model passes the clean admission check")
    for worst_lo, clean_lo in ((0.0, 0.0), (0.001, -0.021)):
        assert study.decide_replacement(rows(worst_lo, clean_lo), preset, arm) == f"`{shipped}` stays shipped"
    assert study.decide_replacement([], preset, arm) is None
    from configs.aat_study import PACKAGED_WEIGHTS

    config = study.arm_config(arm, 0, preset, PACKAGED_WEIGHTS, "data_cache")
    assert (config.aat.settings.steps, config.aat.settings.step_size, config.num_steps) == (7, 1 / 255, 400)


def test_factor_rule_ships_the_qualifying_arm_with_the_larger_lead():
    shipped, (eps, cons) = study.SHIPPED_LONG, study.FACTOR_ARMS
    pairs = study.comparison_pairs([shipped, eps, cons])
    assert {(eps, shipped), (cons, shipped)} <= set(pairs) and len(pairs) == len(set(pairs))
    base = study.ARMS[shipped].overrides
    assert study.ARMS[eps].overrides == {**base, "aat.eps": 6 / 255, "aat.settings.step_size": 3 / 255}
    assert study.ARMS[cons].overrides == {**base, "loss.scaled_consistency": 4.0}
    preset = study.PRESETS["cpu"]

    def rows(arm, delta, worst_lo, clean_lo=-0.01):
        return [{"a": arm, "b": shipped, "metric": "worst@4", "delta": delta, "lo": worst_lo},
                {"a": arm, "b": shipped, "metric": "clean", "delta": 0.0, "lo": clean_lo}]

    def replaces(arm):
        return f"`{arm}` replaces `{shipped}` if its seed-0 model passes the clean admission check"

    stays = f"`{shipped}` stays shipped"
    assert study.decide_factors(rows(eps, 0.03, 0.01) + rows(cons, 0.02, 0.005), preset) == replaces(eps)
    assert study.decide_factors(rows(eps, 0.02, 0.01) + rows(cons, 0.03, 0.005), preset) == replaces(cons)
    # The larger lead does not win without qualifying: its CI touches zero, or its clean SROCC is inferior.
    assert study.decide_factors(rows(eps, 0.05, 0.0) + rows(cons, 0.02, 0.005), preset) == replaces(cons)
    assert study.decide_factors(rows(eps, 0.05, 0.01, -0.021) + rows(cons, 0.02, 0.005), preset) == replaces(cons)
    assert study.decide_factors(rows(eps, 0.05, 0.0) + rows(cons, 0.02, -0.001, 0.0), preset) == stays
    assert study.decide_factors(rows(eps, 0.03, 0.01), preset) is None  # one arm's comparison missing
    from configs.aat_study import PACKAGED_WEIGHTS

    config = study.arm_config(eps, 0, preset, PACKAGED_WEIGHTS, "data_cache")
    assert (config.aat.eps, config.aat.settings.step_size, config.aat.settings.steps) == (6 / 255, 3 / 255, 3)
    assert config.loss.scaled_consistency == 1.0 and config.num_steps == study.LONG_STEPS
    config = study.arm_config(cons, 0, preset, PACKAGED_WEIGHTS, "data_cache")
    assert (config.aat.eps, config.loss.scaled_consistency, config.num_steps) == (4 / 255, 4.0, study.LONG_STEPS)


def test_clean_rule_arm_is_the_heavier_consistency_with_a_heavier_clean_term():
    arm, shipped, cons = study.CLEAN_ARM, study.SHIPPED_LONG, study.CONS_ARM
    pairs = study.comparison_pairs([shipped, cons, arm])
    assert {(arm, shipped), (arm, cons)} <= set(pairs) and len(pairs) == len(set(pairs))
    assert (arm, cons) not in study.comparison_pairs([shipped, arm])
    assert study.ARMS[arm].overrides == {**study.ARMS[cons].overrides, "loss.clean": 2.0}
    from configs.aat_study import PACKAGED_WEIGHTS

    config = study.arm_config(arm, 0, study.PRESETS["cpu"], PACKAGED_WEIGHTS, "data_cache")
    assert (config.loss.clean, config.loss.scaled_consistency, config.num_steps) == (2.0, 4.0, study.LONG_STEPS)


def test_data_rule_arm_is_the_shipped_recipe_on_more_crops_of_the_training_photographs():
    arm, shipped = study.DATA_ARM, study.SHIPPED_LONG
    pairs = study.comparison_pairs([shipped, arm])
    assert (arm, shipped) in pairs and len(pairs) == len(set(pairs))
    from birqa_jax.data.synthetic import UNSEEN_BY_DEFAULT, reference_crops
    from configs.aat_study import PACKAGED_WEIGHTS

    config = study.arm_config(arm, 0, study.PRESETS["cpu"], PACKAGED_WEIGHTS, "data_cache")
    base = study.arm_config(shipped, 0, study.PRESETS["cpu"], PACKAGED_WEIGHTS, "data_cache")
    data, base_data = config.data.to_dict(), base.data.to_dict()
    assert data.pop("synthetic") != base_data.pop("synthetic") and data == base_data
    # Only the data set differs; it keeps the packaged one's crops (a prefix) and adds training crops only.
    assert config.to_dict() | {"data": None} == base.to_dict() | {"data": None}
    size = tuple(config.data.synthetic.crop_size)
    crops, packaged = reference_crops(study.DATA_REFS, size), reference_crops(base.data.synthetic.num_refs, size)
    assert crops[: len(packaged)] == packaged and len(crops) > len(packaged)
    assert not {c.source for c in crops[len(packaged):]} & set(UNSEEN_BY_DEFAULT)
    assert set(UNSEEN_BY_DEFAULT) == set(config.data.test_photos)


def test_study_data_loads_each_data_block_once_and_refuses_one_that_changes_the_test_pairs(make_tiny_run_config):
    from configs import override
    from configs.aat_study import PACKAGED_WEIGHTS

    preset = dataclasses.replace(study.PRESETS["tiny"], pairs=9, blocks=1)
    data_dir = make_tiny_run_config().data.data_dir  # the session's tiny kadid_synthetic

    def config(**overrides):
        return override(study.arm_config("plain_at", 0, preset, PACKAGED_WEIGHTS, data_dir), overrides)

    data = study.StudyData(config(), preset)
    assert data.training(config()) is data.training(config())
    # Another training crop is another data block, read from the same build: the same test pairs.
    other = data.training(config(**{"data.crop_size": (24, 24)}))
    assert other is not data.training(config()) and np.array_equal(other[1]["test"], data.training(config())[1]["test"])
    # An eighth crop is astronaut's second, a test photograph: the test pairs would change.
    with pytest.raises(ValueError, match="never change the test pairs"):
        data.training(config(**{"data.synthetic.name": "test_tiny8", "data.synthetic.num_refs": 8}))
    moved = dataclasses.replace(data.test, ref=data.test.ref.copy())
    moved.ref[0, 0, 0, 0] ^= 1
    with pytest.raises(ValueError, match="other test pairs"):
        study.check_same_pairs(moved, data.test, "a one-bit change")
    study.check_same_pairs(dataclasses.replace(data.test), data.test, "a copy")


def test_the_consistency_ablation_at_the_shipped_length_reads_the_ci_of_shipped_minus_ablated():
    arm, shipped = study.NOCONS_LONG, study.SHIPPED_LONG
    pairs = study.comparison_pairs(["plain_at_long", shipped, arm])
    assert {(arm, shipped), (arm, "plain_at_long")} <= set(pairs) and len(pairs) == len(set(pairs))
    assert study.ARMS[arm].overrides == {**study.ARMS["aat_full_nocons"].overrides, "num_steps": study.LONG_STEPS}
    preset = study.PRESETS["cpu"]

    def rows(lo, hi):  # (ablated - shipped): below zero when the term helps
        return [{"a": arm, "b": shipped, "metric": "worst@4", "lo": lo, "hi": hi},
                {"a": arm, "b": shipped, "metric": "clean", "lo": -0.5, "hi": 0.5}]

    assert study.decide_ablation(rows(-0.03, -0.001), preset) == "the consistency term helps"
    assert study.decide_ablation(rows(0.001, 0.03), preset) == "the consistency term hurts"
    assert study.decide_ablation(rows(-0.03, 0.0), preset) == "no measurable contribution"
    assert study.decide_ablation(rows(0.0, 0.03), preset) == "no measurable contribution"
    assert study.decide_ablation([], preset) is None


def test_same_config_accepts_fields_added_later_at_their_default():
    defaults = {"loss": {"plcc": 1.0, "new": True}, "seed": 0}
    recorded = {"loss": {"plcc": 1.0}, "seed": 3}
    assert study.same_config(recorded, {"loss": {"plcc": 1.0, "new": True}, "seed": 3}, defaults)
    assert not study.same_config(recorded, {"loss": {"plcc": 1.0, "new": False}, "seed": 3}, defaults)
    assert not study.same_config(recorded, {"loss": {"plcc": 0.5, "new": True}, "seed": 3}, defaults)
    assert not study.same_config({**recorded, "gone": 1}, {"loss": {"plcc": 1.0, "new": True}, "seed": 3}, defaults)


def test_scale_diagnostics_by_hand():
    mos = np.array([0.0, 0.5, 1.0, 0.25])
    clean = 0.5 * mos + 0.2  # slope 0.5
    direction = np.array([1.0, -1.0, -1.0, 1.0])
    worst = clean + direction * np.array([0.1, 0.2, 0.0, 0.1])
    d = paired.scale_diagnostics(clean, worst, mos, direction)
    assert d["slope"] == pytest.approx(0.5)
    assert d["damage"] == pytest.approx(0.1) and d["damage_mos"] == pytest.approx(0.2)
    # Shrinking the scale by 4 shrinks the raw damage, not the damage in MOS units.
    s = paired.scale_diagnostics(clean / 4, worst / 4, mos, direction)
    assert s["damage"] == pytest.approx(0.025) and s["damage_mos"] == pytest.approx(0.2)


# ----------------------------------------------------------------------------- the split


def test_held_out_split():
    groups = np.repeat(np.arange(5), 3)
    s = held_out_split(groups, test_groups=[1, 3], val_groups=[4])
    assert set(groups[s["test"]]) == {1, 3} and set(groups[s["val"]]) == {4} and set(groups[s["train"]]) == {0, 2}
    np.testing.assert_array_equal(np.sort(np.concatenate(list(s.values()))), np.arange(15))
    assert list(held_out_split(groups, [0]).keys()) == ["train", "test"]
    for kwargs, message in ((dict(test_groups=[]), "at least one"), (dict(test_groups=[7]), "no examples"),
                            (dict(test_groups=[1], val_groups=[1]), "more than once"),
                            (dict(test_groups=[0, 1, 2], val_groups=[3, 4]), "no group to train")):
        with pytest.raises(ValueError, match=message):
            held_out_split(groups, **kwargs)
    with pytest.raises(ValueError, match="unknown photograph"):
        source_ids(["camera"])


def test_study_split_leaves_unseen_photographs_out():
    from configs import aat_study

    config = aat_study.get_config()
    assert tuple(config.data.test_photos) == UNSEEN_BY_DEFAULT and config.data.split == "photos"
    crops = reference_crops(40, (192, 256))  # the default kadid_synthetic build
    groups = np.repeat([c.source_id for c in crops], 125)
    study_split = held_out_split(groups, source_ids(config.data.test_photos), source_ids(config.data.val_photos))
    test_photos = {SOURCES[g] for g in groups[study_split["test"]]}
    assert len(test_photos) >= 2 and len(study_split["test"]) == 2000
    for part in ("train", "val"):
        if part in study_split:
            assert not test_photos & {SOURCES[g] for g in groups[study_split[part]]}
    # The training photographs are exactly those of the packaged weights (default split 0), so
    # no model in the study, clean or fine-tuned, ever trained on a test photograph.
    default = split_indices(groups, 0, (0.6, 0.2, 0.2))
    assert {SOURCES[g] for g in groups[default["train"]]} == {SOURCES[g] for g in groups[study_split["train"]]}
    assert not test_photos & {SOURCES[g] for g in groups[default["train"]]}


def test_select_pairs_spreads_over_photographs_and_blocks():
    groups = np.repeat([0, 1, 2, 3], 10)
    test = np.flatnonzero(groups >= 1)
    index, block = study.select_pairs(groups, test, 12, blocks=3)
    assert len(set(index.tolist())) == 12 and set(groups[index]) == {1, 2, 3}
    for b in range(3):  # every block holds every photograph, and the blocks are equal
        assert set(groups[index[block == b]]) == {1, 2, 3} and (block == b).sum() == 4
    with pytest.raises(ValueError, match="at least 2"):
        study.select_pairs(groups, np.flatnonzero(groups == 1), 4, 1)


def test_confirmation_preset_draws_fresh_pairs_and_seeds():
    """cpu_confirm replicates the cpu preset on test pairs none of which the cpu preset used,
    and on training seeds it never ran."""
    groups = np.repeat(np.arange(7), 300)
    test = np.flatnonzero(groups >= 4)
    confirm, cpu = study.PRESETS["cpu_confirm"], study.PRESETS["cpu"]
    fresh, block = study.preset_pairs(groups, test, confirm)
    used, _ = study.preset_pairs(groups, test, cpu)
    assert len(fresh) == confirm.pairs and not set(fresh.tolist()) & set(used.tolist())
    assert set(groups[fresh]) == {4, 5, 6} and np.bincount(block).tolist() == [60] * 4
    assert confirm.first_seed >= cpu.first_seed + cpu.seeds
    with pytest.raises(ValueError, match="asked for 240"):  # too few pairs left once the cpu preset's are out
        study.preset_pairs(groups, test[:450], confirm)


# ----------------------------------------------------------------------------- end to end


def test_tiny_study_writes_reports_and_resumes(tmp_path, make_tiny_run_config, one_device_mesh, two_level_config,
                                               two_level_params):
    """1 seed, 2 arms (the starting model as it is, and AAT for 2 steps), 2 eps, FGSM, Square (3
    queries) on 3 pairs, 48x64 images, the two-level model (conftest.py); the second call finds
    everything cached. (Each attack compiles once for both models: the parameters are traced.)"""
    from birqa_jax.model import save_model

    init = str(tmp_path / "tiny.msgpack")
    save_model(init, two_level_params, two_level_config)
    data_dir = make_tiny_run_config().data.data_dir  # the session's tiny kadid_synthetic
    preset = dataclasses.replace(study.PRESETS["tiny"], arms=("packaged", "aat"), seeds=1, blocks=1, steps=2,
                                 pairs=9, eps=(2, 4), attacks={"fgsm": {}}, apgd_restarts=0,
                                 square_queries=3, square_pairs=3, bootstrap=50)
    out = str(tmp_path / "study")
    first = study.run_study("test", preset, out, data_dir, init)
    # FGSM at 2 eps on both models; Square on the fine-tuned one only (it checks defended arms).
    assert first["work"] == {"finetuned": 1, "evaluated": 2 * 2 + 1}
    for name in ("results.json", "results.md", "srocc_vs_eps_worst.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    result = json.load(open(os.path.join(out, "results.json")))
    assert set(result["metrics"]) == {"packaged", "aat"}
    assert {"clean", "worst@2", "worst@4", "fgsm@4", "worst_auc"} <= set(result["metrics"]["aat"])
    assert len(set(result["test_pairs"]["photo"])) >= 2 and result["test_pairs"]["size"] == [48, 64]
    assert {c["verdict"] for c in result["comparisons"]} <= {"better", "non-inferior", "worse", "inconclusive"}
    assert "strict_coverage" in result["train_diagnostics"]["aat"]
    md = open(os.path.join(out, "results.md")).read()
    assert "| aat | packaged | worst@4 |" in md and "Gradient-masking check" in md

    # --plan counts only what is left: here nothing (every run and evaluation is cached).
    done = study._done_work(preset, out, init, data_dir)
    assert done["trained"] == {("aat", 0)}
    entries = {(a, e.name) for a in preset.arms for e in study.plan_entries(preset, 0, study.ARMS[a].finetune)}
    assert {(a, name) for a, _, name in done["evaluated"]} == entries | {("packaged", "clean"), ("aat", "clean")}
    longer = study._done_work(dataclasses.replace(preset, steps=3), out, init, data_dir)
    assert longer["trained"] == set() and {a for a, _, _ in longer["evaluated"]} == {"packaged"}

    again = study.run_study("test", preset, out, data_dir, init)
    assert again["work"] == {"finetuned": 0, "evaluated": 0}
    assert again["metrics"] == json.loads(json.dumps(result["metrics"]))
    # A changed arm config is refused rather than silently mixed with the old run.
    with pytest.raises(ValueError, match="another config"):
        study.run_study("test", dataclasses.replace(preset, steps=3), out, data_dir, init)


def test_clean_base_settings_parse_and_refuse_malformed_text():
    from experiments import clean_base

    assert clean_base.parse_setting("900:96x128") == {"steps": 900, "crop": (96, 128), "widths": None}
    assert clean_base.parse_setting("10:8x8:4-6-8-12")["widths"] == (4, 6, 8, 12)
    for bad in ("900", "900:96", "x:96x96", "0:96x96", "900:96x96:4-a", "1:2x2:3:4"):
        with pytest.raises(ValueError, match="setting"):
            clean_base.parse_setting(bad)
    log = [{"loss_plcc": 0.5}] * 18 + [{"loss_plcc": 0.1}, {"loss_plcc": 0.3}]
    assert clean_base.train_fit(log) == pytest.approx(0.8)  # the last 10%: two entries
    config = clean_base.setting_config(clean_base.parse_setting("7:32x48:4-6-8-12"), seed=3)
    assert (config.num_steps, tuple(config.data.crop_size), tuple(config.model.widths), config.seed) == (
        7, (32, 48), (4, 6, 8, 12), 3)
    assert config.data.split == "photos" and "chelsea" in config.data.test_photos and not config.aat.enabled
    setting = clean_base.parse_setting("900:96x96")
    assert clean_base.setting_key(setting, 1) == "900:96x96:seed1"  # the keys of runs before --refs existed
    assert clean_base.setting_key(setting, 0, 52) == "900:96x96:refs52:seed0"
    packaged = clean_base.setting_config(setting).data.synthetic
    more = clean_base.setting_config(setting, refs=52).data.synthetic
    assert (packaged.name, packaged.num_refs, more.name, more.num_refs) == ("default", 40, "refs52", 52)


def test_clean_srocc_scores_every_pair_once_in_padded_batches():
    from birqa_jax.evaluation.stats import srocc
    from birqa_jax.inputs import as_float
    from birqa_jax.model import apply_fn
    from configs.aat_study import PACKAGED_WEIGHTS

    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (5, 48, 64, 3), dtype=np.uint8)
    dist = np.clip(ref.astype(int) + rng.integers(-60, 61, ref.shape) * (np.arange(5) / 4)[:, None, None, None],
                   0, 255).astype(np.uint8)
    zeros = np.zeros(5, int)
    test = study.StudyPairs(ref=ref, dist=dist, mos=rng.random(5), index=np.arange(5), photo=zeros,
                            dist_type=zeros, block=zeros)
    params, config, _ = study.load_model(PACKAGED_WEIGHTS)
    whole = np.asarray(apply_fn(config)(params, as_float(ref), as_float(dist)))
    # 5 pairs in batches of 2: the last batch is padded and its extra row dropped.
    assert study.clean_srocc(params, config, test, 2) == pytest.approx(srocc(whole, test.mos), abs=1e-12)
    assert study.clean_srocc(params, config, test, 64) == pytest.approx(srocc(whole, test.mos), abs=1e-12)
