"""Paths of the test clips in tests/assets/videos and one shared single-threaded VideoAnalyzer.

(A helper module rather than a conftest.py: tests elsewhere import the root ``conftest`` by name.)
"""

from __future__ import annotations

import functools
from pathlib import Path

VIDEOS = Path(__file__).resolve().parent.parent / "assets" / "videos"
SINGLE_FACE = VIDEOS / "single_face.mp4"  # 72 frames, 640x360, 30 fps, one face throughout
NO_FACE = VIDEOS / "no_face.mp4"  # 95 decodable frames (98 declared), 960x540, no face
FACE_NOFACE = VIDEOS / "face_noface.mov"  # a face in frames 0-71 (~2.4 s), then none; variable frame rate


@functools.cache
def video_analyzer():
    """One VideoAnalyzer (default options, 1 thread) for every test that needs models."""
    from openfer.pipeline import Analyzer
    from openfer.video import VideoAnalyzer

    return VideoAnalyzer(analyzer=Analyzer(threads=1))
