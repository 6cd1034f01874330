"""BlazeFace (MediaPipe face detection) with multi-scale tiling for small faces.

The default short-range model (``blazeface_short``) sees a 128x128 letterboxed square and finds faces
covering roughly 15-90% of it. To find small faces in large photos the detector also runs on
overlapping square tiles whose side is chosen from ``min_face``; detections are mapped back to the
image and merged by weighted NMS. The dense full-range model (``blazeface_full``, 192x192, 2304
anchors) finds smaller faces relative to its input, so the same search needs fewer, larger tiles
(see :data:`DETECTOR_MODELS` and ``docs/speed.md``). Both share the pre- and post-processing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..core.align import apply_affine, invert_affine
from ..core.anchors import FULL_RANGE, SHORT_RANGE, AnchorSpec, decode_blazeface, ssd_anchor_centers
from ..core.boxes import weighted_nms
from ..errors import ModelError
from ..runtime import OnnxModel, as_model

log = logging.getLogger("openfer")

INPUT_SIZE = 128  # the short-range model's input side (the default detector)
# A face smaller than this fraction of a tile side is below what the short-range model finds reliably.
MIN_REL_FACE = 0.15


@dataclass(frozen=True)
class DetectorModel:
    """What the tiling and decoding need to know about one BlazeFace variant."""

    anchors: AnchorSpec  # SSD anchor layout; ``anchors.input_size`` is the square input side
    min_rel_face: float  # smallest face height, as a fraction of a window side, found reliably
    tiling: str  # default window scheme: "halving" (tile_windows) or "fitted" (fitted_windows)
    # > 1: one more window, the image centred in a square this many times its long side (black
    # around), for the faces too large for the model in the whole-image window (context_window)
    context: float = 1.0

    @property
    def input_size(self) -> int:
        return self.anchors.input_size


# By input side, so a model given as a path or a loaded session is recognised too. Full range: with
# fitted tiles and min_face 30, the fixture mosaic (benchmarks/detection_recall.py) keeps 45/45 from
# 25 px faces at 0.09 and loses 7 of 45 at 0.085; 0.10 keeps a margin (docs/speed.md, "Detection:
# full-range BlazeFace"). In crops the full-range model finds ~100% of faces from 0.10-0.12 of the
# window side, the short-range one from 0.15.
# The full-range model misses faces above about half its input: on the whole 256 px photos of
# photos_dev (faces ~0.9 of the side) it finds 66/300 letterboxed as they are, 292 in a window 1.6x
# the side, 300 at 2x; on FER2013Valid crops upscaled to 192 px (the face larger than the image)
# 278/300 at 2x, 285 at 2.5x, 288 at 3x, where the short-range model finds 286. At 2.5x the window
# trusts faces from 0.25 of the long side, which the whole-image window (from 0.10) overlaps.
FULL_RANGE_CONTEXT = 2.5
DETECTOR_MODELS: dict[int, DetectorModel] = {
    128: DetectorModel(SHORT_RANGE, MIN_REL_FACE, "halving"),
    192: DetectorModel(FULL_RANGE, 0.10, "fitted", FULL_RANGE_CONTEXT),
}
TILINGS = ("halving", "fitted")


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # (N, 4) xyxy pixels
    scores: np.ndarray  # (N,)
    keypoints: np.ndarray  # (N, 6, 2) pixels

    def __len__(self) -> int:
        return len(self.scores)


def tile_windows(
    height: int, width: int, min_face: float | None, overlap: float = 0.3, min_rel: float = MIN_REL_FACE
) -> list[tuple[int, int, int]]:
    """Square windows ``(x0, y0, side)``: the whole image (letterboxed) first, then levels of
    overlapping tiles of halving side until a face of ``min_face`` pixels is at least ``min_rel``
    of the tile side (and tiles stay >= 64 px)."""
    long, short = max(height, width), min(height, width)
    wins = [(0, 0, long)]
    if not min_face:
        return wins
    detectable = long * min_rel
    side = short if short < long else short // 2
    while detectable > min_face and side >= 64:
        wins += _level(height, width, side, overlap)
        detectable = side * min_rel
        side //= 2
    return wins


def _level(height: int, width: int, side: int, overlap: float) -> list[tuple[int, int, int]]:
    """Overlapping square tiles of one side covering the image, the last row and column flush
    with its far edges."""
    step = max(int(side * (1 - overlap)), 1)
    ys = list(range(0, height - side + 1, step))
    xs = list(range(0, width - side + 1, step))
    if ys[-1] + side < height:
        ys.append(height - side)
    if xs[-1] + side < width:
        xs.append(width - side)
    return [(x, y, side) for y in ys for x in xs]


def fitted_windows(
    height: int, width: int, min_face: float | None, overlap: float = 0.3, min_rel: float = MIN_REL_FACE
) -> list[tuple[int, int, int]]:
    """Square windows ``(x0, y0, side)``: the whole image (letterboxed) first, then the fewest levels
    of overlapping tiles that cover every face from ``min_face`` up to what the whole-image pass
    finds (``min_rel`` of the long side), coarsest level first.

    The finest level's side puts a ``min_face`` face at ``min_rel`` of it; each level holds faces up
    to ``overlap`` of its side wholly inside one tile, so the next coarser level's side puts that
    face at ``min_rel``: sides grow by ``overlap / min_rel`` (2x for the short-range model, as
    :func:`tile_windows` halves; 3x for the full-range one). Tiles stay within the short side and
    at least 64 px."""
    long, short = max(height, width), min(height, width)
    wins = [(0, 0, long)]
    if not min_face:
        return wins
    sides: list[int] = []
    need = float(min_face)  # the smallest face not yet held by a level
    while need < long * min_rel:
        side = min(max(int(need / min_rel), 64), short)
        if sides and side <= sides[-1]:  # clamped to the short side (a panorama): nothing larger fits
            break
        sides.append(side)
        need = overlap * side
    for side in reversed(sides):
        wins += _level(height, width, side, overlap)
    return wins


def context_window(height: int, width: int, context: float) -> tuple[int, int, int]:
    """The square ``(x0, y0, side)`` of ``context`` times the long side centred on the image (``x0``,
    ``y0`` negative: it reaches beyond the image, which :func:`preprocess` pads with black)."""
    side = int(round(context * max(height, width)))
    return (width - side) // 2, (height - side) // 2, side


def letterbox_geometry(height: int, width: int, size: int = INPUT_SIZE) -> tuple[int, int, int, int]:
    """Size ``(nw, nh)`` and offset ``(px, py)`` of the whole image letterboxed into the input square."""
    s = size / max(height, width)
    nw, nh = max(int(round(width * s)), 1), max(int(round(height * s)), 1)
    return nw, nh, (size - nw) // 2, (size - nh) // 2


def preprocess(image_rgb: np.ndarray, wins: list[tuple[int, int, int]], size: int = INPUT_SIZE) -> np.ndarray:
    """Resize each window into a ``size`` square scaled to [-1, 1]: ``(W, size, size, 3)`` float32.

    The first window is the whole image letterboxed (centred, black padding); the others are square
    crops, black where they reach beyond the image (:func:`context_window`). Windows are
    axis-aligned, so slicing + ``cv2.resize`` (INTER_AREA when shrinking) suffices.
    """
    h, w = image_rgb.shape[:2]
    out = np.zeros((len(wins), size, size, 3), np.uint8)
    for i, (x0, y0, side) in enumerate(wins):
        if i == 0:
            nw, nh, px, py = letterbox_geometry(h, w, size)
            src = image_rgb
        elif x0 < 0 or y0 < 0 or x0 + side > w or y0 + side > h:
            t = size / side  # the part of the image inside the window, placed where it falls
            cx0, cy0 = max(x0, 0), max(y0, 0)
            cx1, cy1 = min(x0 + side, w), min(y0 + side, h)
            px, py = int(round((cx0 - x0) * t)), int(round((cy0 - y0) * t))
            nw = min(max(int(round((cx1 - cx0) * t)), 1), size - px)
            nh = min(max(int(round((cy1 - cy0) * t)), 1), size - py)
            src = image_rgb[cy0:cy1, cx0:cx1]
        else:
            nw = nh = size
            px = py = 0
            src = image_rgb[y0 : y0 + side, x0 : x0 + side]
        interp = cv2.INTER_AREA if src.shape[0] > nh else cv2.INTER_LINEAR
        out[i, py : py + nh, px : px + nw] = cv2.resize(src, (nw, nh), interpolation=interp)
    x = out.astype(np.float32)
    x *= 2.0 / 255.0
    x -= 1.0
    return x


def window_matrices(
    height: int, width: int, wins: list[tuple[int, int, int]], size: int = INPUT_SIZE
) -> np.ndarray:
    """``(W, 2, 3)`` image -> detector-input matrices matching :func:`preprocess` exactly."""
    nw, nh, px, py = letterbox_geometry(height, width, size)
    mats = [np.array([[nw / width, 0.0, px], [0.0, nh / height, py]])]
    for x0, y0, side in wins[1:]:
        t = size / side
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
    size: int = INPUT_SIZE,
    min_height: np.ndarray | None = None,
) -> Detections:
    """Decode every window, drop detections cut by an inner tile edge, map to image pixels, merge.
    ``size``: the detector's input side (the scale of its box and keypoint offsets);
    ``min_height``: per window, the smallest box height (fraction of the window) kept from it (the
    context window's small, coarse detections would pull the merged box of a face another window
    sees sharply)."""
    all_b, all_s, all_k = [], [], []
    # the score test on the logits first, so only the few candidate anchors of each window are decoded
    # (2,304 per full-range window, almost all far below the threshold); the same detections result
    p = min(max(float(score_threshold), 1e-12), 1 - 1e-12)
    min_logit = math.log(p / (1 - p)) - 1e-6  # a superset: the exact test on the scores follows
    for w in range(len(mats)):
        cand = np.flatnonzero(np.asarray(raw_scores[w]).reshape(-1) >= min_logit)
        if len(cand) == 0:
            continue
        b, s, k = decode_blazeface(np.asarray(raw_boxes[w]).reshape(len(anchors), -1)[cand],
                                   np.asarray(raw_scores[w]).reshape(-1)[cand], anchors[cand], size)
        keep = s >= score_threshold
        if min_height is not None and min_height[w] > 0:
            keep &= (b[:, 3] - b[:, 1]) >= min_height[w]
        if w > 0:  # tiles: a box touching the tile border is a partial face unless that is the image border
            keep &= (b[:, 0] > edge_margin) & (b[:, 1] > edge_margin)
            keep &= (b[:, 2] < 1 - edge_margin) & (b[:, 3] < 1 - edge_margin)
        if not keep.any():
            continue
        inv = invert_affine(mats[w])
        b, s, k = b[keep] * size, s[keep], k[keep] * size
        corners = apply_affine(inv, b.reshape(-1, 2, 2).reshape(-1, 2)).reshape(-1, 4)
        all_b.append(corners)
        all_s.append(s)
        all_k.append(apply_affine(inv, k.reshape(-1, 2)).reshape(-1, 6, 2))
    if not all_s:
        return Detections(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2)))
    b, s, k = weighted_nms(np.concatenate(all_b), np.concatenate(all_s), np.concatenate(all_k), nms_iou)
    return Detections(b, s, k)


class FaceDetector:
    """BlazeFace on a pyramid of windows: short range (the default) or full range.

    Args:
        min_face: smallest face height (pixels) to look for; ``None`` runs on the whole image only.
        score_threshold: detector confidence to keep a face.
        model: ``"blazeface_short"`` (128x128), ``"blazeface_full"`` (192x192, dense full range), a
            path or a loaded :class:`~openfer.runtime.OnnxModel`; the variant is told by its input side.
        min_rel_face: smallest face height a window is trusted with, as a fraction of its side;
            ``None``: the variant's (:data:`DETECTOR_MODELS`). Smaller values mean fewer, larger tiles.
        tiling: ``"halving"`` (:func:`tile_windows`, the short-range default) or ``"fitted"``
            (:func:`fitted_windows`, the full-range default); ``None``: the variant's.
        context: > 1 adds a window of this many times the image's long side, the image centred in
            it (:func:`context_window`), for faces too large for the model in the whole-image window;
            ``None``: the variant's (1, none, for short range; :data:`FULL_RANGE_CONTEXT` for full range).
        runtime: ``"auto"``, ``"onnxruntime"`` or ``"litert"`` (:func:`openfer.runtime.as_model`).
    """

    def __init__(
        self,
        min_face: float | None = 30.0,
        score_threshold: float = 0.5,
        nms_iou: float = 0.3,
        threads: int = 0,
        model: str | OnnxModel = "blazeface_short",
        max_windows: int = 400,
        min_rel_face: float | None = None,
        tiling: str | None = None,
        context: float | None = None,
        runtime: str = "auto",
    ) -> None:
        self.model = as_model(model, threads, runtime)
        shape = self.model.session.get_inputs()[0].shape
        side = shape[1] if len(shape) == 4 else None
        if side not in DETECTOR_MODELS or shape[2] != side or shape[3] != 3:
            raise ModelError(
                f"{self.model.name}: input {shape} is not a BlazeFace detector's "
                f"(N, S, S, 3) with S in {sorted(DETECTOR_MODELS)}"
            )
        self.variant = DETECTOR_MODELS[side]
        self.input_size = side
        self.min_rel_face = self.variant.min_rel_face if min_rel_face is None else float(min_rel_face)
        self.tiling = self.variant.tiling if tiling is None else tiling
        self.context = self.variant.context if context is None else float(context)
        if not self.context >= 1.0:
            raise ValueError(f"context: expected a number >= 1, got {context!r}")
        if self.tiling not in TILINGS:
            raise ValueError(f"tiling: expected one of {', '.join(TILINGS)}, got {self.tiling!r}")
        self._tile = tile_windows if self.tiling == "halving" else fitted_windows
        self.anchors = ssd_anchor_centers(self.variant.anchors)
        self.min_face = min_face
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.max_windows = max_windows
        outs = self.model.session.get_outputs()
        # regressors (1, A, 16) and classificators (1, A, 1), in whatever order the graph has them
        shapes = sorted(tuple(o.shape[1:]) for o in outs)
        if shapes != [(len(self.anchors), 1), (len(self.anchors), 16)]:
            raise ModelError(
                f"{self.model.name}: outputs {shapes} are not BlazeFace's (A, 1) scores and (A, 16) "
                f"regressors for the {len(self.anchors)} anchors of a {side}x{side} input"
            )
        self._box_idx = next(i for i, o in enumerate(outs) if o.shape[-1] == 16)
        self._score_idx = 1 - self._box_idx

    def windows(self, height: int, width: int, whole_only: bool = False) -> list[tuple[int, int, int]]:
        """Tiling for this image size (the whole image, the context window when the variant has one,
        then the tiles); on very large images ``min_face`` is raised until at most ``max_windows``
        windows remain (logged), so time and memory stay bounded."""
        wins = self._tiles(height, width, whole_only)
        if self.context > 1:
            wins.insert(1, context_window(height, width, self.context))
        return wins

    def _tiles(self, height: int, width: int, whole_only: bool) -> list[tuple[int, int, int]]:
        if whole_only:
            return tile_windows(height, width, None)
        min_face = self.min_face
        wins = self._tile(height, width, min_face, min_rel=self.min_rel_face)
        while len(wins) > self.max_windows and min_face:
            min_face *= 1.25
            wins = self._tile(height, width, min_face, min_rel=self.min_rel_face)
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
        wins = self.windows(h, w, whole_only)
        mats = window_matrices(h, w, wins, self.input_size)
        x = preprocess(image_rgb, wins, self.input_size)
        outs = self.model.run_batched(x)
        min_height = None
        if self.context > 1:  # the context window (index 1) keeps only faces it is trusted with
            min_height = np.zeros(len(wins))
            min_height[1] = self.min_rel_face
        return postprocess(
            outs[self._box_idx],
            outs[self._score_idx],
            mats,
            self.anchors,
            self.score_threshold,
            self.nms_iou,
            size=self.input_size,
            min_height=min_height,
        )
