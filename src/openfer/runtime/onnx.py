"""One ONNX Runtime session per model file, behind :class:`OnnxModel`.

Shipped models are listed in ``openfer/models/models.toml`` with their sha256; :func:`OnnxModel.load`
verifies the digest before creating the session and raises :class:`~openfer.errors.WeightsError` on
mismatch. Models carry their preprocessing spec as JSON in the ONNX metadata key ``openfer.spec``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, WeightsError

log = logging.getLogger("openfer")

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
SPEC_KEY = "openfer.spec"


@functools.cache
def registry() -> dict[str, dict[str, Any]]:
    """The shipped-model registry (``models.toml``), one table per model name."""
    path = MODELS_DIR / "models.toml"
    if not path.is_file():
        raise WeightsError(f"{path}: model registry missing (broken install?)")
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def write_registry_block(name: str, fields: dict[str, str], writer: str | None = None,
                         toml: Path | None = None) -> None:
    """Replace ``name``'s block of ``models.toml`` (the lines from ``# BEGIN <name>`` to ``# END <name>``)
    with one table ``[name]`` of ``fields`` (strings), appended at the end; other blocks stay. The
    scripts that make shipped files (``release_model.py``, ``calibrate_aus.py``, ``build_mean_face.py``,
    ``pseudolabel_validation.py``) register them through this. Written atomically."""
    import re

    from ..io.tables import atomic_open

    path = MODELS_DIR / "models.toml" if toml is None else Path(toml)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    text = re.sub(rf"\n*# BEGIN {re.escape(name)}(?: [^\n]*)?\n.*?# END {re.escape(name)}\n", "\n", text, flags=re.S)
    head = f"# BEGIN {name}" + (f" -- written by {writer}" if writer else "")
    body = "".join(f"{k} = {json.dumps(v, ensure_ascii=False)}\n" for k, v in fields.items())
    text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + f"{head}\n[{name}]\n{body}# END {name}\n"
    with atomic_open(path, encoding="utf-8") as fh:
        fh.write(text)
    registry.cache_clear()


# What each shipped file does (the registry blocks are written by conversion scripts; this names them)
MODEL_TASKS: dict[str, str] = {
    "blazeface_short": "face detection (BlazeFace short range, 128x128)",
    "facemesh": "face landmarks, 468 points (Face Mesh v1)",
    "iris": "iris landmarks, 2 x 5 points (with Face Mesh v1)",
    "facemesh_v2": "face landmarks, 478 points incl. iris (Face Mesh v2)",
    "blendshapes": "52 ARKit-style blendshapes from 146 landmarks",
    "mean_face": "head-pose reference: mean neutral face mesh",
    "fernet_s": "expression, 8 FER+ classes",
    "au_calibration": "action-unit intensity calibration",
    "pseudolabel_validation": "pseudo-label score and threshold record (FER2013Valid)",
}
_MEDIAPIPE_CARD = "cards/mediapipe.md"


@dataclass(frozen=True)
class ModelInfo:
    """One shipped file of the registry, as :func:`list_models` reports it."""

    name: str
    task: str
    path: Path
    size_bytes: int
    sha256: str
    license: str
    source: str
    card: Path | None


def list_models() -> list[ModelInfo]:
    """Every shipped model and data file in ``models.toml`` order, with its task, size, sha256 (from
    the registry; :func:`verified_file` checks a file against it), licence, source and card."""
    out = []
    for name, e in registry().items():
        path = MODELS_DIR / e["file"]
        card = e.get("card") or (_MEDIAPIPE_CARD if "mediapipe" in e.get("source", "") else None)
        out.append(
            ModelInfo(
                name=name,
                task=e.get("task") or MODEL_TASKS.get(name, ""),
                path=path,
                size_bytes=path.stat().st_size if path.is_file() else -1,
                sha256=e.get("sha256", ""),
                license=e.get("license", ""),
                source=e.get("source", ""),
                card=MODELS_DIR / card if card else None,
            )
        )
    return out


def model_path(name: str) -> Path:
    reg = registry()
    if name not in reg:
        raise ModelError(f"unknown model {name!r}; shipped models: {', '.join(sorted(reg))}")
    return MODELS_DIR / reg[name]["file"]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verified_file(name: str) -> tuple[Path, str]:
    """Path and sha256 of a shipped file by registry name, after checking the digest against the
    registry (:class:`~openfer.errors.WeightsError` when missing or different)."""
    path = model_path(name)
    if not path.is_file():
        raise WeightsError(f"{path}: weights of model {name!r} missing (broken install?)")
    digest, want = sha256_file(path), registry()[name].get("sha256")
    if want != digest:
        raise WeightsError(f"{path}: sha256 {digest[:12]}… does not match the registry ({str(want)[:12]}…)")
    return path, digest


def verified_path(name: str) -> Path:
    """Path of a shipped file by registry name, sha256-checked (:func:`verified_file`)."""
    return verified_file(name)[0]


@dataclass
class OnnxModel:
    """An ONNX Runtime session with its registry entry and embedded spec."""

    runtime = "onnxruntime"  # which runtime runs it (LiteRTModel: "litert")

    name: str
    path: Path
    session: Any
    sha256: str
    spec: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(
        cls, name_or_path: str | Path, threads: int = 0, providers: tuple[str, ...] = ("CPUExecutionProvider",)
    ) -> OnnxModel:
        """Load a shipped model by name (sha256-verified) or any ``.onnx`` file by path, on ONNX
        Runtime's ``providers`` (default: the CPU)."""
        import onnxruntime as ort

        p = Path(name_or_path)
        if p.suffix == ".onnx" and (p.is_file() or str(name_or_path) not in registry()):
            if not p.is_file():
                raise ModelError(f"{p}: model file not found")
            name, path, digest = p.stem, p, sha256_file(p)
        else:
            name = str(name_or_path)
            path, digest = verified_file(name)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # The pipeline runs 3-4 small sessions in turn; spinning worker threads of one session steal
        # the cores from the next (measured: 78 -> 22 ms for 19 detector windows on 2 threads).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            sess = ort.InferenceSession(str(path), opts, providers=list(providers))
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelError(f"{path}: cannot be loaded by ONNX Runtime: {e}") from e
        meta = sess.get_modelmeta().custom_metadata_map
        spec = json.loads(meta[SPEC_KEY]) if SPEC_KEY in meta else {}
        return cls(name=name, path=path, session=sess, sha256=digest, spec=spec)

    @property
    def input_name(self) -> str:
        return self.session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run on one input array; returns the outputs in graph order."""
        return self.session.run(None, {self.input_name: x})

    def run_batched(self, x: np.ndarray, max_batch: int = 64) -> list[np.ndarray]:
        """:meth:`run` on a batch of any size: in chunks of ``max_batch`` (one item at a time when
        the graph's batch dimension is fixed), outputs concatenated along the batch."""
        fixed = isinstance(self.session.get_inputs()[0].shape[0], int)
        chunk = 1 if fixed else max_batch
        if len(x) <= chunk:
            return self.run(x)
        parts = [self.run(x[i : i + chunk]) for i in range(0, len(x), chunk)]
        return [np.concatenate(outs) for outs in zip(*parts, strict=True)]


def as_model(model: str | Path | OnnxModel, threads: int = 0, runtime: str = "auto") -> OnnxModel:
    """``model`` when it is already loaded, else the shipped model of that name on ``runtime``
    (:func:`openfer.runtime.litert.load`: ``"auto"`` takes LiteRT for the models that have a
    ``.tflite`` twin when ``ai-edge-litert`` is installed) or the ``.onnx`` file at that path on ONNX
    Runtime. Every component takes either, so a caller (a test, a worker with its own providers) can
    hand one in."""
    if isinstance(model, OnnxModel):
        return model
    from . import litert

    litert.check_runtime(runtime)  # also for paths, which always run on ONNX Runtime
    if isinstance(model, str) and model in registry():
        return litert.load(model, threads, runtime)
    return OnnxModel.load(model, threads=threads)
