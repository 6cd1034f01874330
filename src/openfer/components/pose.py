"""Head pose from the face mesh, aligned to openfer's reference face (the mean neutral FER+ mesh)."""

from __future__ import annotations

import functools

import numpy as np

from ..core.au import RigidFits
from ..core.au import rigid_fits as _rigid_fits
from ..core.pose import RIGID_INDEX, head_pose, pose_from_fits
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


def rigid_fits(landmarks: np.ndarray) -> RigidFits:
    """Per face, the similarity of its rigid mesh points onto the reference face
    (:func:`openfer.core.au.rigid_fits`): computed once, it gives both the head pose
    (:func:`estimate_pose`) and the AUs' frontalization (:func:`openfer.components.au.estimate_aus`)."""
    return _rigid_fits(landmarks, reference_face())


def estimate_pose(landmarks: np.ndarray, fits: RigidFits | None = None) -> np.ndarray:
    """``(N, 3)`` yaw, pitch, roll in degrees from ``(N, 468+, 3)`` landmarks; ``fits``: their
    :func:`rigid_fits`, where already computed."""
    if len(landmarks) == 0:
        return np.zeros((0, 3))
    if fits is not None:
        return pose_from_fits(fits[0])
    return head_pose(np.asarray(landmarks)[:, :468], reference_face(), RIGID_INDEX)
