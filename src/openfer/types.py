"""Result objects. Every output of openfer is one of these frozen, typed containers.

:class:`Faces` is a struct-of-arrays over the faces of one image (like supervision's ``Detections``):
``len(faces)``, ``faces[mask]``, ``faces[i]`` (a :class:`Face` view), iteration, ``Faces.empty()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError, ShapeError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

EXPRESSIONS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)
KEYPOINT_NAMES: tuple[str, ...] = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_center",
    "right_ear_tragion",
    "left_ear_tragion",
)
POSE_NAMES: tuple[str, ...] = ("yaw", "pitch", "roll")
VA_SOURCES: tuple[str, ...] = ("derived", "model")  # where Faces.valence_arousal comes from


def _check(name: str, arr: np.ndarray, n: int, tail: tuple[int | None, ...], dtype: type) -> np.ndarray:
    a = np.asarray(arr, dtype=dtype)
    ok = a.ndim == 1 + len(tail) and a.shape[0] == n
    ok = ok and all(t is None or t == s for t, s in zip(tail, a.shape[1:], strict=False))
    if not ok:
        want = "(" + ", ".join([f"N={n}"] + ["K" if t is None else str(t) for t in tail]) + ")"
        raise ShapeError(name, want, a.shape)
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Face:
    """One face of a :class:`Faces` (read-only views into its arrays)."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray
    landmarks: np.ndarray
    landmark_score: float
    pose: np.ndarray
    expression: np.ndarray
    label: str
    classes: tuple[str, ...]
    aus: np.ndarray | None = None
    au_names: tuple[str, ...] = ()
    valence_arousal: np.ndarray | None = None
    reason: str | None = None
    unknown_score: float | None = None
    open_label: str | None = None  # ``label``, or "unknown" when unknown_score is over the threshold
    blendshapes: np.ndarray | None = None
    blendshape_names: tuple[str, ...] = ()

    @property
    def probabilities(self) -> dict[str, float]:
        return {c: float(p) for c, p in zip(self.classes, self.expression, strict=True)}

    @property
    def action_units(self) -> dict[str, float]:
        """AU intensities (0-5) by name; empty when AUs were not computed."""
        if self.aus is None:
            return {}
        return {n: float(v) for n, v in zip(self.au_names, self.aus, strict=True)}

    @property
    def blendshape_scores(self) -> dict[str, float]:
        """The 52 blendshape coefficients (0-1) by MediaPipe name; empty when not computed."""
        if self.blendshapes is None:
            return {}
        return {n: float(v) for n, v in zip(self.blendshape_names, self.blendshapes, strict=True)}


@dataclass(frozen=True, eq=False)
class Faces:
    """The faces found in one image, as arrays with one row per face.

    Attributes:
        boxes: ``(N, 4)`` float32 ``[x1, y1, x2, y2]`` in image pixels (detector box).
        scores: ``(N,)`` detector confidence in [0, 1].
        keypoints: ``(N, 6, 2)`` detector keypoints (see ``KEYPOINT_NAMES``), pixels.
        landmarks: ``(N, K, 3)`` face mesh, K = 478 (468 mesh + 10 iris) or 468; x, y in pixels,
            z relative depth in the same scale (smaller is nearer the camera).
        landmark_scores: ``(N,)`` face-mesh presence score in [0, 1].
        poses: ``(N, 3)`` yaw, pitch, roll in degrees (see ``openfer.core.pose``).
        expressions: ``(N, C)`` expression probabilities over ``classes``.
        classes: the expression class names.
        aus: ``(N, A)`` action-unit intensities in [0, 5] over ``au_names`` (landmark-based
            estimates, see ``openfer.core.au``), or ``None`` when not computed.
        au_names: the AU names, e.g. ``("AU1", "AU2", ...)``.
        valence_arousal: ``(N, 2)`` valence and arousal in [-1, 1], derived from the expression
            probabilities (``openfer.core.affect``) or predicted by a valence/arousal model, or ``None``.
        reasons: one short evidence-based explanation per face (``openfer.explain``), or ``None``.
        unknown_scores: ``(N,)`` open-set score in [0, 1]: the share of known-expression validation
            faces that look more typical than this one (``openfer.components.expression``), or
            ``None`` when the model has no open-set head.
        pspi: ``(N,)`` Prkachin-Solomon pain intensity (0-16) from the AUs (``openfer.core.au.pspi``),
            or ``None`` without AUs.
        unknown_threshold: faces with ``unknown_scores`` above it get the ``open_labels`` entry
            ``"unknown"``; ``None``: never.
        blendshapes: ``(N, 52)`` MediaPipe blendshape coefficients in [0, 1] over
            ``blendshape_names`` (``openfer.components.blendshapes``), or ``None`` when not computed.
        blendshape_names: their ARKit-style names, ``_neutral`` first.
        va_source: where ``valence_arousal`` comes from: ``"derived"`` (the circumplex mapping of the
            expression probabilities) or ``"model"`` (a trained valence/arousal model); ``None``
            without valence/arousal (or when not stated).
    """

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray
    landmarks: np.ndarray
    landmark_scores: np.ndarray
    poses: np.ndarray
    expressions: np.ndarray
    classes: tuple[str, ...] = EXPRESSIONS
    aus: np.ndarray | None = None
    au_names: tuple[str, ...] = ()
    valence_arousal: np.ndarray | None = None
    reasons: tuple[str, ...] | None = None
    unknown_scores: np.ndarray | None = None
    unknown_threshold: float | None = None
    pspi: np.ndarray | None = None
    va_source: str | None = None
    blendshapes: np.ndarray | None = None
    blendshape_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = np.asarray(self.boxes).reshape(-1, 4).shape[0] if np.size(self.boxes) else 0
        set_ = object.__setattr__
        set_(self, "boxes", _check("boxes", np.asarray(self.boxes).reshape(-1, 4), n, (4,), np.float32))
        set_(self, "scores", _check("scores", self.scores, n, (), np.float32))
        set_(self, "keypoints", _check("keypoints", self.keypoints, n, (6, 2), np.float32))
        set_(self, "landmarks", _check("landmarks", self.landmarks, n, (None, 3), np.float32))
        set_(self, "landmark_scores", _check("landmark_scores", self.landmark_scores, n, (), np.float32))
        set_(self, "poses", _check("poses", self.poses, n, (3,), np.float32))
        set_(
            self, "expressions", _check("expressions", self.expressions, n, (len(self.classes),), np.float32)
        )
        set_(self, "classes", tuple(self.classes))
        set_(self, "au_names", tuple(self.au_names))
        if self.aus is not None:
            set_(self, "aus", _check("aus", self.aus, n, (len(self.au_names),), np.float32))
        set_(self, "blendshape_names", tuple(self.blendshape_names))
        if self.blendshapes is not None:
            set_(
                self,
                "blendshapes",
                _check("blendshapes", self.blendshapes, n, (len(self.blendshape_names),), np.float32),
            )
        if self.valence_arousal is not None:
            set_(
                self, "valence_arousal", _check("valence_arousal", self.valence_arousal, n, (2,), np.float32)
            )
        if self.va_source is not None:
            if self.va_source not in VA_SOURCES:
                want = ", ".join(VA_SOURCES)
                raise InputError(f"va_source must be one of {want} or None, got {self.va_source!r}")
            if self.valence_arousal is None:
                raise InputError("va_source given without valence_arousal")
        if self.pspi is not None:
            set_(self, "pspi", _check("pspi", self.pspi, n, (), np.float32))
        if self.unknown_scores is not None:
            set_(self, "unknown_scores", _check("unknown_scores", self.unknown_scores, n, (), np.float32))
        if self.reasons is not None:
            if len(self.reasons) != n:
                raise ShapeError("reasons", f"({n},)", (len(self.reasons),))
            set_(self, "reasons", tuple(str(r) for r in self.reasons))

    @classmethod
    def empty(
        cls,
        classes: tuple[str, ...] = EXPRESSIONS,
        num_landmarks: int = 478,
        au_names: tuple[str, ...] | None = None,
        blendshape_names: tuple[str, ...] | None = None,
    ) -> Faces:
        """No faces; ``au_names`` / ``blendshape_names`` given: empty arrays with those columns."""
        return cls(
            boxes=np.zeros((0, 4)),
            scores=np.zeros(0),
            keypoints=np.zeros((0, 6, 2)),
            landmarks=np.zeros((0, num_landmarks, 3)),
            landmark_scores=np.zeros(0),
            poses=np.zeros((0, 3)),
            expressions=np.zeros((0, len(classes))),
            classes=classes,
            aus=None if au_names is None else np.zeros((0, len(au_names))),
            au_names=au_names or (),
            blendshapes=None if blendshape_names is None else np.zeros((0, len(blendshape_names))),
            blendshape_names=blendshape_names or (),
        )

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def labels(self) -> tuple[str, ...]:
        """Top expression label per face."""
        return tuple(self.classes[i] for i in self.expressions.argmax(1)) if len(self) else ()

    @property
    def open_labels(self) -> tuple[str, ...]:
        """:attr:`labels`, with ``"unknown"`` for faces whose ``unknown_scores`` exceed
        ``unknown_threshold`` (the same as :attr:`labels` without open-set scores)."""
        labels = self.labels
        if self.unknown_scores is None or self.unknown_threshold is None:
            return labels
        return tuple(
            "unknown" if u > self.unknown_threshold else lab
            for lab, u in zip(labels, self.unknown_scores, strict=True)
        )

    @property
    def label_scores(self) -> np.ndarray:
        """Probability of the top label per face."""
        return self.expressions.max(1) if len(self) else np.zeros(0, np.float32)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (int, np.integer)):
            i = int(index)
            if not -len(self) <= i < len(self):
                raise IndexError(f"face index {i} out of range for {len(self)} faces")
            return Face(
                box=self.boxes[i],
                score=float(self.scores[i]),
                keypoints=self.keypoints[i],
                landmarks=self.landmarks[i],
                landmark_score=float(self.landmark_scores[i]),
                pose=self.poses[i],
                expression=self.expressions[i],
                label=self.classes[int(self.expressions[i].argmax())],
                classes=self.classes,
                aus=None if self.aus is None else self.aus[i],
                au_names=self.au_names,
                valence_arousal=None if self.valence_arousal is None else self.valence_arousal[i],
                reason=None if self.reasons is None else self.reasons[i],
                unknown_score=None if self.unknown_scores is None else float(self.unknown_scores[i]),
                open_label=self.open_labels[i],
                blendshapes=None if self.blendshapes is None else self.blendshapes[i],
                blendshape_names=self.blendshape_names,
            )
        idx = np.asarray(index) if not isinstance(index, slice) else index
        if isinstance(idx, np.ndarray) and idx.dtype == bool and idx.shape != (len(self),):
            raise ShapeError("mask", f"({len(self)},)", idx.shape)
        return Faces(
            boxes=self.boxes[idx].reshape(-1, 4),
            scores=self.scores[idx],
            keypoints=self.keypoints[idx],
            landmarks=self.landmarks[idx],
            landmark_scores=self.landmark_scores[idx],
            poses=self.poses[idx],
            expressions=self.expressions[idx],
            classes=self.classes,
            aus=None if self.aus is None else self.aus[idx],
            au_names=self.au_names,
            valence_arousal=None if self.valence_arousal is None else self.valence_arousal[idx],
            reasons=None
            if self.reasons is None
            else tuple(np.asarray(self.reasons, dtype=object)[idx].tolist()),
            unknown_scores=None if self.unknown_scores is None else self.unknown_scores[idx],
            unknown_threshold=self.unknown_threshold,
            pspi=None if self.pspi is None else self.pspi[idx],
            va_source=self.va_source,
            blendshapes=None if self.blendshapes is None else self.blendshapes[idx],
            blendshape_names=self.blendshape_names,
        )

    def __iter__(self) -> Iterator[Face]:
        for i in range(len(self)):
            yield self[i]

    def to_records(self, landmarks: bool = False) -> list[dict[str, Any]]:
        """One flat dict per face (JSON/CSV friendly). ``landmarks=True`` adds the mesh as a list."""
        recs = []
        for i, f in enumerate(self):
            r: dict[str, Any] = {
                "face": i,
                "x1": float(f.box[0]),
                "y1": float(f.box[1]),
                "x2": float(f.box[2]),
                "y2": float(f.box[3]),
                "score": f.score,
                "landmark_score": f.landmark_score,
                "yaw": float(f.pose[0]),
                "pitch": float(f.pose[1]),
                "roll": float(f.pose[2]),
                "label": f.label,
                "label_score": float(f.expression.max()),
            }
            r.update({c: float(p) for c, p in zip(self.classes, f.expression, strict=True)})
            if f.unknown_score is not None:
                r["unknown_score"] = f.unknown_score
                r["open_label"] = f.open_label
            r.update(f.action_units)
            if self.pspi is not None:
                r["pspi"] = float(self.pspi[i])
            if f.valence_arousal is not None:
                r["valence"], r["arousal"] = float(f.valence_arousal[0]), float(f.valence_arousal[1])
                r["va_source"] = self.va_source
            if f.reason is not None:
                r["reason"] = f.reason
            r.update(f.blendshape_scores)
            if landmarks:
                r["landmarks"] = np.round(f.landmarks, 2).tolist()
            recs.append(r)
        return recs


@dataclass(frozen=True, eq=False)
class FrameResult:
    """Analysis of one image or video frame."""

    faces: Faces
    width: int
    height: int
    source: str | None = None
    frame_index: int | None = None
    timestamp: float | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_records(self, landmarks: bool = False) -> list[dict[str, Any]]:
        """One dict per face, prefixed with the source, frame index and timestamp."""
        head = {"source": self.source, "frame": self.frame_index, "time": self.timestamp}
        return [{**head, **r} for r in self.faces.to_records(landmarks=landmarks)]

    def to_dataframe(self, landmarks: bool = False) -> pd.DataFrame:
        """The records as a pandas DataFrame (needs pandas: ``pip install openfer[tables]``)."""
        from .io.tables import records_to_dataframe

        return records_to_dataframe(self.to_records(landmarks=landmarks), self.faces.classes)


__all__ = [
    "EXPRESSIONS",
    "KEYPOINT_NAMES",
    "POSE_NAMES",
    "Face",
    "Faces",
    "FrameResult",
]
