"""Imports flow one way: the layers are an import-linter contract in pyproject.toml (run here and
in CI); this file adds what the contract cannot say (no heavy dependency at import time)."""

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "openfer"
HEAVY = {"torch", "pandas", "fastapi", "matplotlib", "pyarrow"}


def test_import_contract_holds():
    """The layers of pyproject's [tool.importlinter] (CI runs ``lint-imports`` too)."""
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter not installed (pip install import-linter)")
    p = subprocess.run([exe, "--no-cache"], cwd=SRC.parent.parent, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-3000:]


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
