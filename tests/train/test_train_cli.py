"""`openfer train` end to end on a tiny ImageFolder with a new label set (needs the [train] extra)."""

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

from openfer.cli import main  # noqa: E402


def test_train_imagefolder_new_labels_exports_working_onnx(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for k, name in enumerate(["engagement", "boredom", "confusion"]):
        (root / name).mkdir(parents=True)
        for i in range(12):
            img = rng.integers(0, 80, (48, 48)).astype(np.uint8)
            img[k * 16 : k * 16 + 16] += 150  # learnable class cue
            cv2.imwrite(str(root / name / f"{i}.png"), img)
    out = tmp_path / "run"
    rc = main(["train", str(root), "--out", str(out), "--arch", "fernet_xs", "--epochs", "2",
               "--batch-size", "8", "--threads", "1", "--template-images", "10"])
    assert rc == 0
    onnx_path = out / "fernet_xs.onnx"
    assert onnx_path.is_file() and (out / "last.pt").is_file() and (out / "log.csv").is_file()
    from openfer.components.expression import ExpressionClassifier

    clf = ExpressionClassifier(str(onnx_path))
    assert clf.classes == ("boredom", "confusion", "engagement")
    assert json.loads((out / "template.json").read_text())["source"] == "default model"
    crops = rng.integers(0, 255, (4, 48, 48)).astype(np.uint8)
    p = clf.predict_crops(crops)
    assert p.shape == (4, 3)
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    # the open-set head: scores in [0, 1]; a calibration that is a percentile of known faces
    assert clf.openset is not None
    probs, unknown = clf.predict_open(crops)
    np.testing.assert_allclose(probs, p, atol=1e-6)
    assert unknown.shape == (4,) and ((unknown >= 0) & (unknown <= 1)).all()
