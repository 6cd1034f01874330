"""How much occlusion saliency falls on the facial regions of the predicted expression's prototype AUs.

For FER+ FER2013Test faces (majority protocol; crops as the model sees them) predicted as a
non-neutral class, the saliency map of the predicted class is computed (openfer.explain.saliency),
the face mesh is fitted on the crop, and the saliency mass inside the regions of that class's
EMFACS prototype AUs (brows, eyes, cheeks, nose, mouth, chin: convex hulls of mesh points) is
compared with a random-map baseline (uniform noise maps: the expected share equals the regions'
area share). Writes docs/validation_saliency.json and a section of docs/validation.md.

    python scripts/validate_saliency.py [--n 400] [--model fernet_s]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import cv2
import numpy as np

from openfer.components.expression import ExpressionClassifier
from openfer.components.landmarks import FaceMesh
from openfer.core.au import PROTOTYPE_AUS
from openfer.eval.datasets import load_gray_stack, read_ferplus
from openfer.explain.saliency import occlusion_saliency
from openfer.train.template import mesh_on_crops

ROOT = Path(__file__).resolve().parent.parent
REGIONS: dict[str, tuple[int, ...]] = {
    "brows": (70, 63, 105, 66, 107, 55, 65, 52, 53, 46, 300, 293, 334, 296, 336, 285, 295, 282, 283, 276),
    "eyes": (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7,
             263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249),
    "cheeks": (50, 101, 118, 117, 123, 187, 205, 36, 142, 280, 330, 347, 346, 352, 411, 425, 266, 371),
    "nose": (168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 327, 129, 358, 64, 294, 48, 278, 115, 344),
    "mouth": (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146),
    "chin": (152, 148, 176, 149, 150, 377, 400, 378, 379, 17, 84, 314, 181, 405),
}
AU_REGIONS: dict[str, tuple[str, ...]] = {
    "AU1": ("brows",), "AU2": ("brows",), "AU4": ("brows",), "AU5": ("eyes",), "AU7": ("eyes",),
    "AU43": ("eyes",), "AU6": ("cheeks", "eyes"), "AU9": ("nose",), "AU10": ("nose", "mouth"),
    "AU12": ("mouth",), "AU14": ("mouth",), "AU15": ("mouth",), "AU20": ("mouth",), "AU23": ("mouth",),
    "AU24": ("mouth",), "AU25": ("mouth",), "AU17": ("chin",), "AU26": ("mouth", "chin"),
}


def region_mask(lm: np.ndarray, regions: set[str], size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    for r in regions:
        pts = lm[list(REGIONS[r]), :2]
        hull = cv2.convexHull((pts * 16).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ferplus", default=str(ROOT.parent / "shared" / "datasets" / "ferplus"))
    ap.add_argument("--model", default="fernet_s")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    clf = ExpressionClassifier(a.model)
    test = read_ferplus(a.ferplus, "test")
    crops = load_gray_stack(test)
    probs = clf.predict_crops(crops)
    pred = probs.argmax(1)
    cand = np.flatnonzero(np.array([clf.classes[p] != "neutral" for p in pred]))
    rng = np.random.default_rng(a.seed)
    pick = np.sort(rng.choice(cand, size=min(a.n, len(cand)), replace=False))
    lm, sc = mesh_on_crops(crops[pick], FaceMesh(iris=False))
    rows = []
    for k, i in enumerate(pick):
        if sc[k] < 0.5:
            continue
        cls = clf.classes[pred[i]]
        regions = {r for au in PROTOTYPE_AUS.get(cls, ()) for r in AU_REGIONS.get(au, ())}
        mask = region_mask(lm[k], regions, crops.shape[1])
        sal = occlusion_saliency(clf, crops[i], int(pred[i]))
        if sal.sum() <= 0 or not mask.any():
            continue
        noise = rng.random(sal.shape)
        rows.append((cls, float(sal[mask].sum() / sal.sum()), float(noise[mask].sum() / noise.sum()),
                     float(mask.mean())))
    out = {"model": a.model, "n_faces": len(rows), "per_class": {}}
    for cls in sorted({r[0] for r in rows}):
        r = np.array([x[1:] for x in rows if x[0] == cls])
        out["per_class"][cls] = {"n": len(r), "saliency_share": float(r[:, 0].mean()),
                                 "random_share": float(r[:, 1].mean()), "area_share": float(r[:, 2].mean())}
    allr = np.array([x[1:] for x in rows])
    out["all"] = {"saliency_share": float(allr[:, 0].mean()), "random_share": float(allr[:, 1].mean()),
                  "ratio": float(allr[:, 0].mean() / allr[:, 1].mean())}
    (ROOT / "docs" / "validation_saliency.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = ["## Saliency", "",
             f"`python scripts/validate_saliency.py --n {a.n}` (model `{a.model}`, FER2013Test faces predicted "
             f"non-neutral, {len(rows)} with a fitted mesh): share of occlusion-saliency mass inside the facial "
             "regions of the predicted class's prototype AUs, against uniform random maps (= the regions' area share).",
             "", "| predicted class | n | saliency share | random-map share | ratio |", "|---|---|---|---|---|"]
    for cls, v in out["per_class"].items():
        lines.append(f"| {cls} | {v['n']} | {v['saliency_share']:.3f} | {v['random_share']:.3f} | "
                     f"{v['saliency_share'] / v['random_share']:.2f} |")
    lines.append(f"| **all** | {len(rows)} | {out['all']['saliency_share']:.3f} | {out['all']['random_share']:.3f} | "
                 f"{out['all']['ratio']:.2f} |")
    doc = ROOT / "docs" / "validation.md"
    text = doc.read_text() if doc.exists() else "# Validation\n"
    block = "\n".join(lines) + "\n"
    text = re.sub(r"## Saliency\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip("\n") + "\n\n" + block
    doc.write_text(text)
    print(block)


if __name__ == "__main__":
    main()
