"""``openfer audit robustness``: each variation changes real FER2013 crops as stated, the occlusion patch
covers the face mesh's eyes or mouth, the clean row equals ``openfer evaluate``, paired intervals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ASSETS

from openfer.cli import main
from openfer.eval.attributes import crop_pad, crop_view, fast_analyzer, image_quality
from openfer.eval.datasets import read_csv_labels, read_ferplus
from openfer.eval.evaluate import read_dataset, score_crops, score_detect
from openfer.eval.robustness import (
    EYE_POINTS,
    MOUTH_POINTS,
    PATCH_GREY,
    VARIATIONS,
    Variation,
    apply_variation,
    audit_robustness,
    landmark_box,
)
from openfer.eval.subgroups import sample_scores

MINI = ASSETS / "dataset" / "ferplus_mini"
V = {v.name: v for v in VARIATIONS}


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in read_ferplus(MINI, "train").paths[:6]]


@pytest.fixture(scope="module")
def classifier():
    from openfer.components.expression import ExpressionClassifier

    return ExpressionClassifier("fernet_s", threads=1)


def _lap(x: np.ndarray) -> float:
    return float(cv2.Laplacian(x, cv2.CV_64F, ksize=3).var())


def test_photometric_variations_change_the_image_as_stated(crops):
    for x in crops:
        up = apply_variation(x, V["brightness +40"])
        assert np.array_equal(up, np.minimum(x.astype(int) + 40, 255))
        assert up.mean() > x.mean() + 30
        down = apply_variation(x, V["brightness -40"])
        assert np.array_equal(down, np.maximum(x.astype(int) - 40, 0))
        c = apply_variation(x, V["contrast x0.5"])
        assert c.std() == pytest.approx(x.std() / 2, abs=0.6)
        assert _lap(apply_variation(x, V["blur sigma 2"])) < _lap(apply_variation(x, V["blur sigma 1"])) < _lap(x)
        rng = np.random.default_rng(0)
        noisy = apply_variation(x, V["noise sigma 10"], rng=rng).astype(float) - x
        inside = (x > 40) & (x < 215)  # away from clipping
        assert noisy[inside].std() == pytest.approx(10.0, rel=0.15) and abs(noisy[inside].mean()) < 1.5


def test_geometric_and_coding_variations_change_the_image_as_stated(crops):
    for x in crops:
        for name in ("JPEG quality 30", "JPEG quality 10", "resolution 1/2", "resolution 1/4", "rotation 15 deg"):
            y = apply_variation(x, V[name])
            assert y.shape == x.shape and y.dtype == np.uint8 and not np.array_equal(x, y), name
        err = [np.abs(apply_variation(x, V[n]).astype(float) - x).mean() for n in ("JPEG quality 30", "JPEG quality 10")]
        assert err[0] < err[1]
        assert _lap(apply_variation(x, V["resolution 1/4"])) < _lap(apply_variation(x, V["resolution 1/2"])) < _lap(x)
        r = apply_variation(x, V["rotation 15 deg"])
        back = cv2.warpAffine(r, cv2.getRotationMatrix2D((23.5, 23.5), -15, 1.0), (48, 48))
        core = np.s_[14:34, 14:34]  # the centre survives a rotation there and back
        assert np.abs(back[core].astype(float) - x[core]).mean() < np.abs(r[core].astype(float) - x[core]).mean()
    rgb = np.dstack([crops[0], crops[1], crops[2]])
    assert apply_variation(rgb, V["JPEG quality 30"]).shape == rgb.shape


def test_occlusion_patches_cover_the_mouth_and_the_eyes_of_real_crops(crops):
    an = fast_analyzer(threads=1)
    checked = 0
    for x in crops:
        res = an.analyze_rgb(crop_view(x))
        if not len(res.faces):
            continue
        marks = (res.faces.landmarks[0][:, :2] - crop_pad(x.shape)) / 4
        mouth = landmark_box(marks, MOUTH_POINTS, x.shape)
        eyes = landmark_box(marks, EYE_POINTS, x.shape)
        occluded = apply_variation(x, Variation("m", "occlude_mouth", 0), box=mouth)
        x0, y0, x1, y1 = mouth
        assert (occluded[y0:y1, x0:x1] == PATCH_GREY).all()
        outside = np.ones(x.shape, bool)
        outside[y0:y1, x0:x1] = False
        assert np.array_equal(occluded[outside], x[outside])
        for px, py in marks[list(MOUTH_POINTS)]:  # every lip point is under the patch
            assert x0 <= px < x1 and y0 <= py < y1
        eye_centres = marks[[33, 133, 362, 263]].mean(0)
        assert not (x0 <= eye_centres[0] < x1 and y0 <= eye_centres[1] < y1)
        ex0, ey0, ex1, ey1 = eyes
        for px, py in marks[list(EYE_POINTS)]:
            assert ex0 <= px < ex1 and ey0 <= py < ey1
        assert ey1 <= y0 + 2  # the eye patch sits above the mouth patch
        checked += 1
    assert checked >= 4


def test_clean_accuracy_equals_evaluate_and_identity_changes_nothing(classifier):
    data = read_ferplus(MINI, "test")
    ev = score_crops(data, classifier)
    same = (Variation("brightness 0", "brightness", 0), V["blur sigma 2"], V["occlusion mouth"])
    audit = audit_robustness(data, "crops", classifier, limit=0, resamples=300, variations=same)
    d = audit.doc
    assert d["n"] == ev.report["n"] and d["clean"]["accuracy"] == pytest.approx(ev.report["accuracy"])
    ident = d["variations"][0]
    assert ident["change"] == ident["low"] == ident["high"] == 0.0 and ident["changed_predictions"] == 0.0
    for r in d["variations"]:
        assert r["low"] <= r["change"] <= r["high"]
        assert r["accuracy"] == pytest.approx(d["clean"]["accuracy"] + r["change"])
        assert set(r["per_class"]) == set(d["clean"]["per_class"])
    assert sum(d["occlusion_placed_by"]["occlusion mouth"].values()) == d["n"]
    # the examples are the first sampled crops, clean and varied as scored
    first = cv2.imread(str(read_ferplus(MINI, "test").paths[0]), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(audit.examples["clean"][0], first)
    assert np.array_equal(audit.examples["blur sigma 2"][0], apply_variation(first, V["blur sigma 2"]))
    # a seeded sample of 5
    part = audit_robustness(data, "crops", classifier, limit=5, seed=1, resamples=50, variations=same[:1])
    assert part.doc["n"] == 5 and part.doc["of"] == ev.report["n"]


def test_detect_mode_clean_accuracy_equals_evaluate_on_real_photos(analyzer):
    data = read_csv_labels(ASSETS / "photos" / "labeled" / "labels.csv")
    data = data.subset(np.arange(len(data)) < 4)
    ev = score_detect(data, analyzer)
    audit = audit_robustness(data, "detect", analyzer, limit=0, resamples=100,
                             variations=(V["occlusion eyes"], V["brightness -40"]))
    assert audit.doc["clean"]["accuracy"] == pytest.approx(ev.report["accuracy"])
    assert audit.doc["clean"]["face_found_rate"] == pytest.approx(ev.report["face_found_rate"])
    for r in audit.doc["variations"]:
        assert 0.0 <= r["face_found_rate"] <= 1.0 and r["accuracy"] <= r["face_found_rate"]
    placed = audit.doc["occlusion_placed_by"]["occlusion eyes"]
    assert placed["landmarks"] == round(ev.report["face_found_rate"] * 4)


def test_cli_writes_markdown_json_and_plot(tmp_path, capsys):
    out = tmp_path / "rob"
    rc = main(["audit", "robustness", str(MINI), "--split", "valid", "--out", str(out), "--bootstrap", "100",
               "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((out / "robustness.json").read_text())
    assert [r["variation"] for r in doc["variations"]] == [v.name for v in VARIATIONS]
    md = (out / "robustness.md").read_text()
    assert md.count("\n| ") == len(VARIATIONS) + 1  # header + one row each
    assert (out / "robustness.png").stat().st_size > 1000
    assert (out / "robustness_examples.png").stat().st_size > 1000


def test_cli_bad_data_is_one_line(tmp_path, capsys):
    rc = main(["audit", "robustness", str(tmp_path / "nothing")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 3 and len(err) == 1 and "nothing" in err[0]


def _fer2013_csv(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    """A tiny fer2013.csv (pixels inside the CSV, as Kaggle ships it) of real 48x48 FER+ crops."""
    pngs = sorted((MINI / "FER2013Valid").glob("*.png"))[:8]
    grays = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in pngs]
    path = tmp_path / "fer2013.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for k, g in enumerate(grays):
            w.writerow([k % 7, " ".join(str(int(x)) for x in g.ravel()), "PublicTest"])
    return path, grays


def test_robustness_and_image_groups_of_a_fer2013_csv_read_its_pixels(tmp_path, capsys, classifier):
    path, grays = _fer2013_csv(tmp_path)
    out = tmp_path / "rob"
    rc = main(["audit", "robustness", str(path), "--split", "valid", "--out", str(out), "--bootstrap", "50",
               "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((out / "robustness.json").read_text())
    assert [r["variation"] for r in doc["variations"]] == [v.name for v in VARIATIONS]
    data = read_dataset(path, "fer2013", "valid")
    scores = sample_scores(data, score_crops(data, classifier))
    assert scores.images is not None
    bright, blur = image_quality(scores, "crops")
    assert bright == pytest.approx([g.mean() for g in grays])
    assert np.isfinite(blur).all()
