"""Framing robustness of expression models: FER+ crops re-cropped tighter and looser, and photos_dev
through the full pipeline, for several models side by side.

    python scripts/framing_robustness.py --split valid \
        --models shipped=fernet_s la=runs/rebalance/logit_adjustment/fernet_s.onnx ...
    python scripts/framing_robustness.py --split test --models shipped=fernet_s final=...

FER+ conditions (majority protocol; every crop warped about its centre, border replicated, back to
48x48, then classified as usual -- mirror-averaged, calibrated):
  * ``original``;
  * ``tight 85%`` / ``tight 75%``: the central 85% / 75% of the crop, upscaled (brow-to-chin framing);
  * ``loose 15%``: 15% of the side added on every side (border replicated), downscaled.
photos_dev: detection + face mesh run once (the shipped detector and mesh; the crops are cached under
``runs/framing/``), then each model classifies the aligned crop of the largest face (the same numbers
as ``openfer evaluate ... --faces detect``: a photo without a face counts as an error in accuracy and
UAR; ECE and per-class recall are over the photos with a face).

Writes ``docs/framing_robustness_<split>.json`` and the section "Framing robustness (<split>)" of
docs/experiments.md. Read FER2013Test (``--split test``) only for the shipped model and the one
chosen to ship.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np

from openfer.components.expression import ExpressionClassifier
from openfer.errors import InputError
from openfer.eval.datasets import load_gray_stack, read_ferplus
from openfer.eval.evaluate import read_dataset
from openfer.eval.metrics import classification_report
from openfer.eval.subgroups import largest_face
from openfer.io.images import read_image
from openfer.io.tables import write_json

ROOT = Path(__file__).resolve().parent.parent
SPLIT_NAMES = {"valid": "FER2013Valid", "test": "FER2013Test"}
CONDITIONS = {"original": 1.0, "tight 85%": 1 / 0.85, "tight 75%": 1 / 0.75, "loose 15%": 1 / 1.3}


def reframe(crops: np.ndarray, zoom: float) -> np.ndarray:
    """Scale ``(N, S, S)`` crops by ``zoom`` about their centre (>1: tighter), border replicated."""
    if zoom == 1.0:
        return crops
    s = crops.shape[1]
    m = cv2.getRotationMatrix2D(((s - 1) / 2, (s - 1) / 2), 0.0, zoom)
    return np.stack([cv2.warpAffine(c, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for c in crops])


def photo_crops(photos: Path, clf: ExpressionClassifier, cache: Path) -> dict:
    """Aligned crops of the largest face of each labelled photo (found[i] False: no face)."""
    data = read_dataset(photos, "csv")
    data = data.subset(data.labels >= 0)
    key = hashlib.sha256(json.dumps([clf.spec.template, [str(p) for p in data.paths]]).encode()).hexdigest()[:12]
    path = cache / f"photos_{key}.npz"
    if path.exists():
        return dict(np.load(path))
    from openfer.pipeline import Analyzer

    an = Analyzer()
    crops = np.zeros((len(data), clf.spec.size, clf.spec.size), np.uint8)
    found = np.zeros(len(data), bool)
    for i, p in enumerate(data.paths):
        try:
            rgb = read_image(p)
        except InputError:
            continue
        res = an.analyze_rgb(rgb)
        k = largest_face(res)
        if k >= 0:
            crops[i] = clf.crops(rgb, res.faces.landmarks[k : k + 1])[0]
            found[i] = True
    out = {"crops": crops, "found": found, "labels": data.labels}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def summarise(probs: np.ndarray, y: np.ndarray, classes, found: np.ndarray | None = None) -> dict:  # noqa: ANN001
    found = np.ones(len(y), bool) if found is None else found
    rep = classification_report(probs[found], y[found], tuple(classes))
    correct = (probs.argmax(1) == y) & found
    present = [c for c in range(len(classes)) if (y == c).any()]
    return {
        "n": int(len(y)),
        "accuracy": float(correct.mean()),
        "uar": float(np.mean([correct[y == c].mean() for c in present])),
        "macro_f1": rep["macro_f1"],
        "ece": rep["ece"],
        "recall": {c: rep["per_class"][c]["recall"] for c in classes},
        "support": {c: rep["per_class"][c]["support"] for c in classes},
    }


def markdown(out: dict) -> str:
    models, conds = list(out["models"]), list(next(iter(out["results"].values())))
    split = SPLIT_NAMES[out["split"]]
    cmd = "python scripts/framing_robustness.py --split " + out["split"] + " --models " + " ".join(
        f"{k}={v['model']}" for k, v in out["models"].items())
    lines = [f"## Framing robustness ({split})", "", f"`{cmd}`", "",
             f"{split}: majority protocol, every crop re-framed about its centre (tight = the central 75%/85% "
             "upscaled, loose = 15% of the side added on each side, border replicated); photos_dev: full "
             "pipeline, largest face, no face = error. Accuracy / UAR / ECE:", "",
             "| condition | n | " + " | ".join(models) + " |", "|---|---|" + "---|" * len(models)]
    for c in conds:
        cells = []
        for m in models:
            r = out["results"][m][c]
            cells.append(f"{r['accuracy']:.4f} / {r['uar']:.4f} / {r['ece']:.3f}")
        lines.append(f"| {c} | {out['results'][models[0]][c]['n']} | " + " | ".join(cells) + " |")
    classes = list(next(iter(out["results"][models[0]].values()))["recall"])
    lines += ["", "Per-class recall (support in the header row of each condition):", "",
              "| condition | model | " + " | ".join(classes) + " |", "|---|---|" + "---|" * len(classes)]
    for c in conds:
        sup = out["results"][models[0]][c]["support"]
        lines.append(f"| {c} | *support* | " + " | ".join(str(sup[k]) for k in classes) + " |")
        for m in models:
            r = out["results"][m][c]["recall"]
            lines.append(f"| {c} | {m} | " + " | ".join(f"{r[k]:.3f}" for k in classes) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["shipped=fernet_s"], help="label=model (name or .onnx)")
    ap.add_argument("--split", choices=sorted(SPLIT_NAMES), default="valid")
    ap.add_argument("--ferplus", type=Path, default=ROOT.parent / "shared" / "datasets" / "ferplus")
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "datasets" / "photos_dev")
    ap.add_argument("--no-photos", action="store_true")
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "framing")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-doc", action="store_true", help="print only; leave docs/ alone")
    ap.add_argument("--json", type=Path, help="also write the results to this file (with --no-doc: only there)")
    a = ap.parse_args()
    models = dict(m.split("=", 1) for m in a.models)
    data = read_ferplus(a.ferplus, a.split)
    x = load_gray_stack(data)
    variants = {c: reframe(x, z) for c, z in CONDITIONS.items()}
    out = {"split": a.split, "data": f"ferplus/{a.split}, majority protocol", "models": {}, "results": {}}
    photos = None
    for label, name in models.items():
        clf = ExpressionClassifier(name, threads=a.threads)
        out["models"][label] = {"model": name, "sha256": clf.model.sha256}
        res = {}
        for c, xc in variants.items():
            res[f"{SPLIT_NAMES[a.split]} {c}"] = summarise(clf.predict_crops(xc), data.labels, clf.classes)
        if not a.no_photos:
            if photos is None or photos["template"] != clf.spec.template:
                photos = {**photo_crops(a.photos, clf, a.cache), "template": clf.spec.template}
            probs = np.zeros((len(photos["labels"]), len(clf.classes)))
            probs[photos["found"]] = clf.predict_crops(photos["crops"][photos["found"]])
            res["photos_dev (detect)"] = summarise(probs, photos["labels"], clf.classes, photos["found"])
        out["results"][label] = res
        for c, r in res.items():
            print(f"{label:22s} {c:28s} acc {r['accuracy']:.4f} UAR {r['uar']:.4f} ECE {r['ece']:.4f}", flush=True)
    if a.json is not None:
        write_json(out, a.json)
    if a.no_doc:
        return
    (ROOT / "docs" / f"framing_robustness_{a.split}.json").write_text(json.dumps(out, indent=1) + "\n")
    doc = ROOT / "docs" / "experiments.md"
    title = f"## Framing robustness ({SPLIT_NAMES[a.split]})"
    text = re.sub(rf"\n{re.escape(title)}\n.*?(?=\n## |\Z)", "", doc.read_text(), flags=re.S).rstrip("\n")
    doc.write_text(text + "\n\n" + markdown(out))


if __name__ == "__main__":
    main()
