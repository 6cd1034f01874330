"""BlazeFace (MediaPipe face detection) with multi-scale tiling for small faces.

The default short-range model (``blazeface_short``) sees a 128x128 letterboxed square and finds faces
covering roughly 15-90% of it. To find small faces in large photos the detector also runs on
overlapping square tiles whose side is chosen from ``min_face``; detections are mapped back to the
image and merged by weighted NMS. The dense full-range model (``blazeface_full``, 192x192, 2304
anchors) finds smaller faces relative to its input, so the same search needs fewer, larger tiles
(see :data:`DETECTOR_MODELS` and ``docs/speed.md``). Both share the pre- and post-processing.
"""

from __future__ import annotations

import functools
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
TILINGS = ("halving", "fitted", "dense")
# A detection this close to a tile's (or an inner crop's) edge, as a fraction of the input side, is
# a face the edge cuts: a neighbouring tile or crop holds it whole.
EDGE_MARGIN = 0.02

# Dense passes (tiling "dense", a full-range model whose graph takes any input size): each level of
# fitted_windows becomes one pass over the whole image scaled so that the level's tile side maps onto
# the model's 192 px, instead of overlapping 192 px tiles. The graph halves its input five times, so
# input sides are multiples of 32 (the scaled image padded black on the right and bottom), where each
# stage's explicit padding equals TensorFlow's 'SAME' that the model was trained with. A level wider
# than DENSE_MAX_SIDE runs in equal crops that overlap by DENSE_OVERLAP input pixels, more than the
# largest face a level holds (0.3 of 192 px; the next level or the whole-image window takes larger
# ones), so each face lies wholly in some crop.
#
# A dense pass sees each face once, at one sampling phase, where overlapping tiles see most faces
# two to four times. At the tiles' scale (a min_face face at 0.10 of 192) the fixture mosaic
# (benchmarks/detection_recall.py, counted at four offsets) gives 161 of 180 faces at 25 px and 174 at
# 28 px, against 178 and 180 for fitted tiles; scaled so a min_face face is 0.12 of 192, 176 and 180,
# and 45/45 from 25 px on the unshifted mosaic as the tiles (docs/speed.md, "Dense detection passes").
DENSE_MIN_REL = 0.12
DENSE_STRIDE = 32
DENSE_MAX_SIDE = 1024
DENSE_OVERLAP = 128


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
    wins = [(0, 0, max(height, width))]
    for side in reversed(fitted_sides(height, width, min_face, overlap, min_rel)):
        wins += _level(height, width, side, overlap)
    return wins


def fitted_sides(
    height: int,
    width: int,
    min_face: float | None,
    overlap: float = 0.3,
    min_rel: float = MIN_REL_FACE,
    whole_rel: float | None = None,
) -> list[int]:
    """The tile side of each level of :func:`fitted_windows`, finest first (none without ``min_face``);
    levels stop where the whole-image window trusts faces (``whole_rel`` of the long side, default
    ``min_rel``)."""
    long, short = max(height, width), min(height, width)
    sides: list[int] = []
    if not min_face:
        return sides
    need = float(min_face)  # the smallest face not yet held by a level
    while need < long * (min_rel if whole_rel is None else whole_rel):
        side = min(max(int(need / min_rel), 64), short)
        if sides and side <= sides[-1]:  # clamped to the short side (a panorama): nothing larger fits
            break
        sides.append(side)
        need = overlap * side
    return sides


@dataclass(frozen=True)
class DensePass:
    """One pass of a fully convolutional detector over (a crop of) the image scaled by ``scale``."""

    scale: float  # input pixels per image pixel
    scaled: tuple[int, int]  # the whole scaled image, (width, height)
    x0: int  # the crop's origin in the scaled image
    y0: int
    width: int  # the input's size (multiples of DENSE_STRIDE)
    height: int
    # which crop edges (left, top, right, bottom) lie inside the scaled image: a detection touching
    # one is a face cut by the crop, which a neighbouring crop holds whole
    inner: tuple[bool, bool, bool, bool]


def _crop_side(length: int, max_side: int, overlap: int, stride: int) -> int:
    """The whole ``length`` rounded up to ``stride`` when that fits in ``max_side``; else the side of
    the fewest equal crops of at most ``max_side`` that cover it overlapping by ``overlap``."""
    whole = -(-length // stride) * stride
    if whole <= max_side:
        return whole
    n = -(-(length - overlap) // (max_side - overlap))
    need = -(-(length + (n - 1) * overlap) // n)  # n crops of this side, overlapping, span the length
    return min(-(-need // stride) * stride, max_side)


def _crop_starts(length: int, crop: int, overlap: int) -> list[int]:
    if length <= crop:
        return [0]
    step = crop - overlap
    starts = list(range(0, length - crop, step))
    return starts + [length - crop]


def dense_passes(
    height: int,
    width: int,
    sides: list[int],
    size: int,
    max_side: int = DENSE_MAX_SIDE,
    overlap: int = DENSE_OVERLAP,
    stride: int = DENSE_STRIDE,
) -> list[DensePass]:
    """The passes that stand for fitted tiles of each side in ``sides``: the image scaled by
    ``size / side``, whole when it fits in ``max_side`` (rounded up to ``stride``), else in the fewest
    equal crops of at most ``max_side`` overlapping by at least ``overlap``."""
    out = []
    for side in sides:
        scale = size / side
        sw, sh = max(int(round(width * scale)), 1), max(int(round(height * scale)), 1)
        cw, ch = _crop_side(sw, max_side, overlap, stride), _crop_side(sh, max_side, overlap, stride)
        for y0 in _crop_starts(sh, ch, overlap):
            for x0 in _crop_starts(sw, cw, overlap):
                inner = (x0 > 0, y0 > 0, x0 + cw < sw, y0 + ch < sh)
                out.append(DensePass(scale, (sw, sh), x0, y0, cw, ch, inner))
    return out


def dense_input(
    image_rgb: np.ndarray, passes: list[DensePass], scaled: dict[tuple[int, int], np.ndarray] | None = None
) -> list[np.ndarray]:
    """Each pass's input ``(1, height, width, 3)`` float32 in [-1, 1], black beyond the image; the
    passes of one scale share one ``cv2.resize`` (INTER_AREA when shrinking), kept in ``scaled``
    (by ``(width, height)``) when a dict is given."""
    h, w = image_rgb.shape[:2]
    out = []
    scaled = {} if scaled is None else scaled
    for p in passes:
        if p.scaled not in scaled:
            sw, sh = p.scaled
            interp = cv2.INTER_AREA if sh < h else cv2.INTER_LINEAR
            scaled[p.scaled] = cv2.resize(image_rgb, (sw, sh), interpolation=interp)
        src = scaled[p.scaled][p.y0 : p.y0 + p.height, p.x0 : p.x0 + p.width]
        x = np.empty((1, p.height, p.width, 3), np.float32)
        sh, sw = src.shape[:2]
        x[0, sh:] = -1.0  # black beyond the image (filled there only: the rest is written below)
        x[0, :sh, sw:] = -1.0
        part = x[0, :sh, :sw]
        part[...] = src  # then scaled in float32, as preprocess does
        part *= 2.0 / 255.0
        part -= 1.0
        out.append(x)
    return out


def dense_matrix(height: int, width: int, p: DensePass) -> np.ndarray:
    """``(2, 3)`` image -> input matrix of a dense pass, matching :func:`dense_input`."""
    sw, sh = p.scaled
    return np.array([[sw / width, 0.0, -p.x0], [0.0, sh / height, -p.y0]])


def dense_anchors(p: DensePass, spec: AnchorSpec) -> np.ndarray:
    """Anchor centres of a dense pass's grid, in units of the model's nominal input side (as
    :func:`~openfer.core.anchors.decode_blazeface` expects them for a ``spec.input_size`` input).
    Read-only: one array per grid and spec, kept (a pass's grid depends only on its size)."""
    return _grid_anchors(p.height, p.width, spec)


@functools.lru_cache(maxsize=64)
def _grid_anchors(height: int, width: int, spec: AnchorSpec) -> np.ndarray:
    stride = spec.strides[0]
    gh, gw = height // stride, width // stride
    ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    c = np.stack([xs + spec.anchor_offset, ys + spec.anchor_offset], -1).reshape(-1, 2)
    out = c * (stride / spec.input_size)
    out.setflags(write=False)
    return out


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


def preprocess(
    image_rgb: np.ndarray, wins: list[tuple[int, int, int]], size: int = INPUT_SIZE, whole: np.ndarray | None = None
) -> np.ndarray:
    """Resize each window into a ``size`` square scaled to [-1, 1]: ``(W, size, size, 3)`` float32.

    The first window is the whole image letterboxed (centred, black padding); the others are square
    crops, black where they reach beyond the image (:func:`context_window`). Windows are
    axis-aligned, so slicing + ``cv2.resize`` (INTER_AREA when shrinking; the whole image, when no
    ``whole`` is given, by :func:`shrink`) suffices. ``whole``: the
    image already shrunk (its full extent, e.g. a dense pass's scaled image), read instead of it by
    the windows that hold the whole image when they shrink it further (the same geometry, a
    cheaper resize).
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
        if whole is not None and src.shape[:2] == (h, w) and whole.shape[0] > nh:
            src = whole
        elif i == 0:
            out[i, py : py + nh, px : px + nw] = shrink(src, nw, nh)
            continue
        interp = cv2.INTER_AREA if src.shape[0] > nh else cv2.INTER_LINEAR
        out[i, py : py + nh, px : px + nw] = cv2.resize(src, (nw, nh), interpolation=interp)
    x = out.astype(np.float32)
    x *= 2.0 / 255.0
    x -= 1.0
    return x


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` resized to ``(width, height)``: INTER_AREA when shrinking, INTER_LINEAR otherwise.

    OpenCV's INTER_AREA is fast only at exact integer factors (a 572x562 photo to 128x126: 1.07 ms on
    one core, against 0.08 ms for an exact halving), so the image is first halved exactly (2x2 means)
    while both its sides are even and at least 4x the target's; what is left after a halving, when
    under 2.5x, is a bilinear step (the box filter of the halving has done the anti-aliasing; as
    MediaPipe's own detector input is sampled), else an INTER_AREA one. ``single_face.jpg``: 0.12 ms.
    An integer factor (a 640x360 frame to 128x72) or an odd side is one INTER_AREA step, as before. The
    geometry is exact (a halving of even sides maps pixel edges onto pixel edges). Against a face-mesh
    keypoint reference the short-range detector's keypoint error per face height is unchanged
    (``benchmarks/ab_detector_shrink.py``; ``docs/speed.md``, "The whole-image shrink").
    """
    h, w = image.shape[:2]
    if h <= height:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    if h % height == 0 and w % width == 0 and h // height == w // width:  # already OpenCV's fast path
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    halved = False
    while h % 2 == 0 and w % 2 == 0 and h >= 4 * height and w >= 4 * width:
        h, w, halved = h // 2, w // 2, True
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    last = cv2.INTER_LINEAR if halved and h < 2.5 * height else cv2.INTER_AREA
    return cv2.resize(image, (width, height), interpolation=last)


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
    edge_margin: float = EDGE_MARGIN,
    size: int = INPUT_SIZE,
    min_height: np.ndarray | None = None,
) -> Detections:
    """Decode every window, drop detections cut by an inner tile edge, map to image pixels, merge
    (:func:`decode_windows`, then :func:`merge`)."""
    parts = decode_windows(raw_boxes, raw_scores, mats, anchors, score_threshold, edge_margin, size, min_height)
    return merge(parts, nms_iou)


def decode_windows(
    raw_boxes: np.ndarray,
    raw_scores: np.ndarray,
    mats: np.ndarray,
    anchors: np.ndarray,
    score_threshold: float,
    edge_margin: float = EDGE_MARGIN,
    size: int = INPUT_SIZE,
    min_height: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """:func:`decode_window` of each square window, the first the whole image, the others tiles
    (detections within ``edge_margin`` of a tile's edge dropped). ``size``: the detector's input
    side (the scale of its box and keypoint offsets); ``min_height``: per window, the smallest box
    height (fraction of the window) kept from it (the context window's small, coarse detections
    would pull the merged box of a face another window sees sharply)."""
    parts = []
    for w in range(len(mats)):
        edges = None if w == 0 else (edge_margin, edge_margin, 1 - edge_margin, 1 - edge_margin)
        mh = float(min_height[w]) if min_height is not None else 0.0
        parts.append(decode_window(raw_boxes[w], raw_scores[w], mats[w], anchors, score_threshold, size, mh, edges))
    return parts


def decode_window(
    raw_boxes: np.ndarray,
    raw_scores: np.ndarray,
    mat: np.ndarray,
    anchors: np.ndarray,
    score_threshold: float,
    size: int = INPUT_SIZE,
    min_height: float = 0.0,
    edges: tuple[float, float, float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One window's detections in image pixels (boxes, scores, keypoints), or ``None``.
    ``anchors`` and ``edges`` (x0, y0, x1, y1: a box must lie strictly inside) are in units of ``size``;
    ``mat`` maps image pixels to the window's input pixels."""
    # the score test on the logits first, so only the few candidate anchors of each window are decoded
    # (2,304 per full-range window, almost all far below the threshold); the same detections result
    p = min(max(float(score_threshold), 1e-12), 1 - 1e-12)
    min_logit = math.log(p / (1 - p)) - 1e-6  # a superset: the exact test on the scores follows
    scores = np.asarray(raw_scores).reshape(-1)
    cand = np.flatnonzero(scores >= min_logit)
    if len(cand) == 0:
        return None
    b, s, k = decode_blazeface(np.asarray(raw_boxes).reshape(len(anchors), -1)[cand], scores[cand], anchors[cand], size)
    keep = s >= score_threshold
    if min_height > 0:
        keep &= (b[:, 3] - b[:, 1]) >= min_height
    if edges is not None:
        keep &= (b[:, 0] > edges[0]) & (b[:, 1] > edges[1]) & (b[:, 2] < edges[2]) & (b[:, 3] < edges[3])
    if not keep.any():
        return None
    inv = invert_affine(mat)
    b, s, k = b[keep] * size, s[keep], k[keep] * size
    corners = apply_affine(inv, b.reshape(-1, 2)).reshape(-1, 4)
    return corners, s, apply_affine(inv, k.reshape(-1, 2)).reshape(-1, 6, 2)


def merge(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None], nms_iou: float) -> Detections:
    """The windows' detections (:func:`decode_window`) merged by weighted NMS."""
    found = [q for q in parts if q is not None]
    if not found:
        return Detections(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2)))
    b, s, k = weighted_nms(*(np.concatenate(x) for x in zip(*found, strict=True)), nms_iou)
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
        tiling: ``"halving"`` (:func:`tile_windows`, the short-range default), ``"fitted"``
            (:func:`fitted_windows`) or ``"dense"`` (:meth:`dense_passes`: the full-range default
            when its graph takes any input size, as the shipped one does); ``None``: the variant's.
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
        # a graph that takes any input size (symbolic H and W) names its nominal side in its spec
        self.any_size = len(shape) == 4 and not isinstance(shape[1], int) and not isinstance(shape[2], int)
        # (spec "size"; "size_multiple": the sides it takes, DENSE_STRIDE unless it says otherwise)
        self.size_multiple = int(self.model.spec.get("size_multiple", DENSE_STRIDE))
        if self.any_size:
            side = self.model.spec.get("size")
        elif len(shape) == 4 and shape[2] != side:
            side = None
        if side not in DETECTOR_MODELS or len(shape) != 4 or shape[3] != 3:
            raise ModelError(
                f"{self.model.name}: input {shape} is not a BlazeFace detector's "
                f"(N, S, S, 3) with S in {sorted(DETECTOR_MODELS)}"
            )
        self.variant = DETECTOR_MODELS[side]
        self.input_size = side
        self.min_rel_face = self.variant.min_rel_face if min_rel_face is None else float(min_rel_face)
        dense = self.any_size and self.variant.tiling == "fitted"
        self.tiling = ("dense" if dense else self.variant.tiling) if tiling is None else tiling
        if self.tiling == "dense" and not (self.any_size and len(self.variant.anchors.strides) == 1):
            raise ValueError(
                f"tiling 'dense': {self.model.name} is not a one-layer detector whose graph takes any input size"
            )
        self.context = self.variant.context if context is None else float(context)
        if not self.context >= 1.0:
            raise ValueError(f"context: expected a number >= 1, got {context!r}")
        if self.tiling not in TILINGS:
            raise ValueError(f"tiling: expected one of {', '.join(TILINGS)}, got {self.tiling!r}")
        self._tile = tile_windows if self.tiling == "halving" else fitted_windows  # dense: counted as fitted
        self.dense_max_side = DENSE_MAX_SIDE
        self.dense_min_rel = DENSE_MIN_REL  # a min_face face's height in a dense pass, of the model's side
        self.anchors = ssd_anchor_centers(self.variant.anchors)
        self.min_face = min_face
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.max_windows = max_windows
        outs = self.model.session.get_outputs()
        # regressors (1, A, 16) and classificators (1, A, 1), in whatever order the graph has them
        shapes = sorted(tuple(o.shape[1:]) for o in outs)
        counts = [x[0] for x in shapes if len(x) == 2]  # any input size: the anchor count is symbolic
        fits = len(counts) == 2 and [x[1] for x in shapes] == [1, 16]
        if not fits or not all(isinstance(c, str) if self.any_size else c == len(self.anchors) for c in counts):
            raise ModelError(
                f"{self.model.name}: outputs {shapes} are not BlazeFace's (A, 1) scores and (A, 16) "
                f"regressors for the {len(self.anchors)} anchors of a {side}x{side} input"
            )
        self._box_idx = next(i for i, o in enumerate(outs) if o.shape[-1] == 16)
        self._score_idx = 1 - self._box_idx

    def windows(self, height: int, width: int, whole_only: bool = False) -> list[tuple[int, int, int]]:
        """Square windows for this image size (the whole image, the context window when the variant
        has one, then the tiles; ``"dense"`` tiling: no tiles, see :meth:`dense_passes`); on very
        large images ``min_face`` is raised until at most ``max_windows`` windows of fitted tiling
        remain (logged), so time and memory stay bounded."""
        wins = self._tiles(height, width, whole_only or self.tiling == "dense")
        if self.context > 1:
            wins.insert(1, context_window(height, width, self.context))
        return wins

    def dense_passes(self, height: int, width: int, whole_only: bool = False) -> list[DensePass]:
        """``"dense"`` tiling: the passes over the scaled image that stand for fitted tiling's levels
        (none for other tilings or ``whole_only``)."""
        if self.tiling != "dense" or whole_only:
            return []
        min_face = self._search_min_face(height, width)
        sides = fitted_sides(height, width, min_face, min_rel=self.dense_min_rel, whole_rel=self.min_rel_face)
        return dense_passes(height, width, sides, self.input_size, self.dense_max_side, stride=self.size_multiple)

    def _tiles(self, height: int, width: int, whole_only: bool) -> list[tuple[int, int, int]]:
        if whole_only:
            return tile_windows(height, width, None)
        return self._tile(height, width, self._search_min_face(height, width), min_rel=self.min_rel_face)

    def _search_min_face(self, height: int, width: int) -> float | None:
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
        return min_face

    def __call__(self, image_rgb: np.ndarray, whole_only: bool = False) -> Detections:
        """Faces in an RGB image; ``whole_only``: one pass over the whole image, no tiling (video
        uses it between full searches)."""
        h, w = image_rgb.shape[:2]
        wins = self.windows(h, w, whole_only)
        mats = window_matrices(h, w, wins, self.input_size)
        passes = self.dense_passes(h, w, whole_only)
        scaled: dict[tuple[int, int], np.ndarray] = {}
        dense = dense_input(image_rgb, passes, scaled)
        # the windows over the whole image shrink the finest pass's scaled image (when it is smaller
        # than the image), not the image
        finest = max(scaled, key=lambda wh: wh[0]) if scaled else None
        whole = scaled[finest] if finest and finest[1] < h else None
        x = preprocess(image_rgb, wins, self.input_size, whole)
        outs = self.model.run_batched(x)
        min_height = None
        if self.context > 1:  # the context window (index 1) keeps only faces it is trusted with
            min_height = np.zeros(len(wins))
            min_height[1] = self.min_rel_face
        size, m = self.input_size, EDGE_MARGIN
        parts = decode_windows(outs[self._box_idx], outs[self._score_idx], mats, self.anchors, self.score_threshold,
                               m, size, min_height)
        for p, xp in zip(passes, dense, strict=True):
            out = self.model.run(xp)
            inf = math.inf
            right, bottom = p.width / size - m, p.height / size - m
            edges = (m if p.inner[0] else -inf, m if p.inner[1] else -inf,
                     right if p.inner[2] else inf, bottom if p.inner[3] else inf)
            parts.append(decode_window(out[self._box_idx][0], out[self._score_idx][0], dense_matrix(h, w, p),
                                       dense_anchors(p, self.variant.anchors), self.score_threshold, size, 0.0, edges))
        return merge(parts, self.nms_iou)
