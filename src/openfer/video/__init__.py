"""Video: frame sources, face tracking, per-frame analysis, timelines and resumable jobs.

>>> from openfer.video import VideoAnalyzer, Timeline          # doctest: +SKIP
>>> video = VideoAnalyzer(fps=10)                              # doctest: +SKIP
>>> timeline = Timeline.for_video(video)                       # doctest: +SKIP
>>> for frame in video.run("clip.mp4"):                        # doctest: +SKIP
...     timeline.add(frame)
>>> timeline.summary()                                         # doctest: +SKIP

``VideoAnalyzer`` loads the models; :mod:`openfer.video.reader` and :mod:`openfer.video.tracker` need
none.
"""

from __future__ import annotations

from .analyzer import VideoAnalyzer, VideoCheckpoint, VideoFrame, VideoOptions, VideoRun, id_switches
from .events import ExpressionEvent, TrackDynamics, caption, detect_events, timeline_dynamics
from .job import VideoJobResult, analyze_video_to_dir, write_annotated_video
from .live import run_live
from .plots import plot_timeline
from .reader import VIDEO_EXTENSIONS, Frame, VideoInfo, VideoReader
from .timeline import Timeline, TimelineWriter, TrackSummary, timeline_columns
from .tracker import FaceTracker, TrackerState

__all__ = [
    "VIDEO_EXTENSIONS",
    "ExpressionEvent",
    "FaceTracker",
    "Frame",
    "Timeline",
    "TimelineWriter",
    "TrackDynamics",
    "TrackSummary",
    "TrackerState",
    "VideoAnalyzer",
    "VideoCheckpoint",
    "VideoFrame",
    "VideoInfo",
    "VideoJobResult",
    "VideoOptions",
    "VideoReader",
    "VideoRun",
    "analyze_video_to_dir",
    "caption",
    "detect_events",
    "id_switches",
    "plot_timeline",
    "run_live",
    "timeline_columns",
    "timeline_dynamics",
    "write_annotated_video",
]
