"""MediaPipe's own ``.tflite`` files on LiteRT (TFLite with XNNPACK), behind the same interface as
:class:`~openfer.runtime.onnx.OnnxModel`.

Under ONNX Runtime the Face Mesh models run 3-4x slower than under LiteRT's XNNPACK kernels (the
wheel has no XNNPACK provider; ``docs/speed.md``). So where a shipped ONNX model is a conversion of
a MediaPipe ``.tflite``, the original file ships beside it, unmodified (registry entry
``<name>_tflite``, written by ``scripts/install_tflite.py`` with its sha256 and the measured
LiteRT-against-ONNX parity), and runs on LiteRT when the optional ``ai-edge-litert`` package is
installed (``pip install "openfer[litert]"``). Without it, the ONNX twin runs on ONNX Runtime: same
model, same results within the parity in ``docs/models/litert_parity.json``.

:class:`LiteRTSession` mimics the part of ``onnxruntime.InferenceSession`` that openfer's components
use (``get_inputs``, ``get_outputs``, ``run``), with the ONNX twin's output names and order, so no
component knows which runtime it has. A TFLite graph has a fixed batch of 1: a batch runs one item
at a time (batching saves nothing for these models: 1.03x for 5 faces of the mesh under ORT). A
TFLite interpreter is not thread-safe; each session serialises its calls with a lock.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import ModelError
from .onnx import OnnxModel, registry, verified_file

TFLITE_SUFFIX = "_tflite"
RUNTIMES = ("auto", "onnxruntime", "litert")


def check_runtime(runtime: str) -> None:
    """A :class:`ModelError` unless ``runtime`` is one of :data:`RUNTIMES`."""
    if runtime not in RUNTIMES:
        raise ModelError(f"runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")


def available() -> bool:
    """Whether the optional LiteRT runtime (``ai-edge-litert``) can be imported."""
    return importlib.util.find_spec("ai_edge_litert") is not None


def tflite_name(name: str) -> str | None:
    """Registry name of the ``.tflite`` twin of shipped model ``name``, or ``None`` when it has none."""
    twin = f"{name}{TFLITE_SUFFIX}"
    return twin if twin in registry() else None


class _IO(NamedTuple):
    """One input or output as ``onnxruntime`` describes it (``name``, ``shape``)."""

    name: str
    shape: list[int | str]


class LiteRTSession:
    """An ``ai_edge_litert`` interpreter answering like an ONNX Runtime session.

    ``output_names``: the ONNX twin's outputs, in its order; ``tensor_names``: the TFLite tensors
    that hold them, in the same order, where their names differ (a graph converted from ONNX to
    TFLite names its outputs ``PartitionedCall:k``); by default the same names, checked at load.
    Shapes are the TFLite ones with the batch dimension shown as ``"N"`` when the twin's is dynamic."""

    def __init__(self, path: str, threads: int, output_names: list[str], dynamic_batch: bool,
                 tensor_names: list[str] | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            self._interp = Interpreter(model_path=path, num_threads=int(threads) if threads > 0 else None)
            self._interp.allocate_tensors()
        except Exception as e:  # LiteRT raises ValueError/RuntimeError of its own
            raise ModelError(f"{path}: cannot be loaded by LiteRT: {e}") from e
        (inp,) = self._interp.get_input_details()
        outs = {d["name"]: d for d in self._interp.get_output_details()}
        tensors = list(output_names) if tensor_names is None else list(tensor_names)
        if sorted(outs) != sorted(tensors) or len(tensors) != len(output_names):
            raise ModelError(f"{path}: outputs {sorted(outs)} are not the ONNX twin's {sorted(tensors)}")
        self._in = inp
        self._outs = [outs[n] for n in tensors]
        self._names = list(output_names)
        batch: list[int | str] = ["N"] if dynamic_batch else []
        cut = 1 if dynamic_batch else 0
        self._inputs = [_IO(inp["name"], batch + [int(s) for s in inp["shape"][cut:]])]
        self._outputs = [_IO(n, batch + [int(s) for s in d["shape"][cut:]])
                         for n, d in zip(self._names, self._outs, strict=True)]
        self._dynamic = dynamic_batch
        self._lock = threading.Lock()

    def get_inputs(self) -> list[_IO]:
        return list(self._inputs)

    def get_outputs(self) -> list[_IO]:
        return list(self._outputs)

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs (all, or ``output_names``) for the one input in ``feeds``; a batch of N > 1 runs
        item by item and is concatenated along the batch."""
        (x,) = feeds.values()
        x = np.ascontiguousarray(x, dtype=self._in["dtype"])
        want = self._outs if output_names is None else [
            d for n in output_names for k, d in zip(self._names, self._outs, strict=True) if k == n]
        if not self._dynamic or len(x) == 1:
            return self._invoke(x, want)
        parts = [self._invoke(x[i : i + 1], want) for i in range(len(x))]
        if not parts:
            return [np.zeros((0, *self._outputs[self._outs.index(d)].shape[1:]), d["dtype"]) for d in want]
        return [np.concatenate(p) for p in zip(*parts, strict=True)]

    def _invoke(self, x: np.ndarray, want: list[dict[str, Any]]) -> list[np.ndarray]:
        if tuple(x.shape) != tuple(self._in["shape"]):
            raise ModelError(f"LiteRT input: shape {tuple(x.shape)}, the model takes {tuple(self._in['shape'])}")
        with self._lock:
            self._interp.set_tensor(self._in["index"], x)
            self._interp.invoke()
            return [self._interp.get_tensor(d["index"]) for d in want]


@dataclass
class LiteRTModel(OnnxModel):
    """A shipped model's ``.tflite`` twin on LiteRT; ``name``, ``spec`` and the output names are those
    of the ONNX model it stands in for, ``path`` and ``sha256`` those of the ``.tflite`` file."""

    runtime = "litert"

    @classmethod
    def load_twin(cls, name: str, threads: int = 0) -> LiteRTModel:
        """The ``.tflite`` twin of shipped model ``name`` (sha256-verified), on LiteRT."""
        twin = tflite_name(name)
        if twin is None:
            raise ModelError(f"model {name!r} has no LiteRT (.tflite) file; it runs on ONNX Runtime only")
        if not available():
            raise ModelError('runtime "litert" needs the ai-edge-litert package: pip install "openfer[litert]"')
        entry, twin_entry = registry()[name], registry()[twin]
        path, digest = verified_file(twin)
        # a MediaPipe twin: the ONNX entry describes the graph the ONNX file was converted to; an
        # openfer model's twin (converted from its ONNX file) names the outputs and their tensors
        shape = twin_entry.get("input_shape", entry.get("input_shape", []))
        outputs = list(twin_entry.get("onnx_outputs", entry.get("outputs", [])))
        session = LiteRTSession(str(path), threads, outputs, bool(shape) and shape[0] == "N",
                                twin_entry.get("tflite_outputs"))
        spec = json.loads(twin_entry.get("spec", "{}"))
        return cls(name=name, path=path, session=session, sha256=digest, spec=spec)

    @classmethod
    def from_file(cls, path: str, like: OnnxModel, tensor_names: list[str], threads: int = 0) -> LiteRTModel:
        """A ``.tflite`` file standing in for the ONNX model ``like`` (its name, spec and output names;
        ``tensor_names``: the TFLite tensors of those outputs, in order), unregistered: for the
        scripts that make and measure a twin before it is installed."""
        from .onnx import sha256_file

        outputs = [o.name for o in like.session.get_outputs()]
        shape = like.session.get_inputs()[0].shape
        session = LiteRTSession(str(path), threads, outputs, bool(shape) and not isinstance(shape[0], int),
                                tensor_names)
        return cls(name=like.name, path=Path(path), session=session, sha256=sha256_file(path), spec=dict(like.spec))


def load(name: str, threads: int = 0, runtime: str = "auto") -> OnnxModel:
    """Shipped model ``name`` on ``runtime``: ``"onnxruntime"``; ``"litert"`` (its ``.tflite`` twin;
    a :class:`ModelError` when LiteRT is not installed; models without a twin run on ONNX Runtime);
    ``"auto"`` (LiteRT when installed and the model has a twin, else ONNX Runtime)."""
    check_runtime(runtime)
    if runtime != "onnxruntime" and tflite_name(name) is not None and (runtime == "litert" or available()):
        return LiteRTModel.load_twin(name, threads)
    return OnnxModel.load(name, threads=threads)
