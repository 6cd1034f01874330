#!/usr/bin/env python
"""int8 expression model: quantize, then measure what it costs in accuracy and gains in speed.

Issue 13's lever "ORT quantisation with calibration images from FER+": static int8 (QDQ, per-channel
int8 weights, uint8 activations, MinMax calibration) of the convolutional body of an openfer
expression model; the open-set head (the Mahalanobis distance after global pooling) and the
classifier stay float. Calibration: ``--calib`` FER2013Train images, seeded (never valid or test).
Then, with the float model beside it, in one run:

* FER2013Valid and FER2013Test (majority protocol, 48x48 crops, ``openfer evaluate``'s crop path,
  mirror averaging as shipped): accuracy, UAR, ECE, per-class recall, prediction agreement and the
  largest probability difference, and the open-set score's difference;
* speed of the model alone, one thread, batch 1 and 2, alternating float and int8 runs.

Issue 13's rule: nothing ships that loses more than 0.3 points of FER+ test accuracy. The report goes
to ``docs/models/<model>_int8.json``; the quantized model to ``--out`` (not installed by this script)::

    python scripts/quantize_expression.py ../shared/datasets/ferplus --out runs/fernet_s_int8.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def body_nodes_to_exclude(model) -> list[str]:  # noqa: ANN001 - onnx.ModelProto
    """Every node after the global pooling (the classifier and the open-set head): kept float."""
    names = [n.name for n in model.graph.node]
    pool = next(i for i, n in enumerate(model.graph.node) if n.op_type == "GlobalAveragePool")
    return names[pool + 1 :]


def quantize(src: Path, dst: Path, calib: np.ndarray, per_channel: bool = True, method: str = "minmax",
             float_convs: int = 0) -> dict:
    """Static QDQ int8 of ``src`` into ``dst``; ``float_convs``: the first that many Conv nodes stay
    float too (the first layers see raw pixels and are the usual source of int8 error)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, x: np.ndarray) -> None:
            self.items = iter(x[i : i + 1] for i in range(len(x)))

        def get_next(self):  # noqa: ANN202
            x = next(self.items, None)
            return None if x is None else {"input": x}

    pre = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    model = onnx.load(str(pre))
    exclude = body_nodes_to_exclude(model)
    exclude += [n.name for n in model.graph.node if n.op_type == "Conv"][:float_convs]
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    quantize_static(str(pre), str(dst), Reader(calib), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
                    calibrate_method=methods[method])
    pre.unlink()
    q = onnx.load(str(dst))  # the spec metadata (classes, template, open-set calibration) is kept
    meta = {p.key: p.value for p in onnx.load(str(src)).metadata_props}
    del q.metadata_props[:]
    for k, v in meta.items():
        q.metadata_props.add(key=k, value=v)
    onnx.save(q, str(dst))
    return {"format": "QDQ", "weights": "int8 per-channel" if per_channel else "int8 per-tensor",
            "activations": "uint8", "calibration_method": method, "float_convs": float_convs,
            "excluded_nodes": exclude}


def evaluate(classifier, crops: np.ndarray, labels: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray]:  # noqa: ANN001
    from openfer.eval.metrics import classification_report

    probs, unk = [], []
    for i in range(0, len(crops), 256):
        p, u = classifier.predict_open(crops[i : i + 256])
        probs.append(p)
        unk.append(u if u is not None else np.zeros(len(p)))
    p = np.concatenate(probs)
    rep = classification_report(p, labels, classifier.classes)
    keep = ("n", "accuracy", "uar", "macro_f1", "ece")
    out = {k: rep[k] for k in keep if k in rep}
    out["recall"] = {c: round(v["recall"], 4) for c, v in rep["per_class"].items()}
    return out, p, np.concatenate(unk)


def speed(models: dict[str, object], rounds: int = 4, runs: int = 60) -> dict:
    rng = np.random.default_rng(0)
    out: dict = {}
    for batch in (1, 2):
        x = rng.random((batch, 1, 48, 48), dtype=np.float32)
        ts: dict[str, list[float]] = {k: [] for k in models}
        for m in models.values():
            for _ in range(10):
                m.run(x)
        for r in range(rounds):
            for k in (list(models) if r % 2 == 0 else list(models)[::-1]):
                for _ in range(runs):
                    t = time.perf_counter()
                    models[k].run(x)
                    ts[k].append((time.perf_counter() - t) * 1000)
        out[f"batch_{batch}"] = {k: {"median_ms": round(float(np.median(v)), 3), "p25_ms": round(float(np.percentile(v, 25)), 3),
                                     "p75_ms": round(float(np.percentile(v, 75)), 3)} for k, v in ts.items()}
        names = list(models)
        out[f"batch_{batch}"]["int8_over_float"] = round(
            out[f"batch_{batch}"][names[1]]["median_ms"] / out[f"batch_{batch}"][names[0]]["median_ms"], 3)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("ferplus", type=Path, help="the FER+ folder (../shared/datasets/ferplus)")
    p.add_argument("--model", default="fernet_s")
    p.add_argument("--out", type=Path, required=True, help="where the int8 .onnx goes")
    p.add_argument("--calib", type=int, default=512, help="FER2013Train images for calibration")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-tensor", action="store_true", help="per-tensor instead of per-channel weights")
    p.add_argument("--method", choices=("minmax", "entropy", "percentile"), default="minmax",
                   help="activation range calibration (ONNX Runtime's CalibrationMethod)")
    p.add_argument("--float-convs", type=int, default=0, metavar="N", help="keep the first N Conv nodes float")
    p.add_argument("--report", type=Path, default=None, help="default docs/models/<model>_int8.json")
    a = p.parse_args(argv)

    import onnxruntime

    from openfer.components.expression import ExpressionClassifier, preprocess
    from openfer.eval.datasets import load_gray_stack, relabel
    from openfer.eval.evaluate import read_dataset
    from openfer.io.tables import write_json
    from openfer.runtime import OnnxModel
    from openfer.runtime.onnx import sha256_file

    fp = OnnxModel.load(a.model, threads=1)
    ref = ExpressionClassifier(fp, threads=1)
    train = relabel(read_dataset(a.ferplus, "ferplus", "train"), tuple(ref.classes))
    train = train.subset(train.labels >= 0)
    pick = np.zeros(len(train), bool)
    pick[np.random.default_rng(a.seed).choice(len(train), min(a.calib, len(train)), replace=False)] = True
    calib = preprocess(load_gray_stack(train.subset(pick), ref.spec.size), ref.spec, flip=False).astype(np.float32)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    recipe = quantize(fp.path, a.out, calib, per_channel=not a.per_tensor, method=a.method,
                      float_convs=a.float_convs)
    recipe |= {"calibration_images": int(pick.sum()), "calibration_split": "FER2013Train", "seed": a.seed,
               "seconds": round(time.perf_counter() - t0, 1)}
    q = ExpressionClassifier(OnnxModel.load(a.out, threads=1), threads=1)

    report: dict = {"generated_by": "scripts/quantize_expression.py", "model": a.model,
                    "float": {"file": fp.path.name, "sha256": fp.sha256, "size_bytes": fp.path.stat().st_size},
                    "int8": {"file": str(a.out), "sha256": sha256_file(a.out), "size_bytes": a.out.stat().st_size},
                    "recipe": recipe, "onnxruntime": onnxruntime.__version__,
                    "protocol": "FER+ majority labels, 48x48 crops, mirror averaging (flip) as shipped", "splits": {}}
    for split, key in (("FER2013Valid", "valid"), ("FER2013Test", "test")):
        data = relabel(read_dataset(a.ferplus, "ferplus", key), tuple(ref.classes))
        data = data.subset(data.labels >= 0)
        crops = load_gray_stack(data, ref.spec.size)
        rf, pf, uf = evaluate(ref, crops, data.labels)
        rq, pq, uq = evaluate(q, crops, data.labels)
        report["splits"][split] = {
            "float": rf, "int8": rq,
            "accuracy_change_points": round(100 * (rq["accuracy"] - rf["accuracy"]), 2),
            "prediction_agreement": float((pf.argmax(1) == pq.argmax(1)).mean()),
            "max_abs_prob_diff": float(np.max(np.abs(pf - pq))),
            "mean_abs_prob_diff": float(np.mean(np.abs(pf - pq))),
            "max_abs_unknown_score_diff": float(np.max(np.abs(uf - uq))),
        }
        s = report["splits"][split]
        print(f"{split}: float {rf['accuracy']:.4f} / UAR {rf['uar']:.3f} / ECE {rf['ece']:.3f}; "
              f"int8 {rq['accuracy']:.4f} / UAR {rq['uar']:.3f} / ECE {rq['ece']:.3f}; "
              f"agreement {s['prediction_agreement']:.4f}, max |dp| {s['max_abs_prob_diff']:.3f}", flush=True)
    report["speed_one_thread"] = speed({"float": fp, "int8": q.model})
    print("speed:", json.dumps(report["speed_one_thread"]))
    test = report["splits"]["FER2013Test"]
    report["passes_issue_13_rule"] = bool(test["accuracy_change_points"] >= -0.3)
    write_json(report, a.report or ROOT / "docs" / "models" / f"{a.model}_int8.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
