"""The LiteRT runtime: MediaPipe's original .tflite files against their ONNX conversions, and the
int8 expression model's TFLite twin against its ONNX Runtime model.

Tolerances: the per-model ones are ``scripts/install_tflite.py``'s install rule (atol 1e-3 + rtol
1e-5 x max|ONNX|), which the shipped files pass with 3e-4 at most (``docs/models/litert_parity.json``).
The whole-analysis ones are stated in ``docs/speed.md`` ("LiteRT in the pipeline") from the runs
measured there; the differences come from the detector's box and carry through the mesh passes.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from openfer.errors import InputError, ModelError
from openfer.runtime import litert
from openfer.runtime import onnx as rt

pytestmark = pytest.mark.skipif(not litert.available(), reason="needs openfer[litert] (ai-edge-litert)")

PHOTOS = Path(__file__).resolve().parent.parent / "assets" / "photos"
PARITY = Path(__file__).resolve().parents[2] / "docs" / "models" / "litert_parity.json"
TWINS = ("blazeface_short", "facemesh_v2", "blendshapes")


def _rgb(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(PHOTOS / name)), cv2.COLOR_BGR2RGB)


def test_twins_are_registered_verified_and_licensed():
    notice = (rt.MODELS_DIR / "LICENSES" / "mediapipe-tflite-NOTICE").read_text()
    converted_from = {k: v["tflite_sha256"] for k, v in json.loads(
        (PARITY.parent / "mediapipe_parity.json").read_text())["models"].items()}
    for name in TWINS:
        twin = litert.tflite_name(name)
        assert twin == f"{name}_tflite"
        path, digest = rt.verified_file(twin)
        entry = rt.registry()[twin]
        assert entry["license"] == "Apache-2.0" and entry["twin"] == name
        assert digest == converted_from[name], "not the file the ONNX model was converted from"
        assert path.name in notice and digest in notice
        assert not entry["task"].startswith("face"), "a twin must not pass as a selectable model"
    assert litert.tflite_name("fernet_s") is None and litert.tflite_name("blazeface_full") is None


@pytest.mark.parametrize("name", TWINS)
def test_each_twin_matches_its_onnx_model(name):
    ort_model = rt.OnnxModel.load(name, threads=1)
    lite = litert.LiteRTModel.load_twin(name, threads=1)
    assert lite.runtime == "litert" and ort_model.runtime == "onnxruntime"
    assert [o.name for o in lite.session.get_outputs()] == [o.name for o in ort_model.session.get_outputs()]
    if name == "blendshapes":
        from openfer.core.blendshapes import blendshape_inputs

        rng = np.random.default_rng(3)
        base = rng.normal(0, 40, (1, 478, 3)) + 200
        xs = [blendshape_inputs(base + rng.normal(0, 2, base.shape)) for _ in range(3)]
    else:
        shape = rt.registry()[name]["input_shape"]
        lo, hi = rt.registry()[name]["input_range"]
        photo = cv2.resize(_rgb("single_face.jpg"), (shape[1], shape[2]), interpolation=cv2.INTER_AREA)
        xs = [(lo + (hi - lo) * photo.astype(np.float32) / 255.0)[None]]
        xs.append(np.random.default_rng(0).uniform(lo, hi, xs[0].shape).astype(np.float32))
    for x in xs:
        for a, b in zip(ort_model.run(x), lite.run(x), strict=True):
            assert np.asarray(b).shape == np.asarray(a).shape
            assert np.max(np.abs(np.asarray(a, np.float64) - b)) <= 1e-3 + 1e-5 * np.max(np.abs(a))


def test_a_batch_runs_item_by_item_with_the_same_results_and_threads_share_a_session():
    mesh = litert.LiteRTModel.load_twin("facemesh_v2", threads=1)
    rng = np.random.default_rng(1)
    xs = rng.uniform(0, 1, (4, 192, 192, 3)).astype(np.float32)
    singles = [mesh.run(xs[i : i + 1]) for i in range(4)]
    batched = mesh.run_batched(xs)
    for k in range(2):
        np.testing.assert_array_equal(batched[k], np.concatenate([s[k] for s in singles]))
    got: dict[int, list[np.ndarray]] = {}

    def work(i: int) -> None:
        for _ in range(5):
            got[i] = mesh.run(xs[i : i + 1])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        np.testing.assert_array_equal(got[i][0], singles[i][0])


# the expression model each preset runs on LiteRT: the float fernet_s has no twin (ONNX Runtime);
# fernet_s_int8 (fast, video) has its TFLite int8 twin
@pytest.mark.parametrize(("preset", "lm_px", "expression_runtime"),
                         [("default", 0.05, "onnxruntime"), ("fast", 0.25, "litert")])
def test_the_analysis_on_litert_agrees_with_onnx_runtime(preset, lm_px, expression_runtime):
    from openfer import Analyzer

    rgb = _rgb("multi_face.jpg")
    ort_an = Analyzer(preset, runtime="onnxruntime")
    assert ort_an.expression.model.runtime == "onnxruntime"
    ref = ort_an.analyze_rgb(rgb).faces
    lite_an = Analyzer(preset, runtime="litert")
    assert lite_an.mesh.model.runtime == "litert" and lite_an.blendshapes.model.runtime == "litert"
    assert lite_an.expression.model.runtime == expression_runtime
    got = lite_an.analyze_rgb(rgb).faces
    assert len(got) == len(ref) >= 2
    assert list(got.labels) == list(ref.labels)
    assert np.max(np.abs(got.landmarks[..., :2] - ref.landmarks[..., :2])) < lm_px
    assert np.max(np.abs(got.expressions - ref.expressions)) < 0.01
    assert np.max(np.abs(got.aus - ref.aus)) < 0.05
    assert np.max(np.abs(got.blendshapes - ref.blendshapes)) < 0.01


def test_the_int8_expression_twin_is_registered_verified_and_agrees_with_its_onnx_model():
    """fernet_s_int8's TFLite twin (scripts/quantize_expression_litert.py): a separate int8 quantization
    of the same float network, so not the MediaPipe twins' 1e-3 parity but the agreement its card
    measures on FER+ (98.9% of FER2013Test predictions the same as fernet_s_int8, mean abs prob. diff
    0.002): here every fixture face (the fast preset, all other models on ONNX Runtime) gets the same
    label, probabilities within 0.1 (the card's FER2013Test max: 0.124) and 0.01 on average."""
    from openfer import Analyzer
    from openfer.components.expression import ExpressionClassifier, preprocess

    entry = rt.registry()["fernet_s_int8_tflite"]
    assert litert.tflite_name("fernet_s_int8") == "fernet_s_int8_tflite" and entry["twin"] == "fernet_s_int8"
    assert entry["license"] == rt.registry()["fernet_s_int8"]["license"]
    assert not entry["task"].startswith("expression"), "a twin must not pass as a selectable model"
    report = json.loads((PARITY.parent / "fernet_s_int8_tflite.json").read_text())
    _, digest = rt.verified_file("fernet_s_int8_tflite")
    assert digest == report["litert_int8"]["sha256"]
    assert report["passes_issue_13_rule"] and report["splits"]["FER2013Test"]["litert_int8_vs_float"][
        "accuracy_change_points"] >= -0.3
    ort_model, lite = rt.OnnxModel.load("fernet_s_int8", threads=1), litert.LiteRTModel.load_twin("fernet_s_int8", 1)
    assert lite.spec == ort_model.spec
    assert [o.name for o in lite.session.get_outputs()] == [o.name for o in ort_model.session.get_outputs()]
    an = Analyzer("fast", runtime="onnxruntime")
    ort_clf = ExpressionClassifier(ort_model, flip=False)
    lite_clf = ExpressionClassifier(lite, flip=False)
    diffs = []
    for p in sorted(PHOTOS.rglob("*.jpg")):
        rgb = _rgb(str(p.relative_to(PHOTOS)))
        lm = an.analyze_rgb(rgb).faces.landmarks
        if len(lm) == 0:
            continue
        crops = ort_clf.crops(rgb, lm)
        (pa, ua), (pb, ub) = ort_clf.predict_open(crops), lite_clf.predict_open(crops)
        assert list(pa.argmax(1)) == list(pb.argmax(1)), p.name
        assert np.all(np.abs(ua - ub) <= 0.12), p.name  # the card's FER2013Test max: 0.114
        diffs.append(np.abs(pa - pb))
    diffs = np.concatenate(diffs)
    assert len(diffs) >= 15 and diffs.max() < 0.1 and diffs.mean() < 0.01
    # a batch (the default preset's mirror pairs) runs item by item on LiteRT: the same numbers
    x = preprocess(crops, lite_clf.spec, flip=True)
    np.testing.assert_array_equal(lite.run(x)[0][:1], lite.run(x[:1])[0])


def test_runtime_choice_errors_are_clear(monkeypatch):
    from openfer import AnalyzerOptions

    with pytest.raises(InputError, match="runtime"):
        AnalyzerOptions(runtime="tpu")
    with pytest.raises(ModelError, match="choose one of"):
        rt.as_model("facemesh_v2", runtime="tpu")
    with pytest.raises(ModelError, match="no LiteRT"):
        litert.LiteRTModel.load_twin("fernet_s")
    monkeypatch.setattr(litert, "available", lambda: False)
    assert rt.as_model("facemesh_v2").runtime == "onnxruntime"  # auto falls back
    with pytest.raises(ModelError, match=r"openfer\[litert\]"):
        rt.as_model("facemesh_v2", runtime="litert")
