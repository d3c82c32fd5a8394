"""What limits the clean SROCC of the robustness study's starting model (issue: clean SROCC 0.94
on unseen photographs): the default clean recipe (``configs/default.py``) retrained from scratch
on the study's split with one factor changed, and scored on the cpu preset's 240 test pairs
beside the packaged clean weights.

    python -m experiments.clean_base                       # the settings below, about 30 minutes here (2 CPU cores)
    python -m experiments.clean_base --settings 900:96x96,2700:96x96

A setting is ``steps:HxW`` (training crop), optionally ``:w1-w2-w3-w4`` (widths). One seed
each: a diagnostic of direction and size, not a comparison with confidence intervals. Every
finished setting is written to ``--out`` at once and skipped by a rerun (JAX on the CPU is
deterministic, so a rerun reproduces it).

Split: ``data.split = "photos"`` with the study's three test photographs and no validation part
(the final step is kept), so the four training photographs are the packaged weights' own. The
fit on the training photographs is the mean training-batch PLCC (1 - the PLCC loss) over the
last 10% of the logged steps.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence

import numpy as np

from experiments import robustness_study as study

DEFAULT_SETTINGS = ("900:96x96", "2700:96x96", "900:128x128", "900:192x256")
BATCH = 16  # test pairs per scoring batch


def parse_setting(text: str) -> dict:
    """``"steps:HxW[:w1-w2-...]"`` -> {"steps", "crop", "widths" (None: the default's)}."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"setting {text!r}: expected steps:HxW or steps:HxW:w1-w2-w3-w4")
    try:
        steps, crop = int(parts[0]), tuple(int(v) for v in parts[1].split("x"))
        widths = tuple(int(v) for v in parts[2].split("-")) if len(parts) == 3 else None
    except ValueError:
        raise ValueError(f"setting {text!r}: steps, crop sides and widths must be integers") from None
    if steps < 1 or len(crop) != 2 or min(crop) < 1:
        raise ValueError(f"setting {text!r}: needs steps >= 1 and a crop HxW of positive sides")
    return {"steps": steps, "crop": crop, "widths": widths}


def setting_key(setting: dict, seed: int) -> str:
    """The results key of (setting, seed): ``"steps:HxW[:w1-w2-...]:seed<k>"``."""
    widths = f":{'-'.join(map(str, setting['widths']))}" if setting["widths"] else ""
    return f"{setting['steps']}:{'x'.join(map(str, setting['crop']))}{widths}:seed{seed}"


def setting_config(setting: dict, seed: int = 0):
    """``configs/default.py`` on the study's photograph split with ``setting`` applied."""
    from configs import aat_study, default

    c = default.get_config()
    study_data = aat_study.get_config().data
    c.data.split, c.data.test_photos, c.data.val_photos = "photos", study_data.test_photos, study_data.val_photos
    c.num_steps, c.data.crop_size, c.seed = setting["steps"], setting["crop"], seed
    if setting["widths"] is not None:
        c.model.widths = setting["widths"]
    return c


def train_fit(log: Sequence[dict]) -> float:
    """Mean training-batch PLCC over the last 10% of the logged steps."""
    tail = log[-max(len(log) // 10, 1):]
    return float(np.mean([1.0 - r["loss_plcc"] for r in tail]))


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settings", default=",".join(DEFAULT_SETTINGS), help="comma-separated steps:HxW[:widths]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(study.ROOT, "experiments", "results", "clean_base", "results.json"))
    args = p.parse_args(argv)
    settings = [parse_setting(s) for s in args.settings.split(",")]

    from birqa_jax.train.loop import finetune
    from configs.aat_study import PACKAGED_WEIGHTS

    results = study._read_json(args.out) or {"pairs": None, "packaged": None, "runs": {}}
    source, splits, test = study.load_study_data(setting_config(settings[0], args.seed), study.PRESETS["cpu"])
    params, model_cfg, _ = study.load_model(PACKAGED_WEIGHTS)
    results["pairs"], results["packaged"] = len(test.mos), study.clean_srocc(params, model_cfg, test, BATCH)
    study._write_json(args.out, results)
    print(f"packaged clean weights: SROCC {results['packaged']:.3f} on {len(test.mos)} test pairs", flush=True)
    for setting in settings:
        key = setting_key(setting, args.seed)
        if key in results["runs"]:
            print(f"{key}: done before, SROCC {results['runs'][key]['srocc']:.3f}", flush=True)
            continue
        t0 = time.perf_counter()
        params, model_cfg, log = finetune(setting_config(setting, args.seed), source, splits)
        run = {**setting, "seed": args.seed, "srocc": study.clean_srocc(params, model_cfg, test, BATCH),
               "train_plcc": train_fit(log), "seconds": time.perf_counter() - t0}
        results["runs"][key] = run
        study._write_json(args.out, results)
        print(f"{key}: SROCC {run['srocc']:.3f}, training-batch PLCC {run['train_plcc']:.3f} "
              f"({run['seconds']:.0f} s)", flush=True)
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=1, default=list))
