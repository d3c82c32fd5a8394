"""Each figure is written as a PNG that Pillow opens, of the documented size, and not blank."""

import numpy as np
import pytest
from PIL import Image

from birqa_jax.evaluation import report as plots
from birqa_jax.evaluation import stats as ev


def _open_png(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def scores():
    rng = np.random.default_rng(0)
    pred = rng.uniform(0.0, 1.0, 80)
    mos = 1.0 / (1.0 + np.exp(-(pred - 0.5) / 0.1)) + rng.normal(0, 0.05, pred.size)
    return pred, mos


def test_scatter_with_fit(tmp_path, scores):
    pred, mos = scores
    fit = ev.fit_logistic(pred, mos)
    assert fit.ok
    out = plots.scatter_with_fit(pred, mos, fit, tmp_path / "sub" / "scatter.png", "SSIM, KADID")
    img = _open_png(out)
    assert img.shape == (480, 640, 3)
    assert img.std() > 10  # not a blank canvas
    # A failed fit still gives a figure (without a curve), and differs from the fitted one.
    failed = ev.LogisticFit((np.nan,) * 4, 1, False, "curve_fit failed: test")
    img2 = _open_png(plots.scatter_with_fit(pred, mos, failed, tmp_path / "failed.png", "failed"))
    assert img2.shape == img.shape and np.any(img2 != img)


def test_per_type_bars(tmp_path, scores):
    pred, mos = scores
    types = np.arange(pred.size) % 25 + 1
    table = ev.per_type(pred, mos, types)
    img = _open_png(plots.per_type_bars(table, tmp_path / "types.png", "SROCC per type"))
    # 8 in wide; 0.3 in per type + 1.2 in, at 100 dpi
    assert img.shape == (round(100 * (0.3 * 25 + 1.2)), 800, 3)
    assert img.std() > 10
    two = dict(list(table.items())[:2])
    small = _open_png(plots.per_type_bars(two, tmp_path / "two.png", "two types"))
    assert small.shape == (300, 800, 3)  # at least 3 in high


def test_robustness_curves(tmp_path):
    budgets = [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255]
    results = {
        "PGD-10": dict(zip(budgets, [0.93, 0.85, 0.74, 0.60, 0.41, 0.22])),
        "FGSM": dict(zip(budgets, [0.93, 0.90, 0.86, 0.79, 0.70, 0.55])),
    }
    img = _open_png(plots.robustness_curves(results, tmp_path / "robust.png"))
    assert img.shape == (480, 640, 3) and img.std() > 10
    with pytest.raises(ValueError, match=r"\[0, 1\] units"):
        plots.robustness_curves({"PGD": {8.0: 0.5}}, tmp_path / "bad.png")  # eps given in /255


def test_path_must_be_png(tmp_path, scores):
    with pytest.raises(ValueError, match=r"\.png"):
        plots.robustness_curves({"FGSM": {0.0: 0.9}}, tmp_path / "robust.jpg")
    with pytest.raises(ValueError, match="empty"):
        plots.per_type_bars({}, tmp_path / "x.png", "empty")
