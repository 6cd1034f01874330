"""Video job outputs on a real clip: AU, valence/arousal and blendshape columns in timeline.csv (and
read back), timeline.parquet, timeline_smooth.csv with raw values alongside; a resumed run gives the
same bytes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from video_assets import SINGLE_FACE, full_header, video_analyzer

from openfer.cli import EXIT_OK, EXIT_USAGE, main
from openfer.core.au import AU_NAMES
from openfer.core.blendshapes import BLENDSHAPE_NAMES
from openfer.pipeline import Analyzer
from openfer.video import Timeline, VideoAnalyzer, analyze_video_to_dir
from openfer.video.job import PARQUET_FILE, SMOOTH_FILE
from openfer.video.timeline import TIMELINE_FILE


class Killed(Exception):
    pass


def test_aus_valence_arousal_parquet_and_smoothed_survive_a_resume(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    video = video_analyzer(every=4)
    full = analyze_video_to_dir(
        video, SINGLE_FACE, tmp_path / "full", chunk_frames=5, parquet=True, smooth="ema"
    )
    assert (full.frames, full.rows, full.parquet, full.smoothed) == (
        18,
        18,
        tmp_path / "full" / PARQUET_FILE,
        tmp_path / "full" / SMOOTH_FILE,
    )
    openset = video.analyzer.expression.openset is not None  # the shipped model: no open-set head yet
    header = full_header(openset)
    assert full.timeline.read_text().splitlines()[0] == ",".join(header)
    tl = Timeline.read_csv(full.timeline)
    assert (tl.au_names, tl.affect, len(tl)) == (AU_NAMES, True, 18)
    assert np.isfinite(tl.aus).all() and (tl.aus >= 0).all() and (tl.aus <= 5).all() and tl.aus.max() > 0
    assert np.isfinite(tl.pspi).all() and (tl.pspi >= 0).all() and (tl.pspi <= 16).all()
    assert tl.groups.openset == openset and len(tl.open_labels) == 18
    va = tl.valence_arousal
    assert np.isfinite(va).all() and (np.abs(va) <= 1).all()
    (track,) = json.loads((tmp_path / "full" / "summary.json").read_text())["tracks"]
    assert track["mean_valence"] == pytest.approx(va[:, 0].mean(), abs=1e-9)
    assert set(track["mean_aus"]) == set(AU_NAMES) and track["peak_arousal_time"] in tl.times.tolist()
    pd.testing.assert_frame_equal(pd.read_parquet(full.parquet), tl.to_dataframe())
    sm = Timeline.read_csv(full.smoothed)
    assert sm.raw is not None and sm.columns[: len(header)] == header
    assert sm.columns[len(header) :][:2] == ("raw_x1", "raw_y1")
    np.testing.assert_array_equal(sm.raw.probabilities, tl.probabilities)
    np.testing.assert_allclose(sm.probabilities.sum(1), 1.0, atol=1e-5)

    def kill_at_9(done, expected):
        if done == 9:
            raise Killed

    run = tmp_path / "run"
    with pytest.raises(Killed):
        analyze_video_to_dir(video, SINGLE_FACE, run, chunk_frames=5, on_frame=kill_at_9)
    res = analyze_video_to_dir(
        video, SINGLE_FACE, run, chunk_frames=5, resume=True, parquet=True, smooth="ema"
    )
    assert res.resumed and res.frames_before == 5
    for name in (TIMELINE_FILE, SMOOTH_FILE):
        assert (run / name).read_bytes() == (tmp_path / "full" / name).read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(run / PARQUET_FILE), pd.read_parquet(full.parquet))


def test_cli_parquet_and_smooth_flags(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    argv = ["video", str(SINGLE_FACE), "--every", "8", "--threads", "1", "--out", str(tmp_path)]
    assert main([*argv, "--parquet", "--smooth", "one_euro"]) == EXIT_OK
    out = tmp_path / "single_face"
    assert (out / PARQUET_FILE).is_file() and len(Timeline.read_csv(out / SMOOTH_FILE)) == 9
    with pytest.raises(SystemExit) as e:
        main([*argv, "--smooth", "median"])
    assert e.value.code == EXIT_USAGE and "invalid choice: 'median'" in capsys.readouterr().err
    with pytest.raises(Exception, match="smoothing method 'median'"):
        analyze_video_to_dir(video_analyzer(every=8), SINGLE_FACE, tmp_path / "x", smooth="median")
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_blendshapes_of_the_frames_in_the_timeline_and_back(tmp_path):
    video = video_analyzer(every=4)
    frames = list(video.run(SINGLE_FACE))
    tl = Timeline.for_video(video)
    for vf in frames:
        tl.add(vf)
    want = np.concatenate([vf.faces.blendshapes for vf in frames])  # one face in each of 18 frames
    assert want.shape == (18, 52) and tl.blendshape_names == BLENDSHAPE_NAMES
    np.testing.assert_array_equal(tl.blendshapes, want.astype(np.float64))
    assert (want >= 0).all() and (want <= 1).all() and want.max() > 0.2 and want.std(0).max() > 0
    full = analyze_video_to_dir(video, SINGLE_FACE, tmp_path / "full")
    header = full.timeline.read_text().splitlines()[0].split(",")
    assert header[-52:] == list(BLENDSHAPE_NAMES)
    back = Timeline.read_csv(full.timeline)
    assert back.groups == tl.groups and back.columns == tl.columns
    rounded = np.vectorize(lambda v: float(f"{v:.4f}"))(want.astype(np.float64))  # the CSV's 4 decimals
    np.testing.assert_array_equal(back.blendshapes, rounded)
    assert back.write_csv(tmp_path / "again.csv").read_bytes() == full.timeline.read_bytes()
    (track,) = json.loads((tmp_path / "full" / "summary.json").read_text())["tracks"]
    assert list(track["mean_blendshapes"]) == list(BLENDSHAPE_NAMES)
    np.testing.assert_allclose(list(track["mean_blendshapes"].values()), rounded.mean(0), atol=1e-12)
    # the same video without the blendshape model: no blendshape columns, the rest as before
    plain = VideoAnalyzer(analyzer=Analyzer("video", blendshapes=False), every=4)
    tl2 = Timeline.for_video(plain)
    assert tl2.blendshape_names == () and tl2.columns == tl.columns[:-52]
    res = analyze_video_to_dir(plain, SINGLE_FACE, tmp_path / "plain")
    old = Timeline.read_csv(res.timeline)
    assert old.blendshapes.shape == (18, 0) and len(old) == 18 and old.columns == tl.columns[:-52]
    assert old.labels == back.labels
