"""Live sources: a camera index, a video file or a stream URL, read frame by frame with increasing
timestamps (:class:`LiveSource`), and the clocks and fps meter of a live run.

Timestamps, in seconds: for a file, the container's time as in
:class:`~openfer.video.reader.VideoReader`; for a camera or stream, time since its first frame, by the
capture's clock (``CAP_PROP_POS_MSEC``) when it reports one, else by a monotonic clock. A camera or
stream that stops delivering frames is retried for about two seconds (:data:`STALL_RETRIES` x
:data:`STALL_WAIT`), then an :class:`~openfer.errors.InputError` names it.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from .reader import DEFAULT_SEQUENCE_FPS, Frame, _open_capture, _timestamp

log = logging.getLogger("openfer")

#: A camera or stream that returns no frame is retried this many times, ``STALL_WAIT`` seconds apart.
STALL_RETRIES = 10
STALL_WAIT = 0.2


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
