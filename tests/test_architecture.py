"""Imports flow one way: types/errors -> core -> runtime -> components -> pipeline -> io/draw/eval -> cli.

Checked on the source's import statements, so the picture in STYLE.md stays true.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "openfer"
LAYERS = {
    "core": {"core", "errors", "types"},
    "runtime": {"core", "errors", "types", "runtime"},
    "components": {"core", "errors", "types", "runtime", "components"},
}
HEAVY = {"torch", "pandas", "fastapi", "matplotlib", "pyarrow"}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level >= 1 and node.module:
            rel = path.relative_to(SRC).parts
            base = list(rel[:-1])[: len(rel) - node.level]
            out.add((base + node.module.split("."))[0] if base else node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level >= 1:
            out.add(path.relative_to(SRC).parts[0])
    return out


def test_layers_import_only_downwards():
    checked = 0
    for layer, allowed in LAYERS.items():
        for f in (SRC / layer).glob("*.py"):
            bad = _imports(f) - allowed
            assert not bad, f"{f.relative_to(SRC)} imports {bad}"
            checked += 1
    assert checked >= 8


def test_core_package_never_imports_heavy_modules_at_top_level():
    for f in SRC.rglob("*.py"):
        if "train" in f.parts:
            continue
        tree = ast.parse(f.read_text())
        for node in tree.body:  # module level only: lazy imports inside functions are fine
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module.split(".")[0]]
            assert not HEAVY & set(names), f"{f.relative_to(SRC)} imports {HEAVY & set(names)} at import time"


def test_pipeline_does_not_import_the_layers_above_it():
    bad = _imports(SRC / "pipeline.py") - {"components", "core", "errors", "types", "io", "runtime"}
    assert not bad, f"pipeline.py imports {bad}"
    for upper in ("cli", "service", "video", "explain", "eval", "train"):
        for f in (SRC / "core").glob("*.py"):
            assert upper not in _imports(f), f"{f.name} imports {upper}"
