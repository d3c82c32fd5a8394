import json
import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import multihost_worker  # shares the batches and the optimiser with the workers (tests/ is on sys.path)
import numpy as np
import optax
import pytest

from birqa_jax import parallel
from birqa_jax.model import BiRQA, save_model
from birqa_jax.train import step as training
from birqa_jax.train.checkpoints import Checkpoints

HERE = os.path.dirname(__file__)


def _flat(params):
    return np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree_util.tree_leaves(jax.device_get(params))])


def _batches(n, b=8, seed=0, anchors=False):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        ref = rng.random((b, 32, 32, 3), dtype=np.float32)
        batch = {"ref": ref, "dist": np.clip(ref + rng.normal(0, 0.1, ref.shape).astype(np.float32), 0, 1),
                 "mos": rng.random(b, dtype=np.float32)}
        if anchors:
            batch["anchor"] = np.arange(b) % 4 == 0
        out.append(batch)
    return out


def _run(config, params, devices, batches, weights=training.LossWeights(), attack=None):
    """(final state, metrics of every step) of plain SGD over ``batches`` on ``devices``."""
    # Plain SGD: Adam and clipping would hide a gradient scaled by the device count.
    tx = optax.sgd(1e-3)
    mesh = parallel.make_mesh(devices)
    step = training.make_train_step(BiRQA(config), tx, mesh, weights, attack)
    state = training.replicate(training.create_train_state(params, tx, 0), mesh)
    metrics = []
    for b in batches:
        state, m = step(state, training.global_batch(b, mesh))
        metrics.append(jax.device_get(m))
    return state, metrics


# AAT with every option of the step at once: per-item attack keys, the global attacked mask
# (num_attacked), the eps curriculum, the anchored ranking with a relative margin and
# stop-gradient anchors, and the consistency term (one more forward pass). Other random attacks
# draw one key per item as PGD does (tests/test_attacks.py checks each item against its batch),
# so PGD stands for them. The slope penalty is left out: it doubles the program (a gradient
# inside the loss), and its per-item values are gathered exactly like the predictions.
AAT_WEIGHTS = training.LossWeights(plcc=1.0, rank=1.0, rank_margin_rel=0.5, rank_anchor_stop_grad=True,
                                   consistency=1.0)
AAT_ATTACK = training.AttackSpec(name="pgd", eps=4 / 255, settings={"steps": 2, "step_size": 2 / 255},
                                 num_attacked=3, eps_ramp_steps=2)


# The AAT that contains plain AT: every item attacked on the ranking objective against the global
# batch's clean scores, the clean term, the anchored ranking and the scale-invariant consistency.
FULL_WEIGHTS = training.LossWeights(plcc=1.0, rank=1.0, clean=0.5, anchor_rank=1.0, anchor_margin_rel=0.5,
                                    scaled_consistency=1.0)
FULL_ATTACK = training.AttackSpec(name="pgd", eps=4 / 255, settings={"steps": 2, "step_size": 2 / 255},
                                  anchored=False, objective="rank")


@pytest.mark.parametrize("weights, attack", [(training.LossWeights(), None), (AAT_WEIGHTS, AAT_ATTACK),
                                             (FULL_WEIGHTS, FULL_ATTACK)], ids=["clean", "aat", "aat_full"])
def test_sharded_step_matches_one_device(two_level_config, two_level_params, weights, attack):
    """8 devices give the same two updates as 1 (the gathered predictions and batch losses, the
    pmean of the gradients, and with the attack its per-item keys and the global attacked mask)."""
    assert jax.device_count() == 8, "conftest should provide 8 CPU devices"
    batches = _batches(2, anchors=attack is not None and attack.anchored)
    s8, m8 = _run(two_level_config, two_level_params, jax.devices(), batches, weights, attack)
    s1, m1 = _run(two_level_config, two_level_params, jax.devices()[:1], batches, weights, attack)
    np.testing.assert_allclose(_flat(s8.params), _flat(s1.params), rtol=1e-4, atol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(jax.device_get(s8.params)),
                    jax.tree_util.tree_leaves(jax.device_get(s1.params))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    assert int(s8.step) == int(s1.step) == 2
    # The update did something (a bug that skips it would also "match").
    assert np.abs(_flat(s8.params) - _flat(two_level_params)).max() > 1e-4
    for i, (a, b) in enumerate(zip(m8, m1)):
        assert a["finite"] == 1.0 and abs(a["loss"] - b["loss"]) < 1e-5
        if attack is None:
            continue
        if attack is FULL_ATTACK:
            for key in ("loss_clean", "loss_anchor_rank", "loss_scaled_consistency", "clean_slope", "pred_slope"):
                assert np.isfinite(a[key]) and a[key] == pytest.approx(b[key], abs=1e-5), key
            assert a["loss_anchor_rank"] > 0 and 0 < a["attack_linf"] <= 4 / 255 + 1e-6
            continue
        eps = 4 / 255 * (i + 1) / 2  # the curriculum: half the budget at the first step
        assert a["attack_eps"] == pytest.approx(eps) and 0 < a["attack_linf"] <= eps + 1e-6
        assert a["loss_consistency"] == pytest.approx(b["loss_consistency"], abs=1e-5)
        assert a["two_sided_coverage"] == pytest.approx(b["two_sided_coverage"])
        for key in ("strict_coverage", "min_label_gap", "pairs_below_margin"):
            assert np.isfinite(a[key]) and a[key] == pytest.approx(b[key], abs=1e-5), key


def test_uint8_batches_train_exactly_as_their_float_batches(two_level_config, two_level_params):
    """The loop sends uint8 crops and the step converts them (inputs.as_float): the same update,
    bit for bit, as the float32 batch the host used to make (data.train_dataset's v / 255)."""
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    dist = np.clip(ref.astype(int) + rng.integers(-30, 31, ref.shape), 0, 255).astype(np.uint8)
    mos = rng.random(8, dtype=np.float32)
    host = lambda x: x.astype(np.float32) / np.float32(255)  # noqa: E731
    tx = optax.sgd(1e-3)  # the schedule of make_optimizer starts at 0: the first step would not move
    mesh = parallel.make_mesh(jax.devices()[:1])
    step = training.make_train_step(BiRQA(two_level_config), tx, mesh)
    out = []
    for batch in ({"ref": host(ref), "dist": host(dist), "mos": mos}, {"ref": ref, "dist": dist, "mos": mos}):
        state = training.replicate(training.create_train_state(two_level_params, tx, 0), mesh)
        state, metrics = step(state, training.global_batch(batch, mesh))
        out.append((_flat(state.params), jax.device_get(metrics)))
    (p_float, m_float), (p_uint8, m_uint8) = out
    np.testing.assert_array_equal(p_uint8, p_float)
    assert m_uint8["loss"] == m_float["loss"] and m_uint8["grad_norm"] == m_float["grad_norm"]
    assert np.abs(p_float - _flat(two_level_params)).max() > 0


def test_attack_spec_checks_its_settings():
    with pytest.raises(ValueError, match="takes no setting"):
        training.AttackSpec(name="fgsm", settings={"steps": 3})
    assert training.AttackSpec(settings={"steps": 3, "step_size": 0.01}).settings == (("step_size", 0.01), ("steps", 3))


def test_nonfinite_batch_is_skipped_and_counted(two_level_config, two_level_params):
    good, bad = _batches(2)
    bad["dist"][0, 0, 0, 0] = np.nan
    state, (metrics,) = _run(two_level_config, two_level_params, jax.devices(), [bad])
    assert metrics["finite"] == 0.0 and int(state.nonfinite) == 1 and int(state.consecutive_nonfinite) == 1
    np.testing.assert_array_equal(_flat(state.params), _flat(two_level_params))
    tx = training.make_optimizer(1e-3, 10, 2, 1e-4, 1.0)
    mesh = parallel.make_mesh()
    step = training.make_train_step(BiRQA(two_level_config), tx, mesh)
    state = training.replicate(training.create_train_state(two_level_params, tx, 0), mesh)
    state, _ = step(state, training.global_batch(bad, mesh))
    state, _ = step(state, training.global_batch(good, mesh))
    assert int(state.nonfinite) == 1 and int(state.consecutive_nonfinite) == 0
    assert np.all(np.isfinite(_flat(state.params)))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(model, steps, *runs):
    """Run multihost_worker.py as two processes joined by jax.distributed (gloo on CPU), each
    taking ``runs`` one after the other from the model file ``model`` (see the worker's usage)."""
    port = _free_port()
    procs = []
    try:
        for pid in range(2):
            env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
                       JAX_PROCESS_ID=str(pid))
            # The two run side by side, so not in the test process's compilation cache folder
            # (conftest.py), but each process id in a folder of its own inside it: the second
            # launch's process i reuses the program that the first launch's process i compiled.
            if "JAX_COMPILATION_CACHE_DIR" in env:
                env["JAX_COMPILATION_CACHE_DIR"] = os.path.join(env["JAX_COMPILATION_CACHE_DIR"], f"process-{pid}")
            args = [sys.executable, os.path.join(HERE, "multihost_worker.py"), str(model), str(steps), *runs]
            procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        logs = [p.communicate(timeout=240)[0].decode(errors="replace") for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert all(p.returncode == 0 for p in procs), "\n".join(log[-3000:] for log in logs)


def test_multi_host_two_processes_match_one(tmp_path, two_level_config, two_level_params):
    steps = 3
    out, resumed, run = tmp_path / "params.npy", tmp_path / "resumed.npy", tmp_path / "run"
    init = tmp_path / "init.msgpack"  # the processes start from the session's two-level params
    save_model(init, two_level_params, two_level_config)
    # One launch trains uninterrupted, then again with checkpoints in ``run`` until it leaves
    # after step 1 (one compilation for both); a new pair of processes resumes from there.
    _two_processes(init, steps, out, f"{resumed},{run},1")
    assert not resumed.exists()  # the run with checkpoints left at step 1
    tx = multihost_worker.optimizer()
    mesh = parallel.make_mesh(jax.devices()[:1])
    step = training.make_train_step(BiRQA(two_level_config), tx, mesh)
    state = training.replicate(training.create_train_state(two_level_params, tx, 0), mesh)
    for b in multihost_worker.global_batches(steps):
        state, _ = step(state, training.global_batch(b, mesh))
    # Float reassociation across processes moves a few weights by ~5e-7; a wrong gradient scale
    # or a wrong batch slice moves them by the size of the update (up to 4e-2 here).
    np.testing.assert_allclose(np.load(out), _flat(state.params), rtol=1e-3, atol=1e-4)
    assert np.abs(np.load(out) - _flat(two_level_params)).max() > 1e-2

    # Resumed by a new pair of processes: the same parameters as the uninterrupted two-process run.
    _two_processes(init, steps, f"{resumed},{run},1")
    assert sorted(os.listdir(run / "checkpoints" / "latest")) == ["1", "3"]
    np.testing.assert_allclose(np.load(resumed), np.load(out), rtol=0, atol=1e-7)


# ----- the training loop on a tiny kadid_synthetic (built once per session) -----

def _metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _final_params(workdir, config):
    from birqa_jax.train import loop as trainer

    tx = training.make_optimizer(*trainer.optimizer_args(config))
    template = training.create_train_state(trainer.initial_params(config, trainer.model_config(config)), tx, 0)
    ckpts = Checkpoints(workdir)
    state = ckpts.restore_latest(template)
    ckpts.close()
    return state


def test_train_resume_is_exact_and_loss_falls(tmp_path, tiny_run, one_device_mesh):
    from birqa_jax import metric as api
    from birqa_jax.runs import MODEL_FILE
    from birqa_jax.train.loop import train_and_evaluate

    once, tiny_run_config = tiny_run  # the session's uninterrupted run
    twice = str(tmp_path / "twice")
    with open(os.path.join(once, "results.json")) as f:
        summary = json.load(f)
    assert train_and_evaluate(tiny_run_config, twice, stop_at=20) == {"stopped_at": 20}
    assert _final_params(twice, tiny_run_config).step == 20
    train_and_evaluate(tiny_run_config, twice)  # resumes at step 20

    a, b = _final_params(once, tiny_run_config), _final_params(twice, tiny_run_config)
    assert int(a.step) == int(b.step) == 40
    np.testing.assert_allclose(_flat(a.params), _flat(b.params), atol=1e-5)
    np.testing.assert_allclose(_flat(a.opt_state), _flat(b.opt_state), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(a.rng), np.asarray(b.rng))

    losses_once = [m["loss"] for m in _metrics(once) if "loss" in m]
    losses_twice = [m["loss"] for m in _metrics(twice) if "loss" in m]
    np.testing.assert_allclose(losses_twice, losses_once, rtol=1e-4, atol=1e-5)
    assert np.mean(losses_once[-10:]) < 0.8 * np.mean(losses_once[:5])

    # The exported model loads through the public API, and the summary compares against SSIM.
    params, config = api.load(os.path.join(once, MODEL_FILE))
    assert config.widths == tuple(tiny_run_config.model.widths)
    assert np.isfinite(api.score(np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 9, np.uint8),
                                 params=params, config=config))
    assert set(summary["test"]) == {"birqa", "ssim"} and summary["test"]["birqa"]["n"] == summary["test_examples"]


def test_log_reports_the_wait_for_data(tiny_run):
    workdir, config = tiny_run
    logged = [m for m in _metrics(workdir) if "loss" in m]
    assert len(logged) == config.num_steps
    for m in logged:
        assert m["data_wait_s"] >= 0 and 0 <= m["data_wait_frac"] <= 1
    assert sum(m["data_wait_s"] for m in logged) > 0  # prefetch 0: every batch loads in the loop


def test_corrupt_latest_checkpoint_falls_back(tmp_path, two_level_params):
    tx = training.make_optimizer(1e-3, 10, 2, 1e-4, 1.0)
    template = training.create_train_state(two_level_params, tx, 0)
    ckpts = Checkpoints(str(tmp_path), keep=3)
    ckpts.save(1, template)
    ckpts.save(2, template.replace(step=jnp.asarray(2, jnp.int32)))
    ckpts.close()
    step_dir = tmp_path / "checkpoints" / "latest" / "2"
    for root, _, files in os.walk(step_dir):
        for f in files:
            with open(os.path.join(root, f), "wb") as fh:
                fh.write(b"garbage")
    ckpts = Checkpoints(str(tmp_path), keep=3)
    with pytest.warns(UserWarning, match="step 2 .* unreadable"):
        state = ckpts.restore_latest(template)
    ckpts.close()
    assert int(state.step) == 0  # step 1's checkpoint holds the template (step counter 0)


def test_train_test_split_without_validation(tmp_path, make_tiny_run_config, one_device_mesh):
    from birqa_jax.train.loop import train_and_evaluate

    c = make_tiny_run_config()
    c.data.ratios = (0.8, 0.2)  # train/test only: no validation, the final state is exported
    summary = train_and_evaluate(c, str(tmp_path))
    assert summary["best_step"] == c.num_steps and summary["test"]["birqa"]["n"] == summary["test_examples"] > 0
    assert not any("val_srocc" in m for m in _metrics(str(tmp_path)))


def test_anchored_adversarial_training_run(tmp_path, make_tiny_run_config, one_device_mesh):
    from birqa_jax.train.loop import train_and_evaluate

    c = make_tiny_run_config()
    c.aat.enabled = True
    c.aat.settings.steps = 1
    c.aat.num_anchors = 2
    c.aat.band_width = 0.3
    c.num_steps = 3
    train_and_evaluate(c, str(tmp_path))
    logged = [m for m in _metrics(str(tmp_path)) if "loss" in m]
    assert len(logged) == 3
    for m in logged:
        assert 0 < m["attack_linf"] <= c.aat.eps + 1e-6
        assert m["band_width"] <= c.aat.band_width + 1e-6  # every batch stays inside its MOS band
        assert 0.0 <= m["two_sided_coverage"] <= 1.0 and m["anchor_max_err"] >= 0.0


def test_attack_spec_defaults_are_the_config_defaults():
    """The train step's AttackSpec and configs/default.py's aat block name one recipe: the spec a
    default config asks for is the spec with every field at its default."""
    from birqa_jax.train import loop
    from configs import default

    c = default.get_config()
    c.aat.enabled = True
    spec = loop.attack_spec(c)
    assert spec == training.AttackSpec(settings=spec.settings)
