"""The head's GeM input option (``ModelConfig.gem_input``): today's clamp stays the default."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from birqa_jax.model import ModelConfig, ReliabilityHead, init_params, load_model
from birqa_jax.model.pyramid import GELU_MIN, gem_pool


def test_default_is_the_clamp_and_old_model_files_keep_it():
    assert ModelConfig().gem_input == "clamp"
    old = {k: v for k, v in ModelConfig().to_dict().items() if k != "gem_input"}  # a file from before the option
    assert ModelConfig.from_dict(old).gem_input == "clamp"
    import birqa_jax.model

    path = birqa_jax.model.__file__.replace("model/__init__.py", "assets/birqa_default.msgpack")
    _, config, _ = load_model(path)
    assert config.gem_input == "clamp"
    with pytest.raises(ValueError, match="gem_input"):
        ModelConfig(gem_input="relu")


def test_gem_inputs_by_hand():
    f = jnp.array([[[[-0.1, 0.5]], [[-0.16, 2.0]]]])  # [1, 2, 1, 2]
    p = jnp.float32(1.0)  # p = 1: the plain mean of what is pooled
    np.testing.assert_allclose(gem_pool(f, p), [[1e-6, 1.25]], rtol=1e-5)
    sp = np.log1p(np.exp(np.asarray(f)))
    np.testing.assert_allclose(gem_pool(f, p, "softplus"), sp.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(gem_pool(f, p, "shift"), (np.asarray(f) - GELU_MIN).mean(axis=(1, 2)), rtol=1e-5)
    # GELU's minimum (both forms) is above GELU_MIN: "shift" keeps every GELU output positive.
    x = jnp.linspace(-5, 5, 100001)
    assert min(float(jax.nn.gelu(x).min()), float(jax.nn.gelu(x, approximate=False).min())) > GELU_MIN + 1e-6


@pytest.mark.parametrize("mode", ["softplus", "shift"])
def test_negative_activations_get_gradient_only_with_the_fix(mode):
    # GELU outputs, as the pyramid's levels are: about half of them negative.
    levels = [jax.nn.gelu(jnp.asarray(np.random.default_rng(i).normal(0, 1, (2, 4 >> i, 4 >> i, 3)), jnp.float32))
              for i in range(2)]
    head = ReliabilityHead(hidden=4, gem_init=3.0)
    params = jax.jit(head.init)(jax.random.key(0), levels)  # same parameter tree for every mode

    def grads(m):
        def fn(lv):
            return ReliabilityHead(hidden=4, gem_init=3.0, gem_input=m).apply(params, lv)[0].sum()

        return jax.jit(jax.grad(fn))(levels)

    negative = np.asarray(levels[-1]) < 0
    assert negative.any()
    assert np.all(np.asarray(grads("clamp")[-1])[negative] == 0.0)
    assert np.all(np.asarray(grads(mode)[-1]) != 0.0)


def test_model_with_the_fix_uses_the_same_parameters():
    clamp, fixed = ModelConfig(widths=(8, 12), head_hidden=8), ModelConfig(widths=(8, 12), head_hidden=8,
                                                                          gem_input="softplus")
    a, b = init_params(clamp, 0), init_params(fixed, 0)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    assert json.loads(json.dumps(fixed.to_dict()))["gem_input"] == "softplus"


def test_gem_floor_fraction_counts_the_clamped_inputs(two_level_config, two_level_params):
    """The fraction reported per pair is the share of head inputs below the clamp, by hand."""
    from birqa_jax.model import BiRQA
    from birqa_jax.model.pyramid import gem_floor_fraction

    rng = np.random.default_rng(0)
    ref = jnp.asarray(rng.random((2, 32, 32, 3)), jnp.float32)
    dist = jnp.clip(ref + 0.1, 0, 1)
    got = np.asarray(gem_floor_fraction(two_level_config, two_level_params, ref, dist))
    # The head's inputs, captured: the levels after the top-down pass.
    _, state = BiRQA(two_level_config).apply(two_level_params, ref, dist, capture_intermediates=True,
                                             mutable=["intermediates"])
    levels = [state["intermediates"]["scgb_0"]["__call__"][0][i] for i in range(2)]
    want = np.mean([np.mean(np.asarray(f) < 1e-6, axis=(1, 2, 3)) for f in levels], axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got.shape == (2,) and 0 < got.min() and got.max() < 1
