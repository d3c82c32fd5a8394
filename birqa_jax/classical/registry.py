"""One lookup for both modes of the classical baselines.

``get(name, mode)`` returns a jitted ``fn(ref, dist) -> [B]`` on ``[B, H, W, 3]`` float RGB in
[0, 1]:

- ``mode="reference"`` (the default; evaluation and the training loop's test baselines):
  ``classical.reference_mode``, the published MATLAB algorithms on the 8-bit images (``round(255 x)``,
  MATLAB ``rgb2gray`` with integer rounding, 0..255 values), so the numbers can stand next to
  published tables. Not differentiable.
- ``mode="float"``: ``classical.float_mode``, the differentiable versions on unrounded BT.601 luma
  in [0, 1], for losses and gradients. Not comparable with published tables (SSIM differs by up
  to 0.1 where its downsampling applies, GMSD by a factor of 2 on near-identical pairs).

What each name computes in each mode:

========  ===========================================  ============================================
name      reference                                    float
========  ===========================================  ============================================
psnr      8-bit RGB, MSE over all 3 channels, peak 255  RGB in [0, 1], peak 1 (same value up to the
          (MATLAB ``psnr``, skimage on uint8)           8-bit rounding of the input)
psnr_y    8-bit ``rgb2gray`` grey, peak 255             unrounded BT.601 Y, peak 1
ssim      ``ssim_index.m``: no downsampling, 'valid'    BT.601 Y, with ``ssim.m``'s downsampling
                                                        (f = round(min(H, W) / 256))
ms_ssim   ``msssim.m`` on 8-bit grey                    the same algorithm on unrounded BT.601 Y
gmsd      ``GMSD.m`` on 8-bit grey (0..255)             the same algorithm on 255 x unrounded Y
vif       ``vifvec.m`` (wavelet VIF) on 8-bit grey      the same on 255 x unrounded Y, with a ridge
                                                        on the GSM covariance (``classical.vif``)
fsim      FSIMc of ``FeatureSIM.m`` on 8-bit RGB        the same on 255 x unrounded RGB
                                                        (``classical.fsim``)
cw_ssim   ``cwssim_index.m`` (4 levels, 8 orientations,  the same on 255 x unrounded Y
          K = 0) on 8-bit grey                          (``classical.cw_ssim``)
nlpd      ``NLP_dist.m`` on 8-bit grey / 255 (within    the same on unrounded Y in [0, 1]
          1.1e-3 of the published values, not exact)    (``classical.nlpd``)
vsi       ``VSI.m`` on 8-bit RGB                        the same on 255 x unrounded RGB
                                                        (``classical.vsi``)
mad       ``MAD_index.m`` on 8-bit grey (0..255)        the same on 255 x unrounded Y
                                                        (``classical.mad``)
========  ===========================================  ============================================

Each metric is one ``ClassicalMetric`` entry of ``METRICS`` (name -> entry, in the order
``NAMES`` lists them): both jitted functions, direction, documented range, smallest size, a
one-line description, the keyword options both functions take. Everything else here is read
from it: ``NAMES``, ``HIGHER_IS_BETTER``, ``MIN_SIZE``, ``get`` and ``BASELINES`` (name ->
``(reference-mode fn, higher_is_better)``, what ``evaluation.job`` and ``train.loop`` score
with). A new metric is one entry. GMSD, NLPD and MAD are lower-better.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

from birqa_jax.classical import cw_ssim, float_mode, fsim, mad, nlpd, reference_mode, vif, vsi

Fn = Callable[..., jax.Array]
MODES = ("reference", "float")


class Defaults(NamedTuple):
    """The default of a keyword option in each mode (the modes may differ)."""

    reference: Any
    float: Any


@dataclasses.dataclass(frozen=True)
class ClassicalMetric:
    """Everything about one classical metric.

    Attributes:
      name: its name (a ``create_metric`` name).
      reference_fn: jitted ``fn(ref, dist, **options) -> [B]``, the 8-bit reference mode.
      float_fn: jitted ``fn(ref, dist, **options) -> [B]``, the differentiable float mode.
      higher_is_better: the direction of the score.
      score_range: the documented (low, high) of the score.
      min_size: the smallest short side (px) both modes accept.
      description: one line on what it computes (``birqa list`` prints it).
      options: keyword option -> its ``Defaults`` in each mode; both functions take it, as a
        static argument under ``jax.jit``.
    """

    name: str
    reference_fn: Fn = dataclasses.field(repr=False)
    float_fn: Fn = dataclasses.field(repr=False)
    higher_is_better: bool
    score_range: tuple[float, float]
    min_size: int
    description: str
    options: Mapping[str, Defaults] = dataclasses.field(default_factory=dict)


_psnr_float = jax.jit(float_mode.psnr, static_argnames="luma")

METRICS: dict[str, ClassicalMetric] = {m.name: m for m in (
    ClassicalMetric(
        "psnr", jax.jit(reference_mode.psnr), _psnr_float, higher_is_better=True, score_range=(0.0, math.inf),
        min_size=1, description="PSNR in dB on 8-bit RGB (MATLAB psnr); identical images give inf"),
    ClassicalMetric(
        "psnr_y", jax.jit(reference_mode.psnr_y), functools.partial(_psnr_float, luma=True), higher_is_better=True,
        score_range=(0.0, math.inf), min_size=1,
        description="PSNR in dB on 8-bit grey (MATLAB rgb2gray); identical images give inf"),
    ClassicalMetric(
        "ssim", jax.jit(reference_mode.ssim, static_argnames="downsample"),
        jax.jit(float_mode.ssim, static_argnames="downsample"), higher_is_better=True, score_range=(-1.0, 1.0),
        min_size=11, description="SSIM on 8-bit grey as ssim_index.m (no downsampling)",
        # ssim_index.m has no downsampling; the float mode keeps ssim.m's.
        options={"downsample": Defaults(reference=False, float=True)}),
    ClassicalMetric(
        "ms_ssim", jax.jit(reference_mode.ms_ssim), jax.jit(float_mode.ms_ssim), higher_is_better=True,
        score_range=(0.0, 1.0), min_size=float_mode.MS_SSIM_MIN_SIZE,
        description="MS-SSIM on 8-bit grey as msssim.m; needs 161 px on the short side"),
    ClassicalMetric(
        "gmsd", jax.jit(reference_mode.gmsd), jax.jit(float_mode.gmsd), higher_is_better=False,
        score_range=(0.0, 0.5), min_size=4,
        description="GMSD on 8-bit grey as GMSD.m: deviation of gradient similarity; 0 = identical"),
    ClassicalMetric(
        "vif", jax.jit(vif.vif_reference), jax.jit(vif.vif), higher_is_better=True, score_range=(0.0, math.inf),
        min_size=vif.VIF_MIN_SIZE,
        description="VIF on 8-bit grey as vifvec.m: share of the reference's wavelet-domain information kept; "
                    "1 = identical, above 1 for contrast enhancement; needs 72 px on the short side"),
    ClassicalMetric(
        "fsim", jax.jit(fsim.fsim_reference), jax.jit(fsim.fsim), higher_is_better=True, score_range=(0.0, 1.0),
        min_size=fsim.FSIM_MIN_SIZE,
        description="FSIMc on 8-bit RGB as FeatureSIM.m: phase congruency, gradient and chroma similarity; "
                    "1 = identical"),
    ClassicalMetric(
        "cw_ssim", jax.jit(cw_ssim.cw_ssim_reference), jax.jit(cw_ssim.cw_ssim), higher_is_better=True,
        score_range=(0.0, 1.0), min_size=cw_ssim.CW_SSIM_MIN_SIZE,
        description="CW-SSIM on 8-bit grey as cwssim_index.m: structural similarity of complex steerable pyramid "
                    "coefficients (4th level, 8 orientations), insensitive to small shifts; 1 = identical"),
    ClassicalMetric(
        "nlpd", jax.jit(nlpd.nlpd_reference), jax.jit(nlpd.nlpd), higher_is_better=False,
        score_range=(0.0, math.inf), min_size=nlpd.NLPD_MIN_SIZE,
        description="NLPD on 8-bit grey as NLP_dist.m: distance of divisively normalised Laplacian pyramid "
                    "coefficients (6 levels); 0 = identical"),
    ClassicalMetric(
        "vsi", jax.jit(vsi.vsi_reference), jax.jit(vsi.vsi), higher_is_better=True, score_range=(0.0, 1.0),
        min_size=vsi.VSI_MIN_SIZE,
        description="VSI on 8-bit RGB as VSI.m: saliency (SDSP), gradient and chroma similarity, weighted by "
                    "saliency; 1 = identical"),
    ClassicalMetric(
        "mad", jax.jit(mad.mad_reference), jax.jit(mad.mad), higher_is_better=False, score_range=(0.0, math.inf),
        min_size=mad.MAD_MIN_SIZE,
        description="MAD on 8-bit grey as MAD_index.m: detection (CSF, masking) and appearance (log-Gabor "
                    "statistics) indices combined; 0 = identical; needs 34 px on the short side"),
)}

NAMES = tuple(METRICS)
HIGHER_IS_BETTER = {name: m.higher_is_better for name, m in METRICS.items()}
MIN_SIZE = {name: m.min_size for name, m in METRICS.items()}  # the smallest short side, in both modes


def get(name: str, mode: str = "reference") -> Fn:
    """The jitted baseline ``name`` (one of ``NAMES``) in ``mode`` ("reference" or "float").

    Args:
      name: a key of ``METRICS``.
      mode: "reference" (8-bit, as published) or "float" (differentiable).

    Returns:
      ``fn(ref, dist, **options) -> [B]`` on [B, H, W, 3] float RGB in [0, 1]; the same object
      on every call, so its compilation cache is shared.
    """
    if name not in METRICS:
        raise ValueError(f"unknown classical metric {name!r}; choose from {', '.join(NAMES)}")
    if mode not in MODES:
        raise ValueError(
            f"unknown mode {mode!r} for {name}; choose 'reference' (8-bit, as published) or 'float' (differentiable)"
        )
    return METRICS[name].reference_fn if mode == "reference" else METRICS[name].float_fn


BASELINES: dict[str, tuple[Fn, bool]] = {name: (m.reference_fn, m.higher_is_better) for name, m in METRICS.items()}
