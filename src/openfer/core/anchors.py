"""SSD anchors and BlazeFace output decoding (MediaPipe's ``SsdAnchorsCalculator`` and
``TensorsToDetectionsCalculator`` re-implemented in numpy).

Coordinates here are normalised to the detector input square ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnchorSpec:
    input_size: int = 128
    strides: tuple[int, ...] = (8, 16, 16, 16)
    anchor_offset: float = 0.5
    # BlazeFace short range uses interpolated_scale_aspect_ratio=1 and one aspect ratio: 2 anchors
    # per layer per cell, all of unit size (fixed_anchor_size).
    anchors_per_layer: int = 2


# MediaPipe's SsdAnchorsCalculator options for its two face detectors (modules/face_detection/
# face_detection_{short,full}_range.pbtxt over face_detection.pbtxt; both fixed_anchor_size, one aspect
# ratio 1.0, anchor offset 0.5, box and keypoint offsets scaled by the input side).
# Short range: 128x128, num_layers 4, strides 8 16 16 16, interpolated_scale_aspect_ratio 1.0 -> 896.
SHORT_RANGE = AnchorSpec()
# Full range: 192x192, num_layers 1, stride 4, interpolated_scale_aspect_ratio 0.0 (no interpolated
# anchor: one per cell) -> a 48x48 grid, 2304 anchors.
FULL_RANGE = AnchorSpec(input_size=192, strides=(4,), anchors_per_layer=1)


def ssd_anchor_centers(spec: AnchorSpec = AnchorSpec()) -> np.ndarray:
    """Anchor centres ``(A, 2)`` (x, y) in [0, 1]; layers sharing a stride are merged per cell."""
    out = []
    i = 0
    strides = spec.strides
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        per_cell = spec.anchors_per_layer * (j - i)
        fm = int(np.ceil(spec.input_size / strides[i]))
        ys, xs = np.meshgrid(np.arange(fm), np.arange(fm), indexing="ij")
        c = np.stack([(xs + spec.anchor_offset) / fm, (ys + spec.anchor_offset) / fm], -1).reshape(-1, 1, 2)
        out.append(np.repeat(c, per_cell, axis=1).reshape(-1, 2))
        i = j
    return np.concatenate(out).astype(np.float64)


def decode_blazeface(
    raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, input_size: int = 128
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode ``(A, 16)`` regressors and ``(A,)`` logits.

    Returns ``boxes (A, 4)`` xyxy, ``scores (A,)`` in [0, 1] and ``keypoints (A, 6, 2)``, all normalised.
    Keypoints: right eye, left eye, nose tip, mouth centre, right ear tragion, left ear tragion
    (the subject's right/left).
    """
    r = np.asarray(raw_boxes, dtype=np.float64).reshape(len(anchors), -1) / float(input_size)
    cx = r[:, 0] + anchors[:, 0]
    cy = r[:, 1] + anchors[:, 1]
    w, h = r[:, 2], r[:, 3]
    boxes = np.empty((len(r), 4))  # filled by column (np.stack: ~3x the time for a few candidates)
    boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3] = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    kp = r[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
    logits = np.minimum(np.maximum(np.asarray(raw_scores, dtype=np.float64).reshape(-1), -100.0), 100.0)
    scores = 1.0 / (1.0 + np.exp(-logits))
    return boxes, scores, kp
