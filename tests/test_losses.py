import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

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
