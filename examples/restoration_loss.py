"""BiRQA as a loss, the way a restoration or compression researcher uses a metric: start from a
distorted image and climb the metric's score on the image itself with Adam. A metric that
measures quality can only be climbed by moving the image towards its reference; a metric that
can be gamed rises while the image stays as bad (or gets worse).

For each metric (default: the clean packaged weights ``birqa_clean`` and the adversarially trained
``birqa_robust``), every distorted image is optimised for ``--steps`` Adam steps (pixels kept in
[0, 1]); the script records the metric's score, PSNR and SSIM against the reference (8-bit
reference mode, as published tables compute them) along the way, and writes

    <out>/results.json   every number (per image, every ``--log_every`` steps)
    <out>/results.md     the table: score rise against PSNR / SSIM gain, per metric
    <out>/images.png     reference | distorted | optimised by each metric, one row per image
    <out>/curves.png     PSNR gain against score rise along the optimisation, per metric

The images are crops of the photographs that no packaged model trained on (astronaut, chelsea,
immunohistochemistry: the test part of the robustness study's split) with KADID-10k-style
distortions (white noise, Gaussian blur, JPEG) at one level.

    python examples/restoration_loss.py                      # about 5 minutes on 2 CPU cores
    python examples/restoration_loss.py --steps 20 --out /tmp/restoration   # a quick look
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import birqa_jax
from birqa_jax.data.distortions import distort
from birqa_jax.data.synthetic import SOURCES, UNSEEN_BY_DEFAULT, ReferenceCrop
from birqa_jax.evaluation.report import jsonable

# KADID-10k distortion type ids: what a restoration method removes.
DISTORTIONS = {"white noise": 11, "gaussian blur": 1, "jpeg": 10}
CROP = (192, 256)  # the synthetic set's full size


def test_images(photos: list[str], level: int, crop: tuple[int, int] = CROP) -> dict:
    """The top-left ``crop`` of each of ``photos`` (kadid_synthetic's first tile of that
    photograph) and its distorted versions: {"ref", "dist": uint8 [N, H, W, 3], "labels": [N]}."""
    refs, dists, labels = [], [], []
    for photo in photos:
        ref = ReferenceCrop(photo, SOURCES.index(photo), 0, 0).image(crop)
        if ref.shape[:2] != tuple(crop):
            raise ValueError(f"{photo} is smaller than the crop {crop[0]}x{crop[1]}")
        for kind, type_id in DISTORTIONS.items():
            refs.append(ref)
            dists.append(distort(ref, type_id, level, np.random.default_rng(0)))
            labels.append(f"{photo}, {kind} (level {level})")
    return {"ref": np.stack(refs), "dist": np.stack(dists), "labels": labels}


def make_step(metric: birqa_jax.Metric, lr: float):
    """One jitted Adam ascent step on the image: ``(params, ref, x, opt_state) -> (x, opt_state,
    score)``. The params are an argument, so metrics of one config share the compilation."""
    opt = optax.adam(lr)
    apply = metric.apply

    @jax.jit
    def step(params, ref, x, opt_state):
        score, grad = jax.value_and_grad(lambda v: jnp.sum(apply(params, ref, v)))(x)
        updates, opt_state = opt.update(-grad, opt_state, x)  # ascend the score
        x = jnp.clip(optax.apply_updates(x, updates), 0.0, 1.0)
        return x, opt_state, score

    return step, opt.init


def fidelity(ref: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
    """PSNR (dB) and SSIM of ``x`` against ``ref``, 8-bit reference mode (the image is
    quantised to 8 bits first, as any saved result would be)."""
    x8 = np.round(np.clip(np.asarray(x), 0, 1) * 255).astype(np.uint8)
    return {name: np.asarray(_classical(name)(ref, x8), np.float64) for name in ("psnr", "ssim")}


@functools.cache
def _classical(name: str) -> birqa_jax.Metric:
    return birqa_jax.create_metric(name)


def optimise(metric: birqa_jax.Metric, images: dict, steps: int, lr: float, log_every: int) -> dict:
    """Climb ``metric`` on every distorted image; the trajectory of score, PSNR and SSIM."""
    step, init = make_step(metric, lr)
    ref = jnp.asarray(images["ref"], jnp.float32) / 255.0
    x = jnp.asarray(images["dist"], jnp.float32) / 255.0
    opt_state = init(x)
    log = {"step": [], "score": [], "psnr": [], "ssim": []}

    def record(i, x):
        log["step"].append(i)
        log["score"].append(np.asarray(metric.apply(metric.params, ref, x), np.float64))
        for k, v in fidelity(images["ref"], x).items():
            log[k].append(v)

    t0 = time.perf_counter()
    record(0, x)
    for i in range(1, steps + 1):
        x, opt_state, _ = step(metric.params, ref, x, opt_state)
        if i % log_every == 0 or i == steps:
            record(i, x)
    seconds = time.perf_counter() - t0
    ceiling = np.asarray(metric.apply(metric.params, ref, ref), np.float64)
    return {"log": {k: np.stack(v).tolist() if k != "step" else v for k, v in log.items()},
            "final": np.round(np.asarray(x) * 255).astype(np.uint8), "identical_pair_score": ceiling.tolist(),
            "seconds": seconds}


def summary(run: dict) -> dict[str, np.ndarray]:
    """Per image: score rise, PSNR and SSIM gain from the start to the end, and whether the
    score ended above the identical pair's (the metric prefers the result to the reference)."""
    log = {k: np.asarray(v) for k, v in run["log"].items()}
    return {"score_start": log["score"][0], "score_rise": log["score"][-1] - log["score"][0],
            "psnr_start": log["psnr"][0], "psnr_gain": log["psnr"][-1] - log["psnr"][0],
            "ssim_start": log["ssim"][0], "ssim_gain": log["ssim"][-1] - log["ssim"][0],
            "above_reference": log["score"][-1] > np.asarray(run["identical_pair_score"])}


def markdown(images: dict, runs: dict, args) -> str:
    lines = ["# A metric as a restoration loss", "",
             f"Adam (lr {args.lr}) ascends each metric's score on the distorted image for {args.steps} steps, "
             "pixels clipped to [0, 1]. PSNR and SSIM against the reference (8-bit reference mode) say whether the "
             "image really moved towards it. `above ref.`: the final score exceeds the score of the identical pair "
             "(the metric rates the result better than the reference itself).", "",
             "| image | metric | score start | score rise | PSNR start | PSNR gain (dB) | SSIM start | SSIM gain "
             "| above ref. |", "|---|---|---|---|---|---|---|---|---|"]
    sums = {name: summary(run) for name, run in runs.items()}
    for i, label in enumerate(images["labels"]):
        for name, s in sums.items():
            lines.append(f"| {label} | {name} | {s['score_start'][i]:.3f} | {s['score_rise'][i]:+.3f} | "
                         f"{s['psnr_start'][i]:.2f} | {s['psnr_gain'][i]:+.2f} | {s['ssim_start'][i]:.3f} | "
                         f"{s['ssim_gain'][i]:+.3f} | {'yes' if s['above_reference'][i] else 'no'} |")
    lines += ["", "| metric | mean score rise | mean PSNR gain (dB) | mean SSIM gain | images above ref. | seconds |",
              "|---|---|---|---|---|---|"]
    for name, s in sums.items():
        lines.append(f"| {name} | {s['score_rise'].mean():+.3f} | {s['psnr_gain'].mean():+.2f} | "
                     f"{s['ssim_gain'].mean():+.3f} | {int(s['above_reference'].sum())}/{len(images['labels'])} | "
                     f"{runs[name]['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def figures(images: dict, runs: dict, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(runs)
    n = len(images["labels"])
    cols = 2 + len(names)
    fig, axes = plt.subplots(n, cols, figsize=(2.6 * cols, 2.1 * n), squeeze=False)
    sums = {name: summary(runs[name]) for name in names}
    for i in range(n):
        panels = [("reference", images["ref"][i]), ("distorted", images["dist"][i])]
        panels += [(f"{name}: score {s['score_rise'][i]:+.2f}\nPSNR {s['psnr_gain'][i]:+.2f} dB",
                    runs[name]["final"][i]) for name, s in sums.items()]
        for ax, (title, img) in zip(axes[i], panels):
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=7)
        axes[i][0].set_ylabel(images["labels"][i], fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "images.png"), dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, color in zip(names, ("tab:red", "tab:blue", "tab:green", "tab:purple")):
        log = {k: np.asarray(v) for k, v in runs[name]["log"].items()}
        rise = (log["score"] - log["score"][0]).mean(axis=1)
        for ax, key, unit in ((axes[0], "psnr", "dB"), (axes[1], "ssim", "")):
            gain = (log[key] - log[key][0]).mean(axis=1)
            ax.plot(rise, gain, "-o", ms=2, color=color, label=name)
            ax.set_xlabel("mean score rise")
            ax.set_ylabel(f"mean {key.upper()} gain {unit}".strip())
    for ax in axes:
        ax.axhline(0, color="grey", lw=0.5)
        ax.legend(fontsize=8)
    fig.suptitle("Climbing the metric: does the image get closer to its reference?", fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curves.png"), dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--metrics", nargs="+", default=["birqa_clean", "birqa_robust"],
                   help="BiRQA weight sets or model files")
    p.add_argument("--photos", nargs="+", default=list(UNSEEN_BY_DEFAULT[:2]), choices=UNSEEN_BY_DEFAULT)
    p.add_argument("--level", type=int, default=3, help="distortion level 1..5")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate in [0, 1] pixel units")
    p.add_argument("--log_every", type=int, default=10)
    p.add_argument("--crop", default=f"{CROP[0]}x{CROP[1]}", help="HxW of the reference crops")
    p.add_argument("--out", default="examples/results/restoration")
    p.add_argument("--no_figures", action="store_true")
    args = p.parse_args(argv)
    crop = tuple(int(v) for v in args.crop.split("x"))
    os.makedirs(args.out, exist_ok=True)
    images = test_images(args.photos, args.level, crop)
    runs = {}
    for name in args.metrics:
        print(f"{name}: {args.steps} Adam steps on {len(images['labels'])} images", flush=True)
        runs[name] = optimise(birqa_jax.create_metric(name), images, args.steps, args.lr, args.log_every)
    md = markdown(images, runs, args)
    print(md)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md)
    result = {"settings": vars(args), "labels": images["labels"], "devices": str(jax.devices()[0].device_kind),
              "loadavg": os.getloadavg(),
              "runs": {k: {**{kk: vv for kk, vv in r.items() if kk != "final"},
                           "summary": summary(r)} for k, r in runs.items()}}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(jsonable(result), f, indent=1)
    if not args.no_figures:
        figures(images, runs, args.out)
    return {"runs": runs, "images": images}


if __name__ == "__main__":
    main()
