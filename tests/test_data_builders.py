"""The real-dataset builders on tiny fixture trees in the official layouts (tests/fixtures_iqa.py)."""

import os
import pathlib
import shutil
import sys

import fixtures_iqa as fx
import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds

from birqa_jax import data
from birqa_jax.data.base import ImageReadError, SourceChangedError


def build(name, tmp_path, root, **kwargs):
    return data.load_source(name, data_dir=str(tmp_path / "tfds"), manual_dir=str(root), **kwargs)


def constant(name, size=(fx.H, fx.W)):
    return np.broadcast_to(np.array(fx.colour_of(name), np.uint8), (*size, 3))


def check_pairs(source, expected, mos_of):
    """Every example equals its expected entry: names, the files' pixels (pairing), scores,
    normalised MOS (``mos_of(raw)``), reference ids, type/level, and the metadata columns."""
    assert len(source) == len(expected)
    ref_ids = {name: i for i, name in enumerate(sorted({e.ref_name for e in expected}, key=str.lower))}
    columns = data.example_columns(source)
    for i, want in enumerate(expected):
        got = source[i]
        assert got["ref_name"].decode() == want.ref_name
        assert got["dist_name"].decode() == want.dist_name
        np.testing.assert_array_equal(got["ref"], constant(want.ref_name))
        np.testing.assert_array_equal(got["dist"], constant(want.dist_name))
        assert got["mos_raw"] == pytest.approx(want.mos_raw, rel=1e-6)
        assert got["mos"] == pytest.approx(mos_of(want.mos_raw), abs=1e-6)
        assert (got["ref_id"], got["dist_type"], got["dist_level"]) == (
            ref_ids[want.ref_name],
            want.dist_type,
            want.dist_level,
        )
        for key in ("ref_id", "dist_type", "dist_level", "mos", "mos_raw"):
            assert columns[key][i] == np.asarray(got[key], columns[key].dtype)
    np.testing.assert_array_equal(columns["group_id"], columns["ref_id"])
    np.testing.assert_array_equal(columns["height"], fx.H)
    # Higher normalised MOS = better: the best raw score gets the highest mos.
    raws = np.array([e.mos_raw for e in expected])
    best = raws.argmax() if mos_of(raws.max()) > mos_of(raws.min()) else raws.argmin()
    assert columns["mos"].argmax() == best


def test_kadid10k_references_beside_distorted(tmp_path):
    expected = fx.write_kadid(tmp_path / "kadid10k")
    source = build("kadid10k", tmp_path, tmp_path / "kadid10k")
    check_pairs(source, expected, lambda r: (r - 1) / 4)
    assert "tensorflow" not in sys.modules


def test_kadid10k_through_tfds_data_source_and_manual_dir(tmp_path):
    fx.write_kadid(tmp_path / "kadid10k")
    config = tfds.download.DownloadConfig(manual_dir=str(tmp_path / "kadid10k"))
    splits = tfds.data_source(
        "kadid10k",
        data_dir=str(tmp_path / "tfds"),
        download_and_prepare_kwargs={"download_config": config},
    )
    # tfds's own view: the distorted images in "full", each reference once in "references".
    source, references = splits["full"], splits["references"]
    assert len(source) == 5 and len(references) == 3
    example = source[2]
    assert example["image"].shape == (fx.H, fx.W, 3) and example["image"].dtype == np.uint8
    np.testing.assert_array_equal(example["image"], constant("I02_25_03.png"))
    reference = references[int(example["ref_id"])]
    assert reference["ref_id"] == example["ref_id"] and reference["ref_name"] == b"I02.png"
    np.testing.assert_array_equal(reference["image"], constant("I02.png"))
    assert "tensorflow" not in sys.modules


@pytest.mark.parametrize("version", ["tid2013", "tid2008"])
def test_tid_case_insensitive_names(tmp_path, version):
    expected = fx.write_tid(tmp_path / version, version)
    source = build(version, tmp_path, tmp_path / version)
    check_pairs(source, expected, lambda r: r / 9)
    assert source[3]["ref_name"] == b"i25.bmp" and source[3]["ref_id"] == 2


def test_tid2008_rejects_tid2013_types(tmp_path):
    fx.write_tid(tmp_path / "tid", "tid2013")  # type 24, level 5 do not exist in TID2008
    with pytest.raises(ValueError, match="i02_24_5.bmp.*expected 1-17 / 1-4"):
        build("tid2008", tmp_path, tmp_path / "tid")


@pytest.mark.parametrize("convention", ["realigned", "original"])
def test_live_drops_orgs_and_takes_the_dmos_convention(tmp_path, convention):
    expected = fx.write_live(tmp_path / "live")[convention]
    source = build(f"live/{convention}", tmp_path, tmp_path / "live")
    raws = [e.mos_raw for e in expected]
    lo, hi = min(raws), max(raws)
    # DMOS: lower = better, so the normalised mos flips it; range observed over kept entries.
    check_pairs(source, expected, lambda r: (hi - r) / (hi - lo))
    assert len(source) == 6  # the reference copy jp2k/img2.bmp (orgs = 1) is not an example
    assert data.example_columns(source)["dist_type"].tolist() == [1, 1, 2, 3, 4, 5]


def test_live_default_is_realigned(tmp_path):
    expected = fx.write_live(tmp_path / "live")["realigned"]
    source = build("live", tmp_path, tmp_path / "live")
    assert [source[i]["mos_raw"] for i in range(len(source))] == [e.mos_raw for e in expected]


def test_csiq_xlsx_header_row_4_and_numeric_names(tmp_path):
    expected = fx.write_csiq(tmp_path / "csiq")
    source = build("csiq", tmp_path, tmp_path / "csiq")
    check_pairs(source, expected, lambda r: 1 - r)
    assert source[0]["dist_name"] == b"1600.AWGN.1.png"


@pytest.mark.parametrize("merged", [True, False])
def test_pipal_reference_from_name(tmp_path, merged):
    expected = fx.write_pipal(tmp_path / "pipal", merged)
    source = build("pipal", tmp_path, tmp_path / "pipal")
    raws = [e.mos_raw for e in expected]
    lo, hi = min(raws), max(raws)
    check_pairs(source, expected, lambda r: (r - lo) / (hi - lo))


def test_pieapp_columns_with_leading_space(tmp_path):
    expected = fx.write_pieapp(tmp_path / "pieapp")
    source = build("pieapp", tmp_path, tmp_path / "pieapp")
    raws = [e.mos_raw for e in expected]
    lo, hi = min(raws), max(raws)
    check_pairs(source, expected, lambda r: (hi - r) / (hi - lo))


def test_bapps_2afc_triplets(tmp_path):
    expected = fx.write_bapps(tmp_path / "dataset")
    source = build("bapps_2afc", tmp_path, tmp_path / "dataset")
    assert len(source) == len(expected)
    for i, (name, judge) in enumerate(expected):
        got = source[i]
        subset, stem = name.split("/")
        assert got["name"].decode() == name and got["subset"].decode() == subset
        assert got["subset_id"] == data.bapps.SUBSETS.index(subset)
        assert got["judge"] == pytest.approx(judge)
        for part in ("ref", "p0", "p1"):
            np.testing.assert_array_equal(got[part], constant(f"{subset}/{part}/{stem}", (8, 8)))
    np.testing.assert_allclose(data.example_columns(source)["judge"], [j for _, j in expected])
    with pytest.raises(ValueError, match="no reference groups"):
        data.group_ids(source)


# --- Errors: missing folders and files, bad images, wrong columns. -------------------------

WRITERS = {
    "kadid10k": fx.write_kadid,
    "tid2013": fx.write_tid,
    "live": fx.write_live,
    "csiq": fx.write_csiq,
    "pipal": lambda root: fx.write_pipal(root, merged=True),
    "pieapp": fx.write_pieapp,
    "bapps_2afc": fx.write_bapps,
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_missing_source_folder_names_path_and_layout(tmp_path, name):
    missing = tmp_path / "not_there"
    with pytest.raises(FileNotFoundError, match=f"(?s){missing}.*Expected layout:"):
        build(name, tmp_path, missing)


@pytest.mark.parametrize(
    "name, removed, message",
    [
        ("kadid10k", "dmos.csv", "score file .*dmos.csv not found"),
        ("tid2013", "mos_with_names.txt", "score file .*mos_with_names.txt not found"),
        ("live", "dmos_realigned.mat", "score file .*dmos_realigned.mat not found"),
        ("live", "refnames_all.mat", "reference list .*refnames_all.mat not found"),
        ("csiq", "csiq.DMOS.xlsx", "score file .*csiq.DMOS.xlsx not found"),
        ("pipal", "Train_Label/A0001.txt", None),
        ("pieapp", "labels/test/ref_A_per_image_score.csv", None),
    ],
)
def test_missing_score_file_names_path_and_layout(tmp_path, name, removed, message):
    root = tmp_path / "root"
    WRITERS[name](root)
    (root / removed).unlink()
    if message is None:  # these read every label file of a folder: empty it
        for f in (root / removed).parent.iterdir():
            f.unlink()
        message = f"no .*file in {(root / removed).parent}"
    with pytest.raises(FileNotFoundError, match=f"(?s){message}.*Expected layout:"):
        build(name, tmp_path, root)


def test_missing_image_fails_by_name_or_is_skipped_and_counted(tmp_path, capsys):
    root = tmp_path / "kadid10k"
    fx.write_kadid(root)
    (root / "images" / "I02_25_03.png").unlink()
    with pytest.raises(FileNotFoundError,
                       match=r"1 of 8 listed image files are missing \(needed by 1 of 5 examples\): .*I02_25_03.png"):
        build("kadid10k", tmp_path / "a", root)
    source = build("kadid10k", tmp_path / "b", root, skip_bad_images=True)
    assert len(source) == 4 and b"I02_25_03.png" not in [source[i]["dist_name"] for i in range(4)]
    assert "skipped 1 examples" in capsys.readouterr().out
    assert data.example_columns(source)["mos_raw"].tolist() == pytest.approx([4.57, 1.2, 2.05, 5.0])


def test_missing_reference_is_named(tmp_path):
    root = tmp_path / "tid"
    fx.write_tid(root)
    (root / "reference_images" / "i25.bmp").unlink()
    with pytest.raises(FileNotFoundError, match="i25.bmp"):
        build("tid2013", tmp_path, root)


def test_unreadable_image_fails_by_name_or_is_skipped(tmp_path, capsys):
    root = tmp_path / "csiq"
    fx.write_csiq(root)
    bad = root / "dst_imgs" / "blur" / "1600.BLUR.4.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ImageReadError, match="1600.BLUR.4.png"):
        build("csiq", tmp_path / "a", root)
    source = build("csiq", tmp_path / "b", root, skip_bad_images=True)
    assert len(source) == 5
    assert "skipped 1 examples" in capsys.readouterr().out
    assert data.example_columns(source)["mos_raw"].tolist() == pytest.approx([0.062, 0.35, 0.2, 0.9, 0.0])


def test_kadid_wrong_columns(tmp_path):
    root = tmp_path / "kadid10k"
    fx.write_kadid(root)
    text = (root / "dmos.csv").read_text().replace("dmos,var", "mos,var", 1)
    (root / "dmos.csv").write_text(text)
    with pytest.raises(ValueError, match="expected the header dist_img,ref_img,dmos,var"):
        build("kadid10k", tmp_path, root)


def test_tid_wrong_columns(tmp_path):
    root = tmp_path / "tid"
    fx.write_tid(root)
    with (root / "mos_with_names.txt").open("a") as f:
        f.write("4.0 0.2 i01_02_1.bmp\n")
    with pytest.raises(ValueError, match="line 7 .*expected two space-separated columns `<mos> <image name>`"):
        build("tid2013", tmp_path, root)


def test_live_wrong_variables(tmp_path):
    root = tmp_path / "live"
    fx.write_live(root)
    scipy.io.savemat(root / "dmos_realigned.mat", {"dmos": np.zeros((1, 982)), "orgs": np.zeros((1, 982))})
    with pytest.raises(ValueError, match=r"has variables \['dmos', 'orgs'\]; expected \['dmos_new', 'orgs'\]"):
        build("live", tmp_path, root)
    scipy.io.savemat(root / "dmos_realigned.mat", {"dmos_new": np.zeros((1, 981)), "orgs": np.zeros((1, 981))})
    with pytest.raises(ValueError, match="dmos_new has 981 entries; expected 982"):
        build("live", tmp_path, root)


def test_csiq_wrong_header(tmp_path):
    root = tmp_path / "csiq"
    fx.write_csiq(root, header=("image", "dst_idx", "type", "dst_lev", "dmos_std", "dmos"))
    with pytest.raises(ValueError,
                       match="row 4 has columns .*expected image, dst_idx, dst_type, dst_lev, dmos_std, dmos"):
        build("csiq", tmp_path, root)


def test_pipal_rejects_a_header_line(tmp_path):
    root = tmp_path / "pipal"
    fx.write_pipal(root, merged=True)
    label = root / "Train_Label" / "A0002.txt"
    label.write_text("dist_img,elo\n" + label.read_text())
    with pytest.raises(ValueError, match="A0002.txt line 1 .*expected headerless lines with two columns"):
        build("pipal", tmp_path, root)


def test_pieapp_wrong_columns(tmp_path):
    root = tmp_path / "pieapp"
    fx.write_pieapp(root)
    label = root / "labels" / "test" / "ref_B_per_image_score.csv"
    label.write_text(label.read_text().replace("score for distorted image", "score"))
    expected = r"expected \[' distorted image', ' score for distorted image'\]"
    with pytest.raises(ValueError, match=f"ref_B_per_image_score.csv has columns .*{expected}"):
        build("pieapp", tmp_path, root)


def test_documented_score_range_is_enforced(tmp_path):
    root = tmp_path / "kadid10k"
    fx.write_kadid(root)
    (root / "dmos.csv").write_text((root / "dmos.csv").read_text().replace("4.57", "5.7"))
    with pytest.raises(ValueError, match=r"outside the documented range \[1, 5\] for I01_01_01.png \(5.7\)"):
        build("kadid10k", tmp_path, root)


def test_ref_and_dist_of_different_sizes_is_an_error(tmp_path):
    root = tmp_path / "kadid10k"
    fx.write_kadid(root)
    fx.write_image(root / "images" / "I03_11_02.png", size=(fx.H, fx.W + 1))
    with pytest.raises(ValueError, match=r"images of I03_11_02.png differ in size: .*\(16, 25\)"):
        build("kadid10k", tmp_path, root)


def test_load_source_builds_once_and_says_so(tmp_path, capsys):
    root = tmp_path / "kadid10k"
    fx.write_kadid(root)
    build("kadid10k", tmp_path, root)
    assert "Built kadid10k/2.0.0: 5 examples in" in capsys.readouterr().out
    (root / "dmos.csv").unlink()  # a built dataset no longer needs its source files
    assert len(data.load_source("kadid10k", data_dir=str(tmp_path / "tfds"))) == 5
    assert "Built" not in capsys.readouterr().out


def test_missing_files_and_examples_are_counted_apart(tmp_path):
    root = tmp_path / "kadid10k"
    fx.write_kadid(root)
    (root / "images" / "I02.png").unlink()  # the reference of two examples
    with pytest.raises(FileNotFoundError, match=r"1 of 8 listed image files are missing "
                                                r"\(needed by 2 of 5 examples\): \S*images/I02.png\."):
        build("kadid10k", tmp_path, root)


def test_kadid10k_names_match_case_insensitively(tmp_path):
    root = tmp_path / "kadid10k"
    expected = fx.write_kadid(root)
    images = root / "images"
    (images / "I01_10_05.png").rename(images / "i01_10_05.PNG")
    (images / "I03.png").rename(images / "i03.png")
    (root / "dmos.csv").write_text((root / "dmos.csv").read_text().replace("I02_25_03.png", "i02_25_03.PNG"))
    source = build("kadid10k", tmp_path, root)
    names = [(source[i]["ref_name"].decode(), source[i]["dist_name"].decode()) for i in range(len(source))]
    assert names == [  # the names on disk
        ("I01.png", "I01_01_01.png"),
        ("I01.png", "i01_10_05.PNG"),
        ("I02.png", "I02_25_03.png"),
        ("i03.png", "I03_11_02.png"),
        ("I02.png", "I02_01_04.png"),
    ]
    columns = data.example_columns(source)
    assert columns["dist_type"].tolist() == [e.dist_type for e in expected]
    assert columns["mos_raw"].tolist() == pytest.approx([e.mos_raw for e in expected])


@pytest.mark.parametrize("removed, reported", [
    ("Distortion_2/A0002_12_00.bmp", "Distortion_2/A0002_12_00.bmp"),  # beside its siblings
    ("Distortion_3", "Distortion_3/A0003_05_01.bmp"),  # the one part not extracted
    ("Distortion_4", "Distortion_4/A0004_20_02.bmp"),
])
def test_pipal_missing_image_is_named_in_its_part_folder(tmp_path, removed, reported):
    root = tmp_path / "pipal"
    fx.write_pipal(root, merged=False)
    path = root / removed
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(FileNotFoundError, match=f"missing .*: {root / reported}\\. Expected layout"):
        build("pipal", tmp_path, root)


def test_pipal_missing_image_without_one_part_to_name(tmp_path):
    root = tmp_path / "pipal"
    fx.write_pipal(root, merged=False)
    shutil.rmtree(root / "Distortion_3")
    shutil.rmtree(root / "Distortion_4")
    with pytest.raises(FileNotFoundError, match=f"{root / 'Distortion_1..4' / 'A0003_05_01.bmp'}, "):
        build("pipal", tmp_path, root)


@pytest.mark.parametrize("part", ["ref", "p0", "p1"])
def test_bapps_missing_patch_fails_by_name_or_is_skipped(tmp_path, capsys, part):
    root = tmp_path / "dataset"
    fx.write_bapps(root)
    missing = root / "2afc" / "val" / "cnn" / part / "000001.png"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=f"1 of 9 listed image files are missing .*: {missing}\\."):
        build("bapps_2afc", tmp_path / "a", root)
    source = build("bapps_2afc", tmp_path / "b", root, skip_bad_images=True)
    assert [source[i]["name"].decode() for i in range(len(source))] == ["cnn/000000", "traditional/000000"]
    out = capsys.readouterr().out
    assert "skipped 1 examples with missing or unreadable images (skip_bad_images=True): cnn/000001" in out


@pytest.mark.parametrize(
    "name, score_file",
    [
        ("kadid10k", "dmos.csv"),
        ("tid2013", "mos_with_names.txt"),
        ("pipal", "Train_Label/A0001.txt"),
        ("pieapp", "labels/test/ref_A_per_image_score.csv"),
    ],
)
def test_score_file_with_a_byte_order_mark(tmp_path, name, score_file):
    root = tmp_path / "root"
    expected = WRITERS[name](root)
    path = root / score_file
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    source = build(name, tmp_path, root)
    assert [source[i]["dist_name"].decode() for i in range(len(source))] == [e.dist_name for e in expected]
    assert data.example_columns(source)["mos_raw"].tolist() == pytest.approx([e.mos_raw for e in expected])


def test_live_without_realigned_scores_points_to_the_original_config(tmp_path):
    root = tmp_path / "live"
    expected = fx.write_live(root)["original"]
    (root / "dmos_realigned.mat").unlink()
    with pytest.raises(FileNotFoundError,
                       match=f"(?s){root / 'dmos_realigned.mat'} not found; .*`live/original`.*Expected layout"):
        build("live", tmp_path, root)
    assert len(build("live/original", tmp_path, root)) == len(expected)


def test_pieapp_skips_a_row_that_lists_the_reference_itself(tmp_path, capsys):
    root = tmp_path / "pieapp"
    expected = fx.write_pieapp(root)
    label = root / "labels" / "test" / "ref_B_per_image_score.csv"
    label.write_text(label.read_text() + "ref_B.png, ref_B.png, 0\n")
    source = build("pieapp", tmp_path, root)
    assert [source[i]["dist_name"].decode() for i in range(len(source))] == [e.dist_name for e in expected]
    out = capsys.readouterr().out
    assert out.count("pieapp: skipped 1 rows that list the reference itself as a distorted image: "
                     "ref_B_per_image_score.csv line 3\n") == 1


# --- A built dataset and its source folder. ---------------------------------------------------


def test_unchanged_source_reuses_the_build(tmp_path, capsys):
    root = tmp_path / "kadid10k"
    fx.write_kadid(root)
    build("kadid10k", tmp_path, root)
    (root / "notes.txt").write_text("a file the build does not read")
    capsys.readouterr()
    assert len(build("kadid10k", tmp_path, root)) == 5
    assert "Build" not in capsys.readouterr().out


def test_changed_source_is_an_error_naming_the_change(tmp_path):
    root = tmp_path / "kadid10k"
    fx.write_kadid(root)
    first = build("kadid10k", tmp_path, root)
    data_path = first.dataset_info.data_dir
    before = (root / "dmos.csv").stat().st_size
    (root / "dmos.csv").write_text((root / "dmos.csv").read_text().replace("4.57", "4.5"))
    after = (root / "dmos.csv").stat().st_size
    (root / "images" / "I03_11_02.png").unlink()
    os.utime(root / "images" / "I01.png", ns=(0, 0))
    with pytest.raises(SourceChangedError) as error:
        build("kadid10k", tmp_path, root)
    message = str(error.value)
    assert (f"kadid10k: the source folder {root} differs from the files the dataset in {data_path} "
            "was built from") in message
    assert f"2 changed: dmos.csv ({before} -> {after} bytes), images/I01.png (modified)" in message
    assert "1 gone: images/I03_11_02.png" in message
    assert f"delete {data_path} and load again" in message
    # Without a source folder the build is used as it is; deleting it rebuilds from the files.
    assert data.load_source("kadid10k", data_dir=str(tmp_path / "tfds"))[0]["mos_raw"] == pytest.approx(4.57)
    shutil.rmtree(data_path)
    with pytest.raises(FileNotFoundError, match="I03_11_02.png"):
        build("kadid10k", tmp_path, root)
    fx.write_image(root / "images" / "I03_11_02.png")
    assert build("kadid10k", tmp_path, root)[0]["mos_raw"] == pytest.approx(4.5)


def test_image_added_after_a_build_that_skipped_it_is_a_change(tmp_path):
    root = tmp_path / "tid"
    fx.write_tid(root)
    (root / "distorted_images" / "I01_11_1.BMP").unlink()
    assert len(build("tid2013", tmp_path, root, skip_bad_images=True)) == 5
    fx.write_image(root / "distorted_images" / "I01_11_1.BMP")
    with pytest.raises(SourceChangedError, match="1 added: distorted_images/I01_11_1.BMP"):
        build("tid2013", tmp_path, root, skip_bad_images=True)


def test_source_that_no_longer_reads_is_a_change(tmp_path):
    root = tmp_path / "kadid10k"
    fx.write_kadid(root)
    build("kadid10k", tmp_path, root)
    (root / "dmos.csv").unlink()
    with pytest.raises(SourceChangedError, match=f"(?s)it no longer reads: .*score file {root / 'dmos.csv'} not found"
                                                 ".*load it without a source folder"):
        build("kadid10k", tmp_path, root)


# --- Storage: references once, raw pixels, builds of another version. -----------------------


def test_references_are_stored_once(tmp_path):
    expected = fx.write_kadid(tmp_path / "kadid10k")
    source = build("kadid10k", tmp_path, tmp_path / "kadid10k")
    assert len(source.references) == 3 and len(source.examples) == len(expected)
    assert data.example_columns(source)["ref_id"].tolist() == [0, 0, 1, 2, 1]
    assert source.dataset_info.metadata["references"] == {"split": "references", "ref_id": [0, 1, 2]}
    assert source.dataset_info.metadata["storage"] == "png"


@pytest.mark.parametrize("name", ["kadid10k", "tid2013", "bapps_2afc"])
def test_raw_storage_reads_the_pixels_png_storage_reads(tmp_path, monkeypatch, name):
    decoded = []
    decode = tfds.features.Image.decode_example_np
    monkeypatch.setattr(tfds.features.Image, "decode_example_np", lambda self, x: decoded.append(1) or decode(self, x))
    root = tmp_path / "root"
    WRITERS[name](root)
    png = build(name, tmp_path, root)
    raw = build(name, tmp_path, root, storage="raw")
    assert pathlib.Path(raw.dataset_info.data_dir).relative_to(tmp_path / "tfds").parts[0] == "raw"
    assert raw.dataset_info.metadata["storage"] == "raw" and png.dataset_info.metadata["storage"] == "png"
    assert len(raw) == len(png)
    for i in range(len(png)):
        a, n = png[i], len(decoded)
        b = raw[i]
        assert len(decoded) == n  # nothing to decode: the stored bytes are the pixels
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    columns = data.example_columns(raw)
    for key, values in data.example_columns(png).items():
        np.testing.assert_array_equal(columns[key], values)
    assert decoded  # the PNG build's images were decoded
    assert isinstance(raw.dataset_info.features["p0" if name == "bapps_2afc" else "image"], tfds.features.Tensor)


def test_storage_must_be_known(tmp_path):
    fx.write_kadid(tmp_path / "kadid10k")
    with pytest.raises(ValueError, match=r"storage must be one of \('png', 'raw'\), got 'jpeg'"):
        build("kadid10k", tmp_path, tmp_path / "kadid10k", storage="jpeg")


def as_older_version(source) -> pathlib.Path:
    """Moves a build to the folder of version 1.0.0, as a build by an earlier birqa_jax."""
    folder = pathlib.Path(source.dataset_info.data_dir)
    old = folder.parent / "1.0.0"
    folder.rename(old)
    return old


def test_build_of_another_version_is_rebuilt_from_the_same_source(tmp_path, capsys):
    root = tmp_path / "kadid10k"
    expected = fx.write_kadid(root)
    old = as_older_version(build("kadid10k", tmp_path, root))
    with pytest.raises(FileNotFoundError, match=f"(?s)kadid10k in {old} is version 1.0.0, a format this version of "
                                                "birqa_jax does not read, and building version 2.0.0 needs its "
                                                "official files: give their folder.*dmos.csv"):
        data.load_source("kadid10k", data_dir=str(tmp_path / "tfds"))
    capsys.readouterr()
    source = build("kadid10k", tmp_path, root)
    out = capsys.readouterr().out
    assert f"kadid10k: {old} holds version 1.0.0, a format this version of birqa_jax does not read" in out
    assert "Built kadid10k/2.0.0: 5 examples" in out and old.is_dir()
    check_pairs(source, expected, lambda r: (r - 1) / 4)


def test_build_of_another_version_and_a_changed_source_is_an_error(tmp_path):
    root = tmp_path / "kadid10k"
    fx.write_kadid(root)
    old = as_older_version(build("kadid10k", tmp_path, root))
    (root / "images" / "I03_11_02.png").unlink()
    with pytest.raises(SourceChangedError, match=f"(?s){old} holds version 1.0.0, .*differs from the files it was "
                                                 f"built from.*1 gone: images/I03_11_02.png.*delete {old} and load "
                                                 "again"):
        build("kadid10k", tmp_path, root, skip_bad_images=True)
    shutil.rmtree(old)
    assert len(build("kadid10k", tmp_path, root, skip_bad_images=True)) == 4
