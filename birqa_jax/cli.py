"""``birqa`` command line: score image pairs.

  birqa score REF DIST [--params FILE]
  birqa score --ref-dir A --dist-dir B --out scores.csv [--params FILE]

Folder mode pairs files by name (``A/x.png`` with ``B/x.png``).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

import numpy as np

IMAGE_EXTS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


class CliError(Exception):
    pass


def read_image(path: str) -> np.ndarray:
    """Read an image file as uint8 RGB [H, W, 3]; CliError names an unreadable file."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise CliError(f"no such image file: {path}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise CliError(f"cannot read image {path}: {e}") from e


def _model(params_path: str | None):
    from birqa_jax import metric

    try:
        return metric.load(params_path)
    except FileNotFoundError as e:
        hint = "" if params_path else " Pass a model file with --params FILE."
        raise CliError(f"{e}{hint}") from e
    except ValueError as e:
        raise CliError(str(e)) from e


def _score_pair(params, config, ref: np.ndarray, dist: np.ndarray, name: str) -> float:
    from birqa_jax import metric

    try:
        return metric.score(ref, dist, params=params, config=config)
    except ValueError as e:
        raise CliError(f"{name}: {e}") from e


def _pair_files(ref_dir: str, dist_dir: str) -> tuple[list[str], list[str], list[str]]:
    for d in (ref_dir, dist_dir):
        if not os.path.isdir(d):
            raise CliError(f"no such folder: {d}")

    def images(d):
        return {f for f in os.listdir(d) if f.lower().endswith(IMAGE_EXTS)}

    refs, dists = images(ref_dir), images(dist_dir)
    return sorted(refs & dists), sorted(refs - dists), sorted(dists - refs)


def cmd_score(args) -> int:
    if args.ref_dir or args.dist_dir:
        if not (args.ref_dir and args.dist_dir and args.out):
            raise CliError("folder mode needs --ref-dir, --dist-dir and --out together")
        if args.ref or args.dist:
            raise CliError("give either REF DIST or --ref-dir/--dist-dir, not both")
        return _score_folders(args)
    if not (args.ref and args.dist):
        raise CliError("give REF and DIST image files, or --ref-dir A --dist-dir B --out scores.csv")
    params, config = _model(args.params)
    ref, dist = read_image(args.ref), read_image(args.dist)
    print(f"{_score_pair(params, config, ref, dist, args.dist):.6f}")
    return 0


def _score_folders(args) -> int:
    from birqa_jax.evaluation.runner import score_examples
    from birqa_jax.metric import prepare_pair
    from birqa_jax.model import apply_fn

    names, only_ref, only_dist = _pair_files(args.ref_dir, args.dist_dir)
    for label, missing in (("--ref-dir", only_ref), ("--dist-dir", only_dist)):
        if missing:
            print(f"warning: {len(missing)} file(s) only in {label}, not scored: "
                  f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}", file=sys.stderr)
    if not names:
        raise CliError(f"no image file names are common to {args.ref_dir} and {args.dist_dir}")
    params, config = _model(args.params)
    apply = apply_fn(config)
    failed: list[str] = []

    def examples():
        for name in names:
            try:
                ref = read_image(os.path.join(args.ref_dir, name))
                dist = read_image(os.path.join(args.dist_dir, name))
                ref, dist, _ = prepare_pair(ref, dist)
            except CliError as e:
                failed.append(str(e))
                continue
            except ValueError as e:
                failed.append(f"{name}: {e}")
                continue
            yield {"ref": ref, "dist": dist, "name": np.array([name])}

    scores = score_examples({"birqa": lambda r, d: apply(params, r, d)}, examples(), batch_size=1,
                            total=len(names), progress=True)
    rows = list(zip(scores.get("name", []), scores["birqa"]))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "birqa"])
        w.writerows((n, f"{s:.6f}") for n, s in rows)
    print(f"wrote {len(rows)} scores to {args.out}")
    for msg in failed:
        print(f"error: {msg}", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="birqa", description="BiRQA full-reference image quality (higher = better).")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score", help="score one pair or two folders of pairs")
    s.add_argument("ref", nargs="?", help="reference image file")
    s.add_argument("dist", nargs="?", help="distorted image file")
    s.add_argument("--ref-dir", help="folder of reference images (paired by file name)")
    s.add_argument("--dist-dir", help="folder of distorted images (paired by file name)")
    s.add_argument("--out", help="CSV file to write in folder mode")
    s.add_argument("--params", help="model file (default: the packaged default weights)")
    s.set_defaults(func=cmd_score)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as e:
        print(f"birqa: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
