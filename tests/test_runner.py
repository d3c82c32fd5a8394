"""The scoring loop (evaluation/runner.py): parameters traced (one compilation per shape for any
number of models), fixed-size padded batches whose padding never reaches a result, batches sent
once as uint8, and batches split over the 8 virtual CPU devices with the scores of one device."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from birqa_jax.evaluation import runner
from birqa_jax.model import apply_fn

DEVICES = jax.local_devices()
RTOL, ATOL = 1e-5, 1e-7  # float32 reassociation between shardings, batch shapes and dtypes


def _images(n: int, h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    noise = rng.integers(-40, 41, ref.shape)
    return ref, np.clip(ref.astype(int) + noise, 0, 255).astype(np.uint8)


def _f(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / np.float32(255)


def _other_params(params, scale: float):
    return jax.tree_util.tree_map(lambda p: p * scale, params)


class _Counting:
    """A pure ``(params, ref, dist) -> [b]`` that counts its traces (= the runner's compilations)."""

    def __init__(self, fn):
        self.fn, self.traces = fn, 0

    def __call__(self, params, ref, dist):
        self.traces += 1
        return self.fn(params, ref, dist)


class _Recording:
    """A plain ``(ref, dist) -> [b]`` (mean of |dist - ref| per pair) recording each batch it gets."""

    def __init__(self):
        self.calls: list[tuple] = []

    def __call__(self, ref, dist):
        self.calls.append((ref.shape, ref.dtype, len(ref.sharding.device_set)))
        return np.abs(np.asarray(dist) - np.asarray(ref)).mean(axis=(1, 2, 3))


def _want_diff(ref, dist):
    return np.abs(_f(dist) - _f(ref)).mean(axis=(1, 2, 3))


def test_one_compilation_per_shape_for_any_number_of_models(tiny_config, tiny_params):
    fn = _Counting(apply_fn(tiny_config))
    models = [tiny_params, _other_params(tiny_params, 1.1), _other_params(tiny_params, 0.9)]
    ref, dist = _images(10, 32, 32)  # 10 pairs, batches of 8 rows: the second holds 2 real + 6 padded
    out = runner.score_arrays({f"m{i}": runner.WithParams(fn, p) for i, p in enumerate(models)}, ref, dist, 8)
    assert fn.traces == 1 and runner.cache_size(fn) == 1
    # The weights are arguments of that one program: each model scored alone gets the same
    # scores, and different weights give different scores.
    for i, p in enumerate(models):
        alone = runner.score_arrays({"m": runner.WithParams(fn, p)}, ref, dist, 8)["m"]
        np.testing.assert_array_equal(alone, out[f"m{i}"])
    assert not np.allclose(out["m0"], out["m1"])
    # A stream of the same size and dtype (a full group of 8, then the tail of 2 padded to 8)
    # and yet another model: still the one program.
    stream = ({"ref": ref[i:i + 1], "dist": dist[i:i + 1]} for i in range(10))
    again = runner.score_examples({"m": runner.WithParams(fn, models[1])}, stream, 8)
    np.testing.assert_array_equal(again["m"], out["m1"])
    assert fn.traces == 1 and runner.cache_size(fn) == 1
    # A new image size compiles once more.
    runner.score_arrays({"m": runner.WithParams(fn, tiny_params)}, *_images(3, 40, 32), 8)
    assert fn.traces == 2 and runner.cache_size(fn) == 2


def test_sharded_scores_match_one_device(tiny_config, tiny_params):
    assert len(DEVICES) == 8
    model = runner.WithParams(apply_fn(tiny_config), tiny_params)
    ref, dist = _images(11, 32, 32, seed=1)
    rec8, rec1 = _Recording(), _Recording()
    eight = runner.score_arrays({"birqa": model, "diff": rec8}, ref, dist, 8)
    one = runner.score_arrays({"birqa": model, "diff": rec1}, ref, dist, 8, devices=DEVICES[:1])
    np.testing.assert_allclose(eight["birqa"], one["birqa"], rtol=RTOL, atol=ATOL)
    direct = apply_fn(tiny_config)(tiny_params, _f(ref[:4]), _f(dist[:4]))  # the model itself, unsharded
    np.testing.assert_allclose(eight["birqa"][:4], np.asarray(direct), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(eight["diff"], one["diff"], rtol=1e-6)
    # 8 devices: every batch split over all of them; 1 device: the same rows on one.
    assert rec8.calls == [((8, 32, 32, 3), np.float32, 8)] * 2
    assert rec1.calls == [((8, 32, 32, 3), np.float32, 1)] * 2
    # A batch size that is not a multiple of the device count is rounded up to one.
    rec = _Recording()
    runner.score_arrays({"diff": rec}, ref, dist, 3)
    assert [c[0][0] for c in rec.calls] == [8, 8]


def test_uint8_and_float_inputs_give_the_same_scores(tiny_config, tiny_params):
    model = runner.WithParams(apply_fn(tiny_config), tiny_params)
    ref, dist = _images(6, 32, 32, seed=2)
    fns = {"birqa": model, "diff": _Recording()}
    as_uint8 = runner.score_arrays(fns, ref, dist, 8)
    as_float = runner.score_arrays(fns, _f(ref), _f(dist), 8)
    as_float64 = runner.score_arrays(fns, ref / 255.0, dist / 255.0, 8)
    for name in fns:  # uint8 is converted on the device bitwise as x / 255 on the host
        np.testing.assert_array_equal(as_uint8[name], as_float[name])
        np.testing.assert_array_equal(as_float64[name], as_float[name])
    np.testing.assert_allclose(as_uint8["diff"], _want_diff(ref, dist), rtol=1e-6)
    # The plain function gets float32 batches in [0, 1], converted on the device.
    assert all(c[1] == np.float32 for c in fns["diff"].calls)
    stream = [{"ref": ref[i:i + 1], "dist": _f(dist[i:i + 1]) if i % 2 else dist[i:i + 1]} for i in range(6)]
    mixed = runner.score_examples({"birqa": model}, stream, 8)  # uint8 and float never share a batch
    np.testing.assert_array_equal(mixed["birqa"], as_float["birqa"])


def test_batches_go_to_the_devices_once_as_uint8(tiny_config, tiny_params, monkeypatch):
    puts = []
    device_put = jax.device_put

    def spy(x, *args, **kwargs):
        puts.append(jax.tree_util.tree_leaves(x))
        return device_put(x, *args, **kwargs)

    monkeypatch.setattr(jax, "device_put", spy)
    ref, dist = _images(10, 32, 32, seed=3)
    fns = {"a": runner.WithParams(apply_fn(tiny_config), tiny_params), "b": runner.WithParams(
        apply_fn(tiny_config), _other_params(tiny_params, 1.1)), "diff": _Recording()}
    runner.score_arrays(fns, ref, dist, 8)
    images = [leaves for leaves in puts if len(leaves) == 2]
    assert len(puts) == 2 + len(images) and len(images) == 2  # params of a and b once, 2 batches once
    assert all(x.dtype == np.uint8 and x.shape == (8, 32, 32, 3) for leaves in images for x in leaves)


def test_padded_rows_never_reach_results():
    ref, dist = _images(13, 8, 8, seed=4)
    rec = _Recording()
    out = runner.score_arrays({"diff": rec}, ref, dist, 8)  # batches of 8: 8 real, then 5 real + 3 padded
    assert out["diff"].shape == (13,) and len(rec.calls) == 2
    np.testing.assert_allclose(out["diff"], _want_diff(ref, dist), rtol=1e-6)

    # The stream form: results and metadata stay aligned with the examples through padding.
    examples = [{"ref": ref[i:i + 1], "dist": dist[i:i + 1], "id": np.array([i])} for i in range(13)]
    got = runner.score_examples({"diff": _Recording()}, iter(examples), 8)
    np.testing.assert_array_equal(got["id"], np.arange(13))
    np.testing.assert_allclose(got["diff"], _want_diff(ref, dist), rtol=1e-6)
    empty = runner.score_examples({"diff": _Recording()}, iter([]), 8)
    assert set(empty) == {"diff"} and empty["diff"].size == 0


@pytest.mark.parametrize("n_devices, batch_size, want", [
    # one device, batches of 8: a lone pair is not padded to 8; a size that filled a batch keeps 8 rows
    (1, 8, [(1, 16), (4, 24), (8, 16), (8, 16), (1, 24), (8, 32), (1, 40)]),
    # two devices, batch size 3 -> 4 rows: a lone pair takes one row per device
    (2, 3, [(2, 16), (4, 24), (4, 16), (4, 16), (4, 16), (4, 24), (4, 32), (4, 32), (2, 40)]),
])
def test_mixed_size_stream_rule(n_devices, batch_size, want):
    sizes = [16] + [24] * 3 + [16] * 10 + [24] + [32] * 5 + [40]
    examples, expected = [], []
    for i, s in enumerate(sizes):
        r, d = _images(1, s, s, seed=10 + i)
        examples.append({"ref": r, "dist": d, "id": np.array([i])})
        expected.append(_want_diff(r, d)[0])
    rec = _Recording()
    out = runner.score_examples({"diff": rec}, examples, batch_size, devices=DEVICES[:n_devices])
    assert [(shape[0], shape[1]) for shape, _, _ in rec.calls] == want
    assert {n for _, _, n in rec.calls} == {n_devices}
    np.testing.assert_array_equal(out["id"], np.arange(len(sizes)))
    np.testing.assert_allclose(out["diff"], expected, rtol=1e-6)


def test_group_rows_rule():
    assert [runner.group_rows(n, 64, 8, False) for n in (1, 8, 9, 16, 17, 33, 64)] == [8, 8, 16, 16, 32, 64, 64]
    assert runner.group_rows(1, 64, 8, True) == 64  # the tail of a size that filled a batch
    assert [runner.group_rows(n, 8, 1, False) for n in (1, 2, 3, 5, 8)] == [1, 2, 4, 8, 8]


def test_bad_inputs_raise():
    ref, dist = _images(2, 8, 8)
    with pytest.raises(ValueError, match="shapes differ"):
        runner.score_arrays({"diff": _Recording()}, ref, dist[:, :4])
    with pytest.raises(ValueError, match="uint8 .* or float"):
        runner.score_arrays({"diff": _Recording()}, ref.astype(np.int32), dist.astype(np.int32))
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        runner.score_arrays({"diff": _Recording()}, ref[..., :1], dist[..., :1])


def test_eval_examples_uint8_end_to_end():
    """``data.eval_examples(uint8=True)`` hands the stored uint8 pairs to the runner, which
    scores them as the float32 examples of the default."""
    from birqa_jax import data

    ref, dist = _images(5, 8, 8, seed=5)
    source = [{"ref": ref[i], "dist": dist[i], "mos": float(i), "mos_raw": float(i), "ref_id": 0, "dist_type": 1}
              for i in range(5)]
    as_uint8 = list(data.eval_examples(source, np.arange(5), uint8=True))
    assert all(ex["ref"].dtype == np.uint8 and ex["ref"].shape == (1, 8, 8, 3) for ex in as_uint8)
    np.testing.assert_array_equal(np.concatenate([ex["dist"] for ex in as_uint8]), dist)
    got = runner.score_examples({"diff": _Recording()}, iter(as_uint8), 8)
    want = runner.score_examples({"diff": _Recording()}, data.eval_examples(source, np.arange(5)), 8)
    np.testing.assert_array_equal(got["diff"], want["diff"])
    np.testing.assert_array_equal(got["mos"], np.arange(5))
