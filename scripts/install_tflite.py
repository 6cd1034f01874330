#!/usr/bin/env python
"""Ship MediaPipe's original ``.tflite`` files beside their ONNX conversions, for the LiteRT runtime.

openfer's MediaPipe models are ONNX conversions (``scripts/convert_mediapipe.py``) of ``.tflite``
files. ONNX Runtime runs some of them several times slower than LiteRT's XNNPACK kernels
(``docs/speed.md``), so the originals ship too and run on LiteRT when ``ai-edge-litert`` is
installed (:mod:`openfer.runtime.litert`). Rerunnably, this script:

1. takes each original from the Face Landmarker v2 bundle (``--task``, default
   ``../shared/models/mediapipe/face_landmarker_v2_with_blendshapes.task``; its ``face_detector.tflite``
   is byte for byte the mediapipe 0.10.21 wheel's ``face_detection_short_range.tflite``) and checks
   that its sha256 is the one the shipped ONNX file was converted from
   (``docs/models/mediapipe_parity.json``, ``tflite_sha256``);
2. runs it on LiteRT (one thread) beside the shipped ONNX model on ONNX Runtime (CPU, one thread) on
   random inputs in the model's input range and on the fixture photos of ``tests/assets/photos``
   (the blendshape model on Face Mesh v2's landmarks of those photos, jittered copies, random point
   clouds and MediaPipe's own test vector), and fails before installing anything when a difference
   exceeds ``atol + rtol * max|ONNX|``;
3. copies the file unmodified to ``src/openfer/models/<name>.tflite``, registers it as
   ``<name>_tflite`` in ``models.toml`` (sha256, source, licence, the ONNX twin's preprocessing spec)
   and writes ``docs/models/litert_parity.json`` and ``LICENSES/mediapipe-tflite-NOTICE``.

Which models get a twin is a measurement (``benchmarks/bench_peers.py --models-only``, the table in
``docs/speed.md``): LiteRT is faster for Face Mesh v2 (0.23x the ORT time), the blendshapes (0.65x)
and the short-range detector (0.71-0.85x); for the full-range detector it is not (3.20 against 3.16
ms), so that one runs on ONNX Runtime only. Needs openfer installed with ``ai-edge-litert``::

    pip install -e ".[litert]" && python scripts/install_tflite.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "src" / "openfer" / "models"
PARITY_IN = ROOT / "docs" / "models" / "mediapipe_parity.json"
PARITY_OUT = ROOT / "docs" / "models" / "litert_parity.json"
NOTICE = MODELS_DIR / "LICENSES" / "mediapipe-tflite-NOTICE"
PHOTOS = ROOT / "tests" / "assets" / "photos"
TESTVECTOR = ROOT / "tests" / "assets" / "mediapipe" / "face_blendshapes_testvector.json"
DEFAULT_TASK = ROOT.parent / "shared" / "models" / "mediapipe" / "face_landmarker_v2_with_blendshapes.task"
TASK_SOURCE = ("google-ai-edge/mediapipe@0179f0c4566ae78e02e1198cb73c60e4668395b5:"
               "mediapipe/tasks/testdata/vision/face_landmarker_v2_with_blendshapes.task")

# registry name of the ONNX model -> member of the Face Landmarker v2 bundle
TWINS: dict[str, str] = {
    "blazeface_short": "face_detector.tflite",
    "facemesh_v2": "face_landmarks_detector.tflite",
    "blendshapes": "face_blendshapes.tflite",
}
TASKS = {
    "blazeface_short": "LiteRT file of blazeface_short (face detection, short range)",
    "facemesh_v2": "LiteRT file of facemesh_v2 (face landmarks, 478 points)",
    "blendshapes": "LiteRT file of blendshapes (52 blendshapes)",
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def photos_rgb() -> dict[str, np.ndarray]:
    out = {}
    for p in sorted(PHOTOS.glob("*.jpg")):
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is not None:
            out[p.stem] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return out


def image_cases(name: str, n_random: int) -> dict[str, np.ndarray]:
    """Whole fixture photos area-resized to the input, mapped onto the input range, and random inputs."""
    from openfer.runtime import registry

    entry = registry()[name]
    side = int(entry["input_shape"][1])
    lo, hi = entry["input_range"]
    cases = {}
    for stem, rgb in photos_rgb().items():
        x = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
        cases[f"photo_{stem}"] = (lo + (hi - lo) * x / 255.0)[None].astype(np.float32)
    rng = np.random.default_rng(0)
    for i in range(n_random):
        cases[f"random_{i}"] = rng.uniform(lo, hi, size=(1, side, side, 3)).astype(np.float32)
    return cases


def points_cases(n_random: int) -> dict[str, np.ndarray]:
    """Face Mesh v2's landmarks of the fixture faces (openfer's ONNX pipeline), jittered copies,
    random point clouds and MediaPipe's test vector, as the model's (1, 146, 2) inputs."""
    from openfer import Analyzer
    from openfer.core.blendshapes import blendshape_inputs, normalized_to_pixels

    an = Analyzer(runtime="onnxruntime", threads=1)
    rng = np.random.default_rng(0)
    cases = {}
    for stem, rgb in photos_rgb().items():
        lm = an.analyze_rgb(rgb).faces.landmarks
        for j in range(len(lm)):
            pts = blendshape_inputs(lm[j : j + 1])
            cases[f"photo_{stem}_{j}"] = pts
            cases[f"photo_{stem}_{j}_jitter"] = (pts + rng.normal(0, 0.5, pts.shape)).astype(np.float32)
    for i in range(n_random):
        cases[f"random_{i}"] = rng.uniform(100.0, 300.0, size=(1, 146, 2)).astype(np.float32)
    tv = json.loads(TESTVECTOR.read_text())
    w, h = tv["image_size"]
    cases["mediapipe_testvector"] = blendshape_inputs(normalized_to_pixels(np.asarray(tv["landmarks"])[None], w, h))
    return cases


def parity(name: str, tflite: Path, cases: dict[str, np.ndarray], atol: float, rtol: float) -> dict:
    """max |LiteRT - ONNX Runtime| per output over ``cases``; ``ok`` by the tolerance rule. The
    LiteRT side is openfer's own :class:`~openfer.runtime.litert.LiteRTSession` (which refuses a
    file whose outputs are not the ONNX model's), one thread."""
    from openfer.errors import ModelError
    from openfer.runtime import OnnxModel
    from openfer.runtime.litert import LiteRTSession

    ort_model = OnnxModel.load(name, threads=1)
    names = [o.name for o in ort_model.session.get_outputs()]
    try:
        lite = LiteRTSession(str(tflite), 1, names, dynamic_batch=False)
    except ModelError as e:
        raise SystemExit(f"{name}: {e}") from None
    worst = dict.fromkeys(names, 0.0)
    scale = dict.fromkeys(names, 0.0)
    for x in cases.values():
        ref = dict(zip(names, ort_model.run(x), strict=True))
        got = dict(zip(names, lite.run(None, {"x": x}), strict=True))
        for n in names:
            a, b = np.asarray(ref[n], np.float64), np.asarray(got[n], np.float64).reshape(np.shape(ref[n]))
            worst[n] = max(worst[n], float(np.max(np.abs(a - b))))
            scale[n] = max(scale[n], float(np.max(np.abs(a))))
    ok = all(worst[n] <= atol + rtol * scale[n] for n in names)
    return {"cases": len(cases), "case_names": sorted(cases), "max_abs_diff": worst,
            "max_abs_onnx": scale, "ok": ok}


def notice(rows: list[tuple[str, str, str]]) -> str:
    files = "\n".join(f"  {dst:<30} <- {member}\n  {'':<30}    (sha256 {sha})" for dst, member, sha in rows)
    return f"""openfer -- MediaPipe face models, original TFLite files
=======================================================

The files listed below are models by Google LLC (The MediaPipe Authors), licensed under the Apache
License, Version 2.0 (see mediapipe-LICENSE next to this file). They are members of the Face
Landmarker v2 bundle in MediaPipe's GitHub repository:

Source: {TASK_SOURCE}

Files (in openfer/models/ <- member of the bundle):
{files}

They are unmodified copies (same bytes, same sha256). openfer runs them on LiteRT (ai-edge-litert)
when that package is installed, in place of their ONNX conversions (mediapipe-NOTICE); the two
were checked against each other by scripts/install_tflite.py (docs/models/litert_parity.json).
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", type=Path, default=DEFAULT_TASK, help="face_landmarker_v2_with_blendshapes.task")
    p.add_argument("--random-cases", type=int, default=3)
    p.add_argument("--atol", type=float, default=1e-3, help="parity: absolute tolerance")
    p.add_argument("--rtol", type=float, default=1e-5, help="parity: tolerance relative to max|ONNX|")
    p.add_argument("--dry-run", action="store_true", help="check parity; install nothing")
    args = p.parse_args(argv)

    import ai_edge_litert
    import onnxruntime

    from openfer.runtime.onnx import sha256_file, write_registry_block

    if not args.task.is_file():
        raise SystemExit(f"--task {args.task}: no such file")
    converted_from = {k: v["tflite_sha256"] for k, v in json.loads(PARITY_IN.read_text())["models"].items()}
    blobs: dict[str, bytes] = {}
    with zipfile.ZipFile(args.task) as zf:
        for name, member in TWINS.items():
            data = zf.read(member)
            if sha256(data) != converted_from[name]:
                raise SystemExit(f"{args.task}!{member}: sha256 {sha256(data)[:12]}... is not the file "
                                 f"{name}.onnx was converted from ({converted_from[name][:12]}...)")
            blobs[name] = data

    report: dict = {"generated_by": "scripts/install_tflite.py", "task": {"file": args.task.name,
                    "sha256": sha256_file(args.task), "source": TASK_SOURCE},
                    "tools": {"python": sys.version.split()[0], "ai-edge-litert": getattr(ai_edge_litert, "__version__", "?"),
                              "onnxruntime": onnxruntime.__version__, "numpy": np.__version__},
                    "sessions": "LiteRT Interpreter num_threads=1 (XNNPACK); ONNX Runtime CPU, 1 thread",
                    "tolerance": {"atol": args.atol, "rtol": args.rtol,
                                  "rule": "max_abs_diff <= atol + rtol * max_abs_onnx"}, "models": {}}
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, data in blobs.items():
            path = Path(tmp) / f"{name}.tflite"
            path.write_bytes(data)
            cases = points_cases(args.random_cases) if name == "blendshapes" else image_cases(name, args.random_cases)
            rep = parity(name, path, cases, args.atol, args.rtol)
            rep |= {"file": f"{name}.tflite", "member": TWINS[name], "sha256": sha256(data), "size_bytes": len(data)}
            report["models"][name] = rep
            print(f"{name}: {rep['cases']} cases, max |LiteRT - ONNX| "
                  + ", ".join(f"{k} {v:.3g}" for k, v in rep["max_abs_diff"].items()) + ("" if rep["ok"] else "  FAILED"))
    bad = [k for k, r in report["models"].items() if not r["ok"]]
    if bad:
        print(f"parity failed for {bad}; nothing installed", file=sys.stderr)
        return 1
    if args.dry_run:
        return 0
    from openfer.io.tables import atomic_open
    from openfer.runtime import OnnxModel

    for name, data in blobs.items():
        with atomic_open(MODELS_DIR / f"{name}.tflite", mode="wb") as fh:
            fh.write(data)
        spec = OnnxModel.load(name, threads=1).spec
        write_registry_block(f"{name}_tflite", {
            "file": f"{name}.tflite", "sha256": sha256(data), "source": f"{TASK_SOURCE}!{TWINS[name]}",
            "license": "Apache-2.0", "task": TASKS[name], "runtime": "litert", "twin": name,
            "card": "cards/mediapipe.md", "spec": json.dumps(spec, sort_keys=True),
        }, writer="scripts/install_tflite.py")
    with atomic_open(NOTICE, encoding="utf-8") as fh:
        fh.write(notice([(f"{n}.tflite", TWINS[n], sha256(d)) for n, d in blobs.items()]))
    with atomic_open(PARITY_OUT, encoding="utf-8") as fh:
        fh.write(json.dumps(report, indent=2) + "\n")
    print(f"wrote {', '.join(f'{n}.tflite' for n in blobs)}, models.toml, {NOTICE.name}, {PARITY_OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
