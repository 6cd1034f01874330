"""Video jobs of ``openfer serve``: their options and the worker pool that runs them.

Each worker is a thread with its own :class:`~openfer.pipeline.Analyzer` (the ``video`` preset of
``openfer video``, loaded once at start-up) that takes the oldest queued job from the
:class:`~openfer.service.store.JobStore` and runs :func:`openfer.video.analyze_video_to_dir` on it, the
function ``openfer video`` runs, always with ``resume=True``: a job that a killed or stopped server
left half done continues from the checkpoint in its output folder and ends with the same
``timeline.csv`` as an uninterrupted run. A job's ``aus``/``explain`` options reuse the worker's
loaded models (:meth:`Analyzer.from_components`).

The annotated video (``annotate``) is ``annotated.webm`` (VP8, else VP9: what browsers play) when
this OpenCV build writes WebM, else ``annotated.mp4`` (mp4v, which browsers do not play):
:func:`annotated_format`, decided once at start-up.

Cancelling (``DELETE``) and stopping the server are noticed at the next analysed frame; the steps
after the last frame (summary, plots, annotated video) run to their end first.

A store that fails (SQLite locked past its busy timeout, a full disk) ends neither a worker nor a
job: a progress write is best-effort (one warning per job, the job goes on); a job's final write
(``done``, ``failed``, ``cancelled``) that fails is logged and retried by its worker between jobs
until it succeeds, and one still unwritten when the server stops leaves the row ``running``, which
the next start puts back in the queue (:meth:`~openfer.service.store.JobStore.requeue_running`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, MissingDependencyError, OpenFerError
from ..video.baseline import BASELINE_MODES
from ..video.timeline import SMOOTH_METHODS
from .store import Job, JobStore

log = logging.getLogger("openfer")

VIDEO_PRESET = "video"
PROGRESS_RETRY_SECONDS = 5.0  # after a failed progress write, the next one waits this long


@dataclass(frozen=True)
class JobOptions:
    """What a video job is asked for: the sampling of :class:`~openfer.video.VideoOptions`, the
    analyzer's ``aus``/``explain``, and the optional outputs of ``openfer video``."""

    every: int = 1
    fps: float | None = None
    start: float = 0.0
    end: float | None = None
    detect_every: int = 10
    au_baseline: str = "neutral"
    aus: bool = True
    explain: bool = True
    annotate: bool = False
    plots: bool = False
    parquet: bool = False
    smooth: str = "none"

    def __post_init__(self) -> None:
        from ..video.analyzer import VideoOptions

        if self.au_baseline not in BASELINE_MODES:
            raise InputError(f"au_baseline: expected one of {', '.join(BASELINE_MODES)}, got {self.au_baseline!r}")
        if self.smooth not in ("none", *SMOOTH_METHODS):
            raise InputError(f"smooth: expected one of none, {', '.join(SMOOTH_METHODS)}, got {self.smooth!r}")
        VideoOptions(**self.video_fields())  # every, fps, start, end, detect_every: InputError naming the field

    def video_fields(self) -> dict[str, Any]:
        return {"every": self.every, "fps": self.fps, "start": self.start, "end": self.end,
                "detect_every": self.detect_every, "au_baseline": self.au_baseline}

    def require_extras(self) -> None:
        """:class:`MissingDependencyError` when an asked-for output needs an extra that is missing."""
        if self.plots:
            from ..video.plots import require_matplotlib

            require_matplotlib()
        if self.parquet:
            from ..video.timeline import require_pyarrow

            require_pyarrow()

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> JobOptions:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def video_analyzer(self, base: Any) -> Any:
        """The :class:`~openfer.video.VideoAnalyzer` of these options over ``base``'s loaded models."""
        from ..pipeline import Analyzer
        from ..video import VideoAnalyzer
        from ..video.analyzer import VideoOptions

        options = dataclasses.replace(base.options, aus=self.aus, explain=self.explain)
        analyzer = base if options == base.options else Analyzer.from_components(
            options, detector=base.detector, mesh=base.mesh, expression=base.expression,
            blendshapes=base.blendshapes, va=base.va)
        return VideoAnalyzer(options=VideoOptions(**self.video_fields()), analyzer=analyzer)


class _Stop(Exception):
    """Raised from the progress callback: the job is cancelled or the server is stopping."""


class WorkerPool:
    """``len(analyzers)`` threads running the store's queued jobs (see the module doc)."""

    def __init__(self, store: JobStore, analyzers: list[Any], *, checkpoint_frames: int = 25,
                 poll_seconds: float = 0.5, annotate_format: str = "webm") -> None:
        self.store, self.analyzers = store, analyzers
        self.annotate_format = annotate_format
        self.checkpoint_frames, self.poll = checkpoint_frames, poll_seconds
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._cancel: set[str] = set()
        self._cancel_lock = threading.Lock()
        self._ended = threading.Condition()  # notified whenever a worker ends a job
        self._threads: list[threading.Thread] = []
        self._unsettled: dict[str, Callable[[], object]] = {}  # job id -> its final write, not yet in the store
        self._unsettled_lock = threading.Lock()

    def start(self) -> None:
        for i, an in enumerate(self.analyzers):
            t = threading.Thread(target=self._loop, args=(an,), name=f"openfer-job-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop after each running job's current frame; those jobs go back to the queue."""
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(deadline - time.monotonic(), 0.0))
        if self.alive:
            names = ", ".join(t.name for t in self._threads if t.is_alive())
            log.warning("job workers still finishing a job's last steps at shutdown: %s", names)

    @property
    def alive(self) -> bool:
        """Whether a worker thread is still running (e.g. after :meth:`stop` timed out)."""
        return any(t.is_alive() for t in self._threads)

    def wake(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def cancel(self, job_id: str, wait: float) -> Job | None:
        """Ask the worker running ``job_id`` to stop; wait up to ``wait`` s for it to end the job.
        Returns the row afterwards (``None``: gone)."""
        with self._cancel_lock:
            self._cancel.add(job_id)
        deadline = time.monotonic() + wait
        with self._ended:
            while True:
                job = self.store.get(job_id)
                left = deadline - time.monotonic()
                if job is None or job.state != "running" or left <= 0:
                    break
                self._ended.wait(min(left, 0.2))
        if job is None or job.state != "running":  # ended (or was never taken): nothing left to stop
            with self._cancel_lock:
                self._cancel.discard(job_id)
        return job

    def _cancelled(self, job_id: str) -> bool:
        with self._cancel_lock:
            return job_id in self._cancel

    def _loop(self, analyzer: Any) -> None:
        while not self._stop.is_set():
            self._retry_unsettled()
            try:
                job = self.store.claim()
            except Exception:  # noqa: BLE001 - a store error must not end the worker
                log.exception("job store: cannot claim a job")
                job = None
            if job is None:
                with self._wake:
                    self._wake.wait(self.poll)
                continue
            try:
                self._run(job, analyzer)
            except Exception:  # noqa: BLE001
                log.exception("job %s: unexpected error", job.id)
                self._settle(job.id, lambda job_id=job.id: self.store.finish(job_id, "failed", error="internal error"))
            finally:
                with self._cancel_lock:
                    self._cancel.discard(job.id)
                with self._ended:
                    self._ended.notify_all()
        self._retry_unsettled()
        with self._unsettled_lock:
            left = sorted(self._unsettled)
        if left:
            log.warning("job store: the end of job(s) %s could not be recorded; they stay running and "
                        "run again at the next start", ", ".join(left))

    def _settle(self, job_id: str, write: Callable[[], object]) -> None:
        """Run ``write``, a job's final store write; if the store fails, log it and keep ``write``
        for :meth:`_retry_unsettled` (the row stays ``running`` meanwhile)."""
        try:
            write()
        except Exception:  # noqa: BLE001 - the store may be locked or full: try again later
            log.exception("job %s: cannot record the end of the job; retrying", job_id)
            with self._unsettled_lock:
                self._unsettled[job_id] = write

    def _retry_unsettled(self) -> None:
        """Try the final writes that failed again (each taken by one worker at a time)."""
        with self._unsettled_lock:
            pending, self._unsettled = self._unsettled, {}
        for job_id, write in pending.items():
            try:
                write()
            except Exception:  # noqa: BLE001 - still failing: kept for the next round
                log.debug("job %s: recording the end of the job failed again", job_id, exc_info=True)
                with self._unsettled_lock:
                    self._unsettled.setdefault(job_id, write)
                continue
            log.warning("job %s: the end of the job is recorded now, after the store failed", job_id)
            with self._ended:
                self._ended.notify_all()

    def _run(self, job: Job, analyzer: Any) -> None:
        from ..video import analyze_video_to_dir

        store = self.store
        out = store.out_dir(job.id)
        source = store.input_path(job)
        opts = JobOptions.from_json(job.options)
        state: dict[str, Any] = {"last": 0.0, "first": True, "done": None, "hold": 0.0, "warned": False}

        def on_frame(done: int, expected: int | None) -> None:
            if self._stop.is_set() or self._cancelled(job.id):
                raise _Stop
            state["done"] = done
            now = time.monotonic()
            if (state["first"] or now - state["last"] >= 0.2 or done == expected) and now >= state["hold"]:
                try:
                    store.progress(job.id, done, expected, first=bool(state["first"]))
                except Exception as e:  # noqa: BLE001 - progress is best-effort: the job goes on
                    if not state["warned"]:
                        log.warning("job %s: cannot record its progress (%s); the job goes on", job.id,
                                    " ".join(str(e).split()))
                        state["warned"] = True
                    state["hold"] = time.monotonic() + PROGRESS_RETRY_SECONDS  # a locked store costs its timeout
                    return
                state["last"], state["first"] = now, False

        try:
            video = opts.video_analyzer(analyzer)
            res = analyze_video_to_dir(
                video, source, out, resume=True, on_frame=on_frame, chunk_frames=self.checkpoint_frames,
                annotate_video=opts.annotate, plots=opts.plots, parquet=opts.parquet,
                smooth=None if opts.smooth == "none" else opts.smooth, annotate_format=self.annotate_format)
        except _Stop:
            if self._cancelled(job.id):
                self._end_cancelled(job, state["done"])
            else:
                try:
                    store.requeue(job.id)
                except Exception:  # noqa: BLE001 - the row stays running: the next start requeues it
                    log.exception("job %s: cannot put it back in the queue", job.id)
                log.info("job %s: stopped with the server; it resumes at the next start", job.id)
            return
        except (OpenFerError, OSError) as e:
            if self._cancelled(job.id):
                self._end_cancelled(job, state["done"])
                return
            error, results, frames = _public(e, source, job.input_name, out), produced(out), state["done"]
            self._settle(job.id, lambda: store.finish(job.id, "failed", error=error, results=results,
                                                      frames_done=frames))
            return
        if self._cancelled(job.id):
            self._end_cancelled(job, res.frames)
            return
        results, resumed = produced(out), res.frames_before if res.resumed else None
        self._settle(job.id, lambda: store.finish(job.id, "done", results=results, frames_done=res.frames,
                                                  resumed_frames=resumed))

    def _end_cancelled(self, job: Job, frames_done: int | None) -> None:
        def write() -> None:  # the files go once the row says cancelled (else a restart would resume it)
            self.store.finish(job.id, "cancelled", frames_done=frames_done)
            self.store.remove_files(job.id)

        self._settle(job.id, write)


def _public(e: Exception, source: Path, name: str, out: Path) -> str:
    """A job's error for its client: one line, the upload named as uploaded, no server paths."""
    msg = str(e)
    for path, text in ((str(out.resolve()), "results"), (str(out), "results"), (str(source.resolve()), name),
                       (str(source), name)):
        msg = msg.replace(path, text)
    if isinstance(e, MissingDependencyError):
        return msg
    return " ".join(msg.split())


def produced(out: Path) -> tuple[str, ...]:
    """The result files of the job in ``out`` (names relative to it): what ``GET`` may serve."""
    from ..video.job import (
        ANNOTATED_FILE,
        ANNOTATED_WEBM,
        CAPTIONS_FILE,
        PARQUET_FILE,
        PLOTS_DIR,
        SMOOTH_FILE,
        SUMMARY_FILE,
    )
    from ..video.timeline import TIMELINE_FILE

    names = [n for n in (TIMELINE_FILE, PARQUET_FILE, SMOOTH_FILE, SUMMARY_FILE, CAPTIONS_FILE, ANNOTATED_WEBM,
                         ANNOTATED_FILE)
             if (out / n).is_file() and not (out / n).is_symlink()]
    plots = out / PLOTS_DIR
    if plots.is_dir() and not plots.is_symlink():
        names += sorted(f"{PLOTS_DIR}/{p.name}" for p in plots.iterdir()
                        if p.is_file() and not p.is_symlink() and p.suffix == ".png" and not p.name.startswith("."))
    return tuple(names)


def annotated_format() -> str:
    """``"webm"`` if this OpenCV build writes VP8 or VP9 WebM (browsers play it), else ``"mp4"``
    (mp4v: a download, not played by browsers; logged as a warning)."""
    from ..video.job import annotated_video_codec

    if annotated_video_codec("webm") is not None:
        return "webm"
    log.warning("annotated videos: this OpenCV build has no VP8/VP9 encoder; jobs write annotated.mp4 (mp4v), "
                "which browsers do not play")
    return "mp4"


def check_duration(max_seconds: float | None, preset: str = VIDEO_PRESET) -> Callable[[Path], None]:
    """The acceptance check of an upload: a decodable video whose container says it is at most
    ``max_seconds`` long (:class:`InputError` otherwise)."""

    def check(path: Path) -> None:
        from ..video.reader import VideoReader

        with VideoReader(path) as reader:
            info = reader.info
        if info.is_sequence:
            raise InputError("an image, not a video (photos go to /v1/analyze)")
        if max_seconds is None:
            return
        if info.duration is None:
            raise InputError(f"the video's container gives no frame count, so its length cannot be checked "
                             f"against the {max_seconds:g} s limit")
        if info.duration > max_seconds:
            raise InputError(f"the video is {info.duration:.1f} s long, over the {max_seconds:g} s limit")

    return check


__all__ = ["VIDEO_PRESET", "JobOptions", "WorkerPool", "annotated_format", "check_duration", "produced"]
