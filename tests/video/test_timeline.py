"""Timeline (rows, DataFrame, per-track summary) and TimelineWriter (atomic parts, progress, resume,
merge) on synthetic frames: no models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from openfer.errors import InputError, ShapeError
from openfer.types import EXPRESSIONS, Faces, FrameResult
from openfer.video.analyzer import VideoFrame
from openfer.video.timeline import (
    PROGRESS_FILE,
    TIMELINE_FILE,
    Timeline,
    TimelineWriter,
    format_rows,
    timeline_columns,
)

C = len(EXPRESSIONS)


def make_frame(index: int, t: float, ids: list[int], top: list[int] | None = None) -> VideoFrame:
    n = len(ids)
    top = top if top is not None else [0] * n
    probs = np.full((n, C), 0.02)
    for i, k in enumerate(top):
        probs[i, k] = 1 - 0.02 * (C - 1)
    boxes = np.array([[10.0 * i + index, 20.0, 10.0 * i + index + 50, 80.0] for i in range(n)]).reshape(-1, 4)
    faces = Faces(
        boxes=boxes,
        scores=np.full(n, 0.9),
        keypoints=np.zeros((n, 6, 2)),
        landmarks=np.zeros((n, 478, 3)),
        landmark_scores=np.full(n, 0.99),
        poses=np.tile([1.5, -2.25, 3.0], (n, 1)),
        expressions=probs,
    )
    return VideoFrame(FrameResult(faces, 640, 360, "x.mp4", index, t), np.array(ids, dtype=np.int64))


def frames_a():
    """Track 0 in frames 0-9 (happiness in 0-5, neutral after), track 1 in frames 4-7 (sadness)."""
    out = []
    for k in range(10):
        ids, top = [0], [1 if k < 6 else 0]
        if 4 <= k < 8:
            ids, top = ids + [1], top + [3]
        out.append(make_frame(k, k / 10, ids, top))
    out.append(make_frame(10, 1.0, []))
    return out


def test_video_frame_validates_track_ids():
    f = make_frame(0, 0.0, [3, 5])
    assert f.track_ids.dtype == np.int64 and not f.track_ids.flags.writeable
    with pytest.raises(ShapeError, match="track_ids"):
        VideoFrame(f.result, np.array([1]))
    assert make_frame(0, 0.0, []).track_ids.shape == (0,)


def test_timeline_rows_dataframe_and_summary():
    tl = Timeline(EXPRESSIONS, frame_step=0.1)
    for f in frames_a():
        tl.add(f)
    assert len(tl) == 14
    assert tl.track_ids().tolist() == [0, 1]
    df = tl.to_dataframe()
    assert tuple(df.columns) == timeline_columns(EXPRESSIONS)
    assert len(df) == 14 and set(df["track"]) == {0, 1}
    s0, s1 = tl.summary()
    assert (s0.track, s0.frames, s0.first_time, s0.last_time) == (0, 10, 0.0, pytest.approx(0.9))
    assert s0.duration == pytest.approx(1.0)
    assert s0.dominant == "happiness" and s0.shares["happiness"] == pytest.approx(0.6)
    assert s0.shares["neutral"] == pytest.approx(0.4) and sum(s0.shares.values()) == pytest.approx(1.0)
    assert s0.mean_probabilities["happiness"] == pytest.approx(0.6 * 0.86 + 0.4 * 0.02)
    assert (s1.track, s1.frames, s1.dominant, s1.duration) == (1, 4, "sadness", pytest.approx(0.4))
    json.dumps([s.to_dict() for s in tl.summary()])


def test_frame_step_estimated_from_times():
    tl = Timeline()
    for f in frames_a():
        tl.add(f)
    assert tl.step() == pytest.approx(0.1)
    assert tl.summary()[1].duration == pytest.approx(0.4)


def test_empty_timeline():
    tl = Timeline()
    tl.add(make_frame(0, 0.0, []))
    assert len(tl) == 0 and tl.summary() == ()
    df = tl.to_dataframe()
    assert len(df) == 0 and tuple(df.columns) == timeline_columns()


def test_rows_have_fixed_precision():
    (row,) = format_rows(make_frame(3, 0.1, [7]))
    assert row[:3] == ["0.100000", "3", "7"] and row[3] == "3.00" and row[12] == "neutral"
    assert len(row) == len(timeline_columns())


# --- writer -------------------------------------------------------------------------------------


def write_all(out, frames, meta=None, resume=False, chunk=3, stop_after=None):
    w = TimelineWriter(out, EXPRESSIONS, meta or {"source": "x"}, resume=resume, chunk_frames=chunk)
    state_log = []
    for k, f in enumerate(frames):
        if w.last_frame is not None and f.frame_index <= w.last_frame:
            continue
        if stop_after is not None and k == stop_after:
            return w  # "killed": no finish, nothing after the last commit
        w.append(f, lambda f=f: {"after": f.frame_index})
        state_log.append(f.frame_index)
    w.finish()
    return w


def test_writer_commits_parts_then_merges(tmp_path):
    frames = frames_a()
    w = write_all(tmp_path / "a", frames, stop_after=7)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["part-00001.csv", "part-00002.csv", PROGRESS_FILE]  # 2 chunks of 3 frames committed
    prog = json.loads((tmp_path / "a" / PROGRESS_FILE).read_text())
    assert (prog["last_frame"], prog["frames_done"], prog["complete"], prog["state"]) == (
        5,
        6,
        False,
        {"after": 5},
    )
    assert w.frames_done == 7  # the 7th frame was queued, never committed
    full = write_all(tmp_path / "b", frames)
    assert full.complete and sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        PROGRESS_FILE,
        TIMELINE_FILE,
    ]
    text = (tmp_path / "b" / TIMELINE_FILE).read_text()
    assert text.splitlines()[0] == ",".join(timeline_columns()) and len(text.splitlines()) == 15
    back = Timeline.read_csv(tmp_path / "b" / TIMELINE_FILE)
    assert len(back) == 14 and back.classes == EXPRESSIONS
    for got, want in zip(back.summary(), _timeline(frames).summary(), strict=True):
        assert (got.track, got.frames, got.dominant, got.shares) == (
            want.track,
            want.frames,
            want.dominant,
            want.shares,
        )
        assert got.mean_probabilities == pytest.approx(want.mean_probabilities, abs=1e-6)


def _timeline(frames):
    tl = Timeline()
    for f in frames:
        tl.add(f)
    return tl


def test_resume_after_kill_gives_identical_output(tmp_path):
    frames = frames_a()
    write_all(tmp_path / "full", frames)
    write_all(tmp_path / "run", frames, stop_after=8)
    # a kill between writing a part and recording it leaves an orphan part: resume must drop it
    (tmp_path / "run" / "part-00003.csv").write_text("garbage\n")
    with pytest.raises(InputError, match="unfinished run.*resume"):
        TimelineWriter(tmp_path / "run", EXPRESSIONS, {"source": "x"})
    w = TimelineWriter(tmp_path / "run", EXPRESSIONS, {"source": "x"}, resume=True, chunk_frames=3)
    assert (w.last_frame, w.frames_done, w.resume_state, w.complete) == (5, 6, {"after": 5}, False)
    assert not (tmp_path / "run" / "part-00003.csv").exists()
    for f in frames[6:]:
        w.append(f, lambda: None)
    w.finish()
    assert (tmp_path / "run" / TIMELINE_FILE).read_bytes() == (tmp_path / "full" / TIMELINE_FILE).read_bytes()
    again = TimelineWriter(tmp_path / "run", EXPRESSIONS, {"source": "x"}, resume=True)
    assert again.complete and again.frames_done == 11


def test_resume_with_other_settings_is_refused(tmp_path):
    write_all(tmp_path / "r", frames_a(), meta={"source": "x", "every": 1}, stop_after=4)
    with pytest.raises(InputError, match="other settings.*every"):
        TimelineWriter(tmp_path / "r", EXPRESSIONS, {"source": "x", "every": 2}, resume=True)


def test_finished_run_is_replaced_by_a_fresh_one(tmp_path):
    write_all(tmp_path / "r", frames_a())
    w = TimelineWriter(tmp_path / "r", EXPRESSIONS, {"source": "x"})
    assert not w.complete and not (tmp_path / "r" / TIMELINE_FILE).exists()
    w.finish()
    assert (tmp_path / "r" / TIMELINE_FILE).read_text() == ",".join(timeline_columns()) + "\n"


def test_no_faces_gives_header_only(tmp_path):
    write_all(tmp_path / "n", [make_frame(k, k / 30, []) for k in range(7)])
    assert (tmp_path / "n" / TIMELINE_FILE).read_text() == ",".join(timeline_columns()) + "\n"
    assert len(Timeline.read_csv(tmp_path / "n" / TIMELINE_FILE)) == 0


def test_writer_refuses_frames_out_of_order(tmp_path):
    w = TimelineWriter(tmp_path / "o", EXPRESSIONS, {})
    w.append(make_frame(5, 0.5, [0]), lambda: None)
    with pytest.raises(InputError, match="not after"):
        w.append(make_frame(5, 0.5, [0]), lambda: None)


def test_read_csv_rejects_other_files(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not an openfer timeline"):
        Timeline.read_csv(p)
    with pytest.raises(InputError, match="cannot read"):
        Timeline.read_csv(tmp_path / "missing.csv")
