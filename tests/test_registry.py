"""The metric registry (``metric.METRICS``, ``classical.METRICS``): every name of
``list_metrics()`` is one entry, everything else reads the entries, and every registered metric
passes the same checks (a new entry is tested without a line here).

One pair size serves every metric: the largest minimum size of all entries (MS-SSIM's 161 px),
cut from scikit-image's astronaut; the distorted image is its Gaussian blur. Each metric's
programs compile once for the module: the pair is shared, and so is each ``Metric``.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import pathlib

import jax
import numpy as np
import pytest
from skimage import data, filters

import birqa_jax
from birqa_jax import classical, version
from birqa_jax import metric as api

NAMES = birqa_jax.list_metrics()
SIZE = max(entry.min_size for entry in api.METRICS.values())
# PSNR's MSE is 0 on an identical pair: +inf, as documented; every other score is finite.
INFINITE_ON_IDENTICAL = {"psnr", "psnr_y"}


@functools.cache
def _metric(name: str) -> api.Metric:
    return birqa_jax.create_metric(name)


@functools.cache
def _pair() -> tuple[np.ndarray, np.ndarray]:
    """float32 [1, SIZE, SIZE, 3] in [0, 1]: a photograph crop and its Gaussian blur."""
    ref = data.astronaut()[40 : 40 + SIZE, 160 : 160 + SIZE].astype(np.float32) / 255.0
    blurred = filters.gaussian(ref, sigma=2.0, channel_axis=-1).astype(np.float32)
    return ref[None], blurred[None]


def test_every_metric_accepts_the_size():
    assert SIZE == max(birqa_jax.MIN_SIZE, *classical.MIN_SIZE.values()) == 161


@pytest.mark.parametrize("name", NAMES)
def test_scores_an_identical_pair_better_than_a_blurred_one(name):
    m = _metric(name)
    ref, blurred = _pair()
    identical, worse = (np.asarray(m.apply(m.params, ref, d)) for d in (ref, blurred))
    assert identical.shape == worse.shape == (1,) and np.isfinite(worse[0])
    assert np.isposinf(identical[0]) if name in INFINITE_ON_IDENTICAL else np.isfinite(identical[0])
    assert (identical < worse) if m.lower_better else (identical > worse), (identical, worse)
    # Both scores lie in the documented range, and a lower-better metric's identical pair sits on
    # its best end (0 = identical for GMSD, NLPD and MAD).
    lo, hi = m.score_range
    assert lo <= worse[0] <= hi and lo <= identical[0] <= hi, (identical, worse, m.score_range)
    if m.lower_better:
        assert identical[0] == pytest.approx(lo, abs=1e-6), (identical, m.score_range)


@pytest.mark.parametrize("name", NAMES)
def test_loss_gradient_is_finite_and_nonzero(name):
    m = _metric(name)
    ref, blurred = _pair()
    # Compiled with less optimisation (the result is only checked for being finite and nonzero):
    # VIF's gradient compiles in a third of the time.
    grad_fn = jax.jit(jax.grad(m.as_loss(), argnums=2), compiler_options={"xla_backend_optimization_level": 0})
    grad = np.asarray(grad_fn(m.params, ref, blurred))
    assert grad.shape == blurred.shape and np.all(np.isfinite(grad)) and np.any(grad != 0)


@pytest.mark.parametrize("name", NAMES)
def test_apply_traces_inside_the_callers_jit_and_vmap(name):
    """``Metric.apply`` is one pure, jitted program: it traces inside a caller's ``jax.jit`` and
    ``jax.vmap`` (no Python-side reads of the images' values) with the documented output shape.
    Traced only (``eval_shape``): a nested jitted program is the same program, so its values
    need no second compilation."""
    m = _metric(name)
    ref, blurred = _pair()
    outer = jax.jit(jax.vmap(lambda r, d: m.apply(m.params, r, d), in_axes=(None, 0)))
    got = jax.eval_shape(outer, ref, np.stack([ref, blurred]))
    assert got.shape == (2, 1) and got.dtype == np.float32


CLASSICAL = [(name, mode) for name in classical.NAMES for mode in classical.MODES]


@pytest.mark.parametrize("name, mode", CLASSICAL)
def test_min_size_is_the_smallest_size_accepted(name, mode):
    """A square pair of exactly ``min_size`` px traces (shapes only, nothing compiles); one pixel
    less is a ValueError naming the size."""
    fn, size = classical.get(name, mode), classical.MIN_SIZE[name]

    def pair(n):
        return [jax.ShapeDtypeStruct((1, n, n, 3), np.float32)] * 2

    assert jax.eval_shape(fn, *pair(size)).shape == (1,)
    with pytest.raises(ValueError, match="too small|smaller than|at least|below"):
        jax.eval_shape(fn, *pair(size - 1))


@pytest.mark.parametrize("name, mode", CLASSICAL)
def test_a_bad_input_is_named_in_the_error(name, mode):
    """The check names the metric and the image that is wrong (ref or dist), for every metric in
    both modes."""
    fn, n = classical.get(name, mode), classical.MIN_SIZE[name]
    good, grey = jax.ShapeDtypeStruct((1, n, n, 3), np.float32), jax.ShapeDtypeStruct((1, n, n, 1), np.float32)
    with pytest.raises(ValueError, match=rf"\b{name}: dist must be \[B, H, W, 3\]"):
        jax.eval_shape(fn, good, grey)
    with pytest.raises(ValueError, match=rf"\b{name}: ref must be \[B, H, W, 3\]"):
        jax.eval_shape(fn, grey, good)


# ----------------------------------------------------------------- the registry is the one source


def test_every_name_is_one_entry_learned_first():
    assert NAMES == list(api.METRICS) and len(set(NAMES)) == len(NAMES)
    assert all(entry.name == name for name, entry in api.METRICS.items())
    learned = [isinstance(entry, api.LearnedMetric) for entry in api.METRICS.values()]
    assert learned == sorted(learned, reverse=True) and learned[0] and NAMES[0] == api.DEFAULT_METRIC
    assert not any(isinstance(entry, api.LearnedMetric) == isinstance(entry, classical.ClassicalMetric)
                   for entry in api.METRICS.values())


def test_the_classical_views_read_the_entries():
    entries = {n: e for n, e in api.METRICS.items() if isinstance(e, classical.ClassicalMetric)}
    assert entries == classical.METRICS and classical.NAMES == tuple(entries)
    for name, entry in entries.items():
        assert classical.HIGHER_IS_BETTER[name] == entry.higher_is_better
        assert classical.MIN_SIZE[name] == entry.min_size
        assert classical.BASELINES[name] == (entry.reference_fn, entry.higher_is_better)
        assert classical.get(name) is classical.get(name, "reference") is entry.reference_fn
        assert classical.get(name, "float") is entry.float_fn


def test_describe_and_create_metric_read_the_entry(monkeypatch):
    for name, entry in api.METRICS.items():
        line = api.describe(name)
        assert line.endswith(" " + entry.description) and line.startswith(name)
        assert ("higher is better" in line) == entry.higher_is_better
    changed = dataclasses.replace(api.METRICS["gmsd"], description="changed", higher_is_better=True,
                                  score_range=(0.0, 9.0))
    monkeypatch.setitem(api.METRICS, "gmsd", changed)
    assert api.describe("gmsd") == "gmsd     higher is better  range [0, 9]       changed"
    m = birqa_jax.create_metric("gmsd")
    assert not m.lower_better and m.score_range == (0.0, 9.0)
    monkeypatch.setitem(api.METRICS, "birqa", dataclasses.replace(api.METRICS["birqa"], score_range=(0.0, 1.0)))
    assert birqa_jax.create_metric("birqa").score_range == (0.0, 1.0)
    assert "range [0, 1]" in api.describe("birqa")


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown metric 'lpips'; choose from birqa, .*, nlpd"):
        api.describe("lpips")
    with pytest.raises(ValueError, match="psnr is a classical metric, not a packaged BiRQA weight set"):
        api.weights_path("psnr")


# ------------------------------------------------------------------------------------ options


def test_ssim_downsample_option_reaches_both_modes():
    ref = data.astronaut()[:384, :384][None] / 255.0  # ssim.m downsamples by round(384 / 256) = 2
    dist = filters.gaussian(ref, sigma=(0, 2.0, 2.0, 0))
    got = birqa_jax.create_metric("ssim", downsample=True)(ref, dist)
    assert got[0] == pytest.approx(float(classical.get("ssim")(ref, dist, downsample=True)[0]), rel=1e-6)
    undown = birqa_jax.create_metric("ssim", downsample=False)  # the float mode's default is True
    np.testing.assert_allclose(-undown.as_loss("none")(None, ref, dist),
                               classical.get("ssim", "float")(ref, dist, downsample=False), rtol=1e-6)


@pytest.mark.parametrize("name, options, message", [
    ("ssim", {"down": True}, "metric 'ssim' takes only the options downsample; got down=True"),
    ("ssim", {"downsample": "yes"}, "metric 'ssim': option downsample must be a bool, got 'yes'"),
    ("psnr", {"luma": True}, "metric 'psnr' takes no options; got luma=True"),
    ("birqa", {"downsample": True}, "metric 'birqa' takes no options; got downsample=True"),
])
def test_an_option_the_metric_does_not_take_is_a_clear_error(name, options, message):
    with pytest.raises(ValueError, match=message):
        birqa_jax.create_metric(name, **options)


def test_a_model_file_takes_no_options(tmp_path):
    path = tmp_path / "model.msgpack"
    path.write_bytes(b"checked before it is read")
    with pytest.raises(ValueError, match="model.msgpack' takes no options; got widths=3"):
        birqa_jax.create_metric(path, widths=3)


# ------------------------------------------------------------------------------------ version


def test_the_version_is_one_literal_in_a_module_that_imports_nothing():
    tree = ast.parse(pathlib.Path(version.__file__).read_text())
    assert not any(isinstance(node, ast.Import | ast.ImportFrom) for node in ast.walk(tree))
    (assign,) = [node for node in tree.body if isinstance(node, ast.Assign)]  # read by setuptools without importing
    assert ast.literal_eval(assign.value) == birqa_jax.__version__ == version.__version__
