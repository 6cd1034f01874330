"""Timeline (rows, DataFrame, per-track summary) and TimelineWriter (atomic parts, progress, resume,
merge) on synthetic frames: no models."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from openfer.core.blendshapes import BLENDSHAPE_NAMES
from openfer.core.filters import smooth_tracks
from openfer.errors import InputError, MissingDependencyError, ShapeError
from openfer.types import EXPRESSIONS, Faces, FrameResult
from openfer.video.analyzer import VideoFrame
from openfer.video.timeline import (
    MAX_GAP,
    PROGRESS_FILE,
    TIMELINE_FILE,
    ColumnGroups,
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


def test_finished_run_is_kept_unless_overwrite_is_asked(tmp_path):
    write_all(tmp_path / "r", frames_a())
    before = (tmp_path / "r" / TIMELINE_FILE).read_text()
    with pytest.raises(InputError, match="holds a finished run .*--resume .*--overwrite"):
        TimelineWriter(tmp_path / "r", EXPRESSIONS, {"source": "x"})
    assert (tmp_path / "r" / TIMELINE_FILE).read_text() == before
    w = TimelineWriter(tmp_path / "r", EXPRESSIONS, {"source": "x"}, overwrite=True)
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


# --- AU and valence/arousal columns -----------------------------------------------------------

AUS = ("AU1", "AU2", "AU12")


def with_extras(f: VideoFrame, aus=True, va=True, au_names=AUS) -> VideoFrame:
    """``f`` with AUs (AU12 = 4 * happiness probability) and valence/arousal (t, -t)."""
    faces = f.faces
    n = len(faces)
    a = np.zeros((n, len(au_names)))
    a[:, -1] = 4 * faces.expressions[:, 1]
    t = f.timestamp
    faces = Faces(
        boxes=faces.boxes,
        scores=faces.scores,
        keypoints=faces.keypoints,
        landmarks=faces.landmarks,
        landmark_scores=faces.landmark_scores,
        poses=faces.poses,
        expressions=faces.expressions,
        aus=a if aus else None,
        au_names=au_names if aus else (),
        valence_arousal=np.tile([t, -t], (n, 1)) if va else None,
    )
    return VideoFrame(FrameResult(faces, 640, 360, "x.mp4", f.frame_index, t), f.track_ids)


def frames_b():
    return [with_extras(f) for f in frames_a()]


def test_columns_carry_aus_and_valence_arousal():
    cols = timeline_columns(EXPRESSIONS, AUS, affect=True)
    assert cols[-5:] == ("valence", "arousal", *AUS) and cols[: len(timeline_columns())] == timeline_columns()
    (row,) = format_rows(with_extras(make_frame(3, 0.25, [7], [1])), AUS, affect=True)
    assert len(row) == len(cols) and row[-5:] == ["0.250000", "-0.250000", "0.0000", "0.0000", "3.4400"]
    (plain,) = format_rows(with_extras(make_frame(3, 0.25, [7])))  # no groups asked: none written
    assert len(plain) == len(timeline_columns())
    tl = Timeline(au_names=AUS, affect=True)
    for f in frames_b():
        tl.add(f)
    assert tl.aus.shape == (14, 3) and tl.aus.dtype == np.float64 and tl.au_names == AUS
    np.testing.assert_allclose(tl.aus[:, 2], 4 * tl.probabilities[:, 1], rtol=1e-6)
    np.testing.assert_allclose(tl.valence_arousal[:, 0], tl.times, atol=1e-6)
    df = tl.to_dataframe()
    assert tuple(df.columns) == cols and df["AU12"].iloc[0] == pytest.approx(3.44)
    assert tl.to_records()[0]["valence"] == 0.0 and set(tl.to_records()[0]) == set(cols)
    bare = Timeline()
    bare.add(frames_b()[0])  # a timeline without the groups ignores them
    assert bare.aus.shape == (1, 0) and np.isnan(bare.valence_arousal).all()


def test_summary_has_valence_arousal_peaks_and_mean_aus():
    tl = Timeline(frame_step=0.1, au_names=AUS, affect=True)
    for f in frames_b():
        tl.add(f)
    s0, s1 = tl.summary()
    assert s0.mean_valence == pytest.approx(0.45) and s0.mean_arousal == pytest.approx(-0.45)
    assert (s0.peak_valence, s0.peak_valence_time) == (pytest.approx(0.9), pytest.approx(0.9))
    assert (s0.peak_arousal, s1.peak_arousal_time) == (pytest.approx(-0.9), pytest.approx(0.7))
    assert s0.mean_aus["AU12"] == pytest.approx(4 * (0.6 * 0.86 + 0.4 * 0.02), rel=1e-6)
    assert s0.mean_aus["AU1"] == 0.0
    d = s0.to_dict()
    assert d["mean_aus"]["AU12"] == s0.mean_aus["AU12"] and d["peak_valence_time"] == s0.peak_valence_time
    json.dumps([s.to_dict() for s in tl.summary()], allow_nan=False)
    (plain,) = _timeline(frames_a()[:4]).summary()
    assert plain.mean_valence is None and plain.peak_arousal is None and plain.mean_aus == {}
    assert set(plain.to_dict()) == set(d)  # the same keys either way


def test_writer_streams_the_groups_and_read_csv_parses_them(tmp_path):
    frames = frames_b()
    w = TimelineWriter(
        tmp_path / "g", EXPRESSIONS, {"source": "x"}, chunk_frames=3, au_names=AUS, affect=True
    )
    for f in frames:
        w.append(f, lambda: None)
    path = w.finish()
    assert path.read_text().splitlines()[0] == ",".join(timeline_columns(EXPRESSIONS, AUS, True))
    back = Timeline.read_csv(path)
    assert (back.classes, back.au_names, back.affect) == (EXPRESSIONS, AUS, True)
    mem = _timeline(frames, au_names=AUS, affect=True)
    np.testing.assert_allclose(back.aus, mem.aus, atol=5e-5)
    np.testing.assert_allclose(back.valence_arousal, mem.valence_arousal, atol=5e-7)
    assert back.labels == mem.labels
    # an old timeline (no groups) still reads: AUs (N, 0), valence/arousal NaN
    old = Timeline.read_csv(write_all(tmp_path / "old", frames_a()).out_dir / TIMELINE_FILE)
    assert old.aus.shape == (14, 0) and np.isnan(old.valence_arousal).all() and not old.affect
    # only AUs, no valence/arousal
    w = TimelineWriter(tmp_path / "a", EXPRESSIONS, {}, au_names=AUS)
    w.append(frames[0], lambda: None)
    only = Timeline.read_csv(w.finish())
    assert only.au_names == AUS and not only.affect and np.isnan(only.valence_arousal).all()


def test_mixed_frames_never_misalign(tmp_path):
    frames = [with_extras(f, aus=k % 2 == 0, va=k % 3 != 0) for k, f in enumerate(frames_a())]
    w = TimelineWriter(tmp_path / "m", EXPRESSIONS, {}, au_names=AUS, affect=True)
    for f in frames:
        w.append(f, lambda: None)
    text = w.finish().read_text().splitlines()
    assert {len(r.split(",")) for r in text} == {len(timeline_columns(EXPRESSIONS, AUS, True))}
    back = Timeline.read_csv(tmp_path / "m" / TIMELINE_FILE)
    missing = np.isin(back.frames, [1, 3, 5, 7, 9])
    assert np.isnan(back.aus[missing]).all() and np.isfinite(back.aus[~missing]).all()
    assert np.isnan(back.valence_arousal[np.isin(back.frames, [0, 3, 6, 9])]).all()
    assert back.summary()[0].mean_aus["AU12"] is not None
    other = with_extras(make_frame(20, 2.0, [0]), au_names=("AU1", "AU2", "AU4"))
    with pytest.raises(InputError, match="AUs"):
        w2 = TimelineWriter(tmp_path / "o", EXPRESSIONS, {}, au_names=AUS)
        w2.append(other, lambda: None)
    # resuming with other columns is refused
    write_all(tmp_path / "r", frames_a(), stop_after=4)
    with pytest.raises(InputError, match="other columns"):
        TimelineWriter(tmp_path / "r", EXPRESSIONS, {"source": "x"}, resume=True, au_names=AUS)


def test_read_csv_rejects_bad_groups(tmp_path):
    base = ",".join(timeline_columns())
    for tail in (",AU1,valence,arousal", ",valence", ",AU1,neutral"):
        p = tmp_path / "h.csv"
        p.write_text(base + tail + "\n")
        with pytest.raises(InputError, match="not an openfer timeline"):
            Timeline.read_csv(p)


def _timeline(frames, **kw):
    tl = Timeline(**kw)
    for f in frames:
        tl.add(f)
    return tl


# --- smoothing ------------------------------------------------------------------------------------


def flicker_frames():
    """Track 0 at 30 fps for 2 s: happiness with a one-frame neutral flicker at frame 20, then a
    1.5 s pause, then 10 more frames; track 1 alongside for 0.5 s."""
    out = []
    for k in list(range(60)) + list(range(105, 115)):
        ids, top = [0], [0 if k == 20 else 1]
        if k < 15:
            ids, top = ids + [1], top + [3]
        out.append(with_extras(make_frame(k, k / 30, ids, top)))
    return out


@pytest.mark.parametrize("method", ["ema", "window", "one_euro"])
def test_smooth_keeps_raw_and_recomputes_labels(method):
    tl = _timeline(flicker_frames(), au_names=AUS, affect=True)
    sm = tl.smooth(method)
    assert sm.raw is tl and len(sm) == len(tl) and tl.raw is None
    np.testing.assert_allclose(sm.probabilities.sum(1), 1.0)
    np.testing.assert_array_equal(sm.times, tl.times)
    flicker = np.flatnonzero((tl.frames == 20) & (tl.tracks == 0))[0]
    assert tl.labels[flicker] == "neutral" and sm.labels[flicker] == "happiness"
    assert sm.labels.count("sadness") == tl.labels.count("sadness") == 15  # track 1 is its own
    # the pause restarts the filter: the first row after it is the raw row (for the centered window:
    # the mean of the rows up to 0.25 s after it, frames 105-112, none from before the pause)
    after = np.flatnonzero(tl.frames == 105)[0]
    np.testing.assert_allclose(sm.probabilities[after], tl.probabilities[after], atol=1e-6)
    assert sm.boxes[after, 0] == pytest.approx(108.5 if method == "window" else 105.0)
    assert np.isfinite(sm.aus).all() and np.isfinite(sm.valence_arousal).all()
    df = sm.to_dataframe()
    raw_cols = [c for c in df.columns if c.startswith("raw_")]
    assert raw_cols[:6] == ["raw_x1", "raw_y1", "raw_x2", "raw_y2", "raw_label", "raw_label_score"]
    assert raw_cols[-5:] == ["raw_valence", "raw_arousal", *(f"raw_{a}" for a in AUS)]
    assert df["raw_label"].iloc[flicker] == "neutral" and df["label"].iloc[flicker] == "happiness"
    np.testing.assert_allclose(df["raw_AU12"], tl.aus[:, 2])
    assert sm.smooth(method).raw is tl  # smoothing again keeps the original raw values


def test_smooth_ema_lag_on_a_timeline():
    """A timeline at 30 fps switching from neutral to happiness at 1 s: with the default ema
    (tau 0.3 s) the label follows after ~0.2 s (half-way point), and the box moving at constant
    speed lags by ~tau."""
    frames = [make_frame(k, k / 30, [0], [1 if k >= 30 else 0]) for k in range(90)]
    tl = _timeline(frames)
    sm = tl.smooth("ema")
    switch = sm.times[np.array(sm.labels) == "happiness"].min() - 1.0
    assert 0.1 < switch < 0.25
    lag_px = tl.boxes[-1, 0] - sm.boxes[-1, 0]  # x1 moves 30 px/s
    assert lag_px == pytest.approx(30 * 0.3, rel=0.1)
    fast = tl.smooth("one_euro")
    assert fast.times[np.array(fast.labels) == "happiness"].min() - 1.0 < switch


def test_smoothed_csv_round_trip_and_parquet(tmp_path):
    tl = _timeline(flicker_frames(), au_names=AUS, affect=True)
    sm = tl.smooth("ema")
    path = sm.write_csv(tmp_path / "s.csv")
    assert path.read_text().splitlines()[0] == ",".join(sm.columns)
    back = Timeline.read_csv(path)
    assert back.raw is not None and back.columns == sm.columns
    np.testing.assert_allclose(back.probabilities, sm.probabilities, atol=5e-7)
    np.testing.assert_allclose(back.raw.probabilities, tl.probabilities, atol=5e-7)
    np.testing.assert_allclose(back.raw.aus, tl.aus, atol=5e-5)
    assert back.raw.labels == tl.labels and back.labels == sm.labels
    assert back.write_csv(tmp_path / "again.csv").read_bytes() == path.read_bytes()
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pq = tl.to_parquet(tmp_path / "t.parquet")
    got = pd.read_parquet(pq)
    pd.testing.assert_frame_equal(got, tl.to_dataframe())
    assert got["frame"].dtype == np.int64 and got["label"].iloc[0] == "happiness"
    empty = Timeline(au_names=AUS, affect=True).to_parquet(tmp_path / "e.parquet")
    assert tuple(pd.read_parquet(empty).columns) == timeline_columns(EXPRESSIONS, AUS, True)


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)
    with pytest.raises(MissingDependencyError, match=r"Parquet output needs pyarrow: pip install 'openfer\[tables\]'"):
        _timeline(frames_a()).to_parquet(tmp_path / "t.parquet")
    assert not (tmp_path / "t.parquet").exists()
    with pytest.raises(InputError, match="smoothing method 'median'"):
        _timeline(frames_a()).smooth("median")


# --- PSPI, AU-baseline and open-set columns -------------------------------------------------------

GROUPS = {"au_names": AUS, "affect": True, "pspi": True, "au_baseline": True, "openset": True}
TAIL = ("pspi", "au_baseline", "unknown_score", "open_label")


def with_open(f: VideoFrame, scored: bool = True) -> VideoFrame:
    """``f`` with AUs and valence/arousal (:func:`with_extras`), PSPI = 2 * AU12, open-set scores
    (frame % 10) / 10 (+0.01 for the second face; "unknown" over 0.55) unless not ``scored``, and the AU
    baseline in use from frame 3 on (as a video-open-set model and VideoRun would give them)."""
    g = with_extras(f)
    n = len(g.faces)
    u = (f.frame_index % 10) / 10 + 0.01 * np.arange(n)
    faces = dataclasses.replace(
        g.faces,
        pspi=2 * g.faces.aus[:, -1],
        unknown_scores=u if scored else None,
        unknown_threshold=0.55 if scored else None,
    )
    flags = np.full(n, f.frame_index >= 3)
    return VideoFrame(dataclasses.replace(g.result, faces=faces), g.track_ids, flags)


def frames_c():
    return [with_open(f, scored=f.frame_index != 2) for f in frames_a()]


def test_columns_carry_pspi_baseline_flag_and_open_set():
    cols = timeline_columns(EXPRESSIONS, **GROUPS)
    assert cols[-len(TAIL) - 3 :] == (*AUS, *TAIL) and cols[: len(timeline_columns())] == timeline_columns()
    (row,) = format_rows(with_open(make_frame(7, 0.7, [4], [1])), **GROUPS)
    assert row[-5:] == ["3.4400", "6.8800", "1", "0.700000", "unknown"]
    tl = _timeline(frames_c(), **GROUPS)
    assert tl.columns == cols and tl.groups == ColumnGroups(**GROUPS)
    np.testing.assert_allclose(tl.pspi, 2 * tl.aus[:, 2], rtol=1e-6)
    assert tl.au_baseline.tolist() == (tl.frames >= 3).tolist()
    missing = tl.frames == 2  # a frame without open-set scores: NaN, and its plain label
    assert np.isnan(tl.unknown_scores[missing]).all() and np.isfinite(tl.unknown_scores[~missing]).all()
    want = ["unknown" if u > 0.55 else lab for u, lab in zip(tl.unknown_scores, tl.labels, strict=True)]
    assert list(tl.open_labels) == want and tl.open_labels.count("unknown") == 6
    df = tl.to_dataframe()
    assert tuple(df.columns) == cols
    assert df["au_baseline"].dtype == np.int64 and df["open_label"].iloc[-1] == "unknown"
    assert tl.to_records()[0]["open_label"] == "happiness"
    # a timeline without the groups ignores them; its open labels are its labels
    bare = _timeline(frames_c())
    assert np.isnan(bare.pspi).all() and not bare.au_baseline.any() and bare.open_labels == bare.labels
    assert bare.columns == timeline_columns()


def test_pspi_baseline_and_open_set_round_trip_csv_and_parquet(tmp_path):
    frames = frames_c()
    w = TimelineWriter(tmp_path / "g", EXPRESSIONS, {"source": "x"}, chunk_frames=3, **GROUPS)
    for f in frames:
        w.append(f, lambda: None)
    path = w.finish()
    assert path.read_text().splitlines()[0] == ",".join(timeline_columns(EXPRESSIONS, **GROUPS))
    back = Timeline.read_csv(path)
    mem = _timeline(frames, **GROUPS)
    assert back.groups == mem.groups and back.columns == mem.columns
    np.testing.assert_allclose(back.pspi, mem.pspi, atol=5e-5)
    np.testing.assert_allclose(back.unknown_scores, mem.unknown_scores, atol=5e-7)
    assert back.au_baseline.tolist() == mem.au_baseline.tolist() and back.open_labels == mem.open_labels
    assert back.write_csv(tmp_path / "again.csv").read_bytes() == path.read_bytes()
    # any subset of the groups, e.g. a timeline written before pspi/au_baseline existed (AUs only)
    for kw in ({"au_names": AUS}, {"au_names": AUS, "pspi": True}, {"openset": True}, {"au_baseline": True}):
        w = TimelineWriter(tmp_path / str(len(list(tmp_path.iterdir()))), EXPRESSIONS, {}, **kw)
        w.append(frames[5], lambda: None)
        one = Timeline.read_csv(w.finish())
        assert one.groups == ColumnGroups(**kw) and len(one) == 2
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    got = pd.read_parquet(mem.to_parquet(tmp_path / "t.parquet"))
    pd.testing.assert_frame_equal(got, mem.to_dataframe())
    assert got["open_label"].iloc[-1] == "unknown" and got["au_baseline"].dtype == np.int64


def test_read_csv_rejects_groups_out_of_order(tmp_path):
    base = ",".join(timeline_columns())
    for tail in (
        ",pspi,AU1",
        ",au_baseline,pspi",
        ",open_label,unknown_score",
        ",unknown_score",
        ",pspi,pspi",
        # blendshapes: last, known, once each
        ",jawOpen,pspi",
        ",jawOpen,unknown_score,open_label",
        ",jawOpen,AU1",
        ",jawOpen,jawOpen",
        ",jawOpen,notABlendshape",
    ):
        p = tmp_path / "h.csv"
        p.write_text(base + tail + "\n")
        with pytest.raises(InputError, match="not an openfer timeline"):
            Timeline.read_csv(p)


@pytest.mark.parametrize("method", ["ema", "window", "one_euro"])
def test_smooth_pspi_and_unknown_scores_keep_open_labels_and_flags(tmp_path, method):
    frames = [with_open(f) for f in flicker_frames()]
    tl = _timeline(frames, **GROUPS)
    sm = tl.smooth(method)
    assert sm.groups == tl.groups
    np.testing.assert_allclose(sm.raw.pspi, tl.pspi)
    flicker = np.flatnonzero((tl.frames == 20) & (tl.tracks == 0))[0]
    assert tl.pspi[flicker] < 0.2 and sm.pspi[flicker] > 1.0  # a one-frame dip, smoothed like AUs
    u = sm.unknown_scores
    assert np.isfinite(u).all() and (u >= 0).all() and (u <= 1).all()
    assert not np.allclose(u, tl.unknown_scores)  # smoothed on its own, not renormalised:
    alone = smooth_tracks(tl.unknown_scores[:, None], tl.times, tl.tracks, method, max_gap=MAX_GAP)[:, 0]
    np.testing.assert_allclose(u, np.clip(alone, 0, 1), atol=1e-12)
    assert sm.open_labels == tl.open_labels and sm.au_baseline.tolist() == tl.au_baseline.tolist()
    df = sm.to_dataframe()
    raw_cols = [c for c in df.columns if c.startswith("raw_")]
    assert raw_cols[-2:] == ["raw_pspi", "raw_unknown_score"]  # not au_baseline, not open_label
    back = Timeline.read_csv(sm.write_csv(tmp_path / "s.csv"))
    assert back.columns == sm.columns and back.open_labels == tl.open_labels
    np.testing.assert_allclose(back.raw.unknown_scores, tl.unknown_scores, atol=5e-7)


def test_timeline_stream_writes_the_same_groups():
    import io

    from openfer.video.live import TimelineStream

    buf = io.StringIO()
    stream = TimelineStream([buf], EXPRESSIONS, **GROUPS)
    expected = [list(timeline_columns(EXPRESSIONS, **GROUPS))]
    for f in frames_c()[:5]:
        stream.write(f)
        expected += format_rows(f, **GROUPS)
    assert [line.split(",") for line in buf.getvalue().splitlines()] == expected


# --- blendshape columns ---------------------------------------------------------------------------

BS = BLENDSHAPE_NAMES


def with_blendshapes(f: VideoFrame, present: bool = True) -> VideoFrame:
    """``f`` with the open-set groups (:func:`with_open`) and 52 blendshapes: ``jawOpen`` the
    happiness probability, the others ``k / 100 + frame / 1000`` (``None`` unless ``present``)."""
    g = with_open(f)
    n = len(g.faces)
    bs = np.tile(np.arange(len(BS)) / 100 + f.frame_index / 1000, (n, 1)).astype(np.float32)
    bs[:, BS.index("jawOpen")] = g.faces.expressions[:, 1]
    faces = dataclasses.replace(
        g.faces, blendshapes=bs if present else None, blendshape_names=BS if present else ()
    )
    return VideoFrame(dataclasses.replace(g.result, faces=faces), g.track_ids, g.au_baseline)


def frames_d():
    return [with_blendshapes(f, present=f.frame_index != 4) for f in frames_a()]


BS_GROUPS = {**GROUPS, "blendshape_names": BS}


def test_columns_carry_blendshapes_after_the_other_groups():
    cols = timeline_columns(EXPRESSIONS, **BS_GROUPS)
    assert cols[: -len(BS)] == timeline_columns(EXPRESSIONS, **GROUPS) and cols[-len(BS) :] == BS
    assert BS[0] == "_neutral" and not any(b.startswith("AU") for b in BS)  # why the parser knows them
    (row,) = format_rows(with_blendshapes(make_frame(7, 0.7, [4], [1])), **BS_GROUPS)
    assert len(row) == len(cols) and row[-len(BS) :][:3] == ["0.0070", "0.0170", "0.0270"]
    assert row[cols.index("jawOpen")] == "0.8600" and row[cols.index("open_label")] == "unknown"
    tl = _timeline(frames_d(), **BS_GROUPS)
    assert tl.columns == cols and tl.groups == ColumnGroups(**BS_GROUPS) and tl.blendshape_names == BS
    assert tl.blendshapes.shape == (14, 52) and tl.blendshapes.dtype == np.float64
    missing = tl.frames == 4  # a frame without blendshapes: NaN cells, the row stays whole
    assert missing.sum() == 2 and np.isnan(tl.blendshapes[missing]).all()
    assert np.isfinite(tl.blendshapes[~missing]).all()
    np.testing.assert_allclose(
        tl.blendshapes[:, BS.index("jawOpen")][~missing], tl.probabilities[~missing, 1]
    )
    df = tl.to_dataframe()
    assert tuple(df.columns) == cols and df["jawOpen"].iloc[0] == pytest.approx(0.86)
    s0, _ = tl.summary()
    assert set(s0.mean_blendshapes) == set(BS)
    assert s0.mean_blendshapes["jawOpen"] == pytest.approx((5 * 0.86 + 4 * 0.02) / 9, rel=1e-6)  # NaN skipped
    assert s0.mean_blendshapes["_neutral"] == pytest.approx(np.mean([k / 1000 for k in range(10) if k != 4]))
    json.dumps([s.to_dict() for s in tl.summary()], allow_nan=False)
    # a timeline without the group ignores the frames' blendshapes, and its summary has none
    bare = _timeline(frames_d(), **GROUPS)
    assert bare.blendshapes.shape == (14, 0) and bare.columns == timeline_columns(EXPRESSIONS, **GROUPS)
    assert bare.summary()[0].mean_blendshapes == {}
    assert set(bare.summary()[0].to_dict()) == set(s0.to_dict())
    other = with_blendshapes(make_frame(20, 2.0, [0]))
    other = VideoFrame(
        dataclasses.replace(other.result, faces=dataclasses.replace(other.faces, blendshape_names=BS[::-1])),
        other.track_ids,
    )
    with pytest.raises(InputError, match="blendshapes"):
        _timeline([other], blendshape_names=BS)


def test_blendshapes_round_trip_csv_resume_and_parquet(tmp_path):
    frames = frames_d()
    w = TimelineWriter(tmp_path / "g", EXPRESSIONS, {"source": "x"}, chunk_frames=3, **BS_GROUPS)
    for f in frames:
        w.append(f, lambda: None)
    path = w.finish()
    assert path.read_text().splitlines()[0] == ",".join(timeline_columns(EXPRESSIONS, **BS_GROUPS))
    back = Timeline.read_csv(path)
    mem = _timeline(frames, **BS_GROUPS)
    assert back.groups == mem.groups and back.columns == mem.columns and back.blendshape_names == BS
    np.testing.assert_allclose(back.blendshapes, mem.blendshapes, atol=5e-5)  # 4 decimals, NaN kept
    np.testing.assert_array_equal(np.isnan(back.blendshapes), np.isnan(mem.blendshapes))
    assert back.open_labels == mem.open_labels and back.au_baseline.tolist() == mem.au_baseline.tolist()
    assert back.write_csv(tmp_path / "again.csv").read_bytes() == path.read_bytes()
    # blendshapes alone, and with AUs only: the header says which groups there are
    for kw in ({"blendshape_names": BS}, {"au_names": AUS, "blendshape_names": BS}):
        w = TimelineWriter(tmp_path / str(len(list(tmp_path.iterdir()))), EXPRESSIONS, {}, **kw)
        w.append(frames[5], lambda: None)
        one = Timeline.read_csv(w.finish())
        assert one.groups == ColumnGroups(**kw) and one.blendshapes.shape == (2, 52)
    # a killed run resumed gives the same bytes; resuming it without the blendshapes is refused
    full = tmp_path / "full"
    w = TimelineWriter(full, EXPRESSIONS, {"source": "x"}, chunk_frames=3, **BS_GROUPS)
    for f in frames:
        w.append(f, lambda f=f: {"after": f.frame_index})
    w.finish()
    run = tmp_path / "run"
    w = TimelineWriter(run, EXPRESSIONS, {"source": "x"}, chunk_frames=3, **BS_GROUPS)
    for f in frames[:8]:
        w.append(f, lambda f=f: {"after": f.frame_index})
    with pytest.raises(InputError, match="other columns"):
        TimelineWriter(run, EXPRESSIONS, {"source": "x"}, resume=True, **GROUPS)
    w = TimelineWriter(run, EXPRESSIONS, {"source": "x"}, resume=True, chunk_frames=3, **BS_GROUPS)
    assert w.resume_state == {"after": 5}
    for f in frames[6:]:
        w.append(f, lambda: None)
    assert w.finish().read_bytes() == (full / TIMELINE_FILE).read_bytes()
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    got = pd.read_parquet(mem.to_parquet(tmp_path / "t.parquet"))
    pd.testing.assert_frame_equal(got, mem.to_dataframe())
    assert tuple(got.columns[-len(BS) :]) == BS and got["_neutral"].dtype == np.float64


@pytest.mark.parametrize("method", ["ema", "window", "one_euro"])
def test_smooth_blendshapes_like_aus(tmp_path, method):
    frames = [with_blendshapes(f) for f in flicker_frames()]
    tl = _timeline(frames, **BS_GROUPS)
    sm = tl.smooth(method)
    j = BS.index("jawOpen")
    flicker = np.flatnonzero((tl.frames == 20) & (tl.tracks == 0))[0]
    assert tl.blendshapes[flicker, j] < 0.05 and sm.blendshapes[flicker, j] > 0.5  # dip smoothed away
    alone = smooth_tracks(tl.blendshapes, tl.times, tl.tracks, method, max_gap=MAX_GAP)
    np.testing.assert_allclose(sm.blendshapes, alone, atol=1e-12)  # each on its own, unit scale
    assert (sm.blendshapes >= 0).all() and (sm.blendshapes <= 1).all()
    np.testing.assert_allclose(sm.pspi, _timeline(frames, **GROUPS).smooth(method).pspi)  # others unchanged
    df = sm.to_dataframe()
    raw_cols = [c for c in df.columns if c.startswith("raw_")]
    assert raw_cols[-len(BS) - 2 :] == ["raw_pspi", "raw_unknown_score", *(f"raw_{b}" for b in BS)]
    back = Timeline.read_csv(sm.write_csv(tmp_path / "s.csv"))
    assert back.columns == sm.columns and back.raw is not None
    np.testing.assert_allclose(back.blendshapes, sm.blendshapes, atol=5e-5)
    np.testing.assert_allclose(back.raw.blendshapes, tl.blendshapes, atol=5e-5)


def test_optional_columns_follow_the_analyzers_blendshape_model():
    from types import SimpleNamespace

    from openfer.video.columns import optional_columns

    def analyzer(blendshapes):
        opts = SimpleNamespace(aus=False, explain=False)
        return SimpleNamespace(
            options=opts, expression=SimpleNamespace(openset=None), blendshapes=blendshapes
        )

    assert optional_columns(analyzer(object())) == ColumnGroups(blendshape_names=BS)
    assert optional_columns(analyzer(None)) == ColumnGroups()


def test_timeline_stream_writes_the_blendshapes():
    import io

    from openfer.video.live import TimelineStream

    buf = io.StringIO()
    stream = TimelineStream([buf], EXPRESSIONS, **BS_GROUPS)
    expected = [list(timeline_columns(EXPRESSIONS, **BS_GROUPS))]
    for f in frames_d()[3:6]:
        stream.write(f)
        expected += format_rows(f, **BS_GROUPS)
    assert [line.split(",") for line in buf.getvalue().splitlines()] == expected
    assert len(expected[0]) == len(expected[-1]) and expected[-1][-1] != "nan" and "nan" in expected[2]
