"""What limits the clean SROCC of the robustness study's starting model (issue: clean SROCC 0.94
on unseen photographs): the default clean recipe (``configs/default.py``) retrained from scratch
on the study's split with one factor changed, and scored on the cpu preset's 240 test pairs
beside the packaged clean weights.

    python -m experiments.clean_base                       # the settings below, about 30 minutes here (2 CPU cores)
    python -m experiments.clean_base --settings 900:96x96,2700:96x96
    python -m experiments.clean_base --settings 900:96x96 --refs 52   # more crops of the same photographs

A setting is ``steps:HxW`` (training crop), optionally ``:w1-w2-w3-w4`` (widths). ``--refs N``
trains on kadid_synthetic built with ``N`` reference crops instead of the packaged weights' 40
(``robustness_study.more_crops``): the extra crops are all of the four training photographs (52:
all 9 of coffee, rocket and motorcycle and 9 of hubble_deep_field's 20; 63: every crop), and the
test pairs stay the packaged data set's (``robustness_study.StudyData`` checks them pixel for
pixel). One seed each: a diagnostic of direction and size, not a comparison with confidence
intervals. Every finished setting is written to ``--out`` at once and skipped by a rerun (JAX on
the CPU is deterministic, so a rerun reproduces it).

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
DEFAULT_REFS = 40  # reference crops of the packaged weights' data set (configs/default.py)


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


def setting_key(setting: dict, seed: int, refs: int = DEFAULT_REFS) -> str:
    """The results key of (setting, seed, refs): ``"steps:HxW[:w1-w2-...][:refs<N>]:seed<k>"``
    (``refs`` named only when it is not the packaged data set's)."""
    widths = f":{'-'.join(map(str, setting['widths']))}" if setting["widths"] else ""
    more = f":refs{refs}" if refs != DEFAULT_REFS else ""
    return f"{setting['steps']}:{'x'.join(map(str, setting['crop']))}{widths}{more}:seed{seed}"


def setting_config(setting: dict, seed: int = 0, refs: int = DEFAULT_REFS):
    """``configs/default.py`` on the study's photograph split with ``setting`` applied, on a data
    set of ``refs`` reference crops."""
    from configs import aat_study, default, override

    c = default.get_config()
    study_data = aat_study.get_config().data
    c.data.split, c.data.test_photos, c.data.val_photos = "photos", study_data.test_photos, study_data.val_photos
    c.num_steps, c.data.crop_size, c.seed = setting["steps"], setting["crop"], seed
    if setting["widths"] is not None:
        c.model.widths = setting["widths"]
    return override(c, study.more_crops(refs)) if refs != DEFAULT_REFS else c


def train_fit(log: Sequence[dict]) -> float:
    """Mean training-batch PLCC over the last 10% of the logged steps."""
    tail = log[-max(len(log) // 10, 1):]
    return float(np.mean([1.0 - r["loss_plcc"] for r in tail]))


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settings", default=",".join(DEFAULT_SETTINGS), help="comma-separated steps:HxW[:widths]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--refs", type=int, default=DEFAULT_REFS,
                   help="reference crops of kadid_synthetic (40: the packaged weights' data set; at most 63)")
    p.add_argument("--out", default=os.path.join(study.ROOT, "experiments", "results", "clean_base", "results.json"))
    args = p.parse_args(argv)
    settings = [parse_setting(s) for s in args.settings.split(",")]

    from birqa_jax.train.loop import finetune
    from configs.aat_study import PACKAGED_WEIGHTS

    results = study._read_json(args.out) or {"pairs": None, "packaged": None, "runs": {}}
    data = study.StudyData(setting_config(settings[0], args.seed), study.PRESETS["cpu"])  # the test pairs
    test = data.test
    source, splits = data.training(setting_config(settings[0], args.seed, args.refs))
    params, model_cfg, _ = study.load_model(PACKAGED_WEIGHTS)
    packaged = study.clean_srocc(params, model_cfg, test, BATCH)
    if results["packaged"] is not None and abs(packaged - results["packaged"]) > 1e-6:
        raise ValueError(f"the packaged weights score {packaged:.6f} on this data set's test pairs and "
                         f"{results['packaged']:.6f} in {args.out}: the test pairs differ; use another --out")
    results["pairs"], results["packaged"] = len(test.mos), packaged
    study._write_json(args.out, results)
    print(f"packaged clean weights: SROCC {results['packaged']:.3f} on {len(test.mos)} test pairs", flush=True)
    for setting in settings:
        key = setting_key(setting, args.seed, args.refs)
        if key in results["runs"]:
            print(f"{key}: done before, SROCC {results['runs'][key]['srocc']:.3f}", flush=True)
            continue
        t0 = time.perf_counter()
        params, model_cfg, log = finetune(setting_config(setting, args.seed, args.refs), source, splits)
        run = {**setting, "seed": args.seed, "refs": args.refs, "train_pairs": len(splits["train"]),
               "srocc": study.clean_srocc(params, model_cfg, test, BATCH),
               "train_plcc": train_fit(log), "seconds": time.perf_counter() - t0}
        results["runs"][key] = run
        study._write_json(args.out, results)
        print(f"{key}: SROCC {run['srocc']:.3f}, training-batch PLCC {run['train_plcc']:.3f} "
              f"({run['seconds']:.0f} s)", flush=True)
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=1, default=list))
