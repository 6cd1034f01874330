"""The ``openfer`` command line: outputs, exit codes and bad input, run in-process via ``main``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import PHOTOS

from openfer.cli import EXIT_INPUT, EXIT_OK, EXIT_OUTPUT, EXIT_USAGE, main


def test_version_is_fast_and_prints():
    out = subprocess.run(
        [sys.executable, "-m", "openfer", "--version"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.startswith("openfer ")


def test_import_is_light():
    code = "import sys, openfer, openfer.pipeline; print(sorted(m for m in ('torch', 'pandas', 'fastapi', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_analyze_demo_default(capsys):
    assert main(["analyze"]) == EXIT_OK
    out = capsys.readouterr()
    assert "demo.jpg" in out.out and "5 face(s)" in out.out
    assert "happiness" in out.out


def test_analyze_writes_json_csv_parquet_and_annotations(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    import pandas as pd

    rc = main(
        [
            "analyze",
            str(PHOTOS / "single_face.jpg"),
            str(PHOTOS / "no_face_landscape.jpg"),
            "--json",
            str(tmp_path / "r.json"),
            "--csv",
            str(tmp_path / "r.csv"),
            "--parquet",
            str(tmp_path / "r.parquet"),
            "--annotate",
            str(tmp_path / "ann"),
            "-q",
        ]
    )
    assert rc == EXIT_OK
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [len(i["faces"]) for i in doc["images"]] == [1, 0]
    assert doc["images"][1]["error"] is None
    csv = pd.read_csv(tmp_path / "r.csv")
    pq = pd.read_parquet(tmp_path / "r.parquet")
    assert len(csv) == len(pq) == 2  # one row per face, and one for the image without a face
    assert list(csv["status"]) == list(pq["status"]) == ["ok", "no_face"]
    assert [i["status"] for i in doc["images"]] == ["ok", "no_face"]
    assert csv["source"][1].endswith("no_face_landscape.jpg") and pd.isna(csv["label"][1])
    assert csv.loc[0, "label"] == pq.loc[0, "label"] == doc["images"][0]["faces"][0]["label"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ann", "r.csv", "r.json", "r.parquet"]  # no work left
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == [
        "no_face_landscape_annotated.jpg",
        "single_face_annotated.jpg",
    ]


def test_landmarks_flag_adds_mesh_to_json(tmp_path):
    assert (
        main(
            [
                "analyze",
                str(PHOTOS / "single_face.jpg"),
                "--landmarks",
                "--json",
                str(tmp_path / "r.json"),
                "-q",
            ]
        )
        == 0
    )
    face = json.loads((tmp_path / "r.json").read_text())["images"][0]["faces"][0]
    assert len(face["landmarks"]) == 478 and len(face["landmarks"][0]) == 3


def test_detector_flag_picks_the_detector_and_refuses_other_models(tmp_path, capsys):
    from openfer.components.detector import FaceDetector
    from openfer.io.images import read_image

    boxes = {}
    for det in ("blazeface_full", "blazeface_short"):
        assert main(["analyze", str(PHOTOS / "single_face.jpg"), "--detector", det, "--json",
                     str(tmp_path / f"{det}.json"), "-q"]) == EXIT_OK
        faces = json.loads((tmp_path / f"{det}.json").read_text())["images"][0]["faces"]
        assert len(faces) == 1
        boxes[det] = [faces[0][k] for k in ("x1", "y1", "x2", "y2")]
    # the reported box is the chosen detector's
    ref = FaceDetector(threads=1)(read_image(PHOTOS / "single_face.jpg")).boxes
    assert min(max(abs(a - b) for a, b in zip(boxes["blazeface_short"], r, strict=True)) for r in ref) < 1.0
    assert max(abs(a - b) for a, b in zip(boxes["blazeface_full"], boxes["blazeface_short"], strict=True)) > 5
    capsys.readouterr()
    assert main(["analyze", str(PHOTOS / "single_face.jpg"), "--detector", "fernet_s", "-q"]) == EXIT_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "AnalyzerOptions.detector" in err[0], err


def _bad_files(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an image")
    data = (PHOTOS / "single_face.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    return [tmp_path / "empty.jpg", tmp_path / "notes.txt", tmp_path / "truncated.jpg"]


def test_batch_reports_bad_files_and_completes_the_rest(tmp_path, capsys):
    bad = _bad_files(tmp_path)
    good = tmp_path / "good.jpg"
    shutil.copy(PHOTOS / "single_face.jpg", good)
    rc = main(["analyze", *map(str, bad), str(good), "--json", str(tmp_path / "r.json"), "-q"])
    err = capsys.readouterr().err
    assert rc == EXIT_INPUT
    for b in bad:
        assert sum(b.name in line for line in err.splitlines() if line.startswith("error:")) == 1
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [bool(i["error"]) for i in doc["images"]] == [True, True, True, False]
    assert len(doc["images"][3]["faces"]) == 1
    assert "4 image(s), 1 face(s), 0 without a face, 3 failed" in err


@pytest.mark.parametrize("arg,msg", [("missing.jpg", "not found"), ("emptydir", "no images")])
def test_missing_path_and_empty_folder_exit_3(tmp_path, capsys, arg, msg, monkeypatch):
    (tmp_path / "emptydir").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["analyze", arg]) == EXIT_INPUT
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and arg in err[0] and msg in err[0] and "Traceback" not in err[0]
    assert err[1] == "1 image(s), 0 face(s), 0 without a face, 1 failed"


def test_huge_image_header_is_refused_quickly(tmp_path, capsys):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # a complete PNG whose header claims 30000x30000 (the pixel data is not needed to refuse it)
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
    (tmp_path / "huge.png").write_bytes(png)
    assert main(["analyze", str(tmp_path / "huge.png")]) == EXIT_INPUT
    assert "30000x30000" in capsys.readouterr().err


def test_usage_errors_exit_2_with_suggestion(capsys):
    with pytest.raises(SystemExit) as e:
        main(["analyze", "--jsn", "x.json"])
    assert e.value.code == EXIT_USAGE
    assert "did you mean --json" in capsys.readouterr().err
    assert main([]) == EXIT_USAGE


def test_an_option_of_another_command_is_not_suggested_as_itself(capsys):
    with pytest.raises(SystemExit) as e:  # -r belongs to analyze, not to dataset card
        main(["dataset", "card", "data", "--out", "card", "-r"])
    err = capsys.readouterr().err
    assert e.value.code == EXIT_USAGE and "unrecognized arguments: -r" in err and "did you mean -r" not in err


def test_evaluate_on_labeled_fixture_photos(tmp_path, capsys):
    rc = main(["evaluate", str(PHOTOS / "labeled"), "--faces", "detect", "--json", str(tmp_path / "e.json")])
    assert rc == EXIT_OK
    rep = json.loads((tmp_path / "e.json").read_text())
    assert rep["n"] == 12 and rep["face_found_rate"] == 1.0
    assert 0.0 <= rep["accuracy"] <= 1.0 and len(rep["confusion"]["matrix"]) == 8


def test_evaluate_names_the_runtime_and_file_it_ran(tmp_path):
    from openfer.runtime import litert, registry

    runtimes = ["onnxruntime"] + (["litert"] if litert.available() else [])
    for runtime in runtimes:
        out = tmp_path / f"{runtime}.json"
        rc = main(["evaluate", str(PHOTOS / "labeled"), "--faces", "detect", "--model", "fernet_s_int8",
                   "--runtime", runtime, "--json", str(out)])
        assert rc == EXIT_OK
        rep = json.loads(out.read_text())
        entry = registry()["fernet_s_int8" if runtime == "onnxruntime" else "fernet_s_int8_tflite"]
        assert (rep["model"], rep["runtime"]) == ("fernet_s_int8", runtime)
        assert (rep["file"], rep["sha256"]) == (entry["file"], entry["sha256"])
        assert rep["n"] == 12


def test_aus_and_explain_flags_print_evidence(capsys):
    assert main(["analyze", str(PHOTOS / "single_face.jpg"), "--aus", "--explain"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "AUs (0-5, calibrated):" in out and "AU12" in out
    assert "why: " in out and "valence" in out


def test_same_file_name_in_two_folders_keeps_both_annotations(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        shutil.copy(PHOTOS / "single_face.jpg", tmp_path / d / "face.jpg")
    assert main(["analyze", str(tmp_path / "a"), str(tmp_path / "b"), "--annotate", str(tmp_path / "ann"), "-q"]) == 0
    assert len(list((tmp_path / "ann").iterdir())) == 2


def test_unwritable_output_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    rc = main(["analyze", str(PHOTOS / "single_face.jpg"), "--json", str(tmp_path / "file" / "out.json"), "-q"])
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("error")]
    assert rc == EXIT_OUTPUT and "Traceback" not in err
    assert lines == [f"error: cannot write {tmp_path / 'file' / 'out.json'}: {tmp_path / 'file'} is a file, not a folder"]


@pytest.mark.parametrize("command", ["analyze", "evaluate"])
def test_progress_line_on_a_terminal(tmp_path, monkeypatch, command):
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    monkeypatch.setattr("sys.stderr", tty)
    if command == "analyze":
        rc = main(["analyze", str(PHOTOS / "single_face.jpg"), str(PHOTOS / "multi_face.jpg")])  # -q: no bar
    else:
        rc = main(["evaluate", str(PHOTOS / "labeled"), "--faces", "detect"])
    assert rc == EXIT_OK
    text = tty.getvalue()
    assert "images/s" in text and "\r" in text


def test_expression_model_and_runtime_flags_reach_the_analyzer(tmp_path, capsys):
    from openfer import Analyzer

    classes = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    got = {}
    for model in ("fernet_s", "fernet_s_int8"):
        out = tmp_path / f"{model}.json"
        assert main(["analyze", str(PHOTOS / "multi_face.jpg"), "--preset", "fast", "--expression-model", model,
                     "--runtime", "onnxruntime", "--json", str(out), "-q"]) == EXIT_OK
        doc = json.loads(out.read_text())
        assert doc["openfer"]
        got[model] = [[f[c] for c in classes] for f in doc["images"][0]["faces"]]
        ref = Analyzer("fast", expression_model=model, runtime="onnxruntime").analyze(PHOTOS / "multi_face.jpg").faces
        assert len(got[model]) == len(ref) >= 2
        for row, want in zip(got[model], ref.expressions, strict=True):
            assert max(abs(a - b) for a, b in zip(row, want, strict=True)) < 1e-4
    assert got["fernet_s"] != got["fernet_s_int8"]  # the flag changed the model
    capsys.readouterr()
    assert main(["analyze", str(PHOTOS / "single_face.jpg"), "--expression-model", "nope", "-q"]) == EXIT_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "AnalyzerOptions.expression_model" in err[0], err
