"""Robustness of the expression model to image perturbations on FER+ FER2013Test (majority protocol).

Each perturbation is applied to every test crop (seeded), then the crops are classified as usual
(mirror-averaged, calibrated). Writes docs/robustness.json and the "Robustness" section of
docs/experiments.md.

    python scripts/robustness.py [--model fernet_s]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import cv2
import numpy as np

from openfer.components.expression import ExpressionClassifier
from openfer.eval.datasets import load_gray_stack, read_ferplus
from openfer.eval.metrics import classification_report

ROOT = Path(__file__).resolve().parent.parent


def perturbations(seed: int) -> dict:
    rng = np.random.default_rng(seed)

    def occlude(x: np.ndarray, size: int) -> np.ndarray:
        out = x.copy()
        for i in range(len(out)):
            y0, x0 = rng.integers(0, 48 - size, 2)
            out[i, y0 : y0 + size, x0 : x0 + size] = 128
        return out

    def jpeg(x: np.ndarray, q: int) -> np.ndarray:
        return np.stack([cv2.imdecode(cv2.imencode(".jpg", c, [cv2.IMWRITE_JPEG_QUALITY, q])[1], 0) for c in x])

    def rotate(x: np.ndarray, deg: float) -> np.ndarray:
        m = cv2.getRotationMatrix2D((24, 24), deg, 1.0)
        return np.stack([cv2.warpAffine(c, m, (48, 48), borderMode=cv2.BORDER_REPLICATE) for c in x])

    def lowres(x: np.ndarray, side: int) -> np.ndarray:
        return np.stack([cv2.resize(cv2.resize(c, (side, side), interpolation=cv2.INTER_AREA), (48, 48)) for c in x])

    return {
        "none": lambda x: x,
        "horizontal flip": lambda x: x[:, :, ::-1].copy(),
        "brightness +40": lambda x: np.clip(x.astype(int) + 40, 0, 255).astype(np.uint8),
        "brightness -40": lambda x: np.clip(x.astype(int) - 40, 0, 255).astype(np.uint8),
        "contrast x0.5": lambda x: np.clip((x.astype(float) - 128) * 0.5 + 128, 0, 255).astype(np.uint8),
        "gaussian blur sigma 1": lambda x: np.stack([cv2.GaussianBlur(c, (0, 0), 1.0) for c in x]),
        "gaussian noise sigma 10": lambda x: np.clip(x + rng.normal(0, 10, x.shape), 0, 255).astype(np.uint8),
        "JPEG quality 30": lambda x: jpeg(x, 30),
        "downscale to 24 px": lambda x: lowres(x, 24),
        "rotation 15 deg": lambda x: rotate(x, 15),
        "occlusion 12x12 patch": lambda x: occlude(x, 12),
        "occlusion 20x20 patch": lambda x: occlude(x, 20),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ferplus", default=str(ROOT.parent / "shared" / "datasets" / "ferplus"))
    ap.add_argument("--model", default="fernet_s")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    clf = ExpressionClassifier(a.model)
    test = read_ferplus(a.ferplus, "test")
    x = load_gray_stack(test)
    out = {"model": a.model, "sha256": clf.model.sha256, "data": "FER2013Test, majority protocol", "n": len(x),
           "results": {}}
    for name, fn in perturbations(a.seed).items():
        rep = classification_report(clf.predict_crops(fn(x)), test.labels, clf.classes)
        out["results"][name] = {k: rep[k] for k in ("accuracy", "uar", "macro_f1", "ece")}
        print(f"{name:24s} accuracy {rep['accuracy']:.4f}  UAR {rep['uar']:.4f}  ECE {rep['ece']:.4f}")
    (ROOT / "docs" / "robustness.json").write_text(json.dumps(out, indent=1) + "\n")
    base = out["results"]["none"]["accuracy"]
    lines = ["## Robustness", "", f"`python scripts/robustness.py` (model `{a.model}`, FER2013Test majority, "
             f"{len(x)} crops, each perturbation applied to every crop, seed {a.seed}):", "",
             "| perturbation | accuracy | change | UAR | ECE |", "|---|---|---|---|---|"]
    for name, r in out["results"].items():
        lines.append(f"| {name} | {r['accuracy']:.4f} | {r['accuracy'] - base:+.4f} | {r['uar']:.4f} | {r['ece']:.4f} |")
    doc = ROOT / "docs" / "experiments.md"
    text = re.sub(r"\n## Robustness\n.*?(?=\n## |\Z)", "", doc.read_text(), flags=re.S).rstrip("\n")
    doc.write_text(text + "\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
