import cv2
import numpy as np
import pytest
from conftest import PHOTOS
from hypothesis import given, settings
from hypothesis import strategies as st

import openfer.components.detector as detector_module
from openfer.components.detector import (
    DENSE_MIN_REL,
    DENSE_OVERLAP,
    FULL_RANGE_CONTEXT,
    INPUT_SIZE,
    MIN_REL_FACE,
    DensePass,
    FaceDetector,
    context_window,
    decode_window,
    dense_anchors,
    dense_input,
    dense_matrix,
    dense_passes,
    fitted_sides,
    fitted_windows,
    letterbox_geometry,
    merge,
    postprocess,
    preprocess,
    shrink,
    tile_windows,
    window_matrices,
)
from openfer.core.align import apply_affine
from openfer.core.anchors import FULL_RANGE, ssd_anchor_centers
from openfer.errors import ModelError
from openfer.io.images import read_image
from openfer.runtime import OnnxModel
from openfer.runtime.onnx import registry, sha256_file, verified_file


@settings(max_examples=40, deadline=None)
@given(st.integers(64, 3000), st.integers(64, 3000), st.floats(10, 200))
def test_tiles_cover_the_image_and_any_small_face(h, w, min_face):
    wins = tile_windows(h, w, min_face)
    assert wins[0] == (0, 0, max(h, w))
    tiles = wins[1:]
    for x0, y0, side in tiles:
        assert 0 <= x0 and 0 <= y0 and x0 + side <= w and y0 + side <= h
    if not tiles:  # no need, or the first tile level (the short side; half of it for a square) < 64 px
        first = min(h, w) if h != w else min(h, w) // 2
        assert max(h, w) * MIN_REL_FACE <= min_face or first < 64
        return
    # at the finest level every face of the targeted size lies wholly inside some tile
    finest = min(t[2] for t in tiles)
    face = int(finest * MIN_REL_FACE * 2)
    rng = np.random.default_rng(0)
    for _ in range(20):
        fx, fy = rng.integers(0, max(w - face, 1)), rng.integers(0, max(h - face, 1))
        assert any(
            x0 <= fx and fx + face <= x0 + s and y0 <= fy and fy + face <= y0 + s
            for x0, y0, s in tiles
            if s == finest
        )


def test_window_matrices_letterbox_and_tiles():
    wins = tile_windows(360, 640, 30)
    m = window_matrices(360, 640, wins)
    # letterbox: the image's corners land on the padded square's content corners
    c = apply_affine(m[0], np.array([[0.0, 0.0], [640.0, 360.0]]))
    np.testing.assert_allclose(c, [[0, 28], [128, 100]])  # 360 * 128/640 = 72 rows, 28 above and below
    x0, y0, side = wins[1]
    np.testing.assert_allclose(
        apply_affine(m[1], np.array([[x0 + side, y0 + side]], float)), [[INPUT_SIZE, INPUT_SIZE]]
    )


def _raw_for(box_norm, anchors, anchor_idx, score=5.0, size=128):
    raw_b = np.zeros((len(anchors), 16))
    raw_s = np.full((len(anchors), 1), -10.0)
    cx, cy = (box_norm[0] + box_norm[2]) / 2, (box_norm[1] + box_norm[3]) / 2
    a = anchors[anchor_idx]
    raw_b[anchor_idx, :4] = [
        (cx - a[0]) * size,
        (cy - a[1]) * size,
        (box_norm[2] - box_norm[0]) * size,
        (box_norm[3] - box_norm[1]) * size,
    ]
    raw_b[anchor_idx, 4:] = np.tile([(cx - a[0]) * size, (cy - a[1]) * size], 6)
    raw_s[anchor_idx] = score
    return raw_b, raw_s


def test_postprocess_maps_tile_detection_back_to_image_and_drops_cut_faces():
    anchors = ssd_anchor_centers()
    wins = [(0, 0, 640), (100, 50, 200)]
    mats = window_matrices(360, 640, wins)
    rb0, rs0 = np.zeros((896, 16)), np.full((896, 1), -10.0)
    rb1, rs1 = _raw_for([0.25, 0.25, 0.5, 0.5], anchors, 300)
    det = postprocess(np.stack([rb0, rb1]), np.stack([rs0, rs1]), mats, anchors, 0.5, 0.3)
    assert len(det) == 1
    np.testing.assert_allclose(det.boxes[0], [150, 100, 200, 150], atol=1e-6)
    np.testing.assert_allclose(det.keypoints[0, 0], [175, 125], atol=1e-6)
    # the same face touching the tile border is a partial face and is dropped
    rb1, rs1 = _raw_for([0.0, 0.25, 0.25, 0.5], anchors, 300)
    det = postprocess(np.stack([rb0, rb1]), np.stack([rs0, rs1]), mats, anchors, 0.5, 0.3)
    assert len(det) == 0


def test_postprocess_nothing_above_threshold_is_empty():
    anchors = ssd_anchor_centers()
    mats = window_matrices(100, 100, [(0, 0, 100)])
    det = postprocess(np.zeros((1, 896, 16)), np.full((1, 896, 1), -3.0), mats, anchors, 0.5, 0.3)
    assert len(det) == 0 and det.boxes.shape == (0, 4) and det.keypoints.shape == (0, 6, 2)


# --- full-range BlazeFace (blazeface_full) ----------------------------------------------------------


def test_full_range_anchor_layout():
    a = ssd_anchor_centers(FULL_RANGE)
    assert a.shape == (2304, 2)  # 48x48 grid (192 / stride 4), one anchor per cell
    np.testing.assert_allclose(a[0], [0.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(a[1], [1.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(a[48], [0.5 / 48, 1.5 / 48])
    np.testing.assert_allclose(a[-1], [47.5 / 48, 47.5 / 48])


def test_registry_pins_the_full_range_model():
    entry = registry()["blazeface_full"]
    path, digest = verified_file("blazeface_full")
    assert digest == entry["sha256"] == sha256_file(path)
    assert entry["license"] == "Apache-2.0" and entry["task"]
    assert entry["source"].endswith("mediapipe/modules/face_detection/face_detection_full_range.tflite")
    assert entry["input_shape"] == ["N", "H", "W", 3] and entry["input_range"] == [-1.0, 1.0]
    model = OnnxModel.load("blazeface_full")
    assert model.spec["size"] == 192 and model.spec["input_range"] == [-1.0, 1.0]
    assert model.spec["size_multiple"] == 32


@settings(max_examples=40, deadline=None)
@given(st.integers(600, 3000), st.integers(600, 3000), st.floats(10, 40), st.sampled_from([0.08, 0.1, 0.15]))
def test_fitted_tiles_hold_every_face_from_min_face_to_the_whole_image_range(h, w, min_face, min_rel):
    wins = fitted_windows(h, w, min_face, min_rel=min_rel)
    assert wins[0] == (0, 0, max(h, w))
    tiles = wins[1:]
    for x0, y0, side in tiles:
        assert 0 <= x0 and 0 <= y0 and x0 + side <= w and y0 + side <= h
    assert [t[2] for t in tiles] == sorted((t[2] for t in tiles), reverse=True)  # coarsest level first
    sides = sorted({t[2] for t in tiles})
    top = max(h, w) * min_rel  # the whole-image pass finds faces from here (> 48 px > min_face)
    faces = np.geomspace(min_face, top, 6)[:-1]
    assert len(faces) == 5
    rng = np.random.default_rng(0)
    for face in faces:
        # some level trusts the face (>= min_rel of its side) and holds it wholly wherever it is
        level = [s for s in sides if min_rel * s <= face * 1.001 and face <= 0.3 * s + 1]
        if not level:  # only a panorama's square tiles leave a gap: nothing larger than the short side fits
            assert face > 0.3 * min(h, w)
            continue
        f = int(face)
        for _ in range(5):
            fx, fy = rng.integers(0, max(w - f, 1)), rng.integers(0, max(h - f, 1))
            assert any(
                x0 <= fx and fx + f <= x0 + t and y0 <= fy and fy + f <= y0 + t
                for x0, y0, t in tiles
                if t == max(level)
            )


def test_postprocess_maps_a_full_range_tile_detection_back():
    anchors = ssd_anchor_centers(FULL_RANGE)
    wins = [(0, 0, 640), (100, 50, 300)]
    mats = window_matrices(360, 640, wins, 192)
    rb0, rs0 = np.zeros((2304, 16)), np.full((2304, 1), -10.0)
    rb1, rs1 = _raw_for([0.25, 0.25, 0.5, 0.5], anchors, 1000, size=192)
    det = postprocess(np.stack([rb0, rb1]), np.stack([rs0, rs1]), mats, anchors, 0.5, 0.3, size=192)
    assert len(det) == 1
    np.testing.assert_allclose(det.boxes[0], [175, 125, 250, 200], atol=1e-6)


def test_detector_tells_the_variant_by_its_input_and_refuses_other_models():
    full = FaceDetector(model="blazeface_full", threads=1)  # its graph takes any size: dense passes
    assert full.input_size == 192 and full.tiling == "dense" and len(full.anchors) == 2304 and full.any_size
    assert FaceDetector(model="blazeface_full", tiling="fitted", threads=1).tiling == "fitted"
    short = FaceDetector(threads=1)
    assert short.input_size == INPUT_SIZE and short.tiling == "halving" and short.min_rel_face == MIN_REL_FACE
    assert short.windows(562, 572) == tile_windows(562, 572, 30)
    with pytest.raises(ModelError, match="not BlazeFace"):
        FaceDetector(model="facemesh")  # a 192x192 NHWC input, but not a detector's outputs
    with pytest.raises(ValueError, match="tiling"):
        FaceDetector(tiling="spiral")
    with pytest.raises(ValueError, match="any input size"):  # the short-range graph's input is fixed
        FaceDetector(tiling="dense")


# Tolerance of the full-range boxes against the short-range ones on the fixture faces: the two
# models draw boxes differently (full range: taller, higher on the forehead; measured mean IoU 0.80,
# mean edge difference 6% of the face height, docs/speed.md), the keypoints agree more closely.
MIN_IOU = 0.65
MAX_CENTRE_REL = 0.15  # box centre offset / face height
MAX_KEYPOINT_REL = 0.08  # mean eye, nose and mouth offset / face height


def _iou(a, b):
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize(("photo", "n"), [("single_face.jpg", 1), ("multi_face.jpg", 5)])
@pytest.mark.parametrize("min_face", [30.0, None])
def test_full_range_finds_the_fixture_faces_where_short_range_does(photo, n, min_face):
    rgb = read_image(PHOTOS / photo)
    full = FaceDetector(model="blazeface_full", min_face=min_face, threads=1)(rgb)
    short = FaceDetector(threads=1)(rgb)  # today's detector: n faces and a few false hits
    assert len(full) == n
    assert len(short) >= n
    for box, kp in zip(full.boxes, full.keypoints, strict=True):
        i = int(np.argmax([_iou(box, b) for b in short.boxes]))
        side = short.boxes[i, 3] - short.boxes[i, 1]
        assert _iou(box, short.boxes[i]) >= MIN_IOU
        centre = np.linalg.norm((box[:2] + box[2:] - short.boxes[i, :2] - short.boxes[i, 2:]) / 2)
        assert centre / side <= MAX_CENTRE_REL
        assert np.linalg.norm(kp[:4] - short.keypoints[i, :4], axis=-1).mean() / side <= MAX_KEYPOINT_REL


def test_full_range_finds_nothing_on_the_landscape():
    rgb = read_image(PHOTOS / "no_face_landscape.jpg")
    assert len(FaceDetector(model="blazeface_full", threads=1)(rgb)) == 0


def test_the_context_window_centres_the_image_and_preprocess_pads_it_black():
    x0, y0, side = context_window(100, 200, 2.5)
    assert side == 500 and (x0, y0) == (-150, -200)
    rgb = np.full((100, 200, 3), 255, np.uint8)
    x = preprocess(rgb, [(0, 0, 200), (x0, y0, side)], 192)[1]
    inside = x[..., 0] > 0  # white (+1) where the image is, black (-1) around it
    ys, xs = np.nonzero(inside)
    # the image spans 200/500 and 100/500 of the window, centred, where window_matrices maps it
    m = window_matrices(100, 200, [(0, 0, 200), (x0, y0, side)], 192)[1]
    corners = apply_affine(m, np.array([[0.0, 0.0], [200.0, 100.0]]))
    np.testing.assert_allclose([xs.min(), ys.min()], corners[0], atol=1)
    np.testing.assert_allclose([xs.max() + 1, ys.max() + 1], corners[1], atol=1)
    assert inside.sum() == pytest.approx(192 * 192 * 0.4 * 0.2, rel=0.05)


def test_full_range_finds_a_face_that_fills_the_photo_through_its_context_window():
    # photos_dev-style head shots (the face ~0.9 of the side): the full-range model alone misses
    # them, the context window (the photo at 1/2.5 of the input) finds them
    rgb = read_image(PHOTOS / "single_face.jpg")
    ref = FaceDetector(threads=1)(rgb)
    x0, y0, x1, y1 = ref.boxes[0].astype(int)
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    assert len(FaceDetector(model="blazeface_full", threads=1, context=1.0)(crop)) == 0
    full = FaceDetector(model="blazeface_full", threads=1)
    assert full.context == FULL_RANGE_CONTEXT and len(full.windows(*crop.shape[:2])) == 2
    found = full(crop)
    assert len(found) == 1
    box = found.boxes[0]
    side = y1 - y0
    centre = (box[:2] + box[2:]) / 2 - [(x1 - x0) / 2, (y1 - y0) / 2]
    assert np.linalg.norm(centre) / side <= MAX_CENTRE_REL
    assert 0.6 * side <= box[3] - box[1] <= 1.4 * side


@pytest.mark.parametrize("threshold", [0.5, 0.75, 0.3])
def test_postprocess_keeps_a_detection_scored_at_the_threshold_and_drops_one_just_below(threshold):
    # the logits are tested before decoding; a score exactly at the threshold still counts
    anchors = ssd_anchor_centers(FULL_RANGE)
    mats = window_matrices(192, 192, [(0, 0, 192)], 192)
    at = float(np.log(threshold / (1 - threshold)))
    for logit, found in ((at, 1), (at - 1e-3, 0), (at + 1e-3, 1)):
        rb, rs = _raw_for([0.3, 0.3, 0.6, 0.6], anchors, 1000, score=logit, size=192)
        det = postprocess(rb[None], rs[None], mats, anchors, threshold, 0.3, size=192)
        assert len(det) == found, (logit, found)
        if found:
            np.testing.assert_allclose(det.boxes[0], [57.6, 57.6, 115.2, 115.2], atol=1e-6)
            assert det.scores[0] >= threshold - 1e-12


# --- dense passes (the full-range graph at any input size) ------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.integers(64, 5000), st.integers(64, 5000), st.floats(10, 60), st.sampled_from([256, 512, 1024]))
def test_dense_passes_cover_each_scaled_image_in_overlapping_crops(h, w, min_face, max_side):
    sides = fitted_sides(h, w, min_face, min_rel=DENSE_MIN_REL)
    passes = dense_passes(h, w, sides, 192, max_side)
    assert sorted({p.scale for p in passes}) == sorted(192 / s for s in sides)
    for scale in {p.scale for p in passes}:
        level = [p for p in passes if p.scale == scale]
        sw, sh = level[0].scaled
        assert (sw, sh) == (max(round(w * scale), 1), max(round(h * scale), 1))
        covered = np.zeros((sh, sw), bool)
        for p in level:
            assert p.width % 32 == 0 and p.height % 32 == 0 and p.width <= max_side and p.height <= max_side
            assert p.inner == (p.x0 > 0, p.y0 > 0, p.x0 + p.width < sw, p.y0 + p.height < sh)
            covered[p.y0 : p.y0 + p.height, p.x0 : p.x0 + p.width] = True
        assert covered.all()
        for axis in (0, 1):  # neighbouring crops overlap by at least DENSE_OVERLAP input pixels
            starts = sorted({(p.x0, p.y0)[axis] for p in level})
            length = (level[0].width, level[0].height)[axis]
            assert all(b - a <= length - DENSE_OVERLAP for a, b in zip(starts, starts[1:], strict=False))


def test_dense_anchors_at_the_model_side_are_its_own_grid():
    p = DensePass(1.0, (192, 192), 0, 0, 192, 192, (False,) * 4)
    np.testing.assert_allclose(dense_anchors(p, FULL_RANGE), ssd_anchor_centers(FULL_RANGE), atol=1e-12)
    wide = dense_anchors(DensePass(1.0, (384, 192), 0, 0, 384, 192, (False,) * 4), FULL_RANGE)
    assert wide.shape == (96 * 48, 2) and wide[:, 0].max() == pytest.approx(383.0 / 192 - 1.0 / 192)


def test_a_dense_pass_of_a_model_sized_image_is_its_whole_image_window():
    # same input, same graph: the dense decoding (grid anchors, pixel offsets) gives the window's boxes
    rgb = cv2.resize(read_image(PHOTOS / "single_face.jpg"), (192, 192), interpolation=cv2.INTER_AREA)
    det = FaceDetector(model="blazeface_full", threads=1)
    win = preprocess(rgb, [(0, 0, 192)], 192)
    p = DensePass(1.0, (192, 192), 0, 0, 192, 192, (False,) * 4)
    dense = dense_input(rgb, [p])[0]
    np.testing.assert_array_equal(win, dense)
    out = det.model.run(dense)
    ref = postprocess(out[det._box_idx], out[det._score_idx], window_matrices(192, 192, [(0, 0, 192)], 192),
                      det.anchors, 0.5, 0.3, size=192)
    got = decode_window(out[det._box_idx][0], out[det._score_idx][0], dense_matrix(192, 192, p),
                        dense_anchors(p, FULL_RANGE), 0.5, 192)
    assert len(ref) >= 1 and got is not None
    d = merge([got], 0.3)
    np.testing.assert_allclose(d.boxes, ref.boxes, atol=1e-9)
    np.testing.assert_allclose(d.keypoints, ref.keypoints, atol=1e-9)


# Dense passes against fitted tiles on the fixture faces: the same faces, boxes that agree closely
# (measured: IoU 0.95-0.99, benchmarks/results/detection_dense.json)
MIN_DENSE_IOU = 0.9


@pytest.mark.parametrize(("photo", "n"), [("single_face.jpg", 1), ("multi_face.jpg", 5)])
def test_dense_passes_find_the_fixture_faces_fitted_tiles_find_with_fewer_pixels(photo, n):
    rgb = read_image(PHOTOS / photo)
    dense = FaceDetector(model="blazeface_full", threads=1)
    fitted = FaceDetector(model="blazeface_full", tiling="fitted", threads=1)
    a, b = dense(rgb), fitted(rgb)
    assert len(a) == len(b) == n
    for box in a.boxes:
        assert max(_iou(box, other) for other in b.boxes) >= MIN_DENSE_IOU
    h, w = rgb.shape[:2]
    passes = dense.dense_passes(h, w)
    assert passes and len(dense.windows(h, w)) == 2  # the whole image and the context window
    pixels = 2 * 192**2 + sum(p.width * p.height for p in passes)
    assert pixels < len(fitted.windows(h, w)) * 192**2 * 0.8


def test_a_level_in_crops_finds_the_faces_one_pass_finds():
    # crops of 256 px overlap by 128: a face cut by an inner crop edge is dropped there and kept whole
    # by the neighbouring crop, so the faces (and no duplicates) are those of the unsplit pass
    rgb = read_image(PHOTOS / "multi_face.jpg")
    one = FaceDetector(model="blazeface_full", threads=1)
    split = FaceDetector(model="blazeface_full", threads=1)
    split.dense_max_side = 256
    h, w = rgb.shape[:2]
    assert len(split.dense_passes(h, w)) > len(one.dense_passes(h, w))
    a, b = one(rgb), split(rgb)
    assert len(a) == len(b) == 5
    for box in b.boxes:
        assert max(_iou(box, other) for other in a.boxes) >= MIN_DENSE_IOU


def test_the_whole_image_windows_read_the_dense_pass_image_with_the_same_geometry():
    # shrinking the already scaled image instead of the photo changes the filter, not where things are
    rgb = read_image(PHOTOS / "multi_face.jpg")
    h, w = rgb.shape[:2]
    det = FaceDetector(model="blazeface_full", threads=1)
    scaled = {}
    dense_input(rgb, det.dense_passes(h, w), scaled)
    finest = scaled[max(scaled)]
    wins = det.windows(h, w)
    direct, via = preprocess(rgb, wins, 192), preprocess(rgb, wins, 192, finest)
    assert finest.shape[0] < h and not np.array_equal(direct, via)
    for k in range(len(wins)):
        assert np.abs(direct[k] - via[k]).mean() < 0.02  # of the [-1, 1] range: ~2.5 grey levels
        shifted = np.abs(direct[k][:, 1:] - via[k][:, :-1]).mean()  # one pixel off would read like this
        assert np.abs(direct[k] - via[k]).mean() < shifted / 2


def _one_step(image, width, height):
    """The whole-image resize before :func:`shrink`: one INTER_AREA step."""
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize(("h", "w"), [(360, 640), (1080, 1920), (667, 1000), (250, 250)])
def test_shrink_is_the_one_step_resize_at_integer_factors_odd_sides_and_small_factors(h, w):
    rgb = np.random.default_rng(h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    nw, nh, _, _ = letterbox_geometry(h, w)
    np.testing.assert_array_equal(shrink(rgb, nw, nh), _one_step(rgb, nw, nh))


@pytest.mark.parametrize("side", [572, 1144, 2300])
def test_shrink_keeps_the_geometry_of_one_step(side):
    # a bright disc off centre: its centroid and mass land where one INTER_AREA step puts them
    yy, xx = np.mgrid[:side, :side]
    disc = (((xx - 0.31 * side) ** 2 + (yy - 0.62 * side) ** 2) < (0.08 * side) ** 2).astype(np.uint8) * 200
    img = np.repeat(disc[:, :, None], 3, axis=2)
    a, b = (f(img, 128, 128)[:, :, 0].astype(np.float64) for f in (_one_step, shrink))
    centroid = [[(m * g).sum() / m.sum() for g in np.mgrid[:128, :128]] for m in (a, b)]
    np.testing.assert_allclose(centroid[0], centroid[1], atol=0.02)
    assert abs(a.sum() - b.sum()) / a.sum() < 0.005


def test_shrink_moves_the_short_range_detection_of_the_portrait_by_under_one_percent(monkeypatch):
    # single_face.jpg (572x562 -> 286x281 -> 128x126, the last step bilinear) is the fixture whose
    # detector input shrink changes (mean 1.5 grey levels, max 26);
    # benchmarks/ab_detector_shrink.py measures 2,427 images against a face-mesh reference
    # (docs/speed.md, "The whole-image shrink")
    rgb = read_image(PHOTOS / "single_face.jpg")
    nw, nh, _, _ = letterbox_geometry(*rgb.shape[:2])
    diff = np.abs(shrink(rgb, nw, nh).astype(int) - _one_step(rgb, nw, nh))
    assert diff.max() > 0 and diff.mean() < 2.0
    det = FaceDetector(min_face=None, threads=1)
    new = det(rgb)
    monkeypatch.setattr(detector_module, "shrink", _one_step)
    old = det(rgb)
    assert len(new) == len(old) == 1
    side = old.boxes[0, 3] - old.boxes[0, 1]
    assert np.abs(new.boxes - old.boxes).max() / side < 0.01
    assert np.linalg.norm(new.keypoints - old.keypoints, axis=-1).max() / side < 0.01
