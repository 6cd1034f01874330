"""Review fixes in ``openfer dataset issues``: vote shares matched to the model's classes by name, the
``class_not_in_model`` count of a CSV data set with unlabelled images, and a split with fewer images than
folds refused before any feature is computed (real FER2013 crops from tests/assets/dataset/ferplus_mini)."""

from pathlib import Path

import numpy as np
import pytest

import openfer.dataset.features as features
from openfer.dataset.confident import find_label_issues
from openfer.dataset.issues import IssuesOptions, SplitIssues, _kfold_probs, _rows, find_issues
from openfer.dataset.sources import DataSource, Split
from openfer.errors import InputError
from openfer.eval.datasets import LabeledImages

MINI = Path(__file__).parents[1] / "assets" / "dataset" / "ferplus_mini"


def test_vote_shares_follow_the_class_names_not_their_order():
    classes = ("sadness", "happiness", "engagement")  # not the FER+ order; engagement has no vote column
    given = np.array([0, 0, 1, 2, 1, 0])
    probs = np.array([[0.05, 0.9, 0.05], [0.9, 0.05, 0.05], [0.05, 0.9, 0.05],
                      [0.85, 0.1, 0.05], [0.1, 0.85, 0.05], [0.8, 0.1, 0.1]])
    res = find_label_issues(given, probs)
    votes = np.zeros((6, 10), np.float32)
    votes[:, 1], votes[:, 3] = 8, 2  # FER+ columns: happiness 8 votes, sadness 2
    si = SplitIssues("test", "model", tuple(Path(f"/d/img{i}.png") for i in range(6)), given, probs, res,
                     votes, {})
    rows = {r["path"]: r for r in _rows(si, Path("/d"), classes)}
    r0 = rows["img0.png"]  # given sadness, suggested happiness
    assert (r0["given"], r0["suggested"]) == ("sadness", "happiness")
    assert (r0["vote_share_given"], r0["vote_share_suggested"]) == (0.2, 0.8)
    r3 = rows["img3.png"]  # given engagement (no FER+ vote column), suggested sadness
    assert (r3["given"], r3["suggested"]) == ("engagement", "sadness")
    assert (r3["vote_share_given"], r3["vote_share_suggested"]) == ("", 0.2)


def test_fewer_images_than_folds_is_refused_before_any_feature(monkeypatch):
    def no_features(*a, **k):
        raise AssertionError("features extracted for a split that is refused")

    monkeypatch.setattr(features, "FeatureExtractor", no_features)
    data = LabeledImages(tuple(Path(f"img{i}.png") for i in range(3)), np.array([0, 1, 0]), ("a", "b"))
    with pytest.raises(InputError, match="fewer than the 5 folds"):
        _kfold_probs(data, "all", 2, IssuesOptions(k=5), None)


def test_class_not_in_model_does_not_count_unlabelled_images():
    # a data set without splits whose labelled set holds unlabelled images (-1) and a class the model lacks
    pngs = tuple(sorted((MINI / "FER2013Test").glob("*.png"))[:11])
    labels = np.array([1] * 4 + [0] * 4 + [-1, -1] + [2])
    lab = LabeledImages(pngs, labels, ("neutral", "happiness", "engagement"))
    src = DataSource(MINI, "csv", (Split("all", pngs, labels, lab.classes, None, lab, None),))
    rep = find_issues(src, IssuesOptions(predictions="model", faces="crops", threads=1), data_arg="t",
                      command="t")
    doc = rep.splits[0].doc
    assert doc["not_scored"]["no_label"] == 2
    assert doc["not_scored"]["class_not_in_model"] == 1
    assert doc["scored"] == 8


def test_contact_sheet_of_a_fer2013_csv_shows_its_pixels(tmp_path):
    import csv

    import cv2

    from openfer.dataset.issues_report import TILE, contact_sheet
    from openfer.dataset.sources import open_source

    pngs = sorted((MINI / "FER2013Test").glob("*.png"))[:4]
    grays = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in pngs]
    data = tmp_path / "data"
    data.mkdir()
    with open(data / "fer2013.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for g in grays:
            w.writerow([3, " ".join(str(int(x)) for x in g.ravel()), "PrivateTest"])
    src = open_source(data / "fer2013.csv", splits=("test",))
    sp = src.splits[0]
    rows = [{"path": _rel_path(p, src.root), "rank": k + 1, "split": "test", "score": 0.1, "given": "happiness",
             "suggested": "sadness"} for k, p in enumerate(sp.paths)]
    out = contact_sheet(rows, src.root, tmp_path / "sheet.png", columns=4, pixels=src.pixels())
    sheet = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE)
    # each crop, upscaled to the tile as the sheet draws it, is found in the sheet (a blank tile would not match)
    for g in grays:
        big = cv2.resize(g, (TILE, TILE), interpolation=cv2.INTER_CUBIC)
        assert cv2.matchTemplate(sheet, big, cv2.TM_CCOEFF_NORMED).max() > 0.99


def _rel_path(p: Path, root: Path) -> str:
    from openfer.dataset.issues import _rel

    return _rel(p, root)


def test_duplicate_sheet_of_a_fer2013_csv_shows_its_pixels(tmp_path):
    import csv

    import cv2

    from openfer.dataset.plots import duplicate_sheet
    from openfer.dataset.sources import open_source

    g = cv2.imread(str(sorted((MINI / "FER2013Test").glob("*.png"))[0]), cv2.IMREAD_GRAYSCALE)
    data = tmp_path / "data"
    data.mkdir()
    with open(data / "fer2013.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for _ in range(2):  # the same crop twice: an exact duplicate pair
            w.writerow([3, " ".join(str(int(x)) for x in g.ravel()), "PrivateTest"])
    src = open_source(data / "fer2013.csv", splits=("test",))
    a, b = src.splits[0].paths
    pairs = [{"kind": "pixels", "split_a": "test", "split_b": "test", "distance": 0, "path_a": str(a),
              "path_b": str(b)}]
    out = duplicate_sheet(pairs, src.root, tmp_path / "dup.png", pixels=src.pixels())
    sheet = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE)
    big = cv2.resize(g, (96, 96))
    assert cv2.matchTemplate(sheet, big, cv2.TM_CCOEFF_NORMED).max() > 0.99
