"""Timeline columns and rows: the schema of ``timeline.csv`` and the conversion of analysed frames
to rows and CSV cells (pure numpy; :mod:`openfer.video.timeline` holds the timelines themselves).

One row per face per analysed frame, columns :func:`timeline_columns`: ``time, frame, track, x1, y1,
x2, y2, score, landmark_score, yaw, pitch, roll, label, label_score``, one probability column per
expression class, then the optional groups (:class:`ColumnGroups`) the run computes, in this order:

* ``valence, arousal``: derived valence/arousal (Analyzer option ``explain``);
* one column per action unit named by its AU (``AU1`` ... ``AU43``, intensities 0-5, option ``aus``);
* ``pspi``: the Prkachin-Solomon pain intensity from the AUs (0-16; with AUs);
* ``au_baseline``: 1 where the row's AUs and PSPI are measured against the track's own neutral
  baseline, 0 where against the population reference face (with AUs; ``VideoOptions.au_baseline``);
* ``unknown_score, open_label``: the open-set score (0-1) and the label or ``unknown`` (an expression
  model with an open-set head);
* one column per MediaPipe blendshape named as MediaPipe names it (``_neutral``, ``browDownLeft``
  ... ``noseSneerRight``, 0-1, 4 decimals; :data:`~openfer.core.blendshapes.BLENDSHAPE_NAMES`, the
  Analyzer's blendshape model). Last, so the columns before them keep their places.

The header says which groups are present (:func:`parse_header`), so timelines written before a
group existed still read. The groups are fixed when a timeline or writer is created
(:func:`optional_columns` of the Analyzer): a frame lacking one gets ``nan`` cells (``au_baseline``
0, ``open_label`` the label), never a shorter row. A smoothed timeline adds ``raw_<column>`` for
every column smoothing changes (:func:`smoothed_columns`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from ..components.au import AU_NAMES
from ..core.blendshapes import BLENDSHAPE_NAMES
from ..errors import InputError
from ..types import EXPRESSIONS, POSE_NAMES

if TYPE_CHECKING:  # pragma: no cover
    from ..pipeline import Analyzer
    from .analyzer import VideoFrame


class TimelineData(Protocol):
    """What events and plots read from a timeline (:class:`openfer.video.timeline.Timeline` is one), so
    that :mod:`~openfer.video.events` and :mod:`~openfer.video.plots` never import the timeline module:
    the dependency points one way (timeline -> events, plots)."""

    classes: tuple[str, ...]
    au_names: tuple[str, ...]
    raw: TimelineData | None

    @property
    def times(self) -> Any: ...

    @property
    def tracks(self) -> Any: ...

    @property
    def probabilities(self) -> Any: ...

    @property
    def aus(self) -> Any: ...

    @property
    def valence_arousal(self) -> Any: ...

    def track_ids(self) -> Any: ...

    def step(self) -> float: ...

    def smooth(self, method: str = ..., **options: Any) -> TimelineData: ...

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
PSPI_COLUMN = "pspi"
BASELINE_COLUMN = "au_baseline"
OPENSET_COLUMNS: tuple[str, ...] = ("unknown_score", "open_label")
RAW_PREFIX = "raw_"
_BOX = ("x1", "y1", "x2", "y2")


@dataclass(frozen=True)
class ColumnGroups:
    """Which optional column groups a timeline has (see the module doc), fixed for its lifetime.

    Each field is also a keyword of :func:`timeline_columns`, :func:`format_rows`,
    :class:`~openfer.video.timeline.Timeline`, :class:`~openfer.video.timeline.TimelineWriter` and
    :class:`~openfer.video.live.TimelineStream`: pass ``**groups.kwargs()``.
    """

    au_names: tuple[str, ...] = ()
    affect: bool = False
    pspi: bool = False
    au_baseline: bool = False
    openset: bool = False
    blendshape_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "au_names", tuple(self.au_names))
        object.__setattr__(self, "blendshape_names", tuple(self.blendshape_names))
        for name in ("affect", "pspi", "au_baseline", "openset"):
            object.__setattr__(self, name, bool(getattr(self, name)))

    @property
    def columns(self) -> tuple[str, ...]:
        """The group columns, in header order."""
        return (
            (AFFECT_COLUMNS if self.affect else ())
            + self.au_names
            + ((PSPI_COLUMN,) if self.pspi else ())
            + ((BASELINE_COLUMN,) if self.au_baseline else ())
            + (OPENSET_COLUMNS if self.openset else ())
            + self.blendshape_names
        )

    def kwargs(self) -> dict[str, Any]:
        """The fields as keyword arguments (``Timeline(classes, **groups.kwargs())``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def timeline_columns(
    classes: Sequence[str] = EXPRESSIONS,
    au_names: Sequence[str] = (),
    affect: bool = False,
    *,
    pspi: bool = False,
    au_baseline: bool = False,
    openset: bool = False,
    blendshape_names: Sequence[str] = (),
) -> tuple[str, ...]:
    """The columns of a timeline: base, probabilities, then the :class:`ColumnGroups` asked for."""
    groups = ColumnGroups(au_names, affect, pspi, au_baseline, openset, blendshape_names)
    return BASE_COLUMNS + tuple(classes) + groups.columns


def optional_columns(analyzer: Analyzer) -> ColumnGroups:
    """The column groups that frames of a :class:`~openfer.video.VideoAnalyzer` over ``analyzer``
    fill: AUs, ``pspi`` and ``au_baseline`` with option ``aus``; valence/arousal with ``explain``;
    ``unknown_score, open_label`` when its expression model has an open-set head; the blendshapes
    when it runs its blendshape model (``analyzer.blendshapes``)."""
    aus = bool(analyzer.options.aus)
    return ColumnGroups(
        au_names=AU_NAMES if aus else (),
        affect=bool(analyzer.options.explain),
        pspi=aus,
        au_baseline=aus,
        openset=analyzer.expression.openset is not None,
        blendshape_names=BLENDSHAPE_NAMES if analyzer.blendshapes is not None else (),
    )


_BLENDSHAPES = frozenset(BLENDSHAPE_NAMES)


def _is_au(name: str) -> bool:
    return name.startswith("AU")


def _is_blendshape(name: str) -> bool:
    # by the known names: they share no prefix (``_neutral``, ``browDownLeft``, ``jawOpen`` ...)
    return name in _BLENDSHAPES


def _is_group(name: str) -> bool:
    return (
        name in AFFECT_COLUMNS
        or _is_au(name)
        or name in (PSPI_COLUMN, BASELINE_COLUMN)
        or name in OPENSET_COLUMNS
        or _is_blendshape(name)
    )


def _take(tail: tuple[str, ...], names: tuple[str, ...]) -> tuple[bool, tuple[str, ...]]:
    """Whether ``tail`` starts with ``names``, and the rest."""
    return (True, tail[len(names) :]) if tail[: len(names)] == names else (False, tail)


def parse_header(header: Sequence[str]) -> tuple[tuple[str, ...], ColumnGroups, bool]:
    """``(classes, groups, raw)`` of a timeline header (:func:`timeline_columns`, then ``raw_``
    columns in a smoothed timeline); :class:`~openfer.errors.InputError` if it is not one."""
    header = tuple(header)
    if header[: len(BASE_COLUMNS)] != BASE_COLUMNS:
        raise InputError(f"not an openfer timeline (header {list(header)})")
    rest = header[len(BASE_COLUMNS) :]
    raw_at = next((i for i, c in enumerate(rest) if c.startswith(RAW_PREFIX)), len(rest))
    main = rest[:raw_at]
    k = next((i for i, c in enumerate(main) if _is_group(c)), len(main))
    classes, tail = main[:k], main[k:]
    affect, tail = _take(tail, AFFECT_COLUMNS)
    n_aus = next((i for i, c in enumerate(tail) if not _is_au(c)), len(tail))
    au_names, tail = tail[:n_aus], tail[n_aus:]
    pspi, tail = _take(tail, (PSPI_COLUMN,))
    au_baseline, tail = _take(tail, (BASELINE_COLUMN,))
    openset, tail = _take(tail, OPENSET_COLUMNS)
    n_bs = next((i for i, c in enumerate(tail) if not _is_blendshape(c)), len(tail))
    blendshape_names, tail = tail[:n_bs], tail[n_bs:]
    if not classes or tail or len(set(main)) != len(main):
        raise InputError(f"not an openfer timeline (columns {list(rest)})")
    groups = ColumnGroups(au_names, affect, pspi, au_baseline, openset, blendshape_names)
    raw = raw_at < len(rest)
    if raw and rest[raw_at:] != tuple(RAW_PREFIX + c for c in smoothed_columns(classes, groups)):
        raise InputError(f"not an openfer timeline (raw columns {list(rest[raw_at:])})")
    return classes, groups, raw


def smoothed_columns(classes: Sequence[str], groups: ColumnGroups) -> tuple[str, ...]:
    """The columns :meth:`~openfer.video.timeline.Timeline.smooth` changes (and keeps raw as
    ``raw_<column>``): box, label, probabilities and the groups but ``au_baseline`` and
    ``open_label``."""
    kept = (BASELINE_COLUMN, "open_label")
    return (
        _BOX + ("label", "label_score") + tuple(classes) + tuple(c for c in groups.columns if c not in kept)
    )


class Rows(NamedTuple):
    """A timeline's columns as arrays (float64 unless said otherwise); internal to
    :mod:`openfer.video`, like :func:`frame_rows`, :func:`row_table`, :func:`csv_cells` and
    :func:`parse_rows`."""

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
    pspi: np.ndarray  # (N,), NaN where missing
    au_baseline: np.ndarray  # (N,) int64, 1: AUs against the track's own baseline
    unknown: np.ndarray  # (N,) open-set score, NaN where missing
    open_label: np.ndarray  # (N,) object (str): the label, or "unknown"
    blendshapes: np.ndarray  # (N, B) 0-1, NaN where missing

    @classmethod
    def empty(cls, classes: int, aus: int, blendshapes: int = 0) -> Rows:
        f = np.zeros
        return cls(
            f(0), f(0, np.int64), f(0, np.int64), f((0, 4)), f(0), f(0), f((0, 3)), f((0, classes)),
            f(0, np.int64), f((0, aus)), f((0, 2)), f(0), f(0, np.int64), f(0), f(0, dtype=object),
            f((0, blendshapes)),
        )  # fmt: skip


def _group(values, names, want, n: int, what: str, frame_index) -> np.ndarray:
    """A frame's ``(n, len(want))`` columns of one named group: its values when it has them under
    the timeline's names, NaN when it lacks them (an error when its names differ)."""
    if not want or values is None:
        return np.full((n, len(want)), np.nan)
    if tuple(names) != tuple(want):
        raise InputError(f"frame {frame_index}: {what} {names} differ from the timeline's {want}")
    return values


def frame_rows(frame: VideoFrame, groups: ColumnGroups) -> Rows:
    """One frame's rows with the column ``groups`` (NaN where the frame lacks a group; AUs or
    blendshapes it has are dropped when ``groups.au_names`` / ``groups.blendshape_names`` is empty)."""
    f = frame.faces
    n = len(f)
    aus = _group(f.aus, f.au_names, groups.au_names, n, "AUs", frame.frame_index)
    bs = _group(f.blendshapes, f.blendshape_names, groups.blendshape_names, n, "blendshapes", frame.frame_index)
    va = f.valence_arousal if groups.affect and f.valence_arousal is not None else np.full((n, 2), np.nan)
    f64 = functools.partial(np.asarray, dtype=np.float64)
    probs = f64(f.expressions)
    nan = np.full(n, np.nan)
    based = frame.au_baseline
    return Rows(
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
        f64(f.pspi) if groups.pspi and f.pspi is not None else nan,
        based.astype(np.int64) if groups.au_baseline and based is not None else np.zeros(n, np.int64),
        f64(f.unknown_scores) if groups.openset and f.unknown_scores is not None else nan,
        np.array(f.open_labels if groups.openset else f.labels, dtype=object).reshape(n),
        f64(bs),
    )


Column = tuple[str, np.ndarray, int | None]  # name, values, decimals in CSV (None: written as is)


def row_table(
    r: Rows, classes: tuple[str, ...], groups: ColumnGroups, raw: Rows | None = None
) -> list[Column]:
    """The columns of rows ``r`` in :func:`timeline_columns` order, then ``raw_`` columns of ``raw``."""
    n = len(r.time)
    labels = np.array(classes, dtype=object)[r.label] if n else np.zeros(0, dtype=object)
    cols: list[Column] = [("time", r.time, 6), ("frame", r.frame, None), ("track", r.track, None)]
    cols += [(c, r.box[:, k], 2) for k, c in enumerate(_BOX)]
    cols += [("score", r.score, 4), ("landmark_score", r.landmark_score, 4)]
    cols += [(c, r.pose[:, k], 2) for k, c in enumerate(POSE_NAMES)]
    cols += [("label", labels, None), ("label_score", r.prob[np.arange(n), r.label], 6)]
    cols += [(c, r.prob[:, k], 6) for k, c in enumerate(classes)]
    if groups.affect:
        cols += [(c, r.va[:, k], 6) for k, c in enumerate(AFFECT_COLUMNS)]
    cols += [(c, r.aus[:, k], 4) for k, c in enumerate(groups.au_names)]
    if groups.pspi:
        cols += [(PSPI_COLUMN, r.pspi, 4)]
    if groups.au_baseline:
        cols += [(BASELINE_COLUMN, r.au_baseline, None)]
    if groups.openset:
        cols += [("unknown_score", r.unknown, 6), ("open_label", r.open_label, None)]
    cols += [(c, r.blendshapes[:, k], 4) for k, c in enumerate(groups.blendshape_names)]
    if raw is not None:
        smoothed = set(smoothed_columns(classes, groups))
        cols += [(RAW_PREFIX + c, a, d) for c, a, d in row_table(raw, classes, groups) if c in smoothed]
    return cols


def _fmt(v: float, digits: int) -> str:
    return "nan" if not math.isfinite(v) else f"{v:.{digits}f}"


def csv_cells(cols: list[Column]) -> list[list[str]]:
    """CSV cells, fixed precision per column (so output is reproducible)."""
    text = [
        [str(v) for v in a.tolist()] if d is None else [_fmt(v, d) for v in a.tolist()] for _, a, d in cols
    ]
    return [list(row) for row in zip(*text, strict=True)]


def format_rows(
    frame: VideoFrame,
    au_names: Sequence[str] = (),
    affect: bool = False,
    *,
    pspi: bool = False,
    au_baseline: bool = False,
    openset: bool = False,
    blendshape_names: Sequence[str] = (),
) -> list[list[str]]:
    """The CSV cells of one frame's rows, columns :func:`timeline_columns` of the frame's classes and
    these groups (fixed precision, so output is reproducible)."""
    groups = ColumnGroups(au_names, affect, pspi, au_baseline, openset, blendshape_names)
    return csv_cells(row_table(frame_rows(frame, groups), frame.faces.classes, groups))


def parse_rows(
    header: Sequence[str], rows: list[list[str]], classes: tuple[str, ...], groups: ColumnGroups
) -> tuple[Rows, Rows | None]:
    """The rows of a timeline CSV with ``header`` (:func:`parse_header`: ``classes``, ``groups``),
    and the raw rows of a smoothed one (``None`` otherwise). ``ValueError``/``KeyError``/
    ``IndexError`` on malformed cells."""
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

    def one(name: str, prefix: str = "") -> np.ndarray:
        return num((name,), prefix)[:, 0]

    nan = np.full(n, np.nan)

    def group(prefix: str) -> dict[str, np.ndarray]:
        return {
            "box": num(_BOX, prefix),
            "prob": num(classes, prefix),
            "label": np.array([label_of[v] for v in text[index[prefix + "label"]]], dtype=np.int64),
            "aus": num(groups.au_names, prefix),
            "va": num(AFFECT_COLUMNS, prefix) if groups.affect else np.full((n, 2), np.nan),
            "pspi": one(PSPI_COLUMN, prefix) if groups.pspi else nan,
            "unknown": one("unknown_score", prefix) if groups.openset else nan,
            "blendshapes": num(groups.blendshape_names, prefix),
        }

    base = num(("time", "frame", "track", "score", "landmark_score", *POSE_NAMES))
    main_group = group("")
    if groups.openset:
        open_label = np.array(text[index["open_label"]], dtype=object)
    else:
        open_label = np.array(classes, dtype=object)[main_group["label"]]
    main = Rows(
        time=base[:, 0],
        frame=base[:, 1].astype(np.int64),
        track=base[:, 2].astype(np.int64),
        score=base[:, 3],
        landmark_score=base[:, 4],
        pose=base[:, 5:8],
        au_baseline=one(BASELINE_COLUMN).astype(np.int64) if groups.au_baseline else np.zeros(n, np.int64),
        open_label=open_label,
        **main_group,
    )
    raw = main._replace(**group(RAW_PREFIX)) if RAW_PREFIX + "label" in index else None
    return main, raw


__all__ = [
    "AFFECT_COLUMNS",
    "BASELINE_COLUMN",
    "BASE_COLUMNS",
    "OPENSET_COLUMNS",
    "PSPI_COLUMN",
    "RAW_PREFIX",
    "ColumnGroups",
    "format_rows",
    "optional_columns",
    "parse_header",
    "smoothed_columns",
    "timeline_columns",
]
