"""Expression events, a clip-level dynamic label and a one-line caption per track (pure numpy).

**Events** (:func:`detect_events`), on one track's rows in time order. At each row the candidate is
the top *non-neutral* class. An event of class ``c`` starts at a row where the candidate ``c`` has
probability ``>= on``; it continues while ``c`` stays the top non-neutral class with probability
``>= off`` (hysteresis: ``off < on``, so a probability hovering near ``on`` does not flicker), and
ends at the first row where it does not, or at a gap in the track's times longer than 1.5 frame
steps (the face was away). When another class takes over at ``>= on``, its event starts at that row.
Consecutive events of the same class separated by less than ``merge_gap`` seconds are merged;
events shorter than ``min_duration`` are then dropped.

Times: ``onset`` is the time of the event's first row, ``offset`` the time of its last row plus one
frame step (when the next row would be, had the expression continued), ``duration = offset - onset``
(all rounded to the microsecond, the timeline's precision);
``apex`` is the time of the highest probability of the class in the event and ``peak`` that
probability. ``aus`` holds, when AU intensities are given, the mean intensity (0-5) during the event
of each of the class's EMFACS prototype AUs (:data:`openfer.core.au.PROTOTYPE_AUS`) that was
measured; AU names are reported as in :data:`openfer.core.au.AU_NAMES` (``"AU6"``; ``"AU06"`` is
accepted as input).

**Dynamic label** (:func:`dynamic_label`): the non-neutral class whose events have the largest sum of
``duration * peak`` (ties: the class whose first event comes first); ``"neutral"`` when there is no
event.

**Caption** (:func:`caption`): one line per track, built only from the measured events:

- ``lead``: what the face showed before the first event (or throughout, without events) when that
  stretch lasts at least ``BRIEF`` seconds: the class with the highest mean probability over those
  rows (``"neutral"``; another class reads "weakly sad" and so on: its mean is below ``on``; a
  non-neutral class with a higher mean is not described).
- each event: ``"a smile"`` for happiness, the class's noun otherwise (``"surprise"``, ``"anger"``...);
  ``"brief"`` when it lasted less than ``BRIEF`` (0.5 s), then given ``at <onset> s``, otherwise
  ``from <onset> s to <offset> s``; with AUs, ``"broad"`` (smile) / ``"strong"`` (other classes) when
  the mean of the prototype AUs' event means is ``>= STRONG`` (2.5) and ``"slight"`` when it is
  ``< SLIGHT`` (1.0) and the event's peak probability is below ``CONFIDENT`` (0.8); the prototype
  AUs whose event mean is ``>= CITE`` (1.0) are named, e.g. ``(AU6+AU12)``; a confident event whose
  prototype AUs stay weak reads ``(prototype AUs not seen)`` (the classifier sees it, the AUs do not
  confirm it: neither "slight" nor a match is claimed). Without AUs there is no intensity word and
  no AU is named.

Example: ``track 0: neutral, then a broad smile (AU6+AU12) from 2.1 s to 4.0 s, brief surprise at 5.3 s``.

**On a timeline** (:func:`timeline_dynamics`, used by ``openfer video``): per track, events are found
on EMA-smoothed probabilities (time constant :data:`EVENT_TAU` = 0.1 s, :func:`event_probabilities`),
while the AU evidence is the measured, unsmoothed AUs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..core.au import PROTOTYPE_AUS
from ..core.reasons import ADJECTIVES
from ..errors import InputError, ShapeError
from .columns import TimelineData

ON = 0.5  # probability at which an event starts
OFF = 0.35  # probability below which it ends
MERGE_GAP = 0.3  # s: same-class events closer than this are merged
MIN_DURATION = 0.2  # s: shorter events are dropped
BRIEF = 0.5  # s: events shorter than this are "brief"; a shorter lead-in is not described
CITE = 1.0  # mean AU intensity (0-5) during an event at or above which the AU is named
SLIGHT = 1.0  # mean prototype intensity below which an event is "slight" (when not CONFIDENT)
CONFIDENT = 0.8  # peak probability from which weak prototype AUs do not make an event "slight"
STRONG = 2.5  # mean prototype intensity at or above which an event is "broad"/"strong"
GAP_STEPS = 1.5  # a time step larger than this many frame steps is a gap (face absent)
EVENT_TAU = 0.1  # s: time constant of the EMA that timeline_dynamics smooths probabilities with
NO_FACES = "no faces"

NOUNS: dict[str, str] = {
    "happiness": "smile",
    "surprise": "surprise",
    "sadness": "sadness",
    "anger": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "contempt": "contempt",
}
_COUNTABLE = {"smile"}
_AU = re.compile(r"^AU0*(\d+)$")


def au_key(name: str) -> str:
    """``"AU06"`` -> ``"AU6"`` (the spelling of :data:`openfer.core.au.AU_NAMES`); other names as given."""
    m = _AU.match(name)
    return f"AU{int(m.group(1))}" if m else name


def _au_number(name: str) -> int:
    m = _AU.match(name)
    return int(m.group(1)) if m else 1000


@dataclass(frozen=True)
class ExpressionEvent:
    """One expression event of one track (see the module doc for the definitions)."""

    track: int
    label: str
    onset: float
    apex: float
    offset: float
    duration: float
    peak: float
    frames: int
    aus: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (``aus`` copied)."""
        return asdict(self)


@dataclass(frozen=True)
class TrackDynamics:
    """One track's events, dynamic label, lead-in label and caption (see :func:`timeline_dynamics`)."""

    track: int
    start: float
    end: float
    events: tuple[ExpressionEvent, ...]
    dynamic_label: str
    lead: str | None
    caption: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "track": self.track,
            "start": self.start,
            "end": self.end,
            "events": [e.to_dict() for e in self.events],
            "dynamic_label": self.dynamic_label,
            "lead": self.lead,
            "caption": self.caption,
        }


def _median_step(times: np.ndarray) -> float:
    d = np.diff(np.unique(times))
    return float(np.median(d)) if d.size else 0.0


def _check(
    times: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    aus: np.ndarray | None,
    au_names: Sequence[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape != (len(t), len(classes)):
        raise ShapeError("probs", f"(N={len(t)}, {len(classes)})", p.shape)
    a = None
    if aus is not None:
        a = np.asarray(aus, dtype=np.float64)
        if a.ndim != 2 or a.shape != (len(t), len(au_names)):
            raise ShapeError("aus", f"(N={len(t)}, {len(au_names)})", a.shape)
        if a.shape[1] == 0:
            a = None
    if not np.isfinite(t).all():
        raise InputError("times: contains NaN or infinite values")
    return t, np.nan_to_num(p, nan=0.0), a


def _runs(
    t: np.ndarray, p: np.ndarray, candidates: np.ndarray, on: float, off: float, gap: float
) -> list[tuple[int, int, int]]:
    """Hysteresis runs ``(class, first row, last row)`` on time-sorted rows."""
    n = len(t)
    top = candidates[p[:, candidates].argmax(1)]
    runs: list[tuple[int, int, int]] = []
    active: tuple[int, int] | None = None
    for i in range(n):
        if active is not None:
            c, i0 = active
            if t[i] - t[i - 1] > gap or top[i] != c or p[i, c] < off:
                runs.append((c, i0, i - 1))
                active = None
        if active is None and p[i, top[i]] >= on:
            active = (int(top[i]), i)
    if active is not None:
        runs.append((active[0], active[1], n - 1))
    return runs


def detect_events(
    times: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    *,
    aus: np.ndarray | None = None,
    au_names: Sequence[str] = (),
    track: int = 0,
    on: float = ON,
    off: float = OFF,
    merge_gap: float = MERGE_GAP,
    min_duration: float = MIN_DURATION,
    step: float | None = None,
    neutral: str = "neutral",
) -> tuple[ExpressionEvent, ...]:
    """Expression events of one track (see the module doc), in time order.

    ``times`` ``(N,)`` seconds, ``probs`` ``(N, C)`` over ``classes`` (smoothed ones give steadier
    events), ``aus`` ``(N, K)`` intensities named by ``au_names`` (NaN: not measured) or ``None``.
    ``step``: seconds between analysed frames; ``None``: the median step between distinct times.
    """
    if not 0.0 <= off <= on:
        raise InputError(f"thresholds: expected 0 <= off <= on, got off={off}, on={on}")
    t, p, a = _check(times, probs, classes, aus, au_names)
    candidates = np.array([i for i, c in enumerate(classes) if c != neutral], dtype=np.int64)
    if len(t) == 0 or candidates.size == 0:
        return ()
    order = np.argsort(t, kind="stable")
    t, p = t[order], p[order]
    a = a[order] if a is not None else None
    step = _median_step(t) if step is None else float(step)
    runs = _runs(t, p, candidates, on, off, GAP_STEPS * step if step > 0 else np.inf)
    merged: list[list[int]] = []
    for c, i0, i1 in runs:
        if merged and merged[-1][0] == c and t[i0] - (t[merged[-1][2]] + step) < merge_gap - 1e-9:
            merged[-1][2] = i1
        else:
            merged.append([c, i0, i1])
    au_cols = {au_key(n): j for j, n in enumerate(au_names)}
    events = []
    for c, i0, i1 in merged:
        onset, offset = round(float(t[i0]), 6), round(float(t[i1] + step), 6)
        if offset - onset < min_duration - 1e-9:
            continue
        span = p[i0 : i1 + 1, c]
        k = int(span.argmax())
        means: dict[str, float] = {}
        if a is not None:
            for name in PROTOTYPE_AUS.get(classes[c], ()):
                col = a[i0 : i1 + 1, au_cols[name]] if name in au_cols else np.zeros(0)
                if np.isfinite(col).any():
                    means[name] = float(np.nanmean(col))
        events.append(
            ExpressionEvent(
                track=int(track),
                label=classes[c],
                onset=onset,
                apex=round(float(t[i0 + k]), 6),
                offset=offset,
                duration=round(offset - onset, 6),
                peak=float(span[k]),
                frames=i1 - i0 + 1,
                aus=means,
            )
        )
    return tuple(events)


def dynamic_label(events: Sequence[ExpressionEvent], neutral: str = "neutral") -> str:
    """The class whose events have the largest total ``duration * peak`` (ties: the earliest first
    event); ``neutral`` without events."""
    weight: dict[str, float] = {}
    for e in sorted(events, key=lambda e: e.onset):
        weight[e.label] = weight.get(e.label, 0.0) + e.duration * e.peak
    if not weight:
        return neutral
    return max(weight, key=lambda c: (weight[c], -list(weight).index(c)))


def _lead_label(
    t: np.ndarray,
    p: np.ndarray,
    classes: Sequence[str],
    events: Sequence[ExpressionEvent],
    on: float,
    neutral: str,
) -> str | None:
    """The class with the highest mean probability before the first event (all rows without events);
    ``None`` when that stretch is shorter than :data:`BRIEF`, or when it is a non-neutral class with a
    mean of ``on`` or more (too short or unsteady for an event, but not "weak" either)."""
    stop = events[0].onset if events else np.inf
    m = t < stop - 1e-9
    if not m.any():
        return None
    if events and stop - t[m].min() < BRIEF - 1e-9:
        return None
    mean = p[m].mean(0)
    k = int(mean.argmax())
    return None if classes[k] != neutral and mean[k] >= on else classes[k]


def _lead_text(lead: str, neutral: str) -> str:
    return neutral if lead == neutral else f"weakly {ADJECTIVES.get(lead, lead)}"


def _fmt_s(v: float) -> str:
    return f"{v:.1f} s"


def describe_event(event: ExpressionEvent) -> str:
    """One event as caption words (see the module doc), e.g. ``"a broad smile (AU6+AU12) from 2.1 s
    to 4.0 s"`` or ``"brief surprise at 5.3 s"``."""
    noun = NOUNS.get(event.label, event.label)
    words = []
    if event.duration < BRIEF - 1e-9:
        words.append("brief")
    cited = ""
    if event.aus:
        strength = float(np.mean(list(event.aus.values())))
        if strength >= STRONG:
            words.append("broad" if noun == "smile" else "strong")
        elif strength < SLIGHT and event.peak < CONFIDENT:
            words.append("slight")
        high = sorted((n for n, v in event.aus.items() if v >= CITE), key=_au_number)
        if high:
            cited = f" ({'+'.join(high)})"
        elif strength < SLIGHT and event.peak >= CONFIDENT:
            # a confident classifier whose prototype AUs barely move: say so rather than "slight"
            cited = " (prototype AUs not seen)"
    phrase = " ".join([*words, noun])
    if noun in _COUNTABLE:
        phrase = f"a {phrase}"
    if event.duration < BRIEF - 1e-9:
        when = f"at {_fmt_s(event.onset)}"
    else:
        when = f"from {_fmt_s(event.onset)} to {_fmt_s(event.offset)}"
    return f"{phrase}{cited} {when}"


def caption(
    events: Sequence[ExpressionEvent],
    *,
    track: int,
    start: float,
    end: float,
    lead: str | None = "neutral",
    neutral: str = "neutral",
) -> str:
    """One line describing a track's expression dynamics from its measured ``events`` (see the
    module doc). ``start``/``end``: the track's first and last time; ``lead``: the class shown before
    the first event (throughout, without events), ``None`` to leave it out."""
    head = f"track {track}: "
    evs = sorted(events, key=lambda e: e.onset)
    if not evs:
        what = _lead_text(lead, neutral) if lead is not None else "no expression events"
        return f"{head}{what} throughout ({_fmt_s(start)} to {_fmt_s(end)})"
    parts = [describe_event(e) for e in evs]
    text = ", ".join(parts)
    if lead is not None:
        text = f"{_lead_text(lead, neutral)}, then {text}"
    return head + text


def track_dynamics(
    times: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    *,
    aus: np.ndarray | None = None,
    au_names: Sequence[str] = (),
    track: int = 0,
    step: float | None = None,
    neutral: str = "neutral",
    **thresholds: float,
) -> TrackDynamics:
    """:func:`detect_events`, :func:`dynamic_label` and :func:`caption` of one track's rows;
    ``thresholds``: ``on``, ``off``, ``merge_gap``, ``min_duration``."""
    events = detect_events(
        times,
        probs,
        classes,
        aus=aus,
        au_names=au_names,
        track=track,
        step=step,
        neutral=neutral,
        **thresholds,
    )
    t, p, _ = _check(times, probs, classes, None, ())
    if len(t) == 0:
        raise InputError("times: a track needs at least one row")
    start, end = float(t.min()), float(t.max())
    lead = _lead_label(t, p, classes, events, thresholds.get("on", ON), neutral)
    text = caption(events, track=track, start=start, end=end, lead=lead, neutral=neutral)
    return TrackDynamics(int(track), start, end, events, dynamic_label(events, neutral), lead, text)


def event_probabilities(
    timeline: TimelineData, smooth: str | None = "ema", tau: float = EVENT_TAU
) -> tuple[TimelineData, np.ndarray]:
    """``(raw timeline, probabilities)``: the probabilities :func:`timeline_dynamics` finds events
    on, row-aligned with the raw timeline (the measured values: the timeline itself, or the ``raw``
    of a smoothed one).

    ``smooth="ema"``: ``Timeline.smooth("ema", tau=tau)``, per track; ``tau`` defaults to
    :data:`EVENT_TAU` (0.1 s), shorter than ``Timeline.smooth``'s own default (0.3 s) so brief
    expressions survive: at 0.3 s a 0.3 s expression at p = 0.7 (10 fps) peaks at 0.44, below ``on``.
    A timeline that is already smoothed is used as it is; ``smooth=None``: the raw probabilities.
    """
    raw = timeline.raw if getattr(timeline, "raw", None) is not None else timeline
    if smooth is None or raw is not timeline or not len(timeline):
        return raw, timeline.probabilities
    return raw, timeline.smooth(smooth, tau=tau).probabilities


def timeline_dynamics(
    timeline: TimelineData,
    *,
    smooth: str | None = "ema",
    tau: float = EVENT_TAU,
    probabilities: np.ndarray | None = None,
    **thresholds: float,
) -> tuple[TrackDynamics, ...]:
    """:func:`track_dynamics` for every track of ``timeline``, by track id.

    Events are found on smoothed probabilities (:func:`event_probabilities`: by default an EMA with a
    0.1 s time constant, per track, so one-frame flickers neither start nor split an event, at the
    cost of ~0.1 s of lag on onsets and offsets). ``probabilities`` ``(N, C)``, row-aligned with the
    timeline, overrides that. The AU evidence is always the measured (unsmoothed) AUs of the
    timeline, when it has them. ``thresholds``: ``on``, ``off``, ``merge_gap``, ``min_duration``.
    """
    raw, p = event_probabilities(timeline, smooth, tau)
    if probabilities is not None:
        p = np.asarray(probabilities, dtype=np.float64)
    aus = np.asarray(raw.aus, dtype=np.float64)
    step = timeline.step()
    out = []
    for k in timeline.track_ids():
        m = timeline.tracks == k
        out.append(
            track_dynamics(
                timeline.times[m],
                p[m],
                timeline.classes,
                aus=aus[m] if aus.shape[1:] != (0,) else None,
                au_names=raw.au_names,
                track=int(k),
                step=step,
                **thresholds,
            )
        )
    return tuple(out)


def captions_text(dynamics: Sequence[TrackDynamics]) -> str:
    """The captions, one line per track (``"no faces"`` without tracks), newline-terminated."""
    return "\n".join([d.caption for d in dynamics] or [NO_FACES]) + "\n"


__all__ = [
    "BRIEF",
    "CITE",
    "EVENT_TAU",
    "MERGE_GAP",
    "MIN_DURATION",
    "NO_FACES",
    "NOUNS",
    "OFF",
    "ON",
    "SLIGHT",
    "STRONG",
    "ExpressionEvent",
    "TrackDynamics",
    "au_key",
    "caption",
    "captions_text",
    "describe_event",
    "detect_events",
    "dynamic_label",
    "event_probabilities",
    "timeline_dynamics",
    "track_dynamics",
]
