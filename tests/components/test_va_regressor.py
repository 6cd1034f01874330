"""The valence/arousal component's pure post-processing and the ``va_source`` field of Faces
(the model itself is trained and run in tests/train/test_valence_arousal.py)."""

from __future__ import annotations

import numpy as np
import pytest

from openfer.components.valence_arousal import postprocess_va
from openfer.errors import InputError
from openfer.types import Faces


def test_postprocess_averages_mirrors_and_clips():
    out = np.array([[0.2, 0.4], [1.0, -1.0], [0.4, 0.0], [1.0, -1.0]], np.float32)  # 2 faces, then mirrors
    np.testing.assert_allclose(postprocess_va(out, 2, flip=True), [[0.3, 0.2], [1.0, -1.0]], atol=1e-6)
    np.testing.assert_allclose(postprocess_va(np.array([[1.5, -3.0]]), 1, flip=False), [[1.0, -1.0]])


def _faces(**kw):
    n = 1
    return Faces(
        boxes=np.zeros((n, 4)),
        scores=np.ones(n),
        keypoints=np.zeros((n, 6, 2)),
        landmarks=np.zeros((n, 468, 3)),
        landmark_scores=np.ones(n),
        poses=np.zeros((n, 3)),
        expressions=np.full((n, 8), 1 / 8),
        **kw,
    )


def test_va_source_in_records_and_validated():
    f = _faces(valence_arousal=np.array([[0.1, -0.2]]), va_source="model")
    assert f.to_records()[0]["va_source"] == "model"
    assert f[np.array([True])].va_source == "model"
    assert "va_source" not in _faces().to_records()[0]
    with pytest.raises(InputError, match="va_source must be one of derived, model"):
        _faces(valence_arousal=np.zeros((1, 2)), va_source="guess")
    with pytest.raises(InputError, match="without valence_arousal"):
        _faces(va_source="model")
