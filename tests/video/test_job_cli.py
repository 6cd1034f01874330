"""Video jobs and ``openfer video``: resume after a kill gives the same CSV, zero-face clips give a
header-only timeline, annotated video, exit codes, progress line."""

from __future__ import annotations

import io
import json

import cv2
import pytest
from video_assets import NO_FACE, SINGLE_FACE, full_header, video_analyzer

from openfer.cli import EXIT_INPUT, EXIT_OK, EXIT_USAGE, _Progress, main
from openfer.video import Timeline, analyze_video_to_dir
from openfer.video.timeline import PROGRESS_FILE, TIMELINE_FILE


class Killed(Exception):
    pass


def test_resume_after_kill_gives_identical_csv(tmp_path):
    video = video_analyzer()
    full = analyze_video_to_dir(video, SINGLE_FACE, tmp_path / "full", chunk_frames=10)
    assert (full.frames, full.rows, len(full.tracks)) == (72, 72, 1)

    def kill_at_35(done, expected):
        assert expected == 72
        if done == 35:
            raise Killed

    with pytest.raises(Killed):
        analyze_video_to_dir(video, SINGLE_FACE, tmp_path / "run", chunk_frames=10, on_frame=kill_at_35)
    run_dir = tmp_path / "run"
    progress = json.loads((run_dir / PROGRESS_FILE).read_text())
    assert (progress["last_frame"], progress["parts"], progress["complete"]) == (29, 3, False)
    assert not (run_dir / TIMELINE_FILE).exists()
    # what a kill leaves: committed parts (kept) and possibly a part written but not yet recorded
    (run_dir / "part-00004.csv").write_text("half a part")
    with pytest.raises(Exception, match="unfinished run"):
        analyze_video_to_dir(video, SINGLE_FACE, run_dir, chunk_frames=10)
    res = analyze_video_to_dir(video, SINGLE_FACE, run_dir, chunk_frames=10, resume=True)
    assert res.resumed and res.frames_before == 30 and res.frames == 72
    assert (run_dir / TIMELINE_FILE).read_bytes() == (tmp_path / "full" / TIMELINE_FILE).read_bytes()
    assert (
        json.loads((run_dir / "summary.json").read_text())["tracks"]
        == json.loads((tmp_path / "full" / "summary.json").read_text())["tracks"]
    )
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "captions.txt",
        PROGRESS_FILE,
        "summary.json",
        TIMELINE_FILE,
    ]
    again = analyze_video_to_dir(video, SINGLE_FACE, run_dir, resume=True)
    assert again.already_complete and again.rows == 72


def test_cli_zero_face_video_header_only_and_exit_0(tmp_path, capsys):
    rc = main(["video", str(NO_FACE), "--fps", "4", "--end", "3", "--threads", "1", "--out", str(tmp_path)])
    assert rc == EXIT_OK
    out = tmp_path / "no_face"
    # the default options compute AUs (with PSPI and the baseline flag), valence/arousal and the
    # blendshapes: their columns are there without faces too; open-set columns iff the shipped model
    # has that head
    openset = video_analyzer().analyzer.expression.openset is not None
    header = full_header(openset)
    assert (out / TIMELINE_FILE).read_text() == ",".join(header) + "\n"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tracks"] == [] and summary["frames"] == 12 and summary["rows"] == 0
    assert "12 frame(s), 0 row(s), 0 track(s)" in capsys.readouterr().err


def test_cli_single_face_every_4_with_annotated_video(tmp_path, capsys):
    rc = main(
        ["video", str(SINGLE_FACE), "--every", "4", "--annotate", "--threads", "1", "--out", str(tmp_path)]
    )
    assert rc == EXIT_OK
    out = tmp_path / "single_face"
    tl = Timeline.read_csv(out / TIMELINE_FILE)
    assert len(tl) == 18 and tl.frames.tolist() == list(range(0, 72, 4)) and tl.track_ids().tolist() == [0]
    cap = cv2.VideoCapture(str(out / "annotated.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 18 and (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640, 360)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(7.5)
    assert "track   0:     18 frames" in capsys.readouterr().out


def test_cli_bad_inputs_exit_3_naming_the_files(tmp_path, capsys):
    bad = tmp_path / "fake.mp4"
    bad.write_text("this is text, not a video\n" * 20)
    rc = main(["video", str(bad), str(tmp_path / "missing.mov"), "--out", str(tmp_path / "o")])
    assert rc == EXIT_INPUT
    err = capsys.readouterr().err
    assert "fake.mp4: cannot open as a video" in err and "missing.mov: no such file" in err
    assert not (tmp_path / "o").exists()  # nothing written for inputs that cannot be read


def test_cli_usage_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(["video", str(SINGLE_FACE), "--every", "2", "--fps", "5"])
    assert e.value.code == EXIT_USAGE
    with pytest.raises(SystemExit) as e:
        main(["video", str(SINGLE_FACE), "--evry", "2"])
    assert e.value.code == EXIT_USAGE and "did you mean --every" in capsys.readouterr().err


def test_progress_line_only_on_a_tty(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    monkeypatch.setattr("sys.stderr", tty)
    p = _Progress("clip.mp4")
    for k in range(1, 73):
        p(k, 72)
    p.close()
    text = tty.getvalue()
    assert "clip.mp4: 72/72 frames" in text and "ETA 0:00" in text and text.startswith("\r")
    plain = io.StringIO()
    monkeypatch.setattr("sys.stderr", plain)
    q = _Progress("clip.mp4")
    q(1, 72)
    q.close()
    assert plain.getvalue() == ""


def test_cli_au_baseline_flag(tmp_path, capsys):
    argv = ["video", str(SINGLE_FACE), "--end", "0.5", "--threads", "1"]
    # the clip opens neutral: the per-person baseline is in from the 11th frame (10 collected)
    assert main([*argv, "--out", str(tmp_path / "a")]) == EXIT_OK
    assert (
        Timeline.read_csv(tmp_path / "a" / "single_face" / TIMELINE_FILE).au_baseline.tolist()
        == [False] * 10 + [True] * 5
    )
    assert main([*argv, "--out", str(tmp_path / "b"), "--au-baseline", "none"]) == EXIT_OK
    assert not Timeline.read_csv(tmp_path / "b" / "single_face" / TIMELINE_FILE).au_baseline.any()
    with pytest.raises(SystemExit) as e:
        main([*argv, "--au-baseline", "median"])
    assert e.value.code == EXIT_USAGE and "invalid choice: 'median'" in capsys.readouterr().err


def test_cli_overwrite_recovers_a_folder_with_a_garbage_progress_file(tmp_path, capsys):
    out = tmp_path / "v"
    (out / "single_face").mkdir(parents=True)
    (out / "single_face" / PROGRESS_FILE).write_text("\x00garbage")
    assert main(["video", str(SINGLE_FACE), "--out", str(out), "--resume", "-q"]) == EXIT_INPUT
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and PROGRESS_FILE in err[0] and "--overwrite" in err[0]
    assert main(["video", str(SINGLE_FACE), "--out", str(out), "--overwrite", "-q"]) == EXIT_OK
    assert (out / "single_face" / TIMELINE_FILE).is_file()
    with pytest.raises(SystemExit) as info:
        main(["video", str(SINGLE_FACE), "--out", str(out), "--overwrite", "--resume"])
    assert info.value.code == EXIT_USAGE


def test_a_folder_of_videos_gives_one_output_folder_per_video(tmp_path, capsys):
    import shutil

    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(SINGLE_FACE, clips / "a.mp4")
    shutil.copy(SINGLE_FACE, clips / "b.mp4")
    shutil.copy(SINGLE_FACE.parent.parent / "photos" / "single_face.jpg", clips / "still.jpg")
    out = tmp_path / "out"
    assert main(["video", str(clips), "--out", str(out), "--every", "12", "-q"]) == EXIT_OK
    err = capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a", "b"]
    for name in ("a", "b"):
        assert len(Timeline.read_csv(out / name / TIMELINE_FILE)) == 6
    assert f"note: {clips}: 1 image(s) beside its 2 video(s) are not analysed" in err
    # rerunning into the finished folders asks instead of replacing them
    assert main(["video", str(clips), "--out", str(out), "--every", "12", "-q"]) == EXIT_INPUT
    assert capsys.readouterr().err.count("holds a finished run") == 2
    # --sequence: the folder's images as one sequence
    assert main(["video", str(clips), "--out", str(tmp_path / "seq"), "--sequence", "-q"]) == EXIT_OK
    assert len(Timeline.read_csv(tmp_path / "seq" / "clips" / TIMELINE_FILE)) == 1
