"""Expression classifier: face landmarks -> aligned grayscale crop -> class probabilities.

The crop reproduces the framing of the model's training data: the model's spec (ONNX metadata
``openfer.spec``) holds ``template``, the mean position (in crop units, [0, 1]) of a few mesh
landmarks over the training images, and the crop is the similarity transform that maps the face's
landmarks onto it. Pre- and post-processing are pure functions; only ``session.run`` has effects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..core.align import cv2_matrix, similarity_transform
from ..core.openset import OpenSetCalibration
from ..errors import ModelError
from ..runtime import OnnxModel, as_model


@dataclass(frozen=True)
class ExpressionSpec:
    """Preprocessing spec of an expression model (stored in its ONNX metadata)."""

    arch: str
    classes: tuple[str, ...]
    size: int
    mean: float
    std: float
    template_index: tuple[int, ...]  # mesh landmark indices
    template: tuple[tuple[float, float], ...]  # their mean positions in the crop, in [0, 1]
    color: str = "gray"

    @classmethod
    def from_dict(cls, d: dict) -> ExpressionSpec:
        try:
            return cls(
                arch=str(d["arch"]),
                classes=tuple(d["classes"]),
                size=int(d["size"]),
                mean=float(d["mean"]),
                std=float(d["std"]),
                template_index=tuple(int(i) for i in d["template_index"]),
                template=tuple((float(x), float(y)) for x, y in d["template"]),
                color=str(d.get("color", "gray")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"not an openfer expression model: its openfer.spec lacks or garbles {e}") from e


def align_matrices(landmarks: np.ndarray, spec: ExpressionSpec) -> np.ndarray:
    """``(N, 2, 3)`` image -> crop matrices mapping each face's template landmarks onto the template."""
    dst = np.asarray(spec.template, dtype=np.float64) * spec.size
    idx = np.asarray(spec.template_index)
    lm = np.asarray(landmarks, dtype=np.float64)
    mats = [similarity_transform(face[idx, :2], dst) for face in lm]
    return np.stack(mats) if mats else np.zeros((0, 2, 3))


def crop_faces(image: np.ndarray, mats: np.ndarray, size: int) -> np.ndarray:
    """``(N, size, size)`` uint8 aligned grayscale crops from a grayscale ``(H, W)`` or an RGB
    ``(H, W, 3)`` image (border replicated, as the training crops never show black borders).

    Each crop reads only the part of the image it needs (its bounding box and a margin), converted
    to grey there (an RGB image is never converted whole); the warp's matrix is shifted to that part,
    which can move OpenCV's fixed-point rounding by one grey level in rare pixels. A face shrunk by a lot
    (scale < 0.5) is pre-blurred against aliasing: that part, cut at multiples of ``f``, is averaged
    in ``f x f`` blocks (``INTER_AREA`` at an integer ratio, OpenCV's fast path) and the crop sampled
    from those.
    """
    out = np.empty((len(mats), size, size), np.uint8)
    hh, ww = image.shape[:2]
    rgb = image.ndim == 3
    for i, m in enumerate(mats):
        (a, b, tx), (c, d, ty) = m.tolist()
        det = a * d - b * c
        f, x0, y0, x1, y1 = 1, 0, 0, 0, 0
        if det != 0 and math.isfinite(det):
            scale = math.sqrt(abs(det))
            f = int(math.floor(1.0 / scale / 1.5)) if scale < 0.5 else 1
            # the crop's corners in the image, by the inverse in closed form (Python floats: no
            # LAPACK call, whose code is cold between model runs; a bounding box, padded below)
            ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
            ix, iy = -(ia * tx + ib * ty), -(ic * tx + id_ * ty)
            xs = (ix, ix + ia * size, ix + ib * size, ix + (ia + ib) * size)
            ys = (iy, iy + ic * size, iy + id_ * size, iy + (ic + id_) * size)
            pad = 2 * f  # linear sampling reads one pixel (block) beyond the corners
            x0 = max(int(math.floor((min(xs) - pad) / f)) * f, 0)
            y0 = max(int(math.floor((min(ys) - pad) / f)) * f, 0)
            x1 = min(int(math.ceil(max(xs) + pad)), ww)
            y1 = min(int(math.ceil(max(ys) + pad)), hh)
            if f > 1:
                x1, y1 = x0 + (x1 - x0) // f * f, y0 + (y1 - y0) // f * f
        if x1 <= x0 or y1 <= y0:  # beyond the image (or a degenerate matrix): the whole image, replicated
            x0 = y0 = 0
            x1, y1, f = ww, hh, 1
        part = image[y0:y1, x0:x1]
        src = cv2.cvtColor(part, cv2.COLOR_RGB2GRAY) if rgb else part
        if f > 1:
            src = cv2.resize(src, ((x1 - x0) // f, (y1 - y0) // f), interpolation=cv2.INTER_AREA)
        # continuous coordinates (cv2_matrix): block i spans image [x0 + f*i, x0 + f*(i+1))
        mm = m @ np.array([[f, 0, x0], [0, f, y0], [0, 0, 1.0]])
        out[i] = cv2.warpAffine(
            src, cv2_matrix(mm), (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    return out


def preprocess(crops: np.ndarray, spec: ExpressionSpec, flip: bool = True) -> np.ndarray:
    """``(N, 1, S, S)`` float32 network input (``(2N, ...)``: originals then mirrors, when ``flip``)."""
    x = crops.astype(np.float32)[:, None]
    x = (x * (1.0 / 255.0) - spec.mean) / spec.std
    if flip:
        x = np.concatenate([x, x[..., ::-1]], axis=0)
    return np.ascontiguousarray(x)


def postprocess(logits: np.ndarray, n: int, flip: bool = True, temperature: float = 1.0) -> np.ndarray:
    """Average original/mirror logits, apply the calibration temperature, softmax -> ``(N, C)``."""
    lo = np.asarray(logits, dtype=np.float64)
    if flip:
        lo = (lo[:n] + lo[n:]) / 2
    lo = lo / temperature
    lo -= lo.max(1, keepdims=True)
    p = np.exp(lo)
    return p / p.sum(1, keepdims=True)


class ExpressionClassifier:
    """ONNX expression model with its embedded spec; ``flip`` averages with the mirrored face.

    A model exported with an open-set head (a second output ``mahalanobis`` and ``openset`` in its
    spec, see :mod:`openfer.train.openset`) also gives an ``unknown_score`` per face in [0, 1]
    (:class:`~openfer.core.openset.OpenSetCalibration`); :attr:`openset` is ``None`` otherwise.
    """

    def __init__(self, model: str | OnnxModel = "fernet_s", flip: bool = True, threads: int = 0,
                 runtime: str = "auto") -> None:
        self.model = as_model(model, threads, runtime)
        if not self.model.spec:
            raise ModelError(f"{self.model.path}: no openfer.spec metadata (not an openfer expression model)")
        if self.model.spec.get("task") == "valence_arousal":
            raise ModelError(f"{self.model.path}: a valence/arousal model; load it as va_model")
        self.spec = ExpressionSpec.from_dict(self.model.spec)
        self.temperature = float(self.model.spec.get("temperature", 1.0))
        self.flip = flip
        outputs = [o.name for o in self.model.session.get_outputs()]
        self.openset: OpenSetCalibration | None = None
        if "mahalanobis" in outputs and "openset" in self.model.spec:
            try:
                self.openset = OpenSetCalibration.from_dict(self.model.spec["openset"])
            except (KeyError, TypeError, ValueError) as e:
                raise ModelError(f"{self.model.path}: malformed open-set calibration ({e})") from e
            self._distance_output = outputs.index("mahalanobis")

    @property
    def classes(self) -> tuple[str, ...]:
        return self.spec.classes

    def crops(self, image_rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return crop_faces(image_rgb, align_matrices(landmarks, self.spec), self.spec.size)

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities ``(N, C)`` for aligned ``(N, S, S)`` uint8 crops."""
        return self.predict_open(crops)[0]

    def predict_open(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities ``(N, C)`` and open-set scores ``(N,)`` (``None`` without an open-set head)
        for aligned ``(N, S, S)`` uint8 crops."""
        n = len(crops)
        if n == 0:
            return np.zeros((0, len(self.classes))), (None if self.openset is None else np.zeros(0))
        x = preprocess(crops, self.spec, self.flip)
        outs = self.model.run_batched(x, max_batch=512)
        probs = postprocess(outs[0], n, self.flip, self.temperature)
        if self.openset is None:
            return probs, None
        dist = np.asarray(outs[self._distance_output], dtype=np.float64).reshape(-1)
        if self.flip:
            dist = (dist[:n] + dist[n:]) / 2
        return probs, self.openset(mahalanobis=dist, msp=1.0 - probs.max(1))

    def classify(self, image_rgb: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`predict_open` on the faces given by their landmarks."""
        return self.predict_open(self.crops(image_rgb, landmarks))

    def __call__(self, image_rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.predict_crops(self.crops(image_rgb, landmarks))
