"""``openfer dataset pseudolabel``: the threshold rule on a hand-computed case, the AU agreement states, and the
command end to end on the small real FER+ sample (tests/assets/dataset/ferplus_mini): labels kept and not kept,
a given label rectified where the model is confident, labels.csv readable by openfer train, one-line errors,
an output that is an input refused."""

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from openfer.cli import main
from openfer.components.au import AU_NAMES
from openfer.dataset.pseudolabel import (
    AGREEMENT,
    RECORD,
    ScoreModel,
    Validation,
    choose_threshold,
    prototype_agreement,
)
from openfer.errors import InputError
from openfer.eval.datasets import FERPLUS_CLASSES, read_csv_labels
from openfer.eval.evaluate import read_dataset
from openfer.runtime import as_model

MINI = Path(__file__).parents[1] / "assets" / "dataset" / "ferplus_mini"
TEST = MINI / "FER2013Test"
CUT, MID = 0.99, 0.95  # top probabilities the crafted validation record makes the rectify and label thresholds


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------------------------------- pure parts
def test_threshold_is_the_lowest_whose_wilson_lower_bound_reaches_the_target():
    # kept at each distinct score: 0.9 -> 1/1 (fewer than min_kept), 0.8 -> 2/3 (the tie counts together),
    # 0.7 -> 3/4, 0.6 -> 3/5. Wilson 95% lower bounds: 2/3 -> 0.2077, 3/4 -> 0.3006, 3/5 -> 0.2341
    scores = np.array([0.8, 0.9, 0.6, 0.7, 0.8])
    correct = np.array([True, True, False, True, False])
    ch = choose_threshold(scores, correct, target=0.3, min_kept=2)
    assert ch.met and ch.threshold == 0.7
    assert (ch.kept, ch.correct, ch.n) == (4, 3, 5)
    assert ch.precision == 0.75 and ch.coverage == 0.8
    assert ch.low == pytest.approx(0.3006, abs=1e-4) and ch.high == pytest.approx(0.9544, abs=1e-4)
    # 0.8 fails although 0.7 passes: the rule takes the lowest passing threshold, not the first failure
    none = choose_threshold(scores, correct, target=0.35, min_kept=2)
    assert not none.met and none.threshold == math.inf and none.kept == 0
    assert none.best_low == pytest.approx(0.3006, abs=1e-4)
    # min_kept above every candidate: nothing, and no best bound to report
    assert math.isnan(choose_threshold(scores, correct, 0.3, min_kept=6).best_low)
    # NaN scores (no face) are never kept but count in the coverage
    ch = choose_threshold(np.r_[scores, np.nan], np.r_[correct, True], 0.3, 2)
    assert ch.threshold == 0.7 and ch.n == 6 and ch.coverage == pytest.approx(4 / 6)
    with pytest.raises(InputError, match="between 0 and 1"):
        choose_threshold(scores, correct, target=1.0)


def _aus(**values: float) -> np.ndarray:
    a = np.zeros(len(AU_NAMES))
    for k, v in values.items():
        a[AU_NAMES.index(k)] = v
    return a


def _probs(cls: str, p: float = 0.9) -> np.ndarray:
    out = np.full(len(FERPLUS_CLASSES), (1 - p) / (len(FERPLUS_CLASSES) - 1))
    out[FERPLUS_CLASSES.index(cls)] = p
    return out


def test_prototype_agreement_follows_the_reasons_rules():
    smile = _aus(AU6=3.0, AU12=3.5)
    probs = np.stack([_probs("happiness"), _probs("sadness"), _probs("anger"), _probs("neutral"),
                      _probs("neutral"), _probs("happiness")])
    aus = np.stack([smile, smile, _aus(AU4=1.5), _aus(), _aus(AU26=3.0), np.full(len(AU_NAMES), np.nan)])
    got = [AGREEMENT[k] for k in prototype_agreement(probs, aus, AU_NAMES, FERPLUS_CLASSES)]
    # happiness with AU6+AU12; sadness under a clear smile; anger with 1 of 4 prototype AUs; a still face;
    # neutral with a strong AU; no AUs measured
    assert got == ["match", "conflict", "weak", "match", "weak", "none"]


def test_score_model_stays_the_probability_without_evidence_against_it():
    p = np.array([0.6, 0.9, 0.99, np.nan])
    ag = np.zeros(4, int)
    assert np.allclose(ScoreModel()(p, ag)[:3], p[:3]) and np.isnan(ScoreModel()(p, ag)[3])
    rng = np.random.default_rng(0)
    pv = rng.uniform(0.3, 1.0, 4000)
    state = rng.integers(0, 2, 4000)  # match or weak
    correct = rng.random(4000) < np.where(state == 1, pv - 0.2, pv)  # weak faces are right less often
    m = ScoreModel.fit(pv, state, correct)
    assert m.c[0] == 0 and m.c[1] < -0.5  # learnt from the data
    assert m.c[2] == pytest.approx(0) and m.c[3] == pytest.approx(0)  # no conflict / none image: left at 0


def test_a_record_for_another_model_is_refused(tmp_path):
    val = Validation("x", "crops", "other", "0" * 64, FERPLUS_CLASSES, np.array([0.9]), np.array([1]),
                     np.array([0]), np.array([1]))
    with pytest.raises(InputError, match="not fernet_s"):
        val.check_model("fernet_s", "f" * 64)
    if RECORD.is_file():  # the shipped record is for the shipped model
        m = as_model("fernet_s")
        Validation.from_record(RECORD).check_model(m.name, m.sha256)


# ---------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def record(tmp_path_factory) -> Path:
    """A validation record for the shipped model: 150 images at top probability 0.99, all right (Wilson lower
    bound 0.975: the rectify threshold, 0.97); 100 at 0.95, 95 right (with the first: 245/250, bound 0.954:
    the label threshold, 0.9); 40 at 0.5, half right (265/290, bound 0.88: below both)."""
    m = as_model("fernet_s")
    n = 290
    p = np.r_[np.full(150, CUT), np.full(100, MID), np.full(40, 0.5)]
    labels = np.zeros(n, np.int64)
    pred = np.r_[np.zeros(245, np.int64), np.ones(5, np.int64), np.zeros(20, np.int64), np.ones(20, np.int64)]
    val = Validation("crafted", "crops", m.name, m.sha256, FERPLUS_CLASSES, p, pred, np.zeros(n, np.int64), labels)
    path = tmp_path_factory.mktemp("record") / "val_validation.json"
    path.write_text(json.dumps(val.to_record()))
    return path


def _run(args: list[str]) -> int:
    return main(["dataset", "pseudolabel", *args, "--threads", "1"])


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory, record):
    out = tmp_path_factory.mktemp("plain") / "labels.csv"
    code = _run([str(TEST), "--out", str(out), "--validation", str(record)])
    assert code == 0
    return out, _csv(out), _csv(out.with_name("labels_all.csv")), json.loads(out.with_name("labels_report.json")
                                                                             .read_text())


def test_labels_are_kept_only_above_the_threshold(unlabelled):
    out, kept, rows, doc = unlabelled
    assert len(rows) == len(list(TEST.glob("*.png"))) == doc["images"]["n"]
    assert doc["images"]["faces"] == "crops" and doc["threshold"]["met"]
    high = [r for r in rows if float(r["p_top"]) >= MID]
    low = [r for r in rows if float(r["p_top"]) < MID]
    assert high and low  # both cases present
    assert all(r["status"] == "kept" and r["label"] == r["model_label"] for r in high)
    assert all(r["status"] == "low_score" and r["label"] == "" for r in low)
    assert [r["path"] for r in kept] == [r["path"] for r in high]
    assert all(r["reason"] for r in rows) and all(r["agreement"] in AGREEMENT for r in rows)
    assert doc["validation"]["kept"] == 250 and doc["validation"]["precision"] == 0.98
    assert doc["threshold"]["rectify"]["kept"] == 150
    assert doc["counts"]["kept"] == len(high) and doc["labels_written"] == len(kept)
    md = out.with_name("labels_report.md").read_text()
    assert "## Threshold" in md and "## Given labels" not in md
    assert not out.with_name("labels_validation.json").exists()  # the validation was a record already


def _given_csv(folder: Path, rows: list[tuple[str, str]]) -> Path:
    path = folder / "prompts.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "prompt"])
        for name, label in rows:
            w.writerow([str(TEST / name), label])
    return path


def test_given_label_rectified_where_the_model_is_confident(tmp_path, record, unlabelled):
    _, _, plain, _ = unlabelled
    by = {Path(r["path"]).name: r for r in plain}
    sure = next(n for n, r in by.items() if float(r["p_top"]) >= CUT)
    mid = next(n for n, r in by.items() if MID + 1e-4 < float(r["p_top"]) < CUT - 1e-4)
    unsure = next(n for n, r in by.items() if float(r["p_top"]) < MID)
    wrong = next(c for c in FERPLUS_CLASSES if c != by[sure]["model_label"])
    other = next(c for c in FERPLUS_CLASSES if c != by[unsure]["model_label"])
    third = next(c for c in FERPLUS_CLASSES if c != by[mid]["model_label"])
    data = _given_csv(tmp_path, [(sure, wrong), (unsure, other), (mid, third)])
    out = tmp_path / "out" / "labels.csv"
    assert _run([str(data), "--given", "prompt", "--out", str(out), "--validation", str(record)]) == 0
    rows = {Path(r["path"]).name: r for r in _csv(out.with_name("labels_all.csv"))}
    r = rows[sure]
    assert (r["label"], r["status"], r["given"], r["rectified"]) == (by[sure]["model_label"], "kept", wrong, "yes")
    assert r["reason"].startswith(f"given {wrong}, model {by[sure]['model_label']} (")
    r = rows[unsure]  # the model is not confident: the given label stands
    assert (r["label"], r["status"], r["rectified"]) == (other, "given", "no")
    r = rows[mid]  # confident enough to label, not to change a given label
    assert (r["label"], r["status"], r["rectified"]) == (third, "given", "no")
    assert "below the rectify threshold" in r["reason"]
    doc = json.loads(out.with_name("labels_report.json").read_text())
    g = doc["given"]
    assert (g["with_given"], g["rectified"], g["kept_as_given"]) == (3, 1, 2)
    assert [c["path"] for c in g["changes"]] == [rows[sure]["path"]]
    conf = np.array(g["confusion"]["counts"])
    assert conf.sum() == 3 and conf[FERPLUS_CLASSES.index(wrong), FERPLUS_CLASSES.index(by[sure]["model_label"])] == 1
    assert "## Given labels" in out.with_name("labels_report.md").read_text()
    # labels.csv: what read_csv_labels and openfer train's loader read
    lab = read_csv_labels(out, classes=None)
    assert len(lab) == 3 and all(p.is_file() for p in lab.paths)
    train = read_dataset(out, "csv", split="train", classes=None)
    assert sorted(train.classes[k] for k in train.labels) == sorted([by[sure]["model_label"], other, third])
    # --drop-unconfirmed: no label where the model did not confirm it
    out2 = tmp_path / "out2" / "labels.csv"
    assert _run([str(data), "--given", "prompt", "--out", str(out2), "--validation", str(record),
                 "--drop-unconfirmed"]) == 0
    assert [Path(r["path"]).name for r in _csv(out2)] == [sure]


def test_unknown_given_label_is_one_line_naming_value_and_file(tmp_path, record, capsys):
    data = _given_csv(tmp_path, [("fer0032388.png", "happiness"), ("fer0032487.png", "banana")])
    code = _run([str(data), "--given", "prompt", "--out", str(tmp_path / "l.csv"), "--validation", str(record)])
    err = capsys.readouterr().err.strip()
    assert code == 3 and len(err.splitlines()) == 1
    assert "'banana'" in err and f"{data}:3" in err and "neutral" in err
    code = _run([str(data), "--given", "label", "--out", str(tmp_path / "l.csv"), "--validation", str(record)])
    err = capsys.readouterr().err.strip()
    assert code == 3 and "no such column" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "l.csv").exists()


def test_an_output_that_is_an_input_is_refused(tmp_path, record, capsys):
    data = _given_csv(tmp_path, [("fer0032388.png", "happiness")])
    before = data.read_text()
    assert _run([str(data), "--out", str(data), "--validation", str(record)]) == 3
    assert "is an input" in capsys.readouterr().err
    assert data.read_text() == before
    # the side files count too: x_validation.json of --out x.csv would replace the record given as --validation
    clash = tmp_path / "x_validation.json"
    clash.write_text(record.read_text())
    assert _run([str(data), "--out", str(tmp_path / "x.csv"), "--validation", str(clash)]) == 3
    assert "is an input" in capsys.readouterr().err
    assert _run([str(data), "--out", str(tmp_path / "x.txt"), "--validation", str(record)]) == 3
    assert "must be a .csv" in capsys.readouterr().err


def test_no_threshold_reaching_the_target_keeps_nothing(tmp_path, record, capsys):
    out = tmp_path / "labels.csv"
    assert _run([str(TEST), "--out", str(out), "--validation", str(record), "--precision", "0.99"]) == 3
    err = capsys.readouterr().err
    assert "no threshold reaches precision 0.99" in err
    assert _csv(out) == []  # header only
    doc = json.loads(out.with_name("labels_report.json").read_text())
    assert doc["threshold"]["value"] is None and doc["labels_written"] == 0


def test_validation_from_a_labelled_data_set_writes_its_record(tmp_path):
    out = tmp_path / "labels.csv"
    assert _run([str(TEST), "--out", str(out), "--validation", str(MINI), "--precision", "0.5",
                 "--min-kept", "3"]) == 0
    doc = json.loads(out.with_name("labels_report.json").read_text())
    assert doc["validation"]["n"] == len(read_dataset(MINI, "ferplus", "valid")) and doc["validation"]["source"]
    rec = Validation.from_record(out.with_name("labels_validation.json"))
    assert len(rec.labels) == doc["validation"]["n"] and rec.faces == "crops"


def test_photos_go_through_the_pipeline_and_no_face_gets_no_label(tmp_path, record):
    photos = Path(__file__).parents[1] / "assets" / "photos"
    out = tmp_path / "labels.csv"
    assert _run([str(photos / "single_face.jpg"), str(photos / "no_face_landscape.jpg"), "--out", str(out),
                 "--validation", str(record)]) == 0
    rows = {Path(r["path"]).name: r for r in _csv(out.with_name("labels_all.csv"))}
    assert len(rows) == 2
    face, none = rows["single_face.jpg"], rows["no_face_landscape.jpg"]
    assert (none["status"], none["label"], none["score"], none["reason"]) == ("no_face", "", "", "no face found")
    assert face["status"] in ("kept", "low_score") and face["model_label"] in FERPLUS_CLASSES
    assert face["agreement"] in AGREEMENT and float(face["p_top"]) > 0
    doc = json.loads(out.with_name("labels_report.json").read_text())
    assert doc["images"]["faces"] == "detect" and doc["counts"]["no_face"] == 1
    assert any("chosen on crops" in w for w in doc["warnings"])  # the record is of crops, these are photos


def test_without_validation_the_shipped_record_is_used(tmp_path):
    out = tmp_path / "labels.csv"
    assert _run([str(TEST / "fer0032388.png"), "--faces", "crops", "--out", str(out)]) == 0
    doc = json.loads(out.with_name("labels_report.json").read_text())
    v = doc["validation"]
    assert "shipped" in v["record"] and v["n"] > 3000 and v["precision_95"][0] >= 0.9
    assert doc["threshold"]["met"] and doc["threshold"]["rectify"]["met"]
    assert not out.with_name("labels_validation.json").exists()


def test_recursive_takes_the_images_of_subfolders_too(tmp_path, record):
    photos = Path(__file__).parents[1] / "assets" / "photos"
    nested = tmp_path / "study" / "session1"
    nested.mkdir(parents=True)
    shutil.copy(photos / "single_face.jpg", tmp_path / "study" / "top.jpg")
    shutil.copy(photos / "single_face.jpg", nested / "a.jpg")
    out = tmp_path / "labels.csv"

    def names() -> list[str]:
        return sorted(Path(r["path"]).name for r in _csv(out.with_name("labels_all.csv")))

    assert _run([str(tmp_path / "study"), "--out", str(out), "--validation", str(record)]) == 0
    assert names() == ["top.jpg"]
    assert _run([str(tmp_path / "study"), "-r", "--out", str(out), "--validation", str(record)]) == 0
    assert names() == ["a.jpg", "top.jpg"]


def test_a_shipped_record_that_does_not_match_the_registry_is_refused(tmp_path, monkeypatch, capsys):
    import openfer.runtime.onnx as onnx

    reg = {k: dict(v) for k, v in onnx.registry().items()}
    reg["pseudolabel_validation"]["sha256"] = "0" * 64  # as if the installed record had been edited
    monkeypatch.setattr(onnx, "registry", lambda: reg)
    out = tmp_path / "labels.csv"
    code = _run([str(TEST / "fer0032388.png"), "--faces", "crops", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "pseudolabel_validation.json" in err[0] and "sha256" in err[0]
    assert "Traceback" not in err[0] and not out.exists()
