"""The ``birqa`` command through a subprocess (``python -m birqa_jax.cli``), as a user runs it:
metrics, stem pairing, recursion, one row per pair with errors, --out checks and stdout,
formats, 16-bit PNG, compile notes, --version and list. Mostly PSNR/GMSD, which compile fast."""

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import birqa_jax
from birqa_jax.model import save_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def birqa(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "birqa_jax.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def _img(seed, shape=(32, 40, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _smooth(h=32, w=40):
    """A smooth image, which JPEG keeps close to the original."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([255 * y / (h - 1), 255 * x / (w - 1), 128 + 0 * x], -1).astype(np.uint8)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """refs/ and dists/: x.png-x.jpg (stems meet), y (sizes differ), only_ref, amb.png+amb.bmp
    (ambiguous), sub/z in both (only with --recursive), 48x48 w.png (a second size)."""
    root = tmp_path_factory.mktemp("cli")
    a, b = root / "refs", root / "dists"
    (a / "sub").mkdir(parents=True), (b / "sub").mkdir(parents=True)
    Image.fromarray(_smooth()).save(a / "x.png")
    Image.fromarray(_smooth()).save(b / "x.jpg", quality=95)
    Image.fromarray(_img(1)).save(a / "y.png")
    Image.fromarray(_img(1, (40, 40, 3))).save(b / "y.png")
    Image.fromarray(_img(2)).save(a / "only_ref.png")
    Image.fromarray(_img(3)).save(a / "amb.png")
    Image.fromarray(_img(3)).save(b / "amb.png")
    Image.fromarray(_img(3)).save(b / "amb.bmp")
    Image.fromarray(_img(4)).save(a / "sub" / "z.png")
    Image.fromarray(_img(5)).save(b / "sub" / "z.bmp")
    Image.fromarray(_img(6, (48, 48, 3))).save(a / "w.png")
    Image.fromarray(_img(7, (48, 48, 3))).save(b / "w.png")
    return a, b


def test_folders_pair_by_stem_recursively_with_a_row_per_pair(folders):
    a, b = folders
    res = birqa("score", "--ref-dir", a, "--dist-dir", b, "--recursive", "--metric", "psnr", "--metric", "gmsd",
                "--out", "-")
    assert res.returncode == 1, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))  # stdout holds the CSV only
    assert list(rows[0]) == ["ref", "dist", "psnr", "gmsd", "error"]
    by_ref = {r["ref"]: r for r in rows}
    assert set(by_ref) == {"amb.png", "only_ref.png", "sub/z.png", "w.png", "x.png", "y.png"}
    assert by_ref["x.png"]["dist"] == "x.jpg" and float(by_ref["x.png"]["psnr"]) > 25 and not by_ref["x.png"]["error"]
    assert by_ref["sub/z.png"]["dist"] == "sub/z.bmp" and by_ref["sub/z.png"]["gmsd"]
    assert "same shape" in by_ref["y.png"]["error"] and by_ref["y.png"]["psnr"] == ""
    assert "no file with the stem 'only_ref' in --dist-dir" in by_ref["only_ref.png"]["error"]
    assert "ambiguous stem 'amb'" in by_ref["amb.png"]["error"] and "amb.bmp" in by_ref["amb.png"]["error"]
    assert res.stderr.count("compiling") == 2 and "32x40" in res.stderr and "48x48" in res.stderr
    assert not os.path.exists("-")


def test_subfolders_skipped_with_a_note_and_json_out(folders, tmp_path):
    a, b = folders
    out = tmp_path / "new" / "scores.json"
    res = birqa("score", "--ref-dir", a, "--dist-dir", b, "--metric", "ssim", "--out", out)
    assert res.returncode == 1
    assert "subfolder(s) of --ref-dir not searched (sub); pass --recursive" in res.stderr
    doc = json.loads(out.read_text())
    assert doc["metrics"] == {"ssim": {"lower_better": False, "score_range": [-1.0, 1.0]}}
    refs = [p["ref"] for p in doc["pairs"]]
    assert "sub/z.png" not in refs and "x.png" in refs
    x = doc["pairs"][refs.index("x.png")]
    assert x["error"] is None and 0 < x["scores"]["ssim"] <= 1


def test_single_pair_16bit_png_and_out(tmp_path, tiny_config, tiny_params):
    gray16 = np.linspace(0, 65535, 40 * 48).reshape(40, 48).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    Image.fromarray((gray16 >> 8).astype(np.uint8)).save(tmp_path / "g8.png")
    model = tmp_path / "tiny.msgpack"
    save_model(model, tiny_params, tiny_config)
    out = tmp_path / "one.csv"
    res = birqa("score", tmp_path / "g16.png", tmp_path / "g8.png", "--metric", "psnr", "--metric", "birqa",
                "--params", model, "--out", out)
    assert res.returncode == 0, res.stderr
    (row,) = csv.DictReader(out.open())
    assert float(row["psnr"]) > 45  # the 16-bit image is read as the same picture, not as white
    want = birqa_jax.score(tmp_path / "g16.png", tmp_path / "g8.png", params=tiny_params, config=tiny_config)
    assert float(row["birqa"]) == pytest.approx(want, abs=1e-5)
    assert "compiling" in res.stderr


def test_out_naming_a_folder_fails_before_scoring(folders, tmp_path):
    a, b = folders
    res = birqa("score", "--ref-dir", a, "--dist-dir", b, "--out", tmp_path)
    assert res.returncode == 2 and "is a folder; name a file" in res.stderr
    assert "Traceback" not in res.stderr and "compiling" not in res.stderr


def test_version_and_list():
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        packaged = tomllib.load(f)["project"]["version"]
    version = birqa("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"birqa {birqa_jax.__version__}" == f"birqa {packaged}"
    listing = birqa("list")
    assert listing.returncode == 0
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()}
    assert set(lines) == set(birqa_jax.list_metrics())
    assert "lower is better" in lines["gmsd"] and "higher is better" in lines["birqa"]
