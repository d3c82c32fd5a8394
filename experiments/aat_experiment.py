"""Clean model vs plain adversarial training vs Anchored Adversarial Training, on one data set.

    python experiments/aat_experiment.py --clean runs/demo --steps 300

Fine-tunes two copies of the clean run with the same number of steps and the same training
attack (``configs/aat_default.py``: PGD-3 at 4/255): plain adversarial training (ordinary
batches, every item attacked, PLCC + MSE + ranking) and AAT (MOS-band batches, 4 clean anchors,
MSE + anchored ranking). Then evaluates the
three models on the same seeded subset of the clean run's test split (centre crops, so that
APGD-100 and the Square attack fit on a CPU): clean SROCC, and SROCC under every attack at each
eps with the ranking-scrambling direction of ``robustness.md``. Writes JSON and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ATTACKS = ("fgsm", "ifgsm", "pgd", "mifgsm", "apgd", "korhonen", "square")


def finetune(clean: str, workdir: str, anchored: bool, steps: int):
    from configs import aat_default

    from birqa_jax.train.loop import train_and_evaluate

    c = aat_default.get_config()
    c.init_from = clean
    c.aat.anchored = anchored
    if not anchored:  # plain adversarial training: ordinary batches, where PLCC is meaningful
        c.loss.plcc = 1.0
    c.num_steps = steps
    c.eval_every = steps
    c.checkpoint_every = steps
    c.test_baselines = ()
    train_and_evaluate(c, workdir)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clean", default="runs/demo", help="workdir of the clean training run")
    p.add_argument("--steps", type=int, default=300, help="fine-tuning steps for both methods")
    p.add_argument("--max_examples", type=int, default=32)
    p.add_argument("--crop", default="48x48")
    p.add_argument("--eps", default="2,4,8", help="budgets in 1/255 units")
    p.add_argument("--attacks", default=",".join(ATTACKS))
    p.add_argument("--square_queries", type=int, default=100)
    p.add_argument("--out", default="experiments/results/aat_default")
    args = p.parse_args(argv)

    from absl import logging

    logging.set_verbosity(logging.WARNING)
    from birqa_jax.evaluation import job as eval_lib
    from birqa_jax.evaluation import report
    from birqa_jax.evaluation import robustness as robust_eval

    root = os.path.dirname(os.path.abspath(args.clean.rstrip("/")))
    runs = {"clean": args.clean, "plain_at": os.path.join(root, "plain_at"), "aat": os.path.join(root, "aat")}
    timings = {}
    for name, anchored in (("plain_at", False), ("aat", True)):
        if os.path.exists(os.path.join(runs[name], "birqa.msgpack")):
            print(f"{runs[name]} is already fine-tuned: reusing it (delete it to fine-tune again)")
            continue
        t = time.perf_counter()
        finetune(args.clean, runs[name], anchored, args.steps)
        timings[f"finetune_{name}_s"] = time.perf_counter() - t

    clean_run = eval_lib.load_run(args.clean)
    examples = eval_lib.robustness_examples(eval_lib.held_out_split(clean_run.config.data), args.max_examples,
                                            eval_lib.parse_crop(args.crop), seed=0)
    eps = tuple(float(e) / 255 for e in args.eps.split(","))
    attacks = tuple(args.attacks.split(","))
    results = {}
    for name, workdir in runs.items():
        run = eval_lib.load_run(workdir)
        t = time.perf_counter()
        results[name] = robust_eval.evaluate_robustness(
            run.params, run.model_config, examples, attacks=attacks, eps_list=eps,
            attack_overrides={"square": {"queries": args.square_queries}} if "square" in attacks else None,
            progress=True)
        timings[f"robust_eval_{name}_s"] = time.perf_counter() - t
        print(f"{name}: clean SROCC {results[name]['clean']['srocc']:.4f}")

    table = markdown(results, eps, attacks)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    summary = {"args": vars(args), "timings": timings, "n": len(examples), "results": results}
    with open(args.out + ".json", "w") as f:
        json.dump(report.jsonable(summary), f)
    with open(args.out + ".md", "w") as f:
        f.write(table)
    print(table)
    return 0


def markdown(results: dict, eps: tuple, attacks: tuple) -> str:
    """SROCC with MOS: rows clean and (attack, eps) under the scrambling attack; columns models."""
    names = list(results)
    lines = ["| SROCC | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines.append("| clean | " + " | ".join(f"{results[n]['clean']['srocc']:.3f}" for n in names) + " |")
    for a in attacks:
        for k, e in enumerate(eps):
            row = [f"{results[n]['attacks'][a]['scramble'][k]['srocc']:.3f}" for n in names]
            lines.append(f"| {a} {round(e * 255)}/255 | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
