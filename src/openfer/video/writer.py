"""Streaming a video's timeline rows to disk: :class:`TimelineWriter`.

It streams rows into ``DIR/part-00001.csv, part-00002.csv, ...`` (each written to a temporary file,
then renamed), then records the last completed frame and the run's checkpoint in
``DIR/progress.json`` (renamed likewise: the commit point). A killed run keeps every committed part;
resuming drops uncommitted parts and continues after the last completed frame. :meth:`finish` merges
the parts into ``DIR/timeline.csv``, byte-identical whether or not the run was interrupted. Any
unreadable state (a garbled ``progress.json``, a listed part missing or with other columns) is an
error naming the file and the way out (:data:`OVERWRITE_HINT`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..io.tables import atomic_open, write_json
from .columns import BASE_COLUMNS, ColumnGroups, csv_cells, frame_rows, row_table

if TYPE_CHECKING:
    from .analyzer import VideoFrame

TIMELINE_FILE = "timeline.csv"
PROGRESS_FILE = "progress.json"
PART_FILE = re.compile(r"^part-(\d{5,})\.csv$")  # the names of TimelineWriter's parts
OVERWRITE_HINT = "pass --overwrite (overwrite=True) to discard the earlier run and start again"
_FORMAT = 1
_PROGRESS_FIELDS = {
    "complete": bool, "parts": int, "rows": int, "frames_done": int, "meta": dict, "columns": list
}


def _atomic_write_text(path: Path, text: str) -> None:
    with atomic_open(path, newline="") as fh:
        fh.write(text)


def _csv_text(rows: list[list[str]], header: Sequence[str] | None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header is not None:
        w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


class TimelineWriter:
    """Streams timeline rows into an output folder in atomically committed chunks (see module doc).

    Args:
        out_dir: the run's folder (created).
        classes: expression classes (the probability columns).
        meta: what identifies the run (source, options, models); a resume must match it.
        au_names, affect, pspi, au_baseline, openset, blendshape_names: the optional column groups
            (:class:`ColumnGroups`, :func:`optional_columns`); fixed for the run, a resume must have
            the same.
        resume: continue the unfinished run in ``out_dir`` (a finished one is kept as it is). Without
            it, any earlier run there is an error, so it is never replaced by mistake.
        overwrite: discard whatever run ``out_dir`` holds (progress, parts, timeline, even unreadable
            ones) and start a fresh one; excludes ``resume``.
        chunk_frames, chunk_seconds: commit after this many frames or seconds, whichever comes first.

    After construction, ``complete`` tells that ``out_dir`` already holds this finished run (resume),
    ``resume_state`` is the checkpoint saved with the last commit (``None`` for a fresh run).
    A progress file that cannot be read or does not match its parts, and a resume with other
    settings, raise a one-line :class:`~openfer.errors.InputError` naming the file and the way out
    (:data:`OVERWRITE_HINT`). The writer does not lock ``out_dir``: its caller holds
    :class:`~openfer.io.lock.FolderLock` (as :func:`~openfer.video.job.analyze_video_to_dir` does).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        classes: Sequence[str],
        meta: dict[str, Any],
        *,
        resume: bool = False,
        overwrite: bool = False,
        chunk_frames: int = 100,
        chunk_seconds: float = 30.0,
        au_names: Sequence[str] = (),
        affect: bool = False,
        pspi: bool = False,
        au_baseline: bool = False,
        openset: bool = False,
        blendshape_names: Sequence[str] = (),
    ) -> None:
        self.out_dir = Path(out_dir)
        self.classes = tuple(classes)
        self.groups = ColumnGroups(au_names, affect, pspi, au_baseline, openset, blendshape_names)
        self.au_names, self.affect = self.groups.au_names, self.groups.affect
        self.meta = json.loads(json.dumps(meta))  # as it will read back
        self.chunk_frames, self.chunk_seconds = max(int(chunk_frames), 1), float(chunk_seconds)
        self.header = BASE_COLUMNS + self.classes + self.groups.columns
        self.complete = False
        self.resume_state: Any = None
        self.parts = 0
        self.rows = 0
        self.frames_done = 0
        self.last_frame: int | None = None
        self._pending: list[list[str]] = []
        self._pending_frames = 0
        self._state: Callable[[], Any] | None = None
        self._last_commit = time.monotonic()
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"{self.out_dir}: cannot create output folder ({e.strerror})") from None
        if resume and overwrite:
            raise InputError("resume and overwrite exclude each other: overwrite discards the run resume continues")
        prev = None if overwrite else self._read_progress()
        if prev is not None and resume:
            self._check_same_run(prev)
            self.complete = prev["complete"]
            self.parts, self.rows = prev["parts"], prev["rows"]
            self.frames_done, self.last_frame = prev["frames_done"], prev["last_frame"]
            self.resume_state = prev.get("state")
            if self.complete:
                self._check_part(self.out_dir / TIMELINE_FILE, "the finished timeline")
                return
            for n, p in self._part_files():
                if n > self.parts:  # written, never committed
                    p.unlink()
            for n in range(1, self.parts + 1):
                self._check_part(self.out_dir / f"part-{n:05d}.csv", f"part {n} of {self.parts}")
            return
        if prev is not None and not prev["complete"]:
            raise InputError(
                f"{self.out_dir}: holds an unfinished run ({prev['frames_done']} frames done); "
                f"pass --resume (resume=True) to continue it, --overwrite (overwrite=True) to discard it, "
                f"or use another output folder"
            )
        if prev is not None:  # a finished run is never replaced silently
            raise InputError(
                f"{self.out_dir}: holds a finished run ({prev['frames_done']} frames); pass --resume "
                f"(resume=True) to keep it, --overwrite (overwrite=True) to analyse again, or use another output folder"
            )
        for _, p in self._part_files():
            p.unlink()
        (self.out_dir / TIMELINE_FILE).unlink(missing_ok=True)
        self._write_progress(None)

    def _check_same_run(self, prev: dict[str, Any]) -> None:
        if prev["meta"] != self.meta:
            old = prev["meta"]
            diff = sorted(k for k in set(self.meta) | set(old) if self.meta.get(k) != old.get(k))
            raise InputError(
                f"{self.out_dir}: holds a run with other settings ({', '.join(diff)}); resume with the same "
                f"input and options, use another output folder, or {OVERWRITE_HINT}"
            )
        if prev["columns"] != list(self.header):
            raise InputError(
                f"{self.out_dir}: holds a run with other columns ({', '.join(map(str, prev['columns']))}); "
                f"resume with the same options, use another output folder, or {OVERWRITE_HINT}"
            )

    def _check_part(self, path: Path, what: str) -> None:
        """A committed file the progress file lists must be there, with this run's header."""
        try:
            with open(path, newline="") as fh:
                first = fh.readline()
        except (OSError, ValueError) as e:
            why = e.strerror if isinstance(e, OSError) else "not text"
            raise InputError(
                f"{path}: {what} listed in {PROGRESS_FILE} cannot be read ({why}); {OVERWRITE_HINT}"
            ) from None
        if first != _csv_text([], self.header):
            raise InputError(f"{path}: {what} listed in {PROGRESS_FILE} has other columns; {OVERWRITE_HINT}")

    def _read_progress(self) -> dict[str, Any] | None:
        path = self.out_dir / PROGRESS_FILE
        if not path.exists():
            return None
        try:
            d = json.loads(path.read_text())
        except OSError as e:
            raise InputError(f"{path}: unreadable progress file ({e.strerror}); {OVERWRITE_HINT}") from None
        except ValueError as e:
            raise InputError(f"{path}: unreadable progress file ({e}); {OVERWRITE_HINT}") from None
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise InputError(f"{path}: not an openfer progress file (format {_FORMAT}); {OVERWRITE_HINT}")
        bad = [k for k, t in _PROGRESS_FIELDS.items() if not isinstance(d.get(k), t)]
        bad += [k for k in ("parts", "rows", "frames_done") if k not in bad and d[k] < 0]
        if not (d.get("last_frame") is None or isinstance(d["last_frame"], int)):
            bad.append("last_frame")
        if not bad and not d["complete"] and d["frames_done"] and not isinstance(d.get("state"), dict):
            bad.append("state")
        if bad:
            raise InputError(f"{path}: unreadable progress file (bad {', '.join(bad)}); {OVERWRITE_HINT}")
        return d

    def _part_files(self) -> list[tuple[int, Path]]:
        found = []
        for p in self.out_dir.iterdir():
            m = PART_FILE.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def _write_progress(self, state: Any) -> None:
        write_json(
            {
                "format": _FORMAT,
                "complete": self.complete,
                "parts": self.parts,
                "rows": self.rows,
                "frames_done": self.frames_done,
                "last_frame": self.last_frame,
                "meta": self.meta,
                "columns": list(self.header),
                "state": state,
            },
            self.out_dir / PROGRESS_FILE,
        )

    def append(self, frame: VideoFrame, state: Callable[[], Any]) -> None:
        """Queue one analysed frame's rows; ``state()`` (called at commit) is the run's JSON-able
        checkpoint after this frame. Commits when the chunk is full or old enough."""
        if self.complete:
            raise InputError(f"{self.out_dir}: run already finished")
        if self.last_frame is not None and frame.frame_index <= self.last_frame:
            raise InputError(
                f"frame {frame.frame_index} is not after the last written frame {self.last_frame}"
            )
        if tuple(frame.faces.classes) != self.classes:
            raise InputError(f"frame classes {frame.faces.classes} differ from the timeline's {self.classes}")
        self._pending.extend(csv_cells(row_table(frame_rows(frame, self.groups), self.classes, self.groups)))
        self._pending_frames += 1
        self.frames_done += 1
        self.last_frame = frame.frame_index
        self._state = state
        if (
            self._pending_frames >= self.chunk_frames
            or time.monotonic() - self._last_commit >= self.chunk_seconds
        ):
            self.commit()

    def commit(self) -> None:
        """Write the queued rows as the next part (if any) and record progress."""
        if self._pending_frames == 0:
            return
        if self._pending:
            self.parts += 1
            _atomic_write_text(
                self.out_dir / f"part-{self.parts:05d}.csv", _csv_text(self._pending, self.header)
            )
            self.rows += len(self._pending)
        self._write_progress(self._state() if self._state is not None else None)
        self._pending, self._pending_frames = [], 0
        self._last_commit = time.monotonic()

    def finish(self) -> Path:
        """Commit, merge the parts into ``timeline.csv`` (header only without rows), mark the run
        complete and remove the parts. Returns the timeline's path."""
        out = self.out_dir / TIMELINE_FILE
        if self.complete:
            return out
        self.commit()
        head = _csv_text([], self.header)
        chunks = [head]
        for n in range(1, self.parts + 1):
            p = self.out_dir / f"part-{n:05d}.csv"
            try:
                text = p.read_text()
            except OSError as e:
                raise InputError(
                    f"{p}: part of the timeline is missing ({e.strerror}); the run cannot be merged: "
                    f"{OVERWRITE_HINT}"
                ) from None
            first, _, body = text.partition("\n")
            if first + "\n" != head:
                raise InputError(
                    f"{p}: part of the timeline has other columns; the run cannot be merged: {OVERWRITE_HINT}"
                )
            chunks.append(body)
        _atomic_write_text(out, "".join(chunks))
        self.complete = True
        self._write_progress(None)
        for _, p in self._part_files():
            p.unlink()
        return out

