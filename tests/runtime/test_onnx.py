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


def test_registry_blocks_are_rewritten_in_place_of_the_old_ones(tmp_path):
    import re
    import tomllib

    shipped = (rt.MODELS_DIR / "models.toml").read_text()
    toml = tmp_path / "models.toml"
    toml.write_text(shipped)
    reg = tomllib.loads(shipped)
    # the blocks the release, calibration and record scripts write: rewritten with their own fields,
    # in file order, they give the shipped file back byte for byte
    blocks = re.findall(r"^# BEGIN (\S+)", shipped, flags=re.M)
    assert {"mean_face", "fernet_s", "au_calibration", "facemesh_v2_tflite"} <= set(blocks)
    for name in (b for b in blocks if b != "mediapipe"):  # mediapipe: several tables, its own writer
        writer = re.search(rf"# BEGIN {name}(?: -- written by ([^\n]*))?\n", shipped).group(1)
        rt.write_registry_block(name, reg[name], writer, toml)
    assert toml.read_text() == shipped
    # a new block goes at the end; rewriting it replaces it, and a name that prefixes another
    # ("fernet_s" / "fernet_s2") touches only its own block
    rt.write_registry_block("fernet_s2", {"file": "fernet_s2.onnx", "sha256": "a" * 64}, "test", toml)
    rt.write_registry_block("fernet_s2", {"file": "fernet_s2.onnx", "sha256": "b" * 64, "note": 'say "hi"'},
                            "test", toml)
    rt.write_registry_block("fernet_s", reg["fernet_s"], None, toml)
    after = tomllib.loads(toml.read_text())
    assert after["fernet_s2"] == {"file": "fernet_s2.onnx", "sha256": "b" * 64, "note": 'say "hi"'}
    assert after["fernet_s"] == reg["fernet_s"] and toml.read_text().count("# BEGIN fernet_s2") == 1
    assert list(after)[-1] == "fernet_s" and not list(tmp_path.glob(".models.*"))
