"""``birqa`` command line: score image pairs with any metric of ``birqa list``.

  birqa score REF DIST [--metric NAME ...] [--params FILE] [--out FILE|-] [--format csv|json]
  birqa score --ref-dir A --dist-dir B [--recursive] [--metric NAME ...] [--out FILE|-] [--resume]
  birqa list
  birqa --version

Folder mode pairs files by stem: their path below the folder without the extension, so
``A/x.png`` meets ``B/x.jpg`` (and, with ``--recursive``, ``A/s/y.png`` meets ``B/s/y.bmp``). A
stem held by more than one file on either side is ambiguous: its row reports the files and is
not scored. Every pair, and every file without a partner, is one output row; a row that could
not be scored (a missing, unreadable, oversized or animated image, sizes that differ) carries
the reason in the ``error`` column (exit status 1).

Output (``Output``): rows are written as they are scored, so the file is valid CSV or JSON
after every row and an interrupted run keeps all finished rows; ``--resume`` scores only the
pairs not yet in the file. ``--out`` is checked before any scoring: it must be writable, and
never an input, an image, a folder or a device. A run that scores nothing leaves an earlier
file as it was. Ctrl-C or SIGTERM ends with one line saying how many pairs were scored (exit
status 130 or 143, as the signal itself would give); usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence

IMAGE_EXTS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".gif")
STDOUT = "-"


class CliError(Exception):
    """A usage or input problem, worded for the command line (exit status 2)."""


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
        row = {"ref": ", ".join(r), "dist": ", ".join(d), "error": "",
               "files": [os.path.join(ref_dir, f) for f in r] + [os.path.join(dist_dir, f) for f in d]}
        if not r or not d:
            row["error"] = f"no file with the stem {stem!r} in {'--ref-dir' if not r else '--dist-dir'}"
        elif len(r) > 1 or len(d) > 1:
            row["error"] = f"ambiguous stem {stem!r}: {', '.join(r + d)}; rename so that each stem is unique"
        else:
            row.update(ref_path=os.path.join(ref_dir, r[0]), dist_path=os.path.join(dist_dir, d[0]))
        rows.append(row)
    return rows


def _score_row(row: dict, metrics: list, sizes: set) -> None:
    """Score one pair into ``row`` (one device call per pair, so every row can be written as it is
    scored); a pair that cannot be read or scored gets its ``error``. A note announces each new
    image size (each compiles once)."""
    import jax
    from tqdm import tqdm

    from birqa_jax.evaluation.runner import score_examples
    from birqa_jax.inputs import size_text, to_float_pair

    try:
        ref, dist, _ = to_float_pair(row["ref_path"], row["dist_path"])
        for m in metrics:
            m.check(ref.shape, dist.shape)
        if ref.shape not in sizes:
            sizes.add(ref.shape)
            tqdm.write(f"note: new image size {size_text(ref.shape)}: compiling (once per size)", file=sys.stderr)
        scores = score_examples({m.name: m.bound() for m in metrics}, [{"ref": ref, "dist": dist}], batch_size=1)
    except (ValueError, FileNotFoundError) as e:
        row["error"] = str(e)
    except (MemoryError, jax.errors.JaxRuntimeError) as e:  # a huge pair: that row fails, not the run
        row["error"] = f"could not score this pair: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    else:
        row.update({m.name: float(scores[m.name][0]) for m in metrics})


def _output_format(out: str, fmt: str | None) -> str:
    return fmt or ("json" if out.lower().endswith(".json") else "csv")


def _json_number(v: float | None) -> float | str | None:
    """A score for strict JSON: null only when there is none; inf, -inf and nan (PSNR of an
    identical pair, an unbounded range) as those strings, which ``float()`` reads back."""
    if v is None or math.isfinite(v):
        return v
    return str(v)


class Output:
    """The result rows of ``birqa score``, written as they are scored, so a stopped run keeps
    every finished row and the file is valid CSV or JSON after each one.

    A file is written beside ``out`` and takes its name at once when ``out`` does not exist or
    ``resume`` holds (then it starts with the earlier scored rows), else only once a pair is
    scored: a run that scores nothing leaves an earlier result as it was. CSV rows are
    appended; JSON is one document ``{"metrics": ..., "pairs": [...]}`` whose closing ``]}``
    each new pair overwrites and writes again after itself.
    """

    def __init__(self, out: str, fmt: str, metrics: list, resume: bool, existed: bool):
        """``existed``: a file is at ``out`` already (``check_out_path``)."""
        self.out, self.fmt, self.names = out, fmt, [m.name for m in metrics]
        self.kept: list[dict] = []
        self.written = self.scored = 0
        self.fd: int | None = None
        if out == STDOUT:
            self.stream = sys.stdout
        else:
            self.stream = None
            if resume and existed:
                self.kept = self._read_done()
            self._open_temp()
            self.published = False
            self.replace_at_first_score = existed and not resume
        metrics_doc = {m.name: {"lower_better": m.lower_better,
                                "score_range": (None if m.score_range is None
                                                else [_json_number(v) for v in m.score_range])}
                       for m in metrics}
        if fmt == "json":
            self.head = '{"metrics": ' + json.dumps(metrics_doc, allow_nan=False) + ',\n "pairs": ['
            self.tail = "\n]}\n"
        else:
            self.head = self._csv_line(["ref", "dist", *self.names, "error"])
            self.tail = ""
        self._put(self.head)
        for row in self.kept:
            self.write(row, count=False)
        if self.fd is not None and not self.replace_at_first_score:
            self._publish()

    # ---- the file
    def _open_temp(self) -> None:
        from birqa_jax.files import temp_file_beside

        try:
            self.fd, self.tmp = temp_file_beside(self.out)
        except OSError as e:
            raise CliError(f"cannot write --out {self.out}: {e.strerror or e}") from e
        self.offset = 0  # where the tail starts: the next row goes there

    def _publish(self) -> None:
        os.replace(self.tmp, self.out)
        self.published = True

    def _put(self, text: str) -> None:
        if self.stream is not None:
            self.stream.write(text)
            self.stream.flush()
            return
        # One write per row, over the old tail: a stop between two writes leaves whole rows and
        # a whole tail.
        os.pwrite(self.fd, (text + self.tail).encode(), self.offset)
        self.offset += len(text.encode())

    def _csv_line(self, values: list) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        return buf.getvalue()

    # ---- rows
    def write(self, row: dict, count: bool = True) -> None:
        """Append one row and flush it, so the file is valid after every row.

        Args:
          row: ``{"ref", "dist", <metric name>: score, "error"}``.
          count: count it in ``written`` (False for rows kept from an earlier run).
        """
        if self.fmt == "json":
            doc = {"ref": row["ref"], "dist": row["dist"],
                   "scores": {n: _json_number(row.get(n)) for n in self.names}, "error": row["error"] or None}
            text = ("\n" if self.written == 0 else ",\n") + json.dumps(doc, allow_nan=False)
        else:
            text = self._csv_line([row["ref"], row["dist"], *(f"{row[n]:.6f}" if n in row else "" for n in self.names),
                                   row["error"]])
        with _signals_deferred():  # the row on disk and the counts change together
            try:
                self._put(text)
            except OSError as e:
                where = "stdout" if self.stream is not None else self.out
                raise CliError(f"cannot write to {where}: {e.strerror or e}; {self.scored} pairs were scored "
                               "before") from e
            self.written += 1
            if count and not row["error"]:
                self.scored += 1
                if self.fd is not None and not self.published:
                    self._publish()

    def close(self) -> bool:
        """Finish the output; False when a run that scored nothing left an earlier file as it was."""
        if self.stream is not None:
            self.stream.write(self.tail)
            self.stream.flush()
            return True
        os.fsync(self.fd)
        os.close(self.fd)
        if not self.published:
            if self.replace_at_first_score:
                os.unlink(self.tmp)
                return False
            self._publish()
        return True

    def _read_done(self) -> list[dict]:
        """The scored rows of an earlier output (rows with an error are scored again)."""
        try:
            with open(self.out, newline="") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise CliError(f"cannot read {self.out} to resume: {e}") from e
        what = f"cannot resume from {self.out}"
        rows = []
        if self.fmt == "json":
            try:
                doc = json.loads(text)
                metrics, pairs = list(doc["metrics"]), doc["pairs"]
            except (ValueError, KeyError, TypeError) as e:
                raise CliError(f"{what}: not a JSON result of birqa score ({e})") from e
            if metrics != self.names:
                raise CliError(f"{what}: it holds the metrics {metrics}, this run scores {self.names}; "
                               "use the same --metric list or another --out")
            for p in pairs:
                scores = p.get("scores") or {}
                if not p.get("error") and all(scores.get(n) is not None for n in self.names):
                    rows.append({"ref": p["ref"], "dist": p["dist"], "error": "",
                                 **{n: float(scores[n]) for n in self.names}})
            return rows
        reader = csv.reader(io.StringIO(text))
        header = next(reader, [])
        if header != ["ref", "dist", *self.names, "error"]:
            wanted = ["ref", "dist", *self.names, "error"]
            raise CliError(f"{what}: its columns are {header}, this run writes {wanted}; "
                           "use the same --metric list and --format, or another --out")
        for values in reader:
            if len(values) != len(header) or values[-1]:
                continue  # a row with an error, or cut short by a crash: scored again
            try:
                rows.append({"ref": values[0], "dist": values[1], "error": "",
                             **{n: float(v) for n, v in zip(self.names, values[2:-1])}})
            except ValueError:
                continue
        return rows


def check_out_path(out: str, inputs: list[str]) -> bool:
    """Refuse an output path that would overwrite an input, an image, a folder, a device or a
    read-only file; True when a file is there already."""
    if os.path.isdir(out):
        raise CliError(f"--out {out} is a folder; name a file, e.g. {os.path.join(out, 'scores.csv')}")
    if out.lower().endswith(IMAGE_EXTS):
        raise CliError(f"--out {out} names an image file; results are CSV or JSON: name a .csv or .json file")
    existed = os.path.lexists(out)
    if existed:
        if not os.path.isfile(out):
            raise CliError(f"--out {out} exists and is not a regular file; use --out - for stdout")
        for path in inputs:
            if os.path.exists(path) and os.path.samefile(out, path):
                raise CliError(f"--out {out} is an input of this run ({path}); name another file")
        if not os.access(out, os.W_OK):
            raise CliError(f"--out {out} is read-only; name another file")
    folder = os.path.dirname(os.path.abspath(out))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".tmp-")  # rows are written beside out, then renamed
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CliError(f"cannot write --out {out}: {e.strerror or e}") from e
    return existed


def cmd_score(args) -> int:
    """``birqa score``: score one pair, or every pair of two folders, with each ``--metric``.

    Returns the exit status: 0, or 1 when some pair could not be scored.
    """
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
    if args.resume and out in (None, STDOUT):
        raise CliError("--resume continues an output file; give it with --out FILE")
    if args.max_pixels is not None:
        from birqa_jax import inputs

        inputs.MAX_PIXELS = args.max_pixels  # main() restores it when the run ends
    if folders:
        rows = _folder_rows(args.ref_dir, args.dist_dir, args.recursive)
    else:
        rows = [{"ref": args.ref, "dist": args.dist, "ref_path": args.ref, "dist_path": args.dist, "error": "",
                 "files": [args.ref, args.dist]}]
    existed = False
    if out and out != STDOUT:  # before the metrics load and compile: a bad --out fails at once
        existed = check_out_path(out, [f for r in rows for f in r["files"]] + (args.metric or []) + [args.params or ""])
    metrics = _metrics(args.metric or ["birqa"], args.params)
    output = Output(out, _output_format(out, args.format), metrics, args.resume, existed) if out else None
    done = {(r["ref"], r["dist"]) for r in output.kept} if output else set()
    todo = [r for r in rows if (r["ref"], r["dist"]) not in done]
    if done:
        print(f"note: {len(rows) - len(todo)} pairs already scored in {out} are kept; scoring the other {len(todo)}",
              file=sys.stderr)
    from tqdm import tqdm

    sizes: set = set()
    failed = []
    bar = tqdm(total=sum(not r["error"] for r in todo), desc="scoring", unit="pair", disable=not folders,
               leave=False, file=sys.stderr)
    try:
        for row in todo:
            if not row["error"]:
                _score_row(row, metrics, sizes)
                bar.update(1)
            if row["error"]:
                failed.append(row)
            if output:
                output.write(row)
    except KeyboardInterrupt as stop:
        bar.close()
        _interrupted(output, out, sum(not r["error"] for r in todo))
        return _stop_status(stop)
    finally:
        bar.close()
    for r in failed:
        named = any(f and f in r["error"] for f in (r["ref"], r["dist"]))
        print(f"error: {r['error']}" if named else f"error: {r['dist'] or r['ref']}: {r['error']}", file=sys.stderr)
    if output:
        kept = output.close()
        if out != STDOUT:
            if not kept:
                print(f"no pair scored: {out} left as it was", file=sys.stderr)
            else:
                scored = output.written - len(failed)
                print(f"wrote {output.written} row(s) ({scored} scored) to {out}", file=sys.stderr)
    elif not failed:
        values = [rows[0][m.name] for m in metrics]
        lines = [f"{m.name} {v:.6f}" for m, v in zip(metrics, values)]
        print(f"{values[0]:.6f}" if len(metrics) == 1 else "\n".join(lines))
    return 1 if failed else 0


def _interrupted(output: Output | None, out: str | None, todo: int) -> None:
    """One line on where an interrupted run stopped and how to go on."""
    if output is None:
        print("\nbirqa: interrupted", file=sys.stderr)
        return
    kept = output.close()
    if out == STDOUT:
        print(f"\nbirqa: interrupted after scoring {output.scored} of {todo} pairs (their rows are on stdout)",
              file=sys.stderr)
    elif not kept:
        print(f"\nbirqa: interrupted before any pair was scored; {out} left as it was", file=sys.stderr)
    else:
        print(f"\nbirqa: interrupted after scoring {output.scored} of {todo} pairs, saved in {out}; "
              "run the same command with --resume to score the rest", file=sys.stderr)


def cmd_list(args) -> int:
    """``birqa list``: one line per metric name (``metric.describe``); returns 0."""
    from birqa_jax import metric

    for name in metric.list_metrics():
        print(metric.describe(name))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``birqa`` command's parser: subcommands ``score`` and ``list``, and ``--version``."""
    from birqa_jax.version import __version__

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
    s.add_argument("--params", metavar="FILE",
                   help="model file for the birqa metric (default: the packaged default weights)")
    s.add_argument("--out", metavar="FILE", help="write rows to FILE ('-' = stdout, the default in folder mode "
                   "or with --format)")
    s.add_argument("--format", choices=("csv", "json"),
                   help="output format (default: from --out's extension, else csv)")
    s.add_argument("--resume", action="store_true", help="keep the scored rows already in --out FILE and score only "
                   "the other pairs (rows with an error are tried again)")
    s.add_argument("--max-pixels", type=_positive_int, metavar="N",
                   help="largest image read, in pixels (width x height; default 8192 x 8192 = 67108864)")
    s.set_defaults(func=cmd_score)
    ls = sub.add_parser("list", help="list the metric names with their direction and range")
    ls.set_defaults(func=cmd_list)
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


@contextlib.contextmanager
def _signals_deferred():
    """Ctrl-C or SIGTERM arriving inside takes effect at its end: a row is written and counted
    whole, so the interruption message's count matches the rows on disk. Off the main thread
    (where handlers cannot be set) signals keep their usual effect."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if held:
            signal.raise_signal(held[0])  # delivered now to the restored handler


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is."""


def _stop(signum, frame):
    raise _Terminated


def _stop_status(stop: KeyboardInterrupt) -> int:
    """The shell's status of a process ended by the signal: 128 + SIGINT or SIGTERM."""
    return 128 + (signal.SIGTERM if isinstance(stop, _Terminated) else signal.SIGINT)


def main(argv=None) -> int:
    """The ``birqa`` command: parse ``argv`` (default ``sys.argv[1:]``), run, return the exit status."""
    args = build_parser().parse_args(argv)
    # SIGTERM (kill, timeout, a job scheduler) stops the run as Ctrl-C does: rows kept, one line.
    previous = signal.signal(signal.SIGTERM, _stop)
    from birqa_jax import inputs

    pixel_limit = inputs.MAX_PIXELS  # --max-pixels holds for this run only (main may be called in-process)
    try:
        return args.func(args)
    except CliError as e:
        print(f"birqa: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # outside the scoring loop, which says more
        print("\nbirqa: interrupted", file=sys.stderr)
        return _stop_status(stop)
    except BrokenPipeError:  # stdout closed early (`birqa score ... | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("birqa: error: the output was closed before all rows were written", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        inputs.MAX_PIXELS = pixel_limit


if __name__ == "__main__":
    sys.exit(main())
