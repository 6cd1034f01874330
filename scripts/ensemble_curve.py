"""Accuracy / UAR trade-off on FER2013Valid of expression models alone and averaged, under post-hoc logit
adjustment (select on valid only; FER2013Test is not read).

    python scripts/ensemble_curve.py --models shipped=fernet_s ft_all=runs/fernet_s_ft_all/fernet_s.onnx \
        [--floor 0.8636] [--threads 2]

Each model's calibrated log-probabilities on the FER2013Valid crops (mirror-averaged, as the pipeline runs
them); the ensemble averages them. For tau in -1..2 (step 0.05) the prediction is
``argmax(log p - tau * log prior)`` with the FER2013Train prior; printed per model and for the average: the
best UAR at valid accuracy >= ``--floor`` and the UAR at the most accurate tau, one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from openfer.components.expression import ExpressionClassifier
from openfer.eval.datasets import load_gray_stack, read_ferplus
from openfer.train.objectives import log_prior as log_prior_of

ROOT = Path(__file__).resolve().parent.parent


def curve(logp: np.ndarray, y: np.ndarray, log_prior: np.ndarray) -> list[dict]:
    out = []
    for tau in np.round(np.arange(-1.0, 2.001, 0.05), 2):
        pred = (logp - tau * log_prior).argmax(1)
        rec = [float((pred[y == c] == c).mean()) for c in np.unique(y)]
        out.append({"tau": float(tau), "accuracy": float((pred == y).mean()), "uar": float(np.mean(rec))})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True, metavar="LABEL=MODEL")
    ap.add_argument("--ferplus", type=Path, default=ROOT.parent / "shared" / "datasets" / "ferplus")
    ap.add_argument("--floor", type=float, default=0.8636)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    train, valid = read_ferplus(a.ferplus, "train"), read_ferplus(a.ferplus, "valid")
    log_prior = log_prior_of(train.soft)  # what the logit-adjusted loss and its export use
    x = load_gray_stack(valid)
    logps = {}
    for spec in a.models:
        label, name = spec.split("=", 1)
        clf = ExpressionClassifier(name, threads=a.threads)
        logps[label] = np.log(np.clip(clf.predict_crops(x), 1e-12, 1.0))
    if len(logps) > 1:
        logps["average"] = np.mean(list(logps.values()), axis=0)
    res = {"floor": a.floor, "n": len(valid), "models": {}}
    for label, lp in logps.items():
        c = curve(lp, valid.labels, log_prior)
        above = [r for r in c if r["accuracy"] >= a.floor]
        best = max(above, key=lambda r: (r["uar"], r["accuracy"])) if above else None
        top = max(c, key=lambda r: (r["accuracy"], r["uar"]))
        res["models"][label] = {"best_uar_above_floor": best, "most_accurate": top,
                                "tau_0": next(r for r in c if r["tau"] == 0.0)}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
