"""The ``birqa`` command through a subprocess (``python -m birqa_jax.cli``), as a user runs it:
metrics, stem pairing, recursion, one row per pair with errors, --out checks and stdout,
formats, 16-bit PNG, compile notes, --version and list; bad files as rows, output safety,
Ctrl-C with the rows kept, --resume. Mostly PSNR/GMSD, which compile fast."""

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from test_inputs import png_claiming

import birqa_jax
from birqa_jax import cli
from birqa_jax.model import save_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


ENV = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")


def birqa(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "birqa_jax.cli", *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=300)


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
    assert res.stderr.count("compiling") == 2 and "size 40x32:" in res.stderr and "48x48" in res.stderr
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
    assert doc["pairs"][refs.index("only_ref.png")]["scores"] == {"ssim": None}  # no score: null


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

    from birqa_jax import version as version_module

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        pyproject = tomllib.load(f)
    # The package metadata reads the one version string of birqa_jax/version.py.
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "birqa_jax.version.__version__"}
    version = birqa("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"birqa {birqa_jax.__version__}"
    assert birqa_jax.__version__ is version_module.__version__
    listing = birqa("list")
    assert listing.returncode == 0
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()}
    assert set(lines) == set(birqa_jax.list_metrics())
    assert "lower is better" in lines["gmsd"] and "higher is better" in lines["birqa"]


def test_bad_files_are_rows_and_the_other_pairs_are_scored(tmp_path):
    """A header declaring 10^10 or 10^8 pixels, an animated GIF, a truncated PNG and a text file
    each give an error row naming the file; nothing of PIL's is printed."""
    a, b = tmp_path / "refs", tmp_path / "dists"
    a.mkdir(), b.mkdir()
    for stem in ("good", "bomb", "big", "anim", "cut", "text"):
        Image.fromarray(_img(1)).save(a / f"{stem}.png")
    Image.fromarray(_img(2)).save(b / "good.png")
    png_claiming(b / "bomb.png", 100_000, 100_000)
    png_claiming(b / "big.png", 10_000, 10_000)
    Image.fromarray(_img(3)).save(b / "anim.gif", save_all=True, append_images=[Image.fromarray(_img(4))])
    (b / "cut.png").write_bytes((a / "good.png").read_bytes()[:300])
    (b / "text.png").write_text("not an image")
    res = birqa("score", "--ref-dir", a, "--dist-dir", b, "--metric", "psnr", "--out", tmp_path / "s.csv")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr and "Warning" not in res.stderr and "PIL" not in res.stderr.replace(
        "a format PIL reads", "")
    rows = {r["ref"]: r for r in csv.DictReader((tmp_path / "s.csv").open())}
    assert float(rows["good.png"]["psnr"]) > 5 and not rows["good.png"]["error"]
    declared = "bomb.png: its header declares 100000x100000 = 10000000000 pixels, more than the limit"
    assert declared in rows["bomb.png"]["error"]
    assert "big.png: its header declares 10000x10000" in rows["big.png"]["error"]
    assert "anim.gif: an animated or multi-page image (2 frames)" in rows["anim.png"]["error"]
    assert "cut.png: image file is truncated" in rows["cut.png"]["error"]
    assert "text.png: not an image file" in rows["text.png"]["error"]
    assert all(rows[s]["psnr"] == "" for s in rows if s != "good.png")



def test_max_pixels_raises_or_lowers_the_limit(tmp_path, capsys):
    Image.fromarray(_img(1)).save(tmp_path / "a.png")  # 40x32 = 1280 pixels
    assert cli.main(["score", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--metric", "psnr",
                     "--max-pixels", "1279"]) == 1
    assert "40x32 = 1280 pixels, more than the limit of 1279" in capsys.readouterr().err
    from birqa_jax import inputs

    assert inputs.MAX_PIXELS == 8192 * 8192  # the run's limit does not outlive it


@pytest.mark.parametrize("bad", ["0", "-3", "2.5", "4x", ""])
def test_max_pixels_must_be_a_positive_integer(bad, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["score", "a.png", "b.png", "--max-pixels", bad])
    assert exit_.value.code == 2 and f"must be a positive integer, got '{bad}'" in capsys.readouterr().err


def test_out_never_overwrites_an_input_and_is_checked_before_scoring(tmp_path, capsys):
    Image.fromarray(_img(1)).save(tmp_path / "a.png")
    Image.fromarray(_img(2)).save(tmp_path / "b.png")
    (tmp_path / "b.png").rename(tmp_path / "b.img")  # an image whatever its name
    (tmp_path / "file").write_text("a file, not a folder")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    res = birqa("score", tmp_path / "a.png", tmp_path / "b.img", "--metric", "psnr", "--out", tmp_path / "b.img")
    assert res.returncode == 2 and res.stderr == f"birqa: error: --out {tmp_path / 'b.img'} is an input of this run " \
                                                 f"({tmp_path / 'b.img'}); name another file\n"
    for out, message in ((tmp_path / "x.jpg", "names an image file"),
                         (tmp_path / "file" / "x.csv", "cannot write --out"),
                         (os.devnull, "exists and is not a regular file; use --out - for stdout")):
        rc = cli.main(["score", str(tmp_path / "a.png"), str(tmp_path / "b.img"), "--metric", "psnr",
                       "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and err.count("\n") == 1 and "compiling" not in err, (out, err)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_run_that_scores_nothing_keeps_an_earlier_result(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x.png").write_text("broken")
    Image.fromarray(_img(1)).save(b / "x.png")
    out = tmp_path / "scores.csv"
    out.write_text("ref,dist,psnr,error\nx.png,x.png,30.000000,\n")
    res = birqa("score", "--ref-dir", a, "--dist-dir", b, "--metric", "psnr", "--out", out)
    assert res.returncode == 1 and f"no pair scored: {out} left as it was" in res.stderr
    assert out.read_text() == "ref,dist,psnr,error\nx.png,x.png,30.000000,\n"
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "scores.csv"]  # no temporary file left


def test_json_keeps_infinite_scores_apart_from_missing_ones(tmp_path, tiny_config, tiny_params):
    Image.fromarray(_img(1)).save(tmp_path / "a.png")
    model = tmp_path / "tiny.msgpack"
    save_model(model, tiny_params, tiny_config)
    out = tmp_path / "x.json"
    res = birqa("score", tmp_path / "a.png", tmp_path / "a.png", "--metric", "psnr", "--metric", "birqa",
                "--params", model, "--out", out)
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    assert doc["metrics"]["birqa"]["score_range"] == ["-inf", "inf"]
    assert doc["metrics"]["psnr"]["score_range"] == [0.0, "inf"]
    (pair,) = doc["pairs"]
    assert pair["scores"]["psnr"] == "inf" and float(pair["scores"]["psnr"]) == float("inf")
    assert isinstance(pair["scores"]["birqa"], float) and pair["error"] is None


MANY = 300  # pairs: enough that the run is still going when the test has seen its first rows

# The CLI with Ctrl-C's usual effect: a suite started in the background by a non-interactive shell
# ignores SIGINT, and a child inherits that (Python leaves an ignored SIGINT ignored).
INTERRUPTIBLE_CLI = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                     "runpy.run_module('birqa_jax.cli', run_name='__main__', alter_sys=True)")


@pytest.fixture(scope="module")
def many_pairs(tmp_path_factory):
    """MANY pairs of 16x16 images: a folder run long enough to interrupt."""
    root = tmp_path_factory.mktemp("many")
    (root / "a").mkdir(), (root / "b").mkdir()
    for i in range(MANY):
        x = _img(i, (16, 16, 3))
        Image.fromarray(x).save(root / "a" / f"{i:03d}.png")
        Image.fromarray(255 - x).save(root / "b" / f"{i:03d}.png")
    return root / "a", root / "b"


def test_ctrl_c_keeps_every_scored_row_and_resume_scores_the_rest(many_pairs, tmp_path):
    a, b = many_pairs
    out, log = tmp_path / "scores.json", tmp_path / "stderr.txt"
    command = [sys.executable, "-c", INTERRUPTIBLE_CLI, "score", "--ref-dir", a, "--dist-dir", b, "--metric", "psnr",
               "--out", out]
    with log.open("w") as err:
        run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=ENV)
        deadline = time.monotonic() + 300  # the bound of every command here
        while (not out.exists() or out.read_text().count('"ref"') < 3) and run.poll() is None:
            assert time.monotonic() < deadline, "no rows written"
            time.sleep(0.001)
        assert run.poll() is None, f"the run scored all {MANY} pairs before it could be interrupted"
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=120) == 130
    stderr = log.read_text()
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    last = stderr.strip().splitlines()[-1]
    m = re.fullmatch(rf"birqa: interrupted after scoring (\d+) of {MANY} pairs, saved in {re.escape(str(out))}; "
                     r"run the same command with --resume to score the rest", last)
    assert m, last
    partial = json.loads(out.read_text())["pairs"]  # valid JSON as the run left it
    assert len(partial) == int(m[1]) and 3 <= len(partial) < MANY
    assert all(p["error"] is None and p["scores"]["psnr"] > 0 for p in partial)

    res = subprocess.run(command + ["--resume"], capture_output=True, text=True, env=ENV, timeout=300)
    assert res.returncode == 0, res.stderr
    kept = f"note: {len(partial)} pairs already scored in {out} are kept; scoring the other {MANY - len(partial)}"
    assert kept in res.stderr
    pairs = json.loads(out.read_text())["pairs"]
    assert sorted(p["ref"] for p in pairs) == [f"{i:03d}.png" for i in range(MANY)]
    assert pairs[:len(partial)] == partial


def test_resume_scores_failed_and_cut_rows_again_and_checks_the_columns(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for stem in ("x", "y", "z"):
        Image.fromarray(_img(1)).save(a / f"{stem}.png")
        Image.fromarray(_img(2)).save(b / f"{stem}.png")
    out = tmp_path / "s.csv"
    # x scored (a made-up value, so that keeping it shows), y failed, z cut short by a crash
    out.write_text("ref,dist,psnr,error\nx.png,x.png,99.000000,\ny.png,y.png,,cannot read image\nz.png,z.p")
    res = birqa("score", "--ref-dir", a, "--dist-dir", b, "--metric", "psnr", "--out", out, "--resume")
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(out.open()))
    assert [(r["ref"], r["error"]) for r in rows] == [("x.png", ""), ("y.png", ""), ("z.png", "")]
    assert rows[0]["psnr"] == "99.000000" and rows[1]["psnr"] == rows[2]["psnr"] != "99.000000"
    before = out.read_bytes()
    assert cli.main(["score", "--ref-dir", str(a), "--dist-dir", str(b), "--metric", "gmsd", "--out", str(out),
                     "--resume"]) == 2
    assert "use the same --metric list" in capsys.readouterr().err and out.read_bytes() == before
