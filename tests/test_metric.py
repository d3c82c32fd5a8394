"""The metric objects (``create_metric``, ``list_metrics``, ``Metric``) and the one-line API on
top of them: weights that travel with their config, every input form, the pure jittable
function, the loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import birqa_jax
from birqa_jax import classical
from birqa_jax import metric as api
from birqa_jax.classical import BASELINES
from birqa_jax.model import save_model


def _img(seed, shape=(32, 32, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny(tiny_config, tiny_params):
    return api.Metric.from_params(tiny_params, tiny_config)


@pytest.fixture(scope="module")
def photo_pair():
    """A photograph crop and a noisy copy, uint8 [1, 32, 32, 3]."""
    from skimage import data

    ref = data.astronaut()[100:132, 180:212]
    noise = np.random.default_rng(0).normal(0, 12, ref.shape)
    return ref[None], np.clip(ref + noise, 0, 255).astype(np.uint8)[None]


def test_list_metrics_names_every_weight_set_and_baseline():
    names = birqa_jax.list_metrics()
    learned = {n for n, m in api.METRICS.items() if isinstance(m, api.LearnedMetric)}
    assert names[0] == "birqa" and learned | set(BASELINES) == set(names)
    assert {"psnr", "ssim", "ms_ssim", "gmsd"} <= set(names)
    assert "lower is better" in api.describe("gmsd") and "higher is better" in api.describe("birqa")


def test_packaged_metric_holds_its_weights_and_config():
    m = birqa_jax.create_metric("birqa")
    params, config = birqa_jax.load()
    assert m.config == config and m.config.widths == (16, 24, 32, 48) and not m.lower_better
    assert m.score_range == (-np.inf, np.inf)
    ref = _img(0)
    identical = m(ref, ref)
    assert 0.7 < identical < 1.0  # the documented scale: about 0.75-0.85
    assert birqa_jax.score(ref, ref) == pytest.approx(identical, abs=1e-6)


def test_every_packaged_weight_set_scores_an_identical_photograph_as_documented(photo_pair):
    ref = photo_pair[0][0]
    for name, (lo, _, hi) in api.IDENTICAL_PAIR.items():
        assert lo <= birqa_jax.create_metric(name)(ref, ref) <= hi, name
        assert f"({lo:.2f}-{hi:.2f})" in api.describe(name)
    learned = {n for n, m in api.METRICS.items() if isinstance(m, api.LearnedMetric)}
    assert set(api.IDENTICAL_PAIR) == learned - {api.DEFAULT_METRIC}


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, "4", True])
def test_batch_size_must_be_a_positive_int(tiny, tiny_config, tiny_params, batch_size):
    with pytest.raises(ValueError, match=f"batch_size must be a positive integer, got {batch_size!r}"):
        tiny(_img(0), _img(1), batch_size=batch_size)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        birqa_jax.score(_img(0), _img(1), params=tiny_params, config=tiny_config, batch_size=batch_size)


@pytest.mark.parametrize("shape", [(32, 32, 3), (40, 48, 3)])
def test_as_loss_rejects_nan_on_the_host_and_gives_nan_under_jit_at_every_size(tiny, shape):
    ref = _img(0, shape)[None] / 255.0
    bad = ref.copy()
    bad[0, 3, 5, 1] = np.nan
    with pytest.raises(ValueError, match="dist contains NaN or Inf"):
        tiny.as_loss()(tiny.params, ref, bad)
    per_pair = jax.jit(tiny.as_loss("none"))(tiny.params, np.concatenate([ref, ref]), np.concatenate([ref, bad]))
    assert np.isfinite(per_pair[0]) and np.isnan(per_pair[1])
    assert np.isnan(jax.jit(tiny.as_loss("mean"))(tiny.params, bad, ref))


def test_params_without_their_config_get_a_clear_error():
    params, _ = birqa_jax.load()  # packaged weights are narrower than ModelConfig()
    with pytest.raises(ValueError, match=r"do not fit ModelConfig.*birqa_jax.load\(path\).*create_metric"):
        birqa_jax.score(_img(0), _img(1), params=params)
    with pytest.raises(ValueError, match="do not fit ModelConfig"):
        birqa_jax.perceptual_loss(params, jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 32, 32, 3)))


def test_model_file_metric_keeps_its_config(tmp_path, tiny, tiny_config, tiny_params):
    path = tmp_path / "tiny.msgpack"
    save_model(path, tiny_params, tiny_config)
    for m in (birqa_jax.create_metric(path), api.Metric.from_file(path)):
        assert m.config == tiny_config and m.name == str(path)
        assert m(_img(0), _img(1)) == pytest.approx(tiny(_img(0), _img(1)), abs=1e-6)
    with pytest.raises(ValueError, match="unknown metric 'nope'.*birqa.*gmsd"):
        birqa_jax.create_metric("nope")


def test_every_input_form(tmp_path, tiny):
    a, b = _img(0), _img(1)
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    want = tiny(a, b)
    assert tiny(str(tmp_path / "a.png"), tmp_path / "b.png") == pytest.approx(want, abs=1e-6)
    assert tiny(Image.fromarray(a), Image.fromarray(b)) == pytest.approx(want, abs=1e-6)
    assert tiny(a / 255.0 + 1e-6, b / 255.0) == pytest.approx(want, abs=1e-4)  # tolerated overshoot
    assert tiny((a / 255.0).astype(jnp.bfloat16), (b / 255.0).astype(jnp.bfloat16)) == pytest.approx(want, abs=0.05)
    mixed = tiny([a, _img(2, (40, 40, 3))], [b, _img(3, (40, 40, 3))])  # sizes differ per pair
    assert mixed.shape == (2,) and mixed[0] == pytest.approx(want, abs=1e-6)
    empty = tiny(np.zeros((0, 32, 32, 3), np.uint8), np.zeros((0, 32, 32, 3), np.uint8))
    assert empty.shape == (0,) and empty.dtype == np.float32


def test_jit_of_the_host_function_says_what_to_jit_instead():
    with pytest.raises(TypeError, match=r"create_metric\(name\)\.apply"):
        jax.jit(birqa_jax.score)(jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 32, 32, 3)))


def test_apply_is_pure_with_params_as_an_argument(tiny, tiny_config):
    r, d = jnp.asarray(_img(0)[None]), jnp.asarray(_img(1)[None])
    other = birqa_jax.init_params(tiny_config, 1)
    s0, s1 = tiny.apply(tiny.params, r, d), tiny.apply(other, r, d)
    assert float(s0[0]) != pytest.approx(float(s1[0]), abs=1e-6)
    lowered = tiny.apply.lower(tiny.params, r, d)  # params are inputs of the program, not constants
    assert len(jax.tree_util.tree_leaves(lowered.args_info)) == len(jax.tree_util.tree_leaves(tiny.params)) + 2
    with pytest.raises(ValueError, match="birqa: ref must be uint8.*int32"):
        tiny.apply(tiny.params, r.astype(jnp.int32), d)


def test_perceptual_loss_converts_uint8(tiny_config, tiny_params, photo_pair):
    ref, dist = photo_pair
    loss_u8 = birqa_jax.perceptual_loss(tiny_params, ref, dist, tiny_config)
    loss_f = birqa_jax.perceptual_loss(tiny_params, ref / 255.0, dist / 255.0, tiny_config)
    assert np.isfinite(float(loss_u8)) and float(loss_u8) == pytest.approx(float(loss_f), abs=1e-5)


@pytest.mark.parametrize("name", ["psnr", "gmsd"])
def test_classical_metrics(name, photo_pair):
    m = birqa_jax.create_metric(name)
    ref, dist = photo_pair
    fn, higher_is_better = BASELINES[name]
    want = float(fn(jnp.asarray(ref / 255.0, jnp.float32), jnp.asarray(dist / 255.0, jnp.float32))[0])
    assert m(ref[0], dist[0]) == pytest.approx(want, rel=1e-5)
    assert m.lower_better == (not higher_is_better) and m.params is None and m.config is None
    assert birqa_jax.score(ref, dist, metric=name)[0] == pytest.approx(want, rel=1e-5)
    assert m.score_range == classical.METRICS[name].score_range


def test_as_loss_direction_and_reduction(tiny, photo_pair):
    ref, dist = photo_pair
    batch_r, batch_d = np.concatenate([ref, ref]), np.concatenate([dist, ref])
    gmsd = birqa_jax.create_metric("gmsd")
    # The loss is the differentiable float mode (lower better: +score); scoring is the 8-bit
    # reference mode, within a few percent of it.
    float_scores = np.asarray(classical.get("gmsd", "float")(jnp.asarray(batch_r / 255.0, jnp.float32),
                                                             jnp.asarray(batch_d / 255.0, jnp.float32)))
    np.testing.assert_allclose(gmsd.as_loss("none")(None, batch_r, batch_d), float_scores, atol=1e-6)
    assert float(gmsd.as_loss("sum")(None, batch_r, batch_d)) == pytest.approx(float_scores.sum(), abs=1e-5)
    np.testing.assert_allclose(gmsd(batch_r, batch_d), float_scores, rtol=0.05, atol=1e-6)
    assert jnp.all(jnp.isfinite(jax.grad(lambda d: gmsd.as_loss()(None, batch_r / 255.0, d))(batch_d / 255.0)))
    ref, dist = (jnp.asarray(x / 255.0, jnp.float32) for x in photo_pair)
    assert float(tiny.as_loss()(tiny.params, ref, dist)) == pytest.approx(-tiny(ref[0], dist[0]), abs=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        tiny.as_loss("max")

    loss = tiny.as_loss()

    @jax.jit
    def step(params, d):  # docs/using.md's training-loop pattern: params passed in, not closed over
        value, g = jax.value_and_grad(loss, argnums=2)(params, ref, d)
        return value, jnp.clip(d - 0.02 * jnp.sign(g), 0, 1)

    l0, d = step(tiny.params, dist)
    l1, _ = step(tiny.params, d)
    assert float(l1) < float(l0)
