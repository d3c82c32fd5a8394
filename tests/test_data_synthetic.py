"""The embedded ``kadid_synthetic`` dataset: references, labels, determinism."""

import csv
import pathlib

import numpy as np
import pytest
from skimage import data as skdata

from birqa_jax import data
from birqa_jax.data import synthetic
from birqa_jax.data.distortions import distort

CSV = pathlib.Path(synthetic.__file__).parents[1] / "assets" / "kadid10k_type_level_mos.csv"


def csv_table():
    """(type, level) -> (mean MOS, std), read independently of the library."""
    with CSV.open() as f:
        rows = list(csv.DictReader(f))
    return {
        (int(r["type_id"]), int(r["level"])): (float(r["mean_mos"]), float(r["std_mos"])) for r in rows
    }


def distortion_rng(ref_id, type_id, level, seed=0):
    """The documented per-example distortion generator: first child of [seed, ref, type, level]."""
    seeds = np.random.SeedSequence([seed, int(ref_id), int(type_id), int(level)])
    return np.random.default_rng(seeds.spawn(2)[0])


def stand_in_distort(image, type_id, level, rng):
    """Deterministic given rng: shifts by type/level plus noise from rng."""
    noise = rng.integers(0, 3, image.shape)
    return ((image.astype(int) + 7 * type_id + level + noise) % 256).astype(np.uint8)


def tiny(name, **overrides):
    options = dict(num_refs=3, crop_size=(48, 64), dist_types=(1, 11, 25), levels=(1, 5))
    return data.KadidSyntheticConfig(name=name, **{**options, **overrides})


def load(tmp_path, config, num_workers=None):
    return data.load_source("kadid_synthetic", str(tmp_path), config=config, num_workers=num_workers)


def test_default_references_are_40_distinct_natural_crops():
    crops = data.reference_crops(40, (192, 256))
    images = [c.image((192, 256)) for c in crops]
    assert all(im.shape == (192, 256, 3) and im.dtype == np.uint8 for im in images)
    assert len({im.tobytes() for im in images}) == 40
    assert len({c.source for c in crops}) == len(synthetic.SOURCES)
    # Round robin over the sources: the third crop is the top-left tile of coffee.
    assert (crops[2].source, crops[2].y, crops[2].x) == ("coffee", 0, 0)
    np.testing.assert_array_equal(images[2], skdata.coffee()[:192, :256])
    with pytest.raises(ValueError, match="reference crops of 192x256 exist; asked for 1000"):
        data.reference_crops(1000, (192, 256))


def test_type_level_mos_matches_csv():
    mean, std = data.type_level_mos()
    table = csv_table()
    assert mean.shape == (25, 5) and len(table) == 125
    for (t, level), (m, s) in table.items():
        assert (mean[t - 1, level - 1], std[t - 1, level - 1]) == (m, s)


@pytest.fixture(scope="module")
def stand_in_source(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(synthetic, "distort", stand_in_distort)
        return load(tmp_path_factory.mktemp("tfds"), tiny("tiny"))


def test_labels_follow_the_csv_exactly(stand_in_source):
    source, table = stand_in_source, csv_table()
    assert len(source) == 3 * 3 * 2
    columns = data.example_columns(source)
    for i in range(len(source)):
        example = source[i]
        mean = table[(example["dist_type"], example["dist_level"])][0]
        assert example["mos_raw"] == np.float32(mean)
        assert example["mos"] == np.float32((np.float32(mean) - 1) / 4)
        assert columns["mos_raw"][i] == np.float32(mean)
    # Reference-major order: ref, then type, then level.
    assert columns["ref_id"].tolist() == [0] * 6 + [1] * 6 + [2] * 6
    assert columns["dist_type"][:6].tolist() == [1, 1, 11, 11, 25, 25]
    assert columns["dist_level"][:6].tolist() == [1, 5, 1, 5, 1, 5]


def test_images_are_the_crops_and_their_distortions(stand_in_source):
    crops = data.reference_crops(3, (48, 64))
    for i in (0, 7, 17):
        example = stand_in_source[i]
        crop = crops[example["ref_id"]]
        ref = crop.image((48, 64))
        np.testing.assert_array_equal(example["ref"], ref)
        t, level = example["dist_type"], example["dist_level"]
        rng = distortion_rng(example["ref_id"], t, level)
        np.testing.assert_array_equal(example["dist"], stand_in_distort(ref, t, level, rng))
        assert example["dist_name"].decode() == f"{crop.name}_{t:02d}_{level:02d}.png"
    # Groups are source photographs, not references: the three first crops come from three
    # different ones.
    np.testing.assert_array_equal(data.group_ids(stand_in_source), np.repeat([c.source_id for c in crops], 6))


def test_groups_are_photographs_not_references(tmp_path, monkeypatch):
    # Nine crops round-robin over the seven photographs: crops 7 and 8 share photographs 0 and 1.
    monkeypatch.setattr(synthetic, "distort", stand_in_distort)
    source = load(tmp_path, tiny("nine", num_refs=9, dist_types=(1,), levels=(1,)))
    columns = data.example_columns(source)
    groups = data.group_ids(source)
    assert len(set(columns["ref_id"].tolist())) == 9 and len(set(groups.tolist())) == 7
    assert groups[columns["ref_id"] == 7][0] == groups[columns["ref_id"] == 0][0]


def test_real_distortions_are_deterministic_across_workers(tmp_path):
    config = tiny("real", num_refs=2, dist_types=(3, 19), levels=(4,), crop_size=(48, 48))
    one = load(tmp_path / "a", config, num_workers=1)
    two = load(tmp_path / "b", config, num_workers=2)
    assert len(one) == len(two) == 4
    for i in range(4):
        a, b = one[i], two[i]
        np.testing.assert_array_equal(a["dist"], b["dist"])
        rng = distortion_rng(a["ref_id"], a["dist_type"], 4)
        np.testing.assert_array_equal(a["dist"], distort(a["ref"], a["dist_type"], 4, rng))
        assert not np.array_equal(a["dist"], a["ref"])


def test_label_noise(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "distort", stand_in_distort)
    noisy = data.example_columns(load(tmp_path, tiny("noisy", label_noise=1.0)))
    again = data.example_columns(load(tmp_path / "again", tiny("noisy", label_noise=1.0)))
    table = csv_table()
    keys = list(zip(noisy["dist_type"].tolist(), noisy["dist_level"].tolist()))
    exact = np.array([table[k][0] for k in keys], np.float32)
    spread = np.array([table[k][1] for k in keys])
    np.testing.assert_array_equal(noisy["mos_raw"], again["mos_raw"])  # seeded
    assert np.all(noisy["mos_raw"] != exact)
    assert np.all((noisy["mos_raw"] >= 1) & (noisy["mos_raw"] <= 5))
    z = (noisy["mos_raw"] - exact) / spread
    assert np.all(np.abs(z) < 4)  # noise scale is the table's spread
    np.testing.assert_allclose(noisy["mos"], (noisy["mos_raw"] - 1) / 4, rtol=1e-6)


def test_reusing_a_config_name_with_other_options_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "distort", stand_in_distort)
    load(tmp_path, tiny("mine", num_refs=2, dist_types=(1,), levels=(1,)))
    with pytest.raises(ValueError, match="was built with options"):
        load(tmp_path, tiny("mine", num_refs=2, dist_types=(1,), levels=(2,)))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(crop_size=(32, 64)), "at least 48"),
        (dict(dist_types=(26,)), "dist_types must be distinct values in 1-25"),
        (dict(dist_types=(1, 1)), "dist_types must be distinct values in 1-25"),
        (dict(levels=(0,)), "levels distinct values in 1-5"),
        (dict(label_noise=-1.0), "label_noise >= 0"),
    ],
)
def test_bad_options(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        load(tmp_path, tiny("bad", **overrides))


def test_raw_storage_and_references_stored_once(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "distort", stand_in_distort)
    config = tiny("both", num_refs=2, dist_types=(1, 11), levels=(1,))
    png = load(tmp_path, config)
    raw = data.load_source("kadid_synthetic", str(tmp_path), config=config, storage="raw")
    assert len(png.references) == len(raw.references) == 2 and len(png) == len(raw) == 4
    assert "/raw/kadid_synthetic/both/" in raw.dataset_info.data_dir
    for i in range(4):
        a, b = png[i], raw[i]
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_build_of_another_version_is_rebuilt(tmp_path, monkeypatch, capsys):
    import pathlib

    monkeypatch.setattr(synthetic, "distort", stand_in_distort)
    config = tiny("again", num_refs=2, dist_types=(1,), levels=(1,))
    first = load(tmp_path, config)
    images = [first[i]["dist"] for i in range(len(first))]
    folder = pathlib.Path(first.dataset_info.data_dir)
    folder.rename(folder.parent / "1.0.0")
    capsys.readouterr()
    again = load(tmp_path, config)
    assert f"{folder.parent / '1.0.0'} holds version 1.0.0, a format" in capsys.readouterr().out
    for i, image in enumerate(images):
        np.testing.assert_array_equal(again[i]["dist"], image)
