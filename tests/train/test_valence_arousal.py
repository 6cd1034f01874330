"""Valence/arousal regression end to end (needs the [train] extra): a tiny synthetic CSV where V/A is
a function of the image, `openfer train --task va`, CCC on the validation split, the exported ONNX
in `Analyzer(va_model=...)` on a real photo; the CCC loss; task detection."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from openfer.cli import main  # noqa: E402
from openfer.errors import ModelError  # noqa: E402
from openfer.eval.metrics import ccc  # noqa: E402
from openfer.train.cli import guess_task  # noqa: E402
from openfer.train.objectives import ValenceArousal, batch_ccc  # noqa: E402

PHOTO = Path(__file__).resolve().parents[1] / "assets" / "photos" / "single_face.jpg"


def _write_va_set(root: Path, n: int = 192, seed: int = 0) -> tuple[Path, np.ndarray]:
    """Gray images whose top half's brightness is the valence and bottom half's the arousal."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    va = rng.uniform(-0.9, 0.9, (n, 2)).round(3)
    with open(root / "va.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "valence", "arousal"])
        for i, (v, a) in enumerate(va):
            img = np.empty((48, 48))
            img[:24] = 128 + 110 * v
            img[24:] = 128 + 110 * a
            img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / f"{i}.png"), img)
            w.writerow([f"{i}.png", v, a])
        w.writerow(["missing.png", "", 0.5])  # no valence: dropped and counted
    return root / "va.csv", va


@pytest.fixture(scope="module")
def va_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("va")
    data, _ = _write_va_set(tmp / "data")
    out = tmp / "run"
    rc = main(
        [
            "train",
            str(data),
            "--task",
            "va",
            "--out",
            str(out),
            "--arch",
            "fernet_xs",
            "--epochs",
            "3",
            "--batch-size",
            "16",
            "--lr",
            "0.05",
            "--threads",
            "1",
            "--template-images",
            "10",
            "--valid-fraction",
            "0.25",
        ]
    )
    assert rc == 0
    return out


def test_training_reaches_ccc_and_writes_run(va_run):
    summary = json.loads((va_run / "summary.json").read_text())
    assert summary["epochs"] == 3 and summary["dropped_rows"] == {"train": 1}
    assert summary["config"]["task"] == "valence_arousal" and summary["config"]["mix_p"] == 0.0
    rep = summary["valid"]
    assert rep["n"] == 48
    assert rep["ccc"]["valence"] > 0.5 and rep["ccc"]["arousal"] > 0.5, rep
    assert set(rep["rmse"]) == {"valence", "arousal"}
    assert summary["best_valid_ccc"] == pytest.approx(rep["ccc_mean"], abs=1e-4)
    log = (va_run / "log.csv").read_text().splitlines()
    assert len(log) == 4 and log[0].split(",")[3:6] == ["valid_ccc", "valid_ccc_valence", "valid_ccc_arousal"]


def test_exported_model_spec_and_crops(va_run):
    from openfer.components.valence_arousal import ValenceArousalRegressor

    reg = ValenceArousalRegressor(str(va_run / "fernet_xs.onnx"), threads=1)
    spec = reg.model.spec
    assert spec["task"] == "valence_arousal" and spec["outputs"] == ["valence", "arousal"]
    assert {"template", "template_index", "size", "mean", "std", "valid_ccc", "valid_rmse"} <= set(spec)
    # the exported model on the synthetic images themselves agrees with their targets
    data, va = _write_va_set(va_run.parent / "check", n=64, seed=5)
    crops = np.stack([cv2.imread(str(data.parent / f"{i}.png"), cv2.IMREAD_GRAYSCALE) for i in range(64)])
    pred = reg.predict_crops(crops)
    assert pred.shape == (64, 2) and (np.abs(pred) <= 1).all()
    assert (ccc(pred, va) > 0.5).all()
    assert reg.predict_crops(np.zeros((0, 48, 48), np.uint8)).shape == (0, 2)


def test_analyzer_with_va_model_on_a_real_photo(va_run, analyzer):
    from openfer.pipeline import Analyzer

    onnx_path = str(va_run / "fernet_xs.onnx")
    with_model = Analyzer(va_model=onnx_path, threads=1).analyze(PHOTO)
    assert len(with_model.faces) == 1
    va = with_model.faces.valence_arousal
    assert with_model.faces.va_source == "model" and va.shape == (1, 2) and (np.abs(va) <= 1).all()
    rec = with_model.to_records()[0]
    assert rec["va_source"] == "model" and rec["valence"] == pytest.approx(float(va[0, 0]))
    assert "valence_arousal" in with_model.timings
    # the default stays the derived circumplex values
    default = analyzer.analyze(PHOTO)
    assert default.faces.va_source == "derived" and default.to_records()[0]["va_source"] == "derived"
    # without explain, the model's values are still there; the derived ones are not
    quiet = Analyzer(va_model=onnx_path, threads=1, explain=False).analyze(PHOTO)
    np.testing.assert_allclose(quiet.faces.valence_arousal, va, atol=1e-6)
    assert quiet.faces.reasons is None


def test_models_refuse_the_wrong_role(va_run):
    from openfer.components.expression import ExpressionClassifier
    from openfer.components.valence_arousal import ValenceArousalRegressor

    with pytest.raises(ModelError, match="not a valence/arousal model"):
        ValenceArousalRegressor("fernet_s")
    with pytest.raises(ModelError, match="load it as va_model"):
        ExpressionClassifier(str(va_run / "fernet_xs.onnx"))


def test_ccc_loss_matches_numpy_and_is_minimal_at_the_target():
    rng = np.random.default_rng(0)
    t = rng.uniform(-1, 1, (32, 2)).astype(np.float32)
    p = (0.5 * t + rng.normal(0, 0.2, t.shape)).astype(np.float32)
    got = batch_ccc(torch.from_numpy(p), torch.from_numpy(t)).numpy()
    np.testing.assert_allclose(got, ccc(p, t), rtol=1e-4)
    obj = ValenceArousal()
    perfect = obj.loss(torch.from_numpy(t), torch.from_numpy(t))
    assert float(perfect) == pytest.approx(0.0, abs=1e-5)
    off = obj.loss(torch.from_numpy(p), torch.from_numpy(t))
    mse = float(((p - t) ** 2).mean())
    assert float(off) == pytest.approx(1 - ccc(p, t).mean() + 0.1 * mse, rel=1e-4)


def test_task_detection(tmp_path):
    va_csv = tmp_path / "va.csv"
    va_csv.write_text("path,valence,arousal\na.png,0.1,0.2\n")
    both = tmp_path / "both.csv"
    both.write_text("path,label,valence,arousal\na.png,happy,0.1,0.2\n")
    assert guess_task(va_csv, None) == "valence_arousal"
    assert guess_task(both, None) == "expression"
    assert guess_task(both, "va") == "valence_arousal"
    assert guess_task(va_csv, "expression") == "expression"
    assert guess_task(tmp_path, None) == "expression"  # an ImageFolder


def test_va_rejects_a_non_csv_format(tmp_path, capsys):
    data, _ = _write_va_set(tmp_path / "d", n=4)
    rc = main(["train", str(data), "--task", "va", "--format", "ferplus", "--out", str(tmp_path / "r")])
    assert rc == 3 and "reads a CSV" in capsys.readouterr().err


def test_va_refuses_the_split_run_flags(tmp_path, capsys):
    from openfer.cli import main

    csv = tmp_path / "va.csv"
    csv.write_text("path,valence,arousal\na.png,0.1,0.2\n")
    for flag in ("--train-only", "--export-only"):
        assert main(["train", str(csv), "--task", "va", "--out", str(tmp_path / "r"), flag]) != 0
        err = capsys.readouterr().err
        assert "a valence/arousal run trains and exports in one command" in err and "Traceback" not in err
