"""The valence/arousal CSV reader (path,valence,arousal and AffectNet-style files): values, dropped
rows, and the error messages for malformed input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from openfer.errors import InputError, ShapeError
from openfer.eval.datasets import ValenceArousalImages, read_csv_valence_arousal


def _write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_reads_values_drops_and_counts_missing(tmp_path, caplog):
    path = _write(
        tmp_path / "va.csv",
        ["path", "valence", "arousal"],
        [["a.png", 0.5, -0.25], ["sub/b.png", "", 0.1], ["c.png", -1, 1], ["d.png", 0.2, "NaN"]],
    )
    with caplog.at_level("WARNING", logger="openfer"):
        data = read_csv_valence_arousal(path)
    assert len(data) == 2 and data.dropped == 2
    assert data.paths == (tmp_path / "a.png", tmp_path / "c.png")
    assert data.values.dtype == np.float32 and data.values.shape == (2, 2)
    np.testing.assert_allclose(data.values, [[0.5, -0.25], [-1.0, 1.0]])
    assert "2 row(s) without valence/arousal dropped" in caplog.text
    kept = data.subset(np.array([False, True]))
    assert kept.paths == (tmp_path / "c.png",) and kept.values.tolist() == [[-1.0, 1.0]]


def test_affectnet_style_columns_and_not_applicable(tmp_path):
    path = _write(
        tmp_path / "training.csv",
        ["subDirectory_filePath", "face_x", "expression", "valence", "arousal"],
        [["1/x.jpg", 0, 1, 0.7, 0.3], ["1/y.jpg", 0, 9, -2, -2], ["2/z.jpg", 0, 6, -0.6, 0.8]],
    )
    data = read_csv_valence_arousal(path, image_root=tmp_path / "images")
    assert data.dropped == 1
    assert data.paths == (tmp_path / "images" / "1" / "x.jpg", tmp_path / "images" / "2" / "z.jpg")
    np.testing.assert_allclose(data.values, [[0.7, 0.3], [-0.6, 0.8]], rtol=1e-6)


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        (
            ["path", "valence", "arousal"],
            [["a.png", 0.1, 0.1], ["b.png", "high", 0.1]],
            "bad.csv:3: valence must be a number in \\[-1, 1\\], got 'high'",
        ),
        (
            ["path", "valence", "arousal"],
            [["a.png", 0.1, 1.5]],
            "bad.csv:2: arousal must be in \\[-1, 1\\], got '1.5'",
        ),
        (["path", "valence", "arousal"], [["a.png", "inf", 0.1]], "bad.csv:2: valence must be in"),
        (["path", "valence"], [["a.png", 0.1]], "missing column\\(s\\) arousal"),
        (["name", "valence", "arousal"], [["a.png", 0.1, 0.1]], "needs a 'path' column"),
        (
            ["path", "valence", "arousal"],
            [["a.png", "", 0.1]],
            "no rows with both valence and arousal \\(1 dropped\\)",
        ),
        (["path", "valence", "arousal"], [["", 0.1, 0.1]], "bad.csv:2: empty image path"),
        (["path", "valence", "arousal"], [["a.png", 0.1]], "bad.csv:2: expected 3 columns, got 2"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, header, rows, message):
    path = _write(tmp_path / "bad.csv", header, rows)
    with pytest.raises(InputError, match=message):
        read_csv_valence_arousal(path)


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_csv_valence_arousal(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="empty file"):
        read_csv_valence_arousal(tmp_path / "empty.csv")


def test_container_validates_shape_and_range():
    with pytest.raises(ShapeError, match="values: expected shape \\(1, 2\\), got \\(1, 3\\)"):
        ValenceArousalImages((Path("a.png"),), np.zeros((1, 3)), name="x")
    with pytest.raises(InputError, match="in \\[-1, 1\\]"):
        ValenceArousalImages((Path("a.png"),), np.array([[0.0, 1.2]]), name="x")
