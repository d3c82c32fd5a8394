"""Reference-disjoint splits."""

import numpy as np
import pytest

from birqa_jax.data import official_split, reference_crops, split_indices

# 81 references x 5 examples, examples of a reference interleaved with the others.
GROUPS = np.tile(np.arange(81), 5)


def groups_of(indices):
    return set(GROUPS[indices].tolist())


@pytest.mark.parametrize("split_id", range(10))
def test_splits_are_reference_disjoint_and_complete(split_id):
    splits = split_indices(GROUPS, split_id)
    assert list(splits) == ["train", "val", "test"]
    train, val, test = splits.values()
    assert not groups_of(train) & groups_of(val)
    assert not groups_of(train) & groups_of(test)
    assert not groups_of(val) & groups_of(test)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val, test])), np.arange(len(GROUPS)))
    for part in splits.values():
        assert np.all(np.diff(part) > 0)  # sorted, no duplicates
    # 6:2:2 over 81 groups: round(48.6) = 49 train groups, round(64.8) - 49 = 16 val, 16 test.
    assert [len(groups_of(p)) for p in splits.values()] == [49, 16, 16]


def test_splits_are_reproducible_and_differ_by_id():
    a, b, c = split_indices(GROUPS, 3), split_indices(GROUPS, 3), split_indices(GROUPS, 4)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert groups_of(a["test"]) != groups_of(c["test"])


def test_train_test_ratio():
    splits = split_indices(GROUPS, 0, ratios=(0.8, 0.2))
    assert list(splits) == ["train", "test"]
    assert [len(groups_of(p)) for p in splits.values()] == [65, 16]
    assert not groups_of(splits["train"]) & groups_of(splits["test"])


def test_synthetic_crops_group_by_source_image():
    crops = reference_crops(40, (192, 256))
    example_groups = np.repeat([c.source_id for c in crops], 125)  # 125 pairs per reference
    splits = split_indices(example_groups, 0)
    sources = {name: {crops[i // 125].source for i in idx} for name, idx in splits.items()}
    assert not sources["train"] & sources["val"] and not sources["train"] & sources["test"]
    assert not sources["val"] & sources["test"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(group_ids=np.array([0, 1])), "cannot give each of the splits"),
        (dict(group_ids=GROUPS, ratios=(0.5, 0.2, 0.2)), "summing to 1"),
        (dict(group_ids=GROUPS, ratios=(1.0,)), "2 or 3 positive fractions"),
        (dict(group_ids=GROUPS.astype(float)), "1-D integer array"),
        (dict(group_ids=GROUPS, split_id=-1), "non-negative int"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        split_indices(**kwargs)


def test_official_split():
    np.testing.assert_array_equal(official_split("pipal", 5)["train"], np.arange(5))
    assert list(official_split("bapps_2afc", 3)) == ["test"]
    with pytest.raises(ValueError, match="has no official split"):
        official_split("kadid10k", 10)
