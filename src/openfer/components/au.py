"""Calibrated action-unit intensities from the face mesh and MediaPipe's blendshapes.

Each AU is read from its evidence channel (``openfer.core.au.AU_SOURCES``: a blendshape or a mesh
feature) and mapped onto the 0-5 scale fitted on FER2013Train and half of photos_dev
(``openfer/models/au_calibration.json``, ``scripts/calibrate_aus.py``): 0 at the neutral population's median, 1 at its 95th percentile, 4 at
the 90th percentile of the AU's prototype expressions. Without blendshapes (Face Mesh v1 without
iris, or ``blendshapes=False``) the blendshape-read AUs fall back to their calibrated geometric
feature.
"""

from __future__ import annotations

import functools
import json

import numpy as np

from ..core.au import (
    AU_NAMES,
    FEATURE_NAMES,
    AuCalibration,
    RigidFits,
    au_asymmetry,
    au_evidence,
    au_features,
    frontalize,
)
from ..core.blendshapes import BLENDSHAPE_NAMES
from ..errors import InputError, WeightsError
from ..runtime import verified_path
from .pose import reference_face


@functools.cache
def calibration() -> AuCalibration:
    """The shipped AU calibration (sha256-verified)."""
    path = verified_path("au_calibration")
    try:
        return AuCalibration.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, InputError) as e:
        raise WeightsError(f"{path}: not a valid AU calibration: {e}") from None


def estimate_evidence(
    landmarks: np.ndarray, blendshapes: np.ndarray | None = None, fits: RigidFits | None = None
) -> np.ndarray:
    """``(N, E)`` AU evidence (mesh features, then the 52 blendshapes or NaN) of image-space landmarks;
    ``fits``: their :func:`openfer.components.pose.rigid_fits`, where already computed."""
    if len(landmarks) == 0:
        return np.zeros((0, len(FEATURE_NAMES) + len(BLENDSHAPE_NAMES)))
    feats = au_features(frontalize(landmarks, reference_face(), fits))
    return au_evidence(feats, blendshapes, len(BLENDSHAPE_NAMES))


def estimate_aus(
    landmarks: np.ndarray,
    baseline: np.ndarray | None = None,
    blendshapes: np.ndarray | None = None,
    fits: RigidFits | None = None,
) -> np.ndarray:
    """``(N, len(AU_NAMES))`` calibrated AU intensities in [0, 5] from ``(N, 468+, 3)`` image-space
    landmarks and, when computed, their ``(N, 52)`` blendshapes.

    ``baseline``: a person's neutral evidence ``(E,)`` or ``(N, E)`` (see :func:`estimate_baseline`)
    instead of the population's neutral, for video of one person. ``fits``: the landmarks'
    :func:`openfer.components.pose.rigid_fits`, where already computed (the head pose uses them too).
    """
    if len(landmarks) == 0:
        return np.zeros((0, len(AU_NAMES)))
    return calibration().intensities(estimate_evidence(landmarks, blendshapes, fits), baseline)


def estimate_asymmetry(landmarks: np.ndarray) -> np.ndarray:
    """``(N, 2)`` one-sided AU12 / AU14 intensity, subject's left minus right (contempt; geometric)."""
    if len(landmarks) == 0:
        return np.zeros((0, 2))
    return au_asymmetry(landmarks, reference_face())


def estimate_baseline(evidence: np.ndarray) -> np.ndarray:
    """``(E,)`` neutral evidence of one person: the median of the ``(n, E)`` evidence of their resting
    frames (a channel missing in every frame stays NaN and uses the population neutral)."""
    ev = np.asarray(evidence, dtype=np.float64)
    if ev.ndim != 2 or len(ev) == 0:
        raise InputError("evidence: a baseline needs at least one face")
    out = np.full(ev.shape[1], np.nan)
    ok = ~np.isnan(ev).all(0)
    out[ok] = np.nanmedian(ev[:, ok], 0)
    return out


def reference_evidence() -> np.ndarray:
    """``(E,)`` the population neutral evidence of the shipped calibration."""
    return calibration().neutral.copy()


__all__ = [
    "AU_NAMES",
    "calibration",
    "estimate_asymmetry",
    "estimate_aus",
    "estimate_baseline",
    "estimate_evidence",
    "reference_evidence",
]
