"""A whole video job into a folder: streamed, resumable timeline, per-track summary, annotated video.

``DIR`` receives ``timeline.csv`` (one row per face per analysed frame), ``summary.json`` (per track,
with its expression events, dynamic label and caption: :mod:`openfer.video.events`), ``captions.txt``
(one caption per track) and, with ``annotate=True``, ``annotated.mp4`` (``annotated.webm`` with
``annotate_format="webm"``: :data:`ANNOTATED_CODECS`), with ``plots=True``
``plots/track-<id>.png`` (:mod:`openfer.video.plots`); while running, ``part-*.csv`` and
``progress.json`` (see :class:`~openfer.video.timeline.TimelineWriter`). The CLI's ``openfer video`` is
this function.

The whole job holds ``DIR``'s :class:`~openfer.io.lock.FolderLock` (``DIR/.openfer.lock``), so a
second job into the same folder fails at once with an error naming the first, and a lock left by a
killed job is taken over with a warning. The names above in ``DIR`` (and their hidden temporary
files, left by a killed run) are openfer's: ``overwrite=True`` deletes those and nothing else, and
an input that is one of them (or ``DIR/plots`` itself) is refused.

Events are detected on the EMA-smoothed probabilities (``Timeline.smooth("ema")``, see
:func:`~openfer.video.events.timeline_dynamics`), so one-frame flickers neither start nor split events;
their AU evidence is the measured (unsmoothed) AUs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import __version__
from ..draw import annotate
from ..errors import InputError, OutputError
from ..io.lock import LOCK_FILE, FolderLock
from ..io.tables import atomic_open, atomic_path, write_json
from ..types import Faces
from .analyzer import VideoAnalyzer, VideoCheckpoint
from .events import TrackDynamics, captions_text, timeline_dynamics
from .timeline import (
    OVERWRITE_HINT,
    PART_FILE,
    PROGRESS_FILE,
    SMOOTH_METHODS,
    TIMELINE_FILE,
    Timeline,
    TimelineWriter,
    TrackSummary,
    optional_columns,
    require_pyarrow,
)

log = logging.getLogger("openfer")

SUMMARY_FILE = "summary.json"
ANNOTATED_FILE = "annotated.mp4"
ANNOTATED_WEBM = "annotated.webm"
# the annotated video's container -> file name and the OpenCV fourccs tried in turn (the first that opens):
# mp4v is what every OpenCV build writes but no browser plays; WebM with VP8 (else VP9) is what browsers play
# and what OpenCV's bundled FFmpeg (libvpx) writes; its H.264 encoders are absent or need a device
# (docs/service.md, "The annotated video")
ANNOTATED_CODECS: dict[str, tuple[str, tuple[str, ...]]] = {
    "mp4": (ANNOTATED_FILE, ("mp4v",)),
    "webm": (ANNOTATED_WEBM, ("VP80", "VP90")),
}
CAPTIONS_FILE = "captions.txt"
PARQUET_FILE = "timeline.parquet"
SMOOTH_FILE = "timeline_smooth.csv"
PLOTS_DIR = "plots"
_JOB_FILES = (SUMMARY_FILE, CAPTIONS_FILE, ANNOTATED_FILE, ANNOTATED_WEBM, PARQUET_FILE, SMOOTH_FILE)
_PLOT_FILE = re.compile(r"^track-\d+\.png$")
_TEMP_FILE = re.compile(r"^\.(.+)\.[a-z0-9_]{8}\.(?:tmp|mp4|webm|parquet)$")  # atomic_path's, left by a kill


@dataclass(frozen=True)
class VideoJobResult:
    """What :func:`analyze_video_to_dir` wrote. ``resumed``: it continued an earlier, unfinished run
    (``frames_before`` frames were done then); ``already_complete``: the folder held this finished run.
    ``dynamics``: per track, its events, dynamic label and caption (as in ``summary.json``);
    ``captions``: ``captions.txt``; ``plots``: the PNGs written with ``plots=True``."""

    source: str
    out_dir: Path
    timeline: Path
    summary: Path
    annotated: Path | None
    frames: int
    rows: int
    tracks: tuple[TrackSummary, ...]
    resumed: bool
    frames_before: int
    already_complete: bool
    dynamics: tuple[TrackDynamics, ...] = ()
    captions: Path | None = None
    plots: tuple[Path, ...] = ()
    parquet: Path | None = None
    smoothed: Path | None = None


def _meta(video: VideoAnalyzer, source: str | os.PathLike[str]) -> dict:
    p = Path(source)
    size = p.stat().st_size if p.is_file() else None
    return {
        "source": str(p.resolve()) if p.exists() else str(source),
        "size": size,
        "video_options": dataclasses.asdict(video.options),
        "analyzer_options": dataclasses.asdict(video.analyzer.options),
        "expression_model": video.analyzer.expression.model.sha256,
        "runtimes": video.analyzer.runtimes,
    }


def analyze_video_to_dir(
    video: VideoAnalyzer,
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    annotate_video: bool = False,
    on_frame: Callable[[int, int | None], None] | None = None,
    chunk_frames: int = 100,
    chunk_seconds: float = 30.0,
    plots: bool = False,
    parquet: bool = False,
    smooth: str | None = None,
    overwrite: bool = False,
    annotate_format: str = "mp4",
) -> VideoJobResult:
    """Analyse ``source`` into ``out_dir`` (see the module doc).

    ``on_frame(frames_done, frames_expected)`` is called after each analysed frame (progress).
    ``resume`` continues an unfinished run in ``out_dir`` with the same source and options, giving
    the same ``timeline.csv`` as an uninterrupted run. A truncated video's decodable frames are
    written before its :class:`~openfer.errors.InputError` is raised. ``plots``: also write one
    figure per track into ``out_dir/plots/`` (needs matplotlib: checked before the run starts).
    ``parquet``: also write the timeline as ``timeline.parquet`` (needs pyarrow: checked before the
    run starts). ``smooth`` (``"ema"``, ``"window"`` or ``"one_euro"``): also write
    ``timeline_smooth.csv``, :meth:`Timeline.smooth` with default parameters, raw values alongside.
    ``overwrite``: first delete the outputs of any earlier run in ``out_dir`` (the way out of a
    folder whose progress file or parts cannot be used; excludes ``resume``). ``annotate_format``:
    the container of the annotated video, ``"mp4"`` (mp4v, ``annotated.mp4``) or ``"webm"`` (VP8,
    else VP9, ``annotated.webm``: what browsers play), see :data:`ANNOTATED_CODECS`.

    The job holds ``out_dir``'s :class:`~openfer.io.lock.FolderLock` from before its first write to
    its end: :class:`~openfer.io.lock.FolderInUseError` if another job holds it.
    """
    out = Path(out_dir)
    if resume and overwrite:
        raise InputError("resume and overwrite exclude each other: overwrite discards the run resume continues")
    if annotate_format not in ANNOTATED_CODECS:
        raise InputError(f"annotate_format: expected one of {', '.join(ANNOTATED_CODECS)}, got {annotate_format!r}")
    if parquet:
        require_pyarrow()
    if smooth is not None and smooth not in SMOOTH_METHODS:
        raise InputError(f"smoothing method {smooth!r}: expected one of {', '.join(SMOOTH_METHODS)}")
    if plots:
        from .plots import require_matplotlib

        require_matplotlib()
    _check_not_an_output(source, out)
    video.reader(source).close()  # a bad input fails here, before anything is written to out_dir
    with FolderLock(out):
        if overwrite:
            _discard_outputs(out)
        run_meta = _meta(video, source)
        writer = TimelineWriter(
            out,
            video.classes,
            run_meta,
            resume=resume,
            overwrite=overwrite,
            chunk_frames=chunk_frames,
            chunk_seconds=chunk_seconds,
            **optional_columns(video.analyzer).kwargs(),
        )
        before = writer.frames_done
        resumed = writer.resume_state is not None and not writer.complete
        already = writer.complete
        error: InputError | None = None
        try:
            ckpt = VideoCheckpoint.from_json(writer.resume_state) if resumed else None
        except (KeyError, TypeError, ValueError):
            bad = f"{out / PROGRESS_FILE}: unreadable progress file (bad state); {OVERWRITE_HINT}"
            raise InputError(bad) from None
        run = video.run(source, resume=ckpt)
        step = 1.0 / run.reader.frame_rate
        if not already:
            expected = run.expected_frames()
            try:
                for vf in run:
                    writer.append(vf, lambda: run.checkpoint().to_json())
                    if on_frame is not None:
                        on_frame(run.frames_done, expected)
            except InputError as e:  # a truncated or corrupt stream: keep what decoded
                if run.frames_done == 0:
                    raise
                error = e
            timeline_path = writer.finish()
            timeline = Timeline.read_csv(timeline_path, frame_step=step)
        else:
            timeline_path = out / TIMELINE_FILE
            try:
                timeline = Timeline.read_csv(timeline_path, frame_step=step)
            except InputError as e:
                raise InputError(f"{e}; {OVERWRITE_HINT}") from None
        tracks = timeline.summary()
        dynamics = timeline_dynamics(timeline)  # on EMA-smoothed probabilities
        summary_path = write_json(
            {
                "openfer": __version__,
                "source": str(source),
                "frames": writer.frames_done,
                "frame_rate": run.reader.frame_rate,
                "width": run.info.width,
                "height": run.info.height,
                "rows": len(timeline),
                "classes": list(timeline.classes),
                "error": str(error) if error else None,
                "tracks": [
                    {
                        **t.to_dict(),
                        "events": [e.to_dict() for e in d.events],
                        "dynamic_label": d.dynamic_label,
                        "caption": d.caption,
                    }
                    for t, d in zip(tracks, dynamics, strict=True)
                ],
            },
            out / SUMMARY_FILE,
        )
        captions_path = _write_text(out / CAPTIONS_FILE, captions_text(dynamics))
        plot_paths: list[Path] = []
        if plots:
            from .plots import plot_timeline

            plot_paths = plot_timeline(timeline, out / PLOTS_DIR, dynamics=dynamics)
        parquet_path = timeline.to_parquet(out / PARQUET_FILE) if parquet else None
        smooth_path = timeline.smooth(smooth).write_csv(out / SMOOTH_FILE) if smooth is not None else None
        annotated = None
        if annotate_video:
            annotated = write_annotated_video(video, source, timeline, out / ANNOTATED_CODECS[annotate_format][0])
        result = VideoJobResult(
            str(source),
            out,
            timeline_path,
            summary_path,
            annotated,
            writer.frames_done,
            len(timeline),
            tracks,
            resumed,
            before,
            already,
            dynamics,
            captions_path,
            tuple(plot_paths),
            parquet=parquet_path,
            smoothed=smooth_path,
        )
        if error is not None:
            raise InputError(f"{error} (results for the {writer.frames_done} decoded frames are in {out})")
        return result


def _owned(rel: tuple[str, ...]) -> bool:
    """Whether a path in the output folder (its parts relative to it) is a job's output: the files
    ``overwrite`` deletes, the lock, the plots folder."""
    if len(rel) == 2 and rel[0] == PLOTS_DIR:
        m = _TEMP_FILE.match(rel[1])
        return bool(_PLOT_FILE.match(rel[1]) or (m and _PLOT_FILE.match(m.group(1) + ".png")))
    if len(rel) != 1:
        return False
    name = rel[0]
    if name in (*_JOB_FILES, PROGRESS_FILE, TIMELINE_FILE, PLOTS_DIR, LOCK_FILE):
        return True
    if PART_FILE.match(name):
        return True
    m = _TEMP_FILE.match(name)
    stems = {Path(n).stem for n in (*_JOB_FILES, PROGRESS_FILE, TIMELINE_FILE)}
    return bool(m and (m.group(1) in stems or PART_FILE.match(m.group(1) + ".csv")))


def _check_not_an_output(source: str | os.PathLike[str], out: Path) -> None:
    """Refuse an input that the job would overwrite or that ``overwrite`` would delete."""
    try:
        rel = Path(source).resolve().relative_to(out.resolve())
    except (OSError, ValueError):
        return
    if rel.parts and _owned(rel.parts):
        raise InputError(
            f"{source}: the input is one of the outputs openfer writes in {out}; move it or use another output folder"
        )


def _discard_outputs(out: Path) -> None:
    """Delete what earlier runs of the job wrote in ``out`` (see :func:`_owned`), and nothing else."""
    plots = out / PLOTS_DIR
    for folder, rel in ((out, ()), (plots, (PLOTS_DIR,))):
        if not folder.is_dir() or folder.is_symlink():
            continue
        for p in folder.iterdir():
            if _owned((*rel, p.name)) and p.name != LOCK_FILE and (p.is_file() or p.is_symlink()):
                try:
                    p.unlink()
                except OSError as e:
                    raise OutputError(p, e.strerror or str(e)) from None
    if plots.is_dir() and not plots.is_symlink() and not any(plots.iterdir()):
        plots.rmdir()


def _write_text(path: Path, text: str) -> Path:
    with atomic_open(path, newline="") as fh:
        fh.write(text)
    return path


def _faces_of_frame(timeline: Timeline, rows: np.ndarray) -> Faces:
    n = len(rows)
    return Faces(
        boxes=timeline.boxes[rows],
        scores=np.zeros(n),
        keypoints=np.zeros((n, 6, 2)),
        landmarks=np.zeros((n, 0, 3)),
        landmark_scores=np.zeros(n),
        poses=np.zeros((n, 3)),
        expressions=timeline.probabilities[rows],
        classes=timeline.classes,
    )


def write_annotated_video(
    video: VideoAnalyzer, source: str | os.PathLike[str], timeline: Timeline, path: str | os.PathLike[str]
) -> Path:
    """Render the analysed frames of ``source`` with boxes, labels and track ids from ``timeline``
    (drawn by :func:`openfer.draw.annotate`) into a video at the analysed frame rate: ``.mp4``
    (mp4v) or ``.webm`` (VP8, else VP9), by ``path``'s suffix (:data:`ANNOTATED_CODECS`).

    The frames are read again with the analyzer's sampling, so this works as well after a resumed
    run as after an uninterrupted one.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ANNOTATED_CODECS:
        raise InputError(f"{path}: cannot write an annotated video as {path.suffix or 'no suffix'}: "
                         f"expected {' or '.join('.' + f for f in ANNOTATED_CODECS)}")
    codecs = ANNOTATED_CODECS[fmt][1]
    with video.reader(source) as reader:  # closed on every way out, a missing encoder included
        w, h = reader.info.width, reader.info.height
        with atomic_path(path, suffix=path.suffix.lower()) as tmp:  # the suffix tells VideoWriter the container
            writer = _open_writer(tmp, codecs, float(reader.frame_rate), (w, h))
            if writer is None:
                raise InputError(f"{path}: cannot write a {fmt} video (no {' or '.join(codecs)} encoder "
                                 "in this OpenCV build)")
            order = np.argsort(timeline.frames, kind="stable")
            frames = timeline.frames[order]
            try:
                for index, _, rgb in reader:
                    lo, hi = np.searchsorted(frames, index, "left"), np.searchsorted(frames, index, "right")
                    rows = order[lo:hi]
                    img = (
                        annotate(rgb, _faces_of_frame(timeline, rows), mesh="none", bars=False)
                        if len(rows)
                        else rgb
                    )
                    for r in rows:
                        _draw_id(img, timeline.boxes[r], int(timeline.tracks[r]))
                    writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            finally:
                writer.release()
    return path


def _open_writer(path: Path, codecs: tuple[str, ...], fps: float, size: tuple[int, int]) -> cv2.VideoWriter | None:
    """The first of ``codecs`` (fourccs) that OpenCV opens for ``path``, or ``None``."""
    for fourcc in codecs:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if writer.isOpened():
            return writer
        writer.release()
        log.debug("annotated video: no %s encoder for %s", fourcc, path.suffix)
    return None


def annotated_video_codec(fmt: str) -> str | None:
    """The fourcc :func:`write_annotated_video` would use for ``fmt`` (``"mp4"``, ``"webm"``) in this
    OpenCV build, or ``None`` if none of :data:`ANNOTATED_CODECS` opens (tried on a tiny file in the
    temporary folder)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="openfer-codec-") as tmp:
        for fourcc in ANNOTATED_CODECS[fmt][1]:
            writer = _open_writer(Path(tmp) / f"probe.{fmt}", (fourcc,), 10.0, (64, 64))
            if writer is not None:
                writer.write(np.zeros((64, 64, 3), np.uint8))
                writer.release()
                return fourcc
    return None


def _draw_id(img: np.ndarray, box: np.ndarray, track: int) -> None:
    x1, y2 = int(round(box[0])), int(round(box[3]))
    scale = max(min(img.shape[:2]) / 720.0, 0.4)
    th = max(int(round(2 * scale)), 1)
    fs = 0.7 * scale * max((box[2] - box[0]) / 160, 0.6)
    text = f"id {track}"
    (tw, tht), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, th)
    y = min(y2 + tht + 6, img.shape[0] - base - 1)
    cv2.rectangle(img, (x1, y - tht - 4), (x1 + tw + 4, y + base - 2), (255, 255, 255), -1)
    cv2.putText(img, text, (x1 + 2, y - 2), cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0), th, cv2.LINE_AA)


__all__ = [
    "ANNOTATED_CODECS",
    "ANNOTATED_FILE",
    "ANNOTATED_WEBM",
    "CAPTIONS_FILE",
    "PARQUET_FILE",
    "PLOTS_DIR",
    "SMOOTH_FILE",
    "SUMMARY_FILE",
    "VideoJobResult",
    "analyze_video_to_dir",
    "annotated_video_codec",
    "write_annotated_video",
]
