"""Check that the inference crop matches the training framing, on real photos.

Runs detection + face mesh once on each photo of a labelled set (default: photos_dev), then
classifies the largest face with the model's template crop scaled by several factors about its
centre (1.0 = the shipped framing, <1 = tighter, >1 = looser) and reports accuracy and UAR per
factor. If the shipped framing matches the training crops, 1.0 should be at or near the best.

    python scripts/check_framing.py [--data ../shared/datasets/photos_dev] [--model fernet_s]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from openfer.components.expression import ExpressionClassifier
from openfer.errors import InputError
from openfer.eval.evaluate import read_dataset
from openfer.eval.metrics import classification_report
from openfer.eval.subgroups import largest_face
from openfer.io.images import read_image
from openfer.pipeline import Analyzer

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "photos_dev"))
    ap.add_argument("--model", default="fernet_s")
    ap.add_argument("--factors", type=float, nargs="+", default=[0.8, 0.9, 1.0, 1.1, 1.2, 1.35])
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    data = read_dataset(a.data, "csv")
    data = data.subset(data.labels >= 0)
    if a.limit:
        data = data.subset(np.arange(len(data)) < a.limit)
    an = Analyzer(expression_model=a.model)
    images, lms, ys = [], [], []
    for path, y in zip(data.paths, data.labels, strict=True):
        try:
            rgb = read_image(path)
        except InputError:
            continue
        res = an.analyze_rgb(rgb)
        k = largest_face(res)
        if k < 0:
            continue
        images.append(rgb)
        lms.append(res.faces.landmarks[k : k + 1])
        ys.append(y)
    clf: ExpressionClassifier = an.expression
    base = clf.spec
    out = {"n_found": len(ys), "n": len(data), "factors": {}}
    for fac in a.factors:
        t = np.asarray(base.template)
        c = t.mean(0)
        clf.spec = dataclasses.replace(base, template=tuple(map(tuple, c + (t - c) / fac)))
        probs = np.concatenate([clf(img, lm) for img, lm in zip(images, lms, strict=True)])
        rep = classification_report(probs, np.asarray(ys), clf.classes)
        out["factors"][str(fac)] = {
            "accuracy": rep["accuracy"],
            "uar": rep["uar"],
            "macro_f1": rep["macro_f1"],
        }
        print(
            f"crop scale {fac:4.2f}: accuracy {rep['accuracy']:.4f}  UAR {rep['uar']:.4f}  macro F1 {rep['macro_f1']:.4f}  (n={len(ys)})"
        )
    clf.spec = base
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
