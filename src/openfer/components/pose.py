"""Head pose from the face mesh, aligned to openfer's reference face (the mean neutral FER+ mesh)."""

from __future__ import annotations

import functools

import numpy as np

from ..core.pose import RIGID_INDEX, head_pose
from ..errors import WeightsError
from ..runtime.onnx import model_path, registry, sha256_file


@functools.cache
def reference_face() -> np.ndarray:
    """``(468, 3)`` mean neutral face in the head frame (X right, Y up, Z to camera; inter-ocular
    distance 1), built from FER2013Train by ``scripts/build_mean_face.py``; sha256-verified."""
    path = model_path("mean_face")
    digest = sha256_file(path) if path.is_file() else None
    if digest != registry()["mean_face"]["sha256"]:
        raise WeightsError(f"{path}: missing or sha256 mismatch (broken install?)")
    arr = np.load(path).astype(np.float64)
    if arr.shape != (468, 3):
        raise WeightsError(f"{path}: expected (468, 3), found {arr.shape}")
    return arr


def estimate_pose(landmarks: np.ndarray) -> np.ndarray:
    """``(N, 3)`` yaw, pitch, roll in degrees from ``(N, 468+, 3)`` landmarks."""
    if len(landmarks) == 0:
        return np.zeros((0, 3))
    return head_pose(np.asarray(landmarks)[:, :468], reference_face(), RIGID_INDEX)
