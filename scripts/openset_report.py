"""Write the "Open set" section of docs/validation.md from docs/openset.json
(scripts/openset_protocol.py) and docs/openset_shipped.json (scripts/validate_openset.py).

    python scripts/openset_report.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# column headings of the methods scripts/openset_protocol.py reports (its METHODS, in that order)
HEADERS = {
    "msp": "max-softmax",
    "energy": "energy",
    "mahalanobis": "Mahalanobis",
    "mahalanobis+msp": "Mahalanobis + max-softmax (shipped)",
    "au_knn": "AU kNN",
    "au_knn+msp": "AU kNN + max-softmax",
    "mahalanobis+msp+au_knn": "all three",
}


def _row(rows: list[dict], name: str) -> dict:
    return next(r for r in rows if r["held_out"] == name)


def main() -> None:
    proto = json.loads((ROOT / "docs" / "openset.json").read_text())
    shipped = json.loads((ROOT / "docs" / "openset_shipped.json").read_text())
    rows = proto["classes"]
    methods = tuple(proto["mean"])  # the protocol's order
    lines = [
        "## Open set",
        "",
        "### Hold one class out (FER+)",
        "",
        f"`python scripts/openset_protocol.py ../shared/datasets/ferplus --out RUNS --arch {proto['arch']} "
        f"--epochs {proto['epochs']} --limit 12500 --threads 1`: for each class, a `{proto['arch']}` is trained "
        f"from scratch ({proto['epochs']} epochs, every second FER2013Train image without that class, seed "
        f"{proto['seed']}; the CPU budget of one session), selected on FER2013Valid without it, and "
        "FER2013Test's images of that class are the unknowns. AU kNN is the distance of a face's action "
        "units (18 intensities and the one-sided AU12/AU14 magnitudes, face mesh on the 48 px crop) to the "
        "10th nearest of 6,000 known training faces, standardised per AU; combinations sum the scores "
        "standardised on known validation faces. AUROC (unknown = positive) / FPR at 95% TPR "
        "on the known faces:",
        "",
        "| held out | unknowns | known accuracy | " + " | ".join(HEADERS.get(m, m) for m in methods) + " |",
        "|---|---|---|" + "---|" * len(methods),
    ]
    for r in rows:
        cells = " | ".join(f"{r[m]['auroc']:.3f} / {r[m]['fpr95']:.2f}" for m in methods)
        lines.append(f"| {r['held_out']} | {r['n_unknown']} | {r['known_accuracy']:.3f} | {cells} |")
    mean = " | ".join(
        f"**{proto['mean'][m]['auroc']:.3f}** / {proto['mean'][m]['fpr95']:.2f}" for m in methods
    )
    lines.append(f"| **mean** ({len(rows)} classes) | | | {mean} |")
    best = max(methods, key=lambda m: proto["mean"][m]["auroc"])
    lines += [
        "",
        f"Reading: the best mean AUROC here is {proto['mean'][best]['auroc']:.3f} ({best}), against the 0.90 "
        "target and the 0.882 that Zhang et al. (AAAI 2024) report with ImageNet-pretrained backbones and "
        "a dedicated method (their max-softmax baseline: 0.424). Telling a held-out *expression* from the "
        "known ones is not solved by openfer: the held-out faces are ordinary, well-framed faces, close to "
        "the known classes in feature space (Mahalanobis alone is often below 0.5 — the unknowns sit "
        "nearer the class means than many known faces do). Evidence from outside the classifier helps "
        "where the held-out expression has a distinctive geometry: the AU kNN score finds held-out "
        f"happiness at AUROC {_row(rows, 'happiness')['au_knn']['auroc']:.3f} where max-softmax gives "
        f"{_row(rows, 'happiness')['msp']['auroc']:.3f} (a model that never saw a smile maps it "
        "onto a known class about as confidently as it maps known faces, but AU6+AU12 look like no "
        "known class), and adding it to "
        f"max-softmax raises the mean from {proto['mean']['msp']['auroc']:.3f} to "
        f"{proto['mean']['au_knn+msp']['auroc']:.3f}; it does not separate the expressions that share "
        "their AUs with a known class (fear against surprise, contempt, disgust). The shipped score "
        "does not use the AUs yet. These protocol models are also weaker than the shipped one (known "
        "accuracy above), because eight full trainings do not fit the CPU budget; the ranking of the "
        "methods, not the absolute level, is what this table shows.",
        "",
        "### The shipped score on inputs that are not known expressions",
        "",
        f"`python scripts/validate_openset.py ../shared/datasets/ferplus ../shared/datasets/photos_dev` "
        f"(model `{Path(shipped['model']).stem}`, sha256 `{shipped['sha256'][:12]}…`). Known: "
        f"{shipped['known']['n']} FER2013Test faces with no unknown/NF vote; "
        f"{shipped['known']['flagged']:.1%} of them are flagged at the default threshold 0.95 (by "
        f"construction about 5%), and accuracy on the kept faces rises from {shipped['known']['accuracy_all']:.4f} "
        f"to {shipped['known']['accuracy_kept']:.4f}.",
        "",
        "| inputs | n | AUROC `unknown_score` | AUROC max-softmax | flagged at 0.95 |",
        "|---|---|---|---|---|",
    ]
    names = {
        "fer_unknown_majority": "FER+ images voted mostly unknown / not-a-face (all splits, never trained on)",
        "fer_ambiguous": "FER2013Test images with >= 3 unknown/NF votes",
        "background": "photos_dev corners (hair, wall, clothing)",
        "noise": "uniform noise",
    }
    for k, g in shipped["groups"].items():
        lines.append(
            f"| {names.get(k, k)} | {g['n']} | {g['auroc_unknown_score']:.3f} | {g['auroc_msp']:.3f} | {g['flagged']:.3f} |"
        )
    lines += [
        "",
        "So `unknown` is dependable for garbage input (non-faces, failed crops), modest for ambiguous faces, "
        "and not a detector of novel expressions.",
        "",
    ]
    block = "\n".join(lines)
    path = ROOT / "docs" / "validation.md"
    text = path.read_text()
    marked = re.compile(r"<!-- OPENSET -->.*?<!-- /OPENSET -->\n", re.S)
    new = f"<!-- OPENSET -->\n{block}<!-- /OPENSET -->\n"
    text = marked.sub(lambda _: new, text) if marked.search(text) else text.rstrip("\n") + "\n\n" + new
    path.write_text(text)
    print(block)


if __name__ == "__main__":
    main()
