"""What C libraries print while decoding, turned into openfer's own messages naming the file.

libjpeg, libpng, libtiff, OpenCV and FFmpeg write warnings straight to file descriptor 2, where they
cannot be told apart in a batch. :data:`NATIVE` captures fd 2 around one decode at a time (one
temporary file per process; a capture nested in another leaves the output to the outer one; a
forked child gets its own), :func:`native_notes` tags each captured line with the library that
printed it, and :func:`report_notes` turns them into one warning naming the file, or an
:class:`~openfer.errors.InputError` where the library reports lost data that the decoder hid (a
JPEG's "Premature end"). The policy per case is in :mod:`openfer.io.images` and docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

import cv2
import numpy as np

from ..errors import InputError
from .text import printable

__all__ = ["NATIVE", "NativeOutput", "Note", "decode_reporting", "exception_line", "native_notes", "report_notes", "summary"]

logger = logging.getLogger("openfer")

class NativeOutput:
    """Captures what C libraries print on file descriptor 2 while a call runs (see the module doc).

    One capture at a time in the process (an ``RLock``); a capture nested in another, in the same
    thread, leaves the output to the outer one. The sink is one temporary file per process.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.depth = 0
        self.sink: IO[bytes] | None = None
        self.pid = 0

    def after_fork(self) -> None:
        self.__init__()  # a child gets a fresh lock and its own sink (the parent's is shared)

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[str]]:
        """Yields a list that holds the captured lines once the block has run."""
        lines: list[str] = []
        with self.lock:
            if self.depth:
                yield lines
                return
            fd, saved = self._redirect()
            self.depth += 1
            try:
                yield lines
            finally:
                self.depth -= 1
                if saved is not None:
                    lines.extend(self._restore(fd, saved))

    def _redirect(self) -> tuple[int, int | None]:
        try:
            if self.sink is None or self.pid != os.getpid():
                self.sink, self.pid = tempfile.TemporaryFile(prefix="openfer-stderr-"), os.getpid()
            fd = self.sink.fileno()
            for stream in (sys.stderr, sys.__stderr__):
                if stream is not None:
                    stream.flush()  # Python's own pending output goes where it was meant to
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no fd 2 (pythonw), a closed sys.stderr...
            return -1, None
        try:
            os.dup2(fd, 2)
        except OSError:
            os.close(saved)
            return -1, None
        return fd, saved

    @staticmethod
    def _restore(fd: int, saved: int) -> list[str]:
        os.dup2(saved, 2)
        os.close(saved)
        size = os.lseek(fd, 0, os.SEEK_END)
        if not size:
            return []
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, min(size, 1 << 16))
        return [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]


NATIVE = NativeOutput()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=NATIVE.after_fork)

LIBRARY = {"JPEG": "libjpeg", "PNG": "libpng", "TIFF": "libtiff", "WebP": "libwebp"}
_OPENCV_LINE = re.compile(r"\[\s*(WARN|ERROR|FATAL|INFO|DEBUG|VERBOSE)[^\]]*\]\s*(?:global\s+)?(?:\S+:\d+\s+)?")
_OPENCV_ERROR = re.compile(r"OpenCV\([^)]*\)\s+\S+:\d+:\s+error:\s+\([^)]*\)\s*")
_FFMPEG_LINE = re.compile(r"\[([^\]@]+?) @ (?:0x)?[0-9a-fA-F]+\]\s*")
_LIBPNG_LINE = re.compile(r"libpng (warning|error):\s*")
_SEVERE_TEXT = re.compile(r"corrupt|error|premature|invalid|bad |not yet in table", re.IGNORECASE)
_NOTE_CHARS = 160


@dataclass(frozen=True)
class Note:
    """One line a decoding library printed: which library, the text, whether it reports lost data."""

    source: str
    text: str
    severe: bool


def native_notes(lines: list[str], default_source: str) -> list[Note]:
    """Captured lines as notes, each tagged with the library that printed it (prefixes removed)."""
    notes = []
    for raw in lines:
        line = printable(raw)
        if m := _OPENCV_LINE.match(line):
            text = _OPENCV_ERROR.sub("", line[m.end() :])
            head, _, rest = text.partition(" ")
            if rest and not head.endswith(":"):
                text = rest  # OpenCV names the C++ function first: keep what it says
            source = "libtiff" if head.startswith("TIFF_") else "OpenCV"  # its libtiff handlers
            notes.append(Note(source, text, m.group(1) in ("ERROR", "FATAL")))
        elif m := _FFMPEG_LINE.match(line):
            notes.append(Note("FFmpeg", line[m.end() :], True))
        elif m := _LIBPNG_LINE.match(line):
            notes.append(Note("libpng", line[m.end() :], m.group(1) == "error"))
        else:
            notes.append(Note(default_source, line, bool(_SEVERE_TEXT.search(line))))
    return notes


def summary(notes: list[Note]) -> str:
    """``library: first message`` and how many more there were ('' for none); one line."""
    if not notes:
        return ""
    first = notes[0]
    text = first.text if len(first.text) <= _NOTE_CHARS else first.text[: _NOTE_CHARS - 3] + "..."
    more = f"; {len(notes) - 1} more message(s)" if len(notes) > 1 else ""
    return f"{first.source}: {text}{more}"


def decode_reporting(
    decode: Callable[[], np.ndarray | None], fmt: str
) -> tuple[np.ndarray | None, list[Note]]:
    """``decode()`` with the decoding libraries' stderr output captured: ``(result, notes)``."""
    with NATIVE.capture() as lines:
        result = decode()
    return result, native_notes(lines, LIBRARY.get(fmt, "decoder"))


def report_notes(name: str, fmt: str, notes: list[Note], *also: str) -> None:
    """After a successful decode: a truncation message is an error, the rest (and ``also``) one warning."""
    if fmt == "JPEG" and any(n.text.startswith("Premature end of JPEG file") for n in notes):
        raise InputError(f"{name}: " + "truncated JPEG (libjpeg: Premature end of JPEG file)")
    parts = [a for a in also if a]
    if notes:
        severe = any(n.severe for n in notes)
        what = f"corrupt {fmt} data, decoded with errors" if severe else f"{fmt} decoder warning"
        parts.append(f"{what} ({summary(notes)})")
    if parts:
        logger.warning("%s: %s", name, "; ".join(parts))


def exception_line(exc: BaseException) -> str:
    """An exception as one short line: its first non-empty line (OpenCV's: its last), or its type."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = _OPENCV_ERROR.sub("", lines[-1] if isinstance(exc, cv2.error) and lines else lines[0] if lines else "")
    text = printable(text)
    text = text if len(text) <= _NOTE_CHARS else text[: _NOTE_CHARS - 3] + "..."
    kind = "OpenCV" if isinstance(exc, cv2.error) else type(exc).__name__
    return f"{kind}: {text}" if text else kind
