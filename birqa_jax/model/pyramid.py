"""The BiRQA network: features -> bidirectional gated pyramid -> reliability-aware head.

Functional Flax linen: parameters live outside the module (``model.init`` / ``model.apply``).
The names CSRAM (bottom-up gated residual), SCGB (top-down cross-gating) and the
reliability-aware head come from the paper; their exact form is this project's reconstruction
(see ``ModelConfig`` and docs/reconstruction.md), every open choice being a field of ``ModelConfig``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from birqa_jax.model import features

# Smallest accepted height/width: the 11-tap Gaussian needs 6 pixels for its symmetric padding
# and every pyramid level should keep at least 2x2 pixels for the gates to see context.
MIN_SIZE = 32
# What the head's GeM pools (ModelConfig.gem_input), and a bound just below the minimum of
# GELU (-0.16997 exact, -0.17004 for the tanh form flax uses): "shift" subtracts it, which moves
# every GELU output above 0.
GEM_INPUTS = ("clamp", "softplus", "shift")
GELU_MIN = -0.1701


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Every architectural choice of the model. Where the paper is silent the defaults are this
    project's reconstruction (docs/reconstruction.md).

    widths: channels of each pyramid level; the number of levels is ``len(widths)``. Level l
      works at 1/2^(l+1) of the input resolution (each level starts with a stride-2 3x3 conv).
    lbp_temperature: temperature of the soft LBP bits (luma units).
    info_c: constant of the information map log(1 + sigma^2 / C).
    include_luma: feed Y of both images to the pyramid besides the four features.
    cross_gate_coarse: SCGB also gates each coarse level by pooled fine-level context.
    gem_init: initial GeM exponent p of the head (learned, clamped to >= 1).
    gem_input: what GeM pools, as GeM needs positive values (``gem_pool``): "clamp" (the
      packaged weights' choice) clamps the GELU outputs at 1e-6, so every negative activation
      pools as 1e-6 and passes no gradient; "softplus" pools softplus(f) and "shift" pools
      f - GELU_MIN (just above 0), both positive and differentiable everywhere.
    head_hidden: hidden width of the per-level score/reliability MLP.
    dtype: compute dtype of the pyramid ("float32" or "bfloat16"); parameters and the
      features stay float32, and the head pools and combines in float32.
    """

    widths: tuple[int, ...] = (32, 48, 64, 96)
    lbp_temperature: float = 0.02
    info_c: float = features.INFO_C
    include_luma: bool = True
    cross_gate_coarse: bool = True
    gem_init: float = 3.0
    gem_input: str = "clamp"
    head_hidden: int = 32
    dtype: str = "float32"

    def __post_init__(self):
        if self.gem_init <= 1:
            raise ValueError(f"gem_init must be > 1 (p = 1 + softplus(.)), got {self.gem_init}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if len(self.widths) < 1 or min(self.widths) < 1:
            raise ValueError(f"widths must be a non-empty sequence of positive ints, got {self.widths}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {self.dtype!r}")
        if self.gem_input not in GEM_INPUTS:
            raise ValueError(f"gem_input must be one of {GEM_INPUTS}, got {self.gem_input!r}")
        if self.lbp_temperature <= 0:
            raise ValueError(f"lbp_temperature must be > 0, got {self.lbp_temperature}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """The config of a dict of its fields (as ``to_dict`` writes it); fields left out keep
        their defaults.

        Args:
          d: field name -> value (``widths`` as any sequence of ints).

        Raises:
          ValueError: a key that is not a field, or a value the config rejects.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Every field as a JSON-able dict (``widths`` as a list); ``from_dict`` reads it back."""
        d = dataclasses.asdict(self)
        d["widths"] = list(self.widths)
        return d


def _down(x: jax.Array) -> jax.Array:
    """2x2 average pooling to the output size of a stride-2 'SAME' conv (ceil(H/2)).

    An odd last row/column is averaged on its own (edge padding), as pooling that ignores
    padding would; a reshape-mean avoids the divisor map XLA otherwise constant-folds."""
    n, h, w, c = x.shape
    x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return x.reshape(n, (h + 1) // 2, 2, (w + 1) // 2, 2, c).mean(axis=(2, 4))


def _up_to(x: jax.Array, shape: Sequence[int]) -> jax.Array:
    """Nearest-neighbour 2x upsampling of ``x`` cropped to the spatial ``shape`` (H, W)."""
    x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    return x[:, : shape[0], : shape[1], :]


# Nearest 2x upsampling followed by a 3x3 conv, per output phase: fine row 2i + a reads the
# upsampled rows 2i + a - 1, 2i + a, 2i + a + 1, which are coarse rows (i - 1, i, i) for a = 0
# and (i, i, i + 1) for a = 1. So each phase is a 2-tap filter on the coarse rows (i - 1 + a,
# i + a) whose taps sum the 3x3 kernel's rows: _PHASE_ROWS[a] maps kernel rows to the 2 taps.
_PHASE_ROWS = np.array([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]], np.float32)


def upsampled_conv3x3(coarse: jax.Array, kernel: jax.Array, shape: Sequence[int]) -> jax.Array:
    """``conv3x3(_up_to(coarse, shape))`` (zero 'SAME' padding, no bias) computed on the coarse
    grid: 4 FLOPs per output pixel and channel pair instead of 9, the same values up to float
    rounding.

    Each of the four output phases is a 2x2 filter of ``coarse`` (kernel taps summed per phase,
    ``_PHASE_ROWS``); one convolution computes all four as 4 x C_out channels, which are then
    interleaved. ``shape`` (H, W) may be odd, 2 * coarse - 1: the last row (column) of the
    result then sums a kernel row (column) over the cropped-off upsampled row, which a plain
    conv would read as zero padding; that one-row term is subtracted again.

    coarse [N, h, w, Ci] in the compute dtype, kernel [3, 3, Ci, Co] (its taps are summed in its own
    dtype, the parameters' float32, before the cast to the compute dtype) -> [N, H, W, Co].
    """
    n, h, w, ci = coarse.shape
    co = kernel.shape[-1]
    out_h, out_w = shape
    if out_h not in (2 * h - 1, 2 * h) or out_w not in (2 * w - 1, 2 * w):
        raise ValueError(f"output {out_h}x{out_w} is not a 2x upsampling of {h}x{w}")
    rows = jnp.asarray(_PHASE_ROWS, kernel.dtype)
    # [2 taps, 2 taps, Ci, Co, 2 row phases, 2 column phases]: one output channel per (o, a, b).
    phased = jnp.einsum("apu,bqv,uvio->pqioab", rows, rows, kernel).reshape(2, 2, ci, co * 4).astype(coarse.dtype)
    kernel = kernel.astype(coarse.dtype)
    y = jax.lax.conv_general_dilated(coarse, phased, (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = y.reshape(n, h + 1, w + 1, co, 2, 2)  # phase (a, b) of coarse pixel (i, j) at y[i + a, j + b]
    out = jnp.stack([jnp.stack([y[:, a:a + h, b:b + w, :, a, b] for b in (0, 1)], axis=3) for a in (0, 1)],
                    axis=2).reshape(n, 2 * h, 2 * w, co)[:, :out_h, :out_w]

    def edge_term(line: jax.Array, taps: jax.Array, size: int) -> jax.Array:
        """Sum over t of taps[t] @ up(line)[x + t - 1]: one line's 3-tap filter, zero padded."""
        up = jnp.pad(jnp.repeat(line, 2, axis=1), ((0, 0), (1, 1), (0, 0)))
        return sum(jnp.einsum("nxc,co->nxo", up[:, t:t + size], taps[t]) for t in range(3))

    if out_h % 2:  # row out_h - 1 read the cropped upsampled row out_h (coarse row h - 1)
        out = out.at[:, -1].add(-edge_term(coarse[:, -1], kernel[2], out_w))
    if out_w % 2:
        out = out.at[:, :, -1].add(-edge_term(coarse[:, :, -1], kernel[:, 2], out_h))
    if out_h % 2 and out_w % 2:  # the corner's kernel[2, 2] term was subtracted twice
        out = out.at[:, -1, -1].add(coarse[:, -1, -1] @ kernel[2, 2])
    return out


class UpsampledConv(nn.Module):
    """A 3x3 'SAME' conv of the nearest 2x upsampling of its input, computed on the coarse grid
    (``upsampled_conv3x3``). Its parameters are those of ``nn.Conv(features, (3, 3))`` (same
    names, shapes and initialisers), so weights trained with that form load unchanged."""

    features: int
    dtype: Any

    @nn.compact
    def __call__(self, coarse, shape):
        """The 3x3 conv (with bias) of the nearest 2x upsampling of ``coarse``, cropped to ``shape``.

        Args:
          coarse: [N, h, w, Ci].
          shape: (H, W) of the output: H is 2h or 2h - 1, W is 2w or 2w - 1.

        Returns:
          [N, H, W, features] in ``dtype``.

        Raises:
          ValueError: ``shape`` is not a 2x upsampling of (h, w).
        """
        kernel = self.param("kernel", nn.linear.default_kernel_init, (3, 3, coarse.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        coarse, bias = nn.dtypes.promote_dtype(coarse, bias, dtype=self.dtype)
        return upsampled_conv3x3(coarse, kernel, shape) + bias  # the kernel's taps summed in float32


class PyramidLevel(nn.Module):
    """One encoder level: stride-2 3x3 conv, then a 3x3 conv with a residual connection."""

    width: int
    dtype: Any

    @nn.compact
    def __call__(self, x):
        """[N, H, W, C] -> [N, ceil(H / 2), ceil(W / 2), width] in ``dtype``."""
        x = nn.gelu(nn.Conv(self.width, (3, 3), strides=(2, 2), dtype=self.dtype, name="down")(x))
        return x + nn.gelu(nn.Conv(self.width, (3, 3), dtype=self.dtype, name="conv")(x))


class CSRAM(nn.Module):
    """Bottom-up uncertainty-aware gated residual: injects fine-scale cues into a coarse level.

    m = Down(fine); s = softplus(W_s [coarse, m]) is the injection strength, c = sigmoid(W_c
    [coarse, m]) the confidence, and coarse <- coarse + s * c * phi(m). Keeping strength and
    confidence separate lets the gate say "strong but unsure" apart from "weak but sure".
    """

    dtype: Any

    @nn.compact
    def __call__(self, coarse, fine):
        """The coarse level with the fine cues injected.

        Args:
          coarse: [N, h, w, C], the level being updated.
          fine: [N, H, W, Cf], the next finer level, with h = ceil(H / 2) and w = ceil(W / 2).

        Returns:
          [N, h, w, C].
        """
        width = coarse.shape[-1]
        m = _down(fine)
        h = jnp.concatenate([coarse, m], axis=-1)
        # Strength and confidence read the same h: one 1x1 conv with both kernels side by side
        # reads it once (the parameters stay two nn.Conv-shaped sets named strength/confidence).
        ks, bs = _Conv1x1Params(width, self.dtype, name="strength")(h.shape[-1])
        kc, bc = _Conv1x1Params(width, self.dtype, name="confidence")(h.shape[-1])
        both = _conv1x1(h, jnp.concatenate([ks, kc], axis=-1), jnp.concatenate([bs, bc]), self.dtype)
        strength, confidence = nn.softplus(both[..., :width]), nn.sigmoid(both[..., width:])
        phi = nn.Conv(width, (1, 1), dtype=self.dtype, name="phi")(m)
        return coarse + strength * confidence * phi


class _Conv1x1Params(nn.Module):
    """The kernel and bias of ``nn.Conv(features, (1, 1), dtype=dtype)`` (same names, shapes,
    initialisers and random streams), declared without applying them and returned in the
    compute ``dtype``, as nn.Conv promotes them."""

    features: int
    dtype: Any

    @nn.compact
    def __call__(self, in_features: int):
        kernel = self.param("kernel", nn.linear.default_kernel_init, (1, 1, in_features, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return nn.dtypes.promote_dtype(kernel, bias, dtype=self.dtype)


def _conv1x1(x, kernel, bias, dtype):
    """``nn.Conv``'s computation for a 1x1 kernel: operands promoted to ``dtype``, then the conv
    and the bias."""
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=dtype)
    y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias


class SCGB(nn.Module):
    """Top-down spatial cross-gating block between a fine level and the next coarser one.

    fine <- fine * sigmoid(conv3x3(Up(coarse))) routes coarse context to high resolution; with
    ``cross`` the coarse level is also gated by pooled fine detail, coarse <- coarse *
    sigmoid(conv1x1(Down(fine))). Gates are 2 * sigmoid so that a zero logit is the identity.
    """

    dtype: Any
    cross: bool

    @nn.compact
    def __call__(self, fine, coarse):
        """Both levels after the gating.

        Args:
          fine: [N, H, W, Cf].
          coarse: [N, h, w, Cc], the next coarser level, with h = ceil(H / 2) and w = ceil(W / 2).

        Returns:
          ``(fine, coarse)`` of the input shapes; ``coarse`` is returned unchanged without
          ``cross``.
        """
        g = UpsampledConv(fine.shape[-1], self.dtype, name="fine_gate")(coarse, fine.shape[1:3])
        new_fine = fine * (2.0 * nn.sigmoid(g))
        if self.cross:
            gc = nn.Conv(coarse.shape[-1], (1, 1), dtype=self.dtype, name="coarse_gate")(_down(fine))
            coarse = coarse * (2.0 * nn.sigmoid(gc))
        return new_fine, coarse


class ReliabilityHead(nn.Module):
    """Reliability-aware head: GeM pooling per level, a score and a reliability logit per level,
    and the softmax of the logits as convex weights of the per-level scores (float32)."""

    hidden: int
    gem_init: float
    gem_input: str = "clamp"

    @nn.compact
    def __call__(self, levels: Sequence[jax.Array]):
        """The score of a batch from its pyramid levels.

        Args:
          levels: L maps [B, H_l, W_l, C_l], finest first (any float dtype: pooled in float32).

        Returns:
          ``(score [B], per-level scores [B, L], weights [B, L])``, float32; the weights are
          positive and sum to 1 over the levels. Sows ``gem_floor_<l>`` [B] into the
          ``"intermediates"`` collection (see ``gem_floor_fraction``).
        """
        scores, logits = [], []
        for i, f in enumerate(levels):
            f = f.astype(jnp.float32)
            p = 1.0 + nn.softplus(
                self.param(f"gem_p_{i}", nn.initializers.constant(_softplus_inv(self.gem_init - 1.0)), ())
            )
            pooled = gem_pool(f, p, self.gem_input)
            # Where the pooled map sits at GeM's floor its gradient is zero: a model can resist
            # gradient attacks by pushing activations there (``gem_floor_fraction``).
            self.sow("intermediates", f"gem_floor_{i}", jnp.mean(_at_gem_floor(f, self.gem_input), axis=(1, 2, 3)))
            h = nn.gelu(nn.Dense(self.hidden, name=f"hidden_{i}")(pooled))
            # Small output init: predictions start near zero but not constant (a constant batch
            # has no Pearson gradient worth following).
            out = nn.Dense(2, kernel_init=nn.initializers.variance_scaling(0.01, "fan_in", "normal"),
                           name=f"out_{i}")(h)
            scores.append(out[:, 0])
            logits.append(out[:, 1])
        scores = jnp.stack(scores, axis=-1)
        weights = jax.nn.softmax(jnp.stack(logits, axis=-1), axis=-1)
        return jnp.sum(weights * scores, axis=-1), scores, weights


def gem_pool(f: jax.Array, p: jax.Array, gem_input: str = "clamp") -> jax.Array:
    """Generalised-mean pooling over H, W: ``mean(x ** p) ** (1 / p)``, [B, H, W, C] -> [B, C],
    of ``x = max(f, 1e-6)`` ("clamp"), ``softplus(f)`` ("softplus") or ``max(f - GELU_MIN,
    1e-6)`` ("shift"; the clamp never binds on GELU outputs). p = 1 is the mean of x, p -> inf
    its maximum; a constant map (above the clamp) pools to that constant for every p."""
    if gem_input == "softplus":
        # softplus is positive but underflows to 0 below about -104 (never for GELU outputs).
        x = jnp.maximum(jax.nn.softplus(f), jnp.finfo(f.dtype).tiny)
    elif gem_input == "shift":
        x = jnp.maximum(f - GELU_MIN, 1e-6)
    else:
        x = jnp.maximum(f, 1e-6)
    # x ** p as exp(p log x), valid as x > 0 here. The general power (signs, integer exponents,
    # zeros) made the pooling of the two finest levels the costliest loops of the forward on the
    # CPU (benchmarks/README.md has the numbers).
    return jnp.mean(jnp.exp(p * jnp.log(x)), axis=(1, 2)) ** (1.0 / p)


def _at_gem_floor(f: jax.Array, gem_input: str) -> jax.Array:
    """Where ``gem_pool``'s input clamp binds (zero gradient), as float 0/1 of ``f``'s shape."""
    if gem_input == "softplus":
        return (jax.nn.softplus(f) <= jnp.finfo(f.dtype).tiny).astype(jnp.float32)
    shifted = f - GELU_MIN if gem_input == "shift" else f
    return (shifted < 1e-6).astype(jnp.float32)


def gem_floor_fraction(config: "ModelConfig", params, ref: jax.Array, dist: jax.Array) -> jax.Array:
    """Per pair, the fraction of the head's GeM inputs held at the pooling floor (clamped, so
    with zero gradient), averaged over the levels: [B] in [0, 1]. A robustness check: a model
    that "resists" gradient attacks by parking activations at the clamp masks its gradients
    rather than becoming robust. ref, dist: [B, H, W, 3] float32 in [0, 1]."""
    _, state = BiRQA(config).apply(params, ref, dist, mutable=["intermediates"])
    head = state["intermediates"]["head"]
    return jnp.mean(jnp.stack([head[f"gem_floor_{i}"][0] for i in range(len(config.widths))]), axis=0)


def _softplus_inv(y: float) -> float:
    return math.log(math.expm1(y))


class BiRQA(nn.Module):
    """BiRQA: full-reference quality of ``dist`` with respect to ``ref``.

    ``__call__(ref, dist)`` with ref, dist: [B, H, W, 3] float32 RGB in [0, 1], H, W >=
    ``MIN_SIZE``; returns the score [B] (higher = better quality), or with
    ``return_levels=True`` the tuple (score [B], per-level scores [B, L], weights [B, L]).
    Inputs are not validated here (it is traced inside jit); the scoring API validates them.
    """

    config: ModelConfig = ModelConfig()

    @nn.compact
    def __call__(self, ref, dist, return_levels: bool = False):
        """The quality score of each pair.

        Args:
          ref: [B, H, W, 3] float32 RGB in [0, 1], H and W >= ``MIN_SIZE`` (not checked).
          dist: [B, H, W, 3], the distorted images, of ``ref``'s shape.
          return_levels: also return the head's per-level scores and weights.

        Returns:
          The score [B] float32, higher = better; with ``return_levels`` the tuple (score [B],
          per-level scores [B, L], weights [B, L]).
        """
        cfg = self.config
        dtype = jnp.dtype(cfg.dtype)
        x = features.feature_stack(
            ref, dist, lbp_temperature=cfg.lbp_temperature, info_c=cfg.info_c,
            include_luma=cfg.include_luma,
        ).astype(dtype)

        levels = []
        for i, w in enumerate(cfg.widths):
            x = PyramidLevel(w, dtype, name=f"level_{i}")(x)
            if levels:  # bottom-up: fine -> coarse, each level sees the updated finer one
                x = CSRAM(dtype, name=f"csram_{i}")(x, levels[-1])
            levels.append(x)

        for i in reversed(range(len(levels) - 1)):  # top-down: coarse -> fine
            levels[i], levels[i + 1] = SCGB(dtype, cfg.cross_gate_coarse, name=f"scgb_{i}")(
                levels[i], levels[i + 1]
            )

        score, level_scores, weights = ReliabilityHead(cfg.head_hidden, cfg.gem_init, cfg.gem_input,
                                                       name="head")(levels)
        if return_levels:
            return score, level_scores, weights
        return score


@functools.lru_cache(maxsize=None)
def _init_fn(config: ModelConfig):
    return jax.jit(BiRQA(config).init)


def init_params(config: ModelConfig = ModelConfig(), rng: jax.Array | int = 0, size: int = MIN_SIZE):
    """Initialise parameters (float32) for ``config``; they do not depend on the image size.

    An int seed makes an ``rbg`` key, whose init compiles much faster on the CPU than with the
    default threefry key (benchmarks/README.md has the numbers); values are reproducible per
    backend.
    """
    if isinstance(rng, int):
        rng = jax.random.key(rng, impl="rbg")
    x = jnp.zeros((1, size, size, 3), jnp.float32)
    return _init_fn(config)(rng, x, x)


def param_count(params) -> int:
    """The number of scalars in a parameter pytree (its leaves' sizes summed; shape structs count)."""
    return sum(int(p.size) for p in jax.tree_util.tree_leaves(params))


@functools.lru_cache(maxsize=None)
def apply_fn(config: ModelConfig) -> Callable:
    """The jitted ``(params, ref, dist) -> [B]`` score function of ``config`` (cached, so one
    compilation per config and input shape for the whole process; ``params`` is a traced
    argument, so any number of weight sets of one config share it)."""
    return jax.jit(BiRQA(config).apply)
