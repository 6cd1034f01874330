"""DEV CHECK ONLY, not part of openfer and not run by the tests: compare openfer's own confident learning
(openfer.dataset.confident, written from the paper) with cleanlab's on the same out-of-sample probabilities.

cleanlab is AGPL-3.0 and is NOT a dependency of openfer (MIT). Install it outside the project's environment
for this one-off check, e.g. ``pip install --target /tmp/cl cleanlab`` and run
``PYTHONPATH=/tmp/cl python scripts/check_confident_learning.py``.

Compares, on FER2013Train (the K-fold route as ``openfer dataset issues`` runs it) and on one injected-flip set
of high-agreement FER2013Valid images: the confident joint (uncalibrated), and the flagged sets of
prune_by_noise_rate, prune_by_class and both (sizes, intersection, Jaccard).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate_label_issues import ROOT, load  # noqa: E402

from openfer.dataset.agreement import majority_share  # noqa: E402
from openfer.dataset.confident import confident_joint, find_label_issues  # noqa: E402
from openfer.dataset.crossval import cross_val_probs  # noqa: E402
from openfer.dataset.features import FeatureExtractor  # noqa: E402


def compare(name: str, labels: np.ndarray, probs: np.ndarray, truth: np.ndarray | None = None) -> None:
    from cleanlab.count import compute_confident_joint
    from cleanlab.filter import find_label_issues as cl_find

    ours = confident_joint(labels, probs)
    theirs = compute_confident_joint(labels, probs, calibrate=False)
    print(f"{name}: confident joint identical: {np.array_equal(ours, theirs)} "
          f"(largest cell difference {np.abs(ours - theirs).max()}, total {ours.sum()} vs {theirs.sum()})")
    for f in ("prune_by_noise_rate", "prune_by_class", "both"):
        a = find_label_issues(labels, probs, filter=f).issue
        b = cl_find(labels, probs, filter_by=f)
        inter = int((a & b).sum())
        pr = ""
        if truth is not None:  # precision / recall against the injected flips
            pr = "".join(f"  {who} P {(m & truth).sum() / max(m.sum(), 1):.3f} R {(m & truth).sum() / truth.sum():.3f}"
                         for who, m in (("openfer", a), ("cleanlab", b)))
        print(f"  {f:20s} openfer {a.sum():5d}  cleanlab {b.sum():5d}  both {inter:5d}  "
              f"Jaccard {inter / max((a | b).sum(), 1):.3f}{pr}")


def main() -> None:
    ext = FeatureExtractor("fernet_s", threads=1)
    c = len(ext.spec.classes)
    cache = ROOT / "runs" / "rebalance"
    va, fva, vva, _ = load(ROOT.parent / "shared" / "datasets" / "ferplus", "valid", ext, cache)
    tr, ftr, _, _ = load(ROOT.parent / "shared" / "datasets" / "ferplus", "train", ext, cache)
    ha = majority_share(vva) >= 0.8
    y = va.labels[ha]
    rng = np.random.default_rng(1000)  # seed 0 of validate_label_issues.py
    flip = np.zeros(len(y), bool)
    flip[rng.choice(len(y), size=int(round(0.1 * len(y))), replace=False)] = True
    noisy = y.copy()
    noisy[flip] = (y[flip] + rng.integers(1, c, flip.sum())) % c
    compare("valid, injected flips (seed 0)", noisy, cross_val_probs(fva[ha], noisy, c, k=5, seed=0), flip)
    if "--valid-only" not in sys.argv:
        compare("FER2013Train", tr.labels, cross_val_probs(ftr, tr.labels, c, k=5, seed=0))


if __name__ == "__main__":
    main()
