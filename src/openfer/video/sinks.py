"""Text sinks of a live run: :class:`TimelineStream` writes timeline rows (as in ``timeline.csv``) to
open text streams (standard output, a CSV file) as frames come."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from .columns import ColumnGroups, format_rows, optional_columns, timeline_columns

if TYPE_CHECKING:
    from .analyzer import VideoAnalyzer, VideoFrame


class TimelineStream:
    """Timeline rows (:func:`~openfer.video.timeline.timeline_columns`, as in ``timeline.csv``) written
    to text streams as frames come: the header before the first frame, then each frame's rows in one
    write, flushed. :meth:`finish` writes the header if no frame came (a header-only timeline)."""

    def __init__(
        self,
        streams: Sequence[TextIO],
        classes: Sequence[str],
        au_names: Sequence[str] = (),
        affect: bool = False,
        *,
        pspi: bool = False,
        au_baseline: bool = False,
        openset: bool = False,
        blendshape_names: Sequence[str] = (),
    ) -> None:
        self.streams = list(streams)
        self.groups = ColumnGroups(au_names, affect, pspi, au_baseline, openset, blendshape_names)
        self.au_names, self.affect = self.groups.au_names, self.groups.affect
        self.header = timeline_columns(tuple(classes), **self.groups.kwargs())
        self.rows = 0
        self._started = False

    @classmethod
    def for_video(cls, streams: Sequence[TextIO], video: VideoAnalyzer) -> TimelineStream:
        """The columns ``video`` fills (:func:`~openfer.video.timeline.optional_columns`: AUs, PSPI
        and ``au_baseline``, valence/arousal, open-set scores, blendshapes when its analyzer computes
        them)."""
        return cls(streams, video.classes, **optional_columns(video.analyzer).kwargs())

    def _emit(self, rows: list[list[str]]) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if not self._started:
            w.writerow(self.header)
            self._started = True
        w.writerows(rows)
        text = buf.getvalue()
        for s in self.streams:
            s.write(text)
            s.flush()
        self.rows += len(rows)

    def write(self, frame: VideoFrame) -> None:
        self._emit(format_rows(frame, **self.groups.kwargs()))

    def finish(self) -> None:
        if not self._started:
            self._emit([])
