"""``openfer dataset issues`` end to end on the small real FER+ sample (tests/assets/dataset/ferplus_mini): the
outputs and their agreement with label.csv, the feature cache, one-line errors, atomic writes, --out refused
inside the data."""

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from openfer.cli import main
from openfer.eval.datasets import read_ferplus

MINI = Path(__file__).parents[1] / "assets" / "dataset" / "ferplus_mini"
SPLIT_FOLDER = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _votes(root: Path, split: str) -> dict[str, list[int]]:
    with open(root / SPLIT_FOLDER[split] / "label.csv", newline="") as fh:
        return {f"{SPLIT_FOLDER[split]}/{r[0]}": [int(x) for x in r[2:]] for r in csv.reader(fh) if r}


# two planted label errors in a copy of the sample: a unanimous smile voted neutral by all ten, a unanimous
# sad face voted happiness
PLANTED = {"FER2013Train/fer0022776.png": ("10,0,0,0,0,0,0,0,0,0", "neutral", "happiness"),
           "FER2013Train/fer0004502.png": ("0,10,0,0,0,0,0,0,0,0", "happiness", "sadness")}


def _planted_copy(root: Path) -> Path:
    data = root / "mini"
    shutil.copytree(MINI, data)
    label = data / "FER2013Train" / "label.csv"
    lines = label.read_text().splitlines()
    for k, line in enumerate(lines):
        name = "FER2013Train/" + line.split(",")[0]
        if name in PLANTED:
            lines[k] = line.split(",")[0] + ',"(0, 0, 48, 48)",' + PLANTED[name][0]
    label.write_text("\n".join(lines) + "\n")
    return data


@pytest.fixture(scope="module")
def model_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("issues")
    data = _planted_copy(root)
    out = root / "out"
    code = main(["dataset", "issues", str(data), "--out", str(out), "--predictions", "model", "--threads", "1"])
    assert code == 0
    return data, out, json.loads((out / "issues.json").read_text()), _csv(out / "issues.csv")


def test_planted_label_errors_are_found(model_run):
    _, _, doc, rows = model_run
    found = {r["path"]: (r["given"], r["suggested"]) for r in rows if r["split"] == "train"}
    for path, (_, given, suggested) in PLANTED.items():
        assert found.get(path) == (given, suggested)
    assert doc["splits"]["train"]["flagged"] <= 4  # not the whole split


def test_outputs_agree_with_the_label_files(model_run):
    data, out, doc, rows = model_run
    assert doc["data"]["splits"] == ["train", "valid", "test"]
    classes = doc["classes"]
    flagged = 0
    for split, d in doc["splits"].items():
        kept = read_ferplus(data, split)
        assert d["scored"] == len(kept) > 0
        assert d["route"] == "model"
        assert sum(v["given"] for v in d["per_class"].values()) == len(kept)
        assert np.array(d["confident_joint"]["counts"]).sum() <= len(kept)
        assert np.isclose(np.array(d["confident_joint"]["calibrated"]).sum(), 1.0, atol=1e-5)
        flagged += d["flagged"]
    assert len(rows) == flagged == doc["csv_rows"]["flagged"] > 0
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores) and [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    for r in rows:
        votes = _votes(data, r["split"])[r["path"]]
        kept = read_ferplus(data, r["split"])
        labels = dict(zip(kept.paths, kept.labels, strict=True))
        assert r["given"] == classes[labels[data / r["path"]]] != r["suggested"]
        assert r["votes"] == " ".join(map(str, votes))
        assert float(r["vote_share_given"]) == pytest.approx(votes[classes.index(r["given"])] / sum(votes), abs=1e-3)
        assert float(r["self_confidence"]) == pytest.approx(float(r["score"]))
    assert "annotator ids" in doc["annotators"]


def test_contact_sheet_shows_the_top_issues(model_run):
    _, out, doc, rows = model_run
    img = cv2.imread(str(out / "contact_sheet.png"))
    assert img is not None and doc["contact_sheet"] == "contact_sheet.png"
    assert img.shape[1] == 8 * (120 + 6)  # 8 tiles per row
    lines = (len(rows[:40]) + 7) // 8
    assert img.shape[0] % lines == 0 and img.shape[0] // lines > 120
    assert img.std() > 10  # faces drawn, not a blank sheet
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_kfold_route_and_the_feature_cache(tmp_path):
    pytest.importorskip("onnx")
    cache = tmp_path / "cache"
    args = ["dataset", "issues", str(MINI), "--out", str(tmp_path / "a"), "--split", "train", "--folds", "3",
            "--features-cache", str(cache), "--threads", "1"]
    assert main(args) == 0
    written = sorted(cache.glob("features_train_*.npz"))
    assert len(written) == 1
    doc = json.loads((tmp_path / "a" / "issues.json").read_text())
    info = doc["splits"]["train"]["predictions"]
    assert info["k"] == 3 and info["features"].startswith("computed, written to")
    z = np.load(written[0])
    assert len(z["f"]) == len(read_ferplus(MINI, "train")) and z["f"].shape == z["g"].shape
    # a second run reads the cache and writes the same issues
    args[4] = str(tmp_path / "b")
    assert main(args) == 0
    doc_b = json.loads((tmp_path / "b" / "issues.json").read_text())
    assert doc_b["splits"]["train"]["predictions"]["features"] == str(written[0])
    assert (tmp_path / "a" / "issues.csv").read_text() == (tmp_path / "b" / "issues.csv").read_text()
    # a cache whose features are not this model's is not used (spot check), the result is the same
    bad = cache / "features_train_000000000000.npz"
    np.savez(bad, f=z["f"] + 1, g=z["g"], labels=z["labels"])
    written[0].unlink()
    args[4] = str(tmp_path / "c")
    assert main(args) == 0
    doc_c = json.loads((tmp_path / "c" / "issues.json").read_text())
    assert doc_c["splits"]["train"]["predictions"]["features"].startswith("computed")
    assert (tmp_path / "a" / "issues.csv").read_text() == (tmp_path / "c" / "issues.csv").read_text()


def _one_line_error(capsys, code: int, expected: int, *names: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == expected
    assert len(err) == 1 and "Traceback" not in err[0], err
    for n in names:
        assert n in err[0]
    return err[0]


def test_missing_data_is_one_line(tmp_path, capsys):
    code = main(["dataset", "issues", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    _one_line_error(capsys, code, 3, "nowhere")
    assert not (tmp_path / "o").exists()


def test_out_inside_the_data_is_refused(tmp_path, capsys):
    data = tmp_path / "mini"
    shutil.copytree(MINI, data)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    code = main(["dataset", "issues", str(data), "--out", str(data / "FER2013Train" / "issues"),
                 "--predictions", "model"])
    _one_line_error(capsys, code, 3, "outside the data set")
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


def test_corrupt_image_is_one_line_naming_it(tmp_path, capsys):
    data = tmp_path / "mini"
    shutil.copytree(MINI, data)
    (data / "FER2013Valid" / "fer0029669.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code = main(["dataset", "issues", str(data), "--split", "valid", "--out", str(tmp_path / "o"),
                 "--predictions", "model", "--threads", "1"])
    _one_line_error(capsys, code, 3, "fer0029669.png")
    assert not (tmp_path / "o" / "issues.json").exists()


def test_bad_label_file_is_one_line(tmp_path, capsys):
    data = tmp_path / "mini"
    shutil.copytree(MINI, data)
    (data / "FER2013Valid" / "label.csv").write_bytes(b"fer0029669.png,x,1,2\n")
    code = main(["dataset", "issues", str(data), "--split", "valid", "--out", str(tmp_path / "o")])
    _one_line_error(capsys, code, 3, "label.csv")


def test_unwritable_out_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["dataset", "issues", str(MINI), "--split", "test", "--out", str(blocker / "o"),
                 "--predictions", "model", "--threads", "1"])
    _one_line_error(capsys, code, 6, "file")


def test_features_cache_must_be_a_folder(tmp_path, capsys):
    f = tmp_path / "cache.npz"
    f.write_text("x")
    code = main(["dataset", "issues", str(MINI), "--split", "train", "--out", str(tmp_path / "o"),
                 "--features-cache", str(f)])
    _one_line_error(capsys, code, 3, "cache.npz")


def test_a_failed_write_is_named_and_leaves_no_partial_file(tmp_path, capsys):
    out = tmp_path / "o"
    args = ["dataset", "issues", str(_planted_copy(tmp_path)), "--split", "train", "--out", str(out),
            "--predictions", "model", "--threads", "1"]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"issues.csv", "issues.json", "contact_sheet.png"}
    capsys.readouterr()
    (out / "issues.json").unlink()
    (out / "issues.json").mkdir()  # the JSON cannot be written: the command stops there
    code = main(args)
    _one_line_error(capsys, code, 6, "issues.json")
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind
    for name in ("issues.csv", "contact_sheet.png"):  # rewritten whole (same inputs, same bytes) or not at all
        assert (out / name).read_bytes() == before[name]


def test_fewer_than_two_folds_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["dataset", "issues", str(MINI), "--out", str(tmp_path / "o"), "--folds", "1"])
    assert e.value.code == 2 and "2 or more folds" in capsys.readouterr().err


def test_photos_take_the_models_probabilities_through_the_pipeline(tmp_path):
    """The detect route (real photos, data the model never saw): every readable photo with a face is scored,
    a photo without a face and an unreadable one are left out and counted."""
    photos = Path(__file__).parents[1] / "assets" / "photos"
    data = tmp_path / "photos"
    shutil.copytree(photos / "labeled", data)
    shutil.copy(photos / "no_face_landscape.jpg", data / "landscape.jpg")
    (data / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    rows = (data / "labels.csv").read_text().splitlines()
    (data / "labels.csv").write_text("\n".join([*rows, "landscape.jpg,neutral", "broken.jpg,happiness"]) + "\n")
    out = tmp_path / "issues"
    assert main(["dataset", "issues", str(data / "labels.csv"), "--out", str(out), "--threads", "1"]) == 0
    split = json.loads((out / "issues.json").read_text())["splits"]["all"]
    labelled = len(rows) - 1  # the fixture photos, each with a face
    assert split["route"] == "model" and split["predictions"]["faces"] == "detect"
    assert split["scored"] == labelled and split["predictions"]["no_face"] == 2  # the landscape and the broken file
    assert {r["path"] for r in _csv(out / "issues.csv")} <= {r.split(",")[0] for r in rows[1:]}
