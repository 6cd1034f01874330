"""Per-track timeline figures as PNG (needs ``openfer[plots]``: matplotlib).

One figure per track, time on a shared x axis:

(a) the expression probabilities, one line per class in a fixed colour (:data:`CLASS_COLORS`): the
    smoothed ones the events are found on (EMA by default, see
    :func:`~openfer.video.events.event_probabilities`) solid, the raw ones faint;
(b) valence and arousal: the timeline's own when it has them, else derived from the probabilities
    (:func:`openfer.core.affect.valence_arousal`, said so in the panel);
(c) when the timeline has AU intensities, a heatmap AUs x time (0-5).

Expression events (:mod:`openfer.video.events`) are shaded onset-offset in the colour of their class
(on the heatmap: dashed onset and offset lines, so its colours stay true). Rows further apart than 1.5 frame steps (the face was away) are drawn as gaps: lines
break there and heatmap cells stay blank, nothing is interpolated.

matplotlib is imported inside the functions (``import openfer.video`` never loads it); figures are drawn
on a bare :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot, no window, no global
state) and written atomically (temp file in the target folder, then ``os.replace``).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.affect import valence_arousal as derived_valence_arousal
from ..errors import InputError
from ..extras import require
from ..io.tables import atomic_open
from .columns import TimelineData
from .events import GAP_STEPS, TrackDynamics, event_probabilities, timeline_dynamics

CLASS_COLORS: dict[str, str] = {
    "neutral": "#7f7f7f",
    "happiness": "#e6a800",
    "surprise": "#17becf",
    "sadness": "#1f77b4",
    "anger": "#d62728",
    "disgust": "#2ca02c",
    "fear": "#9467bd",
    "contempt": "#8c564b",
}
_OTHER_COLORS = ("#e377c2", "#bcbd22", "#393b79", "#ad494a", "#637939", "#7b4173")
AU_MAX = 5.0


def track_plot_name(track: int) -> str:
    """File name of a track's figure: ``track-<id>.png``."""
    return f"track-{int(track)}.png"


def class_color(name: str, index: int = 0) -> str:
    return CLASS_COLORS.get(name, _OTHER_COLORS[index % len(_OTHER_COLORS)])


def require_matplotlib() -> None:
    """Raise :class:`~openfer.errors.MissingDependencyError` (with the install hint) when matplotlib
    is missing."""
    require("matplotlib.backends.backend_agg", "plots", "plots")
    require("matplotlib.figure", "plots", "plots")


def _figure(width: float, height: float) -> Any:
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig: Any, path: Path) -> Path:
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png")
    return path


def with_gaps(times: np.ndarray, values: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """``times`` (N,) sorted and ``values`` (N, ...) with a NaN row inserted wherever consecutive
    times are more than 1.5 ``step`` apart, so plotted lines break at gaps."""
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if len(t) < 2 or step <= 0:
        return t, v
    cut = np.flatnonzero(np.diff(t) > GAP_STEPS * step) + 1
    if not cut.size:
        return t, v
    t2 = np.insert(t, cut, (t[cut - 1] + t[cut]) / 2)
    v2 = np.insert(v, cut, np.nan, axis=0)
    return t2, v2


def time_grid(times: np.ndarray, values: np.ndarray, step: float) -> tuple[np.ndarray, float]:
    """``values`` (N, K) on a regular grid of ``step`` from ``times[0]``: ``(bins, K)`` with NaN where
    no row falls (gaps); returns the grid and its first bin's centre."""
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    step = step if step > 0 else 1.0
    t0 = float(t.min())
    idx = np.rint((t - t0) / step).astype(np.int64)
    grid = np.full((int(idx.max()) + 1, v.shape[1]), np.nan)
    grid[idx] = v
    return grid, t0


def _event_color(name: str, classes: Sequence[str]) -> str:
    return class_color(name, list(classes).index(name) if name in classes else 0)


def _mark_events(ax: Any, dyn: TrackDynamics | None, classes: Sequence[str], how: str) -> None:
    """Shade (``"span"``, with the class name above for ``"labelled"``) or outline (``"lines"``:
    dashed onset and offset, for the heatmap, whose colours a shade would change) each event."""
    for e in () if dyn is None else dyn.events:
        color = _event_color(e.label, classes)
        if how == "lines":
            for x in (e.onset, e.offset):
                ax.axvline(x, color="white", lw=2.4)
                ax.axvline(x, color=color, lw=1.2, ls="--")
            continue
        ax.axvspan(e.onset, e.offset, color=color, alpha=0.15, lw=0)
        if how == "labelled":
            ax.text(
                (e.onset + e.offset) / 2,
                1.01,
                e.label,
                ha="center",
                va="bottom",
                fontsize=7,
                color=color,
                transform=ax.get_xaxis_transform(),
            )


class _Track:
    """One track's rows in time order: times, raw and (optionally) smoothed probabilities, V/A, AUs."""

    def __init__(
        self, timeline: TimelineData, track: int, smoothed: np.ndarray | None, va: np.ndarray, aus: np.ndarray
    ) -> None:
        m = timeline.tracks == track
        order = np.argsort(timeline.times[m], kind="stable")
        self.t = timeline.times[m][order]
        self.probs = timeline.probabilities[m][order]
        self.smoothed = None if smoothed is None else smoothed[m][order]
        self.va = va[m][order]
        self.aus = aus[m][order]


def _plot_track(
    path: Path,
    rows: _Track,
    dyn: TrackDynamics | None,
    classes: Sequence[str],
    step: float,
    va_derived: bool,
    au_names: Sequence[str],
) -> Path:
    has_aus = rows.aus.shape[1] > 0 and bool(np.isfinite(rows.aus).any())
    heights = [3.0, 1.6] + ([0.2 * len(au_names) + 0.4] if has_aus else [])
    fig = _figure(11.0, sum(heights) + (1.6 if has_aus else 1.0))
    axes = fig.subplots(len(heights), 1, sharex=True, gridspec_kw={"height_ratios": heights})
    title = textwrap.fill(dyn.caption, 140, subsequent_indent="    ") if dyn is not None else ""
    fig.suptitle(title, x=0.01, ha="left", fontsize=10)

    ax = axes[0]
    _mark_events(ax, dyn, classes, "labelled")
    tg, raw = with_gaps(rows.t, rows.probs, step)
    smooth = None if rows.smoothed is None else with_gaps(rows.t, rows.smoothed, step)[1]
    for c, name in enumerate(classes):
        color = class_color(name, c)
        if smooth is None:
            ax.plot(tg, raw[:, c], color=color, lw=1.4, label=name)
        else:
            ax.plot(tg, raw[:, c], color=color, lw=0.8, alpha=0.35)
            ax.plot(tg, smooth[:, c], color=color, lw=1.5, label=name)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("probability")
    legend_title = "solid: smoothed\nfaint: raw" if smooth is not None else None
    ax.legend(
        loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False, title=legend_title,
        title_fontsize=7,
    )  # fmt: skip

    ax = axes[1]
    _mark_events(ax, dyn, classes, "span")
    tg, vg = with_gaps(rows.t, rows.va, step)
    ax.plot(tg, vg[:, 0], color="#1f77b4", lw=1.4, label="valence")
    ax.plot(tg, vg[:, 1], color="#d62728", lw=1.4, label="arousal")
    ax.axhline(0.0, color="#999999", lw=0.6)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("derived V/A" if va_derived else "V/A")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)

    s = step if step > 0 else 1.0
    if has_aus:
        import matplotlib as mpl

        ax = axes[2]
        grid, t0 = time_grid(rows.t, rows.aus, step)
        im = ax.imshow(
            np.ma.masked_invalid(grid.T),
            aspect="auto",
            interpolation="nearest",
            cmap=mpl.colormaps["magma"].with_extremes(bad="white"),
            vmin=0.0,
            vmax=AU_MAX,
            extent=(t0 - s / 2, t0 + (len(grid) - 0.5) * s, len(au_names) - 0.5, -0.5),
        )
        ax.set_yticks(range(len(au_names)), list(au_names), fontsize=7)
        _mark_events(ax, dyn, classes, "lines")
        fig.colorbar(im, ax=ax, location="bottom", label="AU intensity (0-5)", aspect=60, fraction=0.08)
    axes[0].set_xlim(float(rows.t.min()) - s, float(rows.t.max()) + 2 * s)
    axes[-1].set_xlabel("time (s)")
    return _save_png(fig, path)


def plot_timeline(
    timeline: TimelineData,
    out_dir: str | os.PathLike[str],
    tracks: Iterable[int] | None = None,
    *,
    dynamics: Sequence[TrackDynamics] | None = None,
    smooth: str | None = "ema",
) -> list[Path]:
    """Write one PNG per track (``out_dir/track-<id>.png``, see the module doc); returns the paths
    in track order (none for a timeline without faces).

    ``tracks``: the track ids to plot (default: all). ``smooth``: as in
    :func:`~openfer.video.events.timeline_dynamics`: the probabilities the events are found on are
    drawn solid, the raw ones faint (``None``: raw only). ``dynamics``: the tracks' events and
    captions (default: :func:`~openfer.video.events.timeline_dynamics` with ``smooth``).
    """
    require_matplotlib()  # fail before anything is computed
    ids = [int(k) for k in timeline.track_ids()]
    chosen = ids if tracks is None else [int(k) for k in tracks]
    unknown = sorted(set(chosen) - set(ids))
    if unknown:
        raise InputError(f"tracks {unknown} are not in the timeline (it has {ids})")
    if not chosen:
        return []
    if dynamics is None:
        dynamics = timeline_dynamics(timeline, smooth=smooth)
    dyn = {d.track: d for d in dynamics}
    raw, probs = event_probabilities(timeline, smooth)
    smoothed = None if raw is timeline and (smooth is None or not len(timeline)) else probs
    va = np.asarray(raw.valence_arousal, dtype=np.float64)
    va_derived = not np.isfinite(va).any()
    if va_derived:
        va = derived_valence_arousal(raw.probabilities, raw.classes)
    aus = np.asarray(raw.aus, dtype=np.float64)
    out = Path(out_dir)
    step = timeline.step()
    return [
        _plot_track(
            out / track_plot_name(k),
            _Track(raw, k, smoothed, va, aus),
            dyn.get(k),
            timeline.classes,
            step,
            va_derived,
            raw.au_names,
        )
        for k in chosen
    ]


__all__ = [
    "CLASS_COLORS",
    "class_color",
    "plot_timeline",
    "require_matplotlib",
    "time_grid",
    "track_plot_name",
    "with_gaps",
]
