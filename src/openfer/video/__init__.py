"""Video: frame sources, face tracking, per-frame analysis, timelines and resumable jobs.

>>> from openfer.video import VideoAnalyzer, Timeline          # doctest: +SKIP
>>> video = VideoAnalyzer(fps=10)                              # doctest: +SKIP
>>> timeline = Timeline(video.classes)                         # doctest: +SKIP
>>> for frame in video.run("clip.mp4"):                        # doctest: +SKIP
...     timeline.add(frame)
>>> timeline.summary()                                         # doctest: +SKIP

``VideoAnalyzer`` loads the models; :mod:`openfer.video.reader` and :mod:`openfer.video.tracker` need
none.
"""

from __future__ import annotations

from .analyzer import VideoAnalyzer, VideoCheckpoint, VideoFrame, VideoOptions, VideoRun, id_switches
from .job import VideoJobResult, analyze_video_to_dir, write_annotated_video
from .reader import VIDEO_EXTENSIONS, Frame, VideoInfo, VideoReader
from .timeline import Timeline, TimelineWriter, TrackSummary, timeline_columns
from .tracker import FaceTracker, TrackerState

__all__ = [
    "VIDEO_EXTENSIONS",
    "FaceTracker",
    "Frame",
    "Timeline",
    "TimelineWriter",
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
    "id_switches",
    "timeline_columns",
    "write_annotated_video",
]
