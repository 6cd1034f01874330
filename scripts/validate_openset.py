"""How the shipped expression model's ``unknown_score`` ranks inputs that are not one of its classes.

Known: FER2013Test images (majority protocol) with no ``unknown``/``NF`` vote. Compared against:

* ``fer_unknown_majority``: FER+ images (all splits; never trained on, as the majority protocol
  drops them) where more than half of the votes are ``unknown`` or ``NF``;
* ``fer_ambiguous``: FER2013Test images with at least 3 of ~10 votes ``unknown``/``NF``;
* ``background``: the top-left corner (30% of each side) of photos_dev head photos, resized to the
  model input (hair, wall, clothing: not faces);
* ``noise``: uniform random grey images.

Reports the AUROC of ``unknown_score`` and of the max-softmax baseline (unknown = positive), the
share flagged ``unknown`` at the default threshold (0.95), and the accuracy on known faces kept.
Writes ``docs/openset_shipped.json``.

    python scripts/validate_openset.py ../shared/datasets/ferplus ../shared/datasets/photos_dev [--model fernet_s]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def votes(folder: Path) -> tuple[list[Path], np.ndarray]:
    rows = [r for r in csv.reader(open(folder / "label.csv", newline="")) if r]
    return [folder / r[0].strip() for r in rows], np.array([[float(x) for x in r[2:]] for r in rows])


def gray(paths: list[Path], size: int) -> np.ndarray:
    out = np.empty((len(paths), size, size), np.uint8)
    for i, p in enumerate(paths):
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        out[i] = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ferplus", type=Path)
    ap.add_argument("photos", type=Path, help="photos_dev (images/ folder) for background patches")
    ap.add_argument("--model", default="fernet_s")
    ap.add_argument("--background", type=int, default=500)
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "openset_shipped.json")
    args = ap.parse_args()

    from openfer.components.expression import ExpressionClassifier
    from openfer.core.openset import auroc
    from openfer.eval.labels import FERPLUS_CLASSES, majority_labels

    clf = ExpressionClassifier(args.model)
    if clf.openset is None:
        raise SystemExit(f"{args.model}: no open-set head")
    size = clf.spec.size
    groups: dict[str, np.ndarray] = {}
    paths, v = votes(args.ferplus / "FER2013Test")
    lab = majority_labels(v)
    odd = v[:, 8] + v[:, 9]
    known = (lab >= 0) & (odd == 0)
    groups["known"] = gray([p for p, k in zip(paths, known, strict=True) if k], size)
    known_labels = lab[known]
    groups["fer_ambiguous"] = gray([p for p, k in zip(paths, odd >= 3, strict=True) if k], size)
    majority_odd = []
    for split in ("FER2013Train", "FER2013Valid", "FER2013Test"):
        ps, vv = votes(args.ferplus / split)
        majority_odd += [p for p, k in zip(ps, vv[:, 8] + vv[:, 9] > vv.sum(1) / 2, strict=True) if k]
    groups["fer_unknown_majority"] = gray(majority_odd, size)
    photos = sorted((args.photos / "images").glob("*"))[: args.background]
    bg = []
    for p in photos:
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if img is None:
            continue
        h, w = img.shape
        s = int(0.3 * min(h, w))
        bg.append(cv2.resize(img[:s, :s], (size, size), interpolation=cv2.INTER_AREA))
    groups["background"] = np.stack(bg)
    groups["noise"] = np.random.default_rng(0).integers(0, 256, (200, size, size)).astype(np.uint8)

    scores, msp = {}, {}
    for name, x in groups.items():
        p, u = clf.predict_open(x)
        scores[name], msp[name] = u, 1 - p.max(1)
        if name == "known":
            pred = p.argmax(1)
    flagged = scores["known"] > 0.95
    report = {
        "model": args.model,
        "sha256": clf.model.sha256,
        "threshold": 0.95,
        "known": {
            "n": int(len(groups["known"])),
            "flagged": float(flagged.mean()),
            "accuracy_all": float((pred == known_labels).mean()),
            "accuracy_kept": float((pred[~flagged] == known_labels[~flagged]).mean()),
            "accuracy_flagged": float((pred[flagged] == known_labels[flagged]).mean())
            if flagged.any()
            else None,
        },
        "classes": list(FERPLUS_CLASSES),
        "groups": {},
    }
    for name in groups:
        if name == "known":
            continue
        report["groups"][name] = {
            "n": int(len(groups[name])),
            "auroc_unknown_score": auroc(scores["known"], scores[name]),
            "auroc_msp": auroc(msp["known"], msp[name]),
            "flagged": float((scores[name] > 0.95).mean()),
        }
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
