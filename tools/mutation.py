"""Mutation campaign over the core modules: does the suite notice a one-line bug?

Each mutant is one small change to one line of a core module (an operator, a comparison, a
number, a boolean, the order of two call arguments, a dropped keyword argument). It is written
into a copy of the working tree (``.mutation/tree-<pid>``; the checkout is never edited) and the
tests that execute the changed line run against it: a failing, erroring or hanging run kills the
mutant, a passing one lets it survive. Mutants that survive the covering tests run again against
the whole test files those tests live in (jit caches and session fixtures mean a test can depend
on a line that only an earlier test executed).

Commands (``tools/mutation.sh`` runs them at the lowest CPU priority):

  list    [MODULE...]   the campaign's mutants (the sample) with their ids
  run     [MODULE...]   run the mutants not run yet; ``--retest`` also reruns the survivors,
                        ``--only ID...`` runs just those (``--tests NODEID...``: with these tests)
  report                write tools/mutation/REPORT.md from the results

The campaign is a fixed random sample (``--seed``, the per-module sizes in ``TARGETS``) of every
mutant the operators generate, so a rerun on unchanged sources picks the same mutants; a
mutant's id hashes its module, line, operator and text, so an edited module gives new ids and
its old results drop out of the report. Results are appended to tools/mutation/results.jsonl one
line per run (the latest line of an id counts), so an interrupted run resumes where it stopped.
Equivalent mutants (no input can tell them from the original) are listed with a one-line
argument in tools/mutation/equivalent.json, survivors left unanswered with the reason in
tools/mutation/survivors.json.

Test selection: each candidate test file of a module runs once under coverage (package
``coverage``, found on PYTHONPATH; tools/mutation.sh puts ``.mutdeps`` there) with the coverage
context switched to the test's node id at its setup, so a line maps to the tests that executed it
in-process; lines run only at import time select the module's whole candidate files. Tests that
fail on the unmutated tree are left out. Code run in subprocesses (the CLI tests) is not traced.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, ".mutation")
TREE = os.path.join(WORK, f"tree-{os.getpid()}")  # one per process: campaigns on other modules can run beside
COVERAGE = os.path.join(WORK, "coverage")
OUT = os.path.join(ROOT, "tools", "mutation")
RESULTS = os.path.join(OUT, "results.jsonl")
EQUIVALENT = os.path.join(OUT, "equivalent.json")
SURVIVORS = os.path.join(OUT, "survivors.json")  # why a survivor is left unanswered
REPORT = os.path.join(OUT, "REPORT.md")


@dataclass(frozen=True)
class Target:
    tests: tuple[str, ...]  # the test files that exercise the module directly
    sample: int  # mutants drawn from the module


TARGETS = {
    "birqa_jax/model/features.py": Target(("tests/test_features.py", "tests/test_model.py", "tests/test_unit_facts.py"),
                                          20),
    "birqa_jax/model/pyramid.py": Target(("tests/test_model.py", "tests/test_gem.py", "tests/test_unit_facts.py"), 20),
    # test_registry.py checks every metric's input errors (which image, which metric) in both modes.
    "birqa_jax/classical/float_mode.py": Target(
        ("tests/test_baselines.py", "tests/test_classical_reference.py", "tests/test_registry.py"), 10),
    "birqa_jax/classical/reference_mode.py": Target(
        ("tests/test_classical_reference.py", "tests/test_baselines.py", "tests/test_registry.py"), 10),
    "birqa_jax/adversarial/attacks.py": Target(("tests/test_attacks.py",), 20),
    "birqa_jax/train/step.py": Target(("tests/test_training.py", "tests/test_losses.py"), 15),
    "birqa_jax/train/losses.py": Target(("tests/test_losses.py",), 15),
    "birqa_jax/data/pipeline.py": Target(("tests/test_data_pipeline.py",), 10),
    "birqa_jax/evaluation/stats.py": Target(("tests/test_evaluation.py", "tests/test_losses.py"), 15),
    "birqa_jax/evaluation/paired.py": Target(("tests/test_study.py",), 10),
    "birqa_jax/inputs.py": Target(("tests/test_inputs.py", "tests/test_metric.py"), 10),
    "birqa_jax/data/distortions.py": Target(("tests/test_distortions.py",), 15),
    "birqa_jax/imageops.py": Target(("tests/test_features.py", "tests/test_baselines.py", "tests/test_vsi.py"), 15),
    "birqa_jax/classical/vsi.py": Target(("tests/test_vsi.py",), 10),
    "birqa_jax/classical/mad.py": Target(("tests/test_mad.py",), 10),
    "birqa_jax/classical/registry.py": Target(("tests/test_registry.py", "tests/test_classical_reference.py"), 5),
    "birqa_jax/evaluation/robustness.py": Target(("tests/test_robust_eval.py",), 10),
    "birqa_jax/classical/fsim.py": Target(("tests/test_classical_fr.py",), 8),
    "birqa_jax/classical/vif.py": Target(("tests/test_classical_fr.py",), 8),
}

# ---------------------------------------------------------------------------------------------
# Mutants

_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
          ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd}
_CMPOP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
          ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
# Calls whose arguments only shape a message: a change there is no bug in a value.
_MESSAGE_CALLS = {"print", "warn", "info", "debug", "warning", "error", "exception", "log", "write", "set_description",
                  "set_postfix", "set_postfix_str"}

# Calls whose two first arguments are not swapped: builtins whose swapped arguments no one writes
# by mistake (and that fail at once), and symmetric functions (an equivalent mutant).
_NO_SWAP = {"isinstance", "issubclass", "getattr", "setattr", "hasattr", "max", "min", "maximum", "minimum"}


@dataclass(frozen=True)
class Mutant:
    id: str
    module: str
    line: int
    op: str
    before: str  # the source text the mutant replaces (its first line, for the report)
    after: str
    span: tuple[int, int, int, int]  # lineno, col_offset, end_lineno, end_col_offset (UTF-8 bytes)

    def apply(self, source: str) -> str:
        lines = source.encode().split(b"\n")
        l0, c0, l1, c1 = self.span
        head, tail = lines[l0 - 1][:c0], lines[l1 - 1][c1:]
        lines[l0 - 1:l1] = [head + self.after.encode() + tail]
        return b"\n".join(lines).decode()


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _skipped(tree: ast.Module) -> set[int]:
    """ids of nodes no mutant touches: docstrings, annotations, f-strings, raise statements and
    the arguments of message calls (their text is no value), ``__all__``."""
    skip: set[int] = set()

    def drop(node):
        skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            drop(body[0])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for a in (node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                      + [node.args.vararg, node.args.kwarg]):
                if a is not None and a.annotation is not None:
                    drop(a.annotation)
            if node.returns is not None:
                drop(node.returns)
        elif isinstance(node, ast.AnnAssign):
            drop(node.annotation)
        elif isinstance(node, (ast.JoinedStr, ast.Raise)):
            drop(node)
        elif isinstance(node, ast.Call) and _call_name(node) in _MESSAGE_CALLS:
            drop(node)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            drop(node)
    return skip


def _variants(node: ast.AST):
    """(operator name, replacement node or source text) for each mutant of ``node``."""
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BINOP:
        new = copy.deepcopy(node)
        new.op = _BINOP[type(node.op)]()
        yield ("augassign" if isinstance(node, ast.AugAssign) else "binop"), new
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in _CMPOP:
                new = copy.deepcopy(node)
                new.ops[i] = _CMPOP[type(op)]()
                yield "compare", new
    elif isinstance(node, ast.BoolOp):
        new = copy.deepcopy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield "boolop", new
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        yield ("not" if isinstance(node.op, ast.Not) else "negate"), node.operand
    elif isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool):
            yield "bool", repr(not v)
        elif isinstance(v, (int, float)):
            yield "number", repr(v + 1)
    elif isinstance(node, ast.Call):
        if len(node.args) >= 2 and not any(isinstance(a, ast.Starred) for a in node.args[:2]) \
                and not all(isinstance(a, ast.Constant) for a in node.args[:2]) \
                and ast.dump(node.args[0]) != ast.dump(node.args[1]) and _call_name(node) not in _NO_SWAP:
            new = copy.deepcopy(node)
            new.args[0], new.args[1] = new.args[1], new.args[0]
            yield "swap_args", new
        for i, kw in enumerate(node.keywords):
            if kw.arg is not None:
                new = copy.deepcopy(node)
                del new.keywords[i]
                yield f"drop_kwarg:{kw.arg}", new


def mutants(module: str, source: str | None = None) -> list[Mutant]:
    """Every mutant of ``module`` (a path relative to the repository), in source order."""
    source = open(os.path.join(ROOT, module)).read() if source is None else source
    tree = ast.parse(source)
    skip = _skipped(tree)
    lines = source.encode().split(b"\n")
    found = []
    for node in ast.walk(tree):
        if id(node) in skip or not hasattr(node, "end_col_offset"):
            continue
        for op, new in _variants(node):
            after = new if isinstance(new, str) else "(" + ast.unparse(new) + ")"
            l0, c0, l1, c1 = node.lineno, node.col_offset, node.end_lineno, node.end_col_offset
            if isinstance(node, ast.AugAssign):  # a statement: no parentheses
                after = ast.unparse(new)
            before = lines[l0 - 1][c0:c1 if l0 == l1 else None].decode()
            key = f"{module}\0{l0}\0{c0}\0{op}\0{after}"
            m = Mutant(hashlib.sha1(key.encode()).hexdigest()[:10], module, l0, op, before, after, (l0, c0, l1, c1))
            try:
                compile(m.apply(source), module, "exec")
            except SyntaxError:
                continue
            found.append(m)
    found.sort(key=lambda m: (m.line, m.span[1], m.op, m.after))
    return found


def sample(module: str, seed: int) -> list[Mutant]:
    every = mutants(module)
    k = min(TARGETS[module].sample, len(every))
    chosen = random.Random(f"{seed}:{module}").sample(range(len(every)), k)
    return [every[i] for i in sorted(chosen)]


# ---------------------------------------------------------------------------------------------
# The copy of the tree, coverage, running tests


def _sha(*paths: str) -> str:
    """Hash of files of the copy of the tree (what its tests run)."""
    h = hashlib.sha1()
    for p in paths:
        with open(os.path.join(TREE, p), "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:12]


def make_tree(tests_at: str | None = None):
    """Copy the working tree's files (tracked, and untracked but not ignored) to TREE; with
    ``tests_at``, the tests folder as of that git revision (to measure an earlier suite)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\n")
    shutil.rmtree(TREE, ignore_errors=True)
    for f in filter(None, files):
        src = os.path.join(ROOT, f)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(TREE, f)), exist_ok=True)
            shutil.copy2(src, os.path.join(TREE, f))
    if tests_at:
        shutil.rmtree(os.path.join(TREE, "tests"))
        archive = subprocess.run(["git", "archive", tests_at, "tests"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", TREE], input=archive, check=True)


def _env(extra_path: str = "") -> dict:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    # The tree's package first: an installed (editable) birqa_jax must not stand in for it, in
    # pytest's process or in the subprocesses tests start.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [TREE, extra_path, os.environ.get("PYTHONPATH", "")]))
    return env


def _pytest(args: list[str], timeout: float, env: dict, prefix: tuple[str, ...] = ("-m", "pytest")):
    """(returncode or None on timeout, seconds, last lines of output)."""
    cmd = [sys.executable, *prefix, "-q", "-n", "0", "-p", "no:cacheprovider", *args]
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=TREE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        rc = None
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): the tests' process group goes too
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return rc, time.time() - t0, "\n".join(out.strip().split("\n")[-3:])


class CoveragePlugin:
    """pytest plugin: the coverage context of each test is its node id, from its setup on; the
    node ids that fail on the unmutated tree go to $MUTATION_FAILED."""

    def __init__(self):
        import coverage

        self.cov = coverage.Coverage.current()
        self.failed = []

    def pytest_runtest_setup(self, item):
        self.cov.switch_context(item.nodeid)

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.failed.append(report.nodeid)

    def pytest_sessionfinish(self):
        with open(os.environ["MUTATION_FAILED"], "w") as f:
            json.dump(self.failed, f)


def pytest_configure(config):  # this file as a pytest plugin (-p mutation) under coverage
    config.pluginmanager.register(CoveragePlugin(), "mutation-coverage")


def coverage_map(test_file: str, timeout: float) -> dict:
    """{"lines": {module: {line: [node ids]}}, "failed": [node ids]} of one test file, computed
    once per content of the test file, its conftest and the target modules."""
    key = _sha(test_file, "tests/conftest.py", *TARGETS)
    path = os.path.join(COVERAGE, f"{os.path.basename(test_file)}-{key}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    os.makedirs(COVERAGE, exist_ok=True)
    data_file, failed_file = path[:-5] + ".coverage", path[:-5] + ".failed"
    include = ",".join(os.path.join(TREE, m) for m in TARGETS)
    env = _env(os.path.dirname(os.path.abspath(__file__)))
    env["MUTATION_FAILED"] = failed_file
    print(f"coverage of {test_file} ...", flush=True)
    rc, seconds, tail = _pytest(["-p", "mutation", test_file], timeout, env,
                                prefix=("-m", "coverage", "run", f"--data-file={data_file}", f"--include={include}",
                                        "-m", "pytest"))
    if rc is None or not os.path.exists(failed_file):
        raise SystemExit(f"coverage run of {test_file} did not finish (rc {rc}):\n{tail}")
    import coverage

    data = coverage.CoverageData(basename=data_file)
    data.read()
    lines = {os.path.relpath(measured, TREE): {str(line): sorted(ctxs) for line, ctxs in
                                                data.contexts_by_lineno(measured).items()}
             for measured in data.measured_files()}
    with open(failed_file) as f:
        failed = json.load(f)
    result = {"lines": lines, "failed": failed, "seconds": round(seconds, 1)}
    with open(path, "w") as f:
        json.dump(result, f)
    print(f"  {seconds:.0f} s, {len(failed)} failing on the unmutated tree", flush=True)
    return result


def _selection(m: Mutant, maps: dict[str, dict]) -> tuple[list[str], list[str]]:
    """(covering node ids, their test files) for a mutant; an import-time line selects the
    candidate files whole."""
    ids, files = set(), set()
    for test_file, cov in maps.items():
        by_line = cov["lines"].get(m.module, {})
        for line in range(m.span[0], m.span[2] + 1):
            for ctx in by_line.get(str(line), ()):
                if ctx == "":
                    files.add(test_file)
                elif ctx not in cov["failed"]:
                    ids.add(ctx)
                    files.add(ctx.split("::")[0])
    whole = sorted(f for f in files if not any(i.startswith(f + "::") for i in ids))
    return sorted(ids) + whole, sorted(files)


def _deselect(maps: dict[str, dict]) -> list[str]:
    return [arg for cov in maps.values() for nodeid in cov["failed"] for arg in ("--deselect", nodeid)]


def run_mutant(m: Mutant, maps: dict[str, dict], timeout: float, tests: list[str]) -> dict:
    path = os.path.join(TREE, m.module)
    with open(path) as f:
        original = f.read()
    selected, files = (tests, tests) if tests else _selection(m, maps)
    record = {"id": m.id, "module": m.module, "line": m.line, "op": m.op, "before": m.before, "after": m.after}
    if not selected:
        return record | {"status": "survived", "reason": "no candidate test executes the line", "tests": []}
    env = _env()
    try:
        with open(path, "w") as f:
            f.write(m.apply(original))
        stages = [("covering", selected)]
        if files != selected:
            stages.append(("files", files))
        total = 0.0
        for stage, args in stages:
            rc, seconds, tail = _pytest(["-x", *_deselect(maps), *args], timeout, env)
            total += seconds
            if rc is None:
                return record | {"status": "timeout", "stage": stage, "seconds": round(total, 1), "tests": args}
            if rc != 0:
                status = "killed" if rc in (1, 2) else "error"
                return record | {"status": status, "stage": stage, "rc": rc, "seconds": round(total, 1), "tests": args,
                                 "output": tail}
        return record | {"status": "survived", "seconds": round(total, 1), "tests": files}
    finally:
        with open(path, "w") as f:
            f.write(original)


def latest(first: bool = False) -> dict[str, dict]:
    """id -> the latest result of each mutant run (the first one with ``first``)."""
    out = {}
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    if not (first and r["id"] in out):
                        out[r["id"]] = r
    return out


def cmd_run(modules: list[str], seed: int, timeout: float, retest: bool, limit: int | None, only: list[str],
            tests: list[str], tests_at: str | None):
    make_tree(tests_at)
    done = latest()
    todo = []
    for module in modules:
        for m in sample(module, seed):
            r = done.get(m.id)
            if m.id in only if only else r is None or (retest and r["status"] == "survived"):
                if tests and r is None:  # what the suite does to it comes first
                    print(f"{m.id} skipped: --tests answers a mutant the suite has run", flush=True)
                    continue
                todo.append(m)
    todo = todo[:limit] if limit else todo
    print(f"{len(todo)} mutants to run", flush=True)
    maps_by_module = {}
    os.makedirs(OUT, exist_ok=True)
    for n, m in enumerate(todo):
        if m.module not in maps_by_module:
            maps_by_module[m.module] = ({} if tests else
                                        {t: coverage_map(t, timeout * 10) for t in TARGETS[m.module].tests})
        r = run_mutant(m, maps_by_module[m.module], timeout, tests)
        r["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with open(RESULTS, "a") as f:
            f.write(json.dumps(r) + "\n")
        print(f"[{n + 1}/{len(todo)}] {r['status']:8s} {m.module}:{m.line} {m.op} {m.before!r} -> {m.after!r}"
              f" ({r.get('seconds', 0):.0f} s)", flush=True)


# ---------------------------------------------------------------------------------------------
# Report


def _figures(counts) -> str:
    real = counts[6]
    return "".join(f" | {100 * k / real:.0f}%" if real else " | -" for k in (counts[2], counts[7])) + " |"


def cmd_report(seed: int):
    done, first = latest(), latest(first=True)
    equivalent, reasons = {}, {}
    if os.path.exists(EQUIVALENT):
        with open(EQUIVALENT) as f:
            equivalent = json.load(f)
    if os.path.exists(SURVIVORS):
        with open(SURVIVORS) as f:
            reasons = json.load(f)
    rows, survivors, equivalents, answered = [], [], [], []
    totals = [0] * 8
    for module in TARGETS:
        chosen = sample(module, seed)
        results = [done[m.id] for m in chosen if m.id in done]
        killed = sum(r["status"] in ("killed", "timeout", "error") for r in results)
        eq = [r for r in results if r["status"] == "survived" and r["id"] in equivalent]
        left = [r for r in results if r["status"] == "survived" and r["id"] not in equivalent]
        late = [r for r in results if r["status"] != "survived" and first[r["id"]]["status"] == "survived"]
        real = len(results) - len(eq)
        counts = [len(chosen), len(results), killed, len(late), len(eq), len(left), real, killed - len(late)]
        totals = [a + b for a, b in zip(totals, counts)]
        rows.append(f"| `{module}` | {len(mutants(module))} | " + " | ".join(map(str, counts[:6])) + _figures(counts))
        survivors += left
        equivalents += eq
        answered += late
    rows.append("| all | | " + " | ".join(map(str, totals[:6])) + _figures(totals))

    def line(r, why):
        return f"- `{r['id']}` {r['module']}:{r['line']} {r['op']}: `{r['before']}` -> `{r['after']}`: {why}"

    def killer(r):
        failed = [w for w in r.get("output", "").split() if w.startswith("tests/") and "::" in w]
        return f"`{failed[0]}`" if failed else "the tests of " + ", ".join(r.get("tests", []))

    text = [
        "# Mutation campaign",
        "",
        "Written by `tools/mutation.sh report` from `results.jsonl` (one line per mutant run; the latest",
        "counts) and `equivalent.json` (mutants argued equivalent). How the mutants are made and run:",
        "the docstring of `tools/mutation.py`. Killed counts timeouts and errors too; \"new tests\" are",
        "the killed mutants that survived the suite as it was when they were first run. The kill",
        "rates are killed / (run - equivalent): now, and by the suite before the new tests.",
        "",
        f"Sample seed {seed}.",
        "",
        "| module | mutants generated | sampled | run | killed | by new tests | equivalent | survived "
        "| killed of non-equivalent | before the new tests |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "## Survivors killed by a test added afterwards",
        "",
        *(line(r, "killed by " + killer(r)) for r in answered),
        *([] if answered else ["none"]),
        "",
        "## Equivalent mutants",
        "",
        *(line(r, equivalent[r["id"]]) for r in equivalents),
        *([] if equivalents else ["none"]),
        "",
        "## Survivors",
        "",
        *(line(r, reasons.get(r["id"], r.get("reason", "the tests of " + ", ".join(r.get("tests", [])) + " pass")))
          for r in survivors),
        *([] if survivors else ["none"]),
        "",
    ]
    with open(REPORT, "w") as f:
        f.write("\n".join(text))
    print("\n".join(rows))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=["list", "run", "report"])
    p.add_argument("modules", nargs="*", help="module paths (default: every target)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per test run of a mutant")
    p.add_argument("--retest", action="store_true", help="rerun the mutants whose latest result is 'survived'")
    p.add_argument("--limit", type=int, help="run at most this many mutants")
    p.add_argument("--only", nargs="+", default=[], metavar="ID", help="run these mutants (again), nothing else")
    p.add_argument("--tests-at", metavar="REV", help="run the tests folder as of this git revision (an earlier suite)")
    p.add_argument("--tests", nargs="+", default=[], metavar="NODEID",
                   help="with --only: run these tests instead of the covering ones (a test written to kill them)")
    a = p.parse_args()
    modules = a.modules or list(TARGETS)
    unknown = set(modules) - set(TARGETS)
    if unknown:
        p.error(f"not a target module: {', '.join(sorted(unknown))}")
    if a.command == "list":
        done = latest()
        for module in modules:
            every = mutants(module)
            chosen = sample(module, a.seed)
            print(f"# {module}: {len(chosen)} of {len(every)} mutants")
            for m in chosen:
                status = done.get(m.id, {}).get("status", "-")
                print(f"{m.id} {status:8s} {m.line:4d} {m.op:18s} {m.before!r} -> {m.after!r}")
    elif a.command == "run":
        if a.tests and not a.only:
            p.error("--tests needs --only")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            cmd_run(modules, a.seed, a.timeout, a.retest, a.limit, a.only, a.tests, a.tests_at)
        finally:
            shutil.rmtree(TREE, ignore_errors=True)
    else:
        cmd_report(a.seed)


if __name__ == "__main__":
    main()
