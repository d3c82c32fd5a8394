"""Embedded default: train BiRQA on the synthetic kadid_synthetic set (2 CPU cores, < 10 min).

kadid_synthetic pairs scikit-image photographs with the 25 KADID-10k distortion types at 5
levels; its labels are KADID-10k's human mean MOS per (type, level), not per-image judgements.
Every field can be overridden on the command line: ``--config.batch_size=8``.
"""

import ml_collections

from birqa_jax.model import ModelConfig


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.name = "kadid_synthetic"
    c.data.data_dir = "data_cache"   # built datasets (ArrayRecord) live here; a relative folder is in
                                     # ~/.cache/birqa_jax/ unless the current folder holds it
    c.data.manual_dir = ""           # official files of a real dataset ("" = not needed)
    c.data.split = "random"          # "random" (reference-disjoint, seeded), "official" (PIPAL) or
                                     # "photos" (kadid_synthetic: hold out the photographs named below)
    c.data.test_photos = ()          # split "photos": test photographs (configs/aat_study.py)
    c.data.val_photos = ()           # split "photos": validation photographs
    c.data.split_id = 0
    c.data.ratios = (0.6, 0.2, 0.2)  # train/val/test; (0.8, 0.2) for train/test
    c.data.crop_size = (96, 96)
    c.data.storage = "png"           # "png" or "raw": uint8 pixels, no decoding when read, about
                                     # 1.85x PNG's disk space (a build of its own, in data_dir/raw)
    c.data.workers = 0               # threads preparing training batches; 0 = one per CPU core
    c.data.synthetic = ml_collections.ConfigDict(
        dict(name="default", num_refs=40, crop_size=(192, 256), seed=0, label_noise=0.0)
    )

    c.model = ml_collections.ConfigDict(ModelConfig(widths=(16, 24, 32, 48), head_hidden=32).to_dict())
    c.init_from = ""                 # model file or workdir to start from (fine-tuning)

    c.batch_size = 16
    c.num_steps = 900
    c.learning_rate = 2e-3
    c.warmup_steps = 50
    c.weight_decay = 1e-4
    c.grad_clip = 1.0
    # Loss terms (train.step.LossWeights). From rank_anchor_stop_grad on they are adversarial-
    # training options: margin of a pair = rank_margin + rank_margin_rel * |label gap|;
    # rank_anchor_stop_grad: the anchored term sees the anchors' predictions as constants;
    # consistency: weight of (attacked - clean prediction)^2; slope, slope_h: finite-difference
    # slope penalty (Liu et al.: 1e-3, 0.01); clean: PLCC + MSE of the clean predictions;
    # anchor_rank (+ margins): attacked predictions ranked against every item's clean one;
    # scaled_consistency: (attacked - clean)^2 over the clean scores' batch variance.
    c.loss = ml_collections.ConfigDict(
        dict(plcc=1.0, mse=1.0, rank=0.5, rank_margin=0.0, rank_kind="hinge", rank_margin_rel=0.0,
             rank_anchor_stop_grad=False, consistency=0.0, slope=0.0, slope_h=0.01, clean=0.0,
             anchor_rank=0.0, anchor_margin=0.0, anchor_margin_rel=0.5, scaled_consistency=0.0,
             scaled_consistency_stop_var=True)
    )

    # Adversarial fine-tuning (see configs/aat_default.py); off for clean training.
    # settings: keyword options of the attack (birqa_jax.adversarial.attacks), e.g. PGD's steps and
    # step_size (default eps / 4), Square's queries. num_attacked: attack the first k non-anchors
    # of a batch (-1: all); eps_ramp_steps: grow eps linearly over this many steps (0: off);
    # objective: "away" (push each score off its label) or "rank" (push it across the batch's
    # clean scores, softness temperature).
    c.aat = ml_collections.ConfigDict(
        dict(enabled=False, anchored=True, attack="pgd", eps=4 / 255, settings=dict(steps=3),
             band_width=0.2, num_anchors=4, anchor_rule="spread", num_attacked=-1, eps_ramp_steps=0,
             objective="away", temperature=0.02)
    )

    c.log_every = 10
    c.eval_every = 450
    c.eval_batch_size = 16
    c.checkpoint_every = 450
    c.keep_checkpoints = 2
    c.max_consecutive_nonfinite = 20
    c.prefetch = 2                   # batches prepared ahead (0: each loaded in the training thread)
    c.test_baselines = ("psnr", "ssim")
    return c
