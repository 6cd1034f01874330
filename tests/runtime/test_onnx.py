"""Model loading: sha256 pinning, unknown names, foreign ONNX files."""

import shutil

import pytest

from openfer.errors import ModelError, WeightsError
from openfer.runtime import onnx as rt


def test_every_registered_model_matches_its_sha256():
    reg = rt.registry()
    assert {"blazeface_short", "facemesh", "iris", "mean_face", "fernet_s"} <= set(reg)
    for name, entry in reg.items():
        path = rt.MODELS_DIR / entry["file"]
        assert rt.sha256_file(path) == entry["sha256"], name
        assert entry.get("license") and entry.get("source"), name


def test_tampered_weights_raise_weights_error(tmp_path, monkeypatch):
    models = tmp_path / "models"
    shutil.copytree(rt.MODELS_DIR, models)
    data = bytearray((models / "iris.onnx").read_bytes())
    data[-1] ^= 0xFF
    (models / "iris.onnx").write_bytes(bytes(data))
    monkeypatch.setattr(rt, "MODELS_DIR", models)
    rt.registry.cache_clear()
    try:
        with pytest.raises(WeightsError, match="sha256"):
            rt.OnnxModel.load("iris")
        (models / "iris.onnx").unlink()
        with pytest.raises(WeightsError, match="missing"):
            rt.OnnxModel.load("iris")
    finally:
        rt.registry.cache_clear()


def test_unknown_model_name_lists_the_shipped_ones():
    with pytest.raises(ModelError, match="blazeface_short"):
        rt.OnnxModel.load("no_such_model")


def test_expression_classifier_refuses_an_onnx_without_spec(tmp_path):
    from openfer.components.expression import ExpressionClassifier

    foreign = tmp_path / "foreign.onnx"
    shutil.copy(rt.MODELS_DIR / "iris.onnx", foreign)
    with pytest.raises(ModelError, match="openfer.spec"):
        ExpressionClassifier(str(foreign))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot be loaded"):
        rt.OnnxModel.load(bad)
