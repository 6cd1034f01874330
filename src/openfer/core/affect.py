"""Valence and arousal *derived* from expression probabilities (no V/A-labelled data is used).

Each FER+ class sits at a point of Russell's (1980) circumplex of affect; a face's valence/arousal is
the probability-weighted mean of those points. The coordinates are approximate positions of the
corresponding emotion words in Russell's circumplex (valence: unpleasant -1 .. pleasant +1; arousal:
calm -1 .. excited +1), rounded to one decimal: a stated convention, not a measurement. A model
trained on V/A labels (AffectNet-style CSV) is meant to replace this mapping.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ShapeError

CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "happiness": (0.8, 0.4),
    "surprise": (0.2, 0.8),
    "sadness": (-0.7, -0.4),
    "anger": (-0.6, 0.7),
    "disgust": (-0.7, 0.3),
    "fear": (-0.5, 0.8),
    "contempt": (-0.5, 0.2),
}


def valence_arousal(probs: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """``(N, 2)`` valence, arousal in [-1, 1] from ``(N, C)`` probabilities over ``classes``.

    Classes without a circumplex position (a user's own label set) contribute (0, 0).
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(classes):
        raise ShapeError("probs", f"(N, {len(classes)})", p.shape)
    coords = np.array([CIRCUMPLEX.get(c, (0.0, 0.0)) for c in classes])
    return np.clip(p @ coords, -1.0, 1.0)
