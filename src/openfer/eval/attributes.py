"""Groups computed from the images, for subgroup audits where the data has no demographic column.

* ``brightness``: mean grey level (0-255) of the whole image at its stored size; ``blur``: variance of the
  Laplacian (3x3 aperture) of the grey image at its stored size (higher is sharper; it depends on
  resolution, so compare within one data set). Both as in ``openfer dataset card``
  (:mod:`openfer.dataset.scan`); grouped into quantile bins (default quartiles).
* ``yaw``: the absolute head yaw of the largest face, fixed bins 0-15, 15-30 and over 30 degrees;
  ``face_size``: the height of the largest face's box in pixels of the stored image, quantile bins.
  In the detect mode these are the faces ``openfer evaluate --faces detect`` scored. Face crops (no
  detection in the evaluation) are analysed for this once more: upscaled 4x (cubic) with a 25%
  replicated border, one detector pass (the ``fast`` preset), as ``openfer dataset card`` frames them
  (:func:`crop_view`, which ``openfer.dataset.profile`` imports from here); sizes are in the crop's own
  pixels.
  Images where no face is found form the group ``no face``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import cv2
import numpy as np

from ..errors import InputError
from ..io.images import read_image
from .datasets import load_gray
from .subgroups import Grouping, SampleScores, largest_face

log = logging.getLogger("openfer")
ATTRIBUTES = ("face_size", "yaw", "brightness", "blur")
YAW_EDGES = (15.0, 30.0)
CROP_UPSCALE = 4
CROP_PAD = 0.25
NO_FACE = "no face"
UNREADABLE = "unreadable"


def crop_view(gray: np.ndarray) -> np.ndarray:
    """A grey face crop as the RGB image the detector and face mesh see (upscaled 4x, 25% border)."""
    h, w = gray.shape
    big = cv2.resize(gray, (w * CROP_UPSCALE, h * CROP_UPSCALE), interpolation=cv2.INTER_CUBIC)
    pad = int(round(max(big.shape) * CROP_PAD))
    big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(np.repeat(big[:, :, None], 3, axis=2))


def crop_pad(shape: tuple[int, int]) -> int:
    """The border :func:`crop_view` adds, in pixels of the upscaled view."""
    return int(round(max(shape) * CROP_UPSCALE * CROP_PAD))


def grey_image(path, faces: str, pixels: np.ndarray | None = None) -> np.ndarray:  # noqa: ANN001
    """The stored image as grey uint8: crops as ``openfer evaluate`` reads them, photos as RGB then grey;
    ``pixels``: the image's pixels from the label file (fer2013.csv), whose path is not a file."""
    if pixels is not None:
        g = np.asarray(pixels)
        return np.ascontiguousarray(g if g.ndim == 2 else cv2.cvtColor(g, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
    if faces == "crops":
        return load_gray(path)
    return cv2.cvtColor(read_image(path), cv2.COLOR_RGB2GRAY)


def image_quality(scores: SampleScores, faces: str,
                  progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Brightness and blur of each scored image (NaN for an image that cannot be read, logged)."""
    bright, blur = np.full(len(scores), np.nan), np.full(len(scores), np.nan)
    for i, p in enumerate(scores.paths):
        try:
            g = grey_image(p, faces, None if scores.images is None else scores.images[i])
        except InputError as e:
            log.warning("%s", e)
            continue
        bright[i] = float(g.mean())
        blur[i] = float(cv2.Laplacian(g, cv2.CV_64F, ksize=3).var())
        if progress is not None and (i + 1) % 500 == 0:
            progress(i + 1, len(scores))
    return bright, blur


def fast_analyzer(threads: int = 0):  # noqa: ANN201
    from ..pipeline import Analyzer

    return Analyzer("fast", aus=False, explain=False, blendshapes=False, threads=threads)


def face_geometry(scores: SampleScores, faces: str, analyzer=None,  # noqa: ANN001
                  progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray, list]:
    """Face height (pixels of the stored image) and yaw (degrees) of each scored image's largest face
    (NaN without a face), and the landmarks ``(478, 2)`` in stored-image pixels (None without a face)."""
    n = len(scores)
    height, yaw, marks = np.full(n, np.nan), np.full(n, np.nan), [None] * n
    if faces == "detect":
        results = scores.results
    else:
        analyzer = analyzer or fast_analyzer()
        results = []
        for i, p in enumerate(scores.paths):
            try:
                g = grey_image(p, "crops", None if scores.images is None else scores.images[i])
            except InputError as e:
                log.warning("%s", e)
                results.append(None)
                continue
            results.append((analyzer.analyze_rgb(crop_view(g), source=str(p)), crop_pad(g.shape)))
            if progress is not None:
                progress(i + 1, n)
    for i, r in enumerate(results):
        res, pad = (r if isinstance(r, tuple) else (r, None))
        k = largest_face(res)
        if k < 0:
            continue
        b = np.asarray(res.faces.boxes[k], dtype=np.float64)
        lm = np.asarray(res.faces.landmarks[k][:, :2], dtype=np.float64)
        scale = 1.0 if pad is None else float(CROP_UPSCALE)
        off = 0.0 if pad is None else float(pad)
        height[i] = (b[3] - b[1]) / scale
        yaw[i] = float(res.faces.poses[k][0])
        marks[i] = (lm - off) / scale
    return height, yaw, marks


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def quantile_grouping(by: str, values: np.ndarray, bins: int, unit: str, missing: str, what: str) -> Grouping:
    """``bins`` quantile bins of the finite ``values`` (edges at the 1/bins... quantiles; a value on an
    edge goes to the upper bin; tied edges merge bins); NaN values form the group ``missing``."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    if bins < 2:
        raise InputError(f"--bins must be at least 2, got {bins}")
    if not ok.any():
        raise InputError(f"{by}: no image has a value ({missing} for all)")
    edges = np.unique(np.quantile(v[ok], np.linspace(0, 1, bins + 1)[1:-1]))
    which = np.searchsorted(edges, np.where(ok, v, 0.0), side="right")
    labels = []
    for b in range(len(edges) + 1):
        inb = v[ok & (which == b)]
        labels.append(f"Q{b + 1} {_fmt(inb.min())}-{_fmt(inb.max())}{unit}" if len(inb) else f"Q{b + 1} (empty)")
    names = tuple(labels[w] if o else missing for w, o in zip(which, ok, strict=True))
    order = tuple(lab for lab in labels if lab in names) + ((missing,) if missing in names else ())
    definition = (f"{what}; {len(edges) + 1} quantile bins over the images with a value "
                  f"(edges {', '.join(_fmt(e) for e in edges)}; a value on an edge goes up)")
    return Grouping(by, names, order, definition, tuple(float(e) for e in edges))


def yaw_grouping(yaw: np.ndarray) -> Grouping:
    a = np.abs(np.asarray(yaw, dtype=np.float64))
    labels = ("yaw 0-15 deg", "yaw 15-30 deg", "yaw > 30 deg")
    which = np.searchsorted(np.asarray(YAW_EDGES), np.where(np.isfinite(a), a, 0.0), side="right")
    names = tuple(labels[w] if np.isfinite(x) else NO_FACE for w, x in zip(which, a, strict=True))
    order = tuple(lab for lab in (*labels, NO_FACE) if lab in names)
    return Grouping("yaw", names, order, "absolute head yaw of the largest face, fixed bins [0, 15), [15, 30), "
                    ">= 30 degrees; no face: the face mesh found none", YAW_EDGES)


def attribute_grouping(by: str, scores: SampleScores, faces: str, bins: int = 4, analyzer=None,  # noqa: ANN001
                       progress: Callable[[int, int], None] | None = None,
                       cache: dict | None = None) -> Grouping:
    """The grouping ``by`` (one of :data:`ATTRIBUTES`) of the scored images; ``cache`` (a dict) keeps
    the measured values between calls so ``face_size`` and ``yaw`` share one analysis."""
    cache = {} if cache is None else cache
    if by in ("brightness", "blur"):
        if "quality" not in cache:
            cache["quality"] = image_quality(scores, faces, progress)
        bright, blur = cache["quality"]
        if by == "brightness":
            return quantile_grouping(by, bright, bins, "", UNREADABLE,
                                     "mean grey level (0-255) of the whole stored image")
        return quantile_grouping(by, blur, bins, "", UNREADABLE,
                                 "variance of the Laplacian of the grey stored image (low: blurred)")
    if by in ("face_size", "yaw"):
        if "geometry" not in cache:
            cache["geometry"] = face_geometry(scores, faces, analyzer, progress)
        height, yaw, _ = cache["geometry"]
        if by == "yaw":
            return yaw_grouping(yaw)
        where = "the stored image" if faces == "detect" else "the crop (face mesh on the 4x view)"
        return quantile_grouping(by, height, bins, " px", NO_FACE,
                                 f"height of the largest face's box in pixels of {where}")
    raise InputError(f"unknown image attribute {by!r}; choose one of {', '.join(ATTRIBUTES)}")
