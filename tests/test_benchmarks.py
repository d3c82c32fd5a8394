"""Benchmarks: every benchmark on tiny shapes (1-2 calls), their JSON, and their helpers.

No assertion depends on a measured time: timings are checked for structure and arithmetic only.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import aat_speed, common, peers, report, train_speed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Two levels, so that CSRAM and SCGB are in every program: the benchmarks' code paths are the
# same for any depth, and the train steps compile in half the CPU time of three levels (88 -> 45 s
# for the train and AAT benchmarks below, 2026-12-02).
TINY_WIDTHS = (4, 4)
TINY = {
    "speed": dict(height=32, width=48, batches=(2,), dtypes=("float32", "bfloat16"), widths=TINY_WIDTHS,
                  iters=2, warmup=1),
    # One device: the sharded steps have their own tests (tests/test_training.py); compiling them
    # over 8 virtual devices here would double this module's time.
    "train_speed": dict(height=32, width=32, batch=8, widths=TINY_WIDTHS, iters=1, warmup=1, devices=1),
    "aat_speed": dict(height=32, width=32, per_device_batch=2, num_anchors=1, widths=TINY_WIDTHS, iters=1, warmup=1,
                      devices=1),
    "peers": dict(height=32, width=32, iters=1, warmup=1),
}
ROW_KEYS = {"what", "batch", "height", "width", "dtype", "first_call_s", "median_s", "mean_s", "min_s", "max_s",
            "times_s", "iters", "pairs_per_s", "pairs_per_s_mean"}


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def tiny_report():
    return report.run_all(TINY, "tiny")


def _check_rows(result, iters):
    assert result["rows"], result
    for r in result["rows"]:
        assert ROW_KEYS <= set(r), ROW_KEYS - set(r)
        assert r["iters"] == len(r["times_s"]) == iters
        assert r["median_s"] == pytest.approx(float(np.median(r["times_s"])))
        assert r["mean_s"] == pytest.approx(float(np.mean(r["times_s"])))
        assert r["pairs_per_s"] == pytest.approx(r["batch"] / r["median_s"])
        assert r["min_s"] <= r["median_s"] <= r["max_s"] and r["first_call_s"] > 0


def test_report_structure_and_json(tiny_report, tmp_path):
    assert tiny_report["device"] == "cpu" and tiny_report["mode"] == "tiny"
    assert list(tiny_report["benchmarks"]) == list(TINY)
    for name, result in tiny_report["benchmarks"].items():
        assert "error" not in result, result
        assert result["benchmark"] == name and result["wall_s"] > 0
        env = result["env"]
        assert env["platform"] == "cpu" and env["device_count"] == 8 and len(env["loadavg"]) == 3
        assert env["jax_version"] and env["date_utc"]
    json_path, md_path = report.write(tiny_report, str(tmp_path))
    assert os.path.basename(json_path) == "cpu.json" and os.path.basename(md_path) == "cpu.md"
    with open(json_path) as f:
        assert json.load(f) == json.loads(json.dumps(tiny_report))
    with open(md_path) as f:
        md = f.read()
    assert all(f"## {name}" in md for name in TINY) and "| BiRQA apply_fn | bfloat16 | 2 | 32 x 48 |" in md


def test_speed_rows(tiny_report):
    result = tiny_report["benchmarks"]["speed"]
    _check_rows(result, iters=2)
    got = [(r["what"], r["dtype"], r["batch"], r["height"], r["width"]) for r in result["rows"]]
    assert got == [("features.feature_stack", "float32", 1, 32, 48), ("BiRQA apply_fn", "float32", 2, 32, 48),
                   ("BiRQA apply_fn", "bfloat16", 2, 32, 48)]
    assert result["settings"]["model_config"]["widths"] == list(TINY_WIDTHS)


def test_train_speed_rows(tiny_report):
    result = tiny_report["benchmarks"]["train_speed"]
    _check_rows(result, iters=1)
    (row,) = result["rows"]
    assert (row["batch"], row["devices"], row["height"], row["width"]) == (8, 1, 32, 32)


def test_aat_fused_and_separate_do_the_same_work(tiny_report):
    result = tiny_report["benchmarks"]["aat_speed"]
    _check_rows(result, iters=1)
    fused, separate = result["rows"]
    assert fused["batch"] == separate["batch"] == 2 * 1
    assert result["fused_over_separate"] == pytest.approx(fused["pairs_per_s"] / separate["pairs_per_s"])
    last = result["last_step"]
    # Another random start changes the loss by ~1e-3 relative; the same work agrees to rounding.
    assert last["loss"][0] == pytest.approx(last["loss"][1], rel=1e-4)
    assert last["grad_norm"][0] == pytest.approx(last["grad_norm"][1], rel=1e-3)
    assert 0 < last["attack_linf"] <= 4 / 255 + 1e-6


def test_peers_rows(tiny_report):
    result = tiny_report["benchmarks"]["peers"]
    if not _torch_available():
        assert result["skipped"].startswith("torch not importable")
        return
    _check_rows(result, iters=1)
    assert [r["dtype"] for r in result["rows"]] == ["float32", "bfloat16 autocast"] * 3
    assert all("random weights, speed only" in r["what"] for r in result["rows"])


def test_peers_skip_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    result = peers.run(iters=1, warmup=1)
    assert result["skipped"].startswith("torch not importable") and "rows" not in result
    assert "skipped" in peers.markdown(result)


def test_failed_benchmark_is_recorded():
    out = report.run_all({"speed": dict(height=8, width=8)}, "tiny")
    assert "must be >= 32" in out["benchmarks"]["speed"]["error"]
    assert "failed:" in report.markdown(out)
    with pytest.raises(ValueError, match="unknown benchmark"):
        report.run_all({"sped": {}}, "tiny")


def test_imports_without_data_packages():
    # The GPU image has no tensorflow-datasets, grain or ml-collections.
    code = (
        "import sys\n"
        "for m in ('tensorflow_datasets', 'grain', 'ml_collections', 'array_record'):\n"
        "    sys.modules[m] = None\n"
        "import benchmarks.report, benchmarks.speed, benchmarks.train_speed, benchmarks.aat_speed\n"
        "import benchmarks.peers, benchmarks.common, benchmarks.cost, benchmarks.input_speed, benchmarks.interleaved\n"
        "import benchmarks.classical_speed\n"
        "assert 'birqa_jax.data' not in sys.modules\n"
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_cost_stages_add_up_to_the_forward(tiny_params, tmp_path):
    from benchmarks import cost
    from birqa_jax.model import ModelConfig

    # Two levels, their parameters taken from the shared tiny model's (no init to compile).
    config = ModelConfig(widths=(8, 12), head_hidden=8)
    drop = ("level_2", "csram_2", "scgb_1")
    p = {k: v for k, v in tiny_params["params"].items() if k not in drop}
    p["head"] = {k: v for k, v in p["head"].items() if not k.endswith("_2")}
    h, w = 32, 48
    result = cost.run(h, w, dtypes=("float32",), configs={"two": config}, params={"two": {"params": p}},
                      train_size=None)
    common.write_json(str(tmp_path / "cost.json"), result)
    with open(tmp_path / "cost.json") as f:
        assert json.load(f) == json.loads(json.dumps(result))
    assert result["benchmark"] == "cost" and result["env"]["platform"] == "cpu" and "own function" in result["note"]
    rows = {r["stage"]: r for r in result["rows"]}
    assert list(rows) == ["features", "level_0", "level_1", "csram_1", "scgb_0", "head", "forward"]
    assert rows["level_1"]["inputs"] == "float32[1, 16, 24, 8]"  # level 0's output: half size, width 8
    for r in rows.values():
        assert r["flops"] > 0 and r["bytes_accessed"] > 0 and r["buffer_bytes"] > 0, r
        assert r["per_pair"]["bytes_accessed"] == r["bytes_accessed"]  # batch 1
    # The feature stage reads both images and writes its 8 channels at least once.
    assert rows["features"]["buffer_bytes"] >= 4 * h * w * (3 + 3 + 8)
    # Compiled apart or together, the stages do the same arithmetic: a missing stage, a wrong
    # input shape or a stage costed twice moves the sum away from the whole forward.
    stages = [r for name, r in rows.items() if name != "forward"]
    assert sum(r["flops"] for r in stages) == pytest.approx(rows["forward"]["flops"], rel=0.02)
    assert sum(r["buffer_bytes"] for r in stages) == pytest.approx(rows["forward"]["buffer_bytes"], rel=0.15)
    assert "| two | 8-12 | float32 | forward |" in cost.markdown(result)


def test_cost_buffer_bytes_counts_each_top_level_buffer_once():
    import jax.numpy as jnp

    from benchmarks import cost

    # One fused loop: reads x (400 bytes) once, writes 400 bytes; XLA counts the same.
    c = cost.program_cost(lambda x: jnp.sin(x) * 2, jnp.zeros((10, 10)))
    assert c["buffer_bytes"] == c["bytes_accessed"] == 800 and c["flops"] == 100
    # Eleven shifted windows of one input: XLA charges each slice, the buffers count it once.
    c = cost.program_cost(lambda x: sum(x[i:i + 20] * (i + 1.0) for i in range(11)), jnp.zeros((30, 10)))
    assert c["buffer_bytes"] == 4 * (30 * 10 + 20 * 10)
    assert c["bytes_accessed"] == 4 * (11 * 20 * 10 + 20 * 10)


def test_input_speed_tiny_writes_json(tmp_path, capsys):
    from benchmarks import input_speed

    out = tmp_path / "input.json"
    input_speed.main(["--source-size", "48x64", "--size", "32x32", "--refs", "2", "--types", "2", "--batch", "2",
                      "--batches", "2", "--workers", "2", "--tmp", str(tmp_path), "--out", str(out)])
    with open(out) as f:
        result = json.load(f)
    assert result["benchmark"] == "input_speed" and len(result["env"]["loadavg"]) == 3 and result["env"]["date_utc"]
    assert result["settings"]["pairs"] == 4 and result["settings"]["crop"] == [32, 32]
    rows = {r["what"]: r for r in result["rows"]}
    assert list(rows) == list(input_speed.PATHS)
    assert [rows[p]["dtype"] for p in input_speed.PATHS] == ["float32", "uint8", "uint8"]
    for r in rows.values():
        assert r["pairs"] == 4 and r["pairs_per_core_s"] == pytest.approx(4 / r["cpu_s"]) and r["pairs_per_s"] > 0
        assert r["pairs_per_s_workers"] > 0 and r["workers"] == 2 and len(r["loadavg_before"]) == 3
    # The old path decodes every pair's reference again; the others decoded theirs in the untimed pass.
    assert (rows["old"]["reference_decodes_timed"], rows["png"]["reference_decodes_timed"],
            rows["raw"]["reference_decodes_timed"]) == (4, 0, 0)
    disk = result["disk"]["kadid10k_fixture"]
    assert disk["pairs"] == 4 and disk["references"] == 2
    assert disk["raw_bytes_per_example"] > 48 * 64 * 3 > disk["png_bytes_per_example"] > 0
    assert disk["raw_bytes_per_pair"] == pytest.approx(
        disk["raw_bytes_per_example"] + disk["raw_bytes_per_reference"] / 2)
    assert disk["raw_over_png"] == pytest.approx(disk["raw_bytes_per_pair"] / disk["png_bytes_per_pair"])
    assert result["best"] in input_speed.PATHS and isinstance(result["target_met"], bool)
    printed = capsys.readouterr().out
    assert "| raw | raw | uint8 |" in printed and "| kadid10k_fixture | 4 | 2 |" in printed
    assert not list(tmp_path.glob("tmp*"))  # the temporary datasets are gone


def test_interleaved_rounds_ratios_and_the_earlier_model(tiny_config, tiny_params, monkeypatch):
    from benchmarks import interleaved
    from birqa_jax.model import BiRQA

    monkeypatch.setattr(interleaved, "init_params", lambda cfg, seed: tiny_params)  # no init to compile
    result = interleaved.run((32, 48), (32, 48), rounds=3, calls=1, warmup=1, with_torch=False,
                             configs={"tiny": tiny_config})
    assert result["benchmark"] == "interleaved" and len(result["rounds"]) == 3
    names = [r["what"] for r in result["rows"]]
    assert result["groups"]["peers"] == {"height": 32, "width": 48, "skipped": "with_torch=False"}
    if "skipped" in result["groups"]["before_after"]:  # a checkout without that git history
        assert names == ["BiRQA tiny (8-12-16)"] and "git" in result["groups"]["before_after"]["skipped"]
        return
    rev = interleaved.BEFORE_REV
    before, after = f"BiRQA tiny (8-12-16), model at {rev}", "BiRQA tiny (8-12-16), today"
    assert names == [before, after, "BiRQA tiny (8-12-16)"]
    # Each round starts one contender later, so none always runs first.
    assert [r["order"][0] for r in result["rounds"]] == names
    for row in result["rows"]:
        assert len(row["times_s"]) == 3 and row["round_medians_s"] == row["times_s"]
    ratio = result["ratios"][f"tiny: today / model at {rev}"]
    rows = {r["what"]: r for r in result["rows"]}
    assert ratio["rounds"] == pytest.approx([b / a for a, b in zip(rows[after]["times_s"], rows[before]["times_s"])])
    assert ratio["min"] <= ratio["median"] <= ratio["max"]
    # The earlier model is another implementation (other modules) of the same function: it takes
    # today's parameters and scores the random pair as today's does.
    old = interleaved.load_model_at(rev)
    assert old.BiRQA is not BiRQA and old.features.__name__ == f"_birqa_features_at_{rev}"
    assert rows[before]["score"] == pytest.approx(rows[after]["score"], rel=1e-4, abs=1e-5)
    assert f"| tiny: today / model at {rev}" in interleaved.markdown(result)
    with pytest.raises(RuntimeError, match="cannot read"):
        interleaved.load_model_at("no-such-revision")


def test_classical_speed_groups_rows_and_skips(tmp_path):
    """Two cheap metrics, one size with a batch of 2: a row per contender, the load recorded,
    a metric too small for the size skipped with its reason (pyiqa left out: no torch in CI)."""
    from benchmarks import classical_speed

    result = classical_speed.run(sizes=[(40, 48)], batches=[2], metrics=["psnr", "vif"], rounds=2,
                                 with_pyiqa=False)
    assert [r["what"] for r in result["rows"]] == ["psnr, birqa_jax"]
    row = result["rows"][0]
    assert row["batch"] == 2 and row["iters"] == 2 and len(row["round_medians_s"]) == 2
    assert "needs 72 px" in result["skipped"]["40x48, batch 2: vif"]
    assert len(result["rounds"]) == 2 and len(result["rounds"][0]["loadavg_start"]) == 3
    text = classical_speed.markdown(result)
    assert "| 40x48 | 2 | psnr |" in text and "load average" in text
    common.write_json(str(tmp_path / "c.json"), result)


def test_time_calls_excludes_warmup(monkeypatch):
    # Clock readings: start/stop of the first call, then of each timed call (later warm-ups untimed).
    ticks = iter([0.0, 5.0, 10.0, 11.0, 20.0, 23.0, 30.0, 30.5])
    monkeypatch.setattr(common.time, "perf_counter", lambda: next(ticks))
    calls = []
    t = common.time_calls(lambda: calls.append(1), warmup=2, iters=3, wait=lambda _: None)
    assert len(calls) == 5
    assert t["first_call_s"] == 5.0 and t["times_s"] == [1.0, 3.0, 0.5]
    assert (t["median_s"], t["mean_s"], t["min_s"], t["max_s"]) == (1.0, 1.5, 0.5, 3.0)
    row = common.timing_row("x", batch=4, height=1, width=1, dtype="float32", timing=t)
    assert (row["pairs_per_s"], row["pairs_per_s_mean"]) == (4.0, 4 / 1.5)
    with pytest.raises(ValueError, match="warmup"):
        common.time_calls(lambda: None, warmup=0, iters=1)
    with pytest.raises(ValueError, match="iters"):
        common.time_calls(lambda: None, warmup=1, iters=0)


def test_parse_size_and_device_slug():
    assert common.parse_size("1080x1920") == (1080, 1920) and common.parse_size(" 540 X 960 ") == (540, 960)
    for bad in ("1080", "0x5", "10x-3", "axb"):
        with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
            common.parse_size(bad)
    assert common.device_slug({"platform": "gpu", "device_kind": "NVIDIA H200"}) == "nvidia-h200"
    assert common.device_slug({"platform": "cpu", "device_kind": "cpu"}) == "cpu"


def test_host_batch_anchors():
    b = train_speed.host_batch(0, 32, 8, 8, anchors=(4, 16))
    np.testing.assert_array_equal(np.flatnonzero(b["anchor"]), [0, 5, 10, 15, 16, 21, 26, 31])
    assert b["ref"].dtype == np.float32 and 0 <= b["dist"].min() and b["dist"].max() <= 1
    with pytest.raises(ValueError, match="multiple"):
        train_speed.host_batch(0, 20, 8, 8, anchors=(4, 16))


def test_aat_make_steps_rejects_other_attacks():
    from birqa_jax.train import step as training

    with pytest.raises(ValueError, match="anchored PGD"):
        aat_speed.make_steps(None, None, None, training.AttackSpec(name="fgsm"))


def test_gpu_check_script_parses():
    subprocess.run(["bash", "-n", os.path.join(ROOT, "benchmarks", "gpu_check.sh")], check=True)


# ----------------------------------------------------------------------------- torch peers


@pytest.fixture(scope="module")
def nets():
    pytest.importorskip("torch")
    import torch

    from benchmarks import peer_nets

    torch.manual_seed(0)
    return peer_nets, {"alex": peer_nets.LPIPSLike("alex").eval(), "vgg": peer_nets.LPIPSLike("vgg").eval(),
                       "dists": peer_nets.DISTSLike().eval()}


def test_peer_distances_are_zero_on_identical_pairs(nets):
    import torch

    _, models = nets
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 3, 48, 64, generator=g)
    dist = (ref + 0.2 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    with torch.inference_mode():
        for name, m in models.items():
            same, diff = m(ref, ref), m(ref, dist)
            assert same.shape == diff.shape == (2,), name
            np.testing.assert_allclose(same.numpy(), 0.0, atol=1e-5, err_msg=name)
            assert torch.all(diff > 1e-4), (name, diff)


def test_peer_tap_channels_follow_the_papers(nets):
    peer_nets, models = nets
    assert peer_nets._tap_channels(models["alex"].features, peer_nets.ALEXNET_TAPS) == [64, 192, 384, 256, 256]
    assert peer_nets._tap_channels(models["vgg"].features, peer_nets.VGG16_TAPS) == [64, 128, 256, 512, 512]
    assert models["dists"].alpha.numel() == 3 + 64 + 128 + 256 + 512 + 512  # 1475 DISTS channels


def test_l2_pool_of_a_constant_is_the_constant(nets):
    import torch

    peer_nets, _ = nets
    out = peer_nets.L2Pool(2)(torch.full((1, 2, 8, 8), 0.3))
    assert out.shape == (1, 2, 4, 4)
    np.testing.assert_allclose(out[..., 1:, 1:].numpy(), 0.3, rtol=1e-6)  # interior; borders see zero padding
    # The corner sees the Hann weights (1, 0.5) x (1, 0.5) of a window summing to 4: 2.25 / 4 of it.
    np.testing.assert_allclose(out[0, 0, 0, 0].item(), 0.3 * np.sqrt(2.25 / 4), rtol=1e-6)


def test_peer_backbones_match_torchvision_layouts(nets):
    torchvision = pytest.importorskip("torchvision")
    peer_nets, models = nets
    ours = {"alex": models["alex"].features, "vgg": models["vgg"].features}
    theirs = {"alex": torchvision.models.alexnet(weights=None).features,
              "vgg": torchvision.models.vgg16(weights=None).features}
    for name in ours:
        assert [type(m).__name__ for m in ours[name]] == [type(m).__name__ for m in theirs[name]], name
        assert [tuple(p.shape) for p in ours[name].parameters()] == [tuple(p.shape) for p in theirs[name].parameters()]
        for a, b in zip(ours[name], theirs[name]):
            if hasattr(b, "stride"):
                assert (a.stride, a.padding, a.kernel_size) == (b.stride, b.padding, b.kernel_size), name
