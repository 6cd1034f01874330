"""Per-face, per-frame rows of a video analysis: in memory (:class:`Timeline`) and streamed to disk
(:class:`~openfer.video.writer.TimelineWriter`, re-exported here).

One row per face per analysed frame; the columns (base columns, one probability per class, then the
optional groups: valence/arousal, AUs, ``pspi``, ``au_baseline``, ``unknown_score, open_label``, the
52 MediaPipe blendshapes) are described in :mod:`openfer.video.columns` (:func:`timeline_columns`,
:class:`ColumnGroups`).
The header says which groups are present, so :meth:`Timeline.read_csv` reads any of them (and
timelines written before the groups existed). A video without faces has a header and no rows. The
groups are fixed when the writer (or timeline) is created (:func:`optional_columns` of the
Analyzer): a frame lacking one gets ``nan`` cells, never a shorter row.

:class:`TimelineWriter` streams rows into ``DIR/part-00001.csv, part-00002.csv, ...`` (each written to a
temporary file, then renamed), then records the last completed frame and the run's checkpoint in
``DIR/progress.json`` (renamed likewise: the commit point). A killed run keeps every committed part;
resuming drops uncommitted parts and continues after the last completed frame. :meth:`finish` merges
the parts into ``DIR/timeline.csv``, byte-identical whether or not the run was interrupted.

:meth:`Timeline.smooth` gives a smoothed copy (``ema``, centered ``window`` mean or ``one_euro``, see
:mod:`openfer.core.filters`) that keeps the raw values: ``.raw``, and ``raw_<column>`` columns in
its DataFrame, records and CSV (blendshapes are smoothed like the AUs; ``au_baseline`` and
``open_label`` are per-frame decisions and stay as they were).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.filters import (
    DEFAULT_BETA,
    DEFAULT_D_CUTOFF,
    DEFAULT_MIN_CUTOFF,
    DEFAULT_TAU,
    DEFAULT_WINDOW,
    SMOOTH_METHODS,
    smooth_tracks,
)
from ..errors import InputError
from ..extras import require
from ..io.tables import atomic_path
from ..types import EXPRESSIONS
from .columns import (
    AFFECT_COLUMNS,
    BASE_COLUMNS,
    BASELINE_COLUMN,
    OPENSET_COLUMNS,
    PSPI_COLUMN,
    RAW_PREFIX,
    Column,
    ColumnGroups,
    Rows,
    csv_cells,
    format_rows,
    frame_rows,
    optional_columns,
    parse_header,
    parse_rows,
    row_table,
    smoothed_columns,
    timeline_columns,
)
from .writer import (
    OVERWRITE_HINT,
    PART_FILE,
    PROGRESS_FILE,
    TIMELINE_FILE,
    TimelineWriter,
    _atomic_write_text,
    _csv_text,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .analyzer import VideoAnalyzer, VideoFrame
    from .events import ExpressionEvent

MAX_GAP = 1.0  # s: a track seen again after a longer pause restarts its smoothing
AU_MAX = 5.0  # AU intensity scale (one-euro filters AUs / AU_MAX, on a unit scale)
PSPI_MAX = 16.0  # PSPI scale (likewise)


@dataclass(frozen=True)
class TrackSummary:
    """One track over a video. ``duration`` is ``frames`` times the analysed frame step (so gaps
    while the face was away do not count); ``shares`` is the share of its frames per top label.

    With valence/arousal: their means, and their peaks (the value largest in magnitude) with the
    peak's time; with AUs, ``mean_aus`` per AU; with blendshapes, ``mean_blendshapes`` per
    blendshape. ``None`` (``{}`` for AUs and blendshapes) when the timeline lacks them (or all the
    track's values are missing).
    """

    track: int
    frames: int
    first_time: float
    last_time: float
    duration: float
    dominant: str
    shares: dict[str, float]
    mean_probabilities: dict[str, float]
    mean_valence: float | None = None
    mean_arousal: float | None = None
    peak_valence: float | None = None
    peak_valence_time: float | None = None
    peak_arousal: float | None = None
    peak_arousal_time: float | None = None
    mean_aus: dict[str, float | None] = field(default_factory=dict)
    mean_blendshapes: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (mappings copied)."""
        return asdict(self)


def _mean(v: np.ndarray) -> float | None:
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None


def _peak(v: np.ndarray, t: np.ndarray) -> tuple[float | None, float | None]:
    ok = np.isfinite(v)
    if not ok.any():
        return None, None
    i = int(np.argmax(np.where(ok, np.abs(v), -1.0)))
    return float(v[i]), float(t[i])


class Timeline:
    """Rows of a video analysis, kept as arrays. ``add`` frames from a run, or ``read_csv`` a written
    timeline; then ``to_dataframe()`` (needs pandas), ``summary()`` per track or ``smooth()``.

    ``frame_step``: seconds between analysed frames, for durations; ``None``: the median step
    between the distinct frame times in the timeline. ``au_names``, ``affect``, ``pspi``,
    ``au_baseline``, ``openset``, ``blendshape_names``: the optional column groups
    (:class:`ColumnGroups`, see the module doc; :meth:`for_video` takes them from a
    :class:`~openfer.video.VideoAnalyzer`), as ``groups``.
    ``raw``: for a smoothed timeline, the timeline it was smoothed from (``None`` otherwise).
    """

    def __init__(
        self,
        classes: Sequence[str] = EXPRESSIONS,
        frame_step: float | None = None,
        *,
        au_names: Sequence[str] = (),
        affect: bool = False,
        pspi: bool = False,
        au_baseline: bool = False,
        openset: bool = False,
        blendshape_names: Sequence[str] = (),
    ) -> None:
        self.classes = tuple(classes)
        self.frame_step = frame_step
        self.groups = ColumnGroups(au_names, affect, pspi, au_baseline, openset, blendshape_names)
        self.au_names = self.groups.au_names
        self.blendshape_names = self.groups.blendshape_names
        self.affect = self.groups.affect
        self.raw: Timeline | None = None
        self._chunks: list[Rows] = []
        self._cache: Rows | None = None

    @classmethod
    def for_video(cls, video: VideoAnalyzer, frame_step: float | None = None) -> Timeline:
        """An empty timeline with the columns ``video``'s frames fill."""
        return cls(video.classes, frame_step, **optional_columns(video.analyzer).kwargs())

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns of :meth:`to_dataframe` (and of :meth:`write_csv`)."""
        cols = BASE_COLUMNS + self.classes + self.groups.columns
        if self.raw is not None:
            cols += tuple(RAW_PREFIX + c for c in smoothed_columns(self.classes, self.groups))
        return cols

    def add(self, frame: VideoFrame) -> None:
        f = frame.faces
        if tuple(f.classes) != self.classes:
            raise InputError(f"frame classes {f.classes} differ from the timeline's {self.classes}")
        if len(f):
            self._append(frame_rows(frame, self.groups))

    def _append(self, rows: Rows) -> None:
        self._chunks.append(rows)
        self._cache = None

    def _rows(self) -> Rows:
        if self._cache is None:
            if self._chunks:
                cols = [np.concatenate(c) for c in zip(*self._chunks, strict=True)]
            else:
                cols = list(Rows.empty(len(self.classes), len(self.au_names), len(self.blendshape_names)))
            for a in cols:
                a.setflags(write=False)
            self._cache = Rows(*cols)
        return self._cache

    def __len__(self) -> int:
        return int(self._rows().time.shape[0])

    @property
    def times(self) -> np.ndarray:
        return self._rows().time

    @property
    def frames(self) -> np.ndarray:
        return self._rows().frame

    @property
    def tracks(self) -> np.ndarray:
        return self._rows().track

    @property
    def boxes(self) -> np.ndarray:
        return self._rows().box

    @property
    def scores(self) -> np.ndarray:
        return self._rows().score

    @property
    def landmark_scores(self) -> np.ndarray:
        return self._rows().landmark_score

    @property
    def poses(self) -> np.ndarray:
        return self._rows().pose

    @property
    def probabilities(self) -> np.ndarray:
        return self._rows().prob

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.classes[i] for i in self._rows().label)

    @property
    def aus(self) -> np.ndarray:
        """``(N, len(au_names))`` AU intensities (0-5; NaN where a frame lacked them), ``(N, 0)``
        without AU columns."""
        return self._rows().aus

    @property
    def blendshapes(self) -> np.ndarray:
        """``(N, len(blendshape_names))`` MediaPipe blendshape coefficients (0-1; NaN where a frame
        lacked them), ``(N, 0)`` without blendshape columns."""
        return self._rows().blendshapes

    @property
    def valence_arousal(self) -> np.ndarray:
        """``(N, 2)`` valence and arousal; NaN without those columns (or where a frame lacked them)."""
        return self._rows().va

    @property
    def pspi(self) -> np.ndarray:
        """``(N,)`` PSPI pain intensity (0-16); NaN without the column (or where a frame lacked it)."""
        return self._rows().pspi

    @property
    def au_baseline(self) -> np.ndarray:
        """``(N,)`` bool: the row's AUs are measured against its track's own neutral baseline (False
        without the column)."""
        return self._rows().au_baseline.astype(bool)

    @property
    def unknown_scores(self) -> np.ndarray:
        """``(N,)`` open-set scores (0-1); NaN without the column (or where a frame lacked them)."""
        return self._rows().unknown

    @property
    def open_labels(self) -> tuple[str, ...]:
        """The label of each row, or ``"unknown"`` where the open-set score was over the threshold
        (as measured: not recomputed by :meth:`smooth`); :attr:`labels` without the column."""
        return tuple(self._rows().open_label.tolist())

    def track_ids(self) -> np.ndarray:
        """The distinct track ids, sorted."""
        return np.unique(self.tracks)

    def _table(self) -> list[Column]:
        raw = self.raw._rows() if self.raw is not None else None
        return row_table(self._rows(), self.classes, self.groups, raw)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per row, keys :attr:`columns`."""
        cols = self._table()
        names = [c for c, _, _ in cols]
        return [
            dict(zip(names, row, strict=True)) for row in zip(*(a.tolist() for _, a, _ in cols), strict=True)
        ]

    def to_dataframe(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame with :attr:`columns` (needs pandas)."""
        pd = require("pandas", "tables", "DataFrames")
        cols = self._table()
        return pd.DataFrame({c: np.asarray(a) for c, a, _ in cols}, columns=[c for c, _, _ in cols])

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the rows (:attr:`columns`, fixed precision as in ``timeline.csv``) atomically."""
        path = Path(path)
        cols = self._table()
        _atomic_write_text(path, _csv_text(csv_cells(cols), [c for c, _, _ in cols]))
        return path

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dataframe` as Parquet, atomically (needs pandas and pyarrow)."""
        require_pyarrow()
        path = Path(path)
        df = self.to_dataframe()
        with atomic_path(path, suffix=".parquet") as tmp:
            df.to_parquet(tmp, index=False)
        return path

    def step(self) -> float:
        if self.frame_step is not None:
            return float(self.frame_step)
        u = np.unique(self.times)
        d = np.diff(u)
        return float(np.median(d)) if d.size else 0.0

    def summary(self) -> tuple[TrackSummary, ...]:
        """One :class:`TrackSummary` per track, by track id."""
        r = self._rows()
        step = self.step()
        out = []
        for k in np.unique(r.track):
            m = r.track == k
            t = r.time[m]
            counts = np.bincount(r.label[m], minlength=len(self.classes))
            n = int(m.sum())
            extra: dict[str, Any] = {}
            if self.affect:
                va = r.va[m]
                extra["mean_valence"], extra["mean_arousal"] = _mean(va[:, 0]), _mean(va[:, 1])
                extra["peak_valence"], extra["peak_valence_time"] = _peak(va[:, 0], t)
                extra["peak_arousal"], extra["peak_arousal_time"] = _peak(va[:, 1], t)
            if self.au_names:
                extra["mean_aus"] = {a: _mean(r.aus[m, j]) for j, a in enumerate(self.au_names)}
            if self.blendshape_names:
                bs = r.blendshapes[m]
                extra["mean_blendshapes"] = {b: _mean(bs[:, j]) for j, b in enumerate(self.blendshape_names)}
            out.append(
                TrackSummary(
                    track=int(k),
                    frames=n,
                    first_time=float(t.min()),
                    last_time=float(t.max()),
                    duration=n * step,
                    dominant=self.classes[int(counts.argmax())],
                    shares={c: float(v) / n for c, v in zip(self.classes, counts, strict=True)},
                    mean_probabilities={
                        c: float(v) for c, v in zip(self.classes, r.prob[m].mean(0), strict=True)
                    },
                    **extra,
                )
            )
        return tuple(out)

    def smooth(
        self,
        method: str = "ema",
        *,
        tau: float = DEFAULT_TAU,
        window: float = DEFAULT_WINDOW,
        min_cutoff: float = DEFAULT_MIN_CUTOFF,
        beta: float = DEFAULT_BETA,
        d_cutoff: float = DEFAULT_D_CUTOFF,
        max_gap: float = MAX_GAP,
    ) -> Timeline:
        """A new timeline with boxes, probabilities, valence/arousal, AUs, PSPI, open-set scores and
        blendshapes smoothed over time, per track in time order; the other columns (scores, pose,
        ``au_baseline``, ``open_label``) as they are. Its ``raw`` is the timeline the values came
        from (for a smoothed timeline: its own ``raw``), and its DataFrame, records and CSV add
        ``raw_<column>`` for every smoothed column.

        ``method``: ``"ema"`` (exponential, time constant ``tau`` s: a step is half followed after
        ~0.2 s at ``tau=0.3``), ``"window"`` (centered mean over ``window`` s: no lag, but needs the
        future) or ``"one_euro"`` (adaptive: ``min_cutoff`` Hz at rest, rising by ``beta`` per unit
        per second; little lag on fast changes). See :mod:`openfer.core.filters` for measured lag and
        noise reduction. A pause longer than ``max_gap`` s (the face was away) restarts the filter.

        Probabilities are renormalised to sum to 1 and the label is recomputed from them; open-set
        scores are smoothed like probabilities (clipped to [0, 1], not renormalised), blendshapes
        each on its own like the AUs. The one-euro filter sees every quantity on a unit scale:
        probabilities, open-set scores, blendshapes and valence/arousal as they are, AU intensities
        / 5, PSPI / 16, box coordinates in face heights (the track's median box height).
        """
        r = self._rows()
        c, k, b = len(self.classes), len(self.au_names), len(self.blendshape_names)
        x = np.concatenate(
            [
                r.box,
                r.prob,
                r.aus / AU_MAX,
                r.pspi[:, None] / PSPI_MAX,
                r.unknown[:, None],
                r.blendshapes,
                r.va,
            ],
            axis=1,
        )
        unit = np.ones_like(x)  # one-euro's unit scale: boxes in face heights
        if len(x):
            ids, inv = np.unique(r.track, return_inverse=True)
            h = r.box[:, 3] - r.box[:, 1]
            med = np.array([np.median(h[inv == g]) for g in range(len(ids))])
            unit[:, :4] = np.where(np.isfinite(med) & (med > 0), med, 1.0)[inv, None]
        params = {"tau": tau, "window": window, "min_cutoff": min_cutoff, "beta": beta, "d_cutoff": d_cutoff}
        y = smooth_tracks(x / unit, r.time, r.track, method, max_gap=max_gap, **params) * unit
        prob = np.clip(y[:, 4 : 4 + c], 0.0, None)
        total = prob.sum(1, keepdims=True)
        prob = np.where(total > 0, prob / np.where(total > 0, total, 1.0), r.prob)
        out = Timeline(self.classes, self.frame_step, **self.groups.kwargs())
        j = 4 + c + k  # pspi, unknown score, blendshapes, then valence/arousal
        out._append(
            r._replace(
                box=y[:, :4],
                prob=prob,
                label=prob.argmax(1) if len(prob) else r.label,
                aus=y[:, 4 + c : j] * AU_MAX,
                pspi=y[:, j] * PSPI_MAX,
                unknown=np.clip(y[:, j + 1], 0.0, 1.0),
                blendshapes=y[:, j + 2 : j + 2 + b],
                va=y[:, j + 2 + b :] if self.affect else r.va,
            )
        )
        out.raw = self.raw if self.raw is not None else self
        return out

    @classmethod
    def read_csv(cls, path: str | os.PathLike[str], frame_step: float | None = None) -> Timeline:
        """A timeline written by :class:`TimelineWriter` or :meth:`write_csv` (classes and optional
        columns from its header; a smoothed timeline's ``raw_`` columns give back its ``raw``)."""
        path = Path(path)
        try:
            with open(path, newline="") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                rows = list(reader)
        except OSError as e:
            raise InputError(f"{path}: cannot read timeline ({e.strerror})") from None
        if header is None:
            raise InputError(f"{path}: not an openfer timeline (empty file)")
        try:
            classes, groups, has_raw = parse_header(header)
        except InputError as e:
            raise InputError(f"{path}: {e}") from None
        tl = cls(classes, frame_step, **groups.kwargs())
        raw = cls(classes, frame_step, **groups.kwargs()) if has_raw else None
        if rows:
            try:
                main, raw_rows = parse_rows(header, rows, classes, groups)
            except (ValueError, IndexError, KeyError):
                raise InputError(f"{path}: malformed timeline row") from None
            tl._append(main)
            if raw is not None and raw_rows is not None:
                raw._append(raw_rows)
        tl.raw = raw
        return tl

    def events(self, **options: Any) -> tuple[ExpressionEvent, ...]:
        """Every track's expression events, by track then time
        (:func:`openfer.video.events.timeline_dynamics` ``options``: ``smooth``, thresholds)."""
        from .events import timeline_dynamics

        return tuple(e for d in timeline_dynamics(self, **options) for e in d.events)

    def captions(self, **options: Any) -> tuple[str, ...]:
        """One caption per track (``("no faces",)`` without tracks; see :mod:`openfer.video.events`)."""
        from .events import NO_FACES, timeline_dynamics

        return tuple(d.caption for d in timeline_dynamics(self, **options)) or (NO_FACES,)

    def plot(
        self, out_dir: str | os.PathLike[str], tracks: Sequence[int] | None = None, **options: Any
    ) -> list[Path]:
        """One PNG per track in ``out_dir`` (:func:`openfer.video.plots.plot_timeline`; needs matplotlib)."""
        from .plots import plot_timeline

        return plot_timeline(self, out_dir, tracks, **options)


def require_pyarrow() -> None:
    """:class:`~openfer.errors.MissingDependencyError` naming the extra to install unless pandas and
    pyarrow (Parquet output) are importable."""
    require("pandas", "tables", "Parquet output")
    require("pyarrow", "tables", "Parquet output")


__all__ = [
    "AFFECT_COLUMNS",
    "BASELINE_COLUMN",
    "BASE_COLUMNS",
    "OPENSET_COLUMNS",
    "PSPI_COLUMN",
    "MAX_GAP",
    "OVERWRITE_HINT",
    "PART_FILE",
    "PROGRESS_FILE",
    "RAW_PREFIX",
    "SMOOTH_METHODS",
    "TIMELINE_FILE",
    "ColumnGroups",
    "Timeline",
    "TimelineWriter",
    "TrackSummary",
    "format_rows",
    "optional_columns",
    "parse_header",
    "require_pyarrow",
    "timeline_columns",
]
