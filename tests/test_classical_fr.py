"""VIF, FSIM, CW-SSIM and NLPD (``classical.vif``, ``.fsim``, ``.cw_ssim``, ``.nlpd``) in both modes.

1. Reference mode: the official MATLAB values pyiqa publishes for five TID2013 pairs
   (``ResultsCalibra/results_official.csv``; the images are in tests/data/tid2013_calibration),
   as ``test_classical_reference.py`` does for PSNR/SSIM/MS-SSIM/GMSD.
2. Float mode: reverse-mode gradients against central finite differences along a random
   direction, and finite gradients on identical, flat and saturated images.
3. Properties both modes share (identical images score 1, batch independence, input checks).
4. Optional cross-check against pyiqa.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from skimage import data

from birqa_jax import classical

NEW = ("vif", "fsim", "cw_ssim", "nlpd")

# ---------------------------------------------------------------- MATLAB values of five TID2013 pairs

# pyiqa (chaofengc/IQA-PyTorch) ResultsCalibra/results_official.csv: the authors' MATLAB code on
# I03, I04, I06, I08, I19 (vifvec.m on rgb2gray; FSIMc of FeatureSIM.m on RGB; cwssim_index.m
# with 4 levels, 8 orientations, K = 0 on rgb2gray), printed to 4 decimals.
PUBLISHED = {
    "vif": (0.0172, 0.9891, 0.9924, 0.9103, 0.1745),
    "fsim": (0.6890, 0.9702, 0.9927, 0.9575, 0.8220),
    "cw_ssim": (0.2763, 0.9996, 1.0000, 0.9068, 0.8658),
    # NLP_dist.m on rgb2gray / 255, printed to 15 digits.
    "nlpd": (0.561610096893874, 0.019534798560102, 0.015915631543598, 0.302802106557736, 0.432604962261603),
}
# pyiqa 0.1.16's own largest deviation from those values on the five pairs: VIF 4.2e-4 (I19:
# 0.174918), FSIM 8e-5 (I03: 0.689080), CW-SSIM 4.4e-5 (I06: 0.999956). Here: VIF 3.8e-5, FSIM
# 3.3e-5, CW-SSIM 4.4e-5 (I06: 0.999956 as well), i.e. within the printed precision; the
# tolerance is that half-unit plus a float32 margin.
PUBLISHED_ATOL = {"vif": 0.5e-4 + 1e-5, "fsim": 0.5e-4 + 1e-5, "cw_ssim": 0.5e-4 + 1e-5,
                  # NLPD is not reproduced exactly: 1.1e-3 here (I19), pyiqa 5.6e-3 (I04; it skips
                  # the 8-bit grey rounding, which the near-identical pairs I04 and I06 show).
                  "nlpd": 1.5e-3}


@pytest.mark.parametrize("name", NEW)
def test_published_matlab_values(calibration_pairs, name):
    ref, dist = (jnp.asarray(x.astype(np.float32) / np.float32(255.0)) for x in calibration_pairs)
    got = np.asarray(classical.get(name)(ref, dist), np.float64)
    np.testing.assert_allclose(got, PUBLISHED[name], atol=PUBLISHED_ATOL[name], rtol=0)


# ------------------------------------------------------------------------------------ fixtures
# Every call below uses one batch shape ([3, 72, 80, 3]) so each metric compiles once per mode
# and once for its gradient (VIF's compilation dominates this file's time).


def _f32(u8: np.ndarray) -> jax.Array:
    return jnp.asarray(u8.astype(np.float32) / np.float32(255.0))


@pytest.fixture(scope="module")
def small_pairs():
    """72x80 natural crops (VIF's smallest size) and three distortions each: uint8 [3, 72, 80, 3]."""
    img = data.astronaut()[60:132, 180:260].astype(np.float64)
    rng = np.random.default_rng(0)
    noise = img + rng.normal(0, 12, img.shape)
    blur = scipy.ndimage.gaussian_filter(img, sigma=(1.5, 1.5, 0))
    contrast = 0.6 * img + 50
    dist = np.stack([noise, blur, contrast])
    ref = np.broadcast_to(img, dist.shape)
    return np.clip(np.round(ref), 0, 255).astype(np.uint8), np.clip(np.round(dist), 0, 255).astype(np.uint8)


@functools.cache
def _grad(name: str):
    """Reverse-mode gradient of the float mode's summed score, w.r.t. both images (jitted once,
    with XLA's backend optimisations off: the same arithmetic, VIF's gradient compiles in about
    half the time)."""
    fn = classical.get(name, "float")
    return jax.jit(jax.grad(lambda r, d: jnp.sum(fn(r, d)), argnums=(0, 1)),
                   compiler_options={"xla_backend_optimization_level": 0})


# ------------------------------------------------------------------------------- shared properties


@pytest.mark.parametrize("name", NEW)
def test_identical_images_and_batch_independence(small_pairs, name):
    """Identical images score the best value (1, NLPD 0) in both modes; noise and blur score
    worse; each pair's score does not depend on the rest of the batch (a permuted batch gives
    the permuted scores)."""
    ref, dist = _f32(small_pairs[0]), _f32(small_pairs[1])
    best = 0.0 if name == "nlpd" else 1.0
    for mode in classical.MODES:
        fn = classical.get(name, mode)
        np.testing.assert_allclose(np.asarray(fn(ref, ref)), best, atol=1e-5, err_msg=mode)
        scores = np.asarray(fn(ref, dist))
        # (CW-SSIM's 4th level of a 72x80 image barely sees the noise: 0.9997.)
        worse = scores[:2] > best + 1e-5 if name == "nlpd" else scores[:2] < best - 1e-5
        assert np.all(worse), (mode, scores)
        perm = np.array([2, 0, 1])
        np.testing.assert_allclose(np.asarray(fn(ref[perm], dist[perm])), scores[perm], rtol=1e-5, atol=1e-7)


def test_float_fsim_equals_reference_on_8bit_inputs(small_pairs):
    """FSIM's float mode is the same algorithm on unrounded values: equal on 8-bit inputs."""
    ref, dist = _f32(small_pairs[0]), _f32(small_pairs[1])
    got = np.asarray(classical.get("fsim", "float")(ref, dist))
    np.testing.assert_allclose(got, np.asarray(classical.get("fsim")(ref, dist)), atol=2e-5)


_VIF_BATCH_PROGRAM = """
import json, numpy as np, jax
from birqa_jax.classical.vif import vif_reference
rng = np.random.default_rng(0)
ref = rng.random((4, 192, 256, 3)).astype(np.float32)
dist = np.clip(ref + 0.05 * rng.standard_normal(ref.shape), 0, 1).astype(np.float32)
f = jax.jit(vif_reference)
print(json.dumps([np.asarray(f(ref, dist)).tolist(), np.asarray(f(ref[2:3], dist[2:3])).tolist()]))
"""


def test_jitted_vif_returns_at_batch_4_and_scores_items_independently():
    """A batched LU solve in VIF's program deadlocked XLA's CPU runtime at batch 4 of 192x256
    (jax 0.10.2, one CPU device, default XLA flags; this suite's 8 host devices and compile
    flags hid it): run in a subprocess with a user's plain environment and a deadline, so a
    relapse fails instead of hanging."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "JAX_COMPILATION", "JAX_PERSISTENT"))}
    done = subprocess.run([sys.executable, "-c", _VIF_BATCH_PROGRAM], capture_output=True, text=True, timeout=90,
                          env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    batch, single = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(batch) == 4 and 0.3 < batch[2] < 0.9
    assert batch[2] == pytest.approx(single[0], rel=1e-5)


def test_create_metric_direction_and_range():
    """Each is a ``create_metric`` name with its direction and documented range (no scoring)."""
    import birqa_jax

    for name in NEW:
        m = birqa_jax.create_metric(name)
        assert m.lower_better == (name == "nlpd")
        assert m.score_range == ((0.0, math.inf) if name in ("vif", "nlpd") else (0.0, 1.0))
        assert name in birqa_jax.list_metrics()


def test_min_sizes():
    x = jnp.zeros((1, 71, 100, 3))
    with pytest.raises(ValueError, match="at least 72"):
        classical.get("vif")(x, x)
    assert classical.MIN_SIZE["vif"] == 72 and classical.MIN_SIZE["fsim"] == 8
    assert classical.MIN_SIZE["cw_ssim"] == 64 and classical.MIN_SIZE["nlpd"] == 33


# ------------------------------------------------------------------------- float mode: gradients

# Central-difference step (images in [0, 1]): large enough for float32 (CW-SSIM's 4th level
# barely moves under noise: a large step), small enough to cross few kinks.
FD_STEP = {"vif": 2e-3, "fsim": 1e-3, "cw_ssim": 1e-2, "nlpd": 1e-3}


def _direction(name: str, d: jax.Array) -> jax.Array:
    """The direction of the check: random, except for FSIM. FSIM's noise threshold is the median
    of a filter response over the image, so along a random direction its derivative switches
    between pixels within steps far below float32's reach (finite differences then average many
    pieces). A contrast change of the distorted image about mid-grey keeps the order of every
    filter response, so the median stays on one pixel and the comparison is sharp."""
    if name == "fsim":
        return d - 0.5
    return jnp.asarray(np.random.default_rng(1).normal(size=d.shape).astype(np.float32))


@pytest.mark.parametrize("name", NEW)
def test_float_gradient_matches_finite_differences(small_pairs, name):
    # Inside (0, 1) so that the perturbed images need no clipping.
    r, d = 0.05 + 0.9 * _f32(small_pairs[0]), 0.05 + 0.9 * _f32(small_pairs[1])
    fn = classical.get(name, "float")
    v = _direction(name, d)
    ad = float(jnp.sum(_grad(name)(r, d)[1] * v))
    h = FD_STEP[name]
    fd = (float(jnp.sum(fn(r, d + h * v))) - float(jnp.sum(fn(r, d - h * v)))) / (2 * h)
    assert ad == pytest.approx(fd, rel=0.05), (ad, fd)


@pytest.mark.parametrize("name", NEW)
def test_float_gradient_finite_on_degenerate_images(small_pairs, name):
    """Finite scores and gradients (both images) on identical, flat, saturated and black pairs."""
    x = _f32(small_pairs[0])
    flat, white, black = jnp.full_like(x, 0.5), jnp.ones_like(x), jnp.zeros_like(x)
    fn = classical.get(name, "float")
    # Three pairs per call, the fixture's batch shape: identical, flat ref, flat dist; both flat,
    # saturated dist, black ref.
    for r, d in ((jnp.stack([x[0], flat[0], x[1]]), jnp.stack([x[0], x[1], flat[1]])),
                 (jnp.stack([flat[0], x[0], black[0]]), jnp.stack([flat[0], white[0], x[2]]))):
        gr, gd = _grad(name)(r, d)
        assert bool(jnp.all(jnp.isfinite(fn(r, d)))), name
        assert bool(jnp.all(jnp.isfinite(gr)) & jnp.all(jnp.isfinite(gd))), name


# ------------------------------------------------------------------------- cross-check: pyiqa


def _import_or_skip(module: str):
    try:
        return pytest.importorskip(module)
    except pytest.skip.Exception:
        raise
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"{module} does not import: {type(e).__name__}: {e}")


def test_crosscheck_pyiqa_fsim(small_pairs):
    """pyiqa's FSIMc on the same 8-bit RGB: the same algorithm but for the median of an even
    count (the lower middle value, MATLAB's mean of the two)."""
    torch = _import_or_skip("torch")
    pyiqa = _import_or_skip("pyiqa")
    ref, dist = small_pairs
    r, d = (torch.from_numpy(u.transpose(0, 3, 1, 2) / 255.0).float() for u in (ref, dist))
    theirs = pyiqa.create_metric("fsim", device="cpu")(d, r).detach().numpy().reshape(-1)
    np.testing.assert_allclose(np.asarray(classical.get("fsim")(_f32(ref), _f32(dist))), theirs, atol=1e-3)


@pytest.mark.parametrize("n", [1, 2, 7, 8, 1001])
def test_fsim_median_without_a_sort_is_the_median(n):
    """The bisection on the floats' bit patterns gives jnp.median's value exactly (odd and even
    lengths, ties, zeros), and its derivative reaches only the middle value(s)."""
    from birqa_jax.classical.fsim import _median

    rng = np.random.default_rng(n)
    x = (rng.random((3, n), np.float32) ** 3 * 1e4).astype(np.float32)
    x[1, : n // 2] = x[1, -1]  # ties around the middle
    x[2, : (n + 1) // 2] = 0.0  # half zeros
    x = jnp.asarray(x)
    np.testing.assert_array_equal(np.asarray(jax.jit(_median)(x)), np.asarray(jnp.median(x, axis=-1)))
    g = np.asarray(jax.grad(lambda v: _median(v)[0])(x))
    assert g[0].sum() == pytest.approx(1.0) and np.count_nonzero(g[0]) <= 2 and not g[1:].any()
