#!/usr/bin/env python
"""The LiteRT twin of the int8 expression model: fernet_s converted to TFLite and quantized there.

``fernet_s_int8`` (``scripts/quantize_expression.py``) runs on ONNX Runtime, whose int8 convolutions
take ~1.0 ms a face on one thread; LiteRT's XNNPACK int8 kernels run the same network in about half
that (issue 13: the expression model is a fixed cost of every photo and video frame). Rerunnably:

1. calibration: ``--calib`` FER2013Train crops (seeded; never valid or test), as for ``fernet_s_int8``;
2. in ``--tf-python``, a virtualenv with TensorFlow and onnx2tf (their versions go to the report; this
   file runs there with ``--convert``, importing neither openfer nor anything it needs): onnx2tf turns
   the float ONNX model into a SavedModel (the input kept NCHW: for one channel it is the same memory;
   with the versions below the .tflite comes out byte for byte the same, checked in a fresh venv),
   TFLite's converter quantizes it with the calibration crops: int8 weights (per channel) and int8
   activations, float input and outputs; ``--recipe stem-head`` (the default, chosen on FER2013Valid,
   ``docs/experiments.md`` run 20) keeps float the stem convolution and the ops of the open-set head
   that the converter lets stay float, as ``fernet_s_int8`` keeps its stem and head float;
   ``stem-head-ops`` also asks for every fully connected and reduction op of the head in float; ``all``
   quantizes every op;
3. FER2013Valid and FER2013Test (majority protocol, 48x48 crops, mirror averaging, as the int8 card):
   the float model, ``fernet_s_int8`` on ONNX Runtime and the TFLite model on LiteRT: accuracy, UAR,
   ECE, recall per class, agreement with the float model and with ``fernet_s_int8``, the largest
   probability and open-set score differences;
4. speed of the two int8 models alone, one thread, alternating;
5. ``--install``: the file into the package as ``fernet_s_int8.tflite``, registered as
   ``fernet_s_int8_tflite`` (the twin that ``runtime="auto"`` and ``"litert"`` run instead of the ONNX
   file), with its card; refused when FER2013Test accuracy is more than 0.3 points below the float
   model's (issue 13's rule).

::

    python3.11 -m venv /tmp/tf-venv && /tmp/tf-venv/bin/pip install tensorflow==2.19.0 tf_keras==2.19.0 \\
        onnx2tf==1.29.24 onnx==1.19.1 onnx_graphsurgeon==0.5.8 sng4onnx==2.0.1 onnxsim==0.4.36 psutil "numpy<2"
    python scripts/quantize_expression_litert.py ../shared/datasets/ferplus --tf-python /tmp/tf-venv/bin/python \\
        --out runs/q/fernet_s_int8.tflite [--install]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ("stem-head", "stem-head-ops", "all")
TFLITE_OUTPUTS = ["PartitionedCall:0", "PartitionedCall:1"]  # logits, mahalanobis: onnx2tf's output order
HEAD_OPS = ["FULLY_CONNECTED", "REDUCE_MIN", "SUM", "MUL", "SUB"]  # after the pooling: classifier, open-set head


# --------------------------------------------------------------------------- in the TensorFlow venv


def convert(onnx_path: str, calib_path: str, out: str, recipe: str) -> dict:
    """ONNX -> SavedModel (onnx2tf) -> int8 TFLite (TFLite's converter); returns what it did."""
    import onnx2tf
    import tensorflow as tf

    calib = np.load(calib_path)

    def representative():
        for i in range(len(calib)):
            yield [calib[i : i + 1]]

    def converter(saved: str):  # noqa: ANN202 - tf.lite.TFLiteConverter
        c = tf.lite.TFLiteConverter.from_saved_model(saved)
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = representative
        return c

    with tempfile.TemporaryDirectory() as tmp:
        saved = str(Path(tmp) / "saved")
        work = Path(tmp) / Path(onnx_path).name  # a copy: onnx2tf rewrites its input file in place
        work.write_bytes(Path(onnx_path).read_bytes())
        onnx2tf.convert(input_onnx_file_path=str(work), output_folder_path=saved,
                        overwrite_input_shape=["input:1,1,48,48"], keep_ncw_or_nchw_or_ncdhw_input_names=["input"],
                        output_signaturedefs=True, non_verbose=True)
        every = converter(saved).convert()  # every op int8: its op names give the denylist
        denied: list[str] = []
        if recipe == "all":
            model = every
        else:
            interp = tf.lite.Interpreter(model_content=every)
            tensors = {t["index"]: t["name"] for t in interp.get_tensor_details()}
            ops = [(o["op_name"], tensors[o["outputs"][0]]) for o in interp._get_ops_details() if o["op_name"] != "DELEGATE"]
            pool = next(i for i, (kind, _) in enumerate(ops) if kind == "MEAN")
            denied = [next(n for kind, n in ops if kind == "CONV_2D")]  # the stem
            denied += [n for kind, n in ops[pool + 1 :] if kind not in ("DEQUANTIZE", "QUANTIZE")]
            opts = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denied, denylisted_ops=HEAD_OPS
                                                                 if recipe == "stem-head-ops" else None)
            debugger = tf.lite.experimental.QuantizationDebugger(converter=converter(saved),
                                                                  debug_dataset=representative, debug_options=opts)
            model = debugger.get_nondebug_quantized_model()
    Path(out).write_bytes(model)
    return {"tensorflow": tf.__version__, "onnx2tf": onnx2tf.__version__, "recipe": recipe,
            "float_nodes_asked": denied, "calibration_crops": len(calib)}


# --------------------------------------------------------------------------- in openfer's venv


def op_types(path: Path) -> dict[str, str]:
    """Each op of a TFLite file (delegated ones as the interpreter lists them) and its output dtype."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    return {f"{o['index']} {o['op_name']}": tensors[o["outputs"][0]]["dtype"].__name__
            for o in it._get_ops_details() if o["op_name"] != "DELEGATE"}


def speed(models: dict[str, object], rounds: int = 4, runs: int = 100) -> dict:
    """Median ms of each model alone on one random crop, the models alternating."""
    from quantize_expression import alternating_times

    x = np.random.default_rng(0).random((1, 1, 48, 48), dtype=np.float32)
    ts = alternating_times(models, x, rounds, runs, warmup=20)
    return {k: round(float(np.median(v)), 3) for k, v in ts.items()}


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--convert":
        print(json.dumps(convert(*sys.argv[2:6])))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("ferplus", type=Path, help="the FER+ folder (../shared/datasets/ferplus)")
    p.add_argument("--tf-python", required=True, help="python of a venv with tensorflow-cpu and onnx2tf")
    p.add_argument("--model", default="fernet_s", help="the float model")
    p.add_argument("--int8", default="fernet_s_int8", help="its ONNX Runtime int8 model, the twin's ONNX file")
    p.add_argument("--out", type=Path, required=True, help="where the .tflite goes")
    p.add_argument("--recipe", choices=RECIPES, default="stem-head")
    p.add_argument("--calib", type=int, default=512, help="FER2013Train images for calibration")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--splits", nargs="+", default=["valid", "test"], choices=["valid", "test"])
    p.add_argument("--install", action="store_true", help="ship it as the LiteRT twin of --int8")
    p.add_argument("--report", type=Path, default=None, help="default docs/models/<int8>_tflite.json")
    a = p.parse_args(argv)

    from quantize_expression import evaluate

    from openfer.components.expression import ExpressionClassifier, preprocess
    from openfer.eval.datasets import load_gray_stack, relabel
    from openfer.eval.evaluate import read_dataset
    from openfer.io.tables import write_json
    from openfer.runtime import OnnxModel
    from openfer.runtime.litert import LiteRTModel

    fp = OnnxModel.load(a.model, threads=1)
    q8 = OnnxModel.load(a.int8, threads=1)
    ref = ExpressionClassifier(fp, threads=1)
    train = relabel(read_dataset(a.ferplus, "ferplus", "train"), tuple(ref.classes))
    train = train.subset(train.labels >= 0)
    pick = np.zeros(len(train), bool)
    pick[np.random.default_rng(a.seed).choice(len(train), min(a.calib, len(train)), replace=False)] = True
    calib = preprocess(load_gray_stack(train.subset(pick), ref.spec.size), ref.spec, flip=False).astype(np.float32)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "calib.npy", calib)
        t0 = time.perf_counter()
        done = subprocess.run([a.tf_python, __file__, "--convert", str(fp.path), str(Path(tmp) / "calib.npy"),
                               str(a.out), a.recipe], capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"conversion failed:\n{done.stderr[-3000:]}")
        recipe = json.loads(done.stdout.strip().splitlines()[-1])
    recipe |= {"calibration_split": "FER2013Train", "seed": a.seed, "seconds": round(time.perf_counter() - t0, 1),
               "op_output_types": op_types(a.out)}
    lite = LiteRTModel.from_file(str(a.out), like=q8, tensor_names=TFLITE_OUTPUTS, threads=1)
    models = {"float": ref, "ort_int8": ExpressionClassifier(q8, threads=1),
              "litert_int8": ExpressionClassifier(lite, threads=1)}
    import ai_edge_litert
    import onnxruntime

    report: dict = {
        "generated_by": "scripts/quantize_expression_litert.py", "model": a.model, "twin_of": a.int8,
        "float": {"file": fp.path.name, "sha256": fp.sha256},
        "ort_int8": {"file": q8.path.name, "sha256": q8.sha256},
        "litert_int8": {"file": str(a.out), "sha256": lite.sha256, "size_bytes": a.out.stat().st_size},
        "recipe": recipe, "onnxruntime": onnxruntime.__version__,
        "ai_edge_litert": getattr(ai_edge_litert, "__version__", "?"),
        "protocol": "FER+ majority labels, 48x48 crops, mirror averaging (flip) as in cards/fernet_s_int8.md",
        "splits": {},
    }
    for key in a.splits:
        split = {"valid": "FER2013Valid", "test": "FER2013Test"}[key]
        data = relabel(read_dataset(a.ferplus, "ferplus", key), tuple(ref.classes))
        data = data.subset(data.labels >= 0)
        crops = load_gray_stack(data, ref.spec.size)
        got = {k: evaluate(m, crops, data.labels) for k, m in models.items()}
        row: dict = {k: v[0] for k, v in got.items()}
        pf, uf = got["float"][1], got["float"][2]
        for other in ("ort_int8", "litert_int8"):
            po, uo = got[other][1], got[other][2]
            row[f"{other}_vs_float"] = {
                "accuracy_change_points": round(100 * (row[other]["accuracy"] - row["float"]["accuracy"]), 2),
                "prediction_agreement": float((pf.argmax(1) == po.argmax(1)).mean()),
                "mean_abs_prob_diff": float(np.mean(np.abs(pf - po))),
                "max_abs_prob_diff": float(np.max(np.abs(pf - po))),
                "max_abs_unknown_score_diff": float(np.max(np.abs(uf - uo))),
            }
        po, uo, pl, ul = got["ort_int8"][1], got["ort_int8"][2], got["litert_int8"][1], got["litert_int8"][2]
        row["litert_int8_vs_ort_int8"] = {
            "prediction_agreement": float((po.argmax(1) == pl.argmax(1)).mean()),
            "mean_abs_prob_diff": float(np.mean(np.abs(po - pl))),
            "max_abs_prob_diff": float(np.max(np.abs(po - pl))),
            "max_abs_unknown_score_diff": float(np.max(np.abs(uo - ul))),
        }
        report["splits"][split] = row
        print(f"{split}: " + "; ".join(f"{k} {row[k]['accuracy']:.4f} / UAR {row[k]['uar']:.3f} / ECE {row[k]['ece']:.3f}"
                                       for k in models)
              + f"; litert vs float agreement {row['litert_int8_vs_float']['prediction_agreement']:.4f}", flush=True)
    report["speed_one_thread_ms"] = speed({"ort_int8": q8, "litert_int8": lite})
    print("speed:", json.dumps(report["speed_one_thread_ms"]))
    test = report["splits"].get("FER2013Test")
    report["passes_issue_13_rule"] = None if test is None else bool(
        test["litert_int8_vs_float"]["accuracy_change_points"] >= -0.3)
    write_json(report, a.report or ROOT / "docs" / "models" / f"{a.int8}_tflite.json")
    if a.install:
        if not report["passes_issue_13_rule"]:
            print("not installed: needs FER2013Test within 0.3 points of the float model", file=sys.stderr)
            return 1
        install(a, report, fp, q8)
    return 0


def install(a: argparse.Namespace, r: dict, fp, q8) -> None:  # noqa: ANN001 - OnnxModel
    import shutil

    from openfer.io.tables import atomic_open
    from openfer.runtime import registry
    from openfer.runtime.onnx import MODELS_DIR, sha256_file, write_registry_block

    name = f"{a.int8}_tflite"
    dst = MODELS_DIR / f"{a.int8}.tflite"
    shutil.copyfile(a.out, dst)
    digest = sha256_file(dst)
    spec = dict(q8.spec)
    write_registry_block(name, {
        "file": dst.name, "sha256": digest,
        "source": f"openfer: {a.model} (sha256 {fp.sha256[:12]}...) converted by onnx2tf {r['recipe']['onnx2tf']} and "
                  f"quantized to int8 by TensorFlow Lite {r['recipe']['tensorflow']} (scripts/quantize_expression_litert.py)",
        "license": registry()[a.int8]["license"], "task": f"LiteRT file of {a.int8} (int8 expression, 8 FER+ classes)",
        "runtime": "litert", "twin": a.int8, "card": f"cards/{name}.md",
        "input_shape": ["N", 1, 48, 48], "onnx_outputs": [o.name for o in q8.session.get_outputs()],
        "tflite_outputs": TFLITE_OUTPUTS, "spec": json.dumps(spec, sort_keys=True),
    }, writer="scripts/quantize_expression_litert.py", toml=MODELS_DIR / "models.toml")
    with atomic_open(MODELS_DIR / "cards" / f"{name}.md", encoding="utf-8") as fh:
        fh.write(card(a, r, digest, name))
    print(f"installed {dst} and cards/{name}.md")


def card(a: argparse.Namespace, r: dict, digest: str, name: str) -> str:
    kinds = ("float", "ort_int8", "litert_int8")
    rows = [f"| {s} | {k} | {v[k]['n']} | {v[k]['accuracy']:.4f} | {v[k]['uar']:.4f} | {v[k]['macro_f1']:.4f} | "
            f"{v[k]['ece']:.4f} |" for s, v in r["splits"].items() for k in kinds]
    agree = [f"| {s} | {k} | {v[k]['accuracy_change_points']:+.2f} | {v[k]['prediction_agreement']:.4f} | "
             f"{v[k]['mean_abs_prob_diff']:.4f} | {v[k]['max_abs_prob_diff']:.3f} | {v[k]['max_abs_unknown_score_diff']:.3f} |"
             for s, v in r["splits"].items() for k in ("ort_int8_vs_float", "litert_int8_vs_float")]
    twin = [f"| {s} | {v['litert_int8_vs_ort_int8']['prediction_agreement']:.4f} | "
            f"{v['litert_int8_vs_ort_int8']['mean_abs_prob_diff']:.4f} | {v['litert_int8_vs_ort_int8']['max_abs_prob_diff']:.3f} | "
            f"{v['litert_int8_vs_ort_int8']['max_abs_unknown_score_diff']:.3f} |" for s, v in r["splits"].items()]
    classes = list(next(iter(r["splits"].values()))["float"]["recall"])
    recall = [f"| {s} | {k} | " + " | ".join(f"{v[k]['recall'][c]:.3f}" for c in classes) + " |"
              for s, v in r["splits"].items() for k in kinds]
    rec, sp = r["recipe"], r["speed_one_thread_ms"]
    ops = rec["op_output_types"]
    floats = [f"`{k}`" for k, t in ops.items() if t == "float32" and "QUANTIZE" not in k]
    return f"""# Model card: `{name}` (the LiteRT twin of `{a.int8}`, expression classifier, FER+ 8 classes)

Generated by `scripts/quantize_expression_litert.py ... --install`; every number below comes from that
command (`docs/models/{a.int8}_tflite.json`).

| | |
|---|---|
| what | `{a.model}` (card: `cards/{a.model}.md`) in int8 for LiteRT (XNNPACK): what the `fast` and `video` presets run instead of `{a.int8}.onnx` when `ai-edge-litert` is installed (`runtime="auto"` or `"litert"`); `runtime="onnxruntime"` runs `{a.int8}.onnx` (card: `cards/{a.int8}.md`) |
| sha256 | `{digest}` |
| size | {r['litert_int8']['size_bytes'] / 2**20:.1f} MiB |
| licence | as `{a.model}` |
| conversion | onnx2tf {rec['onnx2tf']} (the float ONNX model to a SavedModel, input kept NCHW), then TensorFlow Lite {rec['tensorflow']}'s converter: int8 weights per channel, int8 activations calibrated on {rec['calibration_crops']} {rec['calibration_split']} crops (seed {rec['seed']}), float input and outputs; recipe `{rec['recipe']}`: of its {len(ops)} ops, in float (index, type): {', '.join(floats)}; the rest int8 (and the (de)quantize ops between them) |
| spec | `{a.int8}`'s (the float model's classes, alignment template, temperature, open-set calibration) |

The recipe was chosen on FER2013Valid (`docs/experiments.md`, run 20); FER2013Test is reported once. It is
a separate quantization of the same float network, not a copy of `{a.int8}`: the two int8 models round
differently (the table of their agreement below), so `fast` and `video` results depend on the runtime at
that level.

## Results (FER+ majority protocol, face crops, mirror-averaged)
| split | model | n | accuracy | UAR | macro F1 | ECE |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

| split | against the float model | accuracy change (points) | same prediction | mean abs prob. diff | max abs prob. diff | max abs open-set score diff |
|---|---|---|---|---|---|---|
{chr(10).join(agree)}

The two int8 models against each other:

| split | same prediction | mean abs prob. diff | max abs prob. diff | max abs open-set score diff |
|---|---|---|---|---|
{chr(10).join(twin)}

Recall per class:

| split | model | {' | '.join(classes)} |
|---|---|{'---|' * len(classes)}
{chr(10).join(recall)}

## Speed (the model alone, one thread, one random crop, the two int8 models alternating)
| ONNX Runtime {r['onnxruntime']} (`{a.int8}.onnx`) | LiteRT {r['ai_edge_litert']} (this file) | LiteRT / ONNX Runtime |
|---|---|---|
| {sp['ort_int8']:.3f} ms | {sp['litert_int8']:.3f} ms | {sp['litert_int8'] / sp['ort_int8']:.2f} |

## Limitations
Those of `{a.model}` and `{a.int8}`.
"""


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # quantize_expression's evaluate
    sys.exit(main())
