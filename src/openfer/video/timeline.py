"""Per-face, per-frame rows of a video analysis: in memory (:class:`Timeline`) and streamed to disk
(:class:`TimelineWriter`).

One row per face per analysed frame, columns :func:`timeline_columns`: ``time, frame, track, x1, y1,
x2, y2, score, landmark_score, yaw, pitch, roll, label, label_score``, one probability column per
expression class, then the optional groups the run computes: ``valence, arousal`` (derived
valence/arousal, Analyzer option ``explain``) and one column per action unit named by its AU
(``AU1`` ... ``AU43``, intensities 0-5, option ``aus``). The header says which groups are present,
so :meth:`Timeline.read_csv` reads any of them (and timelines written before the groups existed).
A video without faces has a header and no rows. The groups are fixed when the writer (or
timeline) is created (:func:`optional_columns` of the Analyzer options): a frame lacking one gets
``nan`` cells, never a shorter row.

:class:`TimelineWriter` streams rows into ``DIR/part-00001.csv, part-00002.csv, ...`` (each written to a
temporary file, then renamed), then records the last completed frame and the run's checkpoint in
``DIR/progress.json`` (renamed likewise: the commit point). A killed run keeps every committed part;
resuming drops uncommitted parts and continues after the last completed frame. :meth:`finish` merges
the parts into ``DIR/timeline.csv``, byte-identical whether or not the run was interrupted.

:meth:`Timeline.smooth` gives a smoothed copy (``ema``, centered ``window`` mean or ``one_euro``, see
:mod:`openfer.core.filters`) that keeps the raw values: ``.raw``, and ``raw_<column>`` columns in
its DataFrame, records and CSV.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..components.au import AU_NAMES
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
from ..io.tables import atomic_open, atomic_path, write_json
from ..types import EXPRESSIONS, POSE_NAMES

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..pipeline import AnalyzerOptions
    from .analyzer import VideoAnalyzer, VideoFrame
    from .events import ExpressionEvent

BASE_COLUMNS: tuple[str, ...] = (
    "time",
    "frame",
    "track",
    "x1",
    "y1",
    "x2",
    "y2",
    "score",
    "landmark_score",
    "yaw",
    "pitch",
    "roll",
    "label",
    "label_score",
)
AFFECT_COLUMNS: tuple[str, ...] = ("valence", "arousal")
RAW_PREFIX = "raw_"
MAX_GAP = 1.0  # s: a track seen again after a longer pause restarts its smoothing
AU_MAX = 5.0  # AU intensity scale (one-euro filters AUs / AU_MAX, on a unit scale)
TIMELINE_FILE = "timeline.csv"
PROGRESS_FILE = "progress.json"
_PART = re.compile(r"^part-(\d{5,})\.csv$")
_FORMAT = 1
_BOX = ("x1", "y1", "x2", "y2")


def timeline_columns(
    classes: Sequence[str] = EXPRESSIONS, au_names: Sequence[str] = (), affect: bool = False
) -> tuple[str, ...]:
    """The columns of a timeline: base, probabilities, ``valence, arousal`` (``affect``), AUs."""
    return BASE_COLUMNS + tuple(classes) + (AFFECT_COLUMNS if affect else ()) + tuple(au_names)


def optional_columns(options: AnalyzerOptions) -> tuple[tuple[str, ...], bool]:
    """``(au_names, affect)``: the AU columns and whether valence/arousal columns are filled by an
    :class:`~openfer.pipeline.Analyzer` with these options (``aus``; ``explain``)."""
    return (AU_NAMES if options.aus else ()), bool(options.explain)


def _is_au(name: str) -> bool:
    return name.startswith("AU")


def parse_header(header: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...], bool, bool]:
    """``(classes, au_names, affect, raw)`` of a timeline header (:func:`timeline_columns`, then
    ``raw_`` columns in a smoothed timeline); :class:`~openfer.errors.InputError` if it is not one."""
    header = tuple(header)
    if header[: len(BASE_COLUMNS)] != BASE_COLUMNS:
        raise InputError(f"not an openfer timeline (header {list(header)})")
    rest = header[len(BASE_COLUMNS) :]
    raw_at = next((i for i, c in enumerate(rest) if c.startswith(RAW_PREFIX)), len(rest))
    main = rest[:raw_at]
    k = next((i for i, c in enumerate(main) if c in AFFECT_COLUMNS or _is_au(c)), len(main))
    classes, tail = main[:k], main[k:]
    affect = tail[:2] == AFFECT_COLUMNS
    au_names = tail[2:] if affect else tail
    if not classes or not all(_is_au(c) for c in au_names) or len(set(main)) != len(main):
        raise InputError(f"not an openfer timeline (columns {list(rest)})")
    raw = raw_at < len(rest)
    if raw and rest[raw_at:] != tuple(RAW_PREFIX + c for c in _smoothed_columns(classes, au_names, affect)):
        raise InputError(f"not an openfer timeline (raw columns {list(rest[raw_at:])})")
    return classes, au_names, affect, raw


def _smoothed_columns(classes: Sequence[str], au_names: Sequence[str], affect: bool) -> tuple[str, ...]:
    """The columns :meth:`Timeline.smooth` changes (and keeps raw as ``raw_<column>``)."""
    return (
        _BOX
        + ("label", "label_score")
        + tuple(classes)
        + (AFFECT_COLUMNS if affect else ())
        + tuple(au_names)
    )


class _Rows(NamedTuple):
    """A timeline's columns as arrays (float64 unless said otherwise)."""

    time: np.ndarray  # (N,)
    frame: np.ndarray  # (N,) int64
    track: np.ndarray  # (N,) int64
    box: np.ndarray  # (N, 4)
    score: np.ndarray  # (N,)
    landmark_score: np.ndarray  # (N,)
    pose: np.ndarray  # (N, 3)
    prob: np.ndarray  # (N, C)
    label: np.ndarray  # (N,) int64, index into classes
    aus: np.ndarray  # (N, K), NaN where missing
    va: np.ndarray  # (N, 2), NaN where missing

    @classmethod
    def empty(cls, classes: int, aus: int) -> _Rows:
        f = np.zeros
        return cls(
            f(0), f(0, np.int64), f(0, np.int64), f((0, 4)), f(0), f(0), f((0, 3)), f((0, classes)),
            f(0, np.int64), f((0, aus)), f((0, 2)),
        )  # fmt: skip


def _frame_rows(frame: VideoFrame, au_names: tuple[str, ...], affect: bool) -> _Rows:
    """One frame's rows with the AU columns ``au_names`` and valence/arousal if ``affect`` (NaN
    where the frame lacks them; AUs it has are dropped when ``au_names`` is empty)."""
    f = frame.faces
    n = len(f)
    aus = np.full((n, len(au_names)), np.nan)
    if au_names and f.aus is not None:
        if f.au_names != au_names:
            raise InputError(
                f"frame {frame.frame_index}: AUs {f.au_names} differ from the timeline's {au_names}"
            )
        aus = f.aus
    va = f.valence_arousal if affect and f.valence_arousal is not None else np.full((n, 2), np.nan)
    f64 = functools.partial(np.asarray, dtype=np.float64)
    probs = f64(f.expressions)
    return _Rows(
        np.full(n, float(frame.timestamp)),
        np.full(n, frame.frame_index, np.int64),
        frame.track_ids.astype(np.int64),
        f64(f.boxes),
        f64(f.scores),
        f64(f.landmark_scores),
        f64(f.poses),
        probs,
        probs.argmax(1) if n else np.zeros(0, np.int64),
        f64(aus),
        f64(va),
    )


_Column = tuple[str, np.ndarray, int | None]  # name, values, decimals in CSV (None: written as is)


def _table(
    r: _Rows, classes: tuple[str, ...], au_names: tuple[str, ...], affect: bool, raw: _Rows | None = None
) -> list[_Column]:
    """The columns of rows ``r`` in :func:`timeline_columns` order, then ``raw_`` columns of ``raw``."""
    n = len(r.time)
    labels = np.array(classes, dtype=object)[r.label] if n else np.zeros(0, dtype=object)
    cols: list[_Column] = [("time", r.time, 6), ("frame", r.frame, None), ("track", r.track, None)]
    cols += [(c, r.box[:, k], 2) for k, c in enumerate(_BOX)]
    cols += [("score", r.score, 4), ("landmark_score", r.landmark_score, 4)]
    cols += [(c, r.pose[:, k], 2) for k, c in enumerate(POSE_NAMES)]
    cols += [("label", labels, None), ("label_score", r.prob[np.arange(n), r.label], 6)]
    cols += [(c, r.prob[:, k], 6) for k, c in enumerate(classes)]
    if affect:
        cols += [(c, r.va[:, k], 6) for k, c in enumerate(AFFECT_COLUMNS)]
    cols += [(c, r.aus[:, k], 4) for k, c in enumerate(au_names)]
    if raw is not None:
        smoothed = set(_smoothed_columns(classes, au_names, affect))
        cols += [
            (RAW_PREFIX + c, a, d) for c, a, d in _table(raw, classes, au_names, affect) if c in smoothed
        ]
    return cols


def _fmt(v: float, digits: int) -> str:
    return "nan" if not math.isfinite(v) else f"{v:.{digits}f}"


def _csv_rows(cols: list[_Column]) -> list[list[str]]:
    """CSV cells, fixed precision per column (so output is reproducible)."""
    text = [
        [str(v) for v in a.tolist()] if d is None else [_fmt(v, d) for v in a.tolist()] for _, a, d in cols
    ]
    return [list(row) for row in zip(*text, strict=True)]


def format_rows(frame: VideoFrame, au_names: Sequence[str] = (), affect: bool = False) -> list[list[str]]:
    """The CSV cells of one frame's rows, columns ``timeline_columns(classes, au_names, affect)``
    (fixed precision, so output is reproducible)."""
    au_names = tuple(au_names)
    return _csv_rows(_table(_frame_rows(frame, au_names, affect), frame.faces.classes, au_names, affect))


@dataclass(frozen=True)
class TrackSummary:
    """One track over a video. ``duration`` is ``frames`` times the analysed frame step (so gaps
    while the face was away do not count); ``shares`` is the share of its frames per top label.

    With valence/arousal: their means, and their peaks (the value largest in magnitude) with the
    peak's time; with AUs, ``mean_aus`` per AU. ``None`` (``{}`` for AUs) when the timeline lacks
    them (or all the track's values are missing).
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "track": self.track,
            "frames": self.frames,
            "first_time": self.first_time,
            "last_time": self.last_time,
            "duration": self.duration,
            "dominant": self.dominant,
            "shares": dict(self.shares),
            "mean_probabilities": dict(self.mean_probabilities),
            "mean_valence": self.mean_valence,
            "mean_arousal": self.mean_arousal,
            "peak_valence": self.peak_valence,
            "peak_valence_time": self.peak_valence_time,
            "peak_arousal": self.peak_arousal,
            "peak_arousal_time": self.peak_arousal_time,
            "mean_aus": dict(self.mean_aus),
        }


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
    between the distinct frame times in the timeline. ``au_names`` / ``affect``: the optional AU and
    valence/arousal columns (see the module doc; :meth:`for_video` takes them from a
    :class:`~openfer.video.VideoAnalyzer`). ``raw``: for a smoothed timeline, the timeline it was
    smoothed from (``None`` otherwise).
    """

    def __init__(
        self,
        classes: Sequence[str] = EXPRESSIONS,
        frame_step: float | None = None,
        *,
        au_names: Sequence[str] = (),
        affect: bool = False,
    ) -> None:
        self.classes = tuple(classes)
        self.frame_step = frame_step
        self.au_names = tuple(au_names)
        self.affect = bool(affect)
        self.raw: Timeline | None = None
        self._chunks: list[_Rows] = []
        self._cache: _Rows | None = None

    @classmethod
    def for_video(cls, video: VideoAnalyzer, frame_step: float | None = None) -> Timeline:
        """An empty timeline with the columns ``video``'s frames fill."""
        au_names, affect = optional_columns(video.analyzer.options)
        return cls(video.classes, frame_step, au_names=au_names, affect=affect)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns of :meth:`to_dataframe` (and of :meth:`write_csv`)."""
        cols = timeline_columns(self.classes, self.au_names, self.affect)
        if self.raw is not None:
            cols += tuple(RAW_PREFIX + c for c in _smoothed_columns(self.classes, self.au_names, self.affect))
        return cols

    def add(self, frame: VideoFrame) -> None:
        f = frame.faces
        if tuple(f.classes) != self.classes:
            raise InputError(f"frame classes {f.classes} differ from the timeline's {self.classes}")
        if len(f):
            self._append(_frame_rows(frame, self.au_names, self.affect))

    def _append(self, rows: _Rows) -> None:
        self._chunks.append(rows)
        self._cache = None

    def _rows(self) -> _Rows:
        if self._cache is None:
            if self._chunks:
                cols = [np.concatenate(c) for c in zip(*self._chunks, strict=True)]
            else:
                cols = list(_Rows.empty(len(self.classes), len(self.au_names)))
            for a in cols:
                a.setflags(write=False)
            self._cache = _Rows(*cols)
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
    def valence_arousal(self) -> np.ndarray:
        """``(N, 2)`` valence and arousal; NaN without those columns (or where a frame lacked them)."""
        return self._rows().va

    def track_ids(self) -> np.ndarray:
        """The distinct track ids, sorted."""
        return np.unique(self.tracks)

    def _table(self) -> list[_Column]:
        raw = self.raw._rows() if self.raw is not None else None
        return _table(self._rows(), self.classes, self.au_names, self.affect, raw)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per row, keys :attr:`columns`."""
        cols = self._table()
        names = [c for c, _, _ in cols]
        return [
            dict(zip(names, row, strict=True)) for row in zip(*(a.tolist() for _, a, _ in cols), strict=True)
        ]

    def to_dataframe(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame with :attr:`columns` (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise InputError("pandas is needed for DataFrames: pip install 'openfer[tables]'") from None
        cols = self._table()
        return pd.DataFrame({c: np.asarray(a) for c, a, _ in cols}, columns=[c for c, _, _ in cols])

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the rows (:attr:`columns`, fixed precision as in ``timeline.csv``) atomically."""
        path = Path(path)
        cols = self._table()
        _atomic_write_text(path, _csv_text(_csv_rows(cols), [c for c, _, _ in cols]))
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
        """A new timeline with boxes, probabilities, valence/arousal and AUs smoothed over time, per
        track in time order; the other columns (scores, pose) as they are. Its ``raw`` is the
        timeline the values came from (for a smoothed timeline: its own ``raw``), and its
        DataFrame, records and CSV add ``raw_<column>`` for every smoothed column.

        ``method``: ``"ema"`` (exponential, time constant ``tau`` s: a step is half followed after
        ~0.2 s at ``tau=0.3``), ``"window"`` (centered mean over ``window`` s: no lag, but needs the
        future) or ``"one_euro"`` (adaptive: ``min_cutoff`` Hz at rest, rising by ``beta`` per unit
        per second; little lag on fast changes). See :mod:`openfer.core.filters` for measured lag and
        noise reduction. A pause longer than ``max_gap`` s (the face was away) restarts the filter.

        Probabilities are renormalised to sum to 1 and the label is recomputed from them. The
        one-euro filter sees every quantity on a unit scale: probabilities and valence/arousal as
        they are, AU intensities / 5, box coordinates in face heights (the track's median box height).
        """
        r = self._rows()
        c, k = len(self.classes), len(self.au_names)
        x = np.concatenate([r.box, r.prob, r.aus / AU_MAX, r.va], axis=1)
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
        out = Timeline(self.classes, self.frame_step, au_names=self.au_names, affect=self.affect)
        out._append(
            r._replace(
                box=y[:, :4],
                prob=prob,
                label=prob.argmax(1) if len(prob) else r.label,
                aus=y[:, 4 + c : 4 + c + k] * AU_MAX,
                va=y[:, 4 + c + k :] if self.affect else r.va,
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
            classes, au_names, affect, has_raw = parse_header(header)
        except InputError as e:
            raise InputError(f"{path}: {e}") from None
        tl = cls(classes, frame_step, au_names=au_names, affect=affect)
        raw = cls(classes, frame_step, au_names=au_names, affect=affect) if has_raw else None
        if rows:
            try:
                main, raw_rows = _parse_rows(header, rows, classes, au_names, affect)
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


def _parse_rows(
    header: Sequence[str],
    rows: list[list[str]],
    classes: tuple[str, ...],
    au_names: tuple[str, ...],
    affect: bool,
) -> tuple[_Rows, _Rows | None]:
    if any(len(r) != len(header) for r in rows):
        raise ValueError("row length")
    index = {c: j for j, c in enumerate(header)}
    text = list(zip(*rows, strict=True))
    label_of = {c: i for i, c in enumerate(classes)}
    n = len(rows)

    def num(names: Sequence[str], prefix: str = "") -> np.ndarray:
        if not names:
            return np.zeros((n, 0))
        return np.array([text[index[prefix + c]] for c in names], dtype=np.float64).T

    def group(prefix: str) -> dict[str, np.ndarray]:
        return {
            "box": num(_BOX, prefix),
            "prob": num(classes, prefix),
            "label": np.array([label_of[v] for v in text[index[prefix + "label"]]], dtype=np.int64),
            "aus": num(au_names, prefix),
            "va": num(AFFECT_COLUMNS, prefix) if affect else np.full((n, 2), np.nan),
        }

    base = num(("time", "frame", "track", "score", "landmark_score", *POSE_NAMES))
    main = _Rows(
        time=base[:, 0],
        frame=base[:, 1].astype(np.int64),
        track=base[:, 2].astype(np.int64),
        score=base[:, 3],
        landmark_score=base[:, 4],
        pose=base[:, 5:8],
        **group(""),
    )
    raw = main._replace(**group(RAW_PREFIX)) if RAW_PREFIX + "label" in index else None
    return main, raw


def require_pyarrow() -> None:
    """:class:`~openfer.errors.InputError` naming the extra to install unless pandas and pyarrow
    (Parquet output) are importable."""
    try:
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError:
        raise InputError("pyarrow is needed for Parquet output: pip install 'openfer[tables]'") from None


def _atomic_write_text(path: Path, text: str) -> None:
    with atomic_open(path, newline="") as fh:
        fh.write(text)


def _csv_text(rows: list[list[str]], header: Sequence[str] | None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header is not None:
        w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


class TimelineWriter:
    """Streams timeline rows into an output folder in atomically committed chunks (see module doc).

    Args:
        out_dir: the run's folder (created).
        classes: expression classes (the probability columns).
        meta: what identifies the run (source, options, models); a resume must match it.
        au_names, affect: the optional AU and valence/arousal columns (:func:`optional_columns`);
            fixed for the run, a resume must have the same.
        resume: continue the unfinished run in ``out_dir``. Without it, an unfinished run there is an
            error (so it is never overwritten by mistake); a finished one is replaced.
        chunk_frames, chunk_seconds: commit after this many frames or seconds, whichever comes first.

    After construction, ``complete`` tells that ``out_dir`` already holds this finished run (resume),
    ``resume_state`` is the checkpoint saved with the last commit (``None`` for a fresh run).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        classes: Sequence[str],
        meta: dict[str, Any],
        *,
        resume: bool = False,
        chunk_frames: int = 100,
        chunk_seconds: float = 30.0,
        au_names: Sequence[str] = (),
        affect: bool = False,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.classes = tuple(classes)
        self.au_names, self.affect = tuple(au_names), bool(affect)
        self.meta = json.loads(json.dumps(meta))  # as it will read back
        self.chunk_frames, self.chunk_seconds = max(int(chunk_frames), 1), float(chunk_seconds)
        self.header = timeline_columns(self.classes, self.au_names, self.affect)
        self.complete = False
        self.resume_state: Any = None
        self.parts = 0
        self.rows = 0
        self.frames_done = 0
        self.last_frame: int | None = None
        self._pending: list[list[str]] = []
        self._pending_frames = 0
        self._state: Callable[[], Any] | None = None
        self._last_commit = time.monotonic()
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"{self.out_dir}: cannot create output folder ({e.strerror})") from None
        prev = self._read_progress()
        if prev is not None and resume:
            if prev.get("meta") != self.meta:
                diff = sorted(
                    k
                    for k in set(self.meta) | set(prev.get("meta", {}))
                    if self.meta.get(k) != prev.get("meta", {}).get(k)
                )
                raise InputError(
                    f"{self.out_dir}: holds a run with other settings ({', '.join(diff)}); "
                    f"resume with the same input and options, or use another output folder"
                )
            if prev.get("columns", list(self.header)) != list(self.header):
                raise InputError(
                    f"{self.out_dir}: holds a run with other columns ({', '.join(prev['columns'])}); "
                    f"resume with the same options, or use another output folder"
                )
            self.complete = bool(prev.get("complete"))
            self.parts, self.rows = int(prev["parts"]), int(prev["rows"])
            self.frames_done, self.last_frame = int(prev["frames_done"]), prev["last_frame"]
            self.resume_state = prev.get("state")
            if not self.complete:
                for n, p in self._part_files():
                    if n > self.parts:  # written, never committed
                        p.unlink()
            return
        if prev is not None and not prev.get("complete"):
            raise InputError(
                f"{self.out_dir}: holds an unfinished run ({prev.get('frames_done', 0)} frames done); "
                f"pass --resume (resume=True) to continue it, or use another output folder"
            )
        for _, p in self._part_files():
            p.unlink()
        (self.out_dir / TIMELINE_FILE).unlink(missing_ok=True)
        self._write_progress(None)

    def _read_progress(self) -> dict[str, Any] | None:
        path = self.out_dir / PROGRESS_FILE
        if not path.exists():
            return None
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: unreadable progress file ({e})") from None
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise InputError(f"{path}: not an openfer progress file (format {_FORMAT})")
        return d

    def _part_files(self) -> list[tuple[int, Path]]:
        found = []
        for p in self.out_dir.iterdir():
            m = _PART.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def _write_progress(self, state: Any) -> None:
        write_json(
            {
                "format": _FORMAT,
                "complete": self.complete,
                "parts": self.parts,
                "rows": self.rows,
                "frames_done": self.frames_done,
                "last_frame": self.last_frame,
                "meta": self.meta,
                "columns": list(self.header),
                "state": state,
            },
            self.out_dir / PROGRESS_FILE,
        )

    def append(self, frame: VideoFrame, state: Callable[[], Any]) -> None:
        """Queue one analysed frame's rows; ``state()`` (called at commit) is the run's JSON-able
        checkpoint after this frame. Commits when the chunk is full or old enough."""
        if self.complete:
            raise InputError(f"{self.out_dir}: run already finished")
        if self.last_frame is not None and frame.frame_index <= self.last_frame:
            raise InputError(
                f"frame {frame.frame_index} is not after the last written frame {self.last_frame}"
            )
        if tuple(frame.faces.classes) != self.classes:
            raise InputError(f"frame classes {frame.faces.classes} differ from the timeline's {self.classes}")
        self._pending.extend(format_rows(frame, self.au_names, self.affect))
        self._pending_frames += 1
        self.frames_done += 1
        self.last_frame = frame.frame_index
        self._state = state
        if (
            self._pending_frames >= self.chunk_frames
            or time.monotonic() - self._last_commit >= self.chunk_seconds
        ):
            self.commit()

    def commit(self) -> None:
        """Write the queued rows as the next part (if any) and record progress."""
        if self._pending_frames == 0:
            return
        if self._pending:
            self.parts += 1
            _atomic_write_text(
                self.out_dir / f"part-{self.parts:05d}.csv", _csv_text(self._pending, self.header)
            )
            self.rows += len(self._pending)
        self._write_progress(self._state() if self._state is not None else None)
        self._pending, self._pending_frames = [], 0
        self._last_commit = time.monotonic()

    def finish(self) -> Path:
        """Commit, merge the parts into ``timeline.csv`` (header only without rows), mark the run
        complete and remove the parts. Returns the timeline's path."""
        out = self.out_dir / TIMELINE_FILE
        if self.complete:
            return out
        self.commit()
        head = _csv_text([], self.header)
        chunks = [head]
        for n in range(1, self.parts + 1):
            p = self.out_dir / f"part-{n:05d}.csv"
            try:
                text = p.read_text()
            except OSError as e:
                raise InputError(
                    f"{p}: part of the timeline is missing ({e.strerror}); the run cannot be merged"
                ) from None
            first, _, body = text.partition("\n")
            if first + "\n" != head:
                raise InputError(f"{p}: part of the timeline has other columns; the run cannot be merged")
            chunks.append(body)
        _atomic_write_text(out, "".join(chunks))
        self.complete = True
        self._write_progress(None)
        for _, p in self._part_files():
            p.unlink()
        return out


__all__ = [
    "AFFECT_COLUMNS",
    "BASE_COLUMNS",
    "MAX_GAP",
    "PROGRESS_FILE",
    "RAW_PREFIX",
    "SMOOTH_METHODS",
    "TIMELINE_FILE",
    "Timeline",
    "TimelineWriter",
    "TrackSummary",
    "format_rows",
    "optional_columns",
    "parse_header",
    "require_pyarrow",
    "timeline_columns",
]
