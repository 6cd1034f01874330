"""Per-face, per-frame rows of a video analysis: in memory (:class:`Timeline`) and streamed to disk
(:class:`TimelineWriter`).

One row per face per analysed frame, columns :func:`timeline_columns`: ``time, frame, track, x1, y1,
x2, y2, score, landmark_score, yaw, pitch, roll, label, label_score`` and one probability column per
expression class. A video without faces has a header and no rows.

:class:`TimelineWriter` streams rows into ``DIR/part-00001.csv, part-00002.csv, ...`` (each written to a
temporary file, then renamed), then records the last completed frame and the run's checkpoint in
``DIR/progress.json`` (renamed likewise: the commit point). A killed run keeps every committed part;
resuming drops uncommitted parts and continues after the last completed frame. :meth:`finish` merges
the parts into ``DIR/timeline.csv``, byte-identical whether or not the run was interrupted.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..io.tables import atomic_open, write_json
from ..types import EXPRESSIONS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .analyzer import VideoFrame

BASE_COLUMNS: tuple[str, ...] = (
    "time",
    "frame",
    "track",
    "x1",
    "y1",
    "x2",
    "y2",
    "score",
    "landmark_score",
    "yaw",
    "pitch",
    "roll",
    "label",
    "label_score",
)
TIMELINE_FILE = "timeline.csv"
PROGRESS_FILE = "progress.json"
_PART = re.compile(r"^part-(\d{5,})\.csv$")
_FORMAT = 1


def timeline_columns(classes: Sequence[str] = EXPRESSIONS) -> tuple[str, ...]:
    return BASE_COLUMNS + tuple(classes)


@dataclass(frozen=True)
class TrackSummary:
    """One track over a video. ``duration`` is ``frames`` times the analysed frame step (so gaps
    while the face was away do not count); ``shares`` is the share of its frames per top label."""

    track: int
    frames: int
    first_time: float
    last_time: float
    duration: float
    dominant: str
    shares: dict[str, float]
    mean_probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "track": self.track,
            "frames": self.frames,
            "first_time": self.first_time,
            "last_time": self.last_time,
            "duration": self.duration,
            "dominant": self.dominant,
            "shares": dict(self.shares),
            "mean_probabilities": dict(self.mean_probabilities),
        }


def _fmt(v: float, digits: int) -> str:
    return "nan" if not math.isfinite(v) else f"{v:.{digits}f}"


def format_rows(frame: VideoFrame) -> list[list[str]]:
    """The CSV cells of one frame's rows (fixed precision, so output is reproducible)."""
    f = frame.faces
    rows = []
    labels = f.labels
    for i in range(len(f)):
        b, p, e = f.boxes[i], f.poses[i], f.expressions[i]
        rows.append(
            [
                _fmt(frame.timestamp, 6),
                str(frame.frame_index),
                str(int(frame.track_ids[i])),
                *(_fmt(float(v), 2) for v in b),
                _fmt(float(f.scores[i]), 4),
                _fmt(float(f.landmark_scores[i]), 4),
                *(_fmt(float(v), 2) for v in p),
                labels[i],
                _fmt(float(e.max()), 6),
                *(_fmt(float(v), 6) for v in e),
            ]
        )
    return rows


class Timeline:
    """Rows of a video analysis, kept as arrays. ``add`` frames from a run, or ``read_csv`` a written
    timeline; then ``to_dataframe()`` (needs pandas) or ``summary()`` per track.

    ``frame_step``: seconds between analysed frames, for durations; ``None``: the median step
    between the distinct frame times in the timeline.
    """

    def __init__(self, classes: Sequence[str] = EXPRESSIONS, frame_step: float | None = None) -> None:
        self.classes = tuple(classes)
        self.frame_step = frame_step
        self._chunks: list[tuple[np.ndarray, ...]] = []
        self._cache: tuple[np.ndarray, ...] | None = None

    def add(self, frame: VideoFrame) -> None:
        f = frame.faces
        if tuple(f.classes) != self.classes:
            raise InputError(f"frame classes {f.classes} differ from the timeline's {self.classes}")
        n = len(f)
        if n == 0:
            return
        self._append(
            np.full(n, frame.timestamp),
            np.full(n, frame.frame_index, np.int64),
            frame.track_ids.astype(np.int64),
            f.boxes,
            f.scores,
            f.landmark_scores,
            f.poses,
            f.expressions,
            f.expressions.argmax(1),
        )

    def _append(self, *cols: np.ndarray) -> None:
        self._chunks.append(tuple(np.asarray(c) for c in cols))
        self._cache = None

    def _cols(self) -> tuple[np.ndarray, ...]:
        if self._cache is None:
            if self._chunks:
                self._cache = tuple(np.concatenate([c[k] for c in self._chunks]) for k in range(9))
            else:
                c = len(self.classes)
                self._cache = (
                    np.zeros(0),
                    np.zeros(0, np.int64),
                    np.zeros(0, np.int64),
                    np.zeros((0, 4)),
                    np.zeros(0),
                    np.zeros(0),
                    np.zeros((0, 3)),
                    np.zeros((0, c)),
                    np.zeros(0, np.int64),
                )
        return self._cache

    def __len__(self) -> int:
        return int(self._cols()[0].shape[0])

    @property
    def times(self) -> np.ndarray:
        return self._cols()[0]

    @property
    def frames(self) -> np.ndarray:
        return self._cols()[1]

    @property
    def tracks(self) -> np.ndarray:
        return self._cols()[2]

    @property
    def boxes(self) -> np.ndarray:
        return self._cols()[3]

    @property
    def probabilities(self) -> np.ndarray:
        return self._cols()[7]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.classes[i] for i in self._cols()[8])

    def track_ids(self) -> np.ndarray:
        """The distinct track ids, sorted."""
        return np.unique(self.tracks)

    def to_records(self) -> list[dict[str, Any]]:
        t, fr, tr, bx, sc, ls, po, pr, lab = self._cols()
        recs = []
        for i in range(len(t)):
            r: dict[str, Any] = {
                "time": float(t[i]),
                "frame": int(fr[i]),
                "track": int(tr[i]),
                "x1": float(bx[i, 0]),
                "y1": float(bx[i, 1]),
                "x2": float(bx[i, 2]),
                "y2": float(bx[i, 3]),
                "score": float(sc[i]),
                "landmark_score": float(ls[i]),
                "yaw": float(po[i, 0]),
                "pitch": float(po[i, 1]),
                "roll": float(po[i, 2]),
                "label": self.classes[int(lab[i])],
                "label_score": float(pr[i, lab[i]]),
            }
            r.update({c: float(p) for c, p in zip(self.classes, pr[i], strict=True)})
            recs.append(r)
        return recs

    def to_dataframe(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame with :func:`timeline_columns` (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise InputError("pandas is needed for DataFrames: pip install 'openfer[tables]'") from None
        return pd.DataFrame.from_records(self.to_records(), columns=list(timeline_columns(self.classes)))

    def step(self) -> float:
        if self.frame_step is not None:
            return float(self.frame_step)
        u = np.unique(self.times)
        d = np.diff(u)
        return float(np.median(d)) if d.size else 0.0

    def summary(self) -> tuple[TrackSummary, ...]:
        """One :class:`TrackSummary` per track, by track id."""
        t, _, tr, _, _, _, _, pr, lab = self._cols()
        step = self.step()
        out = []
        for k in np.unique(tr):
            m = tr == k
            counts = np.bincount(lab[m], minlength=len(self.classes))
            n = int(m.sum())
            out.append(
                TrackSummary(
                    track=int(k),
                    frames=n,
                    first_time=float(t[m].min()),
                    last_time=float(t[m].max()),
                    duration=n * step,
                    dominant=self.classes[int(counts.argmax())],
                    shares={c: float(v) / n for c, v in zip(self.classes, counts, strict=True)},
                    mean_probabilities={
                        c: float(v) for c, v in zip(self.classes, pr[m].mean(0), strict=True)
                    },
                )
            )
        return tuple(out)

    @classmethod
    def read_csv(cls, path: str | os.PathLike[str], frame_step: float | None = None) -> Timeline:
        """A timeline written by :class:`TimelineWriter` (classes from its header)."""
        path = Path(path)
        try:
            with open(path, newline="") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                rows = list(reader)
        except OSError as e:
            raise InputError(f"{path}: cannot read timeline ({e.strerror})") from None
        if header is None or tuple(header[: len(BASE_COLUMNS)]) != BASE_COLUMNS:
            raise InputError(f"{path}: not an openfer timeline (header {header})")
        classes = tuple(header[len(BASE_COLUMNS) :])
        tl = cls(classes, frame_step)
        if rows:
            try:
                a = np.array([[float(v) for j, v in enumerate(r) if j != 12] for r in rows], dtype=np.float64)
                lab = np.array([classes.index(r[12]) for r in rows], dtype=np.int64)
            except (ValueError, IndexError):
                raise InputError(f"{path}: malformed timeline row") from None
            tl._append(
                a[:, 0],
                a[:, 1].astype(np.int64),
                a[:, 2].astype(np.int64),
                a[:, 3:7],
                a[:, 7],
                a[:, 8],
                a[:, 9:12],
                a[:, 13:],
                lab,
            )
        return tl


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
        resume: continue the unfinished run in ``out_dir``. Without it, an unfinished run there is an
            error (so it is never overwritten by mistake); a finished one is replaced.
        chunk_frames, chunk_seconds: commit after this many frames or seconds, whichever comes first.

    After construction, ``complete`` tells that ``out_dir`` already holds this finished run (resume),
    ``resume_state`` is the checkpoint saved with the last commit (``None`` for a fresh run).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        classes: Sequence[str],
        meta: dict[str, Any],
        *,
        resume: bool = False,
        chunk_frames: int = 100,
        chunk_seconds: float = 30.0,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.classes = tuple(classes)
        self.meta = json.loads(json.dumps(meta))  # as it will read back
        self.chunk_frames, self.chunk_seconds = max(int(chunk_frames), 1), float(chunk_seconds)
        self.header = timeline_columns(self.classes)
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
        prev = self._read_progress()
        if prev is not None and resume:
            if prev.get("meta") != self.meta:
                diff = sorted(
                    k
                    for k in set(self.meta) | set(prev.get("meta", {}))
                    if self.meta.get(k) != prev.get("meta", {}).get(k)
                )
                raise InputError(
                    f"{self.out_dir}: holds a run with other settings ({', '.join(diff)}); "
                    f"resume with the same input and options, or use another output folder"
                )
            self.complete = bool(prev.get("complete"))
            self.parts, self.rows = int(prev["parts"]), int(prev["rows"])
            self.frames_done, self.last_frame = int(prev["frames_done"]), prev["last_frame"]
            self.resume_state = prev.get("state")
            if not self.complete:
                for n, p in self._part_files():
                    if n > self.parts:  # written, never committed
                        p.unlink()
            return
        if prev is not None and not prev.get("complete"):
            raise InputError(
                f"{self.out_dir}: holds an unfinished run ({prev.get('frames_done', 0)} frames done); "
                f"pass --resume (resume=True) to continue it, or use another output folder"
            )
        for _, p in self._part_files():
            p.unlink()
        (self.out_dir / TIMELINE_FILE).unlink(missing_ok=True)
        self._write_progress(None)

    def _read_progress(self) -> dict[str, Any] | None:
        path = self.out_dir / PROGRESS_FILE
        if not path.exists():
            return None
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: unreadable progress file ({e})") from None
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise InputError(f"{path}: not an openfer progress file (format {_FORMAT})")
        return d

    def _part_files(self) -> list[tuple[int, Path]]:
        found = []
        for p in self.out_dir.iterdir():
            m = _PART.match(p.name)
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
        self._pending.extend(format_rows(frame))
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
        chunks = [_csv_text([], self.header)]
        for n in range(1, self.parts + 1):
            p = self.out_dir / f"part-{n:05d}.csv"
            try:
                text = p.read_text()
            except OSError as e:
                raise InputError(
                    f"{p}: part of the timeline is missing ({e.strerror}); the run cannot be merged"
                ) from None
            chunks.append(text.split("\n", 1)[1] if "\n" in text else "")
        _atomic_write_text(out, "".join(chunks))
        self.complete = True
        self._write_progress(None)
        for _, p in self._part_files():
            p.unlink()
        return out


__all__ = [
    "BASE_COLUMNS",
    "PROGRESS_FILE",
    "TIMELINE_FILE",
    "Timeline",
    "TimelineWriter",
    "TrackSummary",
    "format_rows",
    "timeline_columns",
]
