"""Input pipelines: batch shapes, aligned crops, epochs, resume, process slices, MOS bands."""

import threading

import fixtures_iqa as fx
import numpy as np
import pytest

from birqa_jax import data
from birqa_jax.train.theorem1 import two_sided_coverage

NUM_EXAMPLES = 24  # 12 references x 2
CROP = (8, 12)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    fx.write_kadid_textured(root / "kadid10k")
    return data.load_source("kadid10k", str(root / "tfds"), manual_dir=str(root / "kadid10k"))


@pytest.fixture(scope="module")
def mos_raw(source):
    return data.example_columns(source)["mos_raw"]


def train(source, indices=None, **kwargs):
    options = dict(batch_size=4, crop_size=CROP, seed=0)
    indices = np.arange(NUM_EXAMPLES) if indices is None else indices
    return data.train_dataset(source, indices, **{**options, **kwargs})


def band(source, **kwargs):
    options = dict(batch_size=6, band_width=0.2, num_anchors=3, anchor_rule="spread", crop_size=CROP, seed=1)
    return data.mos_band_dataset(source, np.arange(NUM_EXAMPLES), **{**options, **kwargs})


def assert_batches_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_train_batch_spec(source, mos_raw):
    batch = train(source)[0]
    assert set(batch) == {"ref", "dist", "mos", "mos_raw", "ref_id", "dist_type"}
    for key in ("ref", "dist"):
        assert batch[key].shape == (4, *CROP, 3) and batch[key].dtype == np.float32
        assert 0 <= batch[key].min() and batch[key].max() <= 1
    for key, dtype in (("mos", np.float32), ("mos_raw", np.float32), ("ref_id", np.int32), ("dist_type", np.int32)):
        assert batch[key].shape == (4,) and batch[key].dtype == dtype
    # The texture's blue channel is 10 * (reference number): the labels belong to these images.
    np.testing.assert_array_equal(np.rint(batch["ref"][:, 0, 0, 2] * 255), 10 * (batch["ref_id"] + 1))
    np.testing.assert_allclose(batch["mos"], (batch["mos_raw"] - 1) / 4, atol=1e-6)
    assert set(batch["mos_raw"].tolist()) <= set(mos_raw.tolist())
    np.testing.assert_array_equal(batch["dist_type"], 1)


def test_crops_are_identical_aligned_windows(source):
    ds = train(source)
    flips, corners = set(), set()
    for k in range(12):
        batch = ds[k]
        np.testing.assert_array_equal(batch["ref"], batch["dist"])  # same crop, same flip
        rows = np.rint(batch["ref"][..., 0] * 255).astype(int)
        cols = np.rint(batch["ref"][..., 1] * 255).astype(int)
        for r, c in zip(rows, cols):
            y0, x0 = r[0, 0], c[0].min()
            np.testing.assert_array_equal(r, np.broadcast_to(y0 + np.arange(CROP[0])[:, None], CROP))
            flipped = c[0, 0] > c[0, -1]
            expected = x0 + np.arange(CROP[1])
            np.testing.assert_array_equal(c, np.broadcast_to(expected[::-1] if flipped else expected, CROP))
            assert 0 <= y0 <= 24 - CROP[0] and 0 <= x0 <= 32 - CROP[1]
            flips.add(bool(flipped))
            corners.add((int(y0), int(x0)))
    assert flips == {True, False}
    assert len(corners) > 20


def test_epochs_visit_every_index_once_in_new_orders(source, mos_raw):
    indices = np.arange(0, NUM_EXAMPLES, 2)  # 12 examples, batches of 5 span epochs
    ds = train(source, indices, batch_size=5)
    stream = np.concatenate([ds[k]["mos_raw"] for k in range(5)])
    epochs = stream[:12], stream[12:24]
    for epoch in epochs:
        assert sorted(epoch.tolist()) == sorted(mos_raw[indices].tolist())
    assert not np.array_equal(*epochs)


def test_resume_reads_the_same_batches(source):
    ds = train(source)
    batch = ds[7]
    assert_batches_equal(batch, ds[7])
    assert_batches_equal(batch, train(source)[7])  # a fresh pipeline: a pure function of (seed, k)
    assert_batches_equal(batch, next(data.iterate(ds, start_step=7)))
    from_start = data.iterate(ds, start_step=0, prefetch=3)
    for k in range(8):
        streamed = next(from_start)
        assert_batches_equal(streamed, ds[k])
    assert_batches_equal(next(data.iterate(ds, start_step=7, prefetch=0)), batch)
    assert not np.array_equal(train(source, seed=1)[7]["mos_raw"], batch["mos_raw"])


@pytest.mark.parametrize("process_count", [2, 4])
def test_process_slices_concatenate_to_the_global_batch(source, process_count):
    makers = (
        lambda **kw: train(source, batch_size=8, **kw),
        lambda **kw: band(source, batch_size=8, **kw),
    )
    for make in makers:
        whole = make()
        parts = [make(process_index=p, process_count=process_count) for p in range(process_count)]
        for k in (0, 3, 11):
            local = [part[k] for part in parts]
            assert all(len(b["mos"]) == 8 // process_count for b in local)
            joined = {key: np.concatenate([b[key] for b in local]) for key in local[0]}
            assert_batches_equal(joined, whole[k])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(crop_size=(25, 32)), r"crop_size 25x32 exceeds 24 of the chosen images, e.g. example 0"),
        (dict(batch_size=6, process_count=4), "must be a positive multiple of process_count 4"),
        (dict(process_index=2, process_count=2), "need 0 <= process_index < process_count"),
        (dict(indices=np.array([0, 24])), r"indices must lie in \[0, 24\)"),
        (dict(seed=-1), "seed must be a non-negative int"),
    ],
)
def test_train_bad_arguments(source, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train(source, **kwargs)


@pytest.mark.parametrize("rule", data.ANCHOR_RULES)
def test_band_batches_stay_in_band_and_anchor_by_rule(source, rule):
    ds = band(source, anchor_rule=rule)
    seen, lows, spans, anchor_sets = set(), [], [], set()
    for k in range(60):
        batch = ds[k]
        mos, anchor = batch["mos"], batch["anchor"]
        assert anchor.dtype == bool and anchor.sum() == 3
        assert mos.max() - mos.min() <= 0.2 + 1e-6
        np.testing.assert_array_equal(batch["ref"], batch["dist"])
        order = np.sort(mos)
        if rule == "spread":
            assert mos[anchor].min() == order[0] and mos[anchor].max() == order[-1]
            assert two_sided_coverage(mos, anchor) == 1.0
        elif rule == "quantile":  # ranks floor((i + 1/2) * 6 / 3) = 1, 3, 5
            np.testing.assert_array_equal(np.sort(mos[anchor]), order[[1, 3, 5]])
        seen |= set(batch["mos_raw"].tolist())
        lows.append(mos.min())
        spans.append(mos.max() - mos.min())
        anchor_sets.add(tuple(np.flatnonzero(anchor)))
    assert len(seen) == NUM_EXAMPLES  # the bands cover the data
    assert max(spans) > 0.75 * 0.2  # and are as wide as asked, not narrower
    assert max(lows) - min(lows) > 0.6
    assert len(anchor_sets) > 1
    assert_batches_equal(next(data.iterate(ds, start_step=5)), ds[5])


def test_band_bad_arguments(source):
    with pytest.raises(ValueError, match="anchor_rule must be one of"):
        band(source, anchor_rule="best")
    with pytest.raises(ValueError, match=r"num_anchors must be in \[0, 6\]"):
        band(source, num_anchors=7)
    with pytest.raises(ValueError, match=r"num_anchors must be in \[0, 6\]"):
        band(source, num_anchors=-1)
    assert not np.any(band(source, num_anchors=0)[0]["anchor"])  # both ends of the range are allowed
    assert np.all(band(source, num_anchors=6)[0]["anchor"])
    with pytest.raises(ValueError, match="band_width must be positive"):
        band(source, band_width=0.0)


def test_spread_anchors_take_the_targets_from_the_lowest_up():
    """Targets 0.23 .. 0.8 in steps of 0.114, each taking the closest free item: 0.23 -> item 4,
    0.344 -> 0.36 (item 5), 0.458 -> 0.42 (6), 0.572 -> 0.79 (0), 0.686 -> 0.8 (1, the first of
    two), 0.8 -> 0.8 (3); 0.32 (item 2) is left out (from the highest target down it would not be)."""
    mos = np.array([0.79, 0.8, 0.32, 0.8, 0.23, 0.36, 0.42])
    got = data.select_anchors(mos, 6, "spread", np.random.default_rng(0))
    np.testing.assert_array_equal(np.flatnonzero(got), [0, 1, 3, 4, 5, 6])


def test_select_anchors_by_hand():
    mos = np.array([0.5, 0.1, 0.9, 0.3, 0.7, 0.2])
    rng = np.random.default_rng(0)
    # spread: targets 0.1, 0.5, 0.9 -> items 1, 0, 2.
    assert np.flatnonzero(data.select_anchors(mos, 3, "spread", rng)).tolist() == [0, 1, 2]
    # quantile: ranks 1, 3, 5 of the order [1, 5, 3, 0, 4, 2] -> items 5, 0, 2.
    assert np.flatnonzero(data.select_anchors(mos, 3, "quantile", rng)).tolist() == [0, 2, 5]
    assert data.select_anchors(mos, 4, "random", rng).sum() == 4
    assert not data.select_anchors(mos, 0, "spread", rng).any()


def test_two_sided_coverage_by_hand():
    mos = np.array([0.1, 0.2, 0.3, 0.4])
    assert two_sided_coverage(mos, np.array([True, False, False, True])) == 1.0
    assert two_sided_coverage(mos, np.array([False, True, False, False])) == 0.0
    assert two_sided_coverage(mos, np.array([False, True, False, True])) == 0.5
    assert two_sided_coverage(np.array([0.2, 0.2]), np.array([True, False])) == 1.0  # ties count
    assert two_sided_coverage(mos, np.ones(4, bool)) == 1.0


def test_eval_examples_full_resolution(source, mos_raw):
    indices = [5, 0, 17]
    items = list(data.eval_examples(source, indices))
    assert len(items) == 3
    for i, item in zip(indices, items):
        example = source[i]
        assert item["ref"].shape == (1, 24, 32, 3) and item["ref"].dtype == np.float32
        np.testing.assert_array_equal(item["ref"][0], example["ref"] / np.float32(255))
        np.testing.assert_array_equal(item["dist"][0], example["dist"] / np.float32(255))
        assert item["mos_raw"].tolist() == [mos_raw[i]] and item["mos"].shape == (1,)
        assert item["ref_id"].dtype == np.int32 and item["ref_id"][0] == example["ref_id"]


def test_group_ids_are_reference_ids(source):
    np.testing.assert_array_equal(data.group_ids(source), np.repeat(np.arange(12), 2))


# --- Reading cost: references decoded once, uint8 batches, worker threads. -------------------


@pytest.fixture
def fresh_source(source, tmp_path_factory):
    """The module's dataset opened again: an empty reference cache."""
    data_dir = source.dataset_info.data_dir.split("/kadid10k/")[0]
    return lambda **kwargs: data.load_source("kadid10k", data_dir, **kwargs)


class CountingReads:
    """A spy around a tfds data source: counts the records read (each decodes its PNG image)."""

    def __init__(self, inner):
        self.inner, self.reads, self._lock = inner, 0, threading.Lock()

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, index):
        with self._lock:
            self.reads += 1
        return self.inner[index]

    @property
    def dataset_info(self):
        return self.inner.dataset_info


@pytest.mark.parametrize("prefetch", [0, 3])
def test_each_reference_is_decoded_once(fresh_source, prefetch):
    source = fresh_source()
    source.examples, source.references = CountingReads(source.examples), CountingReads(source.references)
    stream = data.iterate(train(source, batch_size=6), prefetch=prefetch, workers=4)
    refs = set()
    for _ in range(12):  # 72 pairs: three epochs of the 24 examples, 4 threads at once
        refs |= set(next(stream)["ref_id"].tolist())
    stream.close()
    assert len(refs) == 12 and source.references.reads == source.reference_decodes == 12
    assert 72 <= source.examples.reads <= 72 + 6 * 4  # one decode per pair (and batches read ahead)


def test_reference_cache_bound(fresh_source):
    one = 24 * 32 * 3  # bytes of one decoded reference
    source = fresh_source(cache_bytes=one)
    for index in (0, 1, 0, 2, 3, 2):  # examples 0, 1 share reference 0; 2, 3 reference 1
        source[index]
    assert source.reference_decodes == 2
    source[0]  # reference 0 was dropped for reference 1
    assert source.reference_decodes == 3
    uncached = fresh_source(cache_bytes=0)
    for index in range(4):
        np.testing.assert_array_equal(uncached[index]["ref"], source[index]["ref"])
    assert uncached.reference_decodes == 4
    with pytest.raises(ValueError, match="read-only"):
        source[0]["ref"][0, 0, 0] = 1  # shared through the cache


def test_uint8_batches_are_the_float_batches_as_stored(source):
    for make in (lambda **kw: train(source, **kw), lambda **kw: band(source, **kw)):
        for k in (0, 5):
            floats, ints = make()[k], make(uint8=True)[k]
            assert floats.keys() == ints.keys()
            for key in floats:
                if key in ("ref", "dist"):
                    assert ints[key].dtype == np.uint8
                    np.testing.assert_array_equal(ints[key].astype(np.float32) / np.float32(255), floats[key])
                else:
                    np.testing.assert_array_equal(ints[key], floats[key])


def test_workers_follow_the_cores_unless_given(source, monkeypatch):
    import os

    from birqa_jax.data import pipeline

    assert data.default_workers() == len(os.sched_getaffinity(0))
    asked = []
    read_options = pipeline.grain.ReadOptions

    def recording(**kwargs):
        asked.append(kwargs)
        return read_options(**kwargs)

    monkeypatch.setattr(pipeline.grain, "ReadOptions", recording)
    monkeypatch.setattr(pipeline, "default_workers", lambda: 5)
    ds = train(source)
    next(data.iterate(ds))
    next(data.iterate(ds, workers=3, prefetch=4))
    next(data.iterate(ds, workers=3, prefetch=0))
    next(data.eval_examples(source, [0]))
    assert asked == [
        dict(num_threads=5, prefetch_buffer_size=5),
        dict(num_threads=3, prefetch_buffer_size=4),
        dict(num_threads=0, prefetch_buffer_size=0),
        dict(num_threads=5, prefetch_buffer_size=5),
    ]
    with pytest.raises(ValueError, match="workers must be >= 1"):
        data.iterate(ds, workers=0)
