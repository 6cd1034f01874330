import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from openfer.components.detector import INPUT_SIZE, MIN_REL_FACE, postprocess, tile_windows, window_matrices
from openfer.core.align import apply_affine
from openfer.core.anchors import ssd_anchor_centers


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


def _raw_for(box_norm, anchors, anchor_idx, score=5.0):
    raw_b = np.zeros((len(anchors), 16))
    raw_s = np.full((len(anchors), 1), -10.0)
    cx, cy = (box_norm[0] + box_norm[2]) / 2, (box_norm[1] + box_norm[3]) / 2
    a = anchors[anchor_idx]
    raw_b[anchor_idx, :4] = [
        (cx - a[0]) * 128,
        (cy - a[1]) * 128,
        (box_norm[2] - box_norm[0]) * 128,
        (box_norm[3] - box_norm[1]) * 128,
    ]
    raw_b[anchor_idx, 4:] = np.tile([(cx - a[0]) * 128, (cy - a[1]) * 128], 6)
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
