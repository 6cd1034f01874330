import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from openfer.core.boxes import iou_matrix, nms, weighted_nms


def boxes_strategy(n_max=12):
    return st.lists(
        st.tuples(st.floats(0, 100), st.floats(0, 100), st.floats(1, 50), st.floats(1, 50)),
        min_size=1,
        max_size=n_max,
    ).map(lambda t: np.array([[x, y, x + w, y + h] for x, y, w, h in t]))


def test_iou_hand_computed():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150, 0.0, 1.0]])


@settings(max_examples=60, deadline=None)
@given(boxes_strategy())
def test_iou_symmetric_and_bounded(b):
    m = iou_matrix(b, b)
    assert np.allclose(m, m.T)
    assert (m >= 0).all() and (m <= 1 + 1e-12).all()
    np.testing.assert_allclose(np.diag(m), 1.0)


@settings(max_examples=60, deadline=None)
@given(boxes_strategy(), st.floats(0.1, 0.9), st.randoms())
def test_nms_returns_sorted_non_overlapping_subset(b, thr, rnd):
    scores = np.array([rnd.random() for _ in range(len(b))])
    keep = nms(b, scores, thr)
    assert len(keep) >= 1
    assert len(set(keep.tolist())) == len(keep)
    assert (np.diff(scores[keep]) <= 0).all()
    kept = iou_matrix(b[keep], b[keep])
    np.fill_diagonal(kept, 0)
    assert (kept <= thr + 1e-12).all()
    assert keep[0] == int(np.argmax(scores))


def test_weighted_nms_merges_cluster_by_score_weight():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    scores = np.array([0.9, 0.3, 0.8])
    pts = np.array([[[0, 0]], [[4, 4]], [[50, 50]]], float)
    b, s, p = weighted_nms(boxes, scores, pts, 0.3)
    assert len(s) == 2
    np.testing.assert_allclose(s, [0.9, 0.8])
    np.testing.assert_allclose(b[0], (0.9 * boxes[0] + 0.3 * boxes[1]) / 1.2)
    np.testing.assert_allclose(p[0, 0], [1.0, 1.0])
    np.testing.assert_allclose(b[1], boxes[2])


def test_weighted_nms_empty():
    b, s, p = weighted_nms(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2)), 0.3)
    assert b.shape == (0, 4) and s.shape == (0,) and p.shape == (0, 6, 2)
