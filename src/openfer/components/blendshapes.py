"""MediaPipe's 52 face blendshapes from 478 landmarks (``openfer/models/blendshapes.onnx``).

The model (MediaPipe Face Landmarker v2's MLP-Mixer, converted by ``scripts/convert_mediapipe.py``)
reads 146 of the landmarks in image pixels (:func:`openfer.core.blendshapes.blendshape_inputs`) and
returns ARKit-style coefficients in [0, 1] named by :data:`~openfer.core.blendshapes.BLENDSHAPE_NAMES`
(``_neutral`` first, as MediaPipe returns them). Its graph has batch 1, so it runs once per face
(2.5-3.3 ms a face on the 2-core benchmark machine, `benchmarks/results/pipeline.json`).
"""

from __future__ import annotations

import numpy as np

from ..core.blendshapes import BLENDSHAPE_NAMES, blendshape_inputs
from ..runtime import OnnxModel, as_model


class Blendshapes:
    """``(N, 478, 2+)`` image-pixel landmarks -> ``(N, 52)`` blendshape coefficients in [0, 1]."""

    names = BLENDSHAPE_NAMES

    def __init__(self, threads: int = 0, model: str | OnnxModel = "blendshapes", runtime: str = "auto") -> None:
        self.model = as_model(model, threads, runtime)
        self._input = self.model.session.get_inputs()[0].name

    def __call__(self, landmarks: np.ndarray) -> np.ndarray:
        x = blendshape_inputs(landmarks) if len(landmarks) else np.zeros((0, 146, 2), np.float32)
        out = np.zeros((len(x), len(BLENDSHAPE_NAMES)), np.float32)
        for i in range(len(x)):
            out[i] = np.ravel(self.model.session.run(None, {self._input: x[i : i + 1]})[0])
        return out


__all__ = ["BLENDSHAPE_NAMES", "Blendshapes"]
