"""Open-set protocol on FER+: hold one expression class out of training at a time.

For each class c (as in Zhang et al., "Open-Set Facial Expression Recognition", AAAI 2024): train
on FER2013Train without the images whose majority label is c (their soft targets renormalised over
the 7 other classes), select on FER2013Valid without c, then score FER2013Test (majority protocol):
the test images labelled c are the unknowns, the others the knowns. Reported per held-out class and
as the mean: AUROC (unknown = positive) and FPR@95%TPR (share of unknowns kept as known when 95% of
the knowns are kept) for

* ``msp``: 1 - max softmax probability (calibrated temperature), the baseline;
* ``energy``: negative free energy of the logits;
* ``mahalanobis``: squared distance of the penultimate features to the nearest class mean
  (shared covariance, fitted on the training features of the 7 known classes and their mirror
  images), averaged over the face and its mirror image;
* ``mahalanobis+msp``: the sum of the two after standardising each on the known *validation* faces;
* ``au_knn``: evidence from outside the classifier -- the distance of the face's action units (the 18
  AU intensities and the two one-sided AU12/AU14 magnitudes, from the face mesh run on the 48 px
  crop) to the 10th nearest of (at most 6,000) known training faces, standardised per AU
  (:class:`openfer.core.openset.NearestNeighbours`); faces where the mesh finds no face (presence
  below 0.5, about 5%) get the median score of the known validation faces;
* ``au_knn+msp``: ``au_knn`` and ``msp`` summed after standardising on the known validation faces;
* ``mahalanobis+msp+au_knn``: the three summed the same way.

Every run is resumable (``openfer.train`` checkpoints per epoch; finished classes are skipped) and
the decoded images are cached. Writes ``docs/openset.json``.

    python scripts/openset_protocol.py ../shared/datasets/ferplus --out /work/runs/openset \
        [--arch fernet_xs --epochs 10 --classes contempt,fear]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
METHODS = (
    "msp",
    "energy",
    "mahalanobis",
    "mahalanobis+msp",
    "au_knn",
    "au_knn+msp",
    "mahalanobis+msp+au_knn",
)
MESH_MIN_SCORE = 0.5


def load(data: Path, cache: Path) -> dict:
    from openfer.eval.datasets import load_gray_stack, read_ferplus

    if cache.exists():
        return dict(np.load(cache))
    out = {}
    for split in ("train", "valid", "test"):
        d = read_ferplus(data, split)
        out[f"{split}_x"] = load_gray_stack(d, 48)
        out[f"{split}_y"] = d.labels.astype(np.int64)
        out[f"{split}_soft"] = d.soft.astype(np.float32)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    os.replace(tmp, cache)
    return out


def action_units(d: dict, cache: Path) -> dict:
    """AU vectors ``(N, 20)`` and a face-found mask per split (face-mesh landmarks cached)."""
    from openfer.components.au import estimate_asymmetry, estimate_aus

    if not cache.exists():
        from openfer.components.landmarks import FaceMesh
        from openfer.train.template import mesh_on_crops

        mesh, out = FaceMesh(iris=False, threads=1), {}
        for split in ("train", "valid", "test"):
            lm, sc = mesh_on_crops(d[f"{split}_x"], mesh)
            out[f"{split}_lm"], out[f"{split}_score"] = lm.astype(np.float32), sc.astype(np.float32)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, **out)
        os.replace(tmp, cache)
    m = np.load(cache)
    res = {}
    for split in ("train", "valid", "test"):
        lm = m[f"{split}_lm"].astype(np.float64)
        res[split] = np.concatenate([estimate_aus(lm), np.abs(estimate_asymmetry(lm))], axis=1)
        res[f"{split}_ok"] = m[f"{split}_score"] >= MESH_MIN_SCORE
    return res


def run_class(held: int, d: dict, au: dict, args: argparse.Namespace) -> dict:
    import torch

    from openfer.core.openset import (
        Mahalanobis,
        NearestNeighbours,
        OpenSetCalibration,
        auroc,
        energy_score,
        fpr_at_tpr,
        msp_score,
    )
    from openfer.eval.labels import FERPLUS_CLASSES
    from openfer.train.config import TrainConfig
    from openfer.train.export import fit_temperature
    from openfer.train.nets import build
    from openfer.train.openset import mean_distance, views
    from openfer.train.recipe import train

    name = FERPLUS_CLASSES[held]
    out = Path(args.out) / f"without_{name}"
    keep = [c for c in range(len(FERPLUS_CLASSES)) if c != held]
    remap = np.full(len(FERPLUS_CLASSES), -1)
    remap[keep] = np.arange(len(keep))
    tr = d["train_y"] != held
    if args.limit:  # smoke runs: every n-th training image
        tr &= np.arange(len(tr)) % max(len(tr) // args.limit, 1) == 0
    soft = d["train_soft"][tr][:, keep]
    soft = soft / soft.sum(1, keepdims=True)
    va = d["valid_y"] != held
    cfg = TrainConfig(
        arch=args.arch,
        classes=tuple(FERPLUS_CLASSES[c] for c in keep),
        epochs=args.epochs,
        seed=args.seed,
        threads=args.threads,
    )
    t0 = time.time()
    summary_path = out / "summary.json"
    if not summary_path.exists():
        s = train(cfg, d["train_x"][tr], soft, d["valid_x"][va], remap[d["valid_y"][va]], out)
        summary_path.write_text(
            json.dumps({"best_valid_acc": s["best_valid_acc"], "seconds": time.time() - t0})
        )
    summary = json.loads(summary_path.read_text())
    model = build(cfg.arch, len(keep), 0.0)
    model.load_state_dict(torch.load(out / "best.pt", map_location="cpu", weights_only=False)["model"])
    _, tr_fe, tr_ff = views(model, d["train_x"][tr], cfg)
    va_lo, va_fe, va_ff = views(model, d["valid_x"][va], cfg)
    te_lo, te_fe, te_ff = views(model, d["test_x"], cfg)
    temp = fit_temperature(va_lo, remap[d["valid_y"][va]])
    ytr = remap[d["train_y"][tr]]
    maha = Mahalanobis.fit(np.concatenate([tr_fe, tr_ff]), np.concatenate([ytr, ytr]))
    scores = {
        "msp": msp_score(te_lo, temp),
        "energy": energy_score(te_lo),
        "mahalanobis": mean_distance(maha, te_fe, te_ff),
    }
    # the shipped combination (openfer.train.openset.DEFAULT_WEIGHTS), calibrated on known valid faces
    cal = OpenSetCalibration.fit(
        {"mahalanobis": mean_distance(maha, va_fe, va_ff), "msp": msp_score(va_lo, temp)},
        {"mahalanobis": 1.0, "msp": 1.0},
    )
    scores["mahalanobis+msp"] = cal(mahalanobis=scores["mahalanobis"], msp=scores["msp"])
    knn = NearestNeighbours.fit(au["train"][tr & au["train_ok"]], k=10, max_reference=6000, seed=args.seed)
    va_au = knn.score(au["valid"][va])
    fill = float(np.median(va_au[au["valid_ok"][va]]))
    va_au = np.where(au["valid_ok"][va], va_au, fill)
    scores["au_knn"] = np.where(au["test_ok"], knn.score(au["test"]), fill)
    known_va = {
        "au_knn": va_au,
        "msp": msp_score(va_lo, temp),
        "mahalanobis": mean_distance(maha, va_fe, va_ff),
    }
    for combo in ("au_knn+msp", "mahalanobis+msp+au_knn"):
        parts = combo.split("+")
        cal = OpenSetCalibration.fit(known_va, dict.fromkeys(parts, 1.0))
        scores[combo] = cal(**{k: scores[k] for k in parts})
    unknown = d["test_y"] == held
    known_acc = float((te_lo[~unknown].argmax(1) == remap[d["test_y"][~unknown]]).mean())
    res = {
        "held_out": name,
        "n_unknown": int(unknown.sum()),
        "n_known": int((~unknown).sum()),
        "known_accuracy": known_acc,
        "best_valid_acc": summary["best_valid_acc"],
        "train_seconds": summary.get("seconds"),
    }
    for m in METHODS:
        res[m] = {
            "auroc": auroc(scores[m][~unknown], scores[m][unknown]),
            "fpr95": fpr_at_tpr(scores[m][~unknown], scores[m][unknown]),
        }
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="FER+ root (FER2013Train/Valid/Test)")
    ap.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, cache)")
    ap.add_argument("--arch", default="fernet_xs")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--classes", default="", help="comma-separated held-out classes (default: all 8)")
    ap.add_argument("--limit", type=int, default=0, help="smoke test: about this many training images")
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "openset.json")
    args = ap.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from openfer.eval.labels import FERPLUS_CLASSES

    args.out.mkdir(parents=True, exist_ok=True)
    d = load(args.data, args.out / "ferplus48.npz")
    au = action_units(d, args.out / "ferplus48_mesh.npz")
    wanted = [c for c in args.classes.split(",") if c] or list(FERPLUS_CLASSES)
    prev = json.loads(args.json.read_text()) if args.json.exists() else {}
    done = {  # earlier results of the same protocol, when they have every method
        r["held_out"]: r
        for r in prev.get("classes", [])
        if prev.get("arch") == args.arch and all(m in r for m in METHODS)
    }
    for name in wanted:
        r = run_class(FERPLUS_CLASSES.index(name), d, au, args)
        done[name] = r
        print(
            f"{name:10s} n={r['n_unknown']:4d} known acc {r['known_accuracy']:.3f}  "
            + "  ".join(f"{m} {r[m]['auroc']:.3f}/{r[m]['fpr95']:.2f}" for m in METHODS),
            flush=True,
        )
        rows = [done[c] for c in FERPLUS_CLASSES if c in done]
        mean = {m: {k: float(np.mean([r[m][k] for r in rows])) for k in ("auroc", "fpr95")} for m in METHODS}
        report = {
            "protocol": "FER+ hold-one-class-out: train FER2013Train without the class, select on "
            "FER2013Valid without it, test on FER2013Test (majority, 3137); unknown = the held-out class",
            "arch": args.arch,
            "epochs": args.epochs,
            "seed": args.seed,
            "classes": rows,
            "mean_over": [r["held_out"] for r in rows],
            "mean": mean,
        }
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=1) + "\n")
        os.replace(tmp, args.json)
    print("mean  " + "  ".join(f"{m} {mean[m]['auroc']:.3f}/{mean[m]['fpr95']:.2f}" for m in METHODS))


if __name__ == "__main__":
    main()
