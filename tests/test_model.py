import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from birqa_jax.model import MIN_SIZE, BiRQA, ModelConfig, init_params, param_count


def _pair(shape, seed=0):
    # numpy draws: a jax.random draw compiles a program per shape.
    rng = np.random.default_rng(seed)
    ref = rng.random(shape, dtype=np.float32)
    return jnp.asarray(ref), jnp.asarray(np.clip(ref + rng.normal(0, 0.1, shape).astype(np.float32), 0, 1))


@pytest.mark.parametrize("hw", [(MIN_SIZE, MIN_SIZE), (37, 53), (48, 40)])
def test_any_size_at_or_above_minimum(tiny_config, tiny_params, hw):
    ref, dist = _pair((2, *hw, 3))
    apply = jax.jit(BiRQA(tiny_config).apply, static_argnames="return_levels")
    score, levels, weights = apply(tiny_params, ref, dist, return_levels=True)
    assert score.shape == (2,) and levels.shape == (2, 3) and weights.shape == (2, 3)
    np.testing.assert_allclose(np.asarray(weights.sum(-1)), 1.0, atol=1e-6)
    assert bool(jnp.all(weights >= 0))
    # The score is the convex combination of the per-level scores.
    np.testing.assert_allclose(np.asarray(score), np.asarray((weights * levels).sum(-1)), rtol=1e-5)


def test_batch_items_are_independent(tiny_config, tiny_params):
    ref, dist = _pair((3, 32, 40, 3))
    apply = jax.jit(BiRQA(tiny_config).apply)
    full = apply(tiny_params, ref, dist)
    one = apply(tiny_params, ref[1:2], dist[1:2])
    np.testing.assert_allclose(np.asarray(full[1]), np.asarray(one[0]), rtol=1e-5, atol=1e-6)


@functools.lru_cache
def _score_grad(config):
    return jax.jit(jax.grad(lambda p, r, d: BiRQA(config).apply(p, r, d).sum(), argnums=2))


@pytest.mark.parametrize("case", ["flat", "saturated", "identical"])
def test_score_gradient_finite(tiny_config, tiny_params, case):
    ref, dist = _pair((1, 32, 32, 3))
    if case == "flat":
        ref = dist = jnp.full_like(ref, 0.5)
    elif case == "saturated":
        ref, dist = jnp.ones_like(ref), jnp.ones_like(ref)
    elif case == "identical":
        dist = ref
    g = _score_grad(tiny_config)(tiny_params, ref, dist)
    assert bool(jnp.all(jnp.isfinite(g)))


def test_bfloat16_compute_keeps_float32_params(tiny_config, tiny_params):
    cfg = ModelConfig(widths=tiny_config.widths, head_hidden=tiny_config.head_hidden, dtype="bfloat16")
    shapes = jax.eval_shape(lambda: init_params(cfg, 0))
    assert {x.dtype for x in jax.tree_util.tree_leaves(shapes)} == {jnp.dtype("float32")}
    assert jax.tree_util.tree_structure(shapes) == jax.tree_util.tree_structure(tiny_params)
    # One reference under noise of sigma 0 .. 0.5: the gap must be small against the spread of
    # the scores it is meant to rank (the untrained tiny model's spread is only ~5e-3).
    ref, _ = _pair((1, 32, 32, 3))
    sigmas = jnp.linspace(0.0, 0.5, 6)[:, None, None, None]
    dist = jnp.clip(ref + sigmas * np.random.default_rng(3).normal(size=(6, 32, 32, 3)).astype(np.float32), 0, 1)
    ref = jnp.repeat(ref, 6, axis=0)
    s16 = np.asarray(jax.jit(BiRQA(cfg).apply)(tiny_params, ref, dist))
    s32 = np.asarray(jax.jit(BiRQA(tiny_config).apply)(tiny_params, ref, dist))  # same weights, float32
    assert s16.dtype == np.float32
    spread = s32.max() - s32.min()
    assert spread > 1e-3
    np.testing.assert_allclose(s16, s32, atol=0.1 * spread)


def _equations(jaxpr):
    """Every equation of ``jaxpr`` and of the jaxprs nested in its equations' parameters."""
    for eqn in jaxpr.eqns:
        yield eqn
        for p in eqn.params.values():
            for sub in p if isinstance(p, (tuple, list)) else (p,):
                sub = getattr(sub, "jaxpr", sub)
                if hasattr(sub, "eqns"):
                    yield from _equations(sub)


def test_bfloat16_activations_stay_bfloat16(tiny_config, tiny_params):
    """Under the bf16 config every module output of the pyramid and every convolution's operands
    and result are bfloat16: float32 stays in the feature stage, the head (by design) and the
    accumulators of reductions (2x2 means, GeM pooling), which fuse into them."""
    cfg = ModelConfig(widths=tiny_config.widths, head_hidden=tiny_config.head_hidden, dtype="bfloat16")
    ref, dist = _pair((1, 32, 32, 3))
    apply = functools.partial(BiRQA(cfg).apply, capture_intermediates=True, mutable=["intermediates"])
    _, state = jax.eval_shape(apply, tiny_params, ref, dist)
    outputs = {"/".join(str(getattr(k, "key", k)) for k in path): x.dtype
               for path, x in jax.tree_util.tree_leaves_with_path(state["intermediates"])}
    pyramid = {k: d for k, d in outputs.items() if not k.startswith(("head", "__call__"))}
    assert any(k.startswith("scgb_0") for k in pyramid) and any(k.startswith("csram_1") for k in pyramid), outputs
    assert set(pyramid.values()) == {jnp.dtype("bfloat16")}, {k: d for k, d in pyramid.items() if d != jnp.bfloat16}
    convs = [e for e in _equations(jax.make_jaxpr(BiRQA(cfg).apply)(tiny_params, ref, dist).jaxpr)
             if e.primitive.name == "conv_general_dilated"]
    # levels; CSRAM's 1x1s (strength and confidence as one conv, phi); SCGB's gates
    assert len(convs) == 2 * 3 + 2 * 2 + 2 * 2
    assert {v.aval.dtype for e in convs for v in (*e.invars, *e.outvars)} == {jnp.dtype("bfloat16")}


def test_parameter_counts_are_exact():
    def count(cfg):
        return param_count(jax.eval_shape(lambda: init_params(cfg)))

    assert count(ModelConfig()) == 429_372  # compact: well under 1M
    assert count(ModelConfig(widths=(16, 24, 32, 48))) == 110_500  # the packaged weights' config


def test_config_validation():
    with pytest.raises(ValueError, match="dtype"):
        ModelConfig(dtype="float16")
    with pytest.raises(ValueError, match="unknown model config fields"):
        ModelConfig.from_dict({"widths": [8], "depth": 3})
    assert ModelConfig.from_dict(ModelConfig().to_dict()) == ModelConfig()


@pytest.mark.parametrize("hw", [(8, 8), (7, 9), (5, 4)])
def test_down_equals_average_pooling_that_ignores_padding(hw):
    import flax.linen as nn

    from birqa_jax.model.pyramid import _down

    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, *hw, 3)).astype(np.float32))
    expected = nn.avg_pool(x, (2, 2), strides=(2, 2), padding="SAME", count_include_pad=False)
    np.testing.assert_allclose(np.asarray(_down(x)), np.asarray(expected), atol=1e-6)
