import os

# Tests run on the CPU, split into 8 virtual devices so data-parallel code runs sharded.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import jax
import numpy as np
import pytest

from birqa_jax.model import ModelConfig, init_params

# A small model shared by every test that needs one: one compilation per shape for the suite.
TINY_CONFIG = ModelConfig(widths=(8, 12, 16), head_hidden=8)


@pytest.fixture(scope="session")
def tiny_config():
    return TINY_CONFIG


@pytest.fixture(scope="session")
def tiny_params():
    return init_params(TINY_CONFIG, 0)


@pytest.fixture(params=["jit", "nojit"])
def variant(request):
    """Run a function with and without jax.jit."""
    if request.param == "jit":
        return jax.jit
    return lambda f, **kw: f


@pytest.fixture(scope="session")
def natural_pair():
    """A natural reference crop from skimage and a noisy version: float32 [1, 64, 80, 3]."""
    from skimage import data

    ref = data.astronaut()[100:164, 180:260].astype(np.float32) / 255.0
    noise = np.random.default_rng(0).normal(0, 0.05, ref.shape).astype(np.float32)
    dist = np.clip(ref + noise, 0, 1)
    return ref[None], dist[None]
