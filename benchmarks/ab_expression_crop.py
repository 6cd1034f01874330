"""A/B of the expression crop's pre-blur: the whole image averaged at a fractional ratio (before
2026-12-03, restored here as ``old_crop``) against the region the crop reads averaged in integer
blocks (``openfer.components.expression.crop_faces``), on every labelled photo of photos_dev.

    python benchmarks/ab_expression_crop.py default      # or fast; prints one JSON line

Per photo both crops run through the same analyzer (the largest face's expression); prints accuracy
and UAR of each (a photo without a face counts as an error), the share of photos with the same label
and the largest probability difference per photo (mean, p95, max). Results of the 2026-12-03 run:
``benchmarks/results/ab_expression_crop.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

import openfer.components.expression as E
from openfer.errors import InputError
from openfer.eval.evaluate import read_dataset
from openfer.eval.metrics import classification_report
from openfer.eval.subgroups import largest_face
from openfer.io.images import read_image
from openfer.pipeline import Analyzer

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "photos_dev"
new_crop = E.crop_faces


def old_crop(image: np.ndarray, mats: np.ndarray, size: int) -> np.ndarray:
    # the classifier hands crop_faces the RGB image (since 2026-12-04); before, the whole image in grey
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    out = np.empty((len(mats), size, size), np.uint8)
    for i, m in enumerate(mats):
        scale = np.sqrt(abs(np.linalg.det(m[:, :2])))
        src, mm = gray, m
        if scale < 0.5:
            f = int(np.floor(1.0 / scale / 1.5)) or 1
            if f > 1:
                src = cv2.resize(gray, (max(gray.shape[1] // f, 1), max(gray.shape[0] // f, 1)),
                                 interpolation=cv2.INTER_AREA)
                sx, sy = gray.shape[1] / src.shape[1], gray.shape[0] / src.shape[0]
                mm = m @ np.array([[sx, 0, 0], [0, sy, 0], [0, 0, 1.0]])
        out[i] = cv2.warpAffine(src, E.cv2_matrix(mm), (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
    return out


def main() -> None:
    preset = sys.argv[1] if len(sys.argv) > 1 else "default"
    data = read_dataset(str(PHOTOS), "csv")
    data = data.subset(data.labels >= 0)
    an = Analyzer(preset, threads=1)
    classes = an.classes
    to_label = [classes.index(c) if c in classes else -1 for c in data.classes]
    pred: dict[str, list[int]] = {"old": [], "new": []}
    pmax = []
    for path in data.paths:
        try:
            rgb = read_image(path)
        except InputError:
            for k in pred:
                pred[k].append(-1)
            continue
        ps = {}
        for k, fn in (("old", old_crop), ("new", new_crop)):
            E.crop_faces = fn
            res = an.analyze_rgb(rgb)
            if len(res.faces):
                ps[k] = res.faces.expressions[largest_face(res)]
            pred[k].append(int(np.argmax(ps[k])) if k in ps else -1)
        if len(ps) == 2:
            pmax.append(float(np.abs(ps["old"] - ps["new"]).max()))
    E.crop_faces = new_crop
    y = np.asarray([to_label[v] for v in data.labels])
    keep = y >= 0
    out: dict = {"preset": preset, "n": int(keep.sum())}
    for k, p in pred.items():
        p = np.asarray(p)[keep]
        onehot = np.eye(len(classes) + 1)[np.where(p < 0, len(classes), p)]
        rep = classification_report(onehot, y[keep], (*classes, "(no face)"))
        out[k] = {"accuracy": round(float(rep["accuracy"]), 4), "uar": round(float(rep["uar"]), 4)}
    out["same_label"] = round(float(np.mean(np.asarray(pred["old"]) == np.asarray(pred["new"]))), 4)
    out["prob_diff"] = {"mean": round(float(np.mean(pmax)), 4), "p95": round(float(np.percentile(pmax, 95)), 4),
                        "max": round(float(np.max(pmax)), 4)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
