"""Timeline figures (one PNG per track, gaps kept as gaps, missing matplotlib) on synthetic timelines,
and the whole job with events, captions and plots on a real clip."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from video_assets import SINGLE_FACE, video_analyzer

from openfer.core.au import AU_NAMES
from openfer.errors import InputError, MissingDependencyError
from openfer.types import EXPRESSIONS, Faces, FrameResult
from openfer.video import Timeline, analyze_video_to_dir
from openfer.video.analyzer import VideoFrame
from openfer.video.plots import plot_timeline, time_grid, track_plot_name, with_gaps

C = len(EXPRESSIONS)
PNG = b"\x89PNG\r\n\x1a\n"


def frame(
    index: int, t: float, probs: list[np.ndarray], ids: list[int], aus: np.ndarray | None = None
) -> VideoFrame:
    n = len(ids)
    faces = Faces(
        boxes=np.tile([10.0, 20.0, 60.0, 80.0], (n, 1)),
        scores=np.full(n, 0.9),
        keypoints=np.zeros((n, 6, 2)),
        landmarks=np.zeros((n, 0, 3)),
        landmark_scores=np.full(n, 0.9),
        poses=np.zeros((n, 3)),
        expressions=np.array(probs).reshape(n, C),
        aus=aus,
        au_names=AU_NAMES if aus is not None else (),
    )
    return VideoFrame(FrameResult(faces, 640, 360, "x.mp4", index, t), np.array(ids, dtype=np.int64))


def probs(c: int, v: float) -> np.ndarray:
    p = np.zeros(C)
    p[c] += v
    p[0] += 1.0 - v
    return p


def two_tracks() -> Timeline:
    """Track 0 smiles 1.0-2.5 s and is away 3.0-3.8 s; track 1 (from 2 s) shows surprise."""
    tl = Timeline(frame_step=0.1)
    for k in range(60):
        rows, ids = [], []
        if not 30 <= k < 38:
            rows.append(probs(1, 0.8 if 10 <= k < 25 else 0.0))
            ids.append(0)
        if k >= 20:
            rows.append(probs(2, 0.7 if 40 <= k < 50 else 0.1))
            ids.append(1)
        tl.add(frame(k, k / 10, rows, ids))
    return tl


def test_one_png_per_track(tmp_path):
    tl = two_tracks()
    paths = plot_timeline(tl, tmp_path / "plots")
    assert (
        [p.name for p in paths] == [track_plot_name(0), track_plot_name(1)] == ["track-0.png", "track-1.png"]
    )
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000
    # no temporary files left behind
    assert sorted(x.name for x in (tmp_path / "plots").iterdir()) == ["track-0.png", "track-1.png"]
    assert [p.name for p in plot_timeline(tl, tmp_path / "one", tracks=[1])] == ["track-1.png"]
    with pytest.raises(InputError, match=r"tracks \[5\]"):
        plot_timeline(tl, tmp_path / "bad", tracks=[5])
    assert plot_timeline(Timeline(), tmp_path / "empty") == []


def png_size(data: bytes) -> tuple[int, int]:
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_au_heatmap_panel_when_the_timeline_has_aus(tmp_path):
    tl = Timeline(frame_step=0.1, au_names=AU_NAMES)
    for k in range(30):
        if 12 <= k < 18:
            continue  # face away: blank heatmap columns
        aus = np.zeros((1, len(AU_NAMES)))
        aus[0, AU_NAMES.index("AU12")] = 4.0 if 5 <= k < 25 else 0.0
        tl.add(frame(k, k / 10, [probs(1, 0.9 if 5 <= k < 25 else 0.0)], [0], aus))
    (with_aus,) = plot_timeline(tl, tmp_path / "a")
    (without,) = plot_timeline(two_tracks(), tmp_path / "b", tracks=[0])
    w1, h1 = png_size(with_aus.read_bytes())
    w2, h2 = png_size(without.read_bytes())
    assert w1 == w2 and h1 > h2 + 300  # a third panel, one row per AU


def test_gaps_stay_gaps():
    t = np.array([0.0, 0.1, 0.2, 1.0, 1.1])
    v = np.arange(5.0)[:, None]
    tg, vg = with_gaps(t, v, 0.1)
    assert tg.tolist() == pytest.approx([0.0, 0.1, 0.2, 0.6, 1.0, 1.1])
    assert np.isnan(vg[3, 0]) and vg[[0, 1, 2, 4, 5], 0].tolist() == [0, 1, 2, 3, 4]
    grid, t0 = time_grid(t, v, 0.1)
    assert t0 == 0.0 and grid.shape == (12, 1)
    assert np.isnan(grid[3:10, 0]).all() and grid[[0, 1, 2, 10, 11], 0].tolist() == [0, 1, 2, 3, 4]


def test_missing_matplotlib_is_a_missing_dependency_error(tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    with pytest.raises(MissingDependencyError, match=r"plots needs matplotlib: pip install 'openfer\[plots\]'"):
        plot_timeline(two_tracks(), tmp_path)
    assert not tmp_path.joinpath("track-0.png").exists()


def test_job_writes_events_captions_and_plots(tmp_path):
    res = analyze_video_to_dir(video_analyzer(), SINGLE_FACE, tmp_path, plots=True)
    summary = json.loads(res.summary.read_text())
    (track,) = summary["tracks"]
    assert {"events", "dynamic_label", "caption"} <= set(track)
    # the clip: a neutral face that smiles from about 0.6 s to the end (2.4 s)
    assert track["dynamic_label"] == "happiness"
    (event,) = track["events"]
    assert event["label"] == "happiness" and 0.3 < event["onset"] < 1.0 and event["offset"] > 2.0
    assert event["onset"] <= event["apex"] < event["offset"] and event["peak"] > 0.9
    captions = (tmp_path / "captions.txt").read_text()
    assert captions == track["caption"] + "\n"
    assert captions.startswith("track 0: neutral, then ") and "smile" in captions
    assert f"from {event['onset']:.1f} s to {event['offset']:.1f} s" in captions
    png = tmp_path / "plots" / "track-0.png"
    assert png.read_bytes().startswith(PNG)


def test_cli_video_plots_prints_captions(tmp_path, capsys):
    from openfer.cli import EXIT_OK, main

    rc = main(["video", str(SINGLE_FACE), "--plots", "--fps", "10", "--threads", "1", "--out", str(tmp_path)])
    assert rc == EXIT_OK
    out = tmp_path / "single_face"
    caption = (out / "captions.txt").read_text().strip()
    assert caption.startswith("track 0: ") and f"  {caption}" in capsys.readouterr().out.splitlines()
    assert [p.name for p in (out / "plots").iterdir()] == ["track-0.png"]
