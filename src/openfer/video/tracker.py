"""Face tracking by box overlap and motion: stable integer ids across frames (pure numpy, no models).

Each frame, faces are matched to tracks in three greedy passes (no Hungarian solver):

1. **hints**: a face that was followed from a track's previous landmarks carries that track's id;
2. **overlap**: the remaining pairs in decreasing IoU between the face box and the track's predicted
   box (last box moved by the track's velocity, estimated from its box centres), IoU >= ``iou_threshold``;
3. **distance**: the remaining pairs in increasing centre distance normalised by face size, up to
   ``max_distance`` (growing to twice that as a track stays unseen), for faces of similar size.

A track not matched for more than ``max_missed`` frames ends; a briefly occluded face, or one that
leaves and comes back soon near where it left, keeps its id. New tracks take ids from a counter that
never goes back, so an id is never reused. :class:`TrackerState` is the whole state, for checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.boxes import greedy_pairs, iou_matrix
from ..errors import ShapeError

# Velocity extrapolation is capped at this many frames: beyond that a constant-velocity guess is
# worse than the last position.
_MAX_EXTRAPOLATE = 5
_SMOOTH = 0.5  # weight of the newest velocity measurement


@dataclass(frozen=True, eq=False)
class TrackerState:
    """Everything a :class:`FaceTracker` knows, as arrays with one row per live track."""

    next_id: int
    ids: np.ndarray  # (T,) int64
    boxes: np.ndarray  # (T, 4) float64, last matched box
    velocities: np.ndarray  # (T, 2) float64, centre motion per frame
    missed: np.ndarray  # (T,) int64, frames since last matched
    hits: np.ndarray  # (T,) int64, frames matched

    def to_json(self) -> dict:
        return {
            "next_id": self.next_id,
            "ids": self.ids.tolist(),
            "boxes": self.boxes.tolist(),
            "velocities": self.velocities.tolist(),
            "missed": self.missed.tolist(),
            "hits": self.hits.tolist(),
        }

    @classmethod
    def from_json(cls, d: dict) -> TrackerState:
        return cls(
            next_id=int(d["next_id"]),
            ids=np.asarray(d["ids"], dtype=np.int64).reshape(-1),
            boxes=np.asarray(d["boxes"], dtype=np.float64).reshape(-1, 4),
            velocities=np.asarray(d["velocities"], dtype=np.float64).reshape(-1, 2),
            missed=np.asarray(d["missed"], dtype=np.int64).reshape(-1),
            hits=np.asarray(d["hits"], dtype=np.int64).reshape(-1),
        )


def _centres(b: np.ndarray) -> np.ndarray:
    return (b[:, :2] + b[:, 2:]) / 2


def _sizes(b: np.ndarray) -> np.ndarray:
    return np.sqrt(np.clip(b[:, 2] - b[:, 0], 1e-6, None) * np.clip(b[:, 3] - b[:, 1], 1e-6, None))


class FaceTracker:
    """Assigns a stable integer id to each face box, frame after frame.

    Args:
        max_missed: frames a track survives unmatched (about one second of frames is a good value).
        iou_threshold: smallest IoU between a box and a track's predicted box to match them.
        max_distance: largest centre distance, in face sizes (sqrt of box area), for the fallback match.
        max_size_ratio: the fallback only matches boxes whose sizes differ less than this factor.

    >>> tracker = FaceTracker(max_missed=30)
    >>> tracker.update(np.array([[10, 10, 50, 50.0]])).tolist()
    [0]
    >>> tracker.update(np.array([[200, 10, 240, 50.0], [12, 11, 52, 51.0]])).tolist()
    [1, 0]
    """

    def __init__(
        self,
        max_missed: int = 30,
        iou_threshold: float = 0.3,
        max_distance: float = 1.0,
        max_size_ratio: float = 2.0,
    ) -> None:
        if max_missed < 0:
            raise ValueError(f"max_missed: expected >= 0, got {max_missed}")
        self.max_missed = int(max_missed)
        self.iou_threshold = float(iou_threshold)
        self.max_distance = float(max_distance)
        self.max_size_ratio = float(max_size_ratio)
        self.reset()

    def reset(self) -> None:
        self.set_state(
            TrackerState(
                0,
                np.zeros(0, np.int64),
                np.zeros((0, 4)),
                np.zeros((0, 2)),
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
            )
        )

    @property
    def state(self) -> TrackerState:
        return TrackerState(
            self._next_id,
            self._ids.copy(),
            self._boxes.copy(),
            self._vel.copy(),
            self._missed.copy(),
            self._hits.copy(),
        )

    def set_state(self, state: TrackerState) -> None:
        self._next_id = int(state.next_id)
        self._ids = np.array(state.ids, dtype=np.int64).reshape(-1)
        self._boxes = np.array(state.boxes, dtype=np.float64).reshape(-1, 4)
        self._vel = np.array(state.velocities, dtype=np.float64).reshape(-1, 2)
        self._missed = np.array(state.missed, dtype=np.int64).reshape(-1)
        self._hits = np.array(state.hits, dtype=np.int64).reshape(-1)

    @property
    def track_ids(self) -> np.ndarray:
        """Ids of the live tracks (matched now or unseen for at most ``max_missed`` frames)."""
        return self._ids.copy()

    def predicted_boxes(self) -> np.ndarray:
        """Where each live track is expected in the next frame."""
        steps = np.minimum(self._missed + 1, _MAX_EXTRAPOLATE).astype(np.float64)
        shift = self._vel * steps[:, None]
        return self._boxes + np.concatenate([shift, shift], 1)

    def update(self, boxes: np.ndarray, hints: np.ndarray | None = None) -> np.ndarray:
        """Match this frame's ``(N, 4)`` boxes; returns their ``(N,)`` int64 track ids.

        ``hints`` (optional ``(N,)``): a track id a face is known to continue (e.g. it was followed
        from that track's landmarks), or -1. A hint for a track that no longer lives is ignored.
        """
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ShapeError("boxes", "(N, 4)", boxes.shape)
        n, t = len(boxes), len(self._ids)
        if hints is not None:
            hints = np.asarray(hints, dtype=np.int64).reshape(-1)
            if hints.shape != (n,):
                raise ShapeError("hints", f"({n},)", hints.shape)
        face_track = np.full(n, -1, np.int64)  # index into the live tracks
        track_taken = np.zeros(t, bool)
        if hints is not None:
            pos = {int(i): k for k, i in enumerate(self._ids)}
            for f in range(n):
                k = pos.get(int(hints[f]), -1)
                if k >= 0 and not track_taken[k]:
                    face_track[f], track_taken[k] = k, True
        free_f, free_t = np.flatnonzero(face_track < 0), np.flatnonzero(~track_taken)
        if free_f.size and free_t.size:
            pred = self.predicted_boxes()[free_t]
            iou = iou_matrix(boxes[free_f], pred)
            for r, c in greedy_pairs(iou, iou >= self.iou_threshold, descending=True):
                face_track[free_f[r]], track_taken[free_t[c]] = free_t[c], True
            free_f, free_t = np.flatnonzero(face_track < 0), np.flatnonzero(~track_taken)
        if free_f.size and free_t.size:
            pred = self.predicted_boxes()[free_t]
            fb = boxes[free_f]
            sf, st = _sizes(fb), _sizes(pred)
            dist = np.linalg.norm(_centres(fb)[:, None] - _centres(pred)[None], axis=-1) / np.sqrt(
                sf[:, None] * st[None]
            )
            ratio = np.maximum(sf[:, None] / st[None], st[None] / sf[:, None])
            grow = 1.0 + self._missed[free_t] / max(self.max_missed, 1)
            ok = (dist <= self.max_distance * grow[None]) & (ratio <= self.max_size_ratio)
            for r, c in greedy_pairs(dist, ok, descending=False):
                face_track[free_f[r]], track_taken[free_t[c]] = free_t[c], True
        return self._apply(boxes, face_track, track_taken)

    def _apply(self, boxes: np.ndarray, face_track: np.ndarray, track_taken: np.ndarray) -> np.ndarray:
        ids = np.empty(len(boxes), np.int64)
        matched = face_track >= 0
        k = face_track[matched]
        if k.size:
            gap = (self._missed[k] + 1).astype(np.float64)
            v_new = (_centres(boxes[matched]) - _centres(self._boxes[k])) / gap[:, None]
            first = self._hits[k] <= 1
            self._vel[k] = np.where(first[:, None], v_new, _SMOOTH * v_new + (1 - _SMOOTH) * self._vel[k])
            self._boxes[k] = boxes[matched]
            self._missed[k] = 0
            self._hits[k] += 1
            ids[matched] = self._ids[k]
        lost = ~track_taken
        self._missed[lost] += 1
        alive = self._missed <= self.max_missed
        self._ids, self._boxes, self._vel = self._ids[alive], self._boxes[alive], self._vel[alive]
        self._missed, self._hits = self._missed[alive], self._hits[alive]
        new = np.flatnonzero(~matched)
        if new.size:
            new_ids = np.arange(self._next_id, self._next_id + new.size, dtype=np.int64)
            self._next_id += int(new.size)
            ids[new] = new_ids
            self._ids = np.concatenate([self._ids, new_ids])
            self._boxes = np.concatenate([self._boxes, boxes[new]])
            self._vel = np.concatenate([self._vel, np.zeros((new.size, 2))])
            self._missed = np.concatenate([self._missed, np.zeros(new.size, np.int64)])
            self._hits = np.concatenate([self._hits, np.ones(new.size, np.int64)])
        return ids


__all__ = ["FaceTracker", "TrackerState", "greedy_pairs"]
