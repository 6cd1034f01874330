"""``openfer audit robustness``: the model's accuracy under controlled image variations, one at a time.

Each variation (:data:`VARIATIONS`) is applied to every sampled image, which is then scored as
``openfer evaluate`` scores it: face crops resized to the model input and classified
(:func:`~openfer.eval.evaluate.score_crops`'s path), photos through the full pipeline with the largest
face scored and no face counted as an error (:func:`~openfer.eval.evaluate.score_detect`'s rule). The
clean images are scored the same way, so the clean row equals ``openfer evaluate`` on the same images.

Variations act on the stored image (grey for crops, RGB for photos), with sizes relative to the face:
``s`` is the face height over 48 (the FER2013 crop side; crops: the image height; photos: the clean
run's largest face box, or the shorter image side without one), so "blur sigma 1" is one pixel of a
48-pixel face.

* brightness +-40 grey levels, contrast x0.5 about 128, Gaussian blur sigma 1 and 2 (x s), Gaussian noise
  sigma 10 grey levels (seeded per variation and image: ``default_rng(SeedSequence([seed, v, j]))``, v
  the variation's index, j the image's index among the usable images), JPEG quality 30 and
  10, resolution 1/2 and 1/4 (area downscale, linear upscale back), rotation 15 and 30 degrees about the
  image centre (border replicated);
* occlusion of the eyes or the mouth by a mid-grey (128) patch: the box around the face mesh's eye
  (:data:`EYE_POINTS`) or lip (:data:`MOUTH_POINTS`) landmarks of the clean image, widened by 15% of
  the distance between the eye centres on every side. Crops get their landmarks from the face mesh on
  the 4x view (:mod:`openfer.eval.attributes`); a crop where none is found gets the box of the crop
  geometry (:data:`CROP_EYES`, :data:`CROP_MOUTH`: mean landmark boxes of FER2013 crops); a photo
  without a clean face is left as it is (it is already an error). ``placed_by`` counts each.

Intervals: the accuracy change is paired (the same images clean and varied): percentile bootstrap of
the mean difference of per-image correctness, images resampled with replacement; per class, the
recall change with the class's images resampled; UAR change as the mean of those per-class resamples.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..errors import InputError
from ..io.images import read_image
from .attributes import face_geometry, grey_image
from .datasets import LabeledImages, _resize_gray, relabel
from .subgroups import SampleScores, largest_face, percentile_interval

log = logging.getLogger("openfer")
SCHEMA = "openfer.audit_robustness/1"
RESAMPLES = 1000
EXAMPLES = 2  # sampled images kept under every variation for the examples figure
FACE_REF = 48.0
PATCH_GREY = 128
PATCH_MARGIN = 0.15  # of the inter-ocular distance
# face mesh indices: eye contours (corners, upper and lower lids) of both eyes; lip outline
EYE_POINTS = (33, 133, 159, 145, 160, 144, 158, 153, 362, 263, 386, 374, 385, 380, 387, 373)
MOUTH_POINTS = (61, 291, 0, 17, 37, 267, 84, 314, 40, 270, 91, 321, 13, 14)
RIGHT_EYE, LEFT_EYE = (33, 133, 159, 145), (362, 263, 386, 374)
# boxes (x0, y0, x1, y1) as fractions of a FER2013 crop: mean mesh boxes on 40 FER2013Test crops, widened
CROP_EYES = (0.17, 0.28, 0.83, 0.47)
CROP_MOUTH = (0.29, 0.66, 0.71, 0.90)


@dataclass(frozen=True)
class Variation:
    name: str
    kind: str
    level: float


VARIATIONS: tuple[Variation, ...] = (
    Variation("brightness +40", "brightness", 40), Variation("brightness -40", "brightness", -40),
    Variation("contrast x0.5", "contrast", 0.5),
    Variation("blur sigma 1", "blur", 1.0), Variation("blur sigma 2", "blur", 2.0),
    Variation("noise sigma 10", "noise", 10.0),
    Variation("JPEG quality 30", "jpeg", 30), Variation("JPEG quality 10", "jpeg", 10),
    Variation("resolution 1/2", "resolution", 0.5), Variation("resolution 1/4", "resolution", 0.25),
    Variation("rotation 15 deg", "rotation", 15.0), Variation("rotation 30 deg", "rotation", 30.0),
    Variation("occlusion eyes", "occlude_eyes", 0), Variation("occlusion mouth", "occlude_mouth", 0),
)


def landmark_box(marks: np.ndarray, points: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Integer box ``(x0, y0, x1, y1)`` (x1, y1 exclusive) around ``marks[points]``, widened by
    :data:`PATCH_MARGIN` of the inter-ocular distance, clipped to the image."""
    m = np.asarray(marks, dtype=np.float64)[:, :2]
    iod = float(np.linalg.norm(m[list(RIGHT_EYE)].mean(0) - m[list(LEFT_EYE)].mean(0)))
    pts = m[list(points)]
    pad = PATCH_MARGIN * iod
    x0, y0 = pts.min(0) - pad
    x1, y1 = pts.max(0) + pad
    h, w = shape[:2]
    return (int(np.clip(np.floor(x0), 0, w)), int(np.clip(np.floor(y0), 0, h)),
            int(np.clip(np.ceil(x1), 0, w)), int(np.clip(np.ceil(y1), 0, h)))


def crop_box(frac: tuple[float, float, float, float], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    return (int(round(frac[0] * w)), int(round(frac[1] * h)), int(round(frac[2] * w)), int(round(frac[3] * h)))


def apply_variation(img: np.ndarray, v: Variation, face_scale: float = 1.0,
                    rng: np.random.Generator | None = None,
                    box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """``img`` (uint8, grey ``(H, W)`` or RGB ``(H, W, 3)``) under variation ``v`` (a new array).
    ``face_scale`` is the face height over 48 (blur); ``box`` the occlusion patch (None: unchanged)."""
    x = np.asarray(img)
    if v.kind == "brightness":
        return np.clip(x.astype(np.int16) + int(v.level), 0, 255).astype(np.uint8)
    if v.kind == "contrast":
        return np.clip(np.rint((x.astype(np.float64) - 128.0) * v.level + 128.0), 0, 255).astype(np.uint8)
    if v.kind == "blur":
        return cv2.GaussianBlur(x, (0, 0), v.level * face_scale)
    if v.kind == "noise":
        rng = rng or np.random.default_rng(0)
        return np.clip(np.rint(x + rng.normal(0.0, v.level, x.shape)), 0, 255).astype(np.uint8)
    if v.kind == "jpeg":
        ok, buf = cv2.imencode(".jpg", x if x.ndim == 2 else x[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(v.level)])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        return out if x.ndim == 2 else np.ascontiguousarray(out[:, :, ::-1])
    if v.kind == "resolution":
        h, w = x.shape[:2]
        small = cv2.resize(x, (max(1, round(w * v.level)), max(1, round(h * v.level))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if v.kind == "rotation":
        h, w = x.shape[:2]
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), v.level, 1.0)
        return cv2.warpAffine(x, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if v.kind in ("occlude_eyes", "occlude_mouth"):
        out = x.copy()
        if box is not None:
            x0, y0, x1, y1 = box
            out[y0:y1, x0:x1] = PATCH_GREY
        return out
    raise InputError(f"unknown variation kind {v.kind!r}")


def sample(n: int, limit: int, seed: int) -> np.ndarray:
    """``limit`` of ``range(n)`` drawn without replacement by ``default_rng(seed)``, sorted (all for 0)."""
    if limit <= 0 or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


@dataclass(frozen=True)
class RobustnessAudit:
    doc: dict
    correct: dict[str, np.ndarray] = field(repr=False)  # per variation (and "clean"): (n,) bool
    labels: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))
    examples: dict[str, list[np.ndarray]] = field(repr=False, default_factory=dict)  # first sampled images


def _paired(c0: np.ndarray, c1: np.ndarray, y: np.ndarray, ncls: int, resamples: int, seed: int,
            key: int) -> dict:
    rng = np.random.default_rng(np.random.SeedSequence([seed, key]))
    d = c1.astype(np.float64) - c0.astype(np.float64)
    n = len(d)
    idx = rng.integers(0, n, size=(resamples, n))
    lo, hi = percentile_interval(d[idx].mean(1))
    per_class, class_boot = {}, []
    for c in range(ncls):
        m = np.flatnonzero(y == c)
        if not len(m):
            continue
        ic = rng.integers(0, len(m), size=(resamples, len(m)))
        bc = d[m][ic].mean(1)
        class_boot.append(bc)
        clo, chi = percentile_interval(bc)
        per_class[c] = {"n": int(len(m)), "clean": float(c0[m].mean()), "varied": float(c1[m].mean()),
                        "change": float(d[m].mean()), "low": clo, "high": chi}
    ub = np.mean(class_boot, axis=0)
    ulo, uhi = percentile_interval(ub)
    return {"change": float(d.mean()), "low": lo, "high": hi,
            "uar_change": float(np.mean([v["change"] for v in per_class.values()])), "uar_low": ulo, "uar_high": uhi,
            "per_class": per_class}


def audit_robustness(data: LabeledImages, faces: str, scorer, limit: int = 500, seed: int = 0,  # noqa: ANN001
                     resamples: int = RESAMPLES, variations: tuple[Variation, ...] = VARIATIONS,
                     mesh_analyzer=None,  # noqa: ANN001 - crops: landmarks for the patches (fast preset)
                     progress: Callable[[int, int], None] | None = None) -> RobustnessAudit:
    """Clean and varied accuracy of ``scorer`` (crops: an ExpressionClassifier; detect: an Analyzer) on
    a seeded sample of ``limit`` labelled images of ``data`` (0: all), with paired bootstrap intervals."""
    if faces not in ("crops", "detect"):
        raise InputError(f"faces must be 'crops' or 'detect', got {faces!r}")
    if resamples < 1:
        raise InputError(f"resamples must be at least 1, got {resamples}")
    classes = tuple(scorer.classes)
    ready = relabel(data, classes)
    usable = ready.subset(ready.labels >= 0)
    if not len(usable):
        raise InputError(f"{data.name}: no labelled image the model can score")
    pick = sample(len(usable), limit, seed)
    chosen = np.zeros(len(usable), bool)
    chosen[pick] = True
    sub = usable.subset(chosen)
    y = sub.labels
    n = len(sub)
    # clean images and their faces (landmarks for the patches, face size for the blur)
    images, clean_pred = [], np.full(n, -1, np.int64)
    if faces == "crops":
        size = scorer.spec.size
        for i, p in enumerate(sub.paths):  # pixels from the label file (fer2013.csv) where it holds them
            images.append(grey_image(p, "crops", None if sub.images is None else sub.images[i]))
        clean_pred = scorer.predict_crops(np.stack([_resize_gray(g, size) for g in images])).argmax(1)
        geo = SampleScores(sub.paths, y, clean_pred, np.ones(n), classes, chosen, images=sub.images)
        _, _, marks = face_geometry(geo, "crops", mesh_analyzer)
        scale = np.array([g.shape[0] / FACE_REF for g in images])
    else:
        results = []
        for i, p in enumerate(sub.paths):
            try:
                if sub.images is None:
                    rgb = read_image(p)
                else:  # pixels from the label file (fer2013.csv): grey, as the detect mode reads them
                    g = np.asarray(sub.images[i])
                    rgb = np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2) if g.ndim == 2 else g)
                res = scorer.analyze(rgb, source=str(p))
            except InputError as e:
                log.warning("%s", e)
                rgb, res = None, None
            images.append(rgb)
            results.append(res)
            k = largest_face(res)
            if k >= 0:
                clean_pred[i] = int(np.argmax(res.faces.expressions[k]))
            if progress is not None:
                progress(i + 1, n * (len(variations) + 1))
        geo = SampleScores(sub.paths, y, clean_pred, np.ones(n), classes, chosen, tuple(results))
        height, _, marks = face_geometry(geo, "detect")
        scale = np.array([(h if np.isfinite(h) else (min(im.shape[:2]) if im is not None else FACE_REF)) / FACE_REF
                          for h, im in zip(height, images, strict=True)])
    correct = {"clean": clean_pred == y}
    keep = [i for i in range(n) if images[i] is not None][:EXAMPLES]
    examples = {"clean": [images[i] for i in keep]}
    placed = {}
    rows = []
    for vi, v in enumerate(variations):
        pred = np.full(n, -1, np.int64)
        counts = {"landmarks": 0, "crop geometry": 0, "none": 0}
        varied = []
        for i, img in enumerate(images):
            if img is None:
                varied.append(None)
                continue
            box = None
            if v.kind.startswith("occlude"):
                pts = EYE_POINTS if v.kind == "occlude_eyes" else MOUTH_POINTS
                if marks[i] is not None:
                    box, how = landmark_box(marks[i], pts, img.shape), "landmarks"
                elif faces == "crops":
                    box, how = crop_box(CROP_EYES if v.kind == "occlude_eyes" else CROP_MOUTH, img.shape), "crop geometry"
                else:
                    how = "none"
                counts[how] += 1
            rng = np.random.default_rng(np.random.SeedSequence([seed, vi, int(pick[i])]))
            varied.append(apply_variation(img, v, float(scale[i]), rng, box))
        if faces == "crops":
            size = scorer.spec.size
            pred = scorer.predict_crops(np.stack([_resize_gray(g, size) for g in varied])).argmax(1)
        else:
            for i, img in enumerate(varied):
                if img is not None:
                    res = scorer.analyze(img, source=str(sub.paths[i]))
                    k = largest_face(res)
                    if k >= 0:
                        pred[i] = int(np.argmax(res.faces.expressions[k]))
                if progress is not None:
                    progress(n * (vi + 1) + i + 1, n * (len(variations) + 1))
        correct[v.name] = pred == y
        examples[v.name] = [varied[i] for i in keep]
        if v.kind.startswith("occlude"):
            placed[v.name] = counts
        st = _paired(correct["clean"], correct[v.name], y, len(classes), resamples, seed, vi)
        st["per_class"] = {classes[c]: s for c, s in st["per_class"].items()}
        rows.append({"variation": v.name, "kind": v.kind, "level": v.level,
                     "accuracy": float(correct[v.name].mean()), "changed_predictions": float((pred != clean_pred).mean()),
                     "face_found_rate": float((pred >= 0).mean()),
                     **st})
        if progress is not None and faces == "crops":
            progress(vi + 1, len(variations))
    doc = {"schema": SCHEMA, "data": data.name, "split": data.split, "faces": faces, "classes": list(classes),
           "n": int(n), "of": int(len(usable)), "limit": int(limit), "seed": int(seed),
           "sample": "all labelled images" if n == len(usable) else
                     f"{n} of {len(usable)} labelled images drawn without replacement by numpy default_rng({seed})",
           "bootstrap": {"resamples": int(resamples), "seed": int(seed), "interval": "percentile, 95%, paired"},
           "clean": {"accuracy": float(correct["clean"].mean()), "face_found_rate": float((clean_pred >= 0).mean()),
                     "per_class": {classes[c]: {"n": int((y == c).sum()), "recall": float(correct["clean"][y == c].mean())}
                                   for c in range(len(classes)) if (y == c).any()}},
           "occlusion_placed_by": placed, "variations": rows}
    return RobustnessAudit(doc, correct, y, examples)
