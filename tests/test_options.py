"""AnalyzerOptions: validated at construction, picklable, accepted by Analyzer; the model list."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from openfer.cli import EXIT_OK, main
from openfer.errors import InputError
from openfer.pipeline import PRESETS, Analyzer, AnalyzerOptions, resolve_options
from openfer.runtime.onnx import list_models, registry, sha256_file


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("threads", -1, "threads: expected an integer >= 0, got -1"),
        ("threads", 1.5, "threads: expected an integer >= 0, got 1.5"),
        ("detect_threshold", 1.5, r"detect_threshold: expected a number in \(0, 1\], got 1.5"),
        ("detect_threshold", float("nan"), "detect_threshold: expected a number"),
        ("landmark_threshold", "0.5", "landmark_threshold: expected a number in \\[0, 1\\] or None"),
        ("min_face", 0, "min_face: expected a number > 0 or None, got 0"),
        ("max_faces", 0, "max_faces: expected an integer >= 1 or None, got 0"),
        ("max_pixels", True, "max_pixels: expected an integer >= 1, got True"),
        ("flip", 1, "flip: expected True or False, got 1"),
        ("mesh", "facemesh_v3", "mesh: expected 'facemesh' or 'facemesh_v2', got 'facemesh_v3'"),
        ("mesh_passes", 0, "mesh_passes: expected an integer >= 1, got 0"),
        ("detector", "fernet_s", r"detector: expected a shipped model \(blazeface_short, blazeface_full\) or an .onnx"),
        ("expression_model", "facemesh", r"expression_model: expected a shipped model \(fernet_s, fernet_s_int8\) or an .onnx"),
        ("expression_model", "missing.onnx", "expression_model: missing.onnx: model file not found"),
        ("va_model", "fernet_s", "va_model: expected the path of an .onnx file, got 'fernet_s'"),
    ],
)
def test_every_field_is_checked_with_a_message_naming_it(field, value, message):
    with pytest.raises(InputError, match=rf"^AnalyzerOptions\.{message}"):
        AnalyzerOptions(**{field: value})


def test_presets_and_overrides_resolve_to_validated_picklable_options():
    for name, opts in PRESETS.items():
        assert pickle.loads(pickle.dumps(opts)) == opts, name
    o = resolve_options("fast", threads=1)
    assert o == AnalyzerOptions(min_face=None, detector="blazeface_short", mesh_passes=1, iris=False, flip=False,
                                expression_model="fernet_s_int8", threads=1)
    assert resolve_options(o) == o
    with pytest.raises(InputError, match=r"unknown Analyzer option 'treads' \(did you mean 'threads'\?\)"):
        resolve_options("default", treads=2)
    with pytest.raises(InputError, match="unknown preset 'fastest'"):
        resolve_options("fastest")
    with pytest.raises(InputError, match="AnalyzerOptions.threads"):
        resolve_options("default", threads=-2)  # overrides are validated too


def test_analyzer_from_unpickled_options_gives_the_same_result(analyzer):
    from conftest import PHOTOS

    opts = pickle.loads(pickle.dumps(analyzer.options))
    other = Analyzer.from_options(opts)
    assert other.options == analyzer.options
    a = analyzer.analyze(PHOTOS / "single_face.jpg").faces
    b = other.analyze(PHOTOS / "single_face.jpg").faces
    assert a.labels == b.labels
    assert (abs(a.expressions - b.expressions) < 1e-6).all()


def test_list_models_matches_the_registry_and_the_files():
    models = list_models()
    assert [m.name for m in models] == list(registry())
    for m in models:
        assert m.task and m.license and m.source, m.name
        assert m.size_bytes == m.path.stat().st_size and sha256_file(m.path) == m.sha256
        assert m.card is None or m.card.is_file()
    cards = {m.name: m.card.name for m in models if m.card}
    assert cards["fernet_s"] == "fernet_s.md" and cards["facemesh_v2"] == "mediapipe.md"


def test_models_command_lists_and_verifies(capsys):
    assert main(["models", "--verify", "--json"]) == EXIT_OK
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(registry())
    assert all(r["verified"] == "ok" for r in rows)
    assert main(["models"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "fernet_s" in out and "expression, 8 FER+ classes" in out


def test_components_take_loaded_models_and_build_an_analyzer(analyzer):
    from conftest import PHOTOS

    from openfer.components.blendshapes import Blendshapes
    from openfer.components.detector import FaceDetector
    from openfer.components.expression import ExpressionClassifier
    from openfer.components.landmarks import FaceMesh
    from openfer.runtime import OnnxModel, as_model

    o = analyzer.options
    # loaded models, on the runtime the analyzer's own options pick (LiteRT twins where installed)
    mesh = FaceMesh(model=as_model("facemesh_v2", runtime=o.runtime))
    assert mesh.num_landmarks == 478 and mesh.model_name == "facemesh_v2"
    built = Analyzer.from_components(
        o,
        detector=FaceDetector(min_face=o.min_face, model=as_model(o.detector, runtime=o.runtime)),
        mesh=mesh,
        expression=ExpressionClassifier(OnnxModel.load("fernet_s")),
        blendshapes=Blendshapes(model=as_model("blendshapes", runtime=o.runtime)),
    )
    a = analyzer.analyze(PHOTOS / "multi_face.jpg").faces
    b = built.analyze(PHOTOS / "multi_face.jpg").faces
    assert len(a) == len(b) > 1 and a.labels == b.labels
    assert abs(a.landmarks - b.landmarks).max() < 1e-3
    with pytest.raises(Exception, match="unknown face mesh 'iris'"):
        FaceMesh(model=OnnxModel.load("iris"))


def test_a_second_mesh_pass_makes_the_landmarks_independent_of_the_detector():
    # the first pass's landmarks follow the detector's box (benchmarks/detector_agreement.py);
    # a pass from the landmarks' own ROI brings the two detectors' faces together
    from conftest import PHOTOS

    from openfer.io.images import read_image

    rgb = read_image(PHOTOS / "multi_face.jpg")
    spread = {}
    for passes in (1, 2):
        faces = [Analyzer(detector=d, mesh_passes=passes, threads=1).analyze_rgb(rgb).faces
                 for d in ("blazeface_full", "blazeface_short")]
        assert [len(f) for f in faces] == [5, 5]
        a, b = (f.landmarks[np.argsort(f.boxes[:, 0])][..., :2] for f in faces)
        spread[passes] = float(np.linalg.norm(a - b, axis=-1).mean())
        if passes == 2:  # the reported box is the detector's; the landmarks settled
            assert (faces[0].boxes != faces[1].boxes).any()
    assert spread[2] < 0.5 * spread[1], spread
