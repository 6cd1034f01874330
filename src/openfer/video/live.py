"""Live analysis of a camera or stream: what ``openfer live`` runs. The sources and clocks are in
:mod:`openfer.video.camera`, the CSV sink in :mod:`openfer.video.sinks` (both re-exported here); this
module holds the window, the Ctrl-C handling and the loop.

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

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import cv2
import numpy as np

from ..draw import annotate
from ..errors import InputError
from .analyzer import VideoAnalyzer, VideoFrame
from .camera import FpsMeter, LiveClock, LiveSource, parse_source
from .job import _draw_id
from .sinks import TimelineStream

log = logging.getLogger("openfer")

WINDOW = "openfer live"
NO_GUI_MESSAGE = "no GUI support in this OpenCV build: use --headless, or pip install opencv-python"
_ESC = 27


class NoGuiError(InputError):
    """This OpenCV build cannot show windows (``opencv-python-headless``): run headless."""


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
