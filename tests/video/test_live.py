"""``openfer live`` and :mod:`openfer.video.live`: headless CSV rows from a file source (the same rows as
``openfer video``), ``--max-frames``, Ctrl-C, bad sources (exit 3, one line), the window on an OpenCV
without GUI (exit 2), the window loop with a stand-in GUI, and the pure helpers (fps, clock, sources)."""

from __future__ import annotations

import io
import math
import os
import signal

import cv2
import numpy as np
import pytest
from video_assets import SINGLE_FACE, video_analyzer

from openfer.cli import EXIT_INPUT, EXIT_OK, EXIT_USAGE, main
from openfer.errors import InputError
from openfer.video import run_live, timeline_columns
from openfer.video.live import (
    NO_GUI_MESSAGE,
    FpsMeter,
    LiveClock,
    LiveSource,
    NoGuiError,
    TimelineStream,
    annotate_frame,
    check_gui,
    parse_source,
)
from openfer.video.timeline import format_rows, optional_columns


def _has_gui() -> bool:
    try:
        check_gui()
    except NoGuiError:
        return False
    cv2.destroyAllWindows()
    return True


def _lines(text: str) -> list[list[str]]:
    return [line.split(",") for line in text.splitlines()]


def test_cli_headless_file_source_one_row_per_frame_to_stdout_and_csv(tmp_path, capsys):
    out = tmp_path / "live.csv"
    rc = main(["live", "--camera", str(SINGLE_FACE), "--headless", "--threads", "1", "--csv", str(out)])
    assert rc == EXIT_OK
    cap = capsys.readouterr()
    rows = _lines(cap.out)
    video = video_analyzer()
    assert rows[0] == list(timeline_columns(video.classes, **optional_columns(video.analyzer).kwargs()))
    body = rows[1:]
    assert len(body) == 72  # one face in each of the 72 frames; the end of the file ends the run
    assert [int(r[1]) for r in body] == list(range(72))
    assert {r[2] for r in body} == {"0"}
    times = [float(r[0]) for r in body]
    assert times[0] == 0.0 and all(b > a for a, b in zip(times, times[1:], strict=False))
    assert out.read_text() == cap.out  # the file gets the same rows
    assert cap.err.strip().splitlines()[-1] == f"live: 72 frame(s), 72 row(s) from {SINGLE_FACE}"


def test_cli_max_frames_rows_equal_the_video_analyzer_rows(capsys):
    rc = main(["live", "--camera", str(SINGLE_FACE), "--headless", "--threads", "1", "--max-frames", "12"])
    assert rc == EXIT_OK
    body = _lines(capsys.readouterr().out)[1:]
    assert len(body) == 12
    expected = []
    video = video_analyzer()
    for vf in video.run(SINGLE_FACE):
        expected += format_rows(vf, **optional_columns(video.analyzer).kwargs())
        if vf.frame_index == 11:
            break
    assert body == expected  # same timestamps, boxes, probabilities and track ids as openfer video


@pytest.mark.parametrize(
    ("camera", "message"),
    [
        ("99", "camera 99: cannot open"),
        ("{tmp}/missing.mp4", "missing.mp4: no such file"),
        ("{tmp}/fake.mp4", "fake.mp4: cannot open as a video"),
        ("{tmp}", "not a video file"),
    ],
)
def test_cli_bad_source_exit_3_with_one_line(tmp_path, capsys, camera, message):
    (tmp_path / "fake.mp4").write_text("this is text, not a video\n" * 20)
    rc = main(["live", "--camera", camera.format(tmp=tmp_path), "--headless", "--threads", "1"])
    assert rc == EXIT_INPUT
    cap = capsys.readouterr()
    assert cap.out == ""  # not even a header for a source that cannot be read
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_cli_window_without_gui_exit_2_with_the_message(capsys):
    if _has_gui():
        pytest.skip("this OpenCV build has a GUI backend")
    rc = main(["live", "--camera", str(SINGLE_FACE)])
    assert rc == EXIT_USAGE
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == f"error: {NO_GUI_MESSAGE}\n"
    with pytest.raises(NoGuiError, match="use --headless"):  # the API says the same, before opening
        run_live(str(SINGLE_FACE) + ".missing", video_analyzer())


def test_cli_usage_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(["live", "--max-frames", "0"])
    assert e.value.code == EXIT_USAGE and "expected an integer >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["live", "--headlss"])
    assert e.value.code == EXIT_USAGE and "did you mean --headless" in capsys.readouterr().err


def test_ctrl_c_finishes_the_frame_and_ends_normally():
    buf = io.StringIO()
    rows = TimelineStream([buf], video_analyzer().classes)
    seen = []

    def on_frame(frame, fps):
        rows.write(frame)
        seen.append(frame.frame_index)
        if len(seen) == 5:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, mid-run

    handler = signal.getsignal(signal.SIGINT)
    n = run_live(SINGLE_FACE, video_analyzer(), headless=True, on_frame=on_frame)
    assert n == 5 and seen == [0, 1, 2, 3, 4]
    assert buf.getvalue().count("\n") == 1 + 5  # header and every frame's row, whole
    assert signal.getsignal(signal.SIGINT) is handler  # restored


def test_window_loop_with_a_stand_in_gui_quits_on_q(monkeypatch):
    shown, calls = [], []
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: calls.append("open"))
    monkeypatch.setattr(cv2, "imshow", lambda name, img: shown.append(img.copy()))
    monkeypatch.setattr(cv2, "waitKey", lambda delay: ord("q") if len(shown) == 3 else -1)
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(cv2, "destroyWindow", lambda *a: calls.append("close"))
    frames = []
    n = run_live(SINGLE_FACE, video_analyzer(), max_frames=50, on_frame=lambda f, fps: frames.append(f))
    assert n == 3 and len(shown) == 3 and len(frames) == 3 and calls == ["open", "close"]
    with LiveSource(SINGLE_FACE) as src:
        raw = next(iter(src)).rgb
    bgr = shown[0]
    assert bgr.shape == raw.shape == (360, 640, 3)
    x1, y1, x2, y2 = (int(v) for v in frames[0].faces.boxes[0])
    changed = np.any(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) != raw, axis=2)
    assert changed[y1 - 2 : y2 + 2, x1 - 2 : x2 + 2].any()  # the box (and its label) are drawn
    assert changed[:20, :60].any()  # the fps counter


def test_annotate_frame_draws_faces_ids_and_fps():
    with LiveSource(SINGLE_FACE) as src:
        f = next(iter(src))
    vf = video_analyzer().stream(30.0).step(f.rgb, f.index, f.timestamp)
    assert len(vf.faces) == 1 and vf.track_ids.tolist() == [0]
    plain = annotate_frame(f.rgb, vf)
    with_fps = annotate_frame(f.rgb, vf, fps=24.0)
    assert (
        plain.shape == f.rgb.shape
        and (plain != f.rgb).any()
        and (with_fps[:20, :60] != plain[:20, :60]).any()
    )
    x1, _, _, y2 = (int(v) for v in vf.faces.boxes[0])
    assert (plain[y2 : y2 + 30, x1 : x1 + 40] == 255).all(axis=2).any()  # the white "id 0" tag below the box


def test_run_live_rejects_bad_max_frames_before_opening():
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="max_frames"):
            run_live("no such camera", headless=True, max_frames=bad)


def test_fps_meter_smooths_frame_intervals():
    m = FpsMeter(alpha=0.5)
    assert m.tick(0.0) == 0.0  # one frame: no rate yet
    assert m.tick(0.1) == pytest.approx(10.0)
    assert m.tick(0.2) == pytest.approx(10.0)
    assert m.tick(0.25) == pytest.approx(1 / 0.075)  # halfway between 10 and 20 fps intervals
    for k in range(40):
        m.tick(0.25 + 0.05 * (k + 1))
    assert m.fps == pytest.approx(20.0)
    with pytest.raises(InputError):
        FpsMeter(alpha=0)


def test_live_clock_capture_clock_else_monotonic_always_increasing():
    cam = LiveClock()  # the capture reports its own clock (e.g. V4L2 buffer times, ms since boot)
    assert cam(5_000_000.0, 100.0) == 0.0
    assert cam(5_000_040.0, 100.5) == pytest.approx(0.04)  # the capture's time, not the late wall clock
    assert cam(5_000_040.0, 100.6) == pytest.approx(0.14)  # stuck capture clock: advance by wall time
    assert cam(5_000_200.0, 100.7) == pytest.approx(0.2)
    mono = LiveClock()  # no capture clock (0): monotonic seconds since the first frame
    ts = [mono(0.0, 10.0), mono(0.0, 10.25), mono(math.nan, 10.5), mono(0.0, 10.5)]
    assert ts[:3] == [0.0, 0.25, 0.5] and ts[3] > ts[2]


def test_parse_source():
    assert parse_source("0") == 0 and parse_source(" 2 ") == 2 and parse_source(1) == 1
    assert parse_source("rtsp://cam.local/stream") == "rtsp://cam.local/stream"
    assert parse_source(SINGLE_FACE) == str(SINGLE_FACE)
    for bad in (-1, "-1", True, ""):
        with pytest.raises(InputError):
            parse_source(bad)


def test_timeline_stream_header_once_and_header_only_without_frames():
    a, b = io.StringIO(), io.StringIO()
    empty = TimelineStream([a, b], video_analyzer().classes)
    empty.finish()
    header = ",".join(timeline_columns(video_analyzer().classes)) + "\n"
    assert a.getvalue() == b.getvalue() == header and empty.rows == 0
