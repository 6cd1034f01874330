"""Valence/arousal regressor: face landmarks -> aligned grayscale crop -> (valence, arousal).

A model trained by ``openfer train DATA.csv --task va`` carries the spec ``{"task":
"valence_arousal", "outputs": ["valence", "arousal"], ...}`` with the same crop fields as an
expression model (size, mean/std, template), so the crop is :mod:`openfer.components.expression`'s.
Its one output is ``(N, 2)`` in [-1, 1] (a ``tanh`` head). Pre- and post-processing are pure
functions; only ``session.run`` has effects.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..runtime import OnnxModel, as_model
from .expression import ExpressionSpec, align_matrices, crop_faces, preprocess

TASK = "valence_arousal"
OUTPUTS: tuple[str, ...] = ("valence", "arousal")


def postprocess_va(out: np.ndarray, n: int, flip: bool = True) -> np.ndarray:
    """Average original/mirror rows (valence and arousal do not change in a mirror) -> ``(N, 2)``
    clipped to [-1, 1]."""
    v = np.asarray(out, dtype=np.float64).reshape(-1, len(OUTPUTS))
    if flip:
        v = (v[:n] + v[n:]) / 2
    return np.clip(v, -1.0, 1.0)


class ValenceArousalRegressor:
    """ONNX valence/arousal model with its embedded spec; ``flip`` averages with the mirrored face."""

    def __init__(self, model: str | OnnxModel, flip: bool = True, threads: int = 0) -> None:
        self.model = as_model(model, threads)
        spec = self.model.spec
        if spec.get("task") != TASK:
            raise ModelError(
                f"{self.model.path}: not a valence/arousal model (openfer.spec task "
                f"{spec.get('task', 'expression')!r}); train one with `openfer train DATA.csv --task va`"
            )
        if tuple(spec.get("outputs", ())) != OUTPUTS:
            raise ModelError(
                f"{self.model.path}: outputs must be {list(OUTPUTS)}, got {spec.get('outputs')!r}"
            )
        self.spec = ExpressionSpec.from_dict({**spec, "classes": list(OUTPUTS)})
        self.flip = flip

    def crops(self, image_rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return crop_faces(image_rgb, align_matrices(landmarks, self.spec), self.spec.size)

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """Valence, arousal ``(N, 2)`` in [-1, 1] for aligned ``(N, S, S)`` uint8 crops."""
        n = len(crops)
        if n == 0:
            return np.zeros((0, len(OUTPUTS)))
        outs = self.model.run_batched(preprocess(crops, self.spec, self.flip), max_batch=512)
        return postprocess_va(outs[0], n, self.flip)

    def __call__(self, image_rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """:meth:`predict_crops` on the faces given by their landmarks."""
        return self.predict_crops(self.crops(image_rgb, landmarks))
