"""Adversarial robustness of a BiRQA model on a set of image pairs (the protocol of docs/robustness.md).

For every attack of ``adversarial.ATTACKS`` and every L-inf budget eps ([0, 1] pixel units):

- the ranking-scrambling attack: images whose MOS is above the set's mean are pushed to look
  worse, the others to look better (``adversarial.scrambling_direction``); reported as the
  SROCC and PLCC of the attacked predictions with MOS;
- the one-directional "make it look better" attack (direction +1 for every image); reported
  as the absolute gain and the robustness score R (``adversarial.absolute_gain``,
  ``adversarial.robustness_score``);
- for both, the achieved perturbation per image (L-inf, PSNR, SSIM against the unattacked
  distorted image) and its summary;
- per attack, the area under SROCC-vs-eps from eps = 0 (the clean SROCC) to the largest eps,
  divided by that range (``adversarial.eps_integral``).

``attack_pairs`` and ``pair_keys`` are the batched attack driver for studies that attack many
models on the same pairs (``experiments/robustness_study.py``): keys that depend only on the
attack, the budget, the restart and the pair, so every model meets the same random starts.

Correlations here are signed (BiRQA is higher = better): a scrambled ranking can drive them
below zero, which an absolute value would hide.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from birqa_jax.adversarial import attacks as attacks_lib
from birqa_jax.adversarial import scores as robust_scores
from birqa_jax.evaluation import runner, stats
from birqa_jax.inputs import check_batch, check_values
from birqa_jax.model import MIN_SIZE, ModelConfig, apply_fn

DEFAULT_EPS = tuple(k / 255.0 for k in (1, 2, 4, 8))
KINDS = ("scramble", "better")  # attack directions: ranking-scrambling, all +1


def _stack_examples(examples: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(ref, dist, mos)``: [N, H, W, 3] twice, uint8 when every image is uint8 (it
    goes to the device as such), else float32 in [0, 1] (uint8 ones divided by 255); float64 [N]."""
    if len(examples) < 3:
        raise ValueError(f"need at least 3 examples to correlate with MOS, got {len(examples)}")
    refs, dists, moss = [], [], []
    shape = None
    for i, ex in enumerate(examples):
        missing = [k for k in ("ref", "dist", "mos") if k not in ex]
        if missing:
            raise ValueError(f"example {i} lacks {missing}; need ref, dist [1, H, W, 3] and mos [1]")
        ref, dist, mos = np.asarray(ex["ref"]), np.asarray(ex["dist"]), np.asarray(ex["mos"])
        for name, x in (("ref", ref), ("dist", dist)):
            check_batch(name, x.astype(np.float32) if x.dtype == np.uint8 else x, who=f"example {i}")
            if x.shape[0] != 1:
                raise ValueError(f"example {i}: {name} must be one pair [1, H, W, 3], got shape {x.shape}")
        if mos.shape != (1,):
            raise ValueError(f"example {i}: mos must have shape [1], got {mos.shape}")
        if shape is None:
            shape = ref.shape
        if ref.shape != shape or dist.shape != shape:
            raise ValueError(
                f"example {i}: ref {ref.shape} / dist {dist.shape} differ from example 0's {shape}; "
                "crop all pairs to one size"
            )
        refs.append(ref)
        dists.append(dist)
        moss.append(mos)
    h, w = shape[1:3]
    if min(h, w) < MIN_SIZE:
        raise ValueError(f"images of {w}x{h} (width x height) are smaller than BiRQA's minimum {MIN_SIZE}x{MIN_SIZE}")
    if all(x.dtype == np.uint8 for x in refs + dists):
        ref, dist = np.concatenate(refs), np.concatenate(dists)
    else:
        ref, dist = (np.concatenate([x.astype(np.float32) / np.float32(255) if x.dtype == np.uint8
                                     else x.astype(np.float32) for x in xs]) for xs in (refs, dists))
        check_values("ref", ref)
        check_values("dist", dist)
    mos = np.concatenate(moss).astype(np.float64)
    if not np.all(np.isfinite(mos)):
        raise ValueError("mos contains NaN or inf")
    return ref, dist, mos


def _check_attacks(names: Sequence[str], overrides: Mapping[str, Mapping[str, Any]]) -> tuple[str, ...]:
    names = tuple(names)
    if not names:
        raise ValueError("no attacks given")
    unknown = [n for n in names if n not in attacks_lib.ATTACKS]
    if unknown:
        raise ValueError(f"unknown attack(s) {unknown}; choose from {sorted(attacks_lib.ATTACKS)}")
    if len(set(names)) < len(names):
        raise ValueError(f"attacks listed more than once: {list(names)}")
    stray = sorted(set(overrides) - set(names))
    if stray:
        raise ValueError(f"attack_overrides name attacks that are not run: {stray} (running {list(names)})")
    for name, settings in overrides.items():
        # Checked here, not at the attack's first call, so a typo fails before any work is done.
        attacks_lib.check_settings(name, settings)
    return names


def _check_eps(eps_list: Sequence[float]) -> tuple[float, ...]:
    eps = tuple(sorted(float(e) for e in eps_list))
    if not eps:
        raise ValueError("no eps given")
    if eps[0] <= 0.0 or eps[-1] > 1.0:
        raise ValueError(f"eps must lie in (0, 1] ([0, 1] pixel units: 4/255, not 4), got {list(eps)}")
    if len(set(eps)) < len(eps):
        raise ValueError(f"eps listed more than once: {list(eps)}")
    return eps


def _perturbation_summary(stats: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Per-image L-inf, PSNR, SSIM and their summary; an unchanged image has PSNR inf and is
    left out of the PSNR mean (inf when no image changed)."""
    linf, psnr, ssim = (np.asarray(stats[k], np.float64) for k in ("linf", "psnr", "ssim"))
    changed = np.isfinite(psnr)
    return {
        "linf_mean": float(linf.mean()),
        "linf_max": float(linf.max()),
        "psnr_mean": float(psnr[changed].mean()) if changed.any() else math.inf,
        "ssim_mean": float(ssim.mean()),
        "n_unchanged": int((~changed).sum()),
        "linf": linf.tolist(),
        "psnr": psnr.tolist(),
        "ssim": ssim.tolist(),
    }


def evaluate_robustness(
    params,
    model_config: ModelConfig,
    examples: Sequence[Mapping[str, Any]],
    *,
    attacks: Sequence[str],
    eps_list: Sequence[float] = DEFAULT_EPS,
    seed: int = 0,
    batch_size: int = 16,
    attack_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Clean and attacked SROCC/PLCC, gain, R and perturbation sizes of BiRQA on ``examples``.

    Args:
      params: the BiRQA model's parameters (a pytree, as ``birqa_jax.load_model`` returns them).
      model_config: the ``ModelConfig`` that built ``params``.
      examples: N >= 3 one-pair dicts: ref, dist [1, H, W, 3], uint8 0..255 or float in [0, 1],
        all of one size (crop them first); mos [1], higher = better.
      attacks: names from ``adversarial.ATTACKS``; run with ``adversarial.run_attack``'s defaults.
      eps_list: L-inf budgets in (0, 1], [0, 1] pixel units; sorted ascending in the result.
      seed: seeds the random attacks (pgd's start, square, apgd with ``random_start``); each
        (attack, eps, direction, batch) folds its indices into ``PRNGKey(seed)``.
      batch_size: pairs per attack call. Every batch has ``min(batch_size, N)`` rows (the last
        is padded with copies of the final pair, whose results are dropped; attacks treat items
        independently), so each attack compiles once for all batches, budgets and directions, and
        for every model of one config (the parameters are a traced argument). Scoring (clean
        and attacked images) goes through ``runner.score_arrays``, split over all local devices.
      attack_overrides: attack name -> settings passed to ``run_attack`` (``{"pgd": {"steps":
        20}}``); Python scalars.
      progress: show a progress bar over attack calls.

    Returns a JSON-able dict (floats may be NaN or inf: an undefined correlation, the PSNR of
    an unchanged image):
      n, image_size [H, W], eps [K], seed, batch_size;
      mos [N], clean_scores [N]; clean: {srocc, plcc}; n_pushed_down: images the scrambling
      attack pushes down (MOS above the mean);
      attacks: name -> {settings, srocc_integral, scramble: [K], better: [K]}, where each of
      the K entries has eps, scores [N] (attacked predictions), linf/psnr/ssim [N] and
      linf_mean, linf_max, psnr_mean, ssim_mean, n_unchanged; scramble entries add srocc and
      plcc, better entries gain, R and srocc.

    Raises ValueError for bad examples, an unknown attack or setting, or eps outside (0, 1].
    """
    overrides = {k: dict(v) for k, v in (attack_overrides or {}).items()}
    names = _check_attacks(attacks, overrides)
    eps_values = _check_eps(eps_list)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    ref, dist, mos = _stack_examples(examples)
    n = len(mos)
    b = min(batch_size, n)
    batches = runner.batch_plan(n, b)
    apply = apply_fn(model_config)  # one object per config: the attacks and the runner compile per object
    model = runner.WithParams(apply, params)
    params = jax.device_put(params)

    def scores_of(images: np.ndarray) -> np.ndarray:
        return runner.score_arrays({"birqa": model}, ref, images, b)["birqa"]

    # Clean and attacked images as float32 (attacked ones are), so that one scoring program
    # serves both; uint8 becomes v / 255 here exactly as on the device.
    clean = scores_of(dist.astype(np.float32) / np.float32(255) if dist.dtype == np.uint8 else dist)
    directions = {"scramble": robust_scores.scrambling_direction(mos), "better": np.ones(n, np.float32)}
    base_key = jax.random.PRNGKey(seed)
    # Every attack batch goes to the device once, for all attacks, budgets and directions.
    on_device = [jax.device_put((ref[rows], dist[rows], directions["scramble"][rows], directions["better"][rows]))
                 for rows, _ in batches]

    bar = tqdm(total=len(names) * len(eps_values) * len(KINDS) * len(batches), desc="attacking",
               unit="batch", disable=not progress, leave=False)

    def attacked(a: int, e: int, kind: str) -> tuple[np.ndarray, dict[str, Any]]:
        advs, stats = [], {"linf": [], "psnr": [], "ssim": []}
        for i, ((_, k), (r, d, scramble, better)) in enumerate(zip(batches, on_device)):
            key = functools.reduce(jax.random.fold_in, (a, e, KINDS.index(kind), i), base_key)
            adv, st = attacks_lib.run_attack(names[a], apply, r, d, scramble if kind == "scramble" else better,
                                             eps=eps_values[e], rng=key, params=params, validate=False,
                                             **overrides.get(names[a], {}))
            advs.append(np.asarray(adv)[:k])
            for s in stats:
                stats[s].append(np.asarray(st[s])[:k])
            bar.update(1)
        return scores_of(np.concatenate(advs)), _perturbation_summary({s: np.concatenate(v) for s, v in stats.items()})

    clean_srocc = stats.srocc(clean, mos)
    out_attacks: dict[str, Any] = {}
    for a, name in enumerate(names):
        entry: dict[str, Any] = {"settings": overrides.get(name, {}), "scramble": [], "better": []}
        for e, eps in enumerate(eps_values):
            scores, summary = attacked(a, e, "scramble")
            entry["scramble"].append({"eps": eps, "srocc": stats.srocc(scores, mos),
                                      "plcc": stats.plcc(scores, mos), "scores": scores.tolist(), **summary})
            scores, summary = attacked(a, e, "better")
            entry["better"].append({"eps": eps, "gain": robust_scores.absolute_gain(clean, scores),
                                    "R": robust_scores.robustness_score(clean, scores),
                                    "srocc": stats.srocc(scores, mos), "scores": scores.tolist(), **summary})
        curve = [clean_srocc] + [s["srocc"] for s in entry["scramble"]]
        entry["srocc_integral"] = (robust_scores.eps_integral((0.0, *eps_values), curve)
                                   if np.all(np.isfinite(curve)) else math.nan)
        out_attacks[name] = entry
    bar.close()
    return {
        "n": n,
        "image_size": list(ref.shape[1:3]),
        "eps": list(eps_values),
        "seed": seed,
        "batch_size": b,
        "mos": mos.tolist(),
        "clean_scores": clean.tolist(),
        "clean": {"srocc": clean_srocc, "plcc": stats.plcc(clean, mos)},
        "n_pushed_down": int((directions["scramble"] < 0).sum()),
        "attacks": out_attacks,
    }


def srocc_curves(result: Mapping[str, Any]) -> dict[str, dict[float, float]]:
    """Attack name -> {eps: SROCC under the scrambling attack}, with eps = 0 the clean SROCC:
    the input of ``report.robustness_curves``."""
    clean = result["clean"]["srocc"]
    return {
        name: {0.0: clean, **{s["eps"]: s["srocc"] for s in entry["scramble"]}}
        for name, entry in result["attacks"].items()
    }


def _eps_label(eps: float) -> str:
    return f"{eps * 255:g}/255"


def _num(v: float, digits: int = 3) -> str:
    return "nan" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def robustness_markdown(result: Mapping[str, Any]) -> str:
    """A markdown table of ``evaluate_robustness``'s result: one row per attack.

    Columns: SROCC under the scrambling attack at each eps (clean first), its eps integral,
    gain and R of the "make it look better" attack at the largest eps, and the achieved
    maximum L-inf (x 255) and mean PSNR of the scrambling perturbations at the largest eps.
    """
    eps = result["eps"]
    top = _eps_label(eps[-1])
    head = ["attack", "clean", *(_eps_label(e) for e in eps), "SROCC integral", f"gain @{top}", f"R @{top}",
            f"max L-inf x255 @{top}", f"PSNR dB @{top}"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, entry in result["attacks"].items():
        worst, better = entry["scramble"][-1], entry["better"][-1]
        cells = [name, _num(result["clean"]["srocc"]), *(_num(s["srocc"]) for s in entry["scramble"]),
                 _num(entry["srocc_integral"]), _num(better["gain"]), _num(better["R"]),
                 _num(worst["linf_max"] * 255, 2), _num(worst["psnr_mean"], 1)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pair_keys(attack_id: int, eps255: float, restart: int, pair_ids: Sequence[int]) -> np.ndarray:
    """Per-pair attack keys as raw key data [B, 2] uint32 (``rng`` of ``run_attack``).

    A function of (``attack_id``, the budget ``eps255`` in 1/255 to 1e-3, ``restart``, pair id)
    only: every model attacked on a pair, in any batch and order, meets the same random start
    and the same Square proposals.
    """
    key = jax.random.PRNGKey(0)
    for part in (attack_id, round(eps255 * 1000), restart):
        key = jax.random.fold_in(key, part)
    ids = np.asarray(pair_ids, np.uint32)
    return np.asarray(jax.vmap(lambda i: jax.random.fold_in(key, i))(ids))


def attack_pairs(
    name: str,
    model: runner.WithParams,
    ref: np.ndarray,
    dist: np.ndarray,
    direction: np.ndarray,
    keys: np.ndarray,
    *,
    eps: float,
    batch_size: int,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Attack every pair with ``adversarial.run_attack`` and score the attacked images.

    Args:
      name: a key of ``adversarial.ATTACKS``.
      model: the model's pure score function and parameters (``runner.WithParams``); the
        attack compiles once per function object, settings and batch shape, for any parameters.
      ref: [N, H, W, 3] references, uint8 0..255 or float in [0, 1] (values not checked).
      dist: [N, H, W, 3] images to attack, of ``ref``'s shape and dtype kind (both uint8 or
        both float).
      direction: [N] of +1 (push the score up) or -1 (push it down).
      keys: [N, 2] raw key data (``pair_keys``), one per pair.
      eps: L-inf budget in (0, 1].
      batch_size: pairs per attack call; every call has exactly ``min(batch_size, N)`` rows (the
        last batch padded with copies of the final pair, whose results are dropped).
      settings: the attack's settings (Python scalars), as ``run_attack``'s keywords.

    Returns:
      ``{"scores": [N] float64, "adv": [N, H, W, 3] float32, "linf", "psnr", "ssim": [N]}``: the
      model's scores of the attacked images and the perturbations' sizes
      (``adversarial.perturbation_stats``).

    Raises:
      ValueError: ``ref``, ``dist``, ``direction`` and ``keys`` differ in length, or
        ``adversarial.run_attack`` rejects the attack, its settings, the images or the budget.
    """
    n = len(dist)
    if not (len(ref) == n == len(direction) == len(keys)):
        raise ValueError(f"ref, dist, direction and keys must have one length, got {len(ref)}, {n}, "
                         f"{len(direction)}, {len(keys)}")
    parts: dict[str, list[np.ndarray]] = {"adv": [], "linf": [], "psnr": [], "ssim": []}
    for rows, real in runner.batch_plan(n, min(batch_size, n)):
        adv, st = attacks_lib.run_attack(name, model.fn, ref[rows], dist[rows], np.asarray(direction[rows], np.float32),
                                         eps=eps, rng=keys[rows], params=model.params, validate=False,
                                         **dict(settings or {}))
        parts["adv"].append(np.asarray(adv)[:real])
        for k in ("linf", "psnr", "ssim"):
            parts[k].append(np.asarray(st[k])[:real])
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["scores"] = runner.score_arrays({"model": model}, ref, out["adv"], min(batch_size, n))["model"]
    return out
