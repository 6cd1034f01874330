"""The penultimate features of an openfer expression model (the input of its ``logits`` Gemm), for face
crops, as :class:`~openfer.components.expression.ExpressionClassifier` sees them: the crop and its mirror image.

The ONNX graph gets one more output (an ``Identity`` of the Gemm's input), so this needs the ``onnx``
package. A folder of cached features (``features_<split>_<sha12>.npz`` with ``f`` crop features, ``g``
mirror features and ``labels``, the layout ``scripts/rebalance_head.py`` writes) is used only after a
spot check: the same number of images and labels, and the features of a few seeded images recomputed here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..components.expression import ExpressionSpec, preprocess
from ..errors import ModelError
from ..eval.datasets import LabeledImages, load_gray_stack
from ..extras import require
from ..io.tables import atomic_open
from ..runtime import OnnxModel, as_model

log = logging.getLogger("openfer")
SPOT_CHECK = 8  # images recomputed to accept a cache
TOLERANCE = 1e-3  # largest absolute feature difference a cache may have


class FeatureExtractor:
    """``features(crops) -> (f, g)``: ``(N, D)`` features of the crops and of their mirror images."""

    def __init__(self, model: str | OnnxModel = "fernet_s", threads: int = 0) -> None:
        onnx = require("onnx", "data", "openfer dataset issues (features of the expression model)")
        import onnxruntime as ort

        self.model = as_model(model, threads)
        self.spec = ExpressionSpec.from_dict(self.model.spec)
        proto = onnx.load(str(self.model.path))
        gemm = next((n for n in proto.graph.node if n.op_type == "Gemm" and "logits" in n.output), None)
        if gemm is None:
            raise ModelError(f"{self.model.path}: no Gemm node producing 'logits' (not a linear-head model)")
        proto.graph.node.append(onnx.helper.make_node("Identity", [gemm.input[0]], ["openfer_features"]))
        proto.graph.output.append(onnx.helper.make_tensor_value_info("openfer_features", onnx.TensorProto.FLOAT,
                                                                     None))
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name

    @property
    def sha12(self) -> str:
        return self.model.sha256[:12]

    def features(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(crops)
        x = preprocess(crops, self.spec, flip=True)
        (v,) = self.session.run(["openfer_features"], {self._input: x})
        v = np.asarray(v, dtype=np.float32).reshape(2 * n, -1)
        return v[:n], v[n:]

    def of_images(self, data: LabeledImages, progress: Callable[[int, int], None] | None = None,
                  chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
        fs, gs = [], []
        for i in range(0, len(data), chunk):
            mask = np.zeros(len(data), bool)
            mask[i : i + chunk] = True
            f, g = self.features(load_gray_stack(data.subset(mask), self.spec.size))
            fs.append(f)
            gs.append(g)
            if progress is not None:
                progress(min(i + chunk, len(data)), len(data))
        if not fs:
            return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
        return np.concatenate(fs), np.concatenate(gs)


def _spot_check(cached: dict, data: LabeledImages, extractor: FeatureExtractor, seed: int) -> str | None:
    """None when ``cached`` holds ``data``'s features, else why not."""
    if not {"f", "g", "labels"} <= set(cached):
        return "lacks f, g or labels"
    if len(cached["f"]) != len(data) or len(cached["g"]) != len(data) or len(cached["labels"]) != len(data):
        return f"holds {len(cached['f'])} images, the split {len(data)}"
    if not np.array_equal(np.asarray(cached["labels"]), data.labels):
        return "its labels differ from the split's"
    idx = np.sort(np.random.default_rng(seed).choice(len(data), size=min(SPOT_CHECK, len(data)), replace=False))
    f, g = extractor.features(load_gray_stack(data.subset(np.isin(np.arange(len(data)), idx)), extractor.spec.size))
    diff = max(float(np.abs(f - cached["f"][idx]).max()), float(np.abs(g - cached["g"][idx]).max()))
    if diff > TOLERANCE:
        return f"features differ from this model's by up to {diff:.3g}"
    return None


def split_features(data: LabeledImages, split: str, extractor: FeatureExtractor, cache: Path | None = None,
                   progress: Callable[[int, int], None] | None = None, seed: int = 0) -> tuple[np.ndarray, str]:
    """``(N, D)`` mirror-averaged features of ``data`` and where they came from (a cache file or computed).

    With ``cache``: the first ``features_<split>_*.npz`` there that passes the spot check is used; else the
    features are computed and written there as ``features_<split>_<sha12>.npz`` (atomically)."""
    if cache is not None:
        for path in sorted(Path(cache).glob(f"features_{split}_*.npz")):
            try:
                with np.load(path) as z:
                    cached = {k: z[k] for k in z.files if k in ("f", "g", "labels")}
            except (OSError, ValueError) as e:
                log.warning("%s: not a feature cache (%s); not used", path, e)
                continue
            why = _spot_check(cached, data, extractor, seed)
            if why is None:
                return (cached["f"].astype(np.float64) + cached["g"]) / 2, str(path)
            log.warning("%s: %s; not used", path, why)
    f, g = extractor.of_images(data, progress)
    origin = "computed"
    if cache is not None:
        path = Path(cache) / f"features_{split}_{extractor.sha12}.npz"
        with atomic_open(path, "wb") as fh:
            np.savez(fh, f=f, g=g, labels=data.labels, paths=np.array([str(p) for p in data.paths]))
        origin = f"computed, written to {path}"
    return (f.astype(np.float64) + g) / 2, origin
