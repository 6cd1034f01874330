"""Robustness of the expression model to image variations on FER+ FER2013Test (majority protocol), every
test crop: ``openfer audit robustness`` (:func:`openfer.eval.robustness.audit_robustness`, the variations
and the paired bootstrap intervals documented there) with ``--limit 0``. Writes docs/robustness.json and the
"Robustness" section of docs/experiments.md.

    python scripts/robustness.py [--model fernet_s]

The same as ``openfer audit robustness ../shared/datasets/ferplus --split test --limit 0 --out DIR``; the
committed docs/robustness.json predates the command (this script's earlier, unpaired version with random
occlusion patches) until the script is run again.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from openfer.components.expression import ExpressionClassifier
from openfer.eval.datasets import read_ferplus
from openfer.eval.robustness import audit_robustness
from openfer.io.tables import write_json

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ferplus", default=str(ROOT.parent / "shared" / "datasets" / "ferplus"))
    ap.add_argument("--model", default="fernet_s")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    clf = ExpressionClassifier(a.model)
    test = read_ferplus(a.ferplus, "test")
    audit = audit_robustness(test, "crops", clf, limit=0, seed=a.seed)
    d = audit.doc
    write_json({"model": a.model, "sha256": clf.model.sha256, "data": "FER2013Test, majority protocol", **d},
               ROOT / "docs" / "robustness.json")
    lines = ["## Robustness", "", f"`python scripts/robustness.py` (model `{a.model}`, FER2013Test majority, "
             f"{d['n']} crops, each variation applied to every crop, seed {a.seed}; "
             "`openfer audit robustness` with `--limit 0`): accuracy change against the clean crops with "
             "its paired 95% bootstrap interval.", "",
             "| variation | accuracy | change [95% CI] | UAR change |", "|---|---|---|---|",
             f"| none | {d['clean']['accuracy']:.4f} | | |"]
    for r in d["variations"]:
        lines.append(f"| {r['variation']} | {r['accuracy']:.4f} | {r['change']:+.4f} [{r['low']:+.4f}, "
                     f"{r['high']:+.4f}] | {r['uar_change']:+.4f} |")
    doc = ROOT / "docs" / "experiments.md"
    text = re.sub(r"\n## Robustness\n.*?(?=\n## |\Z)", "", doc.read_text(), flags=re.S).rstrip("\n")
    doc.write_text(text + "\n\n" + "\n".join(lines) + "\n")
    for r in d["variations"]:
        print(f"{r['variation']:18s} accuracy {r['accuracy']:.4f}  change {r['change']:+.4f}")


if __name__ == "__main__":
    main()
