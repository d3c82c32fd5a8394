"""train.py and eval.py as a user meets them: --help, any working folder, a missing dataset
folder, the build log, Ctrl-C and resuming (the loop in this process, sharing the session's tiny
data and compiled step)."""

import json
import os
import signal
import subprocess
import sys

import pytest

from birqa_jax import absl_entry, data
from birqa_jax.data.synthetic import KadidSyntheticConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def script(name, *args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, os.path.join(ROOT, name), *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.parametrize("name, field", [("train.py", "--config.num_steps=900"), ("eval.py", "--config.metrics=")])
def test_help_lists_config_fields_and_exits_0_from_any_folder(tmp_path, name, field):
    res = script(name, "--help", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert field in res.stdout and "--workdir" in res.stdout and "config fields" in res.stdout


def test_missing_dataset_folder_gets_the_layout_message(tmp_path):
    res = script("train.py", "--config.data.name=kadid10k", f"--config.data.data_dir={tmp_path / 'dc'}",
                 f"--workdir={tmp_path / 'run'}", cwd=tmp_path)
    assert res.returncode == 1
    assert "--config.data.manual_dir=FOLDER" in res.stderr and "dmos.csv" in res.stderr
    assert "Traceback" not in res.stderr and "Downloading" not in res.stdout
    with pytest.raises(FileNotFoundError, match="(?s)needs its official files.*dmos.csv"):
        data.load_source("kadid10k", str(tmp_path / "dc"))


def test_building_a_dataset_prints_no_download_lines(tmp_path, capsys):
    config = KadidSyntheticConfig(name="log_test", num_refs=1, crop_size=(48, 48), dist_types=(1,), levels=(1,))
    source = data.load_source("kadid_synthetic", str(tmp_path), config=config)
    out = capsys.readouterr().out
    assert len(source) == 1 and "Building kadid_synthetic" in out and "Built" in out
    assert "Downloading" not in out and "downloaded and prepared" not in out


def test_ctrl_c_stops_resumably_and_the_log_has_each_step_once(tmp_path, make_tiny_run_config, one_device_mesh,
                                                               monkeypatch, capsys):
    from birqa_jax.train import loop

    config, workdir = make_tiny_run_config(), str(tmp_path / "run")
    batches = loop.iterate

    def interrupted_at_batch_3(*args, **kwargs):
        for k, batch in enumerate(batches(*args, **kwargs), start=1):
            if k == 3:
                signal.raise_signal(signal.SIGINT)  # as Ctrl-C during step 3
            yield batch

    monkeypatch.setattr(loop, "iterate", interrupted_at_batch_3)
    before = signal.getsignal(signal.SIGINT)  # default_int_handler; SIG_IGN in a background job
    assert loop.train_and_evaluate(config, workdir) == {"stopped_at": 3, "interrupted": True}
    printed = capsys.readouterr()
    assert "stopped at step 3; run the same command to resume" in printed.out and "Ctrl-C" in printed.err
    assert "data_wait=" in printed.err  # the progress line reports the share of time spent waiting for data
    assert signal.getsignal(signal.SIGINT) is before  # the handler is restored

    log = os.path.join(workdir, "metrics.jsonl")
    with open(log, "a") as f:  # as a crash after logging step 4, before its checkpoint
        f.write(json.dumps({"step": 4, "loss": 123.0}) + "\n")
    monkeypatch.setattr(loop, "iterate", batches)
    assert loop.train_and_evaluate(config, workdir, stop_at=5) == {"stopped_at": 5}
    assert "Resuming from step 3" in capsys.readouterr().out
    with open(log) as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5] and all(r["loss"] != 123.0 for r in records)


def test_ctrl_c_outside_the_loop_ends_without_a_traceback(capsys):
    def main(argv):
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_:
        absl_entry.run_absl(main, "doc", argv=["train.py"])
    assert exit_.value.code == 130 and capsys.readouterr().err.strip() == "interrupted"


def test_eval_scatter_names_each_metrics_direction(tmp_path, monkeypatch):
    import numpy as np

    from birqa_jax.evaluation import job, report

    labels = {}
    monkeypatch.setattr(report, "scatter_with_fit", lambda pred, mos, fit, path, title, xlabel: labels.setdefault(
        title.split()[0], xlabel))
    eval_set = job.EvalSet("set", "kadid_synthetic", "test", None, np.arange(4))
    summary = {"results": {"gmsd": {}, "birqa": {}}, "per_type": {"gmsd": {}, "birqa": {}}}
    preds = {"gmsd": np.array([0.1, 0.2, 0.3, 0.4]), "birqa": np.array([0.9, 0.7, 0.5, 0.2]),
             "mos": np.array([0.9, 0.6, 0.4, 0.1])}
    job.write_set_plots(eval_set, summary, preds, str(tmp_path))
    assert labels == {"gmsd": "gmsd score (lower = better quality)", "birqa": "birqa score (higher = better quality)"}
