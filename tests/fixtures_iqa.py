"""Writers of tiny IQA dataset trees in the official layouts, quirks included.

Every image file is filled with one colour derived from its own file name (``colour_of``), so a
test can check which file each decoded image came from, i.e. the ref/dist pairing. Images are
16x24 (H x W). Each writer returns the expected examples in the builder's order.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import pathlib

import numpy as np
import openpyxl
import scipy.io
from PIL import Image

H, W = 16, 24


def colour_of(name: str) -> tuple[int, int, int]:
    """A colour that identifies the file name ``name``."""
    digest = hashlib.sha256(name.encode()).digest()
    return digest[0], digest[1], digest[2]


def write_image(path: pathlib.Path, name: str | None = None, size: tuple[int, int] = (H, W)) -> None:
    """A constant image of colour_of(name or path.name); format from the suffix (png/bmp)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.empty((*size, 3), np.uint8)
    image[...] = colour_of(name or path.name)
    Image.fromarray(image).save(path)


@dataclasses.dataclass(frozen=True)
class Expected:
    """One expected example: names as stored, the file's score, type and level."""

    ref_name: str
    dist_name: str
    mos_raw: float
    dist_type: int = -1
    dist_level: int = -1


def write_kadid(root: pathlib.Path) -> list[Expected]:
    """kadid10k/: references and distorted images together in images/, dmos.csv."""
    rows = [
        ("I01_01_01.png", "I01.png", 4.57, 0.496),
        ("I01_10_05.png", "I01.png", 1.20, 0.3),
        ("I02_25_03.png", "I02.png", 3.33, 0.7),
        ("I03_11_02.png", "I03.png", 2.05, 0.9),
        ("I02_01_04.png", "I02.png", 5.00, 0.1),
    ]
    for ref in ("I01.png", "I02.png", "I03.png"):
        write_image(root / "images" / ref)
    with (root / "dmos.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["dist_img", "ref_img", "dmos", "var"])
        for dist, ref, score, var in rows:
            write_image(root / "images" / dist)
            writer.writerow([dist, ref, score, var])
    return [Expected(r, d, s, int(d[4:6]), int(d[7:9])) for d, r, s, _ in rows]


def write_tid(root: pathlib.Path, version: str = "tid2013") -> list[Expected]:
    """TID layout with mixed-case names on disk and in the list, and reference ``i25.bmp``."""
    # (name on disk, name in mos_with_names.txt, mos)
    rows = [
        ("i01_01_1.bmp", "i01_01_1.bmp", 5.51429),
        ("I01_11_1.BMP", "i01_11_1.bmp", 6.1),
        ("i01_01_2.bmp", "I01_01_2.BMP", 4.25),
        ("i25_04_3.bmp", "i25_04_3.bmp", 0.5),
        ("I02_03_4.bmp", "i02_03_4.bmp", 8.75),
    ]
    if version == "tid2013":
        rows.append(("i02_24_5.bmp", "i02_24_5.bmp", 2.0))
    refs = {"01": "I01.BMP", "02": "I02.BMP", "25": "i25.bmp"}
    for ref in refs.values():
        write_image(root / "reference_images" / ref)
    for disk, _, _ in rows:
        write_image(root / "distorted_images" / disk)
    (root / "mos_with_names.txt").write_text("".join(f"{m} {listed}\n" for _, listed, m in rows))
    (root / "mos_std.txt").write_text("".join("0.1\n" for _ in rows))
    return [Expected(refs[d[1:3]], d, m, int(d[4:6]), int(d[7])) for d, _, m in rows]


LIVE_FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))
LIVE_REFS = ("bikes.bmp", "house.bmp", "parrots.bmp")


def write_live(root: pathlib.Path) -> dict[str, list[Expected]]:
    """LIVE release 2 with the full 982-entry .mat files; all but six entries are flagged in
    ``orgs`` as copies of their reference (one of those copies exists on disk and must be
    dropped). Returns the expected examples per DMOS convention."""
    offsets = np.cumsum([0] + [n for _, n in LIVE_FOLDERS])
    entry = {f: o for (f, _), o in zip(LIVE_FOLDERS, offsets)}
    # (folder, k, reference, dmos_new, dmos)
    kept = [
        ("jp2k", 1, "bikes.bmp", 30.0, 35.0),
        ("jp2k", 5, "house.bmp", 50.0, 45.0),
        ("jpeg", 2, "parrots.bmp", 10.0, 15.0),
        ("wn", 3, "bikes.bmp", 70.0, 65.0),
        ("gblur", 1, "house.bmp", 40.0, 42.0),
        ("fastfading", 174, "parrots.bmp", 20.0, 25.0),
    ]
    n = int(offsets[-1])
    orgs = np.ones((1, n))
    dmos_new, dmos = np.zeros((1, n)), np.zeros((1, n))
    refnames = np.empty((1, n), dtype=object)
    for i in range(n):
        refnames[0, i] = LIVE_REFS[i % 3]
    for folder, k, ref, new, old in kept:
        i = entry[folder] + k - 1
        orgs[0, i], dmos_new[0, i], dmos[0, i], refnames[0, i] = 0, new, old, ref
        write_image(root / folder / f"img{k}.bmp", name=f"{folder}/img{k}.bmp")
    # A reference copy flagged by orgs: present on disk, must not become an example.
    write_image(root / "jp2k" / "img2.bmp", name=refnames[0, 1])
    for folder, _ in LIVE_FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "info.txt").write_text("")
    for ref in LIVE_REFS:
        write_image(root / "refimgs" / ref)
    scipy.io.savemat(root / "dmos.mat", {"dmos": dmos, "orgs": orgs})
    scipy.io.savemat(root / "dmos_realigned.mat", {"dmos_new": dmos_new, "dmos_std": np.ones((1, n)), "orgs": orgs})
    scipy.io.savemat(root / "refnames_all.mat", {"refnames_all": refnames})
    types = {f: t for t, (f, _) in enumerate(LIVE_FOLDERS, start=1)}
    return {
        "realigned": [Expected(r, f"{f}/img{k}.bmp", new, types[f]) for f, k, r, new, _ in kept],
        "original": [Expected(r, f"{f}/img{k}.bmp", old, types[f]) for f, k, r, _, old in kept],
    }


CSIQ_TYPES = {
    "noise": ("awgn", "AWGN", 1),
    "jpeg": ("jpeg", "JPEG", 2),
    "jpeg 2000": ("jpeg2000", "jpeg2000", 3),
    "fnoise": ("fnoise", "fnoise", 4),
    "blur": ("blur", "BLUR", 5),
    "contrast": ("contrast", "contrast", 6),
}


def write_csiq(root: pathlib.Path, header: tuple[str, ...] | None = None) -> list[Expected]:
    """CSIQ with csiq.DMOS.xlsx written by openpyxl: title rows, header on row 4, the image
    ``1600`` stored as a number."""
    rows = [
        (1600, 1, "noise", 1, 0.05, 0.062),
        (1600, 2, "jpeg", 3, 0.04, 0.35),
        ("aerial_city", 3, "jpeg 2000", 2, 0.1, 0.2),
        ("aerial_city", 4, "fnoise", 5, 0.1, 0.9),
        (1600, 5, "blur", 4, 0.1, 0.5),
        ("aerial_city", 6, "contrast", 1, 0.1, 0.0),
    ]
    for ref in ("1600.png", "aerial_city.png"):
        write_image(root / "src_imgs" / ref)
    expected = []
    for image, _, dst_type, level, _, dmos in rows:
        folder, token, type_id = CSIQ_TYPES[dst_type]
        name = f"{image}.{token}.{level}.png"
        write_image(root / "dst_imgs" / folder / name)
        expected.append(Expected(f"{image}.png", name, dmos, type_id, level))
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "all_by_image"
    sheet.append(["CSIQ DMOS scores, by image"])
    sheet.append([])
    sheet.append([])
    sheet.append(list(header or ("image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos")))
    for row in rows:
        sheet.append(list(row))
    workbook.create_sheet("all_by_distortion")
    workbook.save(root / "csiq.DMOS.xlsx")
    return expected


def write_pipal(root: pathlib.Path, merged: bool) -> list[Expected]:
    """PIPAL training part: distorted images in Train_Dist/ (merged) or Distortion_1..4/, the
    distorted images of reference A000k in Distortion_k/."""
    rows = {
        "A0001.txt": [("A0001_00_00.bmp", 1520.0648), ("A0001_10_03.bmp", 1105.5), ("A0001_02_01.bmp", 1650.25)],
        "A0002.txt": [("A0002_01_02.bmp", 1402.0), ("A0002_12_00.bmp", 1780.75)],
        "A0003.txt": [("A0003_05_01.bmp", 1210.5)],
        "A0004.txt": [("A0004_20_02.bmp", 1333.25)],
    }
    expected = []
    (root / "Train_Label").mkdir(parents=True, exist_ok=True)
    for label_file, lines in rows.items():
        ref = label_file[:5]
        write_image(root / "Train_Ref" / f"{ref}.bmp")
        (root / "Train_Label" / label_file).write_text("".join(f"{n},{s}\n" for n, s in lines))
        for name, score in lines:
            folder = "Train_Dist" if merged else f"Distortion_{int(ref[1:])}"
            write_image(root / folder / name)
            expected.append(Expected(f"{ref}.bmp", name, score, int(name[6:8]), int(name[9:11])))
    return expected


def write_pieapp(root: pathlib.Path) -> list[Expected]:
    """PieAPP test per-image scores; the CSV column names start with a space."""
    scores = {"ref_A": [("distort_1.png", 0.25), ("distort_2.png", 2.5)], "ref_B": [("distort_1.png", 1.0)]}
    expected = []
    for ref, rows in scores.items():
        write_image(root / "reference_images" / "test" / f"{ref}.png")
        (root / "labels" / "test").mkdir(parents=True, exist_ok=True)
        with (root / "labels" / "test" / f"{ref}_per_image_score.csv").open("w") as f:
            f.write("reference image, distorted image, score for distorted image\n")
            for name, score in rows:
                f.write(f"{ref}.png, {name}, {score}\n")
                write_image(root / "distorted_images" / "test" / ref / name, name=f"{ref}/{name}")
                expected.append(Expected(f"{ref}.png", f"{ref}/{name}", score))
    return expected


def write_bapps(root: pathlib.Path) -> list[tuple[str, float]]:
    """dataset/2afc/val/<subset>/{ref,p0,p1,judge}/; returns (name, judge) in order."""
    triplets = {"cnn": [("000000", 0.25), ("000001", 1.0)], "traditional": [("000000", 0.5)]}
    expected = []
    for subset, items in triplets.items():
        base = root / "2afc" / "val" / subset
        for stem, judge in items:
            for part in ("ref", "p0", "p1"):
                write_image(base / part / f"{stem}.png", name=f"{subset}/{part}/{stem}", size=(8, 8))
            (base / "judge").mkdir(parents=True, exist_ok=True)
            np.save(base / "judge" / f"{stem}.npy", np.array([judge], np.float32))
            expected.append((f"{subset}/{stem}", judge))
    return expected


def write_kadid_textured(
    root: pathlib.Path, num_refs: int = 12, per_ref: int = 2, size: tuple[int, int] = (24, 32)
) -> list[float]:
    """KADID layout whose distorted images equal their reference and encode pixel positions:
    R = row, G = column, B = 10 * reference number (1-based). Every pair has a distinct score,
    spread over 1..5; returns the scores in example order."""
    h, w = size
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    scores = np.linspace(1.0, 5.0, num_refs * per_ref).round(4)
    order = np.random.default_rng(0).permutation(len(scores))  # scores unrelated to references
    (root / "images").mkdir(parents=True, exist_ok=True)
    with (root / "dmos.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["dist_img", "ref_img", "dmos", "var"])
        listed = []
        for r in range(1, num_refs + 1):
            image = np.stack([rows, cols, np.full_like(rows, 10 * r)], -1).astype(np.uint8)
            Image.fromarray(image).save(root / "images" / f"I{r:02d}.png")
            for level in range(1, per_ref + 1):
                name = f"I{r:02d}_01_{level:02d}.png"
                Image.fromarray(image).save(root / "images" / name)
                score = float(scores[order[len(listed)]])
                writer.writerow([name, f"I{r:02d}.png", score, 0.1])
                listed.append(score)
    return listed
