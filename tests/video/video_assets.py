"""Paths of the test clips in tests/assets/videos and VideoAnalyzers sharing one loaded Analyzer.

(A helper module rather than a conftest.py: tests elsewhere import the root ``conftest`` by name.)
"""

from __future__ import annotations

import functools
from pathlib import Path

VIDEOS = Path(__file__).resolve().parent.parent / "assets" / "videos"
SINGLE_FACE = VIDEOS / "single_face.mp4"  # 72 frames, 640x360, 30 fps, one face throughout
NO_FACE = VIDEOS / "no_face.mp4"  # 95 decodable frames (98 declared), 960x540, no face
FACE_NOFACE = VIDEOS / "face_noface.mov"  # a face in frames 0-71 (~2.4 s), then none; variable frame rate
CRY_LAUGH = VIDEOS / "WolfgangLanger_Pexels.mp4"  # 472 frames, 640x360: crying 0.2-6 s, laughing 10-19 s


@functools.cache
def _analyzer():
    from openfer.pipeline import Analyzer

    return Analyzer("video")  # the VideoAnalyzer default preset (1 thread per model)


def video_analyzer(**options):
    """A VideoAnalyzer with ``options`` (VideoOptions fields) sharing one loaded Analyzer."""
    from openfer.video import VideoAnalyzer

    return VideoAnalyzer(analyzer=_analyzer(), **options)


def full_header(openset: bool) -> tuple[str, ...]:
    """The timeline header of the default VideoAnalyzer: every optional column group."""
    from openfer.core.au import AU_NAMES
    from openfer.core.blendshapes import BLENDSHAPE_NAMES
    from openfer.types import EXPRESSIONS
    from openfer.video import timeline_columns

    return timeline_columns(EXPRESSIONS, AU_NAMES, affect=True, pspi=True, au_baseline=True, openset=openset,
                            blendshape_names=BLENDSHAPE_NAMES)
