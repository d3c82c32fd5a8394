import os
import shutil
import tempfile

# Tests run on the CPU, split into 8 virtual devices so data-parallel code runs sharded.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
# The suite compiles hundreds of small programs and runs each a few times, so compiling is most
# of its CPU time; three XLA options cut it, where this jaxlib's XLA has them (XLA aborts the
# process on a flag it does not know, and such options come and go between versions). An
# XLA_FLAGS that already names one keeps its own value. Subprocesses inherit them with the
# environment.
# - The FAST_COMPILE preset (less optimisation; the tiny model's gradient program comes out with
#   246 fusions instead of 248) took 16% off the CPU time of compiling the tiny train step and
#   left its step time unchanged (2 runs each, 2026-12-02).
# - The CPU backend's older loop emitters instead of its MLIR fusion emitters: the two-level
#   model's gradients (with respect to the parameters and to the distorted image, 32x32) compiled
#   in 4.6 and 3.6 s instead of 8.4 and 6.9 (two rounds, fresh processes, alternated), and the
#   suite ran in 5:19 and 5:10 instead of 6:00 and 6:10 (2026-12-02, this 2-core machine, each
#   run with a per-test compile-time probe loaded), with every test passing either way. They
#   generate slower loops: the packaged model's 540x960 forward ran in 190 ms instead of 101
#   (three rounds, fresh processes, alternated), so this is for the suite's tiny shapes, where
#   compiling dominates, and not a setting for users.
# - LLVM's optimisation level 1 instead of 2 for the generated loops: the two-level model's clean
#   and AAT train steps compiled in 1.8-2.3 and 5.0-5.1 s instead of 2.7 and 7.6-7.9 s (fresh
#   processes, alternated, 2026-12-02), the robustness test's PGD-10 on the packaged model ran as
#   fast (4.5 vs 4.7 s), and the suite took 248 and 204 s instead of 290 and 270 s (user CPU 381
#   instead of 512 s; two runs each, alternated). Level 0 halves compiling again but runs that
#   PGD-10 36 times slower.
_FAST_COMPILE_FLAGS = {"xla_cpu_opt_preset": "FAST_COMPILE", "xla_cpu_use_fusion_emitters": "false",
                       "xla_backend_optimization_level": "1"}


def _xla_defines(flags):
    """The subset of ``flags`` that jaxlib's libraries name (XLA's flag table holds each name)."""
    import glob
    import importlib.util
    import mmap

    found = set()
    if not flags:
        return found
    spec = importlib.util.find_spec("jaxlib")
    for path in glob.glob(os.path.join(os.path.dirname(spec.origin), "*.so")) if spec and spec.origin else ():
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            found.update(flag for flag in flags if flag not in found and m.find(flag.encode()) >= 0)
        if len(found) == len(flags):
            break
    return found


for _flag in sorted(_xla_defines([f for f in _FAST_COMPILE_FLAGS if f not in os.environ["XLA_FLAGS"]])):
    os.environ["XLA_FLAGS"] += f" --{_flag}={_FAST_COMPILE_FLAGS[_flag]}"

# Imported after the environment above is set: jax reads JAX_PLATFORMS on import, XLA_FLAGS on its first use.
import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from birqa_jax import parallel  # noqa: E402
from birqa_jax.model import ModelConfig, init_params  # noqa: E402

_CACHE_KEY = pytest.StashKey[str]()


# Many tests build the same program through different Python callables (a train step per test,
# a scoring function per run, the same model in each command-line subprocess); jax.jit's
# in-memory cache is per callable and per process, so each would compile it again. JAX's
# persistent compilation cache is keyed on the lowered program, the compile options and the
# devices, so an identical program compiles once per session. The folder is new for every test
# process (each pytest-xdist worker has its own: JAX writes entries without a lock, so two
# processes running at once must not share one) and removed at its end, so no run depends on
# what an earlier one left. Subprocesses a test starts and waits for inherit it through the
# environment; tests that start processes running side by side remove it from theirs. It is
# made here, not on import: worker processes that the data pipelines spawn import this module.
def pytest_configure(config):
    folder = tempfile.mkdtemp(prefix="birqa-jax-test-compilation-cache-")
    config.stash[_CACHE_KEY] = folder
    os.environ.update(JAX_COMPILATION_CACHE_DIR=folder, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def pytest_unconfigure(config):
    if _CACHE_KEY in config.stash:
        shutil.rmtree(config.stash[_CACHE_KEY], ignore_errors=True)

# pytest-xdist (the "-n 2" of pyproject.toml's addopts) runs each group below in one worker, so
# the tests that share a module or session fixture, or compile the same programs, build and
# compile them once. A group is a test module, except for these tests of tests/test_training.py:
# they run as three groups, the third with tests/test_eval_cli.py (the users of the session's
# tiny training run). Groups are handed out in the order of the items, longest first (from the
# suite's durations), so that neither worker is left with a long group at the end; the order of
# the tests inside a module is kept.
_TRAINING_GROUPS = {"test_multi_host_two_processes_match_one": "multihost",
                    "test_sharded_step_matches_one_device": "train_step",
                    "test_uint8_batches_train_exactly_as_their_float_batches": "train_step",
                    "test_nonfinite_batch_is_skipped_and_counted": "train_step"}
_LONGEST_FIRST = ["tiny_run", "test_benchmarks", "test_registry", "test_attacks", "train_step", "multihost",
                  "test_classical_reference", "test_robust_weights", "test_study", "test_model", "test_metric",
                  "test_unit_facts", "test_cli", "test_features", "test_baselines", "test_entry_points", "test_losses",
                  "test_robust_eval", "test_runner"]


def _group(nodeid: str) -> str:
    path, _, name = nodeid.partition("::")
    module = os.path.splitext(os.path.basename(path))[0]
    if module == "test_training":
        return _TRAINING_GROUPS.get(name.split("[")[0], "tiny_run")
    return "tiny_run" if module == "test_eval_cli" else module


def pytest_collection_modifyitems(config, items):
    rank = {g: i for i, g in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_group(item.nodeid), len(rank)))  # stable: module order kept


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook
def pytest_xdist_make_scheduler(config, log):
    # xdist's own "loadgroup" marks do not reach its scheduler under pytest 9 (it renames the
    # node ids through an attribute pytest no longer reads), so the groups are the scopes of
    # its "loadscope" scheduling, in the order of the items ("--no-loadscope-reorder").
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return _group(nodeid)

    return GroupScheduling(config, log)


# The tiny model shared by the tests that pin values of a model (its golden values) or score
# with one: one compilation per shape for the suite.
TINY_CONFIG = ModelConfig(widths=(8, 12, 16), head_hidden=8)


@pytest.fixture(scope="session")
def tiny_config():
    return TINY_CONFIG


@pytest.fixture(scope="session")
def tiny_params():
    return init_params(TINY_CONFIG, 0)


# A two-level model (one CSRAM and one SCGB block) for the tests that compare runs with each
# other and pin no values (devices, processes, input dtypes, a skipped batch, the study's
# plumbing, the robustness evaluation) and for the session's tiny training runs: its train
# steps and attacks compile in about half the CPU time of the tiny model's three levels.
TWO_LEVEL_CONFIG = ModelConfig(widths=(4, 4), head_hidden=4)


@pytest.fixture(scope="session")
def two_level_config():
    return TWO_LEVEL_CONFIG


@pytest.fixture(scope="session")
def two_level_params():
    return init_params(TWO_LEVEL_CONFIG, 0)


@pytest.fixture(scope="session")
def natural_pair():
    """A natural reference crop from skimage and a noisy version: float32 [1, 64, 80, 3]."""
    from skimage import data

    ref = data.astronaut()[100:164, 180:260].astype(np.float32) / 255.0
    noise = np.random.default_rng(0).normal(0, 0.05, ref.shape).astype(np.float32)
    dist = np.clip(ref + noise, 0, 1)
    return ref[None], dist[None]


@pytest.fixture(scope="session")
def make_tiny_run_config(tmp_path_factory):
    """Factory of the embedded default config shrunk to seconds: a tiny kadid_synthetic (7 refs
    x 5 types x 5 levels, 48x64, built once per session), the two-level model, batches of 8
    crops of 32x32, 40 steps. Tests that train with it share one data build and one compiled
    step."""
    data_dir = str(tmp_path_factory.mktemp("tfds"))

    def make():
        from configs import default

        c = default.get_config()
        c.data.data_dir = data_dir
        c.data.synthetic.name = "test_tiny"
        c.data.synthetic.num_refs = 7
        c.data.synthetic.crop_size = (48, 64)
        c.data.synthetic.dist_types = (1, 10, 11, 16, 21)
        c.data.crop_size = (32, 32)
        c.model = type(c.model)(TWO_LEVEL_CONFIG.to_dict())
        c.batch_size = 8
        c.num_steps = 40
        c.warmup_steps = 2
        c.learning_rate = 3e-3
        c.log_every = 1
        c.eval_every = c.checkpoint_every = 1000
        c.eval_batch_size = 16
        c.test_baselines = ()
        c.prefetch = 0
        return c

    return make


@pytest.fixture
def one_device_mesh(monkeypatch):
    """Make the trainer use one device: eight virtual devices on a 2-core machine only add
    overhead to a whole training run; the sharded step has its own tests."""
    make_mesh = parallel.make_mesh
    monkeypatch.setattr(parallel, "make_mesh", lambda devices=None: make_mesh(jax.devices()[:1]))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, make_tiny_run_config):
    """``(workdir, config)`` of the session's one finished training run (the tiny run config,
    checkpoints every 10 steps, SSIM as test baseline, on one device), shared by every module
    that needs a trained run; its summary is ``<workdir>/results.json``."""
    from birqa_jax.train.loop import train_and_evaluate

    c = make_tiny_run_config()
    c.checkpoint_every = 10
    c.test_baselines = ("ssim",)
    workdir = str(tmp_path_factory.mktemp("tiny_run"))
    make_mesh = parallel.make_mesh
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parallel, "make_mesh", lambda devices=None: make_mesh(jax.devices()[:1]))
        train_and_evaluate(c, workdir)
    return workdir, c


# The five TID2013 pairs of pyiqa's calibration table (the published MATLAB values of the
# classical metrics are for these), kept in tests/data/tid2013_calibration as PNG.
CALIBRATION_IMAGES = ("I03", "I04", "I06", "I08", "I19")
CALIBRATION_DIR = os.path.join(os.path.dirname(__file__), "data", "tid2013_calibration")


@pytest.fixture(scope="session")
def calibration_pairs():
    """(ref, dist) uint8 [5, 384, 512, 3] of the calibration pairs, in CALIBRATION_IMAGES order."""
    from PIL import Image

    def load(sub: str) -> np.ndarray:
        return np.stack([np.asarray(Image.open(os.path.join(CALIBRATION_DIR, sub, f"{n}.png")).convert("RGB"))
                         for n in CALIBRATION_IMAGES])

    return load("ref_dir"), load("dist_dir")
