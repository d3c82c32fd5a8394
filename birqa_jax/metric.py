"""The public scoring API: metric objects that hold their weights with their config, ``score()``
and BiRQA as a differentiable loss.

``METRICS`` holds one entry per metric name, the facts ``list_metrics``, ``describe``,
``create_metric`` and the CLI read: a ``LearnedMetric`` for each packaged BiRQA weight set (its
file in ``birqa_jax/assets``), then the ``classical.ClassicalMetric`` of each classical baseline
(scored in its 8-bit reference mode; ``as_loss`` uses the differentiable float mode).
``create_metric(name, **options)`` gives a ``Metric`` for every name; ``create_metric(path)``
loads a model file written by ``save_model`` (its own config travels inside it).

BiRQA scores: higher = better quality (closer to the reference); unbounded, trained to predict
MOS normalised to [0, 1], so in practice about [0, 1]. The packaged weights were trained on
the synthetic ``kadid_synthetic`` set (docs/using.md, "The score's scale"): an identical pair scores about
0.75-0.85 (``IDENTICAL_PAIR`` has each set's measured range), near the best-rated level of the training
labels, not 1.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import types
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import flax
import jax
import jax.numpy as jnp
import numpy as np

from birqa_jax import classical
from birqa_jax.evaluation.runner import WithParams, score_examples
from birqa_jax.inputs import positive_int, to_float_pair, to_float_pairs, to_float_traced
from birqa_jax.model import MIN_SIZE, ModelConfig, apply_fn, load_model

ASSETS = os.path.join(os.path.dirname(__file__), "assets")
# Identical-pair score of each packaged weight set: (lowest, median, highest), the range rounded
# outwards, over six scikit-image photographs (astronaut, coffee, chelsea, rocket,
# immunohistochemistry, hubble_deep_field) at full size and as 32x32, 96x96, 256x192 centre crops,
# as `python tools/identical_pair_scores.py` prints them: re-measure there when a weight file
# changes, and update docs/using.md's "The score's scale", which quotes them. Images with little
# texture score lower (a uniform grey: about 0.6).
IDENTICAL_PAIR = {
    "birqa_robust": (0.72, 0.74, 0.77),
    "birqa_clean": (0.78, 0.83, 0.86),
}


def _identical(name: str) -> str:
    lo, mid, hi = IDENTICAL_PAIR[name]
    return f"an identical photograph pair scores about {mid:.2f} ({lo:.2f}-{hi:.2f})"


DEFAULT_METRIC = "birqa"
# BiRQA's head is linear: the score is unbounded, trained towards MOS normalised to [0, 1].
BIRQA_RANGE = (-math.inf, math.inf)


@dataclasses.dataclass(frozen=True)
class LearnedMetric:
    """Everything about one packaged BiRQA weight set (a learned metric).

    Attributes:
      name: its name (a ``create_metric`` name).
      weights: its model file in ``ASSETS``.
      description: one line on what it is (``birqa list`` prints it).
      higher_is_better: the direction of the score.
      score_range: the documented (low, high) of the score.
      min_size: the smallest short side (px) it accepts.
      options: the keyword options ``create_metric`` takes: none (a model's settings travel in
        its file's config).
    """

    name: str
    weights: str
    description: str
    higher_is_better: bool = True
    score_range: tuple[float, float] = BIRQA_RANGE
    min_size: int = MIN_SIZE
    options: ClassVar[Mapping[str, classical.Defaults]] = types.MappingProxyType({})


# "birqa" is the recommended set (today the robust one); "birqa_clean" and "birqa_robust" name
# each set for results that must not change when the default does. A new set is one entry.
_ROBUST = ("birqa_clean fine-tuned by Anchored Adversarial Training (configs/robust.py, the robustness study's best "
           f"recipe): steadier under attack at the same clean SROCC within 0.01; {_identical('birqa_robust')}")
_LEARNED = (
    LearnedMetric("birqa", "birqa_robust.msgpack",
                  f"BiRQA (about 0..1), the default weights, today birqa_robust: {_ROBUST}"),
    LearnedMetric("birqa_robust", "birqa_robust.msgpack", f"BiRQA (about 0..1), {_ROBUST}"),
    LearnedMetric("birqa_clean", "birqa_default.msgpack",
                  "BiRQA (about 0..1), clean-trained: the embedded default training run on the synthetic "
                  f"kadid_synthetic set (a demo); {_identical('birqa_clean')}"),
)
# Every metric name -> its entry: the learned metrics, then the classical ones.
METRICS: dict[str, LearnedMetric | classical.ClassicalMetric] = {
    **{m.name: m for m in _LEARNED}, **classical.METRICS,
}
REDUCTIONS = ("mean", "sum", "none")

Apply = Callable[[Any, jax.Array, jax.Array], jax.Array]


def list_metrics() -> list[str]:
    """Names ``create_metric`` accepts (the keys of ``METRICS``): the packaged BiRQA weight
    sets, then the classical baselines."""
    return list(METRICS)


def _entry(name: str) -> LearnedMetric | classical.ClassicalMetric:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    return METRICS[name]


def _span(lo: float, hi: float) -> str:
    return f"{'(' if math.isinf(lo) else '['}{lo:g}, {hi:g}{')' if math.isinf(hi) else ']'}"


def describe(name: str) -> str:
    """One line on metric ``name`` of ``list_metrics()``, from its entry of ``METRICS``.

    Returns:
      the name, the direction, the documented range and the entry's description, in columns.
    """
    entry = _entry(name)
    direction = "higher is better" if entry.higher_is_better else "lower is better"
    return f"{name:<8} {direction:<17} range {_span(*entry.score_range):<12} {entry.description}"


def weights_path(name: str = DEFAULT_METRIC) -> str:
    """Path of the packaged weight set ``name``; a clear error says how to make it if absent."""
    entry = _entry(name)
    if not isinstance(entry, LearnedMetric):
        raise ValueError(f"{name} is a classical metric, not a packaged BiRQA weight set: it has no weights")
    path = os.path.join(ASSETS, entry.weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"the BiRQA weights {name!r} are not packaged with this installation "
            f"(expected {path}). Train them with `python train.py` (the embedded default "
            "config exports them to <workdir>/birqa.msgpack) and use create_metric(path), "
            "or pass explicitly initialised params (birqa_jax.init_params())."
        )
    return path


def default_weights_path() -> str:
    """Path of the packaged default weights (``weights_path("birqa")``, today the robust set)."""
    return weights_path(DEFAULT_METRIC)


@functools.lru_cache(maxsize=None)
def _load_cached(path: str, mtime: float):
    params, config, _ = load_model(path)
    return jax.device_put(params), config


def load(path: str | os.PathLike | None = None) -> tuple[Any, ModelConfig]:
    """Load ``(params, config)`` from a model file, or the packaged default weights."""
    path = os.path.abspath(path or default_weights_path())
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no BiRQA model file at {path!r}")
    return _load_cached(path, os.path.getmtime(path))


@functools.lru_cache(maxsize=None)
def birqa_apply(config: ModelConfig) -> Apply:
    """The pure, jitted ``(params, ref, dist) -> [B]`` BiRQA score of ``config``.

    ``ref, dist``: [B, H, W, 3] uint8 (0..255), uint16 or float in [0, 1], H, W >= ``MIN_SIZE``
    (checked at trace time; values are not checked: they are traced). ``params`` is an
    argument, so weight sets of one config share one compilation per input shape, and
    parameters are never baked into the program as constants. Params that do not fit
    ``config`` raise a ValueError at trace time.
    """
    model = apply_fn(config)

    @jax.jit
    def apply(params, ref, dist):
        ref, dist = to_float_traced(ref, dist, who="birqa", min_size=MIN_SIZE)
        try:
            return model(params, ref, dist)
        except flax.errors.FlaxError as e:
            raise ValueError(
                f"these params do not fit {config}: {str(e).splitlines()[0]} Pass the config stored with "
                "them (params, config = birqa_jax.load(path)), or use birqa_jax.create_metric(name_or_path), "
                "which keeps weights and config together."
            ) from None

    return apply


@functools.lru_cache(maxsize=None)
def _classical_apply(name: str, mode: str, options: tuple[tuple[str, Any], ...]) -> Apply:
    """``classical.get(name, mode)`` with keyword ``options`` in the ``(params, ref, dist)`` form
    of ``Metric.apply``."""
    fn, kwargs = classical.get(name, mode), dict(options)

    @jax.jit
    def apply(params, ref, dist):
        del params  # classical metrics have none
        return fn(*to_float_traced(ref, dist, who=name), **kwargs)

    return apply


@dataclasses.dataclass(frozen=True, eq=False)
class Metric:
    """A full-reference metric with its weights: call it on images, or use ``apply`` / ``as_loss``
    inside your own jitted code.

    Attributes:
      name: the metric's name (a ``list_metrics()`` name, or a model file's path).
      apply: pure, jitted ``(params, ref, dist) -> [B]`` on [B, H, W, 3] uint8 or float in [0, 1]
        (shape and dtype checked at trace time); pass ``params`` as an argument.
      params: the weights ``apply`` takes (None for a classical metric).
      config: the ``ModelConfig`` of ``params`` (None for a classical metric).
      lower_better: True when a lower score means better quality (GMSD).
      score_range: the documented (low, high) of the score; None where none is documented.
      loss_apply: the differentiable form ``as_loss`` uses, where ``apply`` is not one (the
        classical metrics score in their 8-bit reference mode, and train on the float mode);
        None: ``apply``.
      min_size: smallest height and width checked on the host before scoring (a metric that
        needs more, as MS-SSIM's 161 px, says so when traced).
    """

    name: str
    apply: Apply = dataclasses.field(repr=False)
    params: Any = dataclasses.field(repr=False)
    config: ModelConfig | None
    lower_better: bool
    score_range: tuple[float, float] | None
    min_size: int = 1
    loss_apply: Apply | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def from_params(cls, params, config: ModelConfig, name: str = DEFAULT_METRIC) -> Metric:
        """BiRQA with ``params`` of ``config``; ValueError at once when they do not fit."""
        apply = birqa_apply(config)
        probe = jax.ShapeDtypeStruct((1, MIN_SIZE, MIN_SIZE, 3), jnp.float32)
        jax.eval_shape(apply, params, probe, probe)
        return cls(name, apply, params, config, lower_better=False, score_range=BIRQA_RANGE, min_size=MIN_SIZE)

    @classmethod
    def from_file(cls, path: str | os.PathLike, name: str | None = None) -> Metric:
        """BiRQA from a model file (``save_model``), with the config stored in it."""
        params, config = load(path)
        return cls.from_params(params, config, name or os.fspath(path))

    def check(self, ref_shape: tuple[int, ...], dist_shape: tuple[int, ...]) -> None:
        """ValueError when ``apply`` would reject float32 batches of these shapes (traced once
        per shape, never compiled)."""
        jax.eval_shape(self.apply, self.params, jax.ShapeDtypeStruct(ref_shape, jnp.float32),
                       jax.ShapeDtypeStruct(dist_shape, jnp.float32))

    def __call__(self, ref, dist, batch_size: int | None = None):
        """Score image pairs on the host.

        Args:
          ref: the reference image(s): one image or a batch, in any form ``birqa_jax.inputs``
            accepts: arrays (HW, HWC or NHWC; uint8, uint16, or float in [0, 1]), PIL images,
            file paths, or a list of those (sizes may differ between pairs).
          dist: the distorted image(s), in the same form and shapes as ``ref``.
          batch_size: at most this many pairs per device call (bounds memory), a positive int;
            None: all.

        Returns:
          a Python float for one pair, else float32 numpy [N] (N = 0 for an empty batch).
        """
        if batch_size is not None:
            batch_size = positive_int("batch_size", batch_size)
        pairs, single = to_float_pairs(ref, dist, min_size=self.min_size)
        n = sum(len(r) for r, _ in pairs)
        if n == 0:
            return np.zeros(0, np.float32)
        examples = ({"ref": r[i : i + 1], "dist": d[i : i + 1]} for r, d in pairs for i in range(len(r)))
        out = score_examples({self.name: self.bound()}, examples, batch_size=batch_size or n)[self.name]
        out = out.astype(np.float32)
        return float(out[0]) if single else out

    def bound(self) -> WithParams:
        """This metric for ``evaluation.runner``: ``apply`` with its params, which the runner
        passes as a traced argument (never compiled in as constants) after placing them on the
        scoring devices once per call."""
        return WithParams(self.apply, self.params)

    def as_loss(self, reduction: str = "mean") -> Callable[[Any, jax.Array, jax.Array], jax.Array]:
        """A differentiable ``loss(params, ref, dist)`` for jitted training: the score, negated
        when higher is better, so LOWER loss = BETTER quality. ``reduction``: "mean" or "sum"
        over the batch (a scalar), or "none" ([B]).

        NaN or Inf in ``ref`` or ``dist``: called on concrete arrays, a ValueError; inside
        ``jax.jit``/``grad`` values cannot be checked, so the pair's loss is NaN (and so is a
        "mean" or "sum"), at every image size; without this the network would give NaN at some
        sizes and a finite, meaningless number at others."""
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        sign = 1.0 if self.lower_better else -1.0
        reduce = {"mean": jnp.mean, "sum": jnp.sum, "none": lambda x: x}[reduction]

        apply = self.loss_apply or self.apply

        def loss(params, ref: jax.Array, dist: jax.Array) -> jax.Array:
            finite = []
            for name, x in (("ref", ref), ("dist", dist)):
                ok = jnp.all(jnp.isfinite(x), axis=tuple(range(1, jnp.ndim(x))))
                if not isinstance(ok, jax.core.Tracer) and not bool(jnp.all(ok)):
                    raise ValueError(f"{self.name} loss: {name} contains NaN or Inf")
                finite.append(ok)
            scores = apply(params, ref, dist)
            return reduce(sign * jnp.where(finite[0] & finite[1], scores, jnp.nan))

        return loss


def _check_options(name: str, accepted: Mapping[str, classical.Defaults], options: Mapping[str, Any]) -> None:
    """ValueError naming the metric and what it accepts, for an option it does not take or a
    value of another type than the option's default."""
    for key, value in options.items():
        if key not in accepted:
            takes = f"takes only the options {', '.join(accepted)}" if accepted else "takes no options"
            raise ValueError(f"metric {name!r} {takes}; got {key}={value!r}")
        kind = type(accepted[key].reference)
        if type(value) is not kind:
            raise ValueError(f"metric {name!r}: option {key} must be a {kind.__name__}, got {value!r}")


def create_metric(name: str | os.PathLike = DEFAULT_METRIC, **options: Any) -> Metric:
    """The metric ``name``, with its weights or its functions, ready to score.

    Args:
      name: a name of ``list_metrics()`` (an entry of ``METRICS``), or the path of a BiRQA model
        file written by ``save_model`` (its config travels inside it).
      **options: keyword options of the metric, those its entry's ``options`` lists (as
        ``ssim``'s ``downsample``: ``ssim.m``'s downsampling, by default off when scoring, as
        ``ssim_index.m``, and on in ``as_loss``); an option not given keeps each mode's default.
        BiRQA takes none: its settings travel in its config.

    Returns:
      a ``Metric``: BiRQA with its weights and their config, or a classical metric scored in its
      8-bit reference mode, whose ``as_loss`` uses its differentiable float mode.

    Raises:
      ValueError: ``name`` is neither a metric nor a file; an option the metric does not take, or
        of the wrong type.
    """
    name = os.fspath(name)
    if name not in METRICS:
        if not os.path.isfile(name):
            raise ValueError(f"unknown metric {name!r}: not a model file, nor one of {', '.join(METRICS)}")
        _check_options(name, LearnedMetric.options, options)
        return Metric.from_file(name)
    entry = METRICS[name]
    _check_options(name, entry.options, options)
    if isinstance(entry, LearnedMetric):
        params, config = load(weights_path(name))
        return dataclasses.replace(Metric.from_params(params, config, name), lower_better=not entry.higher_is_better,
                                   score_range=entry.score_range, min_size=entry.min_size)
    static = tuple(sorted(options.items()))
    return Metric(name, _classical_apply(name, "reference", static), None, None,
                  lower_better=not entry.higher_is_better, score_range=entry.score_range,
                  loss_apply=_classical_apply(name, "float", static))


def prepare_pair(ref, dist) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate and convert an image pair to float32 NHWC in [0, 1] (``inputs.to_float_pair``
    with BiRQA's minimum size): arrays (HWC or NHWC, uint8, uint16 or float in [0, 1]), PIL
    images or paths; grayscale replicated. Returns ``(ref, dist, single)``."""
    return to_float_pair(ref, dist, min_size=MIN_SIZE)


def score(ref, dist, params=None, config: ModelConfig | None = None, batch_size: int | None = None,
          metric: str = DEFAULT_METRIC):
    """Score image pairs in one line: ``create_metric(metric)(ref, dist)``, or BiRQA with the
    given ``params`` (of ``config``, default ``ModelConfig()``).

    BiRQA: higher = better quality. Inputs as ``Metric.__call__``. Returns a Python float for
    one pair, else float32 numpy [N].
    """
    if params is None:
        if config is not None:
            raise ValueError("config given without params: pass both, or neither for the packaged weights")
        m = create_metric(metric)
    elif metric != DEFAULT_METRIC:
        raise ValueError(f"params are BiRQA weights; metric={metric!r} takes none")
    else:
        m = Metric.from_params(params, config or ModelConfig())
    return m(ref, dist, batch_size)


def perceptual_loss(params, ref: jax.Array, dist: jax.Array, config: ModelConfig | None = None) -> jax.Array:
    """Differentiable BiRQA loss for your own jitted JAX code: ``-mean(score)``.

    ``params`` of ``config`` (default ``ModelConfig()``; a mismatch raises a ValueError at trace
    time). ref, dist: [B, H, W, 3] float in [0, 1] or uint8 (converted; checked at trace time).
    LOWER loss = HIGHER predicted quality = closer to the reference. Gradients flow to ``dist``
    (and to ``ref`` and ``params`` if you differentiate with respect to them).
    """
    return -jnp.mean(birqa_apply(config or ModelConfig())(params, ref, dist))
