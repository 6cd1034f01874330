"""Atomic writers: all-or-nothing, usual permissions; streamed JSON and CSV equal the whole ones."""

import os
import stat

import numpy as np
import pytest

from openfer.io.tables import atomic_open, columns_of, write_csv, write_json, write_json_stream


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


@pytest.mark.parametrize("items", [[], [{"a": 1, "b": [1.5, {"c": "x\ny"}], "e": {}, "f": []}],
                                   [{"a": np.float32(0.25), "s": "é\t"}, {}, [], "text", {"z": None}]])
def test_streamed_json_is_byte_identical_to_the_whole_document(tmp_path, items):
    head = {"openfer": "0.1", "classes": ["neutral", "happiness"]}
    write_json({**head, "images": items}, tmp_path / "whole.json")
    write_json_stream(head, "images", iter(items), tmp_path / "streamed.json")
    assert (tmp_path / "streamed.json").read_bytes() == (tmp_path / "whole.json").read_bytes()


def test_csv_from_an_iterator_with_columns_equals_csv_from_a_list(tmp_path):
    records = [{"source": "a", "x": 1}, {"source": "b", "y": [1, 2]}, {"source": "c"}]
    write_csv(records, tmp_path / "list.csv")
    write_csv(iter(records), tmp_path / "iter.csv", columns_of(iter(records)))
    assert (tmp_path / "iter.csv").read_bytes() == (tmp_path / "list.csv").read_bytes()
    assert (tmp_path / "list.csv").read_text().splitlines()[0] == "source,x,y"
