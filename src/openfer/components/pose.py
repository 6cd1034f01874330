"""Head pose from the face mesh, aligned to MediaPipe's canonical face model (shipped as .obj)."""

from __future__ import annotations

import functools

import numpy as np

from ..core.pose import head_pose
from ..errors import WeightsError
from ..runtime.onnx import MODELS_DIR

# Rigid points for the fit: forehead, temples, nose bridge/tip, eye corners, cheekbones, chin —
# points that expressions barely move (no lips, brows or lids).
RIGID_INDEX = np.array(
    [10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 33, 133, 362, 263, 127, 356, 234, 454, 93, 323, 152, 148, 377,
     21, 251, 54, 284, 103, 332, 67, 297]
)


@functools.cache
def canonical_mesh() -> np.ndarray:
    """``(468, 3)`` vertices of ``canonical_face_model.obj`` (centimetres, X right, Y up, Z to camera)."""
    path = MODELS_DIR / "canonical_face_model.obj"
    if not path.is_file():
        raise WeightsError(f"{path}: canonical face model missing (broken install?)")
    verts = [
        [float(v) for v in line.split()[1:4]]
        for line in path.read_text().splitlines()
        if line.startswith("v ")
    ]
    arr = np.asarray(verts, dtype=np.float64)
    if arr.shape != (468, 3):
        raise WeightsError(f"{path}: expected 468 vertices, found {arr.shape[0]}")
    return arr


def estimate_pose(landmarks: np.ndarray) -> np.ndarray:
    """``(N, 3)`` yaw, pitch, roll in degrees from ``(N, 468+, 3)`` landmarks."""
    if len(landmarks) == 0:
        return np.zeros((0, 3))
    return head_pose(np.asarray(landmarks)[:, :468], canonical_mesh(), RIGID_INDEX)
