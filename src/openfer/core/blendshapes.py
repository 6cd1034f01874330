"""MediaPipe's face blendshapes: the 52 names and the model's input, as pure numpy.

The blendshape model of MediaPipe's Face Landmarker v2 (``openfer/models/blendshapes.onnx``) takes
146 of the 478 Face Mesh v2 landmarks as ``(x * image width, y * image height)``, i.e. image pixels,
and returns 52 ARKit-style coefficients in [0, 1]. The subset, its order and the names are those of
MediaPipe's ``face_blendshapes_graph.cc`` (``kLandmarksSubsetIdxs``, ``kBlendshapeNames``); the model
removes translation and scale itself, not rotation or aspect ratio, so points are passed in pixels
exactly as MediaPipe does (a rolled head changes the coefficients there too).

This module imports nothing but numpy, so the conversion script can load it on its own.
"""

from __future__ import annotations

import numpy as np

BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft",
    "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
    "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)

# The 146 landmarks the model reads, in its input order (MediaPipe's kLandmarksSubsetIdxs); the last
# ten are the iris points 468-477, so the model needs 478-point landmarks.
BLENDSHAPE_LANDMARKS: tuple[int, ...] = (
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66,
    67, 70, 78, 80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136, 144, 145,
    146, 148, 149, 150, 152, 153, 154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173, 176,
    178, 181, 185, 191, 195, 197, 234, 246, 249, 251, 263, 267, 269, 270, 276, 282, 283, 284, 285,
    288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312, 314, 317, 318, 321, 323, 324, 332, 334,
    336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381, 382, 384, 385, 386, 387,
    388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472, 473, 474,
    475, 476, 477,
)


def blendshape_inputs(landmarks: np.ndarray) -> np.ndarray:
    """``(N, 146, 2)`` float32 model inputs from ``(N, 478, 2 or 3)`` landmarks in image pixels."""
    lm = np.asarray(landmarks)
    if lm.ndim != 3 or lm.shape[1] < 478:
        raise ValueError(f"blendshapes need (N, 478, 2+) landmarks, got shape {lm.shape}")
    return np.ascontiguousarray(lm[:, BLENDSHAPE_LANDMARKS, :2], dtype=np.float32)


def normalized_to_pixels(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """MediaPipe's normalised landmarks (x, y in [0, 1] of the image) -> image pixels."""
    lm = np.array(landmarks, dtype=np.float64)
    lm[..., 0] *= width
    lm[..., 1] *= height
    return lm
