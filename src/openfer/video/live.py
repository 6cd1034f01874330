"""Live analysis of a camera or stream: what ``openfer live`` runs.

A source is a camera index (``0``, or the string ``"0"``), a video file, or a stream URL
(``rtsp://…``, ``http://…``), opened with ``cv2.VideoCapture``. Frames are analysed as they come,
through :meth:`VideoAnalyzer.stream <openfer.video.analyzer.VideoAnalyzer.stream>`: every frame read
is analysed (no sampling), so a slow machine analyses fewer frames per second rather than falling
behind (cameras are asked for a one-frame buffer).

* **Indices** count the frames read from 0.
* **Timestamps**, in seconds: for a file, the container's time as in
  :class:`~openfer.video.reader.VideoReader` (so rows match ``openfer video``); for a camera or stream,
  time since its first frame, by the capture's clock (``CAP_PROP_POS_MSEC``) when it reports one,
  else by a monotonic clock. They always increase.
* **End**: a file ends at its last frame; a camera or stream that stops delivering frames is retried
  for about two seconds, then an :class:`~openfer.errors.InputError` names it.
* **Ctrl-C** ends a run normally after the current frame (see :func:`run_live`).
* **Window** (``headless=False``): boxes, track ids, labels, probability bars and a smoothed fps
  counter (:func:`annotate_frame`); ``q`` or Esc quits. OpenCV builds without a GUI backend (the
  ``opencv-python-headless`` wheel openfer depends on) raise :class:`NoGuiError` before the source is
  opened.

>>> from openfer.video.live import TimelineStream, run_live      # doctest: +SKIP
>>> rows = TimelineStream.for_video([sys.stdout], video)         # doctest: +SKIP
>>> run_live(0, video, headless=True, on_frame=lambda f, fps: rows.write(f))  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from ..draw import annotate
from ..errors import InputError
from .analyzer import VideoAnalyzer, VideoFrame
from .columns import ColumnGroups, format_rows, optional_columns, timeline_columns
from .job import _draw_id
from .reader import DEFAULT_SEQUENCE_FPS, Frame, _open_capture, _timestamp

log = logging.getLogger("openfer")

WINDOW = "openfer live"
NO_GUI_MESSAGE = "no GUI support in this OpenCV build: use --headless, or pip install opencv-python"
#: A camera or stream that returns no frame is retried this many times, ``STALL_WAIT`` seconds apart.
STALL_RETRIES = 10
STALL_WAIT = 0.2
_ESC = 27


class NoGuiError(InputError):
    """This OpenCV build cannot show windows (``opencv-python-headless``): run headless."""


def parse_source(source: int | str | os.PathLike[str]) -> int | str:
    """A camera index (an int, or a string of digits) or a path/URL string."""
    if isinstance(source, bool):
        raise InputError(f"camera: expected an index, path or URL, got {source!r}")
    if isinstance(source, (int, np.integer)):
        if source < 0:
            raise InputError(f"camera: expected an index >= 0, got {source}")
        return int(source)
    text = os.fspath(source).strip()
    if not text:
        raise InputError("camera: expected an index, path or URL, got an empty string")
    if text.startswith("-") and text[1:].isdigit():
        raise InputError(f"camera: expected an index >= 0, got {text}")
    return int(text) if text.isdigit() else text


def _is_url(text: str) -> bool:
    return "://" in text


class FpsMeter:
    """Frames per second, smoothed: an exponential moving average of the frame intervals
    (``alpha``: weight of the newest). ``tick(now)`` per frame returns the rate (0 on the first)."""

    def __init__(self, alpha: float = 0.1) -> None:
        if not 0 < alpha <= 1:
            raise InputError(f"alpha: expected in (0, 1], got {alpha!r}")
        self.alpha = float(alpha)
        self._last: float | None = None
        self._interval: float | None = None

    @property
    def fps(self) -> float:
        return 1.0 / self._interval if self._interval else 0.0

    def tick(self, now: float) -> float:
        if self._last is not None:
            dt = max(now - self._last, 1e-9)
            self._interval = (
                dt if self._interval is None else self._interval + self.alpha * (dt - self._interval)
            )
        self._last = now
        return self.fps


class LiveClock:
    """Timestamps of a camera or stream: seconds since its first frame, by the capture's clock
    (``pos_msec``) when the first frame has one (> 0), else by ``now`` (a monotonic clock). When the
    capture's clock does not advance, the time advances by ``now``'s step instead: always increasing."""

    def __init__(self) -> None:
        self._pos0: float | None = None
        self._now0 = 0.0
        self._use_pos = False
        self._prev = -math.inf
        self._prev_now = 0.0

    def __call__(self, pos_msec: float, now: float) -> float:
        pos_ok = math.isfinite(pos_msec) and pos_msec > 0
        if self._pos0 is None:  # first frame: pick the clock
            self._use_pos, self._pos0, self._now0 = pos_ok, pos_msec, now
            self._prev, self._prev_now = 0.0, now
            return 0.0
        t = (pos_msec - self._pos0) / 1000.0 if self._use_pos and pos_ok else now - self._now0
        if not t > self._prev:
            t = self._prev + max(now - self._prev_now, 1e-6)
        self._prev, self._prev_now = t, now
        return t


def _quiet_capture(target: int | str, api: int) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` without OpenCV's own warnings on stderr (we report failures ourselves)."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        return cv2.VideoCapture(target, api)
    finally:
        cv2.utils.logging.setLogLevel(level)


class LiveSource:
    """An opened camera, file or stream; iterate for :class:`~openfer.video.reader.Frame`
    ``(index, timestamp, rgb)``. Opening reads the first frame, so a bad source fails here with an
    :class:`~openfer.errors.InputError`. Use as a context manager, or call :meth:`close`."""

    def __init__(self, source: int | str | os.PathLike[str]) -> None:
        src = parse_source(source)
        self.is_camera = isinstance(src, int)
        self.is_file = False
        if isinstance(src, int):
            self.name = f"camera {src}"
            cap = _quiet_capture(src, cv2.CAP_ANY)
            if not cap.isOpened():
                cap.release()
                raise InputError(f"{self.name}: cannot open (no such camera, or in use by another program)")
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue of old ones
        elif _is_url(src):
            self.name = src
            api = cv2.CAP_FFMPEG if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
            cap = _quiet_capture(src, api)
            if not cap.isOpened():
                cap.release()
                raise InputError(f"{self.name}: cannot open the stream (unreachable, or not a video stream)")
        else:
            self.name = src
            path = Path(src)
            if not path.exists():
                raise InputError(f"{src}: no such file")
            if not path.is_file():
                raise InputError(f"{src}: not a video file (for folders of images use openfer video)")
            self.is_file = True
            cap = _open_capture(path)
        self._cap: cv2.VideoCapture | None = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        self.frame_rate = fps if math.isfinite(fps) and 0 < fps <= 1000 else DEFAULT_SEQUENCE_FPS
        ok, bgr = cap.read()
        if not ok and not self.is_file:
            bgr = self._retry()
            ok = bgr is not None
        if not ok or bgr is None:
            self.close()
            what = "no decodable video frame" if self.is_file else "opened, but delivers no frame"
            raise InputError(f"{self.name}: {what}")
        self._first: tuple[np.ndarray, float, float] | None = (
            bgr,
            float(cap.get(cv2.CAP_PROP_POS_MSEC)),
            time.monotonic(),
        )

    def _retry(self) -> np.ndarray | None:
        for _ in range(STALL_RETRIES):
            time.sleep(STALL_WAIT)
            if self._cap is None:
                return None
            ok, bgr = self._cap.read()
            if ok and bgr is not None:
                return bgr
        return None

    def _read(self) -> tuple[np.ndarray, float, float] | None:
        """The next frame with its capture time and monotonic time; ``None`` at the end of a file."""
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if self._cap is None:
            return None
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            if self.is_file:
                return None
            bgr = self._retry()
            if bgr is None:
                raise InputError(
                    f"{self.name}: no frame for {STALL_RETRIES * STALL_WAIT:g} s (stalled or disconnected)"
                )
        return bgr, float(self._cap.get(cv2.CAP_PROP_POS_MSEC)), time.monotonic()

    def __iter__(self) -> Iterator[Frame]:
        clock, prev, index = LiveClock(), -math.inf, -1
        while (got := self._read()) is not None:
            bgr, pos, now = got
            index += 1
            if bgr.ndim != 3 or bgr.shape[2] != 3:
                raise InputError(f"{self.name}: frame {index} has shape {bgr.shape}, expected colour frames")
            t = _timestamp(pos, index, self.frame_rate, prev) if self.is_file else clock(pos, now)
            prev = t
            yield Frame(index, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TimelineStream:
    """Timeline rows (:func:`~openfer.video.timeline.timeline_columns`, as in ``timeline.csv``) written
    to text streams as frames come: the header before the first frame, then each frame's rows in one
    write, flushed. :meth:`finish` writes the header if no frame came (a header-only timeline)."""

    def __init__(
        self,
        streams: Sequence[TextIO],
        classes: Sequence[str],
        au_names: Sequence[str] = (),
        affect: bool = False,
        *,
        pspi: bool = False,
        au_baseline: bool = False,
        openset: bool = False,
        blendshape_names: Sequence[str] = (),
    ) -> None:
        self.streams = list(streams)
        self.groups = ColumnGroups(au_names, affect, pspi, au_baseline, openset, blendshape_names)
        self.au_names, self.affect = self.groups.au_names, self.groups.affect
        self.header = timeline_columns(tuple(classes), **self.groups.kwargs())
        self.rows = 0
        self._started = False

    @classmethod
    def for_video(cls, streams: Sequence[TextIO], video: VideoAnalyzer) -> TimelineStream:
        """The columns ``video`` fills (:func:`~openfer.video.timeline.optional_columns`: AUs, PSPI
        and ``au_baseline``, valence/arousal, open-set scores, blendshapes when its analyzer computes
        them)."""
        return cls(streams, video.classes, **optional_columns(video.analyzer).kwargs())

    def _emit(self, rows: list[list[str]]) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if not self._started:
            w.writerow(self.header)
            self._started = True
        w.writerows(rows)
        text = buf.getvalue()
        for s in self.streams:
            s.write(text)
            s.flush()
        self.rows += len(rows)

    def write(self, frame: VideoFrame) -> None:
        self._emit(format_rows(frame, **self.groups.kwargs()))

    def finish(self) -> None:
        if not self._started:
            self._emit([])


def check_gui() -> None:
    """Open the live window, or raise :class:`NoGuiError` when this OpenCV build has no GUI."""
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:
        raise NoGuiError(NO_GUI_MESSAGE) from None


def annotate_frame(rgb: np.ndarray, frame: VideoFrame, fps: float | None = None) -> np.ndarray:
    """``rgb`` with ``frame``'s faces drawn (boxes, labels, probability bars, track ids) and, when
    given, an fps counter in the top-left corner. Returns a new RGB image."""
    img = annotate(rgb, frame.faces, mesh="none", bars=True) if len(frame.faces) else rgb.copy()
    for box, track in zip(frame.faces.boxes, frame.track_ids, strict=True):
        _draw_id(img, box, int(track))
    if fps is not None:
        scale = max(min(img.shape[:2]) / 720.0, 0.4)
        th = max(int(round(2 * scale)), 1)
        text = f"{fps:.1f} fps"
        (tw, tht), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, th)
        cv2.rectangle(img, (0, 0), (tw + 12, tht + base + 12), (0, 0, 0), -1)
        cv2.putText(
            img, text, (6, tht + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, (255, 255, 255), th, cv2.LINE_AA
        )
    return img


def _show(img_rgb: np.ndarray) -> bool:
    """Show a frame; ``False`` when the user quits (``q``, Esc, or the window closed)."""
    cv2.imshow(WINDOW, cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR))
    key = cv2.waitKey(1) & 0xFF
    if key in (ord("q"), ord("Q"), _ESC):
        return False
    try:
        return cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) >= 1
    except cv2.error:  # some backends cannot tell
        return True


@contextmanager
def _sigint_stops() -> Iterator[threading.Event]:
    """While active, the first Ctrl-C sets the event (the run stops after the current frame, so every
    frame's output is whole) and restores the previous handler: a second Ctrl-C interrupts at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        if signal.getsignal(signal.SIGINT) is handler:
            signal.signal(signal.SIGINT, previous)


def run_live(
    source: int | str | os.PathLike[str],
    video: VideoAnalyzer | None = None,
    headless: bool = False,
    max_frames: int | None = None,
    on_frame: Callable[[VideoFrame, float], None] | None = None,
) -> int:
    """Analyse a camera, file or stream frame by frame until it ends, ``max_frames`` frames are done,
    the user quits the window (``q``, Esc) or presses Ctrl-C; returns the number of frames analysed.

    Args:
        source: camera index (``0``), video file or stream URL (see the module doc).
        video: the :class:`VideoAnalyzer` to use (its detector/tracker options; sampling options are
            ignored: every frame is analysed); ``None``: a default one.
        headless: no window; otherwise show the annotated frames (raises :class:`NoGuiError`, before
            opening the source, when OpenCV has no GUI).
        max_frames: stop after this many frames (``None``: no limit).
        on_frame: called after each analysed frame with the :class:`VideoFrame` and the smoothed
            frames per second (e.g. to write rows with :class:`TimelineStream`).

    Raises :class:`~openfer.errors.InputError` when the source cannot be opened, yields no frame, or
    (a camera or stream) stalls; frames analysed before a stall have been passed to ``on_frame``.
    Ctrl-C ends the run normally: the first finishes the current frame (``on_frame`` included) and
    stops; a second one stops at once (from the main thread; elsewhere ``KeyboardInterrupt`` ends it).
    """
    if max_frames is not None and (
        isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 1
    ):
        raise InputError(f"max_frames: expected an integer >= 1, got {max_frames!r}")
    if not headless:
        check_gui()
    done = 0
    try:
        with _sigint_stops() as stop, LiveSource(source) as src:
            video = video if video is not None else VideoAnalyzer()
            run = video.stream(src.frame_rate, name=src.name)
            meter = FpsMeter()
            for index, t, rgb in src:
                frame = run.step(rgb, index, t)
                done += 1
                fps = meter.tick(time.monotonic())
                if on_frame is not None:
                    on_frame(frame, fps)
                if not headless and not _show(annotate_frame(rgb, frame, fps)):
                    break
                if stop.is_set() or (max_frames is not None and done >= max_frames):
                    break
    except KeyboardInterrupt:
        log.info("%s: interrupted after %d frame(s)", source, done)
    finally:
        if not headless:
            try:
                cv2.destroyWindow(WINDOW)
                cv2.waitKey(1)  # let the GUI process the close
            except cv2.error:
                pass
    return done


__all__ = [
    "NO_GUI_MESSAGE",
    "FpsMeter",
    "LiveClock",
    "LiveSource",
    "NoGuiError",
    "TimelineStream",
    "annotate_frame",
    "check_gui",
    "parse_source",
    "run_live",
]
