"""Tests of birqa_jax.adversarial.attacks on small differentiable toy scores (2-4 images of 16x16)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi
from skimage.metrics import structural_similarity

from birqa_jax.adversarial import attacks as A

B, H, W = 4, 16, 16
EPS = 8 / 255
DIRECTION = jnp.array([1.0, -1.0, 1.0, -1.0])  # both directions in one batch
TOL = 1e-6


def _linear_score(seed: int, shape: tuple[int, int, int]):
    """(w, score): a linear score ``sum(w * (dist - ref))`` with Gaussian weights w of ``shape``."""
    w = jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))
    return w, lambda ref, dist: jnp.sum(w * (dist - ref), axis=(1, 2, 3))


def _toy_params():
    # numpy draws: a jax.random draw compiles a program per shape.
    rng = np.random.default_rng(0)
    normal = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    ref = rng.random((B, H, W, 3), dtype=np.float32)
    # Clipping makes some pixels exactly 0 or 1, so the [0, 1] bound is exercised.
    dist = np.clip(ref + 0.1 * normal(B, H, W, 3), 0.0, 1.0)
    units = normal(8, H, W, 3) / np.sqrt(H * W * 3)
    return tuple(jnp.asarray(x) for x in (ref, dist, units, normal(8), normal(8)))


REF, DIST, _UNITS, _WEIGHTS, _BIAS = _toy_params()


def toy_score(ref: jax.Array, dist: jax.Array) -> jax.Array:
    """[B] score: tanh units of the difference image plus a ripple that bends the objective
    within the eps ball (so that a single signed step is not optimal)."""
    e = dist - ref
    units = jnp.tanh(20.0 * jnp.einsum("bhwc,khwc->bk", e, _UNITS) + _BIAS)
    ripple = jnp.mean(jnp.sin(60.0 * e + 1.0) ** 2, axis=(1, 2, 3))
    return units @ _WEIGHTS / 8 + 0.2 * ripple


OBJECTIVE = A.direction_objective(toy_score, REF, DIRECTION)
RNG = jax.random.PRNGKey(7)

# One jitted closure per configuration, shared by the tests below (compiled once each).
RUNS = {
    "fgsm": jax.jit(lambda d: A.fgsm(OBJECTIVE, d, eps=EPS)),
    "ifgsm": jax.jit(lambda d: A.ifgsm(OBJECTIVE, d, eps=EPS)),
    "pgd": jax.jit(lambda d: A.pgd(OBJECTIVE, d, eps=EPS, rng=RNG)),
    "mifgsm": jax.jit(lambda d: A.mifgsm(OBJECTIVE, d, eps=EPS)),
    "apgd": jax.jit(lambda d: A.apgd(OBJECTIVE, d, eps=EPS)),
    "korhonen": jax.jit(lambda d: A.korhonen(OBJECTIVE, d, eps=EPS)),
    "square": jax.jit(lambda d: A.square(OBJECTIVE, d, eps=EPS, rng=RNG, queries=300)),
}


@pytest.fixture(scope="module")
def results():
    return {name: run(DIST) for name, run in RUNS.items()}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_feasible_and_moves_every_item(results, name):
    adv = np.asarray(results[name])
    dist = np.asarray(DIST)
    assert adv.shape == dist.shape and adv.dtype == np.float32
    assert np.max(np.abs(adv - dist)) <= EPS + TOL
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    gain = np.asarray(OBJECTIVE(results[name]) - OBJECTIVE(DIST))
    assert np.all(gain > 1e-3), gain  # every item's score moved in its own direction


def test_pgd10_beats_fgsm(results):
    assert jnp.mean(OBJECTIVE(results["pgd"])) > jnp.mean(OBJECTIVE(results["fgsm"])) + 0.05


def test_apgd100_at_least_pgd100(results):
    pgd100 = A.pgd(OBJECTIVE, DIST, eps=EPS, rng=RNG, steps=100)
    assert jnp.mean(OBJECTIVE(results["apgd"])) >= jnp.mean(OBJECTIVE(pgd100))


def test_attacks_on_a_linear_score_reach_the_corner():
    """On a linear score every sign-gradient attack ends at dist + eps * sign(w) (clipped):
    a hand-computed optimum."""
    w, linear = _linear_score(3, (H, W, 3))
    objective = A.direction_objective(linear, REF, DIRECTION)
    expect = np.clip(
        np.asarray(DIST) + EPS * np.sign(np.asarray(DIRECTION)[:, None, None, None] * w),
        np.maximum(np.asarray(DIST) - EPS, 0),
        np.minimum(np.asarray(DIST) + EPS, 1),
    )
    for adv in (
        A.fgsm(objective, DIST, eps=EPS),
        A.ifgsm(objective, DIST, eps=EPS),  # 10 steps of 1/255 > 8/255
        A.pgd(objective, DIST, eps=EPS, rng=RNG),  # 10 steps of eps/4 cross the ball
        A.mifgsm(objective, DIST, eps=EPS),
        A.apgd(objective, DIST, eps=EPS, steps=10),
    ):
        np.testing.assert_allclose(adv, expect, atol=TOL)

    # Korhonen: Adam moves delta by lr per step (10 * 0.005 > eps) where the mask is non-zero.
    mask = np.asarray(A.spatial_activity_map(DIST))
    adv = A.korhonen(objective, DIST, eps=EPS)
    sign = np.sign(np.asarray(DIRECTION)[:, None, None, None] * w)
    np.testing.assert_allclose(adv, np.clip(DIST + mask * EPS * sign, 0, 1), atol=1e-5)


def test_apgd_halves_its_step_where_fixed_steps_oscillate():
    """Concave objective with its optimum c inside the ball: fixed signed steps keep
    oscillating around c, APGD's halving steps converge onto it."""
    c = jnp.clip(DIST + 0.37 * EPS * np.sign(np.random.default_rng(1).normal(size=DIST.shape)).astype(np.float32), 0, 1)

    def objective(x):
        return -jnp.sum((x - c) ** 2, axis=(1, 2, 3))

    apgd_err = jnp.max(jnp.abs(A.apgd(objective, DIST, eps=EPS) - c))
    fixed = A.ifgsm(objective, DIST, eps=EPS, steps=100, step_size=EPS / 4)
    ifgsm_err = jnp.max(jnp.abs(fixed - c))
    assert ifgsm_err > EPS / 16
    assert apgd_err < EPS / 64


def test_apgd_checkpoints():
    assert A.apgd_checkpoints(100) == (22, 41, 57, 70, 80, 87, 93, 99)
    assert A.apgd_checkpoints(10) == (3, 5, 6, 7, 8, 9)
    assert A.apgd_checkpoints(1) == ()


def _gradient_free(score_fn):
    @jax.custom_vjp
    def guarded(ref, dist):
        return score_fn(ref, dist)

    def fwd(ref, dist):
        return score_fn(ref, dist), None

    def bwd(_, g):
        raise AssertionError("the black-box attack asked for a gradient")

    guarded.defvjp(fwd, bwd)
    return guarded


def test_square_uses_forward_passes_only():
    objective = A.direction_objective(_gradient_free(toy_score), REF, DIRECTION)
    with pytest.raises(AssertionError, match="asked for a gradient"):
        A.fgsm(objective, DIST, eps=EPS)  # the guard does catch a gradient
    adv = A.square(objective, DIST, eps=EPS, rng=RNG, queries=300)
    np.testing.assert_array_equal(adv, RUNS["square"](DIST))
    assert jnp.all(objective(adv) > objective(DIST))


@pytest.mark.parametrize("name, settings", [("pgd", {}), ("square", {"queries": 300})])
def test_run_attack_is_deterministic_per_rng(results, name, settings):
    # run_attack jits the attack; the fixture's results come from separate jitted closures.
    def run(rng):
        return A.run_attack(name, toy_score, REF, DIST, DIRECTION, eps=EPS, rng=rng, **settings)[0]

    a = run(RNG)
    np.testing.assert_array_equal(a, run(RNG))
    np.testing.assert_allclose(a, results[name], atol=TOL)
    assert not np.array_equal(a, run(jax.random.PRNGKey(8)))


@pytest.mark.parametrize("name, settings", [("pgd", {"steps": 3}), ("square", {"queries": 20})])
def test_random_attacks_draw_each_item_from_its_own_key(name, settings):
    """With one key per item, an item's result does not depend on the rest of its batch (so a
    sharded train step does not depend on the device count)."""
    keys = jax.random.split(RNG, B)
    attack = A.ATTACKS[name]
    batch = attack(OBJECTIVE, DIST, eps=EPS, rng=keys, **settings)
    for i in (0, B - 1):
        alone = attack(A.direction_objective(toy_score, REF[i : i + 1], DIRECTION[i : i + 1]), DIST[i : i + 1],
                       eps=EPS, rng=keys[i : i + 1], **settings)
        np.testing.assert_allclose(batch[i : i + 1], alone, atol=TOL)
    # One key for the batch is split into per-item keys: the same as passing those keys.
    np.testing.assert_array_equal(attack(OBJECTIVE, DIST, eps=EPS, rng=RNG, **settings),
                                  attack(OBJECTIVE, DIST, eps=EPS, rng=jax.random.split(
                                      jax.random.wrap_key_data(RNG), B), **settings))
    with pytest.raises(ValueError, match="one key or"):
        attack(OBJECTIVE, DIST, eps=EPS, rng=keys[:2], **settings)


def test_items_are_independent():
    """APGD's per-item step sizes and restarts: a batch gives what each item gives alone."""

    @jax.jit
    def run(ref, dist, direction):
        return A.apgd(A.direction_objective(toy_score, ref, direction), dist, eps=EPS, steps=30)

    batch = run(REF, DIST, DIRECTION)
    for i in range(B):
        alone = run(REF[i : i + 1], DIST[i : i + 1], DIRECTION[i : i + 1])
        np.testing.assert_allclose(batch[i : i + 1], alone, atol=TOL)


def test_vmap_over_eps():
    eps = jnp.array([2 / 255, 8 / 255])
    run = jax.jit(lambda e: A.apgd(OBJECTIVE, DIST, eps=e, steps=20))
    batched = jax.vmap(run)(eps)
    for i in range(2):
        single = run(eps[i])
        np.testing.assert_allclose(batched[i], single, atol=TOL)
        assert np.max(np.abs(batched[i] - DIST)) <= eps[i] + TOL


def test_away_objective_pushes_off_the_label():
    score = toy_score(REF, DIST)
    target = score + jnp.array([0.1, -0.1, 0.2, -0.2])
    away = A.away_objective(toy_score, REF, target)
    adv = A.fgsm(away, DIST, eps=EPS)
    assert jnp.all(away(adv) > away(DIST))
    # |s - t| has gradient sign(s - t) * ds/dx: the same step as the matching directions.
    same = A.fgsm(A.direction_objective(toy_score, REF, jnp.sign(score - target)), DIST, eps=EPS)
    np.testing.assert_array_equal(adv, same)


def test_spatial_activity_map_matches_scipy():
    x = np.asarray(DIST).copy()
    x[0, :, :8] = 0.5  # a flat region: no activity away from its edge
    got = np.asarray(A.spatial_activity_map(jnp.asarray(x)))[..., 0]
    y = x @ np.array([0.299, 0.587, 0.114])
    for i in range(B):
        rows, cols = (ndi.sobel(y[i], axis=a, mode="reflect") for a in (0, 1))
        mag = np.hypot(rows, cols)
        want = ndi.maximum_filter(mag / mag.max(), size=3, mode="reflect")
        np.testing.assert_allclose(got[i], want, atol=1e-5)
    assert np.all(got[0, :, :6] == 0.0)


def test_korhonen_leaves_flat_regions_untouched():
    x = DIST.at[:, :, :8].set(0.5)
    adv = A.korhonen(OBJECTIVE, x, eps=EPS)
    assert jnp.all(adv[:, :, :6] == x[:, :, :6])
    assert jnp.all(OBJECTIVE(adv) > OBJECTIVE(x))


def test_perturbation_stats_against_numpy_and_skimage(results):
    adv, dist = np.asarray(results["pgd"]), np.asarray(DIST)
    stats = A.perturbation_stats(results["pgd"], DIST)
    np.testing.assert_allclose(stats["linf"], np.abs(adv - dist).max(axis=(1, 2, 3)), atol=TOL)
    mse = ((adv.astype(np.float64) - dist) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(stats["psnr"], 10 * np.log10(1 / mse), rtol=1e-4)
    luma = np.array([0.299, 0.587, 0.114])
    for i in range(B):
        _, smap = structural_similarity(
            adv[i] @ luma,
            dist[i] @ luma,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            full=True,
        )
        np.testing.assert_allclose(stats["ssim"][i], smap.mean(), atol=1e-4)
    same = A.perturbation_stats(DIST, DIST)
    assert np.all(same["linf"] == 0) and np.all(np.isinf(same["psnr"]))
    np.testing.assert_allclose(same["ssim"], 1.0, atol=1e-6)


def toy_model(params, ref: jax.Array, dist: jax.Array) -> jax.Array:
    """``toy_score`` as a pure function of its parameters ``(units, weights, bias)``."""
    units_w, weights, bias = params
    e = dist - ref
    units = jnp.tanh(20.0 * jnp.einsum("bhwc,khwc->bk", e, units_w) + bias)
    ripple = jnp.mean(jnp.sin(60.0 * e + 1.0) ** 2, axis=(1, 2, 3))
    return units @ weights / 8 + 0.2 * ripple


def test_run_attack_traces_params_once_for_any_number_of_models(results):
    traces = []

    def model(params, ref, dist):
        traces.append(1)
        return toy_model(params, ref, dist)

    before = A._attack._cache_size()
    p1 = (_UNITS, _WEIGHTS, _BIAS)
    p2 = (_UNITS, -_WEIGHTS, 0.5 * _BIAS)
    adv1, _ = A.run_attack("pgd", model, REF, DIST, DIRECTION, eps=EPS, rng=RNG, params=p1)
    adv2, _ = A.run_attack("pgd", model, REF, DIST, DIRECTION, eps=EPS, rng=RNG, params=p2)
    adv3, _ = A.run_attack("pgd", model, REF, DIST, -DIRECTION, eps=EPS / 2, rng=RNG, params=p2)
    # One compilation (and one trace of the model's forward and backward pass) for every weight
    # set, budget and direction: the weights are an argument, not constants of the program.
    assert A._attack._cache_size() - before == 1 and len(traces) == 1
    np.testing.assert_allclose(adv1, results["pgd"], atol=TOL)  # the same attack as on toy_score
    assert not np.allclose(adv1, adv2) and not np.allclose(adv2, adv3)
    obj2 = A.direction_objective(lambda r, d: toy_model(p2, r, d), REF, DIRECTION)
    assert jnp.all(obj2(adv2) > obj2(DIST))  # the second model's attack pushes the second model


def test_run_attack_takes_uint8_images():
    ref8 = np.round(np.asarray(REF) * 255).astype(np.uint8)
    dist8 = np.round(np.asarray(DIST) * 255).astype(np.uint8)
    p = (_UNITS, _WEIGHTS, _BIAS)
    adv8, st8 = A.run_attack("fgsm", toy_model, ref8, dist8, DIRECTION, eps=EPS, rng=RNG, params=p)
    advf, stf = A.run_attack("fgsm", toy_model, ref8 / np.float32(255), dist8 / np.float32(255), DIRECTION,
                             eps=EPS, rng=RNG, params=p)
    assert adv8.dtype == np.float32
    np.testing.assert_allclose(adv8, advf, atol=TOL)
    for key in st8:
        np.testing.assert_allclose(st8[key], stf[key], rtol=1e-5)
    with pytest.raises(ValueError, match="dtype"):
        A.run_attack("fgsm", toy_model, ref8.astype(np.int32), dist8.astype(np.int32), DIRECTION, eps=EPS,
                     rng=RNG, params=p)


def test_run_attack_stats(results):
    adv, stats = A.run_attack("pgd", toy_score, REF, DIST, DIRECTION, eps=EPS, rng=RNG)
    assert set(stats) == {"linf", "psnr", "ssim"}
    for key, value in A.perturbation_stats(adv, DIST).items():
        np.testing.assert_array_equal(stats[key], value)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(name="cw"), ValueError, "unknown attack"),
        (dict(steps=5, name="fgsm"), ValueError, "takes no setting"),
        (dict(dist=DIST + 0.5), ValueError, r"dist must be in \[0, 1\]"),
        (dict(direction=jnp.array([1.0, 0.0, 1.0, -1.0])), ValueError, r"\+1 and -1"),
        (dict(direction=jnp.ones(3)), ValueError, "direction must have shape"),
        (dict(dist=DIST[..., :1]), ValueError, r"dist must be \[B, H, W, 3\]"),
        (dict(eps=8.0), ValueError, "eps must be in"),
        (dict(eps="4/255"), ValueError, "eps must be a number"),
        (dict(eps=True), ValueError, "eps must be a number"),
        (dict(steps=0), ValueError, "steps must be a positive Python int"),
        (dict(steps=2.5), ValueError, "steps must be a positive Python int"),
        (dict(steps=True), ValueError, "steps must be a positive Python int"),
    ],
)
def test_run_attack_rejects_bad_input(kwargs, error, match):
    args = dict(name="pgd", score_fn=toy_score, ref=REF, dist=DIST, direction=DIRECTION)
    args.update(eps=EPS, rng=RNG)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        A.run_attack(**args)


def test_objective_must_return_one_value_per_item():
    with pytest.raises(ValueError, match=r"objective\(x\) must have shape"):
        A.fgsm(lambda x: jnp.sum(x), DIST, eps=EPS)


def _zero_objective(x):
    return jnp.zeros(x.shape[0], x.dtype)


def test_apgd_random_start_is_uniform_in_the_ball():
    """With a flat objective APGD never moves, so it returns its start: ``dist`` itself, or with
    ``random_start`` a point drawn uniformly from the eps ball (both signs, mean 0), clipped to
    [0, 1]."""
    eps = 8 / 255
    dist = jnp.asarray(np.random.default_rng(0).uniform(0.1, 0.9, (2, 16, 16, 3)), jnp.float32)
    rng = A.item_keys(jax.random.PRNGKey(3), 2)
    plain = A.apgd(_zero_objective, dist, eps=eps, rng=rng, steps=2)
    np.testing.assert_array_equal(np.asarray(plain), np.asarray(dist))
    offset = np.asarray(A.apgd(_zero_objective, dist, eps=eps, rng=rng, steps=2, random_start=True) - dist)
    assert np.abs(offset).max() <= eps + 1e-6
    assert offset.min() < -0.8 * eps and offset.max() > 0.8 * eps and abs(offset.mean()) < 0.05 * eps
    assert np.std(offset) == pytest.approx(eps / np.sqrt(3), rel=0.1)  # uniform on [-eps, eps]


def test_pgd_default_step_is_a_quarter_of_eps():
    _, score = _linear_score(5, (8, 8, 3))
    dist = jnp.full((1, 8, 8, 3), 0.5, jnp.float32)
    objective = A.direction_objective(score, dist, jnp.ones(1))
    rng = A.item_keys(jax.random.PRNGKey(0), 1)
    got = A.pgd(objective, dist, eps=8 / 255, rng=rng, steps=1)
    want = A.pgd(objective, dist, eps=8 / 255, rng=rng, steps=1, step_size=2 / 255)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert not np.array_equal(np.asarray(got), np.asarray(A.pgd(objective, dist, eps=8 / 255, rng=rng, steps=1,
                                                                step_size=1.6 / 255)))


def test_ranking_objective_checks_its_anchors():
    _, score = _linear_score(5, (8, 8, 3))
    ref = jnp.full((2, 8, 8, 3), 0.5, jnp.float32)
    mos = jnp.array([0.2, 0.8])
    ok = A.ranking_objective(score, ref, mos, jnp.array([0.3, 0.5, 0.7]), jnp.array([0.1, 0.5, 0.9]))
    assert ok(ref).shape == (2,)
    for scores, labels in ((jnp.ones((3, 1)), jnp.ones((3, 1))), (jnp.ones(3), jnp.ones(2))):
        with pytest.raises(ValueError, match="anchor_scores and anchor_mos must be \\[A\\] of one length"):
            A.ranking_objective(score, ref, mos, scores, labels)


def test_apgd_first_step_has_no_momentum():
    """On a linear objective the first APGD step (step 2 eps, no momentum) already lands on the
    corner of the ball: one step suffices."""
    _, score = _linear_score(5, (8, 8, 3))
    dist = jnp.asarray(np.random.default_rng(1).uniform(0.2, 0.8, (2, 8, 8, 3)), jnp.float32)
    objective = A.direction_objective(score, dist, jnp.array([1.0, -1.0]))
    w = np.sign(np.asarray(jax.grad(lambda x: score(dist, x).sum())(dist)))
    corner = np.asarray(dist) + np.array([1.0, -1.0])[:, None, None, None] * w * (8 / 255)
    got = A.apgd(objective, dist, eps=8 / 255, steps=1)
    np.testing.assert_allclose(np.asarray(got), corner, atol=1e-6)


def test_square_proposals_are_squares_of_the_scheduled_side():
    """After one proposal every changed pixel of an item lies in one side x side square, side =
    round(sqrt(p h w)) for the scheduled area fraction p."""
    h, w, queries, p_init = 24, 24, 2, 0.3
    dist = jnp.full((16, h, w, 3), 0.5, jnp.float32)
    weights = jnp.asarray(np.random.default_rng(2).normal(size=(h, w, 3)), jnp.float32)

    def objective(x):
        return jnp.sum(x * weights, axis=(1, 2, 3))

    rng = A.item_keys(jax.random.PRNGKey(4), 16)
    start = np.asarray(A.square(objective, dist, eps=4 / 255, rng=rng, queries=1, p_init=p_init))
    after = np.asarray(A.square(objective, dist, eps=4 / 255, rng=rng, queries=queries, p_init=p_init))
    side = int(round(np.sqrt(float(A._square_fraction(jnp.int32(1), queries, p_init)) * h * w)))
    widths = []
    for changed in np.any(start != after, axis=-1):
        if changed.any():
            rows, cols = np.nonzero(changed)
            assert rows.max() - rows.min() < side and cols.max() - cols.min() < side
            widths.append(max(rows.max() - rows.min(), cols.max() - cols.min()) + 1)
    assert len(widths) >= 4 and max(widths) == side, (widths, side)
