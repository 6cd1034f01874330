"""Action-unit intensities from the face mesh, against openfer's reference (mean neutral) face."""

from __future__ import annotations

import numpy as np

from ..core.au import AU_NAMES, FEATURE_NAMES, au_asymmetry, au_intensities, neutral_baseline
from .pose import reference_face


def estimate_aus(landmarks: np.ndarray, baseline: np.ndarray | None = None) -> np.ndarray:
    """``(N, len(AU_NAMES))`` AU intensities in [0, 5] from ``(N, 468+, 3)`` image-space landmarks.

    ``baseline``: a person's neutral features ``(F,)`` (see :func:`estimate_baseline`) instead of the
    population reference, for video of one person.
    """
    if len(landmarks) == 0:
        return np.zeros((0, len(AU_NAMES)))
    return au_intensities(landmarks, reference_face(), baseline)


def estimate_asymmetry(landmarks: np.ndarray, baseline: np.ndarray | None = None) -> np.ndarray:
    """``(N, 2)`` one-sided AU12 / AU14 intensity, subject's left minus right (contempt)."""
    if len(landmarks) == 0:
        return np.zeros((0, 2))
    return au_asymmetry(landmarks, reference_face(), baseline)


def estimate_baseline(landmarks: np.ndarray) -> np.ndarray:
    """``(F,)`` neutral features of one person from landmarks of their resting frames."""
    return neutral_baseline(landmarks, reference_face())


__all__ = ["AU_NAMES", "FEATURE_NAMES", "estimate_aus", "estimate_asymmetry", "estimate_baseline"]
