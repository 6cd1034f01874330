"""End-to-end analysis on real photos against golden outputs, with a tolerance per quantity."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
from conftest import FAILURES, PHOTOS, load_or_write_golden

from openfer.errors import InputError
from openfer.types import EXPRESSIONS, Faces

# tolerances: detector box (px), landmark mean error (px), pose (deg), probability (abs)
BOX_PX, LANDMARK_PX, POSE_DEG, PROB_ABS = 3.0, 1.5, 2.0, 0.03


def _summary(result) -> dict:
    f = result.faces
    order = np.lexsort((f.boxes[:, 1], f.boxes[:, 0]))  # left to right: stable across runs
    f = f[order]
    return {
        "n": len(f),
        "boxes": np.round(f.boxes, 2).tolist(),
        "landmarks": np.round(f.landmarks[:, :, :2], 2).tolist(),
        "poses": np.round(f.poses, 2).tolist(),
        "expressions": np.round(f.expressions, 4).tolist(),
        "labels": list(f.labels),
    }


def _compare(name, analyzer, regen):
    from openfer.draw import annotate, save_image
    from openfer.io.images import read_image

    rgb = read_image(PHOTOS / f"{name}.jpg")
    res = analyzer.analyze_rgb(rgb, source=name)
    actual = _summary(res)
    want = load_or_write_golden(name, actual, regen)
    try:
        assert actual["n"] == want["n"]
        if want["n"]:
            np.testing.assert_allclose(actual["boxes"], want["boxes"], atol=BOX_PX)
            err = np.linalg.norm(np.subtract(actual["landmarks"], want["landmarks"]), axis=-1).mean(-1)
            assert (err < LANDMARK_PX).all(), err
            np.testing.assert_allclose(actual["poses"], want["poses"], atol=POSE_DEG)
            np.testing.assert_allclose(actual["expressions"], want["expressions"], atol=PROB_ABS)
    except AssertionError:
        FAILURES.mkdir(exist_ok=True)
        save_image(annotate(rgb, res.faces), FAILURES / f"{name}_actual.jpg")
        raise
    return res


def test_single_face_golden(analyzer, regen):
    res = _compare("single_face", analyzer, regen)
    assert len(res.faces) == 1
    f = res.faces[0]
    assert f.landmarks.shape == (478, 3)
    assert f.score > 0.8 and f.landmark_score > 0.9
    assert abs(f.pose[0]) < 30 and abs(f.pose[2]) < 20  # a near-frontal, upright portrait


def test_multi_face_finds_all_five(analyzer, regen):
    res = _compare("multi_face", analyzer, regen)
    assert len(res.faces) == 5
    # five distinct people: no two boxes overlap much
    from openfer.core.boxes import iou_matrix

    iou = iou_matrix(res.faces.boxes, res.faces.boxes)
    np.fill_diagonal(iou, 0)
    assert iou.max() < 0.2
    # every face is smiling in this photo
    assert sum(lbl == "happiness" for lbl in res.faces.labels) >= 4


def test_no_face_gives_explicit_empty_result(analyzer, regen):
    res = _compare("no_face_landscape", analyzer, regen)
    assert len(res.faces) == 0
    assert res.faces.landmarks.shape == (0, 478, 3)
    assert res.faces.expressions.shape == (0, len(EXPRESSIONS))
    assert res.to_records() == []


def test_landmarks_lie_inside_the_detected_face(analyzer):
    res = analyzer.analyze(PHOTOS / "multi_face.jpg")
    for f in res.faces:
        x1, y1, x2, y2 = f.box
        w, h = x2 - x1, y2 - y1
        inside = (
            (f.landmarks[:, 0] > x1 - 0.3 * w)
            & (f.landmarks[:, 0] < x2 + 0.3 * w)
            & (f.landmarks[:, 1] > y1 - 0.5 * h)
            & (f.landmarks[:, 1] < y2 + 0.3 * h)
        )
        assert inside.mean() > 0.98
        # iris centres (468, 473) sit between the corners of their eyes
        for c, (a, b) in ((468, (33, 133)), (473, (362, 263))):
            lo, hi = sorted((f.landmarks[a, 0], f.landmarks[b, 0]))
            assert lo < f.landmarks[c, 0] < hi


def test_expression_probabilities_are_distributions(analyzer):
    res = analyzer.analyze(PHOTOS / "multi_face.jpg")
    p = res.faces.expressions
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert (p >= 0).all()
    assert res.faces.labels == tuple(EXPRESSIONS[i] for i in p.argmax(1))


def test_cardinality_batch_equals_single(analyzer):
    """Classifying five faces in one call equals classifying each alone."""
    from openfer.io.images import read_image

    rgb = read_image(PHOTOS / "multi_face.jpg")
    res = analyzer.analyze_rgb(rgb)
    batch = analyzer.expression(rgb, res.faces.landmarks)
    single = np.concatenate([analyzer.expression(rgb, res.faces.landmarks[i : i + 1]) for i in range(5)])
    # ONNX Runtime picks different conv kernels for batch 1 and batch 10 (5 faces + mirrors): float32
    # sums in another order differ by ~3e-5 in the probabilities, far below any meaningful change.
    np.testing.assert_allclose(batch, single, atol=1e-4)
    # Faces stores float32 landmarks: re-cropping from them moves the crop by ~1e-5 px, which flips the
    # uint8 rounding of a few crop pixels by one grey level (~1e-3 in a probability at most)
    np.testing.assert_allclose(batch, res.faces.expressions, atol=2e-3)


def test_rotated_image_gives_rotated_roll(analyzer):
    import cv2

    from openfer.io.images import read_image

    rgb = read_image(PHOTOS / "single_face.jpg")
    base = analyzer.analyze_rgb(rgb).faces
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0)  # 25 deg counter-clockwise
    rot = analyzer.analyze_rgb(cv2.warpAffine(rgb, m, (w, h), borderMode=cv2.BORDER_REFLECT)).faces
    assert len(base) == len(rot) == 1
    assert rot.poses[0, 2] - base.poses[0, 2] == pytest.approx(25, abs=4)
    # the expression is read from the aligned crop, so rotation barely changes it
    assert np.abs(rot.expressions[0] - base.expressions[0]).max() < 0.15


def test_array_inputs_gray_and_rgba(analyzer):
    from openfer.io.images import read_image

    rgb = read_image(PHOTOS / "single_face.jpg")
    gray = rgb.mean(2).astype(np.uint8)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], 2)
    assert len(analyzer.analyze(gray).faces) == 1
    np.testing.assert_allclose(
        analyzer.analyze(rgba).faces.boxes, analyzer.analyze(rgb).faces.boxes, atol=1e-3
    )


def test_bad_array_inputs_raise_input_error(analyzer):
    for bad in (
        np.zeros((0, 10, 3), np.uint8),
        np.zeros((10, 10, 5), np.uint8),
        np.zeros((4, 4, 4, 4), np.uint8),
        np.full((10, 10, 3), np.nan),
        "no/such/file.jpg",
    ):
        with pytest.raises(InputError):
            analyzer.analyze(bad)


def test_unknown_preset_and_option():
    from openfer.pipeline import Analyzer

    with pytest.raises(InputError, match="preset"):
        Analyzer("turbo")
    with pytest.raises(InputError, match="option"):
        Analyzer(min_fac=3)


def test_small_faces_in_a_group_mosaic(analyzer):
    """Recall on ~30-40 px faces: a 3x2 mosaic of the five-person photo scaled down so faces are small."""
    import cv2

    from openfer.io.images import read_image

    rgb = read_image(PHOTOS / "multi_face.jpg")
    big = analyzer.analyze_rgb(rgb).faces
    scale = 36.0 / float(np.median(big.boxes[:, 3] - big.boxes[:, 1]))
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    mosaic = np.concatenate([np.concatenate([small] * 3, 1)] * 2, 0)
    faces = analyzer.analyze_rgb(mosaic).faces
    heights = faces.boxes[:, 3] - faces.boxes[:, 1]
    assert len(faces) >= 27, f"found {len(faces)} of 30 faces ({np.median(heights):.0f} px high)"
    assert len(faces) <= 30


def test_faces_struct_masking_and_records(analyzer):
    res = analyzer.analyze(PHOTOS / "multi_face.jpg")
    faces = res.faces
    sub = faces[faces.scores > 0.9]
    assert isinstance(sub, Faces) and len(sub) == int((faces.scores > 0.9).sum())
    assert len(faces[[0, 2]]) == 2 and len(faces[1:3]) == 2
    with pytest.raises(IndexError):
        faces[len(faces)]
    with pytest.raises(InputError):
        faces[np.ones(len(faces) + 1, bool)]
    with pytest.raises(ValueError):
        faces.boxes[0, 0] = 1.0  # frozen arrays
    recs = res.to_records()
    assert len(recs) == len(faces)
    assert set(EXPRESSIONS) <= set(recs[0])
    assert recs[0]["label"] == faces.labels[0]
    df = res.to_dataframe()
    assert len(df) == len(faces) and "yaw" in df.columns


def test_top_level_api_is_lazy_and_complete():
    import openfer

    assert openfer.Analyzer.__name__ == "Analyzer"
    assert openfer.Faces.empty().expressions.shape == (0, 8)
    assert set(openfer.__all__) <= set(dir(openfer)) | {"__version__"}
    with pytest.raises(AttributeError):
        openfer.no_such_name  # noqa: B018


def test_action_units_on_smiling_faces(analyzer):
    """Four broad smiles and one half-hidden face behind: AU12 (lip-corner puller) is up on the
    broad smiles and the opposite movement, AU15 (lip-corner depressor), on none; AUs in [0, 5]."""
    res = analyzer.analyze(PHOTOS / "multi_face.jpg")
    f = res.faces
    assert f.aus is not None and f.aus.shape == (5, len(f.au_names))
    assert ((f.aus >= 0) & (f.aus <= 5)).all()
    au12 = f.aus[:, f.au_names.index("AU12")]
    au15 = f.aus[:, f.au_names.index("AU15")]
    assert (au12 > 1.0).sum() >= 4, au12
    assert (au15 < 0.5).all(), au15
    assert {"AU12", "AU6", "AU26"} <= set(res.to_records()[0])


def test_action_units_can_be_switched_off():
    from openfer.pipeline import Analyzer

    res = Analyzer(aus=False).analyze(PHOTOS / "single_face.jpg")
    assert res.faces.aus is None and "AU12" not in res.to_records()[0]


def test_reasons_and_valence_arousal_per_face(analyzer):
    res = analyzer.analyze(PHOTOS / "multi_face.jpg")
    f = res.faces
    assert f.reasons is not None and len(f.reasons) == len(f)
    from openfer.explain import compound_label

    for face, reason in zip(f, f.reasons, strict=True):
        head = reason.split(" (")[0]
        assert head == face.label or head == compound_label(face.expression, f.classes)
        if face.label == "happiness":
            assert "AU12" in reason  # the measured evidence is quoted
    assert f.valence_arousal.shape == (len(f), 2) and (np.abs(f.valence_arousal) <= 1).all()
    sub = f[f.scores > 0.9]
    assert len(sub.reasons) == len(sub)
    assert {"valence", "arousal", "reason"} <= set(res.to_records()[0])


def test_unknown_score_low_on_real_faces_high_on_noise_and_background(analyzer):
    faces = analyzer.analyze(PHOTOS / "multi_face.jpg").faces
    assert faces.unknown_scores is not None and faces.unknown_threshold == 0.95
    assert ((faces.unknown_scores >= 0) & (faces.unknown_scores < 0.95)).all()
    assert faces.open_labels == faces.labels
    rec = faces.to_records()[0]
    assert 0 <= rec["unknown_score"] <= 1 and rec["open_label"] == rec["label"] and rec["pspi"] >= 0
    clf = analyzer.expression
    noise = np.random.default_rng(0).integers(0, 256, (8, 48, 48)).astype(np.uint8)
    scene = cv2.imread(str(PHOTOS / "no_face_landscape.jpg"), cv2.IMREAD_GRAYSCALE)
    patches = np.stack(
        [cv2.resize(scene[y : y + 120, x : x + 120], (48, 48)) for y in (0, 60) for x in (0, 200, 400)]
    )
    for garbage in (noise, patches):
        _, unknown = clf.predict_open(garbage)
        assert (unknown > 0.95).all(), unknown
    # a face flagged unknown gets the open label "unknown"; the closed-set label is kept
    flagged = replace(faces, unknown_scores=np.r_[0.99, faces.unknown_scores[1:]])
    assert flagged.open_labels[0] == "unknown" and flagged.labels[0] == faces.labels[0]
    assert flagged[0].open_label == "unknown" and flagged[1:].open_labels == faces.open_labels[1:]


def test_fast_preset_refines_loose_rois_of_small_faces():
    # one whole-image detector pass on the group photo gives two loose boxes; Face Mesh v2 scores
    # them 0.12 and 0.02 on those ROIs and accepts both after refining the ROI from its own points
    from openfer.pipeline import REFINED_ACCEPT, Analyzer

    faces = Analyzer("fast", threads=1).analyze(PHOTOS / "multi_face.jpg").faces
    assert len(faces) == 2
    assert (faces.landmark_scores >= REFINED_ACCEPT).all()
    raw = Analyzer("fast", threads=1, landmark_threshold=0.0).analyze(PHOTOS / "multi_face.jpg").faces
    assert (raw.landmark_scores < 0.5).all()  # without a threshold nothing is refined: the raw scores


def test_faces_come_left_to_right(analyzer):
    faces = analyzer.analyze(PHOTOS / "multi_face.jpg").faces
    cx = (faces.boxes[:, 0] + faces.boxes[:, 2]) / 2
    assert len(faces) == 5 and (np.diff(cx) > 0).all()
    recs = analyzer.analyze(PHOTOS / "multi_face.jpg").to_records()
    assert [r["face"] for r in recs] == [0, 1, 2, 3, 4] and [r["x1"] for r in recs] == list(faces.boxes[:, 0])


def test_video_preset_search_adds_the_full_range_faces_the_whole_frame_pass_misses():
    """AnalyzerOptions.search_detector: the video preset's search is the dense full-range search plus
    the faces only the short-range whole-frame pass finds. A face both find is located by the
    full-range box and framed by the short-range one (search_faces), so a video track keeps the
    whole-frame pass's framing from one search to the next; faces of 36-46 px that the whole-frame
    pass cannot see come from the search alone."""
    from openfer.io.images import read_image
    from openfer.pipeline import Analyzer

    big, group = read_image(PHOTOS / "single_face.jpg"), read_image(PHOTOS / "multi_face.jpg")
    canvas = np.full((720, 1280, 3), 128, np.uint8)
    b = cv2.resize(big, (round(big.shape[1] * 420 / big.shape[0]), 420), interpolation=cv2.INTER_AREA)
    canvas[150:570, 40 : 40 + b.shape[1]] = b
    g = cv2.resize(group, (420, round(group.shape[0] * 420 / group.shape[1])), interpolation=cv2.INTER_AREA)
    canvas[200 : 200 + g.shape[0], 800:1220] = g
    an = Analyzer("video")
    assert an.runtimes.keys() >= {"detector", "search_detector"}
    whole, search = an.detector(canvas, whole_only=True), an.search(canvas)
    both, framing = an.search_faces(canvas)
    assert len(whole) == 1 and len(search) == 6 and len(both) == 6 and framing.shape == (6, 4)
    np.testing.assert_array_equal(both.boxes, search.boxes)  # located by the full-range boxes
    large = int(np.argmax(search.boxes[:, 3] - search.boxes[:, 1]))
    np.testing.assert_array_equal(framing[large], whole.boxes[0])  # the large face framed by the short-range box
    assert not np.allclose(search.boxes[large], whole.boxes[0], atol=5)  # which differs from the full-range one
    small = np.delete(framing, large, 0)
    np.testing.assert_array_equal(small, np.delete(search.boxes, large, 0))  # the group: the search's own
    assert (small[:, 0] > 800).all() and ((small[:, 3] - small[:, 1]) < 50).all()
    assert len(an.analyze_rgb(canvas).faces) == 6
    # the default preset has no second detector: its search is the full-range detector's alone
    default = Analyzer()
    assert default.search is default.detector and "search_detector" not in default.runtimes
