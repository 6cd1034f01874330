"""The crop template: where the face mesh lands, on average, in the training images.

FER2013 crops are loose face boxes found by a detector, 48x48 grayscale. To give the classifier the
same framing at inference, we run the face mesh on the (upscaled) training crops and take the median
position of rigid landmarks; at inference each face is mapped onto these positions by a similarity
transform (``openfer.components.expression.align_matrices``). Uses ONNX Runtime only.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..components.landmarks import FaceMesh, rois_from_landmarks
from ..core.pose import RIGID_INDEX

# The rigid points plus six upper-forehead points: they frame the face like the detector box of
# FER2013's crops did (the shipped model's spec stores the list it was trained with).
TEMPLATE_INDEX: tuple[int, ...] = (*(int(i) for i in RIGID_INDEX), 54, 284, 103, 332, 67, 297)
UPSCALE = 4  # 48 -> 192 px, the face-mesh input size
PAD = 0.25  # border added around the crop so the face fits the mesh ROI


def mesh_on_crops(crops: np.ndarray, mesh: FaceMesh, passes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks ``(N, K, 3)`` in crop pixels (K = ``mesh.num_landmarks``: 478 with Face Mesh v2)
    and presence scores for ``(N, S, S)`` gray crops."""
    n, s = crops.shape[0], crops.shape[1]
    big = s * UPSCALE
    pad = int(big * PAD)
    out_lm = np.zeros((n, mesh.num_landmarks, 3))
    out_sc = np.zeros(n)
    for i, c in enumerate(crops):
        img = cv2.resize(c, (big, big), interpolation=cv2.INTER_CUBIC)
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        rgb = np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
        side = big + 2 * pad
        center, roi_side, angle = np.array([[side / 2, side / 2]]), np.array([big * 1.1]), np.zeros(1)
        for _ in range(passes):
            lm, sc = mesh(rgb, center, roi_side, angle)
            center, roi_side, angle = rois_from_landmarks(lm)
        out_lm[i] = (lm[0] - np.array([pad, pad, 0])) / UPSCALE
        out_sc[i] = sc[0]
    return out_lm, out_sc


def fit_template(landmarks: np.ndarray, scores: np.ndarray, size: int, min_score: float = 0.5) -> dict:
    """Median template positions in [0, 1] crop units, with spread statistics."""
    ok = scores >= min_score
    idx = np.asarray(TEMPLATE_INDEX)
    pts = landmarks[ok][:, idx, :2] / size
    med = np.median(pts, axis=0)
    return {
        "template_index": list(TEMPLATE_INDEX),
        "template": np.round(med, 5).tolist(),
        "n_used": int(ok.sum()),
        "n_total": int(len(scores)),
        "mad": float(np.median(np.abs(pts - med))),
    }
