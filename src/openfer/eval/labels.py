"""The FER+ label set, class-name synonyms and the FER+ vote protocols."""

from __future__ import annotations

import numpy as np

from ..types import EXPRESSIONS

FERPLUS_CLASSES: tuple[str, ...] = EXPRESSIONS
# Columns of FER+ ``label.csv`` after the file name and box: the 8 classes, then these two.
FERPLUS_VOTE_COLUMNS: tuple[str, ...] = FERPLUS_CLASSES + ("unknown", "NF")

_SYNONYMS: dict[str, str] = {
    "neutral": "neutral",
    "neutrality": "neutral",
    "calm": "neutral",
    "happy": "happiness",
    "happiness": "happiness",
    "joy": "happiness",
    "smile": "happiness",
    "surprise": "surprise",
    "surprised": "surprise",
    "sad": "sadness",
    "sadness": "sadness",
    "angry": "anger",
    "anger": "anger",
    "fear": "fear",
    "fearful": "fear",
    "scared": "fear",
    "disgust": "disgust",
    "disgusted": "disgust",
    "contempt": "contempt",
    "contemptuous": "contempt",
}


def canonical_label(name: str) -> str:
    """Map a class name to its canonical FER+ spelling (case-insensitive, common synonyms).

    Names that are not an expression synonym are returned lower-cased and stripped, so user
    label sets (e.g. ``engagement``) pass through unchanged.
    """
    key = name.strip().lower()
    return _SYNONYMS.get(key, key)


def majority_labels(votes: np.ndarray) -> np.ndarray:
    """FER+ "majority" protocol (Barsoum et al. 2016) on an ``(N, 10)`` vote array.

    Vote counts <= 1 are set to 0; the label is the class holding more than half of the remaining
    votes. Returns an ``(N,)`` int array with the class index in ``FERPLUS_CLASSES``, or -1 where
    there is no such class or it is ``unknown``/``NF`` (those images are dropped by the protocol).
    """
    v = np.asarray(votes, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != len(FERPLUS_VOTE_COLUMNS):
        raise ValueError(f"votes: expected shape (N, 10), got {v.shape}")
    v = np.where(v <= 1, 0.0, v)
    total = v.sum(axis=1)
    top = v.argmax(axis=1)
    has_majority = v[np.arange(len(v)), top] > total / 2.0
    ok = has_majority & (top < len(FERPLUS_CLASSES)) & (total > 0)
    return np.where(ok, top, -1).astype(np.int64)


def soft_targets(votes: np.ndarray) -> np.ndarray:
    """Vote distribution over the 8 classes (``unknown``/``NF`` and single stray votes removed)."""
    v = np.asarray(votes, dtype=np.float64)[:, : len(FERPLUS_CLASSES)]
    v = np.where(v <= 1, 0.0, v)
    s = v.sum(axis=1, keepdims=True)
    out = np.divide(v, s, out=np.zeros_like(v), where=s > 0)
    return out.astype(np.float32)
