"""``birqa`` command line: score image pairs with any metric of ``birqa list``.

  birqa score REF DIST [--metric NAME ...] [--params FILE] [--out FILE|-] [--format csv|json]
  birqa score --ref-dir A --dist-dir B [--recursive] [--metric NAME ...] [--out FILE|-]
  birqa list
  birqa --version

Folder mode pairs files by stem: their path below the folder without the extension, so
``A/x.png`` meets ``B/x.jpg`` (and, with ``--recursive``, ``A/s/y.png`` meets ``B/s/y.bmp``). A
stem held by more than one file on either side is ambiguous: its row reports the files and is
not scored. Every pair, and every file without a partner, is one output row; a row that could
not be scored carries the reason in the ``error`` column (exit status 1).

Also the shared command-line behaviour of ``train.py`` and ``eval.py`` (``run_absl``): ``--help``
lists every config field and exits 0, Ctrl-C ends without a traceback.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from collections.abc import Callable, Sequence

import numpy as np

IMAGE_EXTS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
STDOUT = "-"


class CliError(Exception):
    pass


def _metrics(names: Sequence[str], params_path: str | None) -> list:
    """The ``Metric`` of each name (``--params`` replaces the packaged weights of "birqa")."""
    from birqa_jax import metric

    if params_path and metric.DEFAULT_METRIC not in names:
        raise CliError(f"--params gives weights for {metric.DEFAULT_METRIC!r}; add --metric {metric.DEFAULT_METRIC}")
    try:
        return [metric.Metric.from_file(params_path, name) if params_path and name == metric.DEFAULT_METRIC
                else metric.create_metric(name) for name in names]
    except FileNotFoundError as e:
        hint = "" if params_path else " Pass a model file with --params FILE."
        raise CliError(f"{e}{hint}") from e
    except ValueError as e:
        raise CliError(str(e)) from e


def _index(folder: str, recursive: bool) -> tuple[dict[str, list[str]], list[str]]:
    """Image files below ``folder``: stem (relative path without extension, "/"-separated) ->
    relative paths; plus the subfolders skipped without ``recursive``."""
    if not os.path.isdir(folder):
        raise CliError(f"no such folder: {folder}")
    stems: dict[str, list[str]] = {}
    skipped = []
    for root, dirs, files in os.walk(folder):
        rel_root = os.path.relpath(root, folder)
        if not recursive:
            skipped = sorted(dirs)
            dirs.clear()
        for f in sorted(files):
            if f.lower().endswith(IMAGE_EXTS):
                rel = os.path.normpath(os.path.join(rel_root, f)).replace(os.sep, "/")
                stems.setdefault(os.path.splitext(rel)[0], []).append(rel)
    return stems, skipped


def _folder_rows(ref_dir: str, dist_dir: str, recursive: bool) -> list[dict]:
    """One row per stem of either folder: the pair to score, or the reason it cannot be."""
    refs, ref_subdirs = _index(ref_dir, recursive)
    dists, dist_subdirs = _index(dist_dir, recursive)
    for label, subdirs in (("--ref-dir", ref_subdirs), ("--dist-dir", dist_subdirs)):
        if subdirs:
            print(f"note: {len(subdirs)} subfolder(s) of {label} not searched ({', '.join(subdirs[:5])}"
                  f"{' ...' if len(subdirs) > 5 else ''}); pass --recursive to pair their files too", file=sys.stderr)
    if not refs and not dists:
        raise CliError(f"no image files ({', '.join(IMAGE_EXTS)}) in {ref_dir} or {dist_dir}")
    rows = []
    for stem in sorted(refs.keys() | dists.keys()):
        r, d = refs.get(stem, []), dists.get(stem, [])
        row = {"ref": ", ".join(r), "dist": ", ".join(d), "error": ""}
        if not r or not d:
            row["error"] = f"no file with the stem {stem!r} in {'--ref-dir' if not r else '--dist-dir'}"
        elif len(r) > 1 or len(d) > 1:
            row["error"] = f"ambiguous stem {stem!r}: {', '.join(r + d)}; rename so that each stem is unique"
        else:
            row.update(ref_path=os.path.join(ref_dir, r[0]), dist_path=os.path.join(dist_dir, d[0]))
        rows.append(row)
    return rows


def _score_rows(rows: list[dict], metrics: list, progress: bool) -> None:
    """Score every row that has a pair, through ``evaluation.runner.score_examples``; a pair
    that cannot be read or scored gets its ``error``. A note announces each new image size
    (each compiles once)."""
    from tqdm import tqdm

    from birqa_jax.evaluation.runner import score_examples
    from birqa_jax.inputs import to_float_pair

    sizes: set[tuple[int, int]] = set()

    def examples():
        for i, row in enumerate(rows):
            if row["error"]:
                continue
            try:
                ref, dist, _ = to_float_pair(row["ref_path"], row["dist_path"])
                for m in metrics:
                    m.check(ref.shape, dist.shape)
            except (ValueError, FileNotFoundError) as e:
                row["error"] = str(e)
                continue
            size = ref.shape[1:3]
            if size not in sizes:
                sizes.add(size)
                tqdm.write(f"note: new image size {size[0]}x{size[1]}: compiling (once per size)", file=sys.stderr)
            yield {"ref": ref, "dist": dist, "row": np.array([i])}

    todo = sum(not r["error"] for r in rows)
    scores = score_examples({m.name: m.bound() for m in metrics}, examples(), batch_size=1, total=todo,
                            progress=progress)
    for j, i in enumerate(scores.get("row", [])):
        rows[int(i)].update({m.name: float(scores[m.name][j]) for m in metrics})


def _output_format(out: str, fmt: str | None) -> str:
    return fmt or ("json" if out.lower().endswith(".json") else "csv")


def _prepare_out(out: str) -> None:
    """Fail before any scoring when ``out`` cannot be written."""
    if out == STDOUT:
        return
    if os.path.isdir(out):
        raise CliError(f"--out {out} is a folder; name a file, e.g. {os.path.join(out, 'scores.csv')}")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    except OSError as e:
        raise CliError(f"cannot create the folder of --out {out}: {e}") from e


def _render(rows: list[dict], metrics: list, fmt: str) -> str:
    names = [m.name for m in metrics]
    if fmt == "json":
        doc = {
            "metrics": {m.name: {"lower_better": m.lower_better,
                                 "score_range": None if m.score_range is None else [_finite(v) for v in m.score_range]}
                        for m in metrics},
            "pairs": [{"ref": r["ref"], "dist": r["dist"], "scores": {n: _finite(r.get(n)) for n in names},
                       "error": r["error"] or None} for r in rows],
        }
        return json.dumps(doc, indent=2, allow_nan=False) + "\n"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["ref", "dist", *names, "error"])
    w.writerows([r["ref"], r["dist"], *(f"{r[n]:.6f}" if n in r else "" for n in names), r["error"]] for r in rows)
    return buf.getvalue()


def _finite(v: float | None) -> float | None:
    """A number for strict JSON: missing and non-finite values (PSNR's inf) become null."""
    return v if v is not None and math.isfinite(v) else None


def _write(text: str, out: str) -> None:
    from birqa_jax.model.weights import atomic_write_bytes

    if out == STDOUT:
        sys.stdout.write(text)
    else:
        atomic_write_bytes(out, text.encode())


def cmd_score(args) -> int:
    folders = bool(args.ref_dir or args.dist_dir)
    if folders and not (args.ref_dir and args.dist_dir):
        raise CliError("folder mode needs both --ref-dir and --dist-dir")
    if folders and (args.ref or args.dist):
        raise CliError("give either REF DIST or --ref-dir/--dist-dir, not both")
    if not folders and not (args.ref and args.dist):
        raise CliError("give REF and DIST image files, or --ref-dir A --dist-dir B")
    if args.recursive and not folders:
        raise CliError("--recursive applies to --ref-dir/--dist-dir")
    out = args.out or (STDOUT if folders or args.format else None)
    if out:
        _prepare_out(out)
    metrics = _metrics(args.metric or ["birqa"], args.params)
    if folders:
        rows = _folder_rows(args.ref_dir, args.dist_dir, args.recursive)
    else:
        rows = [{"ref": args.ref, "dist": args.dist, "ref_path": args.ref, "dist_path": args.dist, "error": ""}]
    _score_rows(rows, metrics, progress=folders)
    failed = [r for r in rows if r["error"]]
    if out:
        _write(_render(rows, metrics, _output_format(out, args.format)), out)
        if out != STDOUT:
            print(f"wrote {len(rows)} rows ({len(rows) - len(failed)} scored) to {out}", file=sys.stderr)
    elif not failed:
        values = [rows[0][m.name] for m in metrics]
        print(f"{values[0]:.6f}" if len(metrics) == 1 else "\n".join(f"{m.name} {v:.6f}" for m, v in zip(metrics, values)))
    for r in failed:
        print(f"error: {r['dist'] or r['ref']}: {r['error']}", file=sys.stderr)
    return 1 if failed else 0


def cmd_list(args) -> int:
    from birqa_jax import metric

    for name in metric.list_metrics():
        print(metric.describe(name))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from birqa_jax.metric import __version__

    p = argparse.ArgumentParser(prog="birqa", description="Full-reference image quality: BiRQA and classical metrics.")
    p.add_argument("--version", action="version", version=f"birqa {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score", help="score one pair or two folders of pairs",
                       description="Score image pairs. Folders pair files by stem (x.png meets x.jpg).")
    s.add_argument("ref", nargs="?", help="reference image file")
    s.add_argument("dist", nargs="?", help="distorted image file")
    s.add_argument("--ref-dir", help="folder of reference images (paired by stem)")
    s.add_argument("--dist-dir", help="folder of distorted images (paired by stem)")
    s.add_argument("--recursive", action="store_true", help="also pair files in subfolders (by relative path)")
    s.add_argument("--metric", action="append", metavar="NAME",
                   help="a metric of `birqa list` or a model file; repeat for several (default: birqa)")
    s.add_argument("--params", metavar="FILE", help="model file for the birqa metric (default: the packaged default weights)")
    s.add_argument("--out", metavar="FILE", help="write rows to FILE ('-' = stdout, the default in folder mode "
                   "or with --format)")
    s.add_argument("--format", choices=("csv", "json"), help="output format (default: from --out's extension, else csv)")
    s.set_defaults(func=cmd_score)
    ls = sub.add_parser("list", help="list the metric names with their direction and range")
    ls.set_defaults(func=cmd_list)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as e:
        print(f"birqa: error: {e}", file=sys.stderr)
        return 2


def config_fields(config, prefix: str = "--config") -> list[str]:
    """Every leaf of an ``ml_collections.ConfigDict`` as ``--config.a.b=value`` lines."""
    lines = []
    for key, value in config.items():
        if hasattr(value, "items"):
            lines += config_fields(value, f"{prefix}.{key}")
        else:
            lines.append(f"{prefix}.{key}={value!r}")
    return lines


_HELP = ("-h", "--help", "-help", "--helpshort", "--helpfull")


def run_absl(main_fn: Callable[[list[str]], int | None], doc: str, argv: Sequence[str] | None = None) -> None:
    """``absl.app.run(main_fn)`` for ``train.py`` and ``eval.py``: ``-h``/``--help`` prints
    ``doc``, the script's flags and every field of the ``--config`` it would use, and exits 0;
    Ctrl-C outside the training loop's own handling ends with one line (exit status 130)."""
    from absl import app, flags

    argv = list(sys.argv if argv is None else argv)
    if any(a in _HELP for a in argv[1:]):
        flags.FLAGS([a for a in argv if a not in _HELP])
        print(f"{doc.strip()}\n\nflags:\n{flags.FLAGS.main_module_help()}\n\nconfig fields (override any as shown):")
        print("\n".join(f"  {line}" for line in config_fields(flags.FLAGS.config)))
        sys.exit(0)
    try:
        app.run(main_fn, argv=argv)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    sys.exit(main())
