"""The package's layers import in one direction only: a module may import from its own part
and from parts of lower layers, never from a higher layer or a sibling part of its own layer.

The layers, lowest first (README, "Architecture"):

    inputs, imageops, files, parallel, version
      -> model, classical, adversarial, data      (independent of each other: the baselines, the
                                                   attacks and the data never import the model)
      -> runs -> evaluation -> train -> metric -> cli, absl_entry -> birqa_jax

Imports are read from the source (every ``import`` and ``from ... import`` statement, including
those inside functions), so an import that only runs on some code path counts too.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = "birqa_jax"
ROOT = pathlib.Path(__file__).resolve().parents[1] / PACKAGE
LAYERS = {
    "inputs": 0,
    "imageops": 0,
    "files": 0,
    "parallel": 0,
    "version": 0,
    "model": 1,
    "classical": 1,
    "adversarial": 1,
    "data": 1,
    "runs": 2,
    "evaluation": 3,
    "train": 4,
    "metric": 5,
    "cli": 6,
    "absl_entry": 6,
    "": 7,  # the package's __init__: the public face
}


def _part(module: str) -> str:
    """``birqa_jax.model.features`` -> ``model``; the package itself -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(tree: ast.AST, module: str, is_package: bool, package: str) -> list[tuple[int, str]]:
    """(line, imported module) of every import of ``package`` in ``tree``; ``from X import y``
    counts as importing ``X.y`` when ``y`` is a submodule, else ``X``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == package]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != package:
                continue
            for a in node.names:
                found.append((node.lineno, f"{base}.{a.name}" if base == package else base))
    return found


def import_violations(root: pathlib.Path, layers: dict[str, int]) -> list[str]:
    """Every import under ``root`` (a package folder) that goes up or sideways in ``layers``."""
    package = root.name
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        here = _part(module)
        if here not in layers:
            problems.append(f"{path}: part {here!r} has no layer; add it to the layer table")
            continue
        tree = ast.parse(path.read_text(), str(path))
        for line, target in _imported(tree, module, path.name == "__init__.py", package):
            there = _part(target)
            if there == here:
                continue
            if there not in layers:
                problems.append(f"{path}:{line} imports {target}, whose part {there!r} has no layer")
            elif layers[there] >= layers[here]:
                problems.append(f"{path}:{line}: {here or package} (layer {layers[here]}) imports {target} "
                                f"(layer {layers[there]}); imports must go to lower layers only")
    return problems


def test_imports_go_to_lower_layers_only():
    assert ROOT.is_dir()
    assert import_violations(ROOT, LAYERS) == []


def test_baselines_attacks_and_data_never_import_the_model():
    """Stated on its own, apart from the table: the classical metrics, the attacks and the data
    sets build on the image operations and the input path only, never on the network."""
    found = []
    for part in ("classical", "adversarial", "data"):
        for path in sorted((ROOT / part).rglob("*.py")):
            module = _module_name(path, ROOT)
            tree = ast.parse(path.read_text(), str(path))
            found += [f"{path}:{line}: {target}" for line, target in _imported(tree, module, path.name == "__init__.py",
                                                                               PACKAGE) if _part(target) == "model"]
    assert found == []


def test_every_part_of_the_package_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert parts == set(LAYERS) - {""}


def _tree(tmp_path: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


_TOY_LAYERS = {"low": 0, "mid": 1, "side": 1, "high": 2, "": 3}


@pytest.mark.parametrize(
    "text",
    [
        "from pkg.high import thing\n",
        "import pkg.high.thing\n",
        "from pkg import high\n",
        "def f():\n    from pkg.high import thing\n",  # inside a function counts too
        "from pkg.side import thing\n",  # a sibling of the same layer
        "from pkg import score\n",  # a name of the public face
        "from ..high import thing\n",  # relative
    ],
)
def test_an_import_of_a_higher_or_sibling_layer_is_caught(tmp_path, text):
    root = _tree(tmp_path, {"__init__.py": "", "low.py": "", "high/__init__.py": "", "high/thing.py": "",
                            "side/__init__.py": "", "side/thing.py": "", "mid/__init__.py": "",
                            "mid/a.py": text})
    problems = import_violations(root, _TOY_LAYERS)
    assert len(problems) == 1 and "mid/a.py" in problems[0], problems


def test_downward_and_internal_imports_pass(tmp_path):
    root = _tree(tmp_path, {"__init__.py": "from pkg.high import thing\n", "low.py": "import os\n",
                            "high/__init__.py": "", "high/thing.py": "from pkg.mid import a\nfrom pkg.high import b\n",
                            "high/b.py": "from . import thing\nfrom pkg import low\n",
                            "mid/__init__.py": "", "mid/a.py": "import pkg.low\n", "side/__init__.py": ""})
    assert import_violations(root, _TOY_LAYERS) == []
