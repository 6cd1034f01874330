"""What the openfer pipeline and the shipped expression model make of a data set, on a seeded random sample.

Photos (``faces="detect"``) go through :class:`openfer.pipeline.Analyzer` as ``openfer evaluate --faces
detect`` runs it (largest face scored, no face counts as an error; :func:`openfer.eval.evaluate.score_detect`).
Face crops (``faces="crops"``, FER2013's 48x48 images) are scored as ``openfer evaluate`` scores them (resized to
the model input, no detection: :func:`openfer.eval.evaluate.score_crops`); for the face statistics each crop is
also upscaled 4x (cubic) with a 25% replicated border, the framing openfer's training template uses to run the
face mesh on FER2013 crops (``openfer.train.template``), and analysed with one detector pass over the whole image.
Face sizes are then in the crop's own pixels.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..eval.attributes import CROP_UPSCALE, crop_view
from ..eval.datasets import LabeledImages, load_gray
from ..eval.evaluate import score_crops, score_detect
from ..eval.subgroups import ResultRecorder
from ..types import FrameResult

log = logging.getLogger("openfer")


def sample_indices(candidates: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``k`` of ``candidates`` drawn without replacement by ``numpy.random.default_rng(seed)``, sorted
    (all of them when ``k`` is 0 or at least their number)."""
    c = np.asarray(candidates, dtype=np.int64)
    if k <= 0 or k >= len(c):
        return c
    return np.sort(np.random.default_rng(seed).choice(c, size=k, replace=False))


@dataclass(frozen=True)
class FaceStats:
    """Per sampled image: faces found, and the largest face's height (pixels of the stored image),
    its height over the image height, head pose (degrees) and face-mesh presence score."""

    index: np.ndarray  # (S,) index into the split's images
    faces: np.ndarray  # (S,) int64, -1: the image could not be analysed
    face_height: np.ndarray  # (S,) float, NaN without a face
    face_fraction: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray


def _largest(res: FrameResult, scale: float, image_h: float) -> tuple[int, float, float, float, float, float]:
    f = res.faces
    if not len(f):
        return 0, *(math.nan,) * 5
    b = np.asarray(f.boxes, dtype=np.float64)
    k = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
    fh = float(b[k, 3] - b[k, 1]) / scale
    yaw, pitch, roll = (float(x) for x in f.poses[k])
    return len(f), fh, fh / image_h, yaw, pitch, roll


def profile_split(paths: tuple[Path, ...], heights: np.ndarray, sample: np.ndarray, labelled: LabeledImages,
                  faces: str, analyzer, classifier=None,  # noqa: ANN001
                  images: np.ndarray | None = None,
                  progress: Callable[[int, int], None] | None = None) -> tuple[FaceStats, dict]:
    """Face statistics of ``paths[sample]`` and the model's report on the labelled images among them."""
    chosen = {str(paths[i]) for i in sample}
    mask = np.array([str(p) in chosen for p in labelled.paths], dtype=bool)
    scored = labelled.subset(mask)
    rows = np.zeros((len(sample), 6))
    results: dict[str, FrameResult | None] = {}
    if faces == "detect":
        rec = ResultRecorder(analyzer)
        ev = score_detect(scored, rec, progress)
        results = rec.results
    else:
        ev = score_crops(scored, classifier)
    for n, i in enumerate(sample):
        key = str(paths[i])
        try:
            if faces == "detect":
                if key in results:  # scored above (None: the image could not be read, already reported)
                    res = results[key]
                else:
                    res = analyzer.analyze(key if images is None else images[i], source=key)
                if res is None:
                    rows[n] = (-1, *(math.nan,) * 5)
                    continue
                rows[n] = _largest(res, 1.0, float(heights[i]))
            else:
                gray = images[i] if images is not None else load_gray(paths[i])
                rows[n] = _largest(analyzer.analyze_rgb(crop_view(gray), source=key), CROP_UPSCALE,
                                   float(gray.shape[0]))
        except InputError as e:
            log.warning("%s", e)
            rows[n] = (-1, *(math.nan,) * 5)
        if progress is not None and faces != "detect":
            progress(n + 1, len(sample))
    stats = FaceStats(np.asarray(sample, np.int64), rows[:, 0].astype(np.int64), *(rows[:, k] for k in range(1, 6)))
    return stats, ev.report


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion ``k / n`` (NaN, NaN for ``n == 0``)."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)
