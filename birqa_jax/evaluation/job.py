"""Evaluation of a trained run and of the classical baselines: the library behind ``eval.py``.

``run(config, workdir, out)`` evaluates the metrics ``config.metrics`` ("birqa" = the run's
exported model, plus any of ``classical.NAMES``) on full-resolution images of

- the test split of the run's own dataset and split (``<workdir>/config.json``), or without a
  workdir the test split of ``config.data`` (``config.own_test_split``);
- every entry of ``config.cross``: all examples of another dataset (cross-dataset),

and optionally (``config.robustness.enabled``) runs ``robustness.evaluate_robustness`` on
centre crops of a seeded subset of the first of those sets (``evaluation.robustness``). It writes into ``out``:
``eval.json`` (every number; strict JSON, an undefined value is null), ``eval.md`` (the tables,
also printed) and PNG figures: one scatter with the fitted logistic and one per-distortion-type
SROCC bar chart per (dataset, metric), and the SROCC-vs-eps curves of the attacks.

A metric that cannot run on a dataset's images (MS-SSIM below 161 px on the short side) is
skipped with a printed note and recorded under ``skipped``; pairs a metric scores as non-finite
(PSNR of an image identical to its reference) are left out of that metric's correlations and
counted in ``n_excluded``. Needs the ``data`` extras (tensorflow-datasets, grain).

The classical baselines are scored in their 8-bit reference mode (``classical.get(name,
"reference")``: the published MATLAB algorithms on the 8-bit images), so their numbers can be
put next to published tables; the differentiable float mode is for losses only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import ml_collections
import numpy as np

from birqa_jax import classical, data
from birqa_jax.adversarial import ATTACKS
from birqa_jax.data.distortions import DISTORTION_NAMES
from birqa_jax.data.from_config import data_dir_path, load_data
from birqa_jax.evaluation import report, robustness, runner, stats
from birqa_jax.inputs import positive_int
from birqa_jax.model import MIN_SIZE, apply_fn
from birqa_jax.runs import MODEL_FILE, Run, RunError, load_run

MODEL_METRIC = "birqa"
METRICS = (MODEL_METRIC, *classical.NAMES)
# Smallest short side each metric accepts: BiRQA's pyramid, and each classical metric's
# (``classical.MIN_SIZE``: one 11-px SSIM window, MS-SSIM's fifth scale, ...).
MIN_SIDE = {"birqa": MIN_SIZE, **classical.MIN_SIZE}
# Datasets whose dist_type is the KADID-10k type id (names in distortions.DISTORTION_NAMES).
KADID_STYLE = ("kadid10k", "kadid_synthetic")
BASELINES_OUT = os.path.join("runs", "baselines", "eval")
TABLE_COLUMNS = ("n", "srocc", "krocc", "plcc", "plcc_fitted", "rmse_fitted", "fit_ok")


class EvalError(Exception):
    """A problem with the run folder, a dataset or an option, worded for the command line."""


def open_run(workdir: str) -> Run:
    """``runs.load_run``, its errors worded as EvalError for the command line."""
    try:
        return load_run(workdir)
    except RunError as e:
        raise EvalError(str(e)) from e


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """Examples to evaluate: ``indices`` of ``source`` (a ``data.load_source`` data source)."""

    label: str  # key in eval.json and part of the figure names
    dataset: str  # registered dataset name
    split: str  # "test" or "all"
    source: Any
    indices: np.ndarray


def _columns(source: Any, dataset: str) -> dict[str, np.ndarray]:
    columns = data.example_columns(source)
    if "mos" not in columns:
        raise EvalError(f"{dataset} has no per-image MOS (a 2AFC set?); eval.py correlates scores with MOS")
    return columns


def test_set(data_config: ml_collections.ConfigDict) -> EvalSet:
    """The test split of a training config's ``data`` block (dataset, split rule, split id)."""
    try:
        source, splits = load_data(data_config)
    except FileNotFoundError as e:
        raise EvalError(f"{data_config.name}: {e}") from e
    if "test" not in splits:
        raise EvalError(f"the split of {data_config.name} has no test part (parts: {sorted(splits)})")
    _columns(source, data_config.name)
    return EvalSet(f"{data_config.name}-test", data_config.name, "test", source, splits["test"])


def full_set(label: str, name: str, data_dir: str, manual_dir: str = "") -> EvalSet:
    """Every example of dataset ``name`` (cross-dataset evaluation), built first if needed."""
    try:
        source = data.load_source(name, data_dir_path(data_dir), manual_dir or None)
    except FileNotFoundError as e:
        raise EvalError(f"{label} ({name}): {e}") from e
    _columns(source, name)
    return EvalSet(label, name, "all", source, np.arange(len(source)))


def _size_text(heights: np.ndarray, widths: np.ndarray) -> str:
    """Image sizes as width x height, the way image tools print them."""
    sizes = sorted({(int(w), int(h)) for h, w in zip(heights, widths)})
    if len(sizes) == 1:
        return f"{sizes[0][0]}x{sizes[0][1]}"
    return f"{len(sizes)} sizes, {sizes[0][0]}x{sizes[0][1]} to {sizes[-1][0]}x{sizes[-1][1]}"


def _per_type(pred: np.ndarray, mos: np.ndarray, types: np.ndarray, kadid_style: bool) -> dict[str, dict]:
    """``stats.per_type`` over the types with at least 3 pairs (-1 = no type: none)."""
    labels, counts = np.unique(types, return_counts=True)
    keep = np.isin(types, labels[(counts >= 3) & (labels >= 0)])
    if not keep.any():
        return {}
    names = DISTORTION_NAMES if kadid_style else {int(t): f"type {int(t)}" for t in labels}
    return stats.per_type(pred[keep], mos[keep], types[keep], names)


def evaluate_set(
    eval_set: EvalSet, score_fns: Mapping[str, Callable], batch_size: int, progress: bool = True,
    verbose: bool = True,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Correlations of every metric with MOS on ``eval_set``, overall and per distortion type.

    Args:
      eval_set: the examples to score (an ``EvalSet``).
      score_fns: metric name (a key of ``MIN_SIDE``) -> ``runner.WithParams(apply, params)`` (a
        model) or ``fn(ref, dist) -> [b]`` on float32 [b, H, W, 3] in [0, 1].
      batch_size: pairs per call (consecutive pairs of one size), split over all local devices
        (``runner.score_examples``; the images travel as uint8).
      progress: show a progress bar.
      verbose: print what runs and what is skipped.

    Returns ``(summary, preds)``: summary holds dataset, split, n, image_size, results (metric ->
    ``stats.correlations`` plus n_excluded), per_type (metric -> type name -> correlations),
    skipped (metric -> reason); preds holds each run metric's [n] predictions and mos,
    dist_type [n] as ``runner.score_examples`` returns them.
    """
    note = print if verbose else (lambda *_: None)
    columns = _columns(eval_set.source, eval_set.dataset)
    heights, widths = columns["height"][eval_set.indices], columns["width"][eval_set.indices]
    short = int(min(heights.min(), widths.min()))
    smallest = int(np.argmin(np.minimum(heights, widths)))
    runnable, skipped = {}, {}
    for name, fn in score_fns.items():
        if short < MIN_SIDE[name]:
            skipped[name] = (f"needs at least {MIN_SIDE[name]} px on the short side; the smallest image of "
                             f"{eval_set.label} is {widths[smallest]}x{heights[smallest]} (width x height)")
            note(f"Note: {name} skipped on {eval_set.label}: {skipped[name]}")
        else:
            runnable[name] = fn
    summary: dict[str, Any] = {
        "dataset": eval_set.dataset, "split": eval_set.split, "n": len(eval_set.indices),
        "image_size": _size_text(heights, widths), "results": {}, "per_type": {}, "skipped": skipped,
    }
    if not runnable:
        return summary, {}
    note(f"Evaluating {', '.join(runnable)} on {eval_set.label} ({len(eval_set.indices)} pairs, "
         f"{summary['image_size']})")
    examples = data.eval_examples(eval_set.source, eval_set.indices, uint8=True)  # converted on the device
    preds = runner.score_examples(dict(runnable), examples, batch_size, total=len(eval_set.indices),
                                  progress=progress)
    kadid_style = eval_set.dataset.split("/")[0] in KADID_STYLE
    for name in runnable:
        finite = np.isfinite(preds[name])
        if finite.sum() < 3:
            skipped[name] = f"only {int(finite.sum())} of {finite.size} scores are finite"
            note(f"Note: {name} skipped on {eval_set.label}: {skipped[name]}")
            continue
        if not finite.all():
            note(f"Note: {name} scored {int((~finite).sum())} pairs of {eval_set.label} as non-finite "
                 "(identical to the reference?); they are left out of its correlations")
        pred, mos = preds[name][finite], preds["mos"][finite]
        summary["results"][name] = {**stats.correlations(pred, mos), "n_excluded": int((~finite).sum())}
        summary["per_type"][name] = _per_type(pred, mos, preds["dist_type"][finite], kadid_style)
    return summary, preds


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def write_set_plots(eval_set: EvalSet, summary: Mapping[str, Any], preds: Mapping[str, np.ndarray],
                    out: str) -> list[str]:
    """Scatter with the fitted logistic and per-type SROCC bars of each evaluated metric."""
    paths = []
    for name in summary["results"]:
        finite = np.isfinite(preds[name])
        pred, mos = preds[name][finite], preds["mos"][finite]
        title = f"{name} on {eval_set.label} (n = {finite.sum()})"
        higher_is_better = name == MODEL_METRIC or classical.HIGHER_IS_BETTER[name]
        xlabel = f"{name} score ({'higher' if higher_is_better else 'lower'} = better quality)"
        path = os.path.join(out, f"scatter_{_safe_name(eval_set.label)}_{name}.png")
        paths.append(report.scatter_with_fit(pred, mos, stats.fit_logistic(pred, mos), path, title, xlabel))
        if summary["per_type"][name]:
            paths.append(report.per_type_bars(
                summary["per_type"][name], os.path.join(out, f"per_type_{_safe_name(eval_set.label)}_{name}.png"),
                f"{name}: SROCC per distortion type, {eval_set.label}"))
    return paths


def parse_eps(values: Sequence[str]) -> tuple[float, ...]:
    """L-inf budgets from text in [0, 1] units, as decimals or fractions: ``["1/255", "0.01"]``."""
    out = []
    for v in values:
        try:
            e = float(Fraction(v.strip()))
        except (ValueError, ZeroDivisionError) as err:
            raise EvalError(f"eps {v!r} is not a number or fraction (e.g. 4/255)") from err
        if not 0.0 < e <= 1.0:
            raise EvalError(f"eps {v!r} is outside (0, 1]; budgets are in [0, 1] units: write 8/255, not 8")
        out.append(e)
    return tuple(out)


def parse_crop(text: str) -> tuple[int, int]:
    """``"96x96"`` -> (96, 96): height x width of the centre crop the attacks run on."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise EvalError(f"crop {text!r} must read HxW, e.g. 96x96")
    return int(m[1]), int(m[2])


def apply_overrides(
    config: ml_collections.ConfigDict,
    *,
    metrics: Sequence[str] | None = None,
    robustness: bool | None = None,
    attacks: Sequence[str] | None = None,
    eps: Sequence[str] | None = None,
    max_examples: int | None = None,
    crop: str | None = None,
) -> None:
    """Set the fields of an eval config that ``eval.py``'s flags stand for, in place: --metric
    (``metrics``), --robustness, --robust_attacks, --robust_eps (text, ``parse_eps``),
    --robust_max_examples, --robust_crop (text, ``parse_crop``). None (and an empty list)
    leaves a field as the config file set it."""
    r = config.robustness
    if metrics:
        config.metrics = tuple(metrics)
    if robustness is not None:
        r.enabled = robustness
    if attacks:
        r.attacks = tuple(attacks)
    if eps:
        r.eps = parse_eps(eps)
    if max_examples is not None:
        r.max_examples = max_examples
    if crop:
        r.crop = parse_crop(crop)


def robustness_examples(eval_set: EvalSet, max_examples: int, crop: Sequence[int], seed: int) -> list[dict]:
    """A seeded random subset of ``max_examples`` pairs (all if fewer), centre-cropped to ``crop``.

    The subset is random rather than the first pairs because a split lists its pairs by
    reference and type, so a prefix would cover few distortions and a narrow MOS range.
    Returns one-pair dicts: ref, dist uint8 [1, h, w, 3] (as stored), mos [1], dist_type [1].
    """
    h, w = (int(c) for c in crop)
    if min(h, w) < MIN_SIZE:
        raise EvalError(f"robustness crop {h}x{w} is smaller than BiRQA's minimum {MIN_SIZE}x{MIN_SIZE}")
    if max_examples < 3:
        raise EvalError(f"robustness needs at least 3 pairs, max_examples is {max_examples}")
    columns = _columns(eval_set.source, eval_set.dataset)
    indices = eval_set.indices
    small = (columns["height"][indices] < h) | (columns["width"][indices] < w)
    if small.any():
        i = int(np.flatnonzero(small)[0])
        size = f"{columns['height'][indices[i]]}x{columns['width'][indices[i]]}"
        raise EvalError(f"robustness crop {h}x{w} exceeds image {int(indices[i])} of {eval_set.label} "
                        f"({size}, height x width like the crop)")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(indices, min(max_examples, len(indices)), replace=False))
    out = []
    for ex in data.eval_examples(eval_set.source, pick, uint8=True):
        y, x = (ex["ref"].shape[1] - h) // 2, (ex["ref"].shape[2] - w) // 2
        out.append({"ref": ex["ref"][:, y:y + h, x:x + w], "dist": ex["dist"][:, y:y + h, x:x + w],
                    "mos": ex["mos"], "dist_type": ex["dist_type"]})
    return out


def _check_metrics(metrics: Sequence[str], have_model: bool) -> tuple[str, ...]:
    metrics = tuple(dict.fromkeys(metrics))  # drop repeats, keep order
    if not metrics:
        raise EvalError("no metrics given")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise EvalError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
    if MODEL_METRIC in metrics and not have_model:
        raise EvalError("metric 'birqa' needs --workdir (a trained run); for baselines only, name them "
                        "with --metric, e.g. --metric ssim --metric psnr")
    return metrics


def _set_markdown(label: str, summary: Mapping[str, Any]) -> str:
    what = "test split" if summary["split"] == "test" else "all pairs"
    text = f"## {label}: {what} of {summary['dataset']} ({summary['n']} pairs, {summary['image_size']})\n\n"
    if summary["results"]:
        text += report.markdown_table(summary["results"], TABLE_COLUMNS)
    notes = [f"- {m} skipped: {why}" for m, why in summary["skipped"].items()]
    notes += [f"- {m}: {r['n_excluded']} pairs with a non-finite score left out"
              for m, r in summary["results"].items() if r["n_excluded"]]
    notes += [f"- {m}: logistic fit failed ({r['fit_message']})" for m, r in summary["results"].items()
              if not r["fit_ok"]]
    return text + ("\n" + "\n".join(notes) + "\n" if notes else "")


def _eval_sets(config: ml_collections.ConfigDict, trained: Run | None) -> list[EvalSet]:
    sets = []
    if config.own_test_split:
        sets.append(test_set(trained.config.data if trained is not None else config.data))
    for label, entry in config.cross.items():
        missing = [k for k in ("name", "data_dir") if k not in entry]
        if missing:
            raise EvalError(f"config.cross.{label} lacks {missing}; an entry needs name, data_dir and "
                            "optionally manual_dir")
        sets.append(full_set(label, entry.name, entry.data_dir, entry.get("manual_dir", "")))
    if not sets:
        raise EvalError("nothing to evaluate: own_test_split is off and config.cross is empty")
    labels = [s.label for s in sets]
    if len(set(labels)) < len(labels):
        raise EvalError(f"two evaluated sets share a label: {labels}; rename the config.cross entry")
    return sets


def _score_fns(metrics: Sequence[str], trained: Run | None) -> dict[str, Callable | runner.WithParams]:
    fns: dict[str, Callable | runner.WithParams] = {}
    for name in metrics:
        if name == MODEL_METRIC:  # parameters traced: one compilation per image size, not per model
            fns[name] = runner.WithParams(apply_fn(trained.model_config), trained.params)
        else:
            fns[name] = classical.get(name, mode="reference")  # as published, not the float (loss) mode
    return fns


def _markdown(result: Mapping[str, Any], trained: Run | None) -> str:
    if trained is not None:
        md = f"# Evaluation of {trained.workdir} ({MODEL_FILE}, step {trained.meta.get('step', '?')})\n\n"
    else:
        md = "# Evaluation of the baselines\n\n"
    md += "\n".join(_set_markdown(label, s) for label, s in result["datasets"].items())
    if "robustness" in result:
        rob = result["robustness"]
        md += (f"\n## Robustness of BiRQA on {rob['dataset']}\n\nSigned SROCC with MOS under the ranking-scrambling "
               f"attack; gain and R of the make-it-look-better attack. {rob['note']}.\n\n"
               + robustness.robustness_markdown(rob))
    return md


def run(config: ml_collections.ConfigDict, workdir: str | None = None, out: str | None = None,
        progress: bool = True) -> dict[str, Any]:
    """Evaluate as ``config`` (``configs/eval_default.py``) says; write eval.json, eval.md and the
    figures into ``out`` (default ``<workdir>/eval``, or ``runs/baselines/eval`` without a
    workdir). Returns the content of eval.json (before NaN/inf become null)."""
    metrics = _check_metrics(config.metrics, workdir is not None)
    r = config.robustness
    for field, value in (("batch_size", config.batch_size), ("robustness.batch_size", r.batch_size),
                         ("robustness.max_examples", r.max_examples)):
        try:
            positive_int(f"config.{field}", value)
        except ValueError as e:
            raise EvalError(str(e)) from None
    if r.enabled and workdir is None:
        raise EvalError("the robustness evaluation attacks BiRQA and needs --workdir (a trained run)")
    trained = open_run(workdir) if workdir is not None else None
    out = out or (os.path.join(workdir, "eval") if workdir is not None else BASELINES_OUT)
    sets = _eval_sets(config, trained)
    score_fns = _score_fns(metrics, trained)
    if r.enabled:  # checked and loaded before the long evaluation, so a bad option fails early
        unknown = [a for a in r.attacks if a not in ATTACKS]
        if unknown:
            raise EvalError(f"unknown attack(s) {unknown}; choose from {sorted(ATTACKS)}")
        examples = robustness_examples(sets[0], r.max_examples, r.crop, r.seed)

    os.makedirs(out, exist_ok=True)
    result: dict[str, Any] = {"metrics": list(metrics), "datasets": {}, "plots": []}
    if trained is not None:
        result.update(workdir=workdir, model_file=os.path.join(workdir, MODEL_FILE), model_meta=trained.meta)
    for eval_set in sets:
        summary, preds = evaluate_set(eval_set, score_fns, config.batch_size, progress)
        result["datasets"][eval_set.label] = summary
        result["plots"] += write_set_plots(eval_set, summary, preds, out)

    if r.enabled:
        label = sets[0].label
        h, w = (int(c) for c in r.crop)
        print(f"Attacking BiRQA on {len(examples)} pairs of {label}, {h}x{w} centre crops: "
              f"{', '.join(r.attacks)} at eps {', '.join(f'{e * 255:g}/255' for e in r.eps)}")
        rob = robustness.evaluate_robustness(
            trained.params, trained.model_config, examples, attacks=tuple(r.attacks), eps_list=tuple(r.eps),
            seed=r.seed, batch_size=r.batch_size, attack_overrides=r.overrides.to_dict(), progress=progress)
        rob.update(dataset=label, crop=[h, w],
                   note=f"Attacks ran on {h}x{w} centre crops of {len(examples)} randomly chosen pairs "
                        f"(seed {r.seed}) of {label}, not on full images")
        result["robustness"] = rob
        result["plots"].append(report.robustness_curves(
            robustness.srocc_curves(rob), os.path.join(out, "robustness_curves.png"),
            f"BiRQA SROCC under attack, {label} ({h}x{w} crops)"))

    md = _markdown(result, trained)
    with open(os.path.join(out, "eval.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out, "eval.json"), "w") as f:
        json.dump(report.jsonable(result), f, indent=2, allow_nan=False)
    print("\n" + md)
    print(f"Wrote eval.json, eval.md and {len(result['plots'])} figures to {out}")
    return result
