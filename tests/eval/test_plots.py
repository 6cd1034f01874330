"""Evaluation plots: valid PNGs written atomically, matplotlib imported lazily, and
``openfer evaluate --plots`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from openfer.errors import InputError
from openfer.eval.metrics import classification_report

pytest.importorskip("matplotlib")

from openfer.eval.plots import plot_confusion, plot_reliability  # noqa: E402

MODEL = Path(__file__).resolve().parents[2] / "src" / "openfer" / "models" / "fernet_s.onnx"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _probs(n: int = 200, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return p, rng.integers(0, k, n)


def _assert_png(path: Path) -> np.ndarray:
    assert path.is_file() and path.read_bytes()[:8] == PNG_MAGIC
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no temp file left
    return img


def test_plot_confusion_writes_png(tmp_path):
    p, y = _probs()
    rep = classification_report(p, y, ("neutral", "happiness", "surprise", "sadness"))
    out = plot_confusion(rep, tmp_path / "sub" / "confusion.png")
    assert out == tmp_path / "sub" / "confusion.png"
    _assert_png(out)
    # a class without samples (all-zero row) must not divide by zero
    rep["confusion"]["matrix"][0] = [0, 0, 0, 0]
    _assert_png(plot_confusion(rep, tmp_path / "zero_row.png"))


def test_plot_reliability_writes_png_and_overwrites(tmp_path):
    p, y = _probs()
    out = tmp_path / "reliability.png"
    out.write_bytes(b"old")
    assert plot_reliability(p, y, out) == out
    _assert_png(out)
    _assert_png(plot_reliability(np.zeros((0, 4)), np.zeros(0, np.int64), tmp_path / "empty.png"))


def test_plot_misuse_errors(tmp_path):
    with pytest.raises(InputError, match="expected a 'confusion' entry"):
        plot_confusion({"accuracy": 0.5}, tmp_path / "x.png")
    with pytest.raises(InputError, match=r"expected \(N, C\) and \(N,\), got \(3, 2\) and \(2,\)"):
        plot_reliability(np.ones((3, 2)) / 2, np.zeros(2, np.int64), tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def test_import_openfer_does_not_import_matplotlib():
    code = ("import sys, openfer, openfer.cli, openfer.eval.evaluate, openfer.eval.plots; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.skipif(not MODEL.is_file(), reason="src/openfer/models/fernet_s.onnx not in this checkout")
def test_cli_evaluate_imagefolder_with_plots(tmp_path, capsys):
    from openfer.cli import EXIT_OK, main

    rng = np.random.default_rng(1)
    data = tmp_path / "faces"
    for folder, n in [("Happy", 2), ("angry", 2), ("Surprised", 1), ("engagement", 1)]:
        (data / folder).mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 256, (60, 60), dtype=np.uint8)
            assert cv2.imwrite(str(data / folder / f"{i}.jpg"), img)
    plots, report = tmp_path / "plots", tmp_path / "report.json"
    rc = main(["evaluate", str(data), "--plots", str(plots), "--json", str(report)])
    assert rc == EXIT_OK
    _assert_png(plots / "confusion.png")
    _assert_png(plots / "reliability.png")
    rep = json.loads(report.read_text())
    assert rep["n"] == 5 and rep["dropped_unlabeled"] == 1 and rep["split"] is None
    assert rep["coverage"] == {
        "matched": {"happiness": 2, "surprise": 1, "anger": 2},
        "not_in_model": {"engagement": 1},
        "not_in_data": ["neutral", "sadness", "disgust", "fear", "contempt"],
        "unlabeled": 0,
    }
    assert sum(map(sum, rep["confusion"]["matrix"])) == 5
    assert not [k for k in rep if k.startswith("_")]  # nothing private leaks into the JSON
    out = capsys.readouterr().out
    assert "classes not in the model (not scored): engagement (1)" in out
    assert "model classes without samples: neutral, sadness, disgust, fear, contempt" in out
    assert f"wrote {plots / 'reliability.png'}" in out


@pytest.mark.skipif(not MODEL.is_file(), reason="src/openfer/models/fernet_s.onnx not in this checkout")
def test_score_crops_keeps_arrays_behind_the_report(tmp_path):
    from openfer.components.expression import ExpressionClassifier
    from openfer.eval.evaluate import evaluate_crops, read_dataset, score_crops

    rng = np.random.default_rng(2)
    rows = ["path,label"]
    for i, label in enumerate(["Neutral", "sad", "happy", "joy", "unknown-thing"]):
        cv2.imwrite(str(tmp_path / f"{i}.png"), rng.integers(0, 256, (48, 48), dtype=np.uint8))
        rows.append(f"{i}.png,{label}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    data = read_dataset(tmp_path)
    clf = ExpressionClassifier("fernet_s")
    ev = score_crops(data, clf)
    assert ev.classes == clf.classes and ev.probs.shape == (4, len(clf.classes))
    assert [clf.classes[i] for i in ev.labels] == ["neutral", "sadness", "happiness", "happiness"]
    assert ev.report["n"] == 4 and ev.report["dropped_unlabeled"] == 1
    np.testing.assert_allclose(ev.probs.sum(1), 1.0, atol=1e-4)
    assert evaluate_crops(data, clf) == ev.report  # the dict API is unchanged
