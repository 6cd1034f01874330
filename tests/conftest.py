"""Shared fixtures: real photos in tests/assets, one Analyzer per session, golden-file handling.

Regenerate golden outputs after a deliberate model change with ``pytest --regen-golden``; a failing
golden comparison writes the actual annotated image to ``tests/_failures/`` for inspection.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ASSETS = Path(__file__).parent / "assets"
PHOTOS = ASSETS / "photos"
GOLDEN = ASSETS / "golden"
FAILURES = Path(__file__).parent / "_failures"


def pytest_addoption(parser):
    parser.addoption("--regen-golden", action="store_true", help="rewrite tests/assets/golden/*.json")


@pytest.fixture(scope="session")
def analyzer():
    from openfer.pipeline import Analyzer

    return Analyzer()


@pytest.fixture(scope="session")
def regen(request) -> bool:
    return bool(request.config.getoption("--regen-golden"))


def load_or_write_golden(name: str, actual: dict, regen: bool) -> dict:
    path = GOLDEN / f"{name}.json"
    if regen or not path.exists():
        if not regen:
            pytest.fail(f"golden file {path} missing: run pytest --regen-golden once and review it")
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(actual, indent=1) + "\n")
    return json.loads(path.read_text())


_HOLD = """
import sys
from openfer.io.lock import FolderLock
with FolderLock(sys.argv[1], command="holder test"):
    print("held", flush=True)
    sys.stdin.readline()
"""


@contextlib.contextmanager
def held_elsewhere(folder):
    """Another process holding ``folder``'s lock (as a running job would) until the block ends; yields
    its pid. Its lock file names the command ``holder test``."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "held\n"
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
