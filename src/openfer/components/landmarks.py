"""MediaPipe Face Mesh -> 478 landmarks per face: Face Mesh v2 (the Face Landmarker's model: 478
points incl. the 10 iris points in one 192x192 pass, the default) or Face Mesh v1 (468 points) plus
the Iris model (5 points per eye).

Why v2 is the default (measured by ``scripts/compare_facemesh.py``, ``docs/models/facemesh_v2.json``):
on the same ROIs it takes one model call instead of three (v1 + two iris crops): 7.1 ms against
5.5 + 11.7 ms a face on one thread for the 478 points; its points agree with v1 + iris to 1.6 px (mean, at
192 px); and the blendshape model was made for its output. Its presence score is less saturated
than v1's (see ``AnalyzerOptions.landmark_threshold``).

ROIs follow MediaPipe's face_landmark_front graph: from a detection, a square of 1.5x the box's
longer side around the box centre, rotated so the eyes (keypoints 0 -> 1) are level; from previous
landmarks (tracking), the box of the mesh in the face's rotated frame, scaled 1.5. Iris ROIs are
squares of 2.3x the eye-corner distance around each eye, with the subject's left eye mirrored
because the iris model was trained on right eyes.
"""

from __future__ import annotations

import numpy as np

from ..core.align import (
    apply_affine,
    crop_rois,
    normalize_angle,
    roi_matrices,
    rois_from_keypoints,
    rotated_extent,
)
from ..errors import ModelError
from ..runtime import OnnxModel, as_model

MESH_SIZE = 192
IRIS_SIZE = 64
ROI_SCALE = 1.5
IRIS_ROI_SCALE = 2.3
# Mesh indices of the eye corners: subject's right eye (image left for a frontal face) and left eye.
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (362, 263)


def rois_from_detections(
    boxes: np.ndarray, keypoints: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mesh ROIs ``(center (N, 2), side (N,), angle (N,))`` from detector boxes and keypoints."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    center = (boxes[:, :2] + boxes[:, 2:]) / 2
    extent = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return rois_from_keypoints(keypoints[:, 0], keypoints[:, 1], center, extent, ROI_SCALE)


def rois_from_landmarks(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mesh ROIs from previous ``(N, K, 3)`` landmarks (rotation from the outer eye corners 33 -> 263)."""
    lm = np.asarray(landmarks, dtype=np.float64)[:, :468, :2]
    d = lm[:, 263] - lm[:, 33]
    angle = normalize_angle(np.arctan2(d[:, 1], d[:, 0]))
    center, side = rotated_extent(lm, angle)
    return center, side * ROI_SCALE, angle


def mesh_preprocess(image_rgb: np.ndarray, center, side, angle) -> tuple[np.ndarray, np.ndarray]:
    """Crops ``(N, 192, 192, 3)`` float32 in [0, 1] and crop->image matrices ``(N, 2, 3)``."""
    fwd, inv = roi_matrices(center, side, angle, MESH_SIZE)
    crops = crop_rois(image_rgb, fwd, MESH_SIZE).astype(np.float32)
    crops *= 1.0 / 255.0
    return crops, inv


def mesh_postprocess(
    raw: np.ndarray, flags: np.ndarray, inv: np.ndarray, side: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks ``(N, K, 3)`` (K = 468 for v1, 478 for v2) in image pixels and presence scores ``(N,)`` in [0, 1]."""
    pts = np.asarray(raw, dtype=np.float64).reshape(len(inv), -1, 3)
    xy = apply_affine(inv, pts[..., :2])
    z = pts[..., 2:] * (np.asarray(side).reshape(-1, 1, 1) / MESH_SIZE)
    score = 1.0 / (1.0 + np.exp(-np.clip(np.asarray(flags, dtype=np.float64).reshape(-1), -100, 100)))
    return np.concatenate([xy, z], -1), score


def iris_rois(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROIs for both eyes of each face, interleaved ``[right_0, left_0, right_1, ...]``."""
    lm = np.asarray(landmarks, dtype=np.float64)[:, :, :2]
    centers, sides, angles = [], [], []
    for a, b in (RIGHT_EYE_CORNERS, LEFT_EYE_CORNERS):
        p0, p1 = lm[:, a], lm[:, b]
        c, s, ang = rois_from_keypoints(
            p0, p1, (p0 + p1) / 2, np.linalg.norm(p1 - p0, axis=-1), IRIS_ROI_SCALE
        )
        centers.append(c)
        sides.append(s)
        angles.append(ang)
    # both eyes of a face share the face's roll: use the right eye's corner line for both so the
    # mirrored left eye is not rotated by 180 degrees
    return (
        np.stack(centers, 1).reshape(-1, 2),
        np.stack(sides, 1).reshape(-1),
        np.stack([angles[0], angles[0]], 1).reshape(-1),
    )


MESH_MODELS = ("facemesh_v2", "facemesh")


class FaceMesh:
    """Face landmarks: ``model="facemesh_v2"`` (478 points, iris included), or ``"facemesh"`` (v1:
    468 points, plus the 10 iris points from the Iris model when ``iris=True``; ``iris`` does not
    apply to v2, whose iris points come with the mesh). ``model`` and ``iris_model`` may be names or
    loaded :class:`~openfer.runtime.OnnxModel` s (named after a shipped mesh). ``runtime``: see
    :func:`openfer.runtime.as_model` (Face Mesh v2 has a LiteRT twin)."""

    def __init__(
        self,
        iris: bool = True,
        threads: int = 0,
        model: str | OnnxModel = "facemesh_v2",
        iris_model: str | OnnxModel = "iris",
        runtime: str = "auto",
    ) -> None:
        name = model.name if isinstance(model, OnnxModel) else model
        if name not in MESH_MODELS:
            raise ModelError(f"unknown face mesh {name!r}; choose one of {', '.join(MESH_MODELS)}")
        self.model_name = name
        self.model = as_model(model, threads, runtime)
        points = 478 if name == "facemesh_v2" else 468
        outs = self.model.session.get_outputs()
        self._lm_idx = next(i for i, o in enumerate(outs) if int(np.prod(o.shape[1:])) == points * 3)
        self._flag_idx = next(i for i, o in enumerate(outs) if int(np.prod(o.shape[1:])) == 1)
        self.iris = as_model(iris_model, threads, runtime) if iris and name == "facemesh" else None
        if self.iris is not None:
            io = self.iris.session.get_outputs()
            self._iris_idx = next(i for i, o in enumerate(io) if int(np.prod(o.shape[1:])) == 15)
        self._points = points

    @property
    def num_landmarks(self) -> int:
        return 478 if self.iris is not None or self._points == 478 else 468

    def __call__(self, image_rgb: np.ndarray, center, side, angle) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks ``(N, K, 3)`` and presence scores ``(N,)`` for the given ROIs."""
        n = len(np.asarray(side).reshape(-1))
        if n == 0:
            return np.zeros((0, self.num_landmarks, 3)), np.zeros(0)
        crops, inv = mesh_preprocess(image_rgb, center, side, angle)
        outs = self.model.run_batched(crops)
        raw, flags = outs[self._lm_idx], outs[self._flag_idx]
        lm, score = mesh_postprocess(raw, flags, inv, side)
        if self.iris is None:
            return lm, score
        return np.concatenate([lm, self._iris(image_rgb, lm)], axis=1), score

    def _iris(self, image_rgb: np.ndarray, lm: np.ndarray) -> np.ndarray:
        c, s, a = iris_rois(lm)
        fwd, inv = roi_matrices(c, s, a, IRIS_SIZE)
        crops = crop_rois(image_rgb, fwd, IRIS_SIZE).astype(np.float32) * (1.0 / 255.0)
        crops[1::2] = crops[1::2, :, ::-1]  # mirror the left eyes
        raw = self.iris.run_batched(crops)[self._iris_idx]
        pts = np.asarray(raw, dtype=np.float64).reshape(-1, 5, 3).copy()
        pts[1::2, :, 0] = IRIS_SIZE - pts[1::2, :, 0]  # un-mirror
        xy = apply_affine(inv, pts[..., :2])
        z = pts[..., 2:] * (s.reshape(-1, 1, 1) / IRIS_SIZE)
        iris = np.concatenate([xy, z], -1).reshape(len(lm), 10, 3)
        return iris
