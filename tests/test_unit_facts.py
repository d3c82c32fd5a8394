"""Facts of each model block checked against a reference written from its definition, golden
values of the whole model, and the packaged weights' behaviour on distortion levels.

Each test here is meant to fail on a one-line change of the block it covers (a swapped gate, a
missing root, a wrong variance), which shape and finiteness checks cannot see.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi
from skimage import data as skdata

import birqa_jax
from birqa_jax.adversarial import attacks
from birqa_jax.model import CSRAM, SCGB, BiRQA, ReliabilityHead, features, pyramid
from birqa_jax.model.pyramid import gem_pool

F32 = np.float32


def _rand(seed, shape, lo=-1.0, hi=1.0):
    # numpy, not jax.random: a jax.random draw compiles a program per shape (about a second).
    return jnp.asarray(np.random.default_rng(seed).uniform(lo, hi, shape).astype(F32))


def _softplus(x):
    return np.logaddexp(0.0, x)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _conv1x1(x, p):
    return np.asarray(x, np.float64) @ np.asarray(p["kernel"], np.float64)[0, 0] + np.asarray(p["bias"], np.float64)


def _mean2x2(x):
    n, h, w, c = x.shape
    return np.asarray(x, np.float64).reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _random_params(module, *inputs, seed=1):
    """Parameters of ``module`` for ``inputs`` (names and shapes from ``jax.eval_shape`` of its
    init, which compiles nothing) with every leaf drawn from N(0, 0.5^2), so no term sits at an
    initial zero or one (biases start at 0, GeM's p at its init)."""
    shapes = jax.eval_shape(module.init, jax.random.key(0), *inputs)
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda s: jnp.asarray(rng.normal(0.0, 0.5, s.shape).astype(F32)), shapes)


def test_csram_is_coarse_plus_strength_times_confidence_times_injection():
    coarse, fine = _rand(0, (2, 4, 6, 5)), _rand(1, (2, 8, 12, 3))
    block = CSRAM(jnp.float32)
    params = _random_params(block, coarse, fine)
    out = jax.jit(block.apply)(params, coarse, fine)
    p = params["params"]
    m = _mean2x2(fine)
    h = np.concatenate([np.asarray(coarse, np.float64), m], axis=-1)
    expected = coarse + _softplus(_conv1x1(h, p["strength"])) * _sigmoid(_conv1x1(h, p["confidence"])) * _conv1x1(
        m, p["phi"])
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-5)


def test_csram_parameters_and_output_are_those_of_three_plain_1x1_convs():
    """CSRAM runs strength and confidence as one conv of their kernels side by side; its
    parameters (names, shapes, initial values) and output are those of the plain form, three
    Flax 1x1 convs, so weights trained with either load in both."""
    coarse, fine = _rand(0, (2, 4, 6, 5)), _rand(1, (2, 8, 12, 3))

    class PlainCSRAM(nn.Module):
        @nn.compact
        def __call__(self, coarse, fine):
            width = coarse.shape[-1]
            m = pyramid._down(fine)
            h = jnp.concatenate([coarse, m], axis=-1)
            strength = nn.softplus(nn.Conv(width, (1, 1), name="strength")(h))
            confidence = nn.sigmoid(nn.Conv(width, (1, 1), name="confidence")(h))
            return coarse + strength * confidence * nn.Conv(width, (1, 1), name="phi")(m)

    plain = jax.jit(PlainCSRAM().init)(jax.random.key(2), coarse, fine)
    ours = jax.jit(CSRAM(jnp.float32).init)(jax.random.key(2), coarse, fine)
    assert jax.tree_util.tree_structure(plain) == jax.tree_util.tree_structure(ours)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(
        lambda a, b: a.shape == b.shape and bool(jnp.all(a == b)), plain, ours))
    params = _random_params(CSRAM(jnp.float32), coarse, fine)
    np.testing.assert_allclose(np.asarray(jax.jit(CSRAM(jnp.float32).apply)(params, coarse, fine)),
                               np.asarray(jax.jit(PlainCSRAM().apply)(params, coarse, fine)), rtol=1e-6, atol=1e-6)


def test_scgb_with_zero_logits_is_the_identity_and_gates_by_two_sigmoid():
    fine, coarse = _rand(0, (1, 8, 12, 4)), _rand(1, (1, 4, 6, 6))
    block = SCGB(jnp.float32, cross=True)
    params = _random_params(block, fine, coarse)
    apply = jax.jit(block.apply)  # one compilation for both parameter sets
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)
    new_fine, new_coarse = apply(zero, fine, coarse)
    np.testing.assert_allclose(np.asarray(new_fine), np.asarray(fine), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(new_coarse), np.asarray(coarse), rtol=1e-6)
    # A constant logit b on both gates scales by 2 sigmoid(b).
    const = jax.tree_util.tree_map(jnp.zeros_like, params)
    const["params"]["fine_gate"]["bias"] = jnp.full_like(const["params"]["fine_gate"]["bias"], 0.7)
    const["params"]["coarse_gate"]["bias"] = jnp.full_like(const["params"]["coarse_gate"]["bias"], -1.2)
    new_fine, new_coarse = apply(const, fine, coarse)
    np.testing.assert_allclose(np.asarray(new_fine), np.asarray(fine) * 2 * _sigmoid(0.7), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(new_coarse), np.asarray(coarse) * 2 * _sigmoid(-1.2), rtol=1e-5)


@pytest.mark.parametrize("fine_hw", [(8, 12), (7, 11), (7, 12)], ids=["even", "odd", "odd-rows"])
def test_scgb_fine_gate_is_a_3x3_conv_of_the_nearest_upsampled_coarse_level(fine_hw):
    """The fine gate is computed on the coarse grid (pyramid.upsampled_conv3x3); it must equal
    the definition: nearest 2x upsampling cropped to the fine size, a zero-padded 3x3 conv."""
    h, w = fine_hw
    fine, coarse = _rand(0, (2, h, w, 4)), _rand(1, (2, (h + 1) // 2, (w + 1) // 2, 3))
    block = SCGB(jnp.float32, cross=False)
    params = _random_params(block, fine, coarse)
    k, b = (np.asarray(params["params"]["fine_gate"][n], np.float64) for n in ("kernel", "bias"))
    up = np.repeat(np.repeat(np.asarray(coarse, np.float64), 2, axis=1), 2, axis=2)[:, :h, :w]
    padded = np.pad(up, ((0, 0), (1, 1), (1, 1), (0, 0)))
    logits = b + sum(padded[:, dy:dy + h, dx:dx + w] @ k[dy, dx] for dy in range(3) for dx in range(3))
    new_fine, _ = jax.jit(block.apply)(params, fine, coarse)
    np.testing.assert_allclose(np.asarray(new_fine), np.asarray(fine) * 2 * _sigmoid(logits), rtol=1e-5, atol=1e-6)


def test_scgb_fine_gate_parameters_are_those_of_a_plain_3x3_conv():
    """The plain form of the fine gate, a Flax 3x3 conv named fine_gate on the upsampled coarse
    level: the same names, shapes and initial values, so weights trained with it load unchanged."""
    fine, coarse = _rand(0, (1, 8, 12, 4)), _rand(1, (1, 4, 6, 3))

    class PlainGate(nn.Module):
        @nn.compact
        def __call__(self, fine, coarse):
            return nn.Conv(fine.shape[-1], (3, 3), name="fine_gate")(pyramid._up_to(coarse, fine.shape[1:3]))

    plain = jax.jit(PlainGate().init)(jax.random.key(2), fine, coarse)
    ours = jax.jit(SCGB(jnp.float32, cross=False).init)(jax.random.key(2), fine, coarse)
    assert jax.tree_util.tree_structure(plain) == jax.tree_util.tree_structure(ours)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(
        lambda a, b: a.shape == b.shape and bool(jnp.all(a == b)), plain, ours))


def test_gem_pool_facts():
    x = _rand(0, (2, 5, 7, 3), 0.1, 2.0)
    const = jnp.full((1, 4, 4, 2), 0.37)
    for p in (1.0, 3.0, 7.5):
        np.testing.assert_allclose(np.asarray(gem_pool(const, jnp.float32(p))), 0.37, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(gem_pool(x, jnp.float32(1.0))), np.asarray(x).mean(axis=(1, 2)), rtol=1e-5)
    expected3 = (np.asarray(x, np.float64) ** 3).mean(axis=(1, 2)) ** (1 / 3)
    np.testing.assert_allclose(np.asarray(gem_pool(x, jnp.float32(3.0))), expected3, rtol=1e-5)
    # p -> inf approaches the maximum from below (35 pixels: within (1/35)^(1/60) ~ 6% at p = 60).
    big, top = np.asarray(gem_pool(x, jnp.float32(60.0))), np.asarray(x).max(axis=(1, 2))
    assert np.all(big <= top * (1 + 1e-6)) and np.all(big >= 0.94 * top)


def test_reliability_head_is_the_softmax_weighted_sum_of_level_scores():
    levels = [_rand(i, (3, 8 >> i, 8 >> i, 4 + i), 0.0, 1.5) for i in range(3)]
    head = ReliabilityHead(hidden=6, gem_init=3.0)
    params = _random_params(head, levels, seed=5)
    score, level_scores, weights = jax.jit(head.apply)(params, levels)
    p = params["params"]
    scores, logits = [], []
    for i, f in enumerate(levels):
        e = 1.0 + _softplus(float(p[f"gem_p_{i}"]))
        pooled = (np.maximum(np.asarray(f, np.float64), 1e-6) ** e).mean(axis=(1, 2)) ** (1.0 / e)
        hidden = np.asarray(jax.nn.gelu(pooled @ np.asarray(p[f"hidden_{i}"]["kernel"]) + np.asarray(
            p[f"hidden_{i}"]["bias"])), np.float64)
        out = hidden @ np.asarray(p[f"out_{i}"]["kernel"]) + np.asarray(p[f"out_{i}"]["bias"])
        scores.append(out[:, 0])
        logits.append(out[:, 1])
    scores, logits = np.stack(scores, -1), np.stack(logits, -1)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(level_scores), scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(weights), w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(score), (w * scores).sum(-1), rtol=1e-4, atol=1e-6)


def _luma_chroma(x):
    m = np.array([[0.299, 0.587, 0.114], [-0.168735892, -0.331264108, 0.5], [0.5, -0.418687589, -0.081312411]])
    return np.asarray(x, np.float64) @ m.T + np.array([0.0, 0.5, 0.5])


def _local_variance(y):
    def f(v):
        return ndi.gaussian_filter(v, 1.5, mode="reflect", truncate=3.5)

    return f(y * y) - f(y) ** 2


def test_every_feature_channel_against_its_definition(natural_pair):
    ref, dist = natural_pair  # [1, 64, 80, 3] float32
    stack = np.asarray(features.feature_stack(jnp.asarray(ref), jnp.asarray(dist)), np.float64)[0]
    assert stack.shape[-1] == len(features.FEATURE_NAMES)
    ch = {name: stack[..., i] for i, name in enumerate(features.FEATURE_NAMES)}
    ycc_r, ycc_d = _luma_chroma(ref[0]), _luma_chroma(dist[0])
    y_r, y_d = ycc_r[..., 0], ycc_d[..., 0]
    np.testing.assert_allclose(ch["y_ref"], y_r, atol=1e-6)
    np.testing.assert_allclose(ch["y_dist"], y_d, atol=1e-6)
    np.testing.assert_allclose(ch["d_cb"], np.abs(ycc_r[..., 1] - ycc_d[..., 1]), atol=1e-6)
    np.testing.assert_allclose(ch["d_cr"], np.abs(ycc_r[..., 2] - ycc_d[..., 2]), atol=1e-6)
    c = 0.03**2  # the information map's C (features.INFO_C)
    v_r, v_d = _local_variance(y_r), _local_variance(y_d)
    np.testing.assert_allclose(ch["info_ref"], np.log1p(np.maximum(v_r, 0) / c), atol=2e-3)
    np.testing.assert_allclose(ch["info_dist"], np.log1p(np.maximum(v_d, 0) / c), atol=2e-3)

    def g(v):
        return ndi.gaussian_filter(v, 1.5, mode="reflect", truncate=3.5)

    mx, my = g(y_r), g(y_d)
    cov = g(y_r * y_d) - mx * my
    c1, c2 = 0.01**2, 0.03**2  # SSIM: (K1 L)^2, (K2 L)^2 with K = (0.01, 0.03), L = 1
    ssim = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (v_r + v_d + c2))
    np.testing.assert_allclose(ch["ssim"], ssim, atol=2e-3)
    # Soft LBP: mean over the 8 neighbours of |sigmoid((n_k - c) / t)| differences, edge padding.
    t = 0.02

    def bits(y):
        yp = np.pad(y, 1, mode="edge")
        h, w = y.shape
        out = []
        for rp, cp in features._LBP_OFFSETS:
            r0, c0 = int(np.floor(rp)), int(np.floor(cp))
            fr, fc = rp - r0, cp - c0
            v = sum(wr * wc * yp[1 + dr: 1 + dr + h, 1 + dc: 1 + dc + w]
                    for dr, wr in ((r0, 1 - fr), (r0 + 1, fr)) for dc, wc in ((c0, 1 - fc), (c0 + 1, fc))
                    if wr * wc > 1e-12)
            out.append(_sigmoid((v - y) / t))
        return np.stack(out, -1)

    np.testing.assert_allclose(ch["lbp"], np.abs(bits(y_r) - bits(y_d)).mean(-1), atol=1e-4)


def test_pgd_random_start_covers_both_sides_of_the_ball():
    dist = jnp.full((2, 16, 16, 3), 0.5)

    def flat(x):  # zero gradient: PGD stays at its random start
        return jnp.zeros(x.shape[0])

    eps = 8 / 255
    start = np.asarray(attacks.pgd(flat, dist, eps=eps, rng=jax.random.key(0), steps=1)) - 0.5
    assert start.min() < -0.8 * eps and start.max() > 0.8 * eps
    assert abs(start.mean()) < 0.1 * eps and np.abs(start).max() <= eps + 1e-7


def test_negative_float_input_is_rejected(tiny_config, tiny_params):
    img = np.full((40, 40, 3), 0.5, np.float32)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        birqa_jax.score(img, img - 0.5 - 0.2, params=tiny_params, config=tiny_config)


# Golden values: the tiny model of conftest.py (seed 0) on a fixed natural pair. A change of the
# features, a block or the head moves them; update them only for an intended change.
GOLDEN_SCORE = [-0.02316362]
GOLDEN_LEVEL_SCORES = [-0.09132814, 0.06469919, -0.05844374]
GOLDEN_WEIGHTS = [0.30935755, 0.36910897, 0.32153353]


def test_golden_values_of_the_tiny_model(tiny_config, tiny_params, natural_pair):
    ref, dist = natural_pair
    score, levels, weights = jax.jit(BiRQA(tiny_config).apply, static_argnames="return_levels")(
        tiny_params, jnp.asarray(ref), jnp.asarray(dist), return_levels=True)
    np.testing.assert_allclose(np.asarray(score), GOLDEN_SCORE, atol=2e-6)
    np.testing.assert_allclose(np.asarray(levels)[0], GOLDEN_LEVEL_SCORES, atol=2e-6)
    np.testing.assert_allclose(np.asarray(weights)[0], GOLDEN_WEIGHTS, atol=2e-6)


# The packaged clean weights (birqa_clean) on two scikit-image photographs (96x128 crops), three KADID-10k
# distortion types at levels 1..5 (rng seed 0): every type's scores fall with the level, an
# identical pair of these crops scores about 0.84 (inside IDENTICAL_PAIR["birqa_clean"]), and the values are pinned.
PACKAGED = {
    ("coffee", 1): [0.830858, 0.773402, 0.520427, 0.298041, 0.201028],
    ("coffee", 10): [0.666459, 0.647988, 0.619170, 0.428454, 0.368825],
    ("coffee", 11): [0.709159, 0.555373, 0.494906, 0.409086, 0.352038],
    ("chelsea", 1): [0.835363, 0.811334, 0.715344, 0.477243, 0.226776],
    ("chelsea", 10): [0.762180, 0.753231, 0.744193, 0.538440, 0.391023],
    ("chelsea", 11): [0.760889, 0.682538, 0.595690, 0.480079, 0.391714],
}
PHOTOS = {"coffee": lambda: skdata.coffee()[60:156, 200:328], "chelsea": lambda: skdata.chelsea()[40:136, 100:228]}


@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_packaged_weights_order_distortion_levels(photo):
    from birqa_jax.data.distortions import distort

    params, config = birqa_jax.load(birqa_jax.metric.weights_path("birqa_clean"))
    ref = PHOTOS[photo]()
    types = sorted(t for p, t in PACKAGED if p == photo)
    dists = np.stack([distort(ref, t, level, np.random.default_rng(0)) for t in types for level in range(1, 6)])
    scores = birqa_jax.score(np.stack([ref] * len(dists)), dists, params=params, config=config).reshape(-1, 5)
    for t, s in zip(types, scores):
        assert np.all(np.diff(s) < 0), (t, s)
        np.testing.assert_allclose(s, PACKAGED[photo, t], atol=1e-4)
    assert birqa_jax.score(ref, ref, params=params, config=config) == pytest.approx(0.84, abs=0.01)


@pytest.mark.parametrize("shape", [(9, 12), (8, 13), (5, 12), (8, 6)])
def test_upsampled_conv3x3_refuses_an_output_that_is_not_a_2x_upsampling(shape):
    """Either side alone off 2h - 1 .. 2h (or 2w - 1 .. 2w) is refused."""
    coarse, kernel = _rand(0, (1, 4, 6, 2)), _rand(1, (3, 3, 2, 3))
    with pytest.raises(ValueError, match="is not a 2x upsampling of 4x6"):
        pyramid.upsampled_conv3x3(coarse, kernel, shape)
    assert pyramid.upsampled_conv3x3(coarse, kernel, (7, 12)).shape == (1, 7, 12, 3)
