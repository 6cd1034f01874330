"""Video frames in: files through OpenCV's ``cv2.VideoCapture`` and image sequences (a folder or a glob).

:class:`VideoReader` yields :class:`Frame` ``(index, timestamp, rgb)`` tuples, ``rgb`` an RGB ``uint8``
``(H, W, 3)`` array. Policies:

* **Selection**: ``start <= timestamp < end`` (seconds), then every ``every``-th frame counted from
  the first frame at or after ``start``, or at most ``fps`` frames per second (the first frame in
  each ``1 / fps`` interval after the first selected frame). Selection depends only on the source
  and these settings, so a resumed run (``after=``) selects exactly the frames an uninterrupted one does.
* **Indices** count every decoded frame of the source from 0, selected or not.
* **Timestamps** come from ``CAP_PROP_POS_MSEC`` while it is sane (finite, >= 0 and increasing);
  otherwise from ``index / fps``. They always increase strictly.
* **Colour** is converted once per selected frame (OpenCV's BGR to RGB, in place). Frames that are
  not selected are only grabbed, never retrieved, so they cost no colour conversion.
* **Errors** are :class:`~openfer.errors.InputError` naming the file: missing, empty, not a video
  (or no codec for it in this OpenCV build; an MP4/MOV without its ``moov`` index is named as
  such), no decodable frame, a frame that cannot be decoded, or a stream that ends well before its
  header says, raised after the frames that decoded. Any exception OpenCV raises on the file's
  bytes becomes such an error too.
* **Short streams**: a container's frame count is an estimate (duration x frame rate where it
  stores no count, wrong for variable frame rates), so a stream is truncated only when both its
  frame count *and* its timestamps end short of the header (by more than 5 frames and 5 %); a
  variable-frame-rate file whose fewer frames span the declared duration is complete (logged at
  debug level, no warning).
* **Decoder messages**: FFmpeg decodes in worker threads that log asynchronously, naming no file,
  so its log is silenced: importing this module sets ``OPENCV_FFMPEG_LOGLEVEL=-8`` unless the
  environment already sets it (then the user's level applies, printed by OpenCV on stdout). OpenCV
  reads it when it first uses FFmpeg, so a process that opened a video with OpenCV before importing
  openfer keeps FFmpeg's default log. What openfer sees itself is reported instead: the errors
  above. OpenCV's own messages while opening or reading (``[ WARN:...] cap.cpp``,
  ``cap_ffmpeg_impl.hpp``) are captured from stderr around each call (as :mod:`openfer.io.images`
  does) and become one warning naming the file and the first frame concerned, plus one count at
  the end of the stream when more frames had them; a file that does not open gets openfer's
  reason, not OpenCV's. Decoder trouble is an error only where frames are lost (the stream ends
  short, a frame does not decode), a warning otherwise.
* **Image sequences** (a folder of images or a glob) are read with
  :func:`openfer.io.images.read_image` in natural order (``img2`` before ``img10``) at ``sequence_fps``
  (default 30); every image must have the first image's size, and an unreadable image ends the
  sequence with its error after the frames before it.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import cv2
import numpy as np

from ..errors import InputError
from ..io.images import IMAGE_EXTENSIONS, read_image
from ..io.native import NATIVE, exception_line, native_notes, summary
from ..io.text import printable

log = logging.getLogger("openfer")

#: Extensions of video files (others are still tried with OpenCV when given as a file).
VIDEO_EXTENSIONS: tuple[str, ...] = ("mp4", "mov", "avi", "mkv", "webm", "m4v")
DEFAULT_SEQUENCE_FPS = 30.0
# A stream that ends more than this many frames (or this share of them) before its declared frame
# count is truncated or corrupt; container frame counts are estimates, off by a few frames.
_TRUNCATION_FRAMES = 5
_TRUNCATION_SHARE = 0.05
# FFmpeg's log level for OpenCV: AV_LOG_QUIET. OpenCV reads it once, when it first uses FFmpeg, so
# it is set on import (only a default: a level the user set is kept); see the module doc.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


class Frame(NamedTuple):
    """One selected frame: source frame index, timestamp in seconds, RGB ``uint8 (H, W, 3)``."""

    index: int
    timestamp: float
    rgb: np.ndarray


@dataclass(frozen=True)
class VideoInfo:
    """What a source declares. ``frame_count`` is the container's estimate (``None``: unknown)."""

    source: str
    width: int
    height: int
    fps: float
    frame_count: int | None
    is_sequence: bool

    @property
    def duration(self) -> float | None:
        return self.frame_count / self.fps if self.frame_count is not None else None


def _check_selection(every: int, fps: float | None, start: float, end: float | None) -> None:
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise InputError(f"every: expected an integer >= 1, got {every!r}")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise InputError(f"fps: expected a number > 0, got {fps!r}")
    if fps is not None and every != 1:
        raise InputError("give either every or fps, not both")
    if not (math.isfinite(start) and start >= 0):
        raise InputError(f"start: expected seconds >= 0, got {start!r}")
    if end is not None and not (end > start):
        raise InputError(f"end: expected seconds > start ({start:g}), got {end!r}")


class _Selector:
    """Decides, frame by frame in source order, which frames are selected (pure, deterministic)."""

    def __init__(self, every: int, fps: float | None, start: float, end: float | None) -> None:
        self.every, self.fps, self.start, self.end = every, fps, start, end
        self.first_t: float | None = None
        self.count = 0  # frames at or after start
        self.bucket = -1

    def done(self, t: float) -> bool:
        return self.end is not None and t >= self.end - 1e-9

    def __call__(self, t: float) -> bool:
        if t < self.start - 1e-9 or self.done(t):
            return False
        if self.first_t is None:
            self.first_t = t
        k = self.count
        self.count += 1
        if self.fps is None:
            return k % self.every == 0
        b = math.floor((t - self.first_t) * self.fps + 1e-6)
        if b > self.bucket:
            self.bucket = b
            return True
        return False


def _natural_key(p: Path) -> list:
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", p.name)]


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _sequence_paths(text: str) -> list[Path] | None:
    """Image paths of a folder or glob (natural order), or ``None`` when ``text`` is neither."""
    path = Path(text)
    if path.is_dir():
        paths = [
            p for p in path.iterdir() if p.is_file() and p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS
        ]
        if not paths:
            raise InputError(f"{text}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        return sorted(paths, key=_natural_key)
    if not path.exists() and _is_glob(text):
        paths = [Path(p) for p in glob.glob(text)]
        paths = [p for p in paths if p.is_file() and p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS]
        if not paths:
            raise InputError(f"{text}: pattern matches no images")
        return sorted(paths, key=_natural_key)
    if path.is_file() and path.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS:
        return [path]
    return None


def _open_capture(path: Path) -> cv2.VideoCapture:
    api = cv2.CAP_FFMPEG if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
    with NATIVE.capture() as lines:
        try:
            cap = cv2.VideoCapture(str(path), api)
            opened = cap.isOpened()
        except Exception as exc:  # cv2.error on these bytes is still the file's fault
            raise InputError(f"{path}: cannot open as a video ({exception_line(exc)})") from None
    if not opened:
        cap.release()
        raise InputError(f"{path}: cannot open as a video ({_not_a_video(path)})")
    if lines:
        log.warning("%s: video decoder warning (%s)", path, summary(native_notes(lines, "OpenCV")))
    return cap


def _not_a_video(path: Path) -> str:
    """Why OpenCV may have failed to open ``path``, as far as its first bytes tell."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            boxes = _top_level_boxes(f, size)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if size == 0:
        return "empty file, 0 bytes"
    if boxes and b"moov" not in boxes:
        return "an MP4/MOV file without its 'moov' index: the recording was cut short or never finished"
    return "not a video, truncated, or no codec for it in this OpenCV build"


def _top_level_boxes(f: BinaryIO, size: int, limit: int = 4096) -> list[bytes]:
    """Types of the top-level boxes of an ISO media (MP4/MOV) file; ``[]`` when it is not one."""
    kinds: list[bytes] = []
    pos = 0
    while pos + 8 <= size and len(kinds) < limit:
        f.seek(pos)
        head = f.read(16)
        n, kind = int.from_bytes(head[:4], "big"), head[4:8]
        if not kinds and kind != b"ftyp":
            return []
        kinds.append(kind)
        if n == 1 and len(head) == 16:
            n = int.from_bytes(head[8:16], "big")  # a 64-bit size
        elif n == 0:
            break  # the box runs to the end of the file
        if n < 8:
            break
        pos += n
    return kinds


class _Notes:
    """OpenCV's stderr messages while reading one file: the first warned at once, the rest counted."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.frames = 0
        self.first = -1

    def add(self, lines: list[str], index: int) -> None:
        if not lines:
            return
        self.frames += 1
        if self.first < 0:
            self.first = index
            what = summary(native_notes(lines, "OpenCV"))
            log.warning("%s: frame %d: video decoder warning (%s)", self.source, index, what)

    def finish(self) -> None:
        if self.frames > 1:
            log.warning(
                "%s: video decoder warnings on %d frames in all (the first at frame %d)",
                self.source,
                self.frames,
                self.first,
            )


def _read(call: Callable[[], Any], source: str, index: int, notes: _Notes) -> Any:
    """``call()`` (a capture's grab or retrieve), OpenCV's messages captured and its exceptions named."""
    with NATIVE.capture() as lines:
        try:
            out = call()
        except Exception as exc:  # cv2.error on these bytes is still the file's fault
            raise InputError(f"{source}: frame {index} cannot be decoded ({exception_line(exc)})") from None
    notes.add(lines, index)
    return out


def _prop(cap: cv2.VideoCapture, prop: int) -> float:
    """A capture property; NaN where OpenCV cannot give one."""
    try:
        return float(cap.get(prop))
    except Exception:  # a property the backend fails to compute on this file
        return math.nan


def _count_short(declared: int | None, decoded: int) -> bool:
    """Whether ``decoded`` frames fall short of a declared count by more than an estimate's error."""
    return declared is not None and declared - decoded > max(_TRUNCATION_FRAMES, _TRUNCATION_SHARE * declared)


def _truncated(declared: int | None, decoded: int, last_t: float, fps: float) -> bool:
    """Whether a stream that ended by itself after ``decoded`` frames, the last at ``last_t`` s, is
    short of its header: of both the declared frame count and the duration it implies
    (``declared / fps``, how OpenCV estimates the count where the container stores none)."""
    if not _count_short(declared, decoded):
        return False
    duration, covered = declared / fps, last_t + 1.0 / fps
    return duration - covered > max(_TRUNCATION_FRAMES / fps, _TRUNCATION_SHARE * duration)


class VideoReader:
    """Frames of a video file or image sequence, selected by ``every``/``fps`` and ``start``/``end``.

    Args:
        source: video file, folder of images, or glob pattern of images.
        every: keep every N-th frame (from the first frame at or after ``start``).
        fps: keep at most this many frames per second (exclusive with ``every``).
        start, end: seconds; frames with ``start <= timestamp < end``.
        sequence_fps: frame rate of image sequences.
        after: yield only frames with index > ``after`` (resuming); selection is unchanged.

    The source is opened and its first frame decoded on construction, so a bad file fails here.
    Iterating more than once re-reads the source from the beginning.

    >>> with VideoReader("clip.mp4", fps=5) as reader:          # doctest: +SKIP
    ...     for index, t, rgb in reader: ...
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        *,
        every: int = 1,
        fps: float | None = None,
        start: float = 0.0,
        end: float | None = None,
        sequence_fps: float = DEFAULT_SEQUENCE_FPS,
        after: int | None = None,
    ) -> None:
        _check_selection(every, fps, start, end)
        if not (math.isfinite(sequence_fps) and sequence_fps > 0):
            raise InputError(f"sequence_fps: expected a number > 0, got {sequence_fps!r}")
        self.source = str(source)
        self.every, self.fps, self.start, self.end, self.after = int(every), fps, float(start), end, after
        self._cap: cv2.VideoCapture | None = None
        self._paths = _sequence_paths(self.source)
        if self._paths is not None:
            first = read_image(self._paths[0])
            self.info = VideoInfo(
                self.source, first.shape[1], first.shape[0], float(sequence_fps), len(self._paths), True
            )
            return
        path = Path(self.source)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if not path.is_file():
            raise InputError(f"{path}: not a file")
        cap = _open_capture(path)
        self._notes = _Notes(self.source)
        try:
            grabbed = _read(cap.grab, self.source, 0, self._notes)
        except InputError:
            cap.release()
            raise
        if not grabbed:
            cap.release()
            raise InputError(
                f"{path}: no decodable video frame (corrupt, or no codec for it in this OpenCV build)"
            )
        w, h = (_prop(cap, cv2.CAP_PROP_FRAME_WIDTH), _prop(cap, cv2.CAP_PROP_FRAME_HEIGHT))
        fps_src = _prop(cap, cv2.CAP_PROP_FPS)
        if not (math.isfinite(fps_src) and 0 < fps_src <= 1000):
            log.warning("%s: frame rate unknown (%r), assuming %g fps", path, fps_src, DEFAULT_SEQUENCE_FPS)
            fps_src = DEFAULT_SEQUENCE_FPS
        n = _prop(cap, cv2.CAP_PROP_FRAME_COUNT)
        count = int(n) if math.isfinite(n) and 0 < n < 2**53 else None
        width, height = (int(v) if math.isfinite(v) and v > 0 else 0 for v in (w, h))
        self.info = VideoInfo(self.source, width, height, fps_src, count, False)
        self._cap = cap  # first frame grabbed: the first iteration continues from here

    @property
    def frame_rate(self) -> float:
        """Selected frames per second of source time (``fps``, or source fps / ``every``)."""
        if self.fps is not None:
            return min(self.fps, self.info.fps)
        return self.info.fps / self.every

    def expected_frames(self) -> int | None:
        """Estimate of how many frames will be yielded (for progress), ``None`` when unknown."""
        if self.info.frame_count is None:
            return None
        n = self.info.frame_count
        first = min(math.ceil(self.start * self.info.fps - 1e-6), n)
        last = n if self.end is None else min(math.ceil(self.end * self.info.fps - 1e-6), n)
        total = max(last - first, 0)
        if self.fps is not None and self.fps < self.info.fps:
            sel = math.ceil(total * self.fps / self.info.fps)
        else:
            sel = math.ceil(total / self.every)
        if self.after is not None:
            done = max(self.after + 1 - first, 0)
            sel -= math.ceil(done * self.frame_rate / self.info.fps)
        return max(sel, 0)

    def __iter__(self) -> Iterator[Frame]:
        if self._paths is not None:
            return self._iter_sequence()
        return self._iter_video()

    def _iter_sequence(self) -> Iterator[Frame]:
        sel = _Selector(self.every, self.fps, self.start, self.end)
        for i, p in enumerate(self._paths or []):
            t = i / self.info.fps
            if sel.done(t):
                return
            if not sel(t) or (self.after is not None and i <= self.after):
                continue
            rgb = read_image(p)
            if rgb.shape[:2] != (self.info.height, self.info.width):
                raise InputError(
                    f"{p}: image is {rgb.shape[1]}x{rgb.shape[0]}, the sequence's first image "
                    f"is {self.info.width}x{self.info.height}; a sequence needs one size"
                )
            yield Frame(i, t, rgb)

    def _iter_video(self) -> Iterator[Frame]:
        cap, grabbed, notes = self._cap, True, self._notes
        self._cap = None
        if cap is None:
            cap, grabbed, notes = _open_capture(Path(self.source)), False, _Notes(self.source)
        sel = _Selector(self.every, self.fps, self.start, self.end)
        fps = self.info.fps
        index, prev_t, stopped = -1, -math.inf, False
        try:
            while True:
                if not grabbed and not _read(cap.grab, self.source, index + 1, notes):
                    break
                grabbed = False
                index += 1
                t = _timestamp(_prop(cap, cv2.CAP_PROP_POS_MSEC), index, fps, prev_t)
                prev_t = t
                if sel.done(t):
                    stopped = True
                    break
                if not sel(t) or (self.after is not None and index <= self.after):
                    continue
                ok, bgr = _read(cap.retrieve, self.source, index, notes)
                if not ok or bgr is None:
                    raise InputError(f"{self.source}: frame {index} cannot be decoded (corrupt video?)")
                if bgr.ndim != 3 or bgr.shape[2] != 3:
                    raise InputError(
                        f"{self.source}: frame {index} has shape {bgr.shape}, expected colour frames"
                    )
                yield Frame(index, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr))
        finally:
            cap.release()
            notes.finish()
        declared, decoded = self.info.frame_count, index + 1
        if stopped or not _count_short(declared, decoded):
            return
        if _truncated(declared, decoded, prev_t, fps):
            raise InputError(
                f"{self.source}: truncated or corrupt: the stream ends after {decoded} of the "
                f"{declared} frames its header declares"
            )
        log.debug(
            "%s: %d frames where the container estimates %d, and they span its duration "
            "(a variable frame rate): complete",
            self.source,
            decoded,
            declared,
        )

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def _timestamp(pos_msec: float, index: int, fps: float, prev: float) -> float:
    """Seconds of frame ``index``: the container's time while sane, else ``index / fps``; increasing."""
    t = pos_msec / 1000.0
    if not (math.isfinite(t) and t >= 0 and t > prev and (index == 0 or t > 0)):
        t = index / fps
        if t <= prev:
            t = prev + 1.0 / fps
    return t



def video_inputs(inputs: Sequence[str], sequence: bool = False) -> tuple[list[str], list[str]]:
    """The videos to analyse, one per entry, and notes for the user. A folder that holds video files
    (:data:`VIDEO_EXTENSIONS`, not hidden) gives each of them, sorted; a folder without videos, or any
    folder with ``sequence=True``, is one image sequence; files and globs are kept as given."""
    out: list[str] = []
    notes: list[str] = []
    for text in inputs:
        p = Path(text)
        if sequence or not p.is_dir():
            out.append(text)
            continue
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        videos = [f for f in files if f.suffix.lower().lstrip(".") in VIDEO_EXTENSIONS]
        if not videos:
            out.append(text)
            continue
        out.extend(str(v) for v in videos)
        images = sum(f.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS for f in files)
        if images:
            notes.append(f"{printable(text)}: {images} image(s) beside its {len(videos)} video(s) are not analysed "
                         "(--sequence reads the folder's images as one sequence)")
    return out, notes

__all__ = ["DEFAULT_SEQUENCE_FPS", "VIDEO_EXTENSIONS", "Frame", "VideoInfo", "VideoReader", "video_inputs"]
