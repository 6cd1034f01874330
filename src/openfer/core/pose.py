"""Head pose from 3D landmarks by rigid alignment to MediaPipe's canonical face mesh.

Frame: X to the image's right, Y up, Z towards the camera. Angles in degrees:
``yaw > 0`` the face turns towards the image's right (the subject's left), ``pitch > 0`` the face
looks up, ``roll > 0`` the head tilts counter-clockwise as seen in the image. The rotation is
``R = Ry(yaw) @ Rx(-pitch) @ Rz(roll)`` applied to the canonical (frontal) mesh.
"""

from __future__ import annotations

import numpy as np

from .align import umeyama

# Rigid mesh points: eye corners, nose ridge and tip, forehead, temples, cheek edges. Expressions
# barely move them (no chin, lips, brows or lids), so head pose, frontalization (action units) and
# the reference face (scripts/build_mean_face.py) are all fitted on these.
RIGID_INDEX = np.array(
    [33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1, 10, 151, 9, 8, 127, 356, 234, 454, 93, 323]
)


def umeyama_3d(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Similarity ``dst ~ s * R @ src + t`` for ``(K, 3)`` point sets -> ``(R, s, t)``."""
    return umeyama(src, dst)


def landmarks_to_pose_frame(landmarks: np.ndarray) -> np.ndarray:
    """Image-space landmarks ``(..., K, 3)`` (x right, y down, z smaller = nearer) -> pose frame."""
    p = np.asarray(landmarks, dtype=np.float64)
    return p * np.array([1.0, -1.0, -1.0])


def rotation_to_euler(r: np.ndarray) -> tuple[float, float, float]:
    """``(yaw, pitch, roll)`` in degrees for ``R = Ry(yaw) @ Rx(-pitch) @ Rz(roll)``."""
    pitch_x = np.arcsin(np.clip(-r[1, 2], -1.0, 1.0))
    roll = np.arctan2(r[1, 0], r[1, 1])
    yaw = np.arctan2(r[0, 2], r[2, 2])
    return float(np.degrees(yaw)), float(-np.degrees(pitch_x)), float(np.degrees(roll))


def euler_to_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = np.radians([yaw, -pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return ry @ rx @ rz


def head_pose(landmarks: np.ndarray, canonical: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
    """``(N, 3)`` yaw/pitch/roll (degrees) for ``(N, 468+, 3)`` image-space landmarks.

    ``canonical`` is the ``(468, 3)`` canonical mesh in the pose frame; ``index`` selects the rigid
    points used for the fit (default: all 468).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    idx = np.arange(len(canonical)) if index is None else np.asarray(index)
    out = np.zeros((len(lm), 3))
    for i, face in enumerate(lm):
        r, _, _ = umeyama_3d(canonical[idx], landmarks_to_pose_frame(face[idx]))
        out[i] = rotation_to_euler(r)
    return out


def pose_from_fits(rotations: np.ndarray) -> np.ndarray:
    """``(N, 3)`` yaw/pitch/roll (degrees) from the ``(N, 3, 3)`` rotations of
    :func:`openfer.core.au.rigid_fits` (pose frame -> reference face): the head's rotation is their
    transpose, the same as :func:`head_pose` against that reference on :data:`RIGID_INDEX` computes
    (Procrustes' rotation from the reverse fit; equal to rounding, 1e-9 degrees in the tests)."""
    r = np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
    out = np.zeros((len(r), 3))
    for i, m in enumerate(r):
        out[i] = rotation_to_euler(m.T)
    return out
