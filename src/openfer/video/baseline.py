"""Per-track neutral AU baselines for video (pure numpy).

AU intensities compare a face's evidence (its mesh features and blendshapes,
:func:`openfer.components.au.estimate_evidence`) with a neutral face's. For a single image that is
the population's neutral (``openfer/models/au_calibration.json``), so a person whose resting face differs from it (a wide mouth, low brows) reads as a constant
AU all video long. In video each track therefore collects its own neutral features:

* a face of a track counts as neutral when the expression model gives it ``p(neutral) >=``
  :data:`NEUTRAL_PROB`; its AU evidence is collected, up to the first
  :data:`BASELINE_FRAMES` such frames of the track;
* from :data:`BASELINE_MIN_FRAMES` collected frames on, the track's baseline is their median (the
  semantics of :func:`openfer.components.au.estimate_baseline`), and its AUs, PSPI and AU-based reasons
  are measured against it; before that, against the population's neutral. A frame's own features count
  from the next frame on (so the baseline never includes the frame it measures);
* a track the tracker forgets drops its baseline.

:class:`AuBaselines` is that state: immutable (every update returns a new one), JSON-exact (float64
features round-trip through JSON), so a checkpointed run resumes with the same baselines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from ..components.au import estimate_baseline
from ..core.au import FEATURE_NAMES
from ..core.blendshapes import BLENDSHAPE_NAMES
from ..errors import InputError, ShapeError

BASELINE_MODES: tuple[str, ...] = ("none", "neutral")
NEUTRAL_PROB = 0.6  # p(neutral) from which a face counts as resting
BASELINE_FRAMES = 30  # neutral frames collected per track, at most (the first ones)
BASELINE_MIN_FRAMES = 10  # neutral frames a track needs before its baseline is used

_F = len(FEATURE_NAMES) + len(BLENDSHAPE_NAMES)  # evidence channels; blendshapes NaN when not computed


def _features(a: object, name: str) -> np.ndarray:
    f = np.array(a, dtype=np.float64).reshape(-1, _F) if np.size(a) else np.zeros((0, _F))
    if np.isinf(f).any() or np.isnan(f[:, : len(FEATURE_NAMES)]).any():
        raise InputError(f"{name}: contains infinite values or NaN mesh features")
    f.setflags(write=False)
    return f


@dataclass(frozen=True, eq=False)
class AuBaselines:
    """The neutral AU features collected so far per track: ``tracks`` maps a track id to its
    ``(n, E)`` float64 evidence (mesh features :data:`~openfer.core.au.FEATURE_NAMES`, then the 52
    blendshapes, NaN where not computed), in collection order.

    Immutable: :meth:`add` and :meth:`keep` return new objects, so a snapshot can be handed from the
    thread that updates it to another. Each track's median (:meth:`neutral`, asked every frame) is
    computed once per object and handed on to the objects :meth:`add` and :meth:`keep` make for the
    tracks they leave unchanged (a track stops changing once it has :data:`BASELINE_FRAMES`).
    """

    tracks: Mapping[int, np.ndarray]
    _medians: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tracks = {int(k): _features(v, f"track {k} features") for k, v in sorted(self.tracks.items())}
        for k, v in tracks.items():
            if len(v) == 0:
                raise ShapeError(f"track {k} features", f"(n >= 1, {_F})", v.shape)
        object.__setattr__(self, "tracks", MappingProxyType(tracks))

    @classmethod
    def empty(cls) -> AuBaselines:
        return cls({})

    def counts(self, track_ids: np.ndarray) -> np.ndarray:
        """``(N,)`` neutral frames collected for each of ``track_ids``."""
        return np.array(
            [len(self.tracks.get(int(k), ())) for k in np.asarray(track_ids).reshape(-1)], np.int64
        )

    def neutral(
        self, track_ids: np.ndarray, min_frames: int = BASELINE_MIN_FRAMES
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(baselines (N, F), ready (N,) bool)`` for ``track_ids``: the median collected features of
        each track with at least ``min_frames`` of them (``ready``); NaN rows for the others."""
        ids = np.asarray(track_ids).reshape(-1)
        out = np.full((len(ids), _F), np.nan)
        ready = self.counts(ids) >= max(int(min_frames), 1)
        for i in np.flatnonzero(ready):
            out[i] = self._median(int(ids[i]))
        return out, ready

    def _median(self, track: int) -> np.ndarray:
        m = self._medians.get(track)
        if m is None:
            m = estimate_baseline(self.tracks[track])
            m.setflags(write=False)
            self._medians[track] = m
        return m

    def _with_medians(self, new: AuBaselines, changed: Mapping[int, None]) -> AuBaselines:
        new._medians.update({k: m for k, m in self._medians.items() if k in new.tracks and k not in changed})
        return new

    def add(
        self, track_ids: np.ndarray, features: np.ndarray, max_frames: int = BASELINE_FRAMES
    ) -> AuBaselines:
        """Append the ``(M, F)`` features of neutral faces of ``track_ids`` ``(M,)`` (in order); each
        track keeps its first ``max_frames``."""
        ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
        feats = _features(features, "features")
        if len(feats) != len(ids):
            raise ShapeError("features", f"(M={len(ids)}, {_F})", np.shape(features))
        tracks = dict(self.tracks)
        changed = dict.fromkeys(ids.tolist())
        for k in changed:
            new = feats[ids == k]
            have = tracks.get(k, np.zeros((0, _F)))
            tracks[k] = np.concatenate([have, new])[: max(int(max_frames), len(have))]
        return self._with_medians(AuBaselines(tracks), changed)

    def keep(self, live_ids: np.ndarray) -> AuBaselines:
        """Only the tracks in ``live_ids`` (those the tracker still knows)."""
        live = set(np.asarray(live_ids, dtype=np.int64).reshape(-1).tolist())
        if set(self.tracks) <= live:
            return self
        return self._with_medians(AuBaselines({k: v for k, v in self.tracks.items() if k in live}), {})

    def to_json(self) -> dict:
        """JSON-able state (exact); blendshape channels not computed (NaN) as ``null``."""
        return {
            "tracks": [
                {"track": k, "features": np.where(np.isnan(v), None, v).tolist()}
                for k, v in self.tracks.items()
            ]
        }

    @classmethod
    def from_json(cls, d: dict | None) -> AuBaselines:
        """From :meth:`to_json`; ``None`` (a checkpoint written before baselines existed): empty."""
        if d is None:
            return cls.empty()
        return cls({int(t["track"]): np.array(t["features"], dtype=np.float64) for t in d["tracks"]})


def neutral_faces(
    probs: np.ndarray,
    classes: tuple[str, ...],
    counts: np.ndarray,
    min_prob: float = NEUTRAL_PROB,
    max_frames: int = BASELINE_FRAMES,
) -> np.ndarray:
    """``(N,)`` bool: faces whose features a track still collects: ``probs`` ``(N, C)`` give
    ``p(neutral) >= min_prob`` and their track has fewer than ``max_frames`` (``counts``). All
    False when ``classes`` has no ``"neutral"``."""
    p = np.asarray(probs)
    if "neutral" not in classes or len(p) == 0:
        return np.zeros(len(p), bool)
    return (p[:, classes.index("neutral")] >= min_prob) & (np.asarray(counts) < max_frames)


__all__ = [
    "BASELINE_FRAMES",
    "BASELINE_MIN_FRAMES",
    "BASELINE_MODES",
    "NEUTRAL_PROB",
    "AuBaselines",
    "neutral_faces",
]
