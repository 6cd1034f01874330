"""`fernet_s_int8`, the int8 expression model of the `fast` and `video` presets, against `fernet_s`.

Tolerances from ``docs/models/fernet_s_int8.json`` (``scripts/quantize_expression.py``): on FER+ the
two models agree on 99.3-99.5% of predictions with probabilities at most 0.103 apart; here, on the
aligned crops of the fixture faces, the same labels and at most 0.15.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx

from openfer import Analyzer
from openfer.components.expression import ExpressionClassifier
from openfer.pipeline import PRESETS
from openfer.runtime import OnnxModel, registry

PHOTOS = Path(__file__).resolve().parent.parent / "assets" / "photos"
REPORT = Path(__file__).resolve().parents[2] / "docs" / "models" / "fernet_s_int8.json"


def test_int8_model_is_registered_with_the_float_models_spec_and_a_passing_report():
    q, f = OnnxModel.load("fernet_s_int8"), OnnxModel.load("fernet_s")
    assert q.spec == f.spec
    assert registry()["fernet_s_int8"]["license"] == registry()["fernet_s"]["license"]
    ops = {n.op_type for n in onnx.load(str(q.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    rep = json.loads(REPORT.read_text())
    assert rep["int8"]["sha256"] == q.sha256 and rep["float"]["sha256"] == f.sha256
    assert rep["passes_issue_13_rule"] and rep["splits"]["FER2013Test"]["accuracy_change_points"] >= -0.3
    assert PRESETS["fast"].expression_model == PRESETS["video"].expression_model == "fernet_s_int8"
    assert PRESETS["default"].expression_model == "fernet_s"


def test_int8_and_float_agree_on_the_fixture_faces():
    an = Analyzer()
    f = ExpressionClassifier("fernet_s", threads=1)
    q = ExpressionClassifier("fernet_s_int8", threads=1)
    n = 0
    for name in ("multi_face.jpg", "single_face.jpg"):
        faces = an.analyze(PHOTOS / name).faces
        img = cv2.cvtColor(cv2.imread(str(PHOTOS / name)), cv2.COLOR_BGR2RGB)
        crops = f.crops(img, faces.landmarks)
        pf, uf = f.predict_open(crops)
        pq, uq = q.predict_open(crops)
        assert (pf.argmax(1) == pq.argmax(1)).all()
        assert np.max(np.abs(pf - pq)) < 0.15
        assert np.max(np.abs(uf - uq)) < 0.15
        n += len(crops)
    assert n >= 6
