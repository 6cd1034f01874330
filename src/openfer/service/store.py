"""The job store of ``openfer serve``: one SQLite database and one folder per job under ``--data DIR``.

Layout::

    DIR/jobs.sqlite3          the table of jobs (WAL journal, synchronous=FULL, 10 s busy timeout)
    DIR/jobs/<id>/input.<ext> the uploaded video, exactly as received
    DIR/jobs/<id>/out/        what the video job writes (timeline.csv, summary.json, captions.txt,
                              plots/, annotated.webm (or .mp4), timeline.parquet; while running its parts and
                              progress.json, the checkpoint a restarted server resumes from)

``DIR`` defaults to ``./openfer-data`` (the folder ``openfer serve`` is started in, like ``openfer
video``'s ``./openfer-video``): visible, and one folder to back up or delete.

A running server holds ``DIR``'s :class:`~openfer.io.lock.FolderLock` (``DIR/.openfer.lock``), so a
second server on the same ``DIR`` is refused with one line naming the first; a killed server's lock
is taken over.

A job's row has: ``id`` (16 random URL-safe characters), ``state`` (``queued``, ``running``, ``done``,
``failed``, ``cancelled``), created/updated/started/finished times (Unix seconds), the upload's file
name (display only, escaped with :func:`openfer.io.text.printable`; the file on disk is always
``input.<ext>``), the options (JSON), frames done/expected, the frames a resumed run found done, the
result names (JSON) and the error.

**Nothing accepted is lost**: :meth:`JobStore.accept` writes the upload under a temporary name,
fsyncs it, renames it to ``input.<ext>`` and fsyncs the folder, and only then commits the row as
``queued`` (with ``synchronous=FULL``). A process killed before the commit leaves a folder without a
row, which :meth:`JobStore.sweep` removes at the next start; one killed after it leaves a queued job. Rows left
``running`` by a killed server go back to ``queued`` with :meth:`JobStore.requeue_running` (the video
job then resumes from its checkpoint in ``out/``).

One connection is shared by all threads behind a lock (every statement is short), so the queue bound
and the state transitions (``queued`` -> ``running`` by one worker only) are atomic.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("openfer")

DEFAULT_DATA = "openfer-data"
DB_FILE = "jobs.sqlite3"
JOBS_DIR = "jobs"
OUT_DIR = "out"
STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
JOB_ID = re.compile(r"\A[A-Za-z0-9_-]{16}\Z")  # \Z: "$" would let a trailing newline through
_SUFFIX = re.compile(r"\A\.[A-Za-z0-9]{1,8}\Z")
_SCHEMA = 1
_COLUMNS = ("id", "state", "created", "updated", "started", "finished", "input_name", "input_file", "options",
            "frames_done", "frames_total", "frames_at_start", "resumed_frames", "results", "error")


class QueueFull(Exception):
    """More jobs are queued than the store accepts."""


@dataclass(frozen=True)
class Job:
    """One row of the store (times in Unix seconds; ``options`` and ``results`` decoded)."""

    id: str
    state: str
    created: float
    updated: float
    started: float | None
    finished: float | None
    input_name: str
    input_file: str
    options: dict[str, Any]
    frames_done: int
    frames_total: int | None
    frames_at_start: int
    resumed_frames: int | None
    results: tuple[str, ...]
    error: str | None

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the rate of the current run (``None`` unless running with a known total)."""
        if self.state != "running" or self.frames_total is None or self.started is None:
            return None
        done, elapsed = self.frames_done - self.frames_at_start, self.updated - self.started
        if done <= 0 or elapsed <= 0:
            return None
        return round(max(self.frames_total - self.frames_done, 0) * elapsed / done, 1)


class JobStore:
    """The jobs of one ``--data`` folder (see the module doc). Thread-safe."""

    def __init__(self, data: str | os.PathLike[str]) -> None:
        self.root = Path(data)
        self.jobs_dir = self.root / JOBS_DIR
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.root / DB_FILE, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 10000")
        mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("%s: SQLite refused WAL mode (%s)", self.root / DB_FILE, mode)
        self._db.execute("PRAGMA synchronous = FULL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, _SCHEMA):
            raise sqlite3.DatabaseError(f"{self.root / DB_FILE}: job store schema {version}, expected {_SCHEMA}")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS jobs (
                id TEXT PRIMARY KEY,
                state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
                created REAL NOT NULL,
                updated REAL NOT NULL,
                started REAL,
                finished REAL,
                input_name TEXT NOT NULL,
                input_file TEXT NOT NULL,
                options TEXT NOT NULL,
                frames_done INTEGER NOT NULL DEFAULT 0,
                frames_total INTEGER,
                frames_at_start INTEGER NOT NULL DEFAULT 0,
                resumed_frames INTEGER,
                results TEXT NOT NULL DEFAULT '[]',
                error TEXT
            );
            CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created);
            PRAGMA user_version = 1;
            """
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- paths -------------------------------------------------------------------------------

    def folder(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id):
            raise KeyError(job_id)
        return self.jobs_dir / job_id

    def input_path(self, job: Job) -> Path:
        return self.folder(job.id) / job.input_file

    def out_dir(self, job_id: str) -> Path:
        return self.folder(job_id) / OUT_DIR

    # -- reading -----------------------------------------------------------------------------

    def _rows(self, sql: str, args: tuple = ()) -> list[Job]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs {sql}", args).fetchall()
        return [_job(r) for r in rows]

    def get(self, job_id: str) -> Job | None:
        found = self._rows("WHERE id = ?", (job_id,))
        return found[0] if found else None

    def list(self, limit: int = 100) -> list[Job]:
        """The newest ``limit`` jobs, newest first."""
        return self._rows("ORDER BY created DESC, id LIMIT ?", (int(limit),))

    def count(self, state: str) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (state,)).fetchone()[0]

    # -- accepting ---------------------------------------------------------------------------

    def accept(
        self,
        upload: IO[bytes],
        name: str,
        suffix: str,
        options: dict[str, Any],
        *,
        max_queued: int,
        check: Callable[[Path], dict[str, Any] | None] | None = None,
    ) -> Job:
        """Save ``upload`` durably as a new job's input, then commit its row as ``queued``.

        ``check(path)`` runs on the saved file before the row is written (it may raise, which
        discards the upload, or return updated options). :class:`QueueFull` when ``max_queued``
        jobs are already queued (checked in the same transaction as the insert)."""
        suffix = suffix.lower() if _SUFFIX.match(suffix) else ""
        job_id = secrets.token_urlsafe(12)
        folder = self.folder(job_id)
        folder.mkdir()
        try:
            target = folder / f"input{suffix}"
            tmp = folder / f".input{suffix}.part"
            with open(tmp, "wb") as fh:
                shutil.copyfileobj(upload, fh, 1 << 20)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            _fsync_dir(folder)
            if check is not None:
                options = check(target) or options
            now = time.time()
            with self._lock:
                cur = self._db.execute(
                    "INSERT INTO jobs (id, state, created, updated, input_name, input_file, options) "
                    "SELECT ?, 'queued', ?, ?, ?, ?, ? WHERE (SELECT COUNT(*) FROM jobs WHERE state = 'queued') < ?",
                    (job_id, now, now, name, target.name, json.dumps(options), int(max_queued)),
                )
                if cur.rowcount != 1:
                    raise QueueFull
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job = self.get(job_id)
        assert job is not None
        return job

    # -- state transitions -------------------------------------------------------------------

    def claim(self) -> Job | None:
        """The oldest queued job, now ``running`` (taken by this caller only)."""
        with self._lock:
            row = self._db.execute(
                "SELECT id FROM jobs WHERE state = 'queued' ORDER BY created, id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            now = time.time()
            self._db.execute(
                "UPDATE jobs SET state = 'running', updated = ?, started = ?, frames_at_start = frames_done "
                "WHERE id = ? AND state = 'queued'", (now, now, row[0]))
        return self.get(row[0])

    def progress(self, job_id: str, done: int, total: int | None, *, first: bool = False) -> None:
        """Frames done of a running job; ``first``: the first frame of this run (the ETA's start)."""
        now = time.time()
        with self._lock:
            if first:
                self._db.execute(
                    "UPDATE jobs SET frames_done = ?, frames_total = ?, updated = ?, started = ?, frames_at_start = ? "
                    "WHERE id = ? AND state = 'running'", (done, total, now, now, max(done - 1, 0), job_id))
            else:
                self._db.execute(
                    "UPDATE jobs SET frames_done = ?, frames_total = ?, updated = ? WHERE id = ? AND state = 'running'",
                    (done, total, now, job_id))

    def finish(
        self,
        job_id: str,
        state: str,
        *,
        error: str | None = None,
        results: tuple[str, ...] = (),
        frames_done: int | None = None,
        resumed_frames: int | None = None,
    ) -> bool:
        """A running job ends as ``done``, ``failed`` or ``cancelled`` (``False``: it was not running)."""
        if state not in FINISHED:
            raise ValueError(state)
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET state = ?, updated = ?, finished = ?, error = ?, results = ?, "
                "frames_done = COALESCE(?, frames_done), resumed_frames = ? WHERE id = ? AND state = 'running'",
                (state, now, now, error, json.dumps(list(results)), frames_done, resumed_frames, job_id),
            )
            return cur.rowcount == 1

    def requeue(self, job_id: str) -> bool:
        """A running job goes back to the queue (a server stopping mid-job)."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET state = 'queued', updated = ? WHERE id = ? AND state = 'running'", (time.time(), job_id))
            return cur.rowcount == 1

    def requeue_running(self) -> list[str]:
        """At start-up: jobs a killed server left ``running`` go back to ``queued`` (they resume)."""
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM jobs WHERE state = 'running'")]
            self._db.execute("UPDATE jobs SET state = 'queued', updated = ? WHERE state = 'running'", (time.time(),))
        return ids

    def cancel_queued(self, job_id: str) -> bool:
        """A queued job becomes ``cancelled`` (``False``: it was not queued, e.g. a worker took it)."""
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET state = 'cancelled', updated = ?, finished = ? WHERE id = ? AND state = 'queued'",
                (now, now, job_id))
            return cur.rowcount == 1

    # -- removing ----------------------------------------------------------------------------

    def remove_files(self, job_id: str) -> None:
        """The job's folder (upload and results), if any."""
        folder = self.folder(job_id)
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
            if folder.exists():
                log.warning("job store: cannot remove all of %s", folder)

    def delete(self, job_id: str) -> None:
        """Files first, then the row (a kill in between leaves a row that the next delete removes)."""
        self.remove_files(job_id)
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def sweep(self, keep_seconds: float, now: float | None = None, *, orphans: bool = False) -> list[str]:
        """Remove finished jobs (files and row) that ended more than ``keep_seconds`` before ``now``;
        with ``orphans`` (at start-up, when no upload is in flight) also job folders that have no row
        (an upload cut off by a kill before its row was written). Returns the job ids removed."""
        now = time.time() if now is None else now
        with self._lock:
            old = [r[0] for r in self._db.execute(
                "SELECT id FROM jobs WHERE state IN ('done', 'failed', 'cancelled') AND finished < ?",
                (now - keep_seconds,))]
            known = {r[0] for r in self._db.execute("SELECT id FROM jobs")}
        for job_id in old:
            self.delete(job_id)
        lost = [p.name for p in self.jobs_dir.iterdir() if p.is_dir() and p.name not in known] if orphans else []
        for name in lost:
            if JOB_ID.match(name):
                self.remove_files(name)
        if old or lost:
            log.info("job store: removed %d expired job(s), %d folder(s) without a job", len(old), len(lost))
        return old


def _job(row: tuple) -> Job:
    d = dict(zip(_COLUMNS, row, strict=True))
    d["options"] = json.loads(d["options"])
    d["results"] = tuple(json.loads(d["results"] or "[]"))
    return Job(**d)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - not POSIX
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - a file system without directory fsync
        pass
    finally:
        os.close(fd)


def check_data_dir(data: str | os.PathLike[str]) -> None:
    """Open (and create) the store in ``data`` once: an :class:`~openfer.errors.OutputError` naming the
    folder and the reason if that fails, a :class:`~openfer.io.lock.FolderInUseError` naming the other
    server if one uses it (what ``openfer serve`` checks before it starts)."""
    from ..errors import OutputError
    from ..io.lock import FolderLock

    try:
        with FolderLock(data, command="openfer serve (checking the job store)"):
            JobStore(data).close()
    except OSError as e:
        raise OutputError(data, f"cannot use as the job store ({e.strerror or e})") from None
    except sqlite3.Error as e:
        raise OutputError(data, f"cannot open the job store {DB_FILE} ({e})") from None


__all__ = ["DEFAULT_DATA", "FINISHED", "JOB_ID", "STATES", "Job", "JobStore", "QueueFull", "check_data_dir"]
