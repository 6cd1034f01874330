"""The converted blendshape model against MediaPipe's own test vector, and its input convention."""

import json
from pathlib import Path

import numpy as np
import pytest

from openfer.components.blendshapes import Blendshapes
from openfer.core.blendshapes import (
    BLENDSHAPE_LANDMARKS,
    BLENDSHAPE_NAMES,
    blendshape_inputs,
    normalized_to_pixels,
)

VECTOR = Path(__file__).resolve().parents[1] / "assets" / "mediapipe" / "face_blendshapes_testvector.json"


@pytest.fixture(scope="module")
def model() -> Blendshapes:
    return Blendshapes(threads=1)


def test_mediapipe_test_vector(model):
    # face_blendshapes_in_landmarks.prototxt at image size (820, 1024) -> face_blendshapes_out.prototxt;
    # MediaPipe's own test allows 0.1, the ONNX conversion is held to 1e-4
    tv = json.loads(VECTOR.read_text())
    assert list(tv["blendshapes"]) == list(BLENDSHAPE_NAMES)
    lm = normalized_to_pixels(np.asarray(tv["landmarks"])[None], *tv["image_size"])
    got = model(lm)[0]
    want = np.array(list(tv["blendshapes"].values()))
    assert np.max(np.abs(got - want)) < 1e-4
    # the vector is a smile with lowered brows: the model says so
    assert got[BLENDSHAPE_NAMES.index("mouthSmileLeft")] > 0.9


def test_scale_and_translation_invariance(model):
    # the model normalises scale and translation itself: pixels of a 2x larger, shifted image agree
    tv = json.loads(VECTOR.read_text())
    lm = normalized_to_pixels(np.asarray(tv["landmarks"])[None], *tv["image_size"])
    moved = lm.copy()
    moved[..., :2] = lm[..., :2] * 2.0 + 37.0
    assert np.max(np.abs(model(moved) - model(lm))) < 1e-3


def test_subset_and_shapes(model):
    assert len(BLENDSHAPE_LANDMARKS) == 146 == len(set(BLENDSHAPE_LANDMARKS))
    assert list(BLENDSHAPE_LANDMARKS) == sorted(BLENDSHAPE_LANDMARKS)
    assert BLENDSHAPE_LANDMARKS[-10:] == tuple(range(468, 478))  # the iris points
    assert len(BLENDSHAPE_NAMES) == 52 and BLENDSHAPE_NAMES[0] == "_neutral"
    with pytest.raises(ValueError, match="478"):
        blendshape_inputs(np.zeros((1, 468, 3)))
    assert model(np.zeros((0, 478, 3))).shape == (0, 52)
