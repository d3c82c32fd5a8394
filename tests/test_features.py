import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from skimage import data, feature, metrics

from birqa_jax import imageops as ops
from birqa_jax.model import features as F


def _luma64(rgb):
    m = np.array([[0.299, 0.587, 0.114], [-0.168735892, -0.331264108, 0.5], [0.5, -0.418687589, -0.081312411]])
    return rgb.astype(np.float64) @ m.T + np.array([0.0, 0.5, 0.5])


class WithAndWithoutJit(chex.TestCase):
    """Each pure feature function gives the reference result with and without ``jax.jit``."""

    @pytest.fixture(autouse=True)
    def _natural_pair(self, natural_pair):
        self.natural_pair = natural_pair

    @chex.variants(with_jit=True, without_jit=True)
    def test_ycbcr_matches_float64_bt601(self):
        ref, _ = self.natural_pair
        out = self.variant(ops.rgb_to_ycbcr)(jnp.asarray(ref))
        np.testing.assert_allclose(np.asarray(out), _luma64(ref), atol=2e-6)
        # Known points of the full-range matrix: white -> (1, .5, .5), pure red -> Cr = 1.
        np.testing.assert_allclose(np.asarray(ops.rgb_to_ycbcr(jnp.ones(3))), [1.0, 0.5, 0.5], atol=1e-6)
        np.testing.assert_allclose(np.asarray(ops.rgb_to_ycbcr(jnp.array([1.0, 0, 0])))[2], 1.0, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters("astronaut", "coffee", "chelsea")
    def test_ssim_mean_matches_skimage(self, image):
        img = getattr(data, image)()[:96, :128].astype(np.float64) / 255.0
        y = _luma64(img)[..., 0]
        rng = np.random.default_rng(1)
        d = np.clip(y + rng.normal(0, 0.04, y.shape), 0, 1)
        d = np.clip(d * 0.9 + 0.03, 0, 1)
        expected = metrics.structural_similarity(
            y, d, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1
        )
        m = self.variant(ops.ssim_map)(jnp.asarray(y, jnp.float32)[None, ..., None],
                                     jnp.asarray(d, jnp.float32)[None, ..., None])
        assert m.shape == (1, 96, 128, 1)
        assert abs(float(m[0, 5:-5, 5:-5].mean()) - expected) < 1e-4

    @chex.variants(with_jit=True, without_jit=True)
    def test_gaussian_filter_matches_scipy(self):
        from scipy import ndimage

        x = np.random.default_rng(2).random((1, 23, 31, 2)).astype(np.float32)
        out = self.variant(ops.gaussian_filter)(jnp.asarray(x))
        ref = ndimage.gaussian_filter(x.astype(np.float64), sigma=(0, 1.5, 1.5, 0), truncate=3.5, mode="reflect")
        np.testing.assert_allclose(np.asarray(out), ref, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_hard_lbp_matches_skimage(self):
        rng = np.random.default_rng(3)
        # Values on a coarse float32-exact grid spaced so that no interpolated neighbour ties its centre.
        img = (rng.permutation(24 * 30).reshape(24, 30) / 1024.0).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # skimage warns on float input
            expected = feature.local_binary_pattern(img.astype(np.float64), P=8, R=1, method="default")
        code = self.variant(F.lbp_code)(jnp.asarray(img, jnp.float32)[None, ..., None])[0, ..., 0]
        # skimage pads with zeros, this library with edge values: compare away from the border.
        np.testing.assert_array_equal(np.asarray(code)[1:-1, 1:-1], expected[1:-1, 1:-1])

    @chex.variants(with_jit=True, without_jit=True)
    def test_feature_stack_shape_and_identity(self):
        ref, dist = map(jnp.asarray, self.natural_pair)
        fs = self.variant(F.feature_stack)(ref, ref)
        assert fs.shape == (1, 64, 80, F.num_features())
        same = dict(zip(F.FEATURE_NAMES, jnp.moveaxis(fs, -1, 0)))
        np.testing.assert_allclose(np.asarray(same["ssim"]), 1.0, atol=1e-5)
        for k in ("d_cb", "d_cr", "lbp"):
            assert float(jnp.abs(same[k]).max()) == 0.0
        fd = F.feature_stack(ref, dist)
        assert float(fd[..., 0].mean()) < 0.9 and float(fd[..., 3].mean()) > 0.0


def test_soft_lbp_tends_to_hard_code():
    img = np.random.default_rng(4).random((1, 16, 16, 1)).astype(np.float32)
    # Edge padding makes border neighbours tie their centre (soft bit 0.5): use the interior.
    hard = F.soft_lbp_bits(jnp.asarray(img), 0.0)[:, 1:-1, 1:-1]
    soft = F.soft_lbp_bits(jnp.asarray(img), 1e-5)[:, 1:-1, 1:-1]
    assert float(jnp.mean(jnp.abs(hard - soft))) < 1e-3
    warm = F.soft_lbp_bits(jnp.asarray(img), 0.5)[:, 1:-1, 1:-1]
    assert float(jnp.mean(jnp.abs(hard - warm))) > 0.1  # the temperature really softens


def test_information_map_drops_with_blur():
    from scipy import ndimage

    y = _luma64(data.astronaut()[:64, :64] / 255.0)[..., 0]
    blurred = ndimage.gaussian_filter(y, 2.0)
    x = jnp.asarray(np.stack([y, blurred])[..., None], jnp.float32)
    _, _, v, _, _ = ops.local_moments(x, x)
    info = F.information_map(v)
    assert float(info[1].mean()) < 0.85 * float(info[0].mean())


@pytest.mark.parametrize("case", ["flat", "saturated", "identical", "natural"])
def test_features_finite_values_and_gradients(case, natural_pair):
    ref, dist = map(jnp.asarray, natural_pair)
    ref = ref[:, :32, :32]
    dist = dist[:, :32, :32]
    if case == "flat":
        ref = dist = jnp.full_like(ref, 0.5)
    elif case == "saturated":
        ref, dist = jnp.ones_like(ref), jnp.zeros_like(ref)
    elif case == "identical":
        dist = ref

    def f(d):
        return F.feature_stack(ref, d).sum()

    fs = F.feature_stack(ref, dist)
    g = jax.grad(f)(dist)
    assert bool(jnp.all(jnp.isfinite(fs))) and bool(jnp.all(jnp.isfinite(g)))


def test_feature_stack_equals_its_definition_from_the_public_functions(natural_pair):
    """The fused feature stage (one padded luma pair shared by the filters and the LBP) computes
    what the separate public functions define. Both sides are compiled: op-by-op execution
    rounds the filters differently (by an ulp), and flat regions amplify that ~1000-fold in the
    SSIM and information maps (variances divided by C2)."""

    @jax.jit
    def expected(r, d):
        ycc_r, ycc_d = ops.rgb_to_ycbcr(r), ops.rgb_to_ycbcr(d)
        y_r, y_d = ycc_r[..., :1], ycc_d[..., :1]
        _, _, vx, vy, _ = ops.local_moments(y_r, y_d)
        bits = lambda y: F.soft_lbp_bits(y, 0.02)  # noqa: E731
        return jnp.concatenate([
            ops.ssim_map(y_r, y_d), jnp.abs(ycc_r[..., 1:] - ycc_d[..., 1:]),
            jnp.mean(jnp.abs(bits(y_r) - bits(y_d)), axis=-1), F.information_map(vx), F.information_map(vy), y_r, y_d,
        ], axis=-1)

    ref, dist = map(jnp.asarray, natural_pair)
    flat = jnp.full_like(ref, 0.5).at[:, 20:40, 30:50].set(0.25)  # flat regions: variances near 0
    for r, d in ((ref, dist), (ref, ref), (flat, dist)):
        np.testing.assert_allclose(np.asarray(F.feature_stack(r, d)), np.asarray(expected(r, d)), rtol=0, atol=2e-6)


def _gather_pad(x, r):
    """``ops.pad_planes``' forward without its rule: JAX transposes the gathers itself."""
    return ops.pad_symmetric(x, r, (x.ndim - 1, x.ndim - 2))


def _autodiff_stack(monkeypatch):
    """feature_stack with JAX's own transposes in place of the stencils' custom rules (the same
    forward arithmetic): the reference for their gradients."""
    monkeypatch.setattr(ops, "_correlate_valid_vjp", ops._shifted_sum)
    monkeypatch.setattr(ops, "_moment_rows", ops._row_moments)
    monkeypatch.setattr(ops, "pad_planes", _gather_pad)
    monkeypatch.setattr(F, "_padded_soft_lbp_distance", F._soft_lbp_distance)
    return F.feature_stack.__wrapped__


@pytest.mark.parametrize("temperature, include_luma", [(0.02, True), (0.0, False)])
def test_feature_gradients_are_those_of_autodiff(monkeypatch, natural_pair, temperature, include_luma):
    """The custom reverse-mode rules of the padding, of the moments' row and column passes and
    of the soft LBP distance give JAX's autodiff gradients of the same forward (both compiled),
    with respect to both images, for an odd-sized natural pair and a pair with flat regions.
    Forward mode is refused with JAX's error."""
    ref, dist = map(jnp.asarray, natural_pair)
    ref, dist = ref[:, :33, :37], dist[:, :33, :37]
    flat = jnp.full_like(ref, 0.5).at[:, 10:20, 12:30].set(0.25)
    ref, dist = jnp.concatenate([ref, flat]), jnp.concatenate([dist, dist])  # one program for both
    cot = jnp.asarray(np.random.default_rng(0).normal(size=(*ref.shape[:3], F.num_features(include_luma))),
                      jnp.float32)
    kw = dict(lbp_temperature=temperature, include_luma=include_luma)

    def grads(stack):
        return jax.jit(lambda r, d: jax.vjp(lambda r, d: stack(r, d, **kw), r, d)[1](cot))

    got = grads(F.feature_stack)(ref, dist)
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(lambda d: F.feature_stack(ref, d, **kw), (dist,), (dist,))
    # Only now replace the rules: the jitted feature_stack above was traced with them.
    want = grads(_autodiff_stack(monkeypatch))(ref, dist)
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        for i in range(len(w)):  # the natural pair, then the flat one, each on its own scale
            assert np.abs(w[i]).max() > 0
            np.testing.assert_allclose(g[i], w[i], rtol=0, atol=2e-5 * np.abs(w[i]).max())


def test_feature_rules_differentiate_again_as_autodiff():
    """The gradient of a function of each custom rule's gradient (what the training loss's slope
    penalty takes) equals that of JAX's autodiff, rule by rule on small random inputs."""
    rng = np.random.default_rng(1)
    taps = tuple(float(w) for w in ops.gaussian_kernel())
    p = jnp.asarray(rng.random((2, 2, 21, 23)), jnp.float32)  # a luma pair of 2 images, padded by 5
    cases = {  # name: (custom, plain, input)
        "padding": (lambda x: ops.pad_planes(x, 5), lambda x: _gather_pad(x, 5), p[..., 5:-5, 5:-5]),
        "padding, reflected twice": (lambda x: ops.pad_planes(x, 5), lambda x: _gather_pad(x, 5), p[..., :4, :3]),
        "column pass": (lambda x: ops.correlate_valid(x, taps, 3), lambda x: ops._shifted_sum(x, taps, 3), p),
        "row pass": (lambda x: ops._moment_rows(x, taps), lambda x: ops._row_moments(x, taps), p),
        "LBP distance": (lambda x: F._padded_soft_lbp_distance(x, 5, 0.05),
                         lambda x: F._soft_lbp_distance(x, 5, 0.05), p),
    }
    for name, (custom, plain, x) in cases.items():
        weight = jnp.asarray(rng.normal(size=jax.eval_shape(plain, x).shape), jnp.float32)

        def twice(f):  # the gradient's cotangent depends on x, so the rule itself is differentiated
            first = jax.grad(lambda x: jnp.sum(weight * f(x) ** 2))
            return jax.jit(jax.grad(lambda x: jnp.sum(first(x) ** 2)))

        got, want = np.asarray(twice(custom)(x)), np.asarray(twice(plain)(x))
        assert np.abs(want).max() > 0, name
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max(), err_msg=name)


def test_hard_lbp_bit_is_set_on_ties_as_skimage():
    """At temperature 0 a neighbour equal to the centre sets its bit (skimage's LBP compares
    neighbour >= centre): a flat image has every bit set, skimage's code 255 (inside the border,
    where skimage reads zero padding)."""
    flat = np.full((7, 7), 0.5, np.float32)
    bits = np.asarray(F.soft_lbp_bits(jnp.asarray(flat)[None, ..., None], 0.0))
    assert bits.shape == (1, 7, 7, 1, 8) and np.all(bits == 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns about float images
        assert np.all(feature.local_binary_pattern(flat, 8, 1)[1:-1, 1:-1] == 255)
