import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from birqa_jax import parallel
from birqa_jax.train import losses


def test_plcc_loss_matches_scipy():
    rng = np.random.default_rng(0)
    p, m = rng.random(16).astype(np.float32), rng.random(16).astype(np.float32)
    expected = 1 - stats.pearsonr(p, m)[0]
    assert abs(float(losses.plcc_loss(jnp.asarray(p), jnp.asarray(m))) - expected) < 1e-5
    assert abs(float(losses.plcc_loss(jnp.asarray(m * 3 + 1), jnp.asarray(m)))) < 1e-5


def test_plcc_loss_constant_batch_is_safe():
    p, m = jnp.ones(8), jnp.linspace(0, 1, 8)
    val, grad = jax.value_and_grad(losses.plcc_loss)(p, m)
    assert abs(float(val) - 1.0) < 1e-6 and bool(jnp.all(jnp.isfinite(grad)))


def test_plcc_loss_mask_equals_subset():
    rng = np.random.default_rng(1)
    p, m = jnp.asarray(rng.random(10)), jnp.asarray(rng.random(10))
    mask = jnp.arange(10) < 6
    np.testing.assert_allclose(losses.plcc_loss(p, m, mask), losses.plcc_loss(p[:6], m[:6]), rtol=1e-5)


def test_mse_loss_hand_value():
    assert float(losses.mse_loss(jnp.array([0.0, 1.0]), jnp.array([1.0, 1.0]))) == 0.5


def test_ranking_loss_hand_values():
    mos = jnp.array([0.1, 0.5, 0.9])
    # Perfect order with gaps 0.4: hinge(margin 0) is zero; margin 0.5 -> every ordered pair
    # (6 of them) has z = 0.4 or 0.8: mean(max(0, 0.5 - z)) = (4 * 0.1 + 2 * 0) / 6.
    pred = jnp.array([0.1, 0.5, 0.9])
    assert float(losses.ranking_loss(pred, mos)) == 0.0
    np.testing.assert_allclose(float(losses.ranking_loss(pred, mos, margin=0.5)), 0.4 / 6, rtol=1e-5)
    # Fully reversed: z = -0.4 (x4), -0.8 (x2).
    np.testing.assert_allclose(float(losses.ranking_loss(pred[::-1], mos)), (4 * 0.4 + 2 * 0.8) / 6, rtol=1e-5)
    np.testing.assert_allclose(
        float(losses.ranking_loss(pred, mos, kind="logistic")),
        float(np.mean(np.log1p(np.exp(-np.array([0.4, 0.4, 0.8, 0.4, 0.4, 0.8]))))), rtol=1e-5)


def test_ranking_loss_ignores_ties():
    mos = jnp.array([0.5, 0.5])
    assert float(losses.ranking_loss(jnp.array([0.0, 1.0]), mos)) == 0.0
    with pytest.raises(ValueError, match="hinge"):
        losses.ranking_loss(mos, mos, kind="square")


def test_anchored_ranking_only_anchor_item_pairs():
    mos = jnp.array([0.2, 0.4, 0.6, 0.8])
    anchor = jnp.array([True, False, False, True])
    # Items 1 and 2 swapped with each other only: no anchor pair is violated.
    pred = jnp.array([0.2, 0.6, 0.4, 0.8])
    assert float(losses.anchored_ranking_loss(pred, mos, anchor)) == 0.0
    assert float(losses.ranking_loss(pred, mos)) > 0.0
    # Item 1 predicted above anchor 3: one of the 4 (anchor, item) pairs, violation 0.1.
    pred = jnp.array([0.2, 0.9, 0.6, 0.8])
    np.testing.assert_allclose(float(losses.anchored_ranking_loss(pred, mos, anchor)), 0.1 / 4, rtol=1e-5)


def test_loss_gradients_match_finite_differences():
    rng = np.random.default_rng(2)
    p = jnp.asarray(rng.random(6), jnp.float32)
    m = jnp.asarray(rng.random(6), jnp.float32)
    anchor = jnp.array([True, False, False, True, False, False])
    for fn in (losses.plcc_loss, losses.mse_loss,
               lambda a, b: losses.ranking_loss(a, b, kind="logistic"),
               lambda a, b: losses.anchored_ranking_loss(a, b, anchor, kind="logistic")):
        g = jax.grad(fn)(p, m)
        h = 1e-3
        for i in range(3):
            e = jnp.zeros(6).at[i].set(h)
            fd = (fn(p + e, m) - fn(p - e, m)) / (2 * h)
            np.testing.assert_allclose(float(g[i]), float(fd), atol=2e-3)


# ----------------------------------------------------------------------------- AAT options


def test_relative_margin_hand_values():
    mos = jnp.array([0.1, 0.5, 0.9])
    # margin_rel = 1: each pair asks for a prediction gap equal to its label gap. Pred gaps
    # 0.2 (label 0.4), 0.6 (0.4), 0.8 (0.8): only the first falls short, by 0.2, in both orders.
    pred = jnp.array([0.1, 0.3, 0.9])
    np.testing.assert_allclose(float(losses.ranking_loss(pred, mos, margin_rel=1.0)), 2 * 0.2 / 6, rtol=1e-5)
    assert float(losses.ranking_loss(pred, mos, margin_rel=0.5)) == 0.0  # asks for half: all met
    # Anchored, margin 0.05 + 1.0 * gap over the 4 (anchor, item) pairs: (0, 1) asks 0.25 and
    # gets 0.1; (0, 2) asks 0.45, gets 0.4; (3, 1) asks 0.45, gets 0.5; (3, 2) asks 0.25, gets 0.2.
    mos = jnp.array([0.2, 0.4, 0.6, 0.8])
    anchor = jnp.array([True, False, False, True])
    pred = jnp.array([0.2, 0.3, 0.6, 0.8])
    got = losses.anchored_ranking_loss(pred, mos, anchor, margin=0.05, margin_rel=1.0)
    np.testing.assert_allclose(float(got), (0.15 + 0.05 + 0.0 + 0.05) / 4, rtol=1e-5)


def test_stop_gradient_anchors_get_no_gradient():
    mos = jnp.array([0.2, 0.4, 0.6, 0.8])
    anchor = jnp.array([True, False, False, True])
    pred = jnp.array([0.5, 0.9, 0.1, 0.3])  # every anchor-item pair mis-ordered

    def loss(p, sg):
        return losses.anchored_ranking_loss(p, mos, anchor, margin=0.05, stop_anchor_gradient=sg)

    g_free, g_stop = jax.grad(loss)(pred, False), jax.grad(loss)(pred, True)
    assert float(loss(pred, True)) == float(loss(pred, False))  # same value
    assert np.all(np.asarray(g_free)[[0, 3]] != 0)  # without: the anchors move too
    np.testing.assert_array_equal(np.asarray(g_stop)[[0, 3]], 0.0)
    np.testing.assert_array_equal(np.asarray(g_stop)[[1, 2]], np.asarray(g_free)[[1, 2]])


def test_consistency_loss_hand_value_and_gradient():
    pred, clean = jnp.array([1.0, 2.0, 3.0]), jnp.array([1.0, 1.0, 1.0])
    mask = jnp.array([True, True, False])
    assert float(losses.consistency_loss(pred, clean, mask)) == 0.5  # (0 + 1) / 2
    g_pred, g_clean = jax.grad(losses.consistency_loss, argnums=(0, 1))(pred, clean, mask)
    np.testing.assert_allclose(np.asarray(g_pred), [0.0, 1.0, 0.0])  # 2 (p - c) / 2
    np.testing.assert_allclose(np.asarray(g_clean), [0.0, -1.0, 0.0])


def test_a_single_counted_item_or_fractional_weights_give_the_plain_mean():
    # The floor of 1 on the normaliser only guards an empty batch: one attacked item is its own
    # squared gap, and item weights give the weighted mean of the pair penalties.
    pred, clean = jnp.array([0.9, 0.5, 0.1]), jnp.array([0.3, 0.5, 0.2])
    one = jnp.array([True, False, False])
    assert float(losses.consistency_loss(pred, clean, one)) == pytest.approx(0.36, rel=1e-6)
    assert float(losses.mse_loss(pred, clean, one)) == pytest.approx(0.36, rel=1e-6)
    # Items 0 and 1 with weights 1 and 0.75, item 2 padding: the pairs (0, 1) and (1, 0) weigh
    # 0.75 each. Anchor 0 (clean 0.3, MOS 0.2) vs item 1 (attacked 0.5, MOS 0.6): met by 0.2 >
    # margin 0.1 -> 0; anchor 1 (clean 0.5) vs item 0 (attacked 0.9, should be below): 0.5.
    mos = jnp.array([0.2, 0.6, 0.4])
    w = jnp.array([1.0, 0.75, 0.0])
    got = losses.clean_anchored_ranking_loss(pred, clean, mos, margin=0.1, mask=w)
    assert float(got) == pytest.approx((0.75 * 0.0 + 0.75 * 0.5) / 1.5, rel=1e-6)


def test_score_slopes_are_the_l1_norm_of_a_linear_score():
    rng = np.random.default_rng(3)
    w = jnp.asarray(rng.normal(size=(1, 4, 5, 3)), jnp.float32)
    dist = jnp.asarray(rng.random((2, 4, 5, 3)), jnp.float32)

    def score(r, d):
        return jnp.sum(w * d, axis=(1, 2, 3))

    slopes = losses.score_slopes(score, dist, dist, h=0.01)
    np.testing.assert_allclose(np.asarray(slopes), float(jnp.abs(w).sum()), rtol=1e-4)


def test_score_slopes_hand_value_and_parameter_gradient():
    # f = c * sum(d^2): sign of the gradient is +1 (d > 0), slope = c * sum((d + h)^2 - d^2) / h.
    rng = np.random.default_rng(4)
    dist = jnp.asarray(rng.uniform(0.1, 0.9, (2, 3, 4, 3)), jnp.float32)
    h = 0.01

    def mean_slope(c):
        return jnp.mean(losses.score_slopes(lambda r, d: c * jnp.sum(d * d, axis=(1, 2, 3)), dist, dist, h=h))

    d = np.asarray(dist, np.float64)
    expected = (2.0 * (2 * d * h + h * h).sum(axis=(1, 2, 3)) / h).mean()
    np.testing.assert_allclose(float(mean_slope(2.0)), expected, rtol=1e-4)
    e = 1e-2
    fd = (mean_slope(2.0 + e) - mean_slope(2.0 - e)) / (2 * e)
    np.testing.assert_allclose(float(jax.grad(mean_slope)(2.0)), float(fd), rtol=1e-3)


def test_new_options_match_finite_differences():
    rng = np.random.default_rng(5)
    p = jnp.asarray(rng.random(6), jnp.float32)
    m = jnp.asarray(rng.random(6), jnp.float32)
    c = jnp.asarray(rng.random(6), jnp.float32)
    anchor = jnp.array([True, False, False, True, False, False])
    everyone, items = range(6), np.flatnonzero(~np.asarray(anchor))
    fns = ((lambda a: losses.ranking_loss(a, m, kind="logistic", margin=0.02, margin_rel=0.7), everyone),
           # stop_gradient: the anchors' true derivative is not the gradient by design; items only
           (lambda a: losses.anchored_ranking_loss(a, m, anchor, kind="logistic", margin_rel=0.7,
                                                   stop_anchor_gradient=True), items),
           (lambda a: losses.consistency_loss(a, c, ~anchor), everyone))
    for fn, checked in fns:
        g, h = jax.grad(fn)(p), 1e-3
        for i in checked:
            e = jnp.zeros(6).at[i].set(h)
            np.testing.assert_allclose(float(g[i]), float((fn(p + e) - fn(p - e)) / (2 * h)), atol=2e-3)


def test_attacked_items_and_eps_curriculum():
    from birqa_jax.train import step as training

    anchor = jnp.array([True, False, False, True, False])
    np.testing.assert_array_equal(training.attacked_items(anchor, 5), ~np.asarray(anchor))
    np.testing.assert_array_equal(training.attacked_items(anchor, 5, 2), [False, True, True, False, False])
    np.testing.assert_array_equal(training.attacked_items(None, 4, 1), [True, False, False, False])
    spec = training.AttackSpec(eps=4 / 255, eps_ramp_steps=4)
    np.testing.assert_allclose([float(spec.eps_at(jnp.int32(s))) for s in (0, 1, 3, 10)],
                               np.array([1, 2, 4, 4]) / 255, rtol=1e-6)
    assert training.AttackSpec(eps=4 / 255).eps_at(jnp.int32(0)) == 4 / 255
    with pytest.raises(ValueError, match="num_attacked"):
        training.AttackSpec(num_attacked=-2)


def test_default_options_are_todays_loss():
    from birqa_jax.train import step as training

    rng = np.random.default_rng(6)
    pred, mos = jnp.asarray(rng.random(8), jnp.float32), jnp.asarray(rng.random(8), jnp.float32)
    anchor = jnp.arange(8) % 4 == 0
    w = training.LossWeights(rank_margin=0.05)
    total, parts = training.combined_loss(pred, mos, anchor, w)
    assert set(parts) == {"plcc", "mse", "rank"}
    expected = (losses.plcc_loss(pred, mos) + losses.mse_loss(pred, mos)
                + 0.5 * losses.anchored_ranking_loss(pred, mos, anchor, margin=0.05))
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    clean, slopes = pred + 0.1, jnp.full(8, -2.0)
    w = training.LossWeights(rank_margin=0.05, consistency=2.0, slope=1e-3)
    total2, parts2 = training.combined_loss(pred, mos, anchor, w, attacked=~anchor, pred_clean=clean, slopes=slopes)
    assert float(parts2["consistency"]) == pytest.approx(0.01, rel=1e-4) and float(parts2["slope"]) == 2.0
    assert float(total2) == pytest.approx(float(total) + 2.0 * 0.01 + 1e-3 * 2.0, rel=1e-5)


def test_consistency_needs_an_attack(tiny_config):
    # The step with every option, sharded against one device: tests/test_training.py.
    import optax

    from birqa_jax.model import BiRQA
    from birqa_jax.train import step as training

    weights = training.LossWeights(consistency=1.0)
    with pytest.raises(ValueError, match="needs an attack"):
        training.make_train_step(BiRQA(tiny_config), optax.sgd(1e-3), parallel.make_mesh(), weights, None)


# ----------------------------------------------------------------------------- AAT containing plain AT


def test_clean_anchored_ranking_loss_by_hand():
    from birqa_jax.train.losses import clean_anchored_ranking_loss

    mos = jnp.array([0.2, 0.5, 0.5])
    clean = jnp.array([0.3, 0.6, 0.55])
    attacked = jnp.array([0.58, 0.4, 0.6])
    # Pairs (anchor i, item j) with distinct labels: (0,1), (0,2), (1,0), (2,0); margin 0.5 * 0.3.
    # (0,1): item 1 above anchor 0 by 0.4 - 0.3 = 0.1 < 0.15 -> 0.05; (0,2): 0.6 - 0.3 = 0.3 -> 0;
    # (1,0): item 0 below anchor 1 by 0.6 - 0.58 = 0.02 -> 0.13; (2,0): 0.55 - 0.58 < 0 -> 0.18.
    got = clean_anchored_ranking_loss(attacked, clean, mos, margin_rel=0.5)
    assert float(got) == pytest.approx((0.05 + 0 + 0.13 + 0.18) / 4, abs=1e-6)
    # The anchors are constants: no gradient reaches the clean scores.
    g = jax.grad(lambda c: clean_anchored_ranking_loss(attacked, c, mos, margin_rel=0.5))(clean)
    np.testing.assert_array_equal(np.asarray(g), 0.0)
    # Shrinking every score (about a mean) cannot satisfy a margin in label units.
    shrunk = clean_anchored_ranking_loss(0.1 * clean, 0.1 * clean, mos, margin_rel=0.5)
    assert float(shrunk) > float(clean_anchored_ranking_loss(clean, clean, mos, margin_rel=0.5))


def test_scaled_consistency_is_scale_invariant_and_by_hand():
    from birqa_jax.train.losses import consistency_loss, scaled_consistency_loss

    clean = jnp.array([0.1, 0.5, 0.9, 0.3])
    attacked = jnp.array([0.2, 0.4, 0.7, 0.3])
    var = float(np.var(np.asarray(clean)))
    want = float(np.mean((np.asarray(attacked) - np.asarray(clean)) ** 2)) / var
    assert float(scaled_consistency_loss(attacked, clean, eps=0.0)) == pytest.approx(want, rel=1e-5)
    # A model that shrinks its scores by 10 keeps this term and cuts the plain one 100-fold.
    assert float(scaled_consistency_loss(0.1 * attacked, 0.1 * clean, eps=0.0)) == pytest.approx(want, rel=1e-4)
    assert float(consistency_loss(0.1 * attacked, 0.1 * clean)) == pytest.approx(
        0.01 * float(consistency_loss(attacked, clean)), rel=1e-4)
    # The variance is a constant: the gradient in the clean scores is that of the numerator alone.
    g = jax.grad(lambda c: scaled_consistency_loss(attacked, c, eps=0.0))(clean)
    np.testing.assert_allclose(np.asarray(g), 2 * (np.asarray(clean) - np.asarray(attacked)) / 4 / var, rtol=1e-5)


def test_score_slope_is_least_squares():
    from birqa_jax.train.losses import score_slope

    rng = np.random.default_rng(3)
    mos = rng.random(16)
    pred = 0.4 * mos + 0.1 + rng.normal(0, 0.05, 16)
    assert float(score_slope(jnp.asarray(pred, jnp.float32), jnp.asarray(mos, jnp.float32))) == pytest.approx(
        np.polyfit(mos, pred, 1)[0], rel=1e-4)


def test_ranking_objective_by_hand_and_its_direction():
    from birqa_jax.adversarial import ranking_objective

    mos = jnp.array([0.9, 0.1])
    anchor_mos = jnp.array([0.9, 0.5, 0.1])
    anchor_scores = jnp.array([0.8, 0.5, 0.2])
    ref = jnp.zeros((2, 4, 4, 3))
    scores = jnp.array([0.6, 0.3])
    objective = ranking_objective(lambda r, x: x.mean(axis=(1, 2, 3)), ref, mos, anchor_scores, anchor_mos,
                                  temperature=0.1)
    x = jnp.broadcast_to(scores[:, None, None, None], ref.shape)
    sp = lambda z: 0.1 * np.log1p(np.exp(z / 0.1))  # noqa: E731  t softplus(z / t)
    # Item 0 (MOS 0.9) against the anchors of MOS 0.5 and 0.1 (s = +1): t sp(-(0.6 - a) / t).
    want0 = (sp(-(0.6 - 0.5)) + sp(-(0.6 - 0.2))) / 2
    # Item 1 (MOS 0.1) against the anchors of MOS 0.9 and 0.5 (s = -1): t sp((0.3 - a) / t).
    want1 = (sp(0.3 - 0.8) + sp(0.3 - 0.5)) / 2
    np.testing.assert_allclose(np.asarray(objective(x)), [want0, want1], rtol=1e-5)
    # Maximising it pushes the best-rated item down and the worst-rated one up.
    g = jax.grad(lambda x: objective(x).sum())(x)
    assert float(g[0].sum()) < 0 < float(g[1].sum())


def test_combined_loss_scales_the_gap_by_the_clean_scores_variance():
    """combined_loss's scale-invariant term is mean((attacked - clean)^2) over the attacked items
    divided by the variance of their clean scores (numpy by hand), not of the attacked ones."""
    from birqa_jax.train import step as training

    pred = jnp.array([0.1, 0.5, 0.9, 0.4])  # attacked scores: spread out
    clean = jnp.array([0.45, 0.5, 0.55, 0.5])  # clean scores: close together
    attacked = jnp.array([1.0, 1.0, 1.0, 0.0])
    w = training.LossWeights(scaled_consistency=1.0)
    _, parts = training.combined_loss(pred, jnp.array([0.2, 0.5, 0.8, 0.4]), None, w, attacked=attacked,
                                      pred_clean=clean)
    gap = (np.asarray(pred) - np.asarray(clean))[:3] ** 2
    want = gap.mean() / (np.var(np.asarray(clean)[:3]) + 1e-6)
    assert float(parts["scaled_consistency"]) == pytest.approx(want, rel=1e-5)
