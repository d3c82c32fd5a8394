"""eval.py end to end on a tiny trained run (kadid_synthetic, 7 refs x 5 types x 5 levels, 48x64),
checked against PSNR and BiRQA scores computed here on the same test split. The run with a model
goes through ``eval_lib`` in this process (what eval.py calls after parsing its flags); the
baselines-only run goes through the command line."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats
from PIL import Image

from birqa_jax import data
from birqa_jax import metric as api
from birqa_jax.evaluation import job as eval_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABEL = "kadid_synthetic-test"
# A config file that points the no-workdir default dataset at the tiny one.
CONFIG_FILE = """
import ml_collections
from configs import eval_default


def get_config():
    c = eval_default.get_config()
    c.data = ml_collections.ConfigDict({data!r})
    return c
"""


@pytest.fixture(scope="module")
def full_eval(tiny_run, tmp_path_factory):
    """eval.py's work on the tiny run, with robustness, run in this process (shares compilations
    with the training run): (eval.json content, output folder, printed text)."""
    from configs import eval_default

    workdir, _ = tiny_run
    out = str(tmp_path_factory.mktemp("eval"))
    config = eval_default.get_config()
    eval_lib.apply_overrides(config, robustness=True, attacks=["fgsm"], eps=["2/255", "8/255"], max_examples=6,
                             crop="32x32")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        eval_lib.run(config, workdir, out, progress=False)
    with open(os.path.join(out, "eval.json")) as f:
        return json.load(f), out, printed.getvalue()


def _eval_cli(*args: str) -> subprocess.CompletedProcess:
    # One CPU device is enough here; the other flags (conftest.py's compile preset) stay.
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    env = dict(os.environ, XLA_FLAGS=" ".join(flags))
    return subprocess.run([sys.executable, os.path.join(ROOT, "eval.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _test_pairs(config):
    """(ref, dist, mos, dist_type) of the run's test split, read here independently of eval.py."""
    source = data.load_source(config.data.name, config.data.data_dir,
                              config=data.KadidSyntheticConfig(**config.data.synthetic.to_dict()))
    test = data.split_indices(data.group_ids(source), config.data.split_id, tuple(config.data.ratios))["test"]
    exs = [source[int(i)] for i in test]
    ref = np.stack([e["ref"] for e in exs]).astype(np.float32) / 255
    dist = np.stack([e["dist"] for e in exs]).astype(np.float32) / 255
    return ref, dist, np.array([e["mos"] for e in exs]), np.array([e["dist_type"] for e in exs])


def test_eval_json_matches_independent_scores(full_eval, tiny_run):
    result, _, stdout = full_eval
    workdir, config = tiny_run
    ds = result["datasets"][LABEL]
    assert result["metrics"] == ["birqa", "psnr", "ssim", "ms_ssim", "gmsd"]
    assert set(ds["results"]) == {"birqa", "psnr", "ssim", "gmsd"}
    # 48x64 images are too small for MS-SSIM: skipped with a note, not a crash.
    assert "161" in ds["skipped"]["ms_ssim"] and "ms_ssim skipped" in stdout
    keys = {"srocc", "krocc", "plcc", "plcc_fitted", "rmse_fitted", "direction", "fit_ok", "fit_message", "n",
            "n_excluded"}
    for name, r in ds["results"].items():
        assert keys <= set(r), name
        assert set(ds["per_type"][name]) == {"GBLUR", "JPEG", "AWGN", "Brighten", "Pixelate"}
    assert ds["results"]["gmsd"]["direction"] == -1

    ref, dist, mos, types = _test_pairs(config)
    assert ds["n"] == ds["results"]["psnr"]["n"] == len(mos) == 25  # one test photograph x 5 types x 5 levels
    psnr = -10 * np.log10(np.mean((ref.astype(np.float64) - dist) ** 2, axis=(1, 2, 3)))
    assert ds["results"]["psnr"]["srocc"] == pytest.approx(abs(scipy.stats.spearmanr(psnr, mos).statistic))
    assert ds["results"]["psnr"]["plcc"] == pytest.approx(abs(scipy.stats.pearsonr(psnr, mos).statistic), rel=1e-4)
    gblur = types == 1
    assert ds["per_type"]["psnr"]["GBLUR"]["srocc"] == pytest.approx(
        abs(scipy.stats.spearmanr(psnr[gblur], mos[gblur]).statistic))
    params, model_config = api.load(os.path.join(workdir, "birqa.msgpack"))
    birqa = api.score(ref, dist, params=params, config=model_config)
    assert ds["results"]["birqa"]["srocc"] == pytest.approx(abs(scipy.stats.spearmanr(birqa, mos).statistic),
                                                            abs=1e-6)


def test_robustness_section(full_eval):
    result, out, _ = full_eval
    rob = result["robustness"]
    assert rob["n"] == 6 and rob["image_size"] == [32, 32] and rob["crop"] == [32, 32]
    assert rob["eps"] == pytest.approx([2 / 255, 8 / 255]) and list(rob["attacks"]) == ["fgsm"]
    assert "32x32 centre crops" in rob["note"]
    for s in rob["attacks"]["fgsm"]["scramble"]:
        assert s["linf_max"] <= s["eps"] + 1e-6
    with open(os.path.join(out, "eval.md")) as f:
        md = f.read()
    assert "Robustness of BiRQA" in md and "32x32 centre crops" in md and "| fgsm |" in md


def test_figures_open(full_eval):
    result, out, _ = full_eval
    names = {os.path.basename(p) for p in result["plots"]}
    want = {f"{kind}_{LABEL}_{m}.png" for kind in ("scatter", "per_type") for m in ("birqa", "psnr", "ssim", "gmsd")}
    assert names == want | {"robustness_curves.png"}
    for name in names:
        with Image.open(os.path.join(out, name)) as im:
            assert im.format == "PNG" and im.size[0] >= 640
            assert np.asarray(im.convert("L")).std() > 10  # not blank


def test_baselines_without_workdir(full_eval, tiny_run, tmp_path):
    result, _, _ = full_eval
    _, config = tiny_run
    cfg = tmp_path / "eval_tiny.py"
    cfg.write_text(CONFIG_FILE.format(data=config.data.to_dict()))
    out = tmp_path / "out"
    proc = _eval_cli("--metric", "ssim", f"--config={cfg}", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "eval.json") as f:
        base = json.load(f)
    assert base["metrics"] == ["ssim"] and "workdir" not in base and "robustness" not in base
    ssim = base["datasets"][LABEL]["results"]
    assert list(ssim) == ["ssim"]
    # Same dataset and split as the run's own test split: the same numbers.
    assert ssim["ssim"] == pytest.approx(result["datasets"][LABEL]["results"]["ssim"])


def test_workdir_without_model_is_a_clear_error(tiny_run, tmp_path):
    workdir, _ = tiny_run
    empty = tmp_path / "unfinished"
    empty.mkdir()
    (empty / "config.json").write_text(open(os.path.join(workdir, "config.json")).read())
    with pytest.raises(eval_lib.EvalError, match="no exported model birqa.msgpack"):
        eval_lib.open_run(str(empty))
    (empty / "birqa.msgpack").write_bytes(b"not a model")
    with pytest.raises(eval_lib.EvalError, match="not a (readable )?BiRQA model file"):
        eval_lib.open_run(str(empty))
    with pytest.raises(eval_lib.EvalError, match="does not exist"):
        eval_lib.open_run(str(tmp_path / "nowhere"))


def test_relative_data_dir_is_in_the_user_cache_unless_the_current_folder_has_it(tmp_path, monkeypatch):
    from birqa_jax.data.from_config import data_dir_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert data_dir_path("data_cache") == str(tmp_path / "cache" / "birqa_jax" / "data_cache")
    assert not (tmp_path / "data_cache").exists()
    (tmp_path / "data_cache").mkdir()  # a build made in this folder before
    assert data_dir_path("data_cache") == str(tmp_path / "data_cache")
    assert data_dir_path(str(tmp_path / "x")) == str(tmp_path / "x")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir_path("~/tfds") == str(tmp_path / "home" / "tfds")


def test_option_errors():
    from configs import eval_default

    with pytest.raises(eval_lib.EvalError, match="needs --workdir"):
        eval_lib.run(eval_default.get_config())
    c = eval_default.get_config()
    c.metrics = ("ssim", "lpips")
    with pytest.raises(eval_lib.EvalError, match="unknown metric"):
        eval_lib.run(c)
    for block, field, bad in (("", "batch_size", 0), ("robustness.", "batch_size", -1),
                              ("robustness.", "max_examples", 0)):
        c = eval_default.get_config()  # ml_collections itself refuses 2.5 or "4" for these int fields
        c.metrics = ("ssim",)
        (c.robustness if block else c)[field] = bad
        with pytest.raises(eval_lib.EvalError, match=rf"config.{block}{field} must be a positive integer, got {bad}"):
            eval_lib.run(c)
    assert eval_lib.parse_eps(["1/255", "0.5"]) == (1 / 255, 0.5)
    with pytest.raises(eval_lib.EvalError, match="8/255, not 8"):
        eval_lib.parse_eps(["8"])
    assert eval_lib.parse_crop("96x128") == (96, 128)
    with pytest.raises(eval_lib.EvalError, match="HxW"):
        eval_lib.parse_crop("96")
