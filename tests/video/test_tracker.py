"""FaceTracker: unit cases and properties (ids unique per frame, never reused, smooth motion keeps
its id, far-apart faces never swap). Pure numpy, no models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openfer.errors import ShapeError
from openfer.video.tracker import FaceTracker, TrackerState, greedy_pairs


def box(cx, cy, s):
    return [cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2]


# --- unit cases ---------------------------------------------------------------------------------


def test_first_frame_gets_new_ids_in_order_then_they_persist():
    t = FaceTracker()
    assert t.update(np.array([box(100, 100, 50), box(400, 100, 50)])).tolist() == [0, 1]
    # same faces, listed the other way round and moved a little
    assert t.update(np.array([box(405, 102, 52), box(98, 101, 49)])).tolist() == [1, 0]


def test_empty_frames_and_shapes():
    t = FaceTracker()
    assert t.update(np.zeros((0, 4))).tolist() == []
    assert t.update(np.array([])).shape == (0,)
    with pytest.raises(ShapeError, match="boxes"):
        t.update(np.zeros((2, 3)))
    with pytest.raises(ShapeError, match="hints"):
        t.update(np.zeros((2, 4)), hints=np.array([1]))


def test_occluded_face_keeps_its_id_within_max_missed_and_loses_it_after():
    t = FaceTracker(max_missed=5)
    face = np.array([box(200, 200, 80)])
    assert t.update(face).tolist() == [0]
    for _ in range(5):
        assert t.update(np.zeros((0, 4))).tolist() == []
    assert t.update(face).tolist() == [0]  # back after 5 missed frames
    for _ in range(6):
        t.update(np.zeros((0, 4)))
    assert t.update(face).tolist() == [1]  # after 6: a new track, and id 0 is not reused


def test_reentry_nearby_without_overlap_matches_by_distance():
    t = FaceTracker(max_missed=30)
    t.update(np.array([box(100, 100, 60)]))
    for _ in range(10):
        t.update(np.zeros((0, 4)))
    # 70 px away (about 1.2 face sizes, no overlap): allowed distance has grown with the missed frames
    assert t.update(np.array([box(170, 100, 60)])).tolist() == [0]
    # a much bigger face at the same place is someone else
    t2 = FaceTracker(max_missed=30)
    t2.update(np.array([box(100, 100, 60)]))
    t2.update(np.zeros((0, 4)))
    assert t2.update(np.array([box(100, 100, 200)])).tolist() == [1]


def test_hints_pin_ids_and_unknown_hints_are_ignored():
    a, b = box(100, 100, 50), box(300, 100, 50)
    t = FaceTracker()
    assert t.update(np.array([a, b])).tolist() == [0, 1]
    assert t.update(np.array([b, a]), hints=np.array([1, 0])).tolist() == [1, 0]
    assert t.update(np.array([a]), hints=np.array([99])).tolist() == [0]  # no track 99: matched by overlap
    t2 = FaceTracker()
    t2.update(np.array([a, b]))
    # hints say which face continues which track, even against the geometry
    assert t2.update(np.array([b, a]), hints=np.array([0, 1])).tolist() == [0, 1]


def test_velocity_prediction_follows_fast_motion():
    t = FaceTracker()
    ids = [
        t.update(np.array([box(100 + 30 * k, 100, 40)]))[0] for k in range(10)
    ]  # 0.75 face sizes per frame
    assert set(ids) == {0}


def test_state_round_trips_through_json_and_continues_identically():
    rng = np.random.default_rng(1)
    frames = [
        np.array([box(100 + 3 * k + rng.normal(), 100, 50), box(400 - 2 * k, 200, 60)]) for k in range(20)
    ]
    a = FaceTracker(max_missed=3)
    for f in frames[:10]:
        a.update(f)
    b = FaceTracker(max_missed=3)
    b.set_state(TrackerState.from_json(json.loads(json.dumps(a.state.to_json()))))
    for f in frames[10:]:
        assert a.update(f).tolist() == b.update(f).tolist()
    sa, sb = a.state, b.state
    assert (
        sa.next_id == sb.next_id
        and np.array_equal(sa.boxes, sb.boxes)
        and np.array_equal(sa.velocities, sb.velocities)
    )


def test_greedy_pairs_best_first_and_deterministic():
    s = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert greedy_pairs(s, s > 0.5, descending=True) == [(0, 0)]  # (1, 0) loses to (0, 0); (1, 1) is not ok
    d = np.array([[1.0, 1.0], [1.0, 1.0]])
    assert greedy_pairs(d, d > 0, descending=False) == [(0, 0), (1, 1)]


# --- properties ---------------------------------------------------------------------------------

frames_strategy = st.lists(
    st.lists(st.tuples(st.floats(0, 600), st.floats(0, 400), st.floats(10, 150)), max_size=6),
    min_size=1,
    max_size=25,
)


@settings(max_examples=80, deadline=None)
@given(frames_strategy)
def test_ids_unique_per_frame_and_never_reused(frames):
    t = FaceTracker(max_missed=3)
    seen: set[int] = set()
    alive_before: set[int] = set()
    for faces in frames:
        b = np.array([box(*f) for f in faces]).reshape(-1, 4)
        ids = t.update(b).tolist()
        assert len(ids) == len(set(ids)) == len(b)
        for i in ids:
            # an id is either new (larger than all before) or a track that was alive before this frame
            assert i in alive_before or i not in seen
        seen |= set(ids)
        alive_before = set(t.track_ids.tolist())
        assert set(ids) <= alive_before


@st.composite
def smooth_path(draw):
    n = draw(st.integers(5, 40))
    size = draw(st.floats(30, 150))
    x0, y0 = draw(st.floats(0, 1000)), draw(st.floats(0, 1000))
    vx, vy = draw(st.floats(-0.2, 0.2)), draw(st.floats(-0.2, 0.2))  # face sizes per frame
    growth = draw(st.floats(-0.01, 0.01))
    jitter = draw(st.floats(0, 0.03))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        s = size * (1 + growth) ** k
        out.append(
            box(x0 + size * (vx * k + jitter * rng.normal()), y0 + size * (vy * k + jitter * rng.normal()), s)
        )
    return np.array(out)


@settings(max_examples=80, deadline=None)
@given(smooth_path(), st.sets(st.integers(1, 39), max_size=8))
def test_a_smoothly_moving_face_keeps_its_id_even_with_missed_frames(path, gaps):
    t = FaceTracker(max_missed=30)
    ids = []
    for k, b in enumerate(path):
        if k in gaps:  # detector missed it this frame
            t.update(np.zeros((0, 4)))
            continue
        ids.extend(t.update(b[None]).tolist())
    assert ids and set(ids) == {ids[0]}


@settings(max_examples=80, deadline=None)
@given(smooth_path(), smooth_path(), st.integers(0, 2**16))
def test_two_far_apart_faces_never_swap(p1, p2, seed):
    n = min(len(p1), len(p2))
    p1, p2 = p1[:n], p2[:n]
    # put the second path far from the first: all its centres 5 face sizes right of all of the first's
    c1, c2 = (p1[:, :2] + p1[:, 2:]) / 2, (p2[:, :2] + p2[:, 2:]) / 2
    s = np.maximum(p1[:, 2] - p1[:, 0], p2[:, 2] - p2[:, 0]).max()
    dx, dy = c1[:, 0].max() + 5 * s - c2[:, 0].min(), c1[:, 1].mean() - c2[:, 1].mean()
    p2 = p2 + np.array([dx, dy, dx, dy])
    c2 = (p2[:, :2] + p2[:, 2:]) / 2
    assert (np.linalg.norm(c1 - c2, axis=1) >= 4 * s).all()
    rng = np.random.default_rng(seed)
    t = FaceTracker(max_missed=30)
    first = t.update(np.stack([p1[0], p2[0]])).tolist()
    for k in range(1, n):
        order = rng.permutation(2)
        present = rng.random(2) > 0.2  # each face sometimes missed
        rows = [i for i in order if present[i]]
        b = np.array([(p1, p2)[i][k] for i in rows]).reshape(-1, 4)
        ids = t.update(b).tolist()
        for i, track in zip(rows, ids, strict=True):
            assert track == first[i]
