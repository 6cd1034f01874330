"""Atomic writers: all-or-nothing, usual permissions."""

import os
import stat

import pytest

from openfer.io.tables import atomic_open, write_csv, write_json


def test_atomic_open_replaces_in_one_step_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_open(target) as fh:
        fh.write("first")
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "first"  # the old content survives
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]  # no temp file left


def test_outputs_get_umask_permissions_not_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        write_json({"a": 1}, tmp_path / "r.json")
        write_csv([{"a": 1}], tmp_path / "r.csv")
    finally:
        os.umask(old)
    for name in ("r.json", "r.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
