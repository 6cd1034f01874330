"""Data set readers on small synthetic files in every format: labels, splits, soft targets, coverage,
and the error messages for malformed input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from openfer.errors import InputError, ShapeError
from openfer.eval.datasets import (
    LabeledImages,
    label_coverage,
    load_gray_stack,
    read_affectnet_csv,
    read_csv_labels,
    read_fer2013_csv,
    read_ferplus,
    read_imagefolder,
    read_rafdb,
    relabel,
)
from openfer.eval.evaluate import FORMATS, read_dataset
from openfer.eval.labels import FERPLUS_CLASSES

MODEL = Path(__file__).resolve().parents[2] / "src" / "openfer" / "models" / "fernet_s.onnx"
NEU, HAP, SUR, SAD, ANG, DIS, FEA, CON = range(8)  # FER+ class indices

# fer2013.csv rows: (emotion 0..6 = Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral, Usage)
FER_ROWS = [(3, "Training"), (0, "PublicTest"), (6, "PrivateTest"), (5, "PrivateTest"), (1, "Training"),
            (4, "PrivateTest")]
# fer2013new.csv votes per row:
# neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
FER_VOTES = [
    [0, 10, 0, 0, 0, 0, 0, 0, 0, 0],  # row 0 train: happiness
    [1, 0, 0, 0, 9, 0, 0, 0, 0, 0],  # row 1 valid: anger (the single neutral vote is discarded)
    [8, 2, 0, 0, 0, 0, 0, 0, 0, 0],  # row 2 test: neutral, soft 0.8 / 0.2
    [0, 0, 4, 0, 0, 0, 4, 0, 2, 0],  # row 3 test: no majority -> -1
    [0, 0, 0, 0, 0, 7, 0, 0, 3, 0],  # row 4 train: disgust
    [0, 0, 0, 0, 1, 0, 0, 6, 0, 3],  # row 5 test: contempt; soft 1.0 contempt (stray anger, NF removed)
]


def _pixels(rng: np.random.Generator, n: int = 2304) -> np.ndarray:
    return rng.integers(0, 256, n, dtype=np.int64)


@pytest.fixture()
def fer2013(tmp_path):
    rng = np.random.default_rng(0)
    images = [_pixels(rng) for _ in FER_ROWS]
    path = tmp_path / "fer2013.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for (e, usage), px in zip(FER_ROWS, images, strict=True):
            w.writerow([e, " ".join(map(str, px)), usage])
    votes = tmp_path / "fer2013new.csv"
    with open(votes, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust",
                    "fear", "contempt", "unknown", "NF"])
        for i, ((_, usage), v) in enumerate(zip(FER_ROWS, FER_VOTES, strict=True)):
            w.writerow([usage, f"fer{i:07d}.png", *v])
    return path, votes, [px.astype(np.uint8).reshape(48, 48) for px in images]


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _jpg(path: Path, seed: int, size: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


@pytest.fixture()
def rafdb(tmp_path):
    root = tmp_path / "raf" / "basic"
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text(
        "train_00001.jpg 5\ntrain_00002.jpg 4\n\ntest_0001.jpg 1\ntest_0002.jpg 7\ntest_0003.jpg 3\n")
    for i, name in enumerate(["train_00001", "train_00002", "test_0001", "test_0003"]):
        _jpg(root / "Image" / "aligned" / f"{name}_aligned.jpg", i)
    _jpg(root / "Image" / "original" / "test_0002.jpg", 9, size=64)  # only the original exists
    return root


@pytest.fixture()
def imagefolder(tmp_path):
    root = tmp_path / "imf"
    for k, (folder, n) in enumerate([("Happy", 2), ("angry", 1), ("Surprised", 3), ("engagement", 2)]):
        for i in range(n):
            _jpg(root / folder / f"{i}.jpg", 10 * k + i)
    (root / "angry" / "notes.txt").write_text("not an image")
    return root


# ---------------------------------------------------------------- fer2013.csv


def test_fer2013_original_labels_splits_and_pixels(fer2013):
    path, _, images = fer2013
    test = read_fer2013_csv(path, "test")
    assert test.classes == FERPLUS_CLASSES and test.split == "test" and test.soft is None
    assert test.labels.tolist() == [NEU, SUR, SAD]  # emotions 6, 5, 4
    assert [p.name for p in test.paths] == ["fer2013.csv#row2", "fer2013.csv#row3", "fer2013.csv#row5"]
    assert test.images.shape == (3, 48, 48) and test.images.dtype == np.uint8
    np.testing.assert_array_equal(test.images, np.stack([images[2], images[3], images[5]]))
    assert read_fer2013_csv(path, "train").labels.tolist() == [HAP, DIS]  # 3 Happy, 1 Disgust
    valid = read_fer2013_csv(path, "valid")
    assert valid.labels.tolist() == [ANG] and valid.paths[0].name == "fer2013.csv#row1"
    # contempt is a class of the set, with no samples
    assert test.counts()["contempt"] == 0


def test_fer2013_load_gray_stack_uses_in_memory_images(fer2013):
    path, _, images = fer2013
    test = read_fer2013_csv(path, "test")
    np.testing.assert_array_equal(load_gray_stack(test, 48), test.images)  # paths are synthetic
    big = load_gray_stack(test, 64)
    assert big.shape == (3, 64, 64) and big.dtype == np.uint8
    sub = test.subset(test.labels == SUR)
    np.testing.assert_array_equal(load_gray_stack(sub), images[3][None])


def test_fer2013_with_ferplus_votes(fer2013):
    path, votes, _ = fer2013
    test = read_fer2013_csv(path, "test", votes_csv=votes)
    assert test.labels.tolist() == [NEU, -1, CON]
    expected = np.zeros((3, 8), np.float32)
    expected[0, NEU], expected[0, HAP] = 0.8, 0.2
    expected[1, SUR], expected[1, FEA] = 0.5, 0.5
    expected[2, CON] = 1.0
    np.testing.assert_allclose(test.soft, expected, atol=1e-6)
    assert read_fer2013_csv(path, "valid", votes).labels.tolist() == [ANG]
    assert read_fer2013_csv(path, "train", votes).labels.tolist() == [HAP, DIS]
    majority = test.subset(test.labels >= 0)
    assert len(majority) == 2 and majority.images.shape == (2, 48, 48)
    assert majority.soft.shape == (2, 8)


def test_fer2013_votes_must_match_rows(fer2013, tmp_path):
    path, votes, _ = fer2013
    lines = votes.read_text().splitlines()
    short = tmp_path / "short.csv"
    short.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(InputError, match="5 rows but fer2013.csv has 6"):
        read_fer2013_csv(path, "test", short)
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("\n".join([lines[0], lines[2], lines[1], *lines[3:]]) + "\n")
    msg = r"swapped.csv:2: Usage 'PublicTest' but fer2013.csv row 0 has 'Training'"
    with pytest.raises(InputError, match=msg):
        read_fer2013_csv(path, "test", swapped)
    nocol = _write_csv(tmp_path / "nocol.csv", ["Usage", "Image name", "neutral"], [["Training", "x", 1]])
    with pytest.raises(InputError, match="missing column\\(s\\) happiness, surprise"):
        read_fer2013_csv(path, "test", nocol)
    with pytest.raises(InputError, match="not found"):
        read_fer2013_csv(path, "test", tmp_path / "nope.csv")


def test_fer2013_malformed(tmp_path):
    px = " ".join(["7"] * 2304)
    bad = _write_csv(tmp_path / "a.csv", ["emotion", "Usage"], [[0, "Training"]])
    with pytest.raises(InputError, match="a.csv: missing column\\(s\\) pixels; found emotion, Usage"):
        read_fer2013_csv(bad, "train")
    short = _write_csv(tmp_path / "b.csv", ["emotion", "pixels", "Usage"],
                       [[0, px, "Training"], [1, " ".join(["7"] * 100), "Training"]])
    with pytest.raises(InputError, match="b.csv:3: expected 2304 pixels \\(48x48\\), got 100"):
        read_fer2013_csv(short, "train")
    # rows of other splits are not decoded, so the bad row only matters for its own split
    assert len(read_fer2013_csv(short, "test")) == 0
    big = _write_csv(tmp_path / "c.csv", ["emotion", "pixels", "Usage"],
                     [[0, px.replace("7", "300", 1), "Training"]])
    with pytest.raises(InputError, match="c.csv:2: pixels must be integers 0..255"):
        read_fer2013_csv(big, "train")
    emo = _write_csv(tmp_path / "d.csv", ["emotion", "pixels", "Usage"], [[7, px, "Training"]])
    with pytest.raises(InputError, match="d.csv:2: emotion must be 0..6, got 7"):
        read_fer2013_csv(emo, "train")
    usage = _write_csv(tmp_path / "e.csv", ["emotion", "pixels", "Usage"], [[0, px, "Validation"]])
    with pytest.raises(InputError, match="e.csv:2: Usage must be one of Training, PublicTest, PrivateTest, "
                                         "got 'Validation'"):
        read_fer2013_csv(usage, "train")
    with pytest.raises(InputError, match="FER2013 split must be one of train, valid, test, got 'validation'"):
        read_fer2013_csv(emo, "validation")
    empty = tmp_path / "f.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="empty file"):
        read_fer2013_csv(empty, "train")
    with pytest.raises(InputError, match="not found"):
        read_fer2013_csv(tmp_path / "missing.csv", "train")


# ---------------------------------------------------------------- RAF-DB


def test_rafdb_labels_splits_and_image_fallback(rafdb):
    train = read_rafdb(rafdb, "train")
    assert train.classes == FERPLUS_CLASSES and train.split == "train"
    assert train.labels.tolist() == [SAD, HAP]  # 5 Sadness, 4 Happiness
    assert [p.relative_to(rafdb).as_posix() for p in train.paths] == [
        "Image/aligned/train_00001_aligned.jpg", "Image/aligned/train_00002_aligned.jpg"]
    test = read_rafdb(rafdb.parent, "test")  # the folder holding basic/ works too
    assert test.labels.tolist() == [SUR, NEU, DIS]  # 1 Surprise, 7 Neutral, 3 Disgust
    assert test.paths[1].relative_to(rafdb).as_posix() == "Image/original/test_0002.jpg"
    stack = load_gray_stack(test, 48)
    assert stack.shape == (3, 48, 48) and stack.dtype == np.uint8


def test_rafdb_errors(rafdb, tmp_path):
    with pytest.raises(InputError, match="RAF-DB has no validation split"):
        read_rafdb(rafdb, "valid")
    with pytest.raises(InputError, match="RAF-DB split must be one of train, test, got 'val'"):
        read_rafdb(rafdb, "val")
    with pytest.raises(InputError, match="list_patition_label.txt: not found"):
        read_rafdb(tmp_path / "empty", "test")
    labels = rafdb / "EmoLabel" / "list_patition_label.txt"
    labels.write_text("train_00001.jpg 8\n")
    with pytest.raises(InputError, match="list_patition_label.txt:1: label must be 1..7, got '8'"):
        read_rafdb(rafdb, "train")
    labels.write_text("train_00001.jpg 1\nval_00001.jpg 2\n")
    msg = ":2: file name must start with train_ or test_, got 'val_00001.jpg'"
    with pytest.raises(InputError, match=msg):
        read_rafdb(rafdb, "train")
    labels.write_text("train_00001.jpg\n")
    with pytest.raises(InputError, match=":1: expected 'name label'"):
        read_rafdb(rafdb, "train")


# ---------------------------------------------------------------- AffectNet


AFFECTNET_HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                    "facial_landmarks", "expression", "valence", "arousal"]


def test_affectnet_labels_and_valence_arousal(tmp_path):
    lm = "1.0;2.0;3.0;4.0"
    rows = [["689/a.jpg", 10, 10, 80, 80, lm, 0, 0.1, -0.2],
            ["689/b.jpg", 10, 10, 80, 80, lm, 1, 0.9, 0.5],
            ["12/c.png", 10, 10, 80, 80, lm, 7, -0.5, 0.25],
            ["12/d.png", 10, 10, 80, 80, lm, 6, -1.0, 1.0],
            ["12/e.png", 10, 10, 80, 80, lm, 8, -2, -2],
            ["12/f.png", 10, 10, 80, 80, lm, 10, -2, -2]]
    path = _write_csv(tmp_path / "lists" / "validation.csv", AFFECTNET_HEADER, rows)
    data = read_affectnet_csv(path)
    assert data.classes == FERPLUS_CLASSES and data.split is None
    assert data.labels.tolist() == [NEU, HAP, CON, ANG, -1, -1]
    assert data.paths[0] == tmp_path / "lists" / "689" / "a.jpg"
    np.testing.assert_allclose(data.targets["valence"], [0.1, 0.9, -0.5, -1.0, np.nan, np.nan])
    np.testing.assert_allclose(data.targets["arousal"], [-0.2, 0.5, 0.25, 1.0, np.nan, np.nan])
    other = read_affectnet_csv(path, image_root=tmp_path / "Manually_Annotated_Images")
    assert other.paths[2] == tmp_path / "Manually_Annotated_Images" / "12" / "c.png"
    kept = data.subset(data.labels >= 0)
    assert kept.targets["valence"].tolist() == pytest.approx([0.1, 0.9, -0.5, -1.0])


def test_affectnet_errors(tmp_path):
    path = _write_csv(tmp_path / "a.csv", ["subDirectory_filePath", "valence"], [["x.jpg", 0.1]])
    with pytest.raises(InputError, match="a.csv: missing column\\(s\\) expression"):
        read_affectnet_csv(path)
    path = _write_csv(tmp_path / "b.csv", AFFECTNET_HEADER, [["x.jpg", 0, 0, 1, 1, "", 11, 0, 0]])
    with pytest.raises(InputError, match="b.csv:2: expression must be 0..10, got 11"):
        read_affectnet_csv(path)
    path = _write_csv(tmp_path / "c.csv", AFFECTNET_HEADER, [["x.jpg", 0, 0, 1, 1, "", 2, "high", 0]])
    with pytest.raises(InputError, match="c.csv:2: valence must be a number, got 'high'"):
        read_affectnet_csv(path)
    path = _write_csv(tmp_path / "d.csv", AFFECTNET_HEADER, [])
    with pytest.raises(InputError, match="d.csv: no rows"):
        read_affectnet_csv(path)


# ---------------------------------------------------------------- CSV path,label and ImageFolder


def test_csv_labels_with_synonyms_and_valence_arousal(tmp_path):
    path = _write_csv(tmp_path / "labels.csv", ["path", "label", "valence", "arousal"],
                      [["a.jpg", "Happy", 0.5, 0.1], ["b.jpg", "ANGRY", -0.5, ""], ["c.jpg", "bored", 0, 0]])
    data = read_csv_labels(path)
    assert data.labels.tolist() == [HAP, ANG, -1] and data.classes == FERPLUS_CLASSES
    assert data.paths[1] == tmp_path / "b.jpg"
    np.testing.assert_allclose(data.targets["valence"], [0.5, -0.5, 0.0])
    np.testing.assert_allclose(data.targets["arousal"], [0.1, np.nan, 0.0])
    found = read_csv_labels(path, classes=None)
    assert found.classes == ("happiness", "anger", "bored") and found.labels.tolist() == [0, 1, 2]
    plain = _write_csv(tmp_path / "plain.csv", ["path", "label"], [["a.jpg", "sad"]])
    assert read_csv_labels(plain).targets is None and read_csv_labels(plain).labels.tolist() == [SAD]
    bad = _write_csv(tmp_path / "bad.csv", ["path", "label", "valence"], [["a.jpg", "sad", "x"]])
    with pytest.raises(InputError, match="bad.csv:2: valence must be a number, got 'x'"):
        read_csv_labels(bad)
    nolabel = _write_csv(tmp_path / "nolabel.csv", ["path", "valence"], [["a.jpg", 0.1]])
    with pytest.raises(InputError, match="needs 'path' and 'label' columns"):
        read_csv_labels(nolabel)


def test_imagefolder_synonym_folders(imagefolder):
    data = read_imagefolder(imagefolder)
    names = [(p.parent.name, int(y)) for p, y in zip(data.paths, data.labels, strict=True)]
    assert names == [("Happy", HAP), ("Happy", HAP), ("Surprised", SUR), ("Surprised", SUR),
                     ("Surprised", SUR), ("angry", ANG), ("engagement", -1), ("engagement", -1)]
    found = read_imagefolder(imagefolder, classes=None)
    assert found.classes == ("happiness", "surprise", "anger", "engagement")
    assert found.counts() == {"happiness": 2, "surprise": 3, "anger": 1, "engagement": 2}


# ---------------------------------------------------------------- coverage and relabel


def test_label_coverage_names_both_sides(imagefolder):
    data = read_imagefolder(imagefolder, classes=None)
    cov = label_coverage(data, FERPLUS_CLASSES)
    assert cov == {
        "matched": {"happiness": 2, "surprise": 3, "anger": 1},
        "not_in_model": {"engagement": 2},
        "not_in_data": ["neutral", "sadness", "disgust", "fear", "contempt"],
        "unlabeled": 0,
    }
    # model class names are matched case-insensitively with synonyms, reported in the model's spelling
    cov = label_coverage(data, ("Happy", "Angry", "Neutral"))
    assert cov["matched"] == {"Happy": 2, "Angry": 1}
    assert cov["not_in_model"] == {"surprise": 3, "engagement": 2} and cov["not_in_data"] == ["Neutral"]
    json.dumps(cov)  # goes into the JSON report as is
    cov = label_coverage(read_imagefolder(imagefolder), FERPLUS_CLASSES)
    assert cov["unlabeled"] == 2 and cov["not_in_model"] == {}


def test_relabel_reorders_labels_and_soft_targets(fer2013):
    path, votes, _ = fer2013
    test = read_fer2013_csv(path, "test", votes)
    model = ("Contempt", "Neutral", "Happy")
    r = relabel(test, model)
    assert r.classes == model and r.labels.tolist() == [1, -1, 0]
    np.testing.assert_allclose(r.soft, [[0, 0.8, 0.2], [0, 0, 0], [1, 0, 0]], atol=1e-6)
    assert r.images is test.images and r.split == "test"


def test_labeled_images_validates_shapes():
    with pytest.raises(ShapeError, match="images: expected shape \\(2, H, W\\) uint8, got \\(3, 48, 48\\)"):
        LabeledImages((Path("a"), Path("b")), np.zeros(2, np.int64), FERPLUS_CLASSES, name="x",
                      images=np.zeros((3, 48, 48), np.uint8))
    with pytest.raises(ShapeError, match="targets\\['valence'\\]: expected shape \\(2,\\), got \\(1,\\)"):
        LabeledImages((Path("a"), Path("b")), np.zeros(2, np.int64), FERPLUS_CLASSES, name="x",
                      targets={"valence": np.zeros(1, np.float32)})


# ---------------------------------------------------------------- read_dataset


def test_read_dataset_guesses_every_format(fer2013, rafdb, imagefolder, tmp_path):
    path, votes, _ = fer2013
    assert FORMATS == ("ferplus", "fer2013", "imagefolder", "csv", "rafdb", "affectnet")
    assert read_dataset(path).name == "fer2013/test"
    assert read_dataset(path.parent / "fer2013.csv", split="valid").labels.tolist() == [ANG]
    assert read_dataset(path, votes=votes).labels.tolist() == [NEU, -1, CON]
    assert read_dataset(rafdb, split="train").name == "rafdb/train"
    aff = _write_csv(tmp_path / "aff" / "training.csv", AFFECTNET_HEADER,
                     [["x.jpg", 0, 0, 1, 1, "", 5, 0, 0]])
    assert read_dataset(aff).labels.tolist() == [DIS]
    plain = _write_csv(tmp_path / "plain.csv", ["path", "label"], [["a.jpg", "Surprised"]])
    assert read_dataset(plain).labels.tolist() == [SUR]
    assert read_dataset(imagefolder).labels.tolist()[-1] == -1
    assert read_dataset(imagefolder, classes=None).classes[-1] == "engagement"
    assert read_dataset(imagefolder, "imagefolder").name == str(imagefolder)


def test_read_dataset_errors(fer2013, imagefolder, tmp_path):
    path, votes, _ = fer2013
    with pytest.raises(InputError, match="unknown format 'kaggle'"):
        read_dataset(path, "kaggle")
    with pytest.raises(InputError, match="votes \\(fer2013new.csv\\) only apply to the fer2013 format"):
        read_dataset(imagefolder, votes=votes)
    with pytest.raises(InputError, match="not found"):
        read_dataset(tmp_path / "nothing")


# ---------------------------------------------------------------- through the model


@pytest.mark.skipif(not MODEL.is_file(), reason="src/openfer/models/fernet_s.onnx not in this checkout")
def test_evaluate_cli_on_fer2013_csv_uses_in_memory_images(fer2013, tmp_path, capsys):
    from openfer.cli import EXIT_OK, main

    path, votes, _ = fer2013
    out = tmp_path / "r.json"
    assert main(["evaluate", str(path), "--votes", str(votes), "--json", str(out)]) == EXIT_OK
    rep = json.loads(out.read_text())
    assert rep["split"] == "test" and rep["n"] == 2 and rep["dropped_unlabeled"] == 1
    assert rep["coverage"]["matched"] == {"neutral": 1, "contempt": 1} and rep["coverage"]["unlabeled"] == 1
    assert "samples without a usable label: 1" in capsys.readouterr().out


# ---------------------------------------------------------------- untrusted bytes (issue 10)


def test_label_file_that_is_not_utf8_is_a_named_error(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(b"path,label\na.jpg,h\xe9ureux\n")  # Latin-1
    with pytest.raises(InputError, match=r"labels.csv: not UTF-8 text \(undecodable byte 0xe9\)$"):
        read_csv_labels(path)
    raf = tmp_path / "raf" / "EmoLabel"
    raf.mkdir(parents=True)
    (raf / "list_patition_label.txt").write_bytes(b"train_00001.jpg 5\n\xff\xfe\n")
    with pytest.raises(InputError, match="list_patition_label.txt: not UTF-8 text"):
        read_rafdb(raf.parent, "train")


def test_label_file_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(b"\xef\xbb\xbfpath,label\na.jpg,happy\n")  # as Excel writes "CSV UTF-8"
    assert read_csv_labels(path).labels.tolist() == [HAP]


def test_malformed_csv_is_a_named_error(tmp_path):
    path = tmp_path / "fer2013.csv"
    path.write_text('emotion,pixels,Usage\n0,"' + "1 " * 70000 + '",Training\n')  # over csv's field limit
    with pytest.raises(InputError, match=r"fer2013.csv: malformed CSV \(Error: field larger than field limit"):
        read_fer2013_csv(path, "train")


def test_values_no_check_foresaw_are_named_errors(tmp_path, fer2013):
    labels = tmp_path / "raf" / "EmoLabel" / "list_patition_label.txt"
    labels.parent.mkdir(parents=True)
    labels.write_text("train_00001.jpg \u00b2\n")  # '²'.isdigit() is True, int('²') raises
    with pytest.raises(InputError, match=r"list_patition_label.txt:1: label must be 1..7, got '\u00b2'"):
        read_rafdb(labels.parent.parent, "train")
    path = _write_csv(tmp_path / "aff.csv", AFFECTNET_HEADER, [["x.jpg", 0, 0, 1, 1, "", "inf", 0, 0]])
    with pytest.raises(InputError, match=r"aff.csv:2: expression must be an integer 0..10, got 'inf'"):
        read_affectnet_csv(path)  # was OverflowError: cannot convert float infinity to integer
    px = " ".join(["9" * 30] * 2304)
    big = _write_csv(tmp_path / "px.csv", ["emotion", "pixels", "Usage"], [[0, px, "Training"]])
    with pytest.raises(InputError, match="px.csv:2: pixels must be integers 0..255"):
        read_fer2013_csv(big, "train")  # was OverflowError from numpy
    fer, votes, _ = fer2013
    original = votes.read_text()
    for bad in ("nan", "inf", "-1"):
        text = original.splitlines()
        text[1] = text[1].replace(",10,", f",{bad},", 1)
        votes.write_text("\n".join(text) + "\n")
        with pytest.raises(InputError, match=rf"fer2013new.csv:2: vote counts must be numbers from 0 to 1e\+06, got .*'{bad}'"):
            read_fer2013_csv(fer, "train", votes)


def test_ferplus_votes_are_checked(tmp_path):
    folder = tmp_path / "FER2013Train"
    folder.mkdir()
    (folder / "label.csv").write_text('a.png,"(0, 0, 48, 48)",4,6,0,0,0,nan,0,0,0,0\n')
    with pytest.raises(InputError, match=r"label.csv:1: vote counts must be numbers from 0 to"):
        read_ferplus(tmp_path, "train")


def test_any_failure_while_parsing_a_label_file_names_it(tmp_path):
    from openfer.eval import datasets

    path = tmp_path / "labels.csv"
    path.write_text("x\n")
    with pytest.raises(InputError, match=r"labels.csv: malformed label file \(OverflowError: too big\)$"):
        with datasets.open_label_file(path):
            raise OverflowError("too big")
    with pytest.raises(InputError, match=r"labels.csv: cannot be read"):
        with datasets.open_label_file(path):
            raise PermissionError(13, "Permission denied")


def test_header_with_control_characters_stays_one_line(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('"emo\ntion",Usage\n0,Training\n')
    with pytest.raises(InputError) as e:
        read_fer2013_csv(path, "train")
    assert "\n" not in str(e.value) and "found emo\\ntion, Usage" in str(e.value)
