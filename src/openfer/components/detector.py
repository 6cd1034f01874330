"""BlazeFace (MediaPipe face_detection_short_range) with multi-scale tiling for small faces.

The short-range model sees a 128x128 letterboxed square and finds faces covering roughly 10-90% of
it. To find small faces in large photos the detector also runs on overlapping square tiles whose
side is chosen from ``min_face``; detections are mapped back to the image and merged by weighted NMS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from ..core.align import apply_affine, invert_affine
from ..core.anchors import AnchorSpec, decode_blazeface, ssd_anchor_centers
from ..core.boxes import weighted_nms
from ..runtime import OnnxModel, as_model

log = logging.getLogger("openfer")

INPUT_SIZE = 128
# A face smaller than this fraction of a tile side is below what the short-range model finds reliably.
MIN_REL_FACE = 0.15


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # (N, 4) xyxy pixels
    scores: np.ndarray  # (N,)
    keypoints: np.ndarray  # (N, 6, 2) pixels

    def __len__(self) -> int:
        return len(self.scores)


def tile_windows(
    height: int, width: int, min_face: float | None, overlap: float = 0.3
) -> list[tuple[int, int, int]]:
    """Square windows ``(x0, y0, side)``: the whole image (letterboxed) first, then levels of
    overlapping tiles of halving side until a face of ``min_face`` pixels is at least
    ``MIN_REL_FACE`` of the tile side (and tiles stay >= 64 px)."""
    long, short = max(height, width), min(height, width)
    wins = [(0, 0, long)]
    if not min_face:
        return wins
    detectable = long * MIN_REL_FACE
    side = short if short < long else short // 2
    while detectable > min_face and side >= 64:
        step = max(int(side * (1 - overlap)), 1)
        ys = list(range(0, height - side + 1, step))
        xs = list(range(0, width - side + 1, step))
        if ys[-1] + side < height:
            ys.append(height - side)
        if xs[-1] + side < width:
            xs.append(width - side)
        wins += [(x, y, side) for y in ys for x in xs]
        detectable = side * MIN_REL_FACE
        side //= 2
    return wins


def letterbox_geometry(height: int, width: int) -> tuple[int, int, int, int]:
    """Size ``(nw, nh)`` and offset ``(px, py)`` of the whole image letterboxed into the input square."""
    s = INPUT_SIZE / max(height, width)
    nw, nh = max(int(round(width * s)), 1), max(int(round(height * s)), 1)
    return nw, nh, (INPUT_SIZE - nw) // 2, (INPUT_SIZE - nh) // 2


def preprocess(image_rgb: np.ndarray, wins: list[tuple[int, int, int]]) -> np.ndarray:
    """Resize each window into a 128x128 square scaled to [-1, 1]: ``(W, 128, 128, 3)`` float32.

    The first window is the whole image letterboxed (centred, black padding); the others are square
    crops. Windows are axis-aligned, so slicing + ``cv2.resize`` (INTER_AREA when shrinking) suffices.
    """
    h, w = image_rgb.shape[:2]
    out = np.zeros((len(wins), INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    for i, (x0, y0, side) in enumerate(wins):
        if i == 0:
            nw, nh, px, py = letterbox_geometry(h, w)
            src = image_rgb
        else:
            nw = nh = INPUT_SIZE
            px = py = 0
            src = image_rgb[y0 : y0 + side, x0 : x0 + side]
        interp = cv2.INTER_AREA if src.shape[0] > nh else cv2.INTER_LINEAR
        out[i, py : py + nh, px : px + nw] = cv2.resize(src, (nw, nh), interpolation=interp)
    x = out.astype(np.float32)
    x *= 2.0 / 255.0
    x -= 1.0
    return x


def window_matrices(height: int, width: int, wins: list[tuple[int, int, int]]) -> np.ndarray:
    """``(W, 2, 3)`` image -> detector-input matrices matching :func:`preprocess` exactly."""
    nw, nh, px, py = letterbox_geometry(height, width)
    mats = [np.array([[nw / width, 0.0, px], [0.0, nh / height, py]])]
    for x0, y0, side in wins[1:]:
        t = INPUT_SIZE / side
        mats.append(np.array([[t, 0.0, -x0 * t], [0.0, t, -y0 * t]]))
    return np.stack(mats)


def postprocess(
    raw_boxes: np.ndarray,
    raw_scores: np.ndarray,
    mats: np.ndarray,
    anchors: np.ndarray,
    score_threshold: float,
    nms_iou: float,
    edge_margin: float = 0.02,
) -> Detections:
    """Decode every window, drop detections cut by an inner tile edge, map to image pixels, merge."""
    all_b, all_s, all_k = [], [], []
    for w in range(len(mats)):
        b, s, k = decode_blazeface(raw_boxes[w], raw_scores[w], anchors, INPUT_SIZE)
        keep = s >= score_threshold
        if w > 0:  # tiles: a box touching the tile border is a partial face unless that is the image border
            keep &= (b[:, 0] > edge_margin) & (b[:, 1] > edge_margin)
            keep &= (b[:, 2] < 1 - edge_margin) & (b[:, 3] < 1 - edge_margin)
        if not keep.any():
            continue
        inv = invert_affine(mats[w])
        b, s, k = b[keep] * INPUT_SIZE, s[keep], k[keep] * INPUT_SIZE
        corners = apply_affine(inv, b.reshape(-1, 2, 2).reshape(-1, 2)).reshape(-1, 4)
        all_b.append(corners)
        all_s.append(s)
        all_k.append(apply_affine(inv, k.reshape(-1, 2)).reshape(-1, 6, 2))
    if not all_s:
        return Detections(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2)))
    b, s, k = weighted_nms(np.concatenate(all_b), np.concatenate(all_s), np.concatenate(all_k), nms_iou)
    return Detections(b, s, k)


class FaceDetector:
    """BlazeFace short-range on a pyramid of windows.

    Args:
        min_face: smallest face height (pixels) to look for; ``None`` runs on the whole image only.
        score_threshold: detector confidence to keep a face.
    """

    def __init__(
        self,
        min_face: float | None = 30.0,
        score_threshold: float = 0.5,
        nms_iou: float = 0.3,
        threads: int = 0,
        model: str | OnnxModel = "blazeface_short",
        max_windows: int = 400,
    ) -> None:
        self.model = as_model(model, threads)
        self.anchors = ssd_anchor_centers(AnchorSpec(input_size=INPUT_SIZE))
        self.min_face = min_face
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.max_windows = max_windows
        outs = self.model.session.get_outputs()
        # regressors (1, 896, 16) and classificators (1, 896, 1), in whatever order the graph has them
        self._box_idx = next(i for i, o in enumerate(outs) if o.shape[-1] == 16)
        self._score_idx = 1 - self._box_idx

    def windows(self, height: int, width: int) -> list[tuple[int, int, int]]:
        """Tiling for this image size; on very large images ``min_face`` is raised until at most
        ``max_windows`` windows remain (logged), so time and memory stay bounded."""
        min_face = self.min_face
        wins = tile_windows(height, width, min_face)
        while len(wins) > self.max_windows and min_face:
            min_face *= 1.25
            wins = tile_windows(height, width, min_face)
        if min_face != self.min_face:
            log.info(
                "%dx%d image: smallest face searched raised from %.0f to %.0f px (%d windows)",
                width,
                height,
                self.min_face,
                min_face,
                len(wins),
            )
        return wins

    def __call__(self, image_rgb: np.ndarray, whole_only: bool = False) -> Detections:
        """Faces in an RGB image; ``whole_only``: one pass over the whole image, no tiling (video
        uses it between full searches)."""
        h, w = image_rgb.shape[:2]
        wins = tile_windows(h, w, None) if whole_only else self.windows(h, w)
        mats = window_matrices(h, w, wins)
        x = preprocess(image_rgb, wins)
        outs = self.model.run_batched(x)
        return postprocess(
            outs[self._box_idx], outs[self._score_idx], mats, self.anchors, self.score_threshold, self.nms_iou
        )
