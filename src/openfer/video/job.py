"""A whole video job into a folder: streamed, resumable timeline, per-track summary, annotated video.

``DIR`` receives ``timeline.csv`` (one row per face per analysed frame), ``summary.json`` (per track)
and, with ``annotate=True``, ``annotated.mp4``; while running, ``part-*.csv`` and ``progress.json``
(see :class:`~openfer.video.timeline.TimelineWriter`). The CLI's ``openfer video`` is this function.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import __version__
from ..draw import annotate
from ..errors import InputError
from ..io.tables import atomic_path, write_json
from ..types import Faces
from .analyzer import VideoAnalyzer, VideoCheckpoint
from .timeline import Timeline, TimelineWriter, TrackSummary

log = logging.getLogger("openfer")

SUMMARY_FILE = "summary.json"
ANNOTATED_FILE = "annotated.mp4"


@dataclass(frozen=True)
class VideoJobResult:
    """What :func:`analyze_video_to_dir` wrote. ``resumed``: it continued an earlier, unfinished run
    (``frames_before`` frames were done then); ``already_complete``: the folder held this finished run."""

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


def _meta(video: VideoAnalyzer, source: str | os.PathLike[str]) -> dict:
    p = Path(source)
    size = p.stat().st_size if p.is_file() else None
    return {
        "source": str(p.resolve()) if p.exists() else str(source),
        "size": size,
        "video_options": dataclasses.asdict(video.options),
        "analyzer_options": dataclasses.asdict(video.analyzer.options),
        "expression_model": video.analyzer.expression.model.sha256,
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
) -> VideoJobResult:
    """Analyse ``source`` into ``out_dir`` (see the module doc).

    ``on_frame(frames_done, frames_expected)`` is called after each analysed frame (progress).
    ``resume`` continues an unfinished run in ``out_dir`` with the same source and options, giving
    the same ``timeline.csv`` as an uninterrupted run. A truncated video's decodable frames are
    written before its :class:`~openfer.errors.InputError` is raised.
    """
    out = Path(out_dir)
    video.reader(source).close()  # a bad input fails here, before anything is written to out_dir
    run_meta = _meta(video, source)
    writer = TimelineWriter(
        out, video.classes, run_meta, resume=resume, chunk_frames=chunk_frames, chunk_seconds=chunk_seconds
    )
    before = writer.frames_done
    resumed = writer.resume_state is not None and not writer.complete
    already = writer.complete
    error: InputError | None = None
    ckpt = VideoCheckpoint.from_json(writer.resume_state) if resumed else None
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
    else:
        timeline_path = out / "timeline.csv"
    timeline = Timeline.read_csv(timeline_path, frame_step=step)
    tracks = timeline.summary()
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
            "tracks": [t.to_dict() for t in tracks],
        },
        out / SUMMARY_FILE,
    )
    annotated = None
    if annotate_video:
        annotated = write_annotated_video(video, source, timeline, out / ANNOTATED_FILE)
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
    )
    if error is not None:
        raise InputError(f"{error} (results for the {writer.frames_done} decoded frames are in {out})")
    return result


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
    (drawn by :func:`openfer.draw.annotate`) into an mp4 at the analysed frame rate.

    The frames are read again with the analyzer's sampling, so this works as well after a resumed
    run as after an uninterrupted one.
    """
    path = Path(path)
    reader = video.reader(source)
    w, h = reader.info.width, reader.info.height
    with atomic_path(path, suffix=".mp4") as tmp:  # the suffix tells VideoWriter the container
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(reader.frame_rate), (w, h))
        if not writer.isOpened():
            raise InputError(f"{path}: cannot write an mp4 video (no mp4v encoder in this OpenCV build)")
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
    "ANNOTATED_FILE",
    "SUMMARY_FILE",
    "VideoJobResult",
    "analyze_video_to_dir",
    "write_annotated_video",
]
