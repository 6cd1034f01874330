#!/usr/bin/env python
"""Convert MediaPipe's face models (TFLite) to ONNX, check parity, install them into openfer.

What it does, rerunnably:

1. takes the ``mediapipe==0.10.21`` wheel (``--wheel PATH``, or ``pip download --no-deps`` into a
   temporary folder) and reads the face detector, face mesh and iris models and the licence from it;
   takes Face Mesh v2 (478 points incl. iris) and the blendshape model from the Face Landmarker v2
   bundle (``--task PATH``, default ``../shared/models/mediapipe/face_landmarker_v2_with_blendshapes.task``,
   from MediaPipe's repository; provenance in ``../shared/README.md``), and the dense full-range
   BlazeFace detector (``--full-range PATH``, default ``../shared/models/mediapipe/face_detection_full_range.tflite``,
   also from the repository and checked against its pinned sha256; the wheel ships only the sparse twin);
2. converts each ``.tflite`` with tf2onnx (opset 17) and makes the batch dimension dynamic (``"N"``)
   where the graph's constant Reshape shapes can be proven to carry the batch, else keeps batch 1;
   the full-range detector, fully convolutional, also takes any input size that is a multiple of 32
   (``make_size_dynamic``: checked on the graph, equal to the fixed-size graph at 192 px), which
   openfer's dense detection passes use;
3. runs TFLite and ONNX Runtime (CPU, one thread) on random inputs in the model's input range and on
   the fixture photo (the blendshape model: on Face Mesh v2's landmarks of the fixture, jittered and
   scaled copies, random point clouds and MediaPipe's own test vector), checks a batch of 3 against 3 single runs, and fails before installing anything
   when a difference exceeds the tolerance;
4. writes ``src/openfer/models/{blazeface_short,facemesh,iris,facemesh_v2,blendshapes,blazeface_full}.onnx`` (with the preprocessing spec in
   the ONNX metadata key ``openfer.spec``), ``LICENSES/mediapipe-LICENSE`` and
   ``LICENSES/mediapipe-NOTICE``, its own block of ``models.toml`` (other tables are left as they
   are) and ``docs/models/mediapipe_parity.json``; every report says whether the conversion reproduces
   the installed file byte for byte (``reproduces_installed``).

``--only MODEL...`` converts and installs just those models: the other tables of the block and their
parity reports stay as they are, the licence files are not rewritten (a warning names the files the
NOTICE lacks), and the wheel is not needed unless a wheel model is selected. ``--dry-run`` converts
and checks without installing, e.g. to see whether a rerun reproduces the shipped files.

Input ranges, from MediaPipe's graphs (``modules/*/*.pbtxt``): the detectors take a 128x128 (short
range) or 192x192 (full range) RGB tensor in [-1, 1] (ImageToTensorCalculator
``output_tensor_float_range {min: -1 max: 1}`` in ``face_detection.pbtxt``, shared by both), the face
mesh 192x192 RGB in [0, 1] (``output_tensor_float_range {min: 0 max: 1}``) and the iris model 64x64
RGB in [0, 1] (TfLiteConverterCalculator ``zero_center: false``). All are NHWC.

This is a maintainer tool, not part of the package (nothing in ``openfer`` imports it). It needs a
throwaway environment with TensorFlow, which openfer itself never depends on::

    python3.11 -m venv /tmp/mp-venv
    /tmp/mp-venv/bin/pip install tensorflow-cpu==2.15.1 tf2onnx==1.16.1 onnx==1.17.0 onnxruntime "numpy<2"
    /tmp/mp-venv/bin/python scripts/convert_mediapipe.py --wheel mediapipe-0.10.21-cp311-...whl
    /tmp/mp-venv/bin/python scripts/convert_mediapipe.py --only blazeface_full    # the full-range detector alone

The canonical face mesh (``canonical_face_model.obj``) is installed when the wheel holds it or when
it is given with ``--canonical-obj`` (e.g. from a MediaPipe source checkout, where it lives at
``mediapipe/modules/face_geometry/data/canonical_face_model.obj``); the 0.10.21 wheels do not ship it.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Keep TensorFlow / ONNX Runtime quiet and on one core; must be set before they are imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import numpy as np  # noqa: E402

log = logging.getLogger("convert_mediapipe")

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "src" / "openfer" / "models"
PARITY_JSON = ROOT / "docs" / "models" / "mediapipe_parity.json"
DEFAULT_FIXTURE = ROOT.parent / "shared" / "fixtures" / "photos" / "single_face.jpg"

MP_VERSION = "0.10.21"
OPSET = 17
SPEC_KEY = "openfer.spec"  # same key as openfer.runtime.onnx.SPEC_KEY (not imported on purpose)
CANONICAL_OBJ = "mediapipe/modules/face_geometry/data/canonical_face_model.obj"
BLOCK_BEGIN = "# BEGIN mediapipe -- written by scripts/convert_mediapipe.py; edit the script, not this block"
BLOCK_END = "# END mediapipe"
BLOCK_TAG = "# BEGIN mediapipe"  # how an earlier block is found, whatever the rest of its first line


@dataclass(frozen=True)
class ModelSpec:
    """One MediaPipe model to convert: where it is in the wheel and what it expects."""

    key: str  # registry name in models.toml
    file: str  # file name under src/openfer/models/
    inner: str  # path inside the wheel
    size: int  # square input side, pixels (image models); number of points (point models)
    input_range: tuple[float, float]  # RGB 0..255 is mapped linearly onto this range
    description: str
    origin: str = "wheel"  # "wheel": the mediapipe wheel; "task": the Face Landmarker v2 bundle;
    # "file": a lone .tflite from MediaPipe's repository (REPO_FILES: path option, commit, sha256)
    kind: str = "image"  # "image": NHWC image tensor; "points": (1, size, 2) landmark tensor
    task: str = ""  # written as the registry table's ``task`` when set (openfer's MODEL_TASKS lacks it)
    # a fully convolutional image model made to take any input size that is a multiple of this
    # (make_size_dynamic); 0: the input size stays fixed
    size_multiple: int = 0


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "blazeface_short", "blazeface_short.onnx",
        "mediapipe/modules/face_detection/face_detection_short_range.tflite", 128, (-1.0, 1.0),
        "BlazeFace short-range detector: 896 SSD anchors x (16 regressors: box + 6 keypoints, "
        "in input pixels relative to the anchor) and 1 score logit",
    ),
    ModelSpec(
        "facemesh", "facemesh.onnx",
        "mediapipe/modules/face_landmark/face_landmark.tflite", 192, (0.0, 1.0),
        "Face Mesh: 468 landmarks (x, y in input pixels, z) and a face-presence flag",
    ),
    ModelSpec(
        "iris", "iris.onnx",
        "mediapipe/modules/iris_landmark/iris_landmark.tflite", 64, (0.0, 1.0),
        "Iris landmarks of a left eye (mirror right eyes): 71 eye-contour and brow points and "
        "5 iris points, (x, y in input pixels, z) each",
    ),
    ModelSpec(
        "facemesh_v2", "facemesh_v2.onnx", "face_landmarks_detector.tflite", 192, (0.0, 1.0),
        "Face Mesh v2 (Face Landmarker): 478 landmarks incl. 10 iris points (x, y in input pixels, z) "
        "and a face-presence logit", origin="task",
    ),
    ModelSpec(
        "blendshapes", "blendshapes.onnx", "face_blendshapes.tflite", 146, (0.0, 1.0),
        "Face blendshapes (MLP-Mixer): 146 of the 478 Face Mesh v2 landmarks as (x * image width, "
        "y * image height) -> 52 ARKit-style blendshape coefficients in [0, 1], '_neutral' first",
        origin="task", kind="points",
    ),
    ModelSpec(
        "blazeface_full", "blazeface_full.onnx",
        "mediapipe/modules/face_detection/face_detection_full_range.tflite", 192, (-1.0, 1.0),
        "BlazeFace full-range detector (dense): 2304 SSD anchors (48x48 grid, stride 4, one per cell) x "
        "(16 regressors: box + 6 keypoints, in input pixels relative to the anchor) and 1 score logit",
        origin="file", task="face detection (BlazeFace full range, 192x192; any size a multiple of 32)",
        size_multiple=32,
    ),
)
KEYS = tuple(m.key for m in MODELS)

# The Face Landmarker v2 bundle (a zip) in ../shared, from MediaPipe's repository (see ../shared/README.md).
DEFAULT_TASK = ROOT.parent / "shared" / "models" / "mediapipe" / "face_landmarker_v2_with_blendshapes.task"
TASK_REPO = "google-ai-edge/mediapipe@0179f0c4566ae78e02e1198cb73c60e4668395b5"
TASK_INNER = "mediapipe/tasks/testdata/vision/face_landmarker_v2_with_blendshapes.task"
# MediaPipe's own blendshape test vector (tests/assets/mediapipe/, transcribed from the repository's
# mediapipe/tasks/testdata/vision/face_blendshapes_{in_landmarks,out}.prototxt), used as a parity case.
TESTVECTOR = ROOT / "tests" / "assets" / "mediapipe" / "face_blendshapes_testvector.json"


@dataclass(frozen=True)
class RepoFile:
    """A ``.tflite`` taken on its own from MediaPipe's repository (not in the wheel): the option that
    names the local copy, its default, where it comes from and the sha256 it must have."""

    option: str
    default: Path
    repo: str
    sha256: str


# The dense full-range BlazeFace (the wheel ships only its sparse twin), copied into ../shared;
# provenance in ../shared/README.md.
REPO_FILES: dict[str, RepoFile] = {
    "blazeface_full": RepoFile(
        "full_range", ROOT.parent / "shared" / "models" / "mediapipe" / "face_detection_full_range.tflite",
        "google-ai-edge/mediapipe@139237092fedef164a17840aceb4e628244f8173",
        "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
    ),
}


# --------------------------------------------------------------------------------------------- wheel

def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def obtain_wheel(wheel: Path | None, tmp: Path) -> Path:
    """The given wheel, or ``mediapipe==MP_VERSION`` downloaded (no deps) into ``tmp``."""
    if wheel is not None:
        if not wheel.is_file():
            raise SystemExit(f"--wheel {wheel}: no such file")
        return wheel
    log.info("downloading mediapipe==%s (no deps) into %s", MP_VERSION, tmp)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         f"mediapipe=={MP_VERSION}", "-d", str(tmp)],
        check=True,
    )
    found = sorted(tmp.glob(f"mediapipe-{MP_VERSION}-*.whl"))
    if not found:
        raise SystemExit(f"pip download left no mediapipe-{MP_VERSION} wheel in {tmp}")
    return found[0]


def read_member(zf: zipfile.ZipFile, inner: str) -> bytes:
    try:
        return zf.read(inner)
    except KeyError:
        folder = inner.rsplit("/", 1)[0]
        near = [n for n in zf.namelist() if n.startswith(folder)]
        raise SystemExit(f"{zf.filename}: no {inner}; under {folder}/: {near}") from None


def find_license(zf: zipfile.ZipFile) -> str:
    names = [n for n in zf.namelist()
             if re.fullmatch(r"mediapipe-[^/]+\.dist-info/(LICEN[CS]E|COPYING)[^/]*", n)]
    if len(names) != 1:
        raise SystemExit(f"{zf.filename}: expected one licence file in the .dist-info, found {names}")
    return names[0]


def wheel_version(name: str) -> str:
    m = re.match(r"mediapipe-([^-]+)-", name)
    return m.group(1) if m else "unknown"


# ---------------------------------------------------------------------------------------- conversion

def convert(tflite_path: Path, opset: int) -> Any:
    """tf2onnx conversion of one ``.tflite`` file; returns the ONNX ModelProto."""
    import tf2onnx

    model, external = tf2onnx.convert.from_tflite(str(tflite_path), opset=opset)
    if external:
        raise SystemExit(f"{tflite_path}: tf2onnx produced external tensors; not supported here")
    canonicalize_names(model)
    return model


GENERATED = re.compile(r"__\d+")


def canonicalize_names(model: Any) -> None:
    """Renumber tf2onnx's generated names in graph order, in place, so reruns give identical bytes.

    tf2onnx suffixes the names it makes up with a process-wide counter (``conv2d__1286``) whose
    values vary from run to run although the graph does not, and names a deduplicated constant
    after whichever of its copies it met first. Both are renamed by first use; other names from
    the TFLite model are kept.
    """
    g = model.graph
    uses = collections.Counter(i for n in g.node for i in n.input)
    shared = {t.name for t in g.initializer if uses[t.name] > 1}
    mapping: dict[str, str] = {}

    def rename(name: str) -> str:
        m = GENERATED.search(name)
        if name in shared:
            prefix = "shared_const"
        elif name and m is not None:
            prefix = name[: m.start()]
        else:
            return name
        if name not in mapping:
            mapping[name] = f"{prefix}__{len(mapping)}"
        return mapping[name]

    for node in g.node:
        node.name = rename(node.name)
        for i, name in enumerate(node.input):
            node.input[i] = rename(name)
        for i, name in enumerate(node.output):
            node.output[i] = rename(name)
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        vi.name = rename(vi.name)
    for t in g.initializer:
        t.name = rename(t.name)
    ordered = sorted(g.initializer, key=lambda t: t.name)
    copies = [type(t)() for t in ordered]
    for c, t in zip(copies, ordered, strict=True):
        c.CopyFrom(t)
    del g.initializer[:]
    g.initializer.extend(copies)


def _dim0(vi: Any) -> int | str | None:
    dims = vi.type.tensor_type.shape.dim
    if not dims:
        return None
    d = dims[0]
    return d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else None)


def _set_dim0(vi: Any, value: int | str) -> None:
    d = vi.type.tensor_type.shape.dim[0]
    if isinstance(value, str):
        d.dim_param = value
    else:
        d.dim_value = value


def make_batch_dynamic(model: Any) -> tuple[Any, list[str], list[str]]:
    """Copy of ``model`` with dim 0 of inputs and outputs named ``"N"``.

    A Reshape whose constant target shape starts with 1 is rewritten to start with 0 ("copy this
    dimension from the data input", ONNX Reshape with ``allowzero=0``) only when shape inference
    shows that the data input's dim 0 is the symbolic batch. Returns the model, the patched Reshape
    nodes and the Reshapes that still pin the batch (non-empty means: do not use the dynamic model).
    """
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    del g.value_info[:]
    for vi in list(g.input) + list(g.output):
        _set_dim0(vi, "N")
    inits = {t.name: t for t in g.initializer}
    patched: list[str] = []
    for _ in range(len(g.node)):  # a patch can expose the batch to a later Reshape
        inferred = onnx.shape_inference.infer_shapes(m)
        shapes = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.input)}
        changed = False
        for node in g.node:
            if node.op_type != "Reshape" or node.name in patched or node.input[1] not in inits:
                continue
            if any(a.name == "allowzero" and a.i == 1 for a in node.attribute):
                continue
            target = numpy_helper.to_array(inits[node.input[1]])
            data = shapes.get(node.input[0])
            if target.ndim != 1 or target.size == 0 or target[0] != 1 or data is None or _dim0(data) != "N":
                continue
            new = target.copy()
            new[0] = 0
            name = f"{node.input[1]}__batch"
            if name not in inits:  # a shared shape constant is copied once
                inits[name] = numpy_helper.from_array(new, name)
                g.initializer.append(inits[name])
            node.input[1] = name
            patched.append(node.name)
            changed = True
        if not changed:
            break
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    pinned = []
    for node in g.node:
        if node.op_type == "Reshape" and node.name not in patched and node.input[1] in inits:
            target = numpy_helper.to_array(inits[node.input[1]])
            if target.ndim == 1 and target.size and target[0] == 1:
                pinned.append(node.name)
    if not pinned:
        onnx.checker.check_model(m, full_check=True)
    return m, patched, pinned


def make_size_dynamic(model: Any, multiple: int) -> tuple[Any, dict[str, Any]]:
    """Copy of a fully convolutional NHWC detector whose input is ``(N, H, W, C)`` for any ``H`` and
    ``W`` that are multiples of ``multiple`` (and outputs ``(N, A, k)``), or ``SystemExit`` when the
    graph cannot be shown to compute the same function at other sizes.

    What must hold, checked on the graph: every Resize takes ``scales`` (not output ``sizes``); every
    strided Conv or MaxPool has the explicit padding that equals TensorFlow's ``'SAME'`` on an input
    divisible by its stride (kernel 3, stride 2: ``(0, 0, 1, 1)``; kernel 2, stride 2: none), and
    every unstrided one pads ``(k - 1) / 2`` on each side (SAME at any size); Pad only pads channels;
    the two output Reshapes flatten ``(N, h, w, k)`` and get target ``(0, -1, k)`` (batch copied,
    anchors counted). TFLite itself cannot run the graph at another size (its resize ops carry fixed
    output sizes), so the larger inputs are checked by the caller against the fixed-size graph."""
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    del g.value_info[:]
    inits = {t.name: t for t in g.initializer}
    seen: dict[str, int] = collections.Counter()
    for node in g.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Resize":
            if len(node.input) > 3 and node.input[3] or len(node.input) < 3 or node.input[2] not in inits:
                raise SystemExit(f"{node.name}: Resize without constant scales: the output size is fixed")
        elif node.op_type in ("Conv", "MaxPool"):
            k, st = list(attrs.get("kernel_shape", [])), list(attrs.get("strides", [1, 1]))
            pads = list(attrs.get("pads", [0, 0, 0, 0]))
            if "auto_pad" in attrs and attrs["auto_pad"] not in (b"NOTSET", b""):
                raise SystemExit(f"{node.name}: auto_pad {attrs['auto_pad']!r}")
            if st == [1, 1]:
                want = [(k[0] - 1) // 2, (k[1] - 1) // 2] * 2
                same = all(x % 2 == 1 for x in k) and pads == want
            elif st == [2, 2] and multiple % 2 == 0:
                same = pads == [0, 0, max(k[0] - 2, 0), max(k[1] - 2, 0)]
            else:
                same = False
            if not same:
                raise SystemExit(f"{node.name}: kernel {k} stride {st} pads {pads} is not 'SAME' at every size")
        elif node.op_type == "Pad":
            pads = numpy_helper.to_array(inits[node.input[1]]) if node.input[1] in inits else None
            # (begin, end) x (N, C, H, W) after the graph's input transpose: only C may be padded
            if pads is None or pads.size != 8 or np.delete(pads.reshape(2, 4), 1, axis=1).any():
                raise SystemExit(f"{node.name}: Pad beyond the channel axis")
        elif node.op_type == "Reshape":
            target = numpy_helper.to_array(inits[node.input[1]])
            if target.ndim != 1 or target.size != 3 or target[0] != 1 or target[1] != -1:
                raise SystemExit(f"{node.name}: Reshape to {target.tolist()}, expected (1, -1, k)")
            name = f"{node.input[1]}__any"
            if name not in inits:
                inits[name] = numpy_helper.from_array(np.array([0, -1, target[2]], np.int64), name)
                g.initializer.append(inits[name])
            node.input[1] = name
        seen[node.op_type] += 1
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    for vi, names in [(g.input[0], ("N", "H", "W"))] + [(o, ("N", "A")) for o in g.output]:
        for d, name in zip(vi.type.tensor_type.shape.dim, names, strict=False):
            d.ClearField("dim_value")
            d.dim_param = name
    onnx.checker.check_model(m, full_check=True)
    return m, {"size_multiple": multiple, "checked_ops": dict(sorted(seen.items()))}


def check_sizes(fixed: Any, model: Any, spec: ModelSpec, atol: float) -> dict[str, Any]:
    """The size-dynamic model against the fixed-size one: equal at the model's size (random inputs
    and a batch of 3), and at other sizes one anchor per cell of the output grid."""
    sf, sd = ort_session(fixed), ort_session(model)
    name = sd.get_inputs()[0].name
    xs = [random_input(spec, 200 + i) for i in range(3)]
    diff = max(max_abs_diff(a, b) for x in xs for a, b in zip(sf.run(None, {name: x}), sd.run(None, {name: x}),
                                                               strict=True))
    batch_diff, _ = check_batch(sd, xs, atol)
    n_anchors = sf.run(None, {name: xs[0]})[0].shape[1]
    stride = int(round(spec.size / np.sqrt(n_anchors)))
    sizes = {}
    for h, w in ((384, 384), (448, 640), (224, 160)):
        x = np.random.default_rng(h * w).uniform(*spec.input_range, size=(1, h, w, 3)).astype(np.float32)
        outs = sd.run(None, {name: x})
        sizes[f"{h}x{w}"] = [list(o.shape) for o in outs]
        if any(o.shape[1] != (h // stride) * (w // stride) for o in outs):
            raise SystemExit(f"{spec.key}: a {h}x{w} input gives {sizes[f'{h}x{w}']}, not a {stride}-px grid")
    rep = {"max_abs_diff_vs_fixed_at_size": diff, "max_abs_diff_batch3_vs_single": batch_diff,
           "grid_stride": stride, "output_shapes": sizes}
    if diff > 0 or batch_diff > atol:
        raise SystemExit(f"{spec.key}: the size-dynamic graph differs from the fixed one ({rep})")
    return rep


def static_copy(model: Any) -> Any:
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.value_info[:]
    return m


def annotate(model: Any, spec: ModelSpec, source: str, dynamic: bool, size_multiple: int = 0) -> None:
    """Doc string and the ``openfer.spec`` metadata that openfer's runtime reads (``size``: the
    model's own input side; ``size_multiple``: other sides it takes, when its input size is free)."""
    image = {"size": spec.size, "layout": "NHWC", "colour": "RGB", "input_range": list(spec.input_range)}
    if size_multiple:
        image["size_multiple"] = size_multiple
    points = {"points": spec.size, "layout": "points", "units": "image pixels (x * width, y * height)"}
    meta = {
        "arch": f"mediapipe.{Path(spec.inner).stem}",
        "source": source,
        "license": "Apache-2.0",
        **(points if spec.kind == "points" else image),
        "batch": "N" if dynamic else 1,
        "outputs": [o.name for o in model.graph.output],
        "description": spec.description,
    }
    model.doc_string = f"{spec.description}. Converted from {source} by openfer (Apache-2.0, Google)."
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = SPEC_KEY, json.dumps(meta, sort_keys=True)


def io_summary(vis: Any) -> list[dict[str, Any]]:
    import onnx

    out = []
    for vi in vis:
        tt = vi.type.tensor_type
        dims = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in tt.shape.dim]
        out.append({"name": vi.name, "shape": dims,
                    "dtype": onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name})
    return out


def op_types(model: Any) -> dict[str, int]:
    counts = collections.Counter(
        (n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}") for n in model.graph.node
    )
    return dict(sorted(counts.items()))


# -------------------------------------------------------------------------------------------- parity

def ort_session(model: Any) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


class TfliteRunner:
    """tf.lite.Interpreter on one thread; outputs by tensor name."""

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        self.interp = tf.lite.Interpreter(model_path=str(path), num_threads=1)
        self.interp.allocate_tensors()
        (self.inp,) = self.interp.get_input_details()
        self.outs = self.interp.get_output_details()

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        self.interp.set_tensor(self.inp["index"], x)
        self.interp.invoke()
        return {d["name"]: self.interp.get_tensor(d["index"]).copy() for d in self.outs}


def random_input(spec: ModelSpec, seed: int) -> np.ndarray:
    if spec.kind == "points":  # a face-sized cloud of points in pixel coordinates
        rng = np.random.default_rng(seed)
        return rng.uniform(100.0, 300.0, size=(1, spec.size, 2)).astype(np.float32)
    lo, hi = spec.input_range
    rng = np.random.default_rng(seed)
    return rng.uniform(lo, hi, size=(1, spec.size, spec.size, 3)).astype(np.float32)


def load_rgb(path: Path) -> np.ndarray:
    """RGB uint8 image (H, W, 3), decoded by TensorFlow (no image library in the venv)."""
    import tensorflow as tf

    return tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False).numpy()


def to_input(rgb: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Whole image resized (area) to the model's square input, mapped onto its input range."""
    import tensorflow as tf

    x = tf.image.resize(rgb[None].astype(np.float32), (spec.size, spec.size), method="area").numpy()
    lo, hi = spec.input_range
    return (lo + (hi - lo) * x / 255.0).astype(np.float32)


def load_blendshapes_module() -> Any:
    """``openfer.core.blendshapes`` loaded from its file (numpy only; openfer is not installed here)."""
    import importlib.util

    path = ROOT / "src" / "openfer" / "core" / "blendshapes.py"
    spec = importlib.util.spec_from_file_location("openfer_core_blendshapes", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def points_cases(mesh_v2: Any, face_rgb: np.ndarray, n_random: int) -> dict[str, np.ndarray]:
    """Inputs for the blendshape model: Face Mesh v2's landmarks on the fixture photo (whole image
    resized to 192 px, so coordinates are in 192-px units), the same points jittered and scaled,
    random point clouds, and MediaPipe's own test vector when it is in tests/assets."""
    bs = load_blendshapes_module()
    spec = next(m for m in MODELS if m.key == "facemesh_v2")
    sess = ort_session(mesh_v2)
    outs = sess.run(None, {sess.get_inputs()[0].name: to_input(face_rgb, spec)})
    raw = next(o for o in outs if o.size == 478 * 3).reshape(1, 478, 3)
    pts = bs.blendshape_inputs(raw)
    rng = np.random.default_rng(0)
    bspec = next(m for m in MODELS if m.key == "blendshapes")
    cases = {"fixture_mesh_v2": pts,
             "fixture_mesh_v2_jitter": (pts + rng.normal(0, 0.5, pts.shape)).astype(np.float32),
             "fixture_mesh_v2_x3": (pts * 3.0 + 40.0).astype(np.float32)}
    cases |= {f"random_{i}": random_input(bspec, i) for i in range(n_random)}
    if TESTVECTOR.is_file():
        tv = json.loads(TESTVECTOR.read_text())
        w, h = tv["image_size"]
        lm = bs.normalized_to_pixels(np.asarray(tv["landmarks"])[None], w, h)
        cases["mediapipe_testvector"] = bs.blendshape_inputs(lm)
    return cases


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise SystemExit(f"shape mismatch TFLite {a.shape} vs ONNX {b.shape}")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def check_parity(
    tfl: TfliteRunner, sess: Any, cases: dict[str, np.ndarray], atol: float, rtol: float
) -> dict[str, Any]:
    """Max abs difference per output and case; ``ok`` when every diff <= atol + rtol * max|ref|."""
    names = [o.name for o in sess.get_outputs()]
    in_name = sess.get_inputs()[0].name
    per_case: dict[str, dict[str, float]] = {}
    worst = dict.fromkeys(names, 0.0)
    scale = dict.fromkeys(names, 0.0)
    for case, x in cases.items():
        ref = tfl(x)
        if set(ref) != set(names):
            raise SystemExit(f"output names differ: TFLite {sorted(ref)} vs ONNX {names}")
        got = dict(zip(names, sess.run(None, {in_name: x}), strict=True))
        per_case[case] = {n: max_abs_diff(ref[n], got[n]) for n in names}
        for n in names:
            worst[n] = max(worst[n], per_case[case][n])
            scale[n] = max(scale[n], float(np.max(np.abs(ref[n]))))
    ok = all(worst[n] <= atol + rtol * scale[n] for n in names)
    return {"tflite_output_order": [d["name"] for d in tfl.outs], "max_abs_diff": worst,
            "max_abs_reference": scale, "per_case": per_case, "ok": ok}


def check_batch(sess: Any, xs: list[np.ndarray], atol: float) -> tuple[float, bool]:
    """Max abs difference between one batched run and single runs of the same inputs."""
    in_name = sess.get_inputs()[0].name
    try:
        batched = sess.run(None, {in_name: np.concatenate(xs)})
    except Exception as e:  # onnxruntime raises its own exception types
        log.warning("batched run failed: %s", e)
        return float("inf"), False
    singles = [sess.run(None, {in_name: x}) for x in xs]
    diff = 0.0
    for k, out in enumerate(batched):
        if out.shape[0] != len(xs):
            return float("inf"), False
        diff = max(diff, max_abs_diff(out, np.concatenate([s[k] for s in singles])))
    return diff, diff <= atol


def face_flag_probe(sess: Any, face: np.ndarray, spec: ModelSpec) -> dict[str, Any]:
    """Face Mesh's flag output on the fixture face vs noise: is it a logit or a probability?"""
    in_name = sess.get_inputs()[0].name
    flag = next(o.name for o in sess.get_outputs() if int(np.prod(o.shape[1:])) == 1)
    val = {}
    for case, x in {"fixture_face": face, "uniform_noise": random_input(spec, 1234),
                    "flat_grey": np.full_like(face, sum(spec.input_range) / 2)}.items():
        val[case] = float(np.ravel(sess.run([flag], {in_name: x})[0])[0])
    raw = np.array(list(val.values()))
    kind = "probability" if np.all((raw >= 0) & (raw <= 1)) else "logit"
    return {"output": flag, "raw": val, "sigmoid": {k: float(1 / (1 + np.exp(-v))) for k, v in val.items()},
            "looks_like": kind}


# ------------------------------------------------------------------------------------------- install

def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def render_block(tables: dict[str, dict[str, Any]]) -> str:
    lines = [BLOCK_BEGIN]
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
        lines.append("")
    lines[-1] = BLOCK_END
    return "\n".join(lines) + "\n"


def update_registry(path: Path, tables: dict[str, dict[str, Any]]) -> None:
    """Replace (or append) this script's block in ``models.toml``; everything else stays byte for byte.

    Refuses to write when one of our tables exists outside the block, and checks afterwards that
    the other tables parse to exactly what they were.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    begin, end = text.find(BLOCK_TAG), text.find(BLOCK_END)
    if (begin < 0) != (end < 0) or (begin >= 0 and end < begin):
        raise SystemExit(f"{path}: unbalanced '{BLOCK_TAG}' / '{BLOCK_END}' markers; fix by hand")
    if begin >= 0:
        stop = end + len(BLOCK_END)
        stop += text[stop:].startswith("\n")
        outside = text[:begin] + text[stop:]
    else:
        outside = text
    others = tomllib.loads(outside)
    clash = sorted(set(others) & set(tables))
    if clash:
        raise SystemExit(f"{path}: tables {clash} exist outside the generated block; remove them first")
    block = render_block(tables)
    if begin >= 0:
        new = text[:begin] + block + text[stop:]
    else:
        sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        new = text + sep + block
    parsed = tomllib.loads(new)
    if {k: parsed[k] for k in others} != others or {k: parsed[k] for k in tables} != tables:
        raise SystemExit(f"{path}: rewritten registry does not round-trip; not written")
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)


def notice_text(wheel: Path, wheel_sha: str, version: str, licence_inner: str,
                installed: list[tuple[str, str, str]], tools: dict[str, str]) -> str:
    rows = "\n".join(f"  {dst:<26} <- {inner}\n  {'':<26}    (sha256 of the original: {sha})"
                     for dst, inner, sha in installed)
    tool_rows = "\n".join(f"  {k} {v}" for k, v in tools.items())
    return f"""openfer -- MediaPipe face models
=================================

The files listed below are models by Google LLC (The MediaPipe Authors), taken from the MediaPipe
Python wheel and licensed under the Apache License, Version 2.0 (see mediapipe-LICENSE next to
this file, copied from {licence_inner} in the same wheel).

Source wheel: {wheel.name}
  mediapipe version {version}, sha256 {wheel_sha}

Files (in openfer/models/ <- path inside the wheel):
{rows}

Modifications by openfer: the .tflite models were converted to ONNX (opset {OPSET}) by
scripts/convert_mediapipe.py; where shape inference proves it safe, the constant batch dimension
of Reshape shapes was replaced by "copy from input" so that the batch dimension is dynamic; an
"{SPEC_KEY}" metadata entry describing the preprocessing was added. Weight values are unchanged
(where the original stores float16 weights, they are stored here as the exact float32 values).
Outputs were checked against TFLite; see docs/models/mediapipe_parity.json.

Conversion tools:
{tool_rows}
"""


def task_notice(task: Path, task_sha: str, installed: list[tuple[str, str, str]]) -> str:
    rows = "\n".join(f"  {dst:<26} <- {inner}\n  {'':<26}    (sha256 of the original: {sha})"
                     for dst, inner, sha in installed)
    return f"""
Face Landmarker v2 models
-------------------------

The files below are models by Google LLC (The MediaPipe Authors) from the Face Landmarker v2 bundle
in MediaPipe's GitHub repository, licensed under the Apache License, Version 2.0 (the same licence
as above; the repository's LICENSE is identical to mediapipe-LICENSE):

Source: {TASK_REPO}, {TASK_INNER}
  ({task.name}, a zip; sha256 {task_sha})

Files (in openfer/models/ <- member of the bundle):
{rows}

Modifications by openfer: converted to ONNX (opset {OPSET}) by scripts/convert_mediapipe.py, with
the same "{SPEC_KEY}" metadata entry; weight values unchanged; outputs checked against TFLite and,
for the blendshape model, against MediaPipe's own test vector (docs/models/mediapipe_parity.json).
"""


def file_notice(installed: list[tuple[str, str, str]]) -> str:
    if not installed:
        return ""
    rows = "\n".join(f"  {dst:<26} <- {src}\n  {'':<26}    (sha256 of the original: {sha})"
                     for dst, src, sha in installed)
    return f"""
Models from MediaPipe's repository
----------------------------------

The files below are models by Google LLC (The MediaPipe Authors) taken on their own from MediaPipe's
GitHub repository (the mediapipe wheel ships only other variants), licensed under the Apache License,
Version 2.0 (the same licence as above; the repository's LICENSE is identical to mediapipe-LICENSE):

Files (in openfer/models/ <- repository@commit:path):
{rows}

Modifications by openfer: converted to ONNX (opset {OPSET}) by scripts/convert_mediapipe.py, with
the same "{SPEC_KEY}" metadata entry; weight values unchanged; the input's height and width made
free (any multiple of 32) and the two output Reshapes made to count the anchors, so the graph runs
on larger images; outputs checked against TFLite at 192x192 (docs/models/mediapipe_parity.json).
"""


def tool_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    return {"python": sys.version.split()[0], "tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}


def validate_obj(data: bytes) -> dict[str, int]:
    counts = collections.Counter(line.split(maxsplit=1)[0] for line in data.decode().splitlines()
                                 if line.strip() and not line.startswith("#"))
    if counts["v"] != 468:
        raise SystemExit(f"canonical mesh has {counts['v']} vertices, expected 468")
    return {"vertices": counts["v"], "uvs": counts["vt"], "faces": counts["f"]}


# ---------------------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--wheel", type=Path, help=f"mediapipe-{MP_VERSION} wheel (default: pip download it)")
    p.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE, help="photo with one face, for parity")
    p.add_argument("--canonical-obj", type=Path, help="canonical_face_model.obj, when the wheel lacks it")
    p.add_argument("--task", type=Path, default=DEFAULT_TASK,
                   help="face_landmarker_v2_with_blendshapes.task (Face Mesh v2 and blendshapes)")
    full = REPO_FILES["blazeface_full"]
    p.add_argument("--full-range", type=Path, default=full.default,
                   help=f"face_detection_full_range.tflite (dense), from {full.repo}; sha256-checked")
    p.add_argument("--only", nargs="+", choices=KEYS, metavar="MODEL",
                   help=f"convert and install only these ({', '.join(KEYS)}); the other tables of the "
                        "registry block and their parity reports stay as installed, the licence files "
                        "are left alone")
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    p.add_argument("--parity-json", type=Path, default=PARITY_JSON)
    p.add_argument("--opset", type=int, default=OPSET)
    p.add_argument("--random-cases", type=int, default=3, help="random inputs per model")
    p.add_argument("--atol", type=float, default=1e-3, help="parity: absolute tolerance")
    p.add_argument("--rtol", type=float, default=1e-5, help="parity: tolerance relative to max|TFLite|")
    p.add_argument("--dry-run", action="store_true", help="convert and check; install nothing")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def process_model(spec: ModelSpec, tflite: Path, source: str, face_rgb: np.ndarray,
                  args: argparse.Namespace, converted: dict[str, Any]) -> tuple[Any, dict[str, Any], bool]:
    """Convert, make batch dynamic if provably safe, check parity; returns (model, report, ok)."""
    log.info("%s: converting %s", spec.key, spec.inner)
    base = convert(tflite, args.opset)
    tfl = TfliteRunner(tflite)
    sizes: dict[str, Any] | None = None
    if spec.kind == "points":
        # the output has no batch axis ([52]): the model stays batch 1 and is run once per face
        dyn, patched, pinned = base, [], []
        cases = points_cases(converted["facemesh_v2"], face_rgb, args.random_cases)
        real = cases["fixture_mesh_v2"]
    else:
        real = to_input(face_rgb, spec)
        cases = {f"random_{i}": random_input(spec, i) for i in range(args.random_cases)} | {"fixture": real}
        if spec.size_multiple:  # any input size (and batch), or nothing installed
            dyn, sizes = make_size_dynamic(base, spec.size_multiple)
            sizes |= check_sizes(static_copy(base), dyn, spec, args.atol)
            patched, pinned = [n.name for n in dyn.graph.node if n.op_type == "Reshape"], []
        else:
            dyn, patched, pinned = make_batch_dynamic(base)

    batch: dict[str, Any] = {"patched_reshapes": patched, "reshapes_pinning_batch": pinned}
    model = dyn
    if spec.kind == "points":
        batch["why_static"] = "the output [52] has no batch axis"
    elif sizes:  # check_sizes compared a batch of 3 with single runs
        batch["max_abs_diff_batch3_vs_single"] = sizes["max_abs_diff_batch3_vs_single"]
    elif pinned:
        batch["why_static"] = "constant Reshape shapes pin batch 1 and could not be proven safe to free"
    else:
        trio = [real, random_input(spec, 100), random_input(spec, 101)]
        diff, ok = check_batch(ort_session(dyn), trio, args.atol)
        batch["max_abs_diff_batch3_vs_single"] = diff
        if not ok:
            batch["why_static"] = f"batch of 3 differs from single runs by {diff:g}"
    if "why_static" in batch:
        (log.info if spec.kind == "points" else log.warning)("%s: keeping batch 1: %s", spec.key, batch["why_static"])
        model = static_copy(base)
    dynamic = model is dyn
    batch["dynamic"] = dynamic
    log.info("%s: batch %s (patched Reshapes: %s)", spec.key, "dynamic N" if dynamic else "fixed 1",
             ", ".join(batch["patched_reshapes"]) or "none")

    annotate(model, spec, source, dynamic, spec.size_multiple)
    sess = ort_session(model)  # the model as shipped: CPU EP, one thread
    parity = check_parity(tfl, sess, cases, args.atol, args.rtol)
    ops = op_types(model)
    log.info("%s: op types %s", spec.key, ", ".join(f"{k} x{v}" for k, v in ops.items()))
    for name, d in parity["max_abs_diff"].items():
        log.info("%s: %-32s max |TFLite - ONNX| = %.3g", spec.key, name, d)
    report: dict[str, Any] = {
        "file": spec.file, "source": source,
        **({"layout": "points (1, 146, 2), image pixels"} if spec.kind == "points" else
           {"input_range": list(spec.input_range), "layout": "NHWC", "colour": "RGB"}),
        "inputs": io_summary(model.graph.input), "outputs": io_summary(model.graph.output),
        "op_types": ops, "batch": batch, "parity": parity,
    }
    if sizes:
        report["any_size"] = sizes
    if spec.kind == "points":
        report["input_convention"] = ("146 of the 478 Face Mesh v2 landmarks (openfer.core.blendshapes."
                                      "BLENDSHAPE_LANDMARKS), x * image width, y * image height")
        if "mediapipe_testvector" in cases:
            ref = dict(zip([o.name for o in sess.get_outputs()],
                           sess.run(None, {sess.get_inputs()[0].name: cases["mediapipe_testvector"]}),
                           strict=True))
            tv = json.loads(TESTVECTOR.read_text())
            got = np.ravel(next(iter(ref.values())))
            want = np.asarray(list(tv["blendshapes"].values()))
            report["mediapipe_testvector"] = {
                "file": str(TESTVECTOR.relative_to(ROOT)), "image_size": tv["image_size"],
                "max_abs_diff_onnx_vs_expected": float(np.max(np.abs(got - want))),
            }
            log.info("%s: MediaPipe test vector max |ONNX - expected| = %.3g", spec.key,
                     report["mediapipe_testvector"]["max_abs_diff_onnx_vs_expected"])
    if spec.key in ("facemesh", "facemesh_v2"):
        report["face_flag"] = face_flag_probe(sess, real, spec)
        log.info("%s: face flag %s", spec.key, report["face_flag"]["raw"])
    return model, report, parity["ok"]


def convert_members(zf: zipfile.ZipFile, origin: str, source_of: Any, tmp: Path, face_rgb: np.ndarray,
                    args: argparse.Namespace, converted: dict[str, Any], reports: dict[str, Any],
                    originals: list[tuple[str, str, str]], needed: set[str]) -> bool:
    """Convert and check every model of ``origin`` in ``needed`` found in ``zf``; fills ``converted``,
    ``reports`` and ``originals`` (in MODELS order, so Face Mesh v2 exists before the blendshape model
    needs it). Returns whether all passed parity."""
    ok_all = True
    for spec in (m for m in MODELS if m.origin == origin and m.key in needed):
        data = read_member(zf, spec.inner)
        tflite = tmp / Path(spec.inner).name
        tflite.write_bytes(data)
        model, report, ok = process_model(spec, tflite, source_of(spec.inner), face_rgb, args, converted)
        report["tflite_sha256"] = sha256_bytes(data)
        converted[spec.key], reports[spec.key] = model, report
        originals.append((spec.file, spec.inner, report["tflite_sha256"]))
        ok_all &= ok
    return ok_all


def convert_files(tmp: Path, face_rgb: np.ndarray, args: argparse.Namespace, converted: dict[str, Any],
                  reports: dict[str, Any], originals: list[tuple[str, str, str]], needed: set[str]) -> bool:
    """Convert and check the lone repository files (REPO_FILES) in ``needed``; each must have its
    pinned sha256. Fills the same dicts as :func:`convert_members`."""
    ok_all = True
    for spec in (m for m in MODELS if m.origin == "file" and m.key in needed):
        rf = REPO_FILES[spec.key]
        path = getattr(args, rf.option)
        if not path.is_file():
            raise SystemExit(f"--{rf.option.replace('_', '-')} {path}: no such file")
        data = path.read_bytes()
        if sha256_bytes(data) != rf.sha256:
            raise SystemExit(f"{path}: sha256 {sha256_bytes(data)[:12]}... is not that of {rf.repo}:"
                             f"{spec.inner} ({rf.sha256[:12]}...)")
        tflite = tmp / Path(spec.inner).name
        tflite.write_bytes(data)
        source = f"{rf.repo}:{spec.inner}"
        model, report, ok = process_model(spec, tflite, source, face_rgb, args, converted)
        report["tflite_sha256"] = rf.sha256
        converted[spec.key], reports[spec.key] = model, report
        originals.append((spec.file, source, rf.sha256))
        ok_all &= ok
    return ok_all


def installed_tables(path: Path) -> dict[str, dict[str, Any]]:
    """The tables of this script's block in ``models.toml`` as installed now (empty when absent)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    begin, end = text.find(BLOCK_TAG), text.find(BLOCK_END)
    if begin < 0 or end < begin:
        return {}
    return tomllib.loads(text[begin:end])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("tensorflow", "tf2onnx", "absl"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if not args.fixture.is_file():
        raise SystemExit(f"--fixture {args.fixture}: no such file")
    selected = set(args.only or KEYS)
    partial = selected != set(KEYS)
    if partial and not args.parity_json.is_file():
        raise SystemExit(f"--only needs the parity report of a full run ({args.parity_json}): run without it")
    # the blendshape model's parity cases are Face Mesh v2's landmarks: convert v2 too (not installed)
    needed = selected | ({"facemesh_v2"} if "blendshapes" in selected else set())
    origins = {m.origin for m in MODELS if m.key in needed}
    installed = installed_tables(args.models_dir / "models.toml")

    wheel = None
    with tempfile.TemporaryDirectory(prefix="convert_mediapipe_") as tmpdir:
        tmp = Path(tmpdir)
        face_rgb = load_rgb(args.fixture)
        converted: dict[str, Any] = {}
        reports: dict[str, Any] = {}
        originals: list[tuple[str, str, str]] = []
        task_originals: list[tuple[str, str, str]] = []
        file_originals: list[tuple[str, str, str]] = []
        all_ok = True
        obj = licence = None
        if not partial or "wheel" in origins:  # a full run also takes the licence from the wheel
            wheel = obtain_wheel(args.wheel, tmp)
            wheel_sha = sha256_bytes(wheel.read_bytes())
            version = wheel_version(wheel.name)
            if version != MP_VERSION:
                log.warning("wheel is mediapipe %s, the script was written for %s", version, MP_VERSION)
            with zipfile.ZipFile(wheel) as zf:
                licence_inner = find_license(zf)
                licence = read_member(zf, licence_inner)
                all_ok &= convert_members(zf, "wheel", lambda inner: f"{wheel.name}!{inner}", tmp, face_rgb,
                                          args, converted, reports, originals, needed)
                obj = zf.read(CANONICAL_OBJ) if CANONICAL_OBJ in zf.namelist() else None
        if "task" in origins:
            if not args.task.is_file():
                raise SystemExit(f"--task {args.task}: no such file")
            task_sha = sha256_bytes(args.task.read_bytes())
            with zipfile.ZipFile(args.task) as zf:
                all_ok &= convert_members(zf, "task", lambda inner: f"{TASK_REPO}:{TASK_INNER}!{inner}", tmp,
                                          face_rgb, args, converted, reports, task_originals, needed)
        all_ok &= convert_files(tmp, face_rgb, args, converted, reports, file_originals, needed)
        if wheel is not None:
            obj_source = f"{wheel.name}!{CANONICAL_OBJ}"
            if obj is None and args.canonical_obj is not None:
                obj = args.canonical_obj.read_bytes()
                obj_source = f"{args.canonical_obj.name} (given with --canonical-obj)"
            if obj is None and not partial:
                log.warning("%s is not in %s and --canonical-obj was not given: not installed",
                            CANONICAL_OBJ, wheel.name)
    for key in [k for k in reports if k not in selected]:  # converted only as a helper
        del reports[key]

    datas = {key: converted[key].SerializeToString() for key in reports}
    for key, data in datas.items():
        rep = reports[key]
        rep["sha256"], rep["size_bytes"] = sha256_bytes(data), len(data)
        if key in installed:
            rep["reproduces_installed"] = rep["sha256"] == installed[key].get("sha256")
            log.info("%s: %s the installed file (sha256 %s)", key,
                     "reproduces" if rep["reproduces_installed"] else "DIFFERS from", rep["sha256"][:12])

    tools = tool_versions()
    fixture = {"file": args.fixture.name, "sha256": sha256_bytes(args.fixture.read_bytes()),
               "preprocessing": "whole image, area-resized to the input size, RGB mapped onto input_range"}
    if partial and args.parity_json.is_file():  # keep the other models' reports and the run's header
        parity_doc = json.loads(args.parity_json.read_text(encoding="utf-8"))
        for rep in reports.values():
            rep["converted_with"] = {"only": sorted(selected), "tools": tools, "fixture": fixture,
                                     "opset": args.opset, "atol": args.atol, "rtol": args.rtol}
    else:
        parity_doc = {
            "generated_by": "scripts/convert_mediapipe.py",
            "wheel": wheel.name, "wheel_sha256": wheel_sha, "mediapipe_version": version, "opset": args.opset,
            "task": {"file": args.task.name, "sha256": task_sha, "source": f"{TASK_REPO}:{TASK_INNER}"},
            "tools": tools,
            "fixture": fixture,
            "random_inputs": f"{args.random_cases} x uniform in input_range, numpy default_rng(seed 0..)",
            "tolerance": {"atol": args.atol, "rtol": args.rtol,
                          "rule": "max_abs_diff <= atol + rtol * max_abs_reference"},
            "onnxruntime_session": "CPUExecutionProvider, intra_op_num_threads=1, inter_op_num_threads=1",
            "models": {},
            "canonical_face_model": (
                {"source": obj_source, **validate_obj(obj)} if obj is not None
                else {"installed": False, "reason": f"{CANONICAL_OBJ} is not in {wheel.name}"}
            ),
        }
    parity_doc["models"] = {k: (reports[k] if k in reports else parity_doc["models"][k])
                            for k in KEYS if k in reports or k in parity_doc.get("models", {})}
    if not all_ok:
        bad = [k for k, r in reports.items() if not r["parity"]["ok"]]
        log.error("parity failed for %s; nothing installed", bad)
        return 1
    if args.dry_run:
        log.info("dry run: nothing installed")
        for key, rep in reports.items():
            log.info("%s: %s", key, json.dumps(rep["parity"]["max_abs_diff"]))
        return 0

    out = args.models_dir
    tables: dict[str, dict[str, Any]] = {}
    for spec in MODELS:
        if spec.key not in reports:  # a partial run keeps the other tables as installed
            if spec.key in installed:
                tables[spec.key] = installed[spec.key]
            continue
        (out / spec.file).write_bytes(datas[spec.key])
        rep = reports[spec.key]
        tables[spec.key] = {
            "file": spec.file, "sha256": rep["sha256"], "source": rep["source"],
            "license": "Apache-2.0", "input_name": rep["inputs"][0]["name"],
            "input_shape": rep["inputs"][0]["shape"], "outputs": [o["name"] for o in rep["outputs"]],
        }
        if spec.kind == "points":
            tables[spec.key]["input_layout"] = "points"
        else:
            tables[spec.key] |= {"input_layout": "NHWC", "input_range": list(spec.input_range)}
        if spec.task:
            tables[spec.key]["task"] = spec.task
        log.info("wrote %s (%d bytes)", out / spec.file, rep["size_bytes"])
    if partial:
        notice = out / "LICENSES" / "mediapipe-NOTICE"
        text = notice.read_text(encoding="utf-8") if notice.is_file() else ""
        missing = [spec.file for spec in MODELS if spec.key in reports and spec.file not in text]
        if missing:
            log.warning("partial run: %s not rewritten; it does not list %s (a full run adds them)",
                        notice, ", ".join(missing))
    else:
        (out / "LICENSES").mkdir(parents=True, exist_ok=True)
        if obj is not None:
            (out / "canonical_face_model.obj").write_bytes(obj)
            parity_doc["canonical_face_model"]["sha256"] = sha256_bytes(obj)
            originals.append(("canonical_face_model.obj", obj_source.split("!")[-1], sha256_bytes(obj)))
        (out / "LICENSES" / "mediapipe-LICENSE").write_bytes(licence)
        (out / "LICENSES" / "mediapipe-NOTICE").write_text(
            notice_text(wheel, wheel_sha, version, licence_inner, originals, tools)
            + task_notice(args.task, task_sha, task_originals) + file_notice(file_originals), encoding="utf-8")
    update_registry(out / "models.toml", tables)
    args.parity_json.parent.mkdir(parents=True, exist_ok=True)
    args.parity_json.write_text(json.dumps(parity_doc, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s and %s%s", out / "models.toml", args.parity_json,
             "" if partial else f" and {out / 'LICENSES'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
