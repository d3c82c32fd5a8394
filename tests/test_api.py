import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import birqa_jax
from birqa_jax import cli
from birqa_jax import metric as api
from birqa_jax.model import load_model, save_model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, tiny_config, tiny_params):
    path = tmp_path_factory.mktemp("model") / "tiny.msgpack"
    save_model(path, tiny_params, tiny_config, meta={"trained_on": "nothing"})
    return str(path)


def _img(seed, shape=(40, 48, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_save_load_roundtrip(model_file, tiny_config, tiny_params):
    params, config, meta = load_model(model_file)
    assert config == tiny_config and meta == {"trained_on": "nothing"}
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(tiny_params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_load_errors(tmp_path, model_file):
    with pytest.raises(FileNotFoundError, match="no BiRQA model file"):
        load_model(tmp_path / "missing.msgpack")
    truncated = tmp_path / "truncated.msgpack"
    truncated.write_bytes(open(model_file, "rb").read()[:200])
    with pytest.raises(ValueError, match="corrupt or truncated|not a BiRQA"):
        load_model(truncated)
    other = tmp_path / "other.msgpack"
    from flax import serialization
    other.write_bytes(serialization.msgpack_serialize({"a": 1}))
    with pytest.raises(ValueError, match="not a BiRQA model file"):
        load_model(other)


def test_score_input_forms_agree(tiny_config, tiny_params):
    ref, dist = _img(0), _img(1)
    s_uint8 = birqa_jax.score(ref, dist, params=tiny_params, config=tiny_config)
    s_float = birqa_jax.score(ref / 255.0, dist / 255.0, params=tiny_params, config=tiny_config)
    s_batch = birqa_jax.score(np.stack([ref, ref]), np.stack([dist, ref]), params=tiny_params, config=tiny_config)
    s_jax = birqa_jax.score(jnp.asarray(ref), jnp.asarray(dist), params=tiny_params, config=tiny_config)
    s_chunked = birqa_jax.score(np.stack([ref, ref]), np.stack([dist, ref]), params=tiny_params,
                                config=tiny_config, batch_size=1)
    assert isinstance(s_uint8, float) and s_batch.shape == (2,)
    np.testing.assert_allclose([s_float, s_batch[0], s_jax], s_uint8, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s_chunked, s_batch, rtol=1e-5, atol=1e-6)
    gray = birqa_jax.score(ref[..., 0], dist[..., 0], params=tiny_params, config=tiny_config)
    gray3 = birqa_jax.score(np.repeat(ref[..., :1], 3, -1), np.repeat(dist[..., :1], 3, -1),
                            params=tiny_params, config=tiny_config)
    assert gray == pytest.approx(gray3, rel=1e-6)


@pytest.mark.parametrize(
    "ref, dist, message",
    [
        (np.zeros((40, 48, 3)), np.zeros((40, 40, 3)), "same shape"),
        (np.zeros((40, 48, 4)), np.zeros((40, 48, 4)), "channels"),
        (np.zeros((2, 2, 40, 48, 3)), np.zeros((2, 2, 40, 48, 3)), "HWC or NHWC"),
        (np.zeros((16, 48, 3)), np.zeros((16, 48, 3)), r"at least 32x32 pixels, got 48x16 \(width x height\)"),
        (np.full((40, 48, 3), 1.5), np.zeros((40, 48, 3)), r"in \[0, 1\]"),
        (np.full((40, 48, 3), np.nan), np.zeros((40, 48, 3)), "NaN"),
        (np.zeros((40, 48, 3), np.int32), np.zeros((40, 48, 3), np.int32), "dtype"),
        (np.zeros((40, 48, 3), np.uint8), np.zeros((40, 48, 3)), "same dtype"),
    ],
)
def test_score_rejects_bad_input(tiny_config, tiny_params, ref, dist, message):
    with pytest.raises(ValueError, match=message):
        birqa_jax.score(ref, dist, params=tiny_params, config=tiny_config)


def test_default_weights_missing_error_says_how(monkeypatch, tmp_path):
    monkeypatch.setattr(api, "ASSETS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="train.py"):
        birqa_jax.score(_img(0), _img(1))


def test_perceptual_loss_inside_user_jit(tiny_config, tiny_params):
    ref = jnp.asarray(_img(0)[None] / 255.0, jnp.float32)
    dist = jnp.asarray(_img(1)[None] / 255.0, jnp.float32)

    @jax.jit
    def step(d):
        loss, g = jax.value_and_grad(lambda x: birqa_jax.perceptual_loss(tiny_params, ref, x, tiny_config))(d)
        return loss, jnp.clip(d - 0.05 * jnp.sign(g), 0, 1)

    loss0, d1 = step(dist)
    loss1, _ = step(d1)
    assert float(loss1) < float(loss0)  # descending the loss raises the predicted quality
    assert float(loss0) == pytest.approx(-birqa_jax.score(np.asarray(ref), np.asarray(dist), params=tiny_params,
                                                          config=tiny_config)[0], rel=1e-5)


def test_cli_scores_png_files_and_folders(tmp_path, model_file, tiny_config, tiny_params, capsys):
    a, b = tmp_path / "ref", tmp_path / "dist"
    a.mkdir(), b.mkdir()
    for i in range(2):
        Image.fromarray(_img(i)).save(a / f"im{i}.png")
        Image.fromarray(_img(10 + i)).save(b / f"im{i}.png")
    Image.fromarray(_img(5)).save(a / "only_ref.png")
    (b / "broken.png").write_bytes(b"not a png")
    (a / "broken.png").write_bytes(b"not a png either")

    assert cli.main(["score", str(a / "im0.png"), str(b / "im0.png"), "--params", model_file]) == 0
    printed = float(capsys.readouterr().out.strip())
    expected = birqa_jax.score(_img(0), _img(10), params=tiny_params, config=tiny_config)
    assert printed == pytest.approx(expected, abs=1e-5)

    out = tmp_path / "scores.csv"
    rc = cli.main(["score", "--ref-dir", str(a), "--dist-dir", str(b), "--out", str(out), "--params", model_file])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot read image" in err and "broken.png" in err and "only_ref" in err
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["ref", "dist", "birqa", "error"]
    assert [(r["ref"], r["dist"], bool(r["birqa"]), bool(r["error"])) for r in rows] == [
        ("broken.png", "broken.png", False, True), ("im0.png", "im0.png", True, False),
        ("im1.png", "im1.png", True, False), ("only_ref.png", "", False, True)]


def test_cli_errors_are_clear(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(api, "ASSETS", str(tmp_path))
    Image.fromarray(_img(0)).save(tmp_path / "x.png")
    assert cli.main(["score", str(tmp_path / "x.png"), str(tmp_path / "x.png")]) == 2
    assert "--params" in capsys.readouterr().err
    assert cli.main(["score", str(tmp_path / "x.png"), str(tmp_path / "nope.png"), "--params", "m"]) == 2
    assert cli.main(["score", "--ref-dir", str(tmp_path)]) == 2
    assert "--dist-dir" in capsys.readouterr().err
