"""Many videos, one job each: the same per-video folders in this process, in ``workers`` processes or
as Ray tasks (:class:`~openfer.scale.ray_engine.RayEngine`).

A :class:`VideoTask` is everything one video's job needs (picklable: no loaded models), and
:func:`run_video_task` runs it through :func:`openfer.video.analyze_video_to_dir`, the function
``openfer video`` has always run, so each folder is what a run of that one video writes. A video
that fails (a bad file, a folder in use, a full disk) is an outcome with its one-line error; the
other videos go on.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError, OutputError

__all__ = ["VideoOutcome", "VideoTask", "run_video_task", "run_video_tasks"]


@dataclass(frozen=True)
class VideoTask:
    """One video's job: ``source`` into ``out_dir`` with a :class:`~openfer.video.VideoAnalyzer` built
    from ``preset`` and ``overrides``, and :func:`~openfer.video.analyze_video_to_dir`'s flags."""

    index: int
    source: str
    out_dir: str
    preset: str = "video"
    overrides: dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    overwrite: bool = False
    annotate: bool = False
    plots: bool = False
    parquet: bool = False
    smooth: str | None = None

    def analyzer_key(self) -> tuple[str, tuple[tuple[str, Any], ...]]:
        return self.preset, tuple(sorted(self.overrides.items()))


@dataclass(frozen=True)
class VideoOutcome:
    """A finished task: ``result`` (a :class:`~openfer.video.job.VideoJobResult`) or ``error`` (one
    line; ``output_error``: it was an output that could not be written)."""

    index: int
    source: str
    out_dir: str
    result: Any = None
    error: str | None = None
    output_error: bool = False


def run_video_task(
    task: VideoTask, video: Any = None, on_frame: Callable[[int, int | None], None] | None = None
) -> VideoOutcome:
    """Run one task (``video``: a loaded :class:`~openfer.video.VideoAnalyzer` built from the task's
    preset and overrides, to reuse; built here when ``None``)."""
    from ..video import VideoAnalyzer, analyze_video_to_dir

    try:
        if video is None:
            video = VideoAnalyzer(task.preset, **task.overrides)
        res = analyze_video_to_dir(
            video, task.source, task.out_dir, resume=task.resume, overwrite=task.overwrite,
            annotate_video=task.annotate, on_frame=on_frame, plots=task.plots, parquet=task.parquet,
            smooth=task.smooth,
        )
    except (InputError, OutputError) as e:
        return VideoOutcome(task.index, task.source, task.out_dir, error=str(e), output_error=isinstance(e, OutputError))
    return VideoOutcome(task.index, task.source, task.out_dir, result=res)


def run_video_tasks(
    tasks: Sequence[VideoTask],
    *,
    workers: int = 1,
    engine: Any = None,
    on_frame: Callable[[VideoTask], Callable[[int, int | None], None] | None] | None = None,
) -> Iterator[VideoOutcome]:
    """Each task's outcome: in order, in this process (one analyzer for all tasks with the same
    options; ``on_frame(task)`` may give each a progress callback); with ``workers`` > 1 in that many
    spawned processes, in completion order (ONNX Runtime threads split between them when the
    options leave them at the preset's); with ``engine`` (a :class:`~openfer.scale.ray_engine.RayEngine`)
    as Ray tasks, in completion order."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be an integer >= 1, got {workers!r}")
    if engine is not None:
        if workers != 1:
            raise InputError("workers and engine exclude each other: the engine decides where the videos run")
        yield from engine.run_videos(list(tasks))
        return
    if workers == 1 or len(tasks) < 2:
        loaded: dict[Any, Any] = {}
        for t in tasks:
            video = loaded.get(t.analyzer_key())
            if video is None:
                from ..video import VideoAnalyzer

                try:
                    video = loaded[t.analyzer_key()] = VideoAnalyzer(t.preset, **t.overrides)
                except (InputError, OutputError) as e:
                    yield VideoOutcome(t.index, t.source, t.out_dir, error=str(e))
                    continue
            yield run_video_task(t, video, on_frame(t) if on_frame is not None else None)
        return
    yield from _in_processes(tasks, workers)


def split_threads(task: VideoTask, workers: int) -> VideoTask:
    """The task with ONNX Runtime threads per model set so that ``workers`` jobs share the cores
    (unless the task sets them)."""
    if "threads" in task.overrides:
        return task
    threads = max(1, (os.cpu_count() or 1) // (2 * workers))  # two models run side by side per job
    return dataclasses.replace(task, overrides={**task.overrides, "threads": threads})


def _in_processes(tasks: Sequence[VideoTask], workers: int) -> Iterator[VideoOutcome]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(run_video_task, split_threads(t, workers)) for t in tasks]
        try:
            for f in as_completed(futures):
                yield f.result()
        except BaseException:  # Ctrl-C, or the caller stopped: do not start the queued videos
            for f in futures:
                f.cancel()
            raise
