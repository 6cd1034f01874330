"""Validate ``openfer dataset pseudolabel`` on FER+ and write the shipped model's validation record.

1. Evidence (calibrated probabilities, AUs) of the shipped model on the FER2013Valid and FER2013Test face crops
   (``openfer.dataset.pseudolabel.collect_evidence``; cached in ``--cache`` as ``evidence_<split>_<sha12>.npz``).
2. ``--write-record``: FER2013Valid as the record ``openfer dataset pseudolabel`` uses without ``--validation``
   (``src/openfer/models/pseudolabel_validation.json``, with the model's sha256).
3. For each precision target: the score fitted and the threshold chosen on FER2013Valid, applied to FER2013Test as
   if unlabelled: the precision reached there (FER+ majority labels, Wilson 95%), the coverage, per class; beside
   it the same with the plain top probability as the score (no AU agreement).
4. Given labels: 10, 15 and 20% of the labels changed to a uniformly random other class (seeds 0-4), given to
   the tool at several rectify targets: flips rectified to the true label, flips changed to another wrong class,
   flips left standing, right given labels wrongly changed, and the share of wrong labels before and after. On
   FER2013Valid (in-sample: where the default rectify target was chosen) and on FER2013Test.
5. What the AU agreement adds: accuracy per agreement state and probability bin on FER2013Valid, and the coverage
   at precision 0.9/0.95/0.97 on random halves of it with the score fitted on the other half, against the plain
   top probability.

    python scripts/pseudolabel_validation.py ../shared/datasets/ferplus --cache /tmp/pseudolabel --write-record
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from openfer.dataset.profile import wilson
from openfer.dataset.pseudolabel import (
    AGREEMENT,
    RECORD,
    Evidence,
    ScoreModel,
    Selection,
    Validation,
    assign,
    choose_threshold,
    collect_evidence,
    evidence_analyzer,
    per_class,
    select,
)
from openfer.dataset.report import json_ready
from openfer.eval.datasets import read_ferplus
from openfer.io.tables import atomic_open, write_json
from openfer.runtime.onnx import write_registry_block

ROOT = Path(__file__).resolve().parent.parent
TARGETS = (0.8, 0.9, 0.95)
SEEDS = (0, 1, 2, 3, 4)
FLIPS = (0.1, 0.15, 0.2)
RECTIFY_TARGETS = (0.9, 0.95, 0.97, 0.98, 0.99)
BINS = ((0.0, 0.6), (0.6, 0.8), (0.8, 0.9), (0.9, 0.95), (0.95, 1.01))


def register_record() -> str:
    """The record's block of ``models.toml`` (its sha256), replacing the previous one; other blocks stay."""
    digest = hashlib.sha256(RECORD.read_bytes()).hexdigest()
    write_registry_block("pseudolabel_validation", {
        "file": RECORD.name, "sha256": digest,
        "source": "openfer: fernet_s evidence (top probability, AU-prototype agreement) on FER2013Valid crops, "
                  "majority protocol",
        "license": "MIT (openfer); derived from FER2013 images (research use) with FER+ labels (MIT)",
    }, writer="scripts/pseudolabel_validation.py --write-record", toml=RECORD.parent / "models.toml")
    return digest


def evidence(root: Path, split: str, cache: Path | None, threads: int) -> tuple[Evidence, np.ndarray]:
    data = read_ferplus(root, split)
    analyzer = evidence_analyzer("fernet_s", "crops", threads)
    m = analyzer.expression.model
    path = None if cache is None else cache / f"evidence_{split}_{m.sha256[:12]}.npz"
    if path is not None and path.is_file():
        z = np.load(path)
        if [str(p) for p in data.paths] == list(z["paths"]):
            ev = Evidence(data.paths, z["probs"], z["aus"], tuple(z["status"]), analyzer.classes,
                          tuple(z["au_names"]), "crops", m.name, m.sha256)
            print(f"{split}: evidence from {path}", file=sys.stderr)
            return ev, data.labels
    t0 = time.monotonic()
    ev = collect_evidence(data.paths, "crops", analyzer,
                          progress=lambda d, t: print(f"\r{split} {d}/{t}", end="", file=sys.stderr))
    print(f"\r{split}: {len(ev)} images in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, probs=ev.probs, aus=ev.aus, status=np.array(ev.status), au_names=np.array(ev.au_names),
                 paths=np.array([str(p) for p in ev.paths]))
    return ev, data.labels


def applied(sel: Selection, test: Validation) -> dict:
    s = sel.score(test.p_top, test.agreement)
    keep = s >= sel.choice.threshold
    right = keep & (test.pred == test.labels)
    lo, hi = wilson(int(right.sum()), int(keep.sum()))
    return {"threshold": sel.choice.threshold, "validation": {"precision": sel.choice.precision,
                                                              "precision_95": [sel.choice.low, sel.choice.high],
                                                              "coverage": sel.choice.coverage, "kept": sel.choice.kept},
            "test": {"n": int(len(s)), "kept": int(keep.sum()), "precision": float(right.sum() / keep.sum()),
                     "precision_95": [lo, hi], "coverage": float(keep.mean()),
                     "per_class": per_class(s, test.pred, test.labels, sel.choice.threshold, test.classes)},
            "weights": sel.score.to_dict()}


def plain(val: Validation, test: Validation, target: float) -> dict:
    """The same with the plain top probability as the score (no AU agreement)."""
    ch = choose_threshold(val.p_top, val.pred == val.labels, target, 50)
    keep = test.p_top >= ch.threshold
    right = keep & (test.pred == test.labels)
    return {"threshold": ch.threshold, "validation_coverage": ch.coverage,
            "test_precision": float(right.sum() / keep.sum()), "test_coverage": float(keep.mean())}


def agreement_value(val: Validation, splits: int = 20) -> dict:
    """Does the AU agreement help? Accuracy per state and top-probability bin on FER2013Valid, and coverage at
    each target on one random half of it with the score fitted on the other half, against the plain probability."""
    right = val.pred == val.labels
    states = {}
    for k, name in enumerate(AGREEMENT):
        m = val.agreement == k
        bins = {}
        for lo, hi in BINS:
            mm = m & (val.p_top >= lo) & (val.p_top < hi)
            bins[f"{lo}-{hi}"] = {"n": int(mm.sum()), "right": float(right[mm].mean()) if mm.any() else None}
        states[name] = {"n": int(m.sum()), "right": float(right[m].mean()), "by_probability": bins}
    rng = np.random.default_rng(0)
    cover = {"fitted": [], "plain": []}
    for _ in range(splits):
        half = np.zeros(len(right), bool)
        half[rng.permutation(len(right))[: len(right) // 2]] = True
        fitted = ScoreModel.fit(val.p_top[half], val.agreement[half], right[half])(val.p_top, val.agreement)
        for name, s in (("fitted", fitted), ("plain", val.p_top)):
            o = np.argsort(-s[~half])
            prec = np.cumsum(right[~half][o]) / np.arange(1, (~half).sum() + 1)
            cover[name].append([float(np.flatnonzero(prec >= t)[-1] + 1) / (~half).sum() for t in (0.9, 0.95, 0.97)])
    return {"states": states, "half_splits": {
        "targets": [0.9, 0.95, 0.97], "splits": splits,
        "coverage_mean": {k: np.mean(v, 0).tolist() for k, v in cover.items()},
        "coverage_sd": {k: np.std(v, 0, ddof=1).tolist() for k, v in cover.items()},
        "note": "coverage at which the point precision on the held-out half last reaches the target"}}


def flips(ev: Evidence, labels: np.ndarray, sel: Selection, share: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    n, c = len(labels), len(ev.classes)
    flip = np.zeros(n, bool)
    flip[rng.choice(n, size=round(share * n), replace=False)] = True
    given = labels.copy()
    given[flip] = (labels[flip] + rng.integers(1, c, size=int(flip.sum()))) % c
    asg = assign(ev, sel, given)
    changed = asg.label != given
    wrong_before, wrong_after = float((given != labels).mean()), float((asg.label != labels).mean())
    return {"flipped": int(flip.sum()), "flips_rectified": int((flip & (asg.label == labels)).sum()),
            "flips_changed_wrongly": int((flip & changed & (asg.label != labels)).sum()),
            "flips_left": int((flip & ~changed).sum()), "correct": int((~flip).sum()),
            "correct_changed": int((~flip & changed).sum()), "wrong_before": wrong_before, "wrong_after": wrong_after}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ferplus", type=Path)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--write-record", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "validation_pseudolabel.json")
    args = ap.parse_args()
    ev_v, y_v = evidence(args.ferplus, "valid", args.cache, args.threads)
    ev_t, y_t = evidence(args.ferplus, "test", args.cache, args.threads)
    val = Validation.from_evidence(ev_v, y_v, "FER+ FER2013Valid (majority protocol), face crops")
    test = Validation.from_evidence(ev_t, y_t, "FER+ FER2013Test (majority protocol), face crops")
    if args.write_record:
        cmd = "python scripts/pseudolabel_validation.py ../shared/datasets/ferplus --write-record"
        with atomic_open(RECORD) as fh:  # compact: four arrays of 3,191 numbers
            fh.write(json.dumps(val.to_record(cmd), separators=(",", ":"), allow_nan=False) + "\n")
        print(f"wrote {RECORD} (sha256 {register_record()[:12]}… in models.toml)", file=sys.stderr)
    doc = {"validation": val.source, "test": test.source, "model": {"name": ev_v.model, "sha256": ev_v.sha256},
           "agreement_valid": {a: int((val.agreement == k).sum()) for k, a in enumerate(AGREEMENT)},
           "accuracy_valid": float((val.pred == val.labels).mean()),
           "accuracy_test": float((test.pred == test.labels).mean()), "targets": {}, "given": {},
           "agreement_value": agreement_value(val)}
    h = doc["agreement_value"]["half_splits"]
    print("half splits, coverage at precision 0.9/0.95/0.97: fitted", np.round(h["coverage_mean"]["fitted"], 4),
          "plain", np.round(h["coverage_mean"]["plain"], 4), "sd", np.round(h["coverage_sd"]["plain"], 4))
    for name, st in doc["agreement_value"]["states"].items():
        print(f"{name}: {st['n']} right {st['right']:.3f}; " + ", ".join(
            f"p {b} {v['n']}/{v['right']:.2f}" for b, v in st["by_probability"].items() if v["n"]))
    for t in TARGETS:
        sel = select(val, t, 50)
        doc["targets"][str(t)] = applied(sel, test) | {"plain_probability": plain(val, test, t)}
        r = doc["targets"][str(t)]
        print(f"target {t}: threshold {sel.choice.threshold:.4f}, valid precision {sel.choice.precision:.3f} "
              f"coverage {sel.choice.coverage:.3f}; test precision {r['test']['precision']:.3f} "
              f"[{r['test']['precision_95'][0]:.3f}, {r['test']['precision_95'][1]:.3f}] coverage "
              f"{r['test']['coverage']:.3f}; plain p: test precision {r['plain_probability']['test_precision']:.3f} "
              f"coverage {r['plain_probability']['test_coverage']:.3f}")
    # given labels: the rectify target is chosen on FER2013Valid's own flips (in-sample), reported on FER2013Test
    for name, ev, y in (("valid", ev_v, y_v), ("test", ev_t, y_t)):
        for share in FLIPS:
            for rect in RECTIFY_TARGETS:
                sel = select(val, 0.9, 50, rect)
                runs = [flips(ev, y, sel, share, s) for s in SEEDS]
                keys = runs[0].keys()
                doc["given"].setdefault(name, []).append({
                    "flip_share": share, "rectify_target": rect, "rectify_threshold": sel.rectify_threshold,
                    "mean": {k: float(np.mean([r[k] for r in runs])) for k in keys},
                    "sd": {k: float(np.std([r[k] for r in runs], ddof=1)) for k in keys}})
                m = doc["given"][name][-1]["mean"]
                changes = m["flips_rectified"] + m["flips_changed_wrongly"] + m["correct_changed"]
                print(f"{name} flips {share:.2f} rectify {rect}: {m['flipped']:.0f} flipped, rectified "
                      f"{m['flips_rectified']:.1f}, changed to another wrong class {m['flips_changed_wrongly']:.1f}, "
                      f"left {m['flips_left']:.1f}; right labels wrongly changed {m['correct_changed']:.1f} of "
                      f"{m['correct']:.0f}; changes right {m['flips_rectified'] / changes:.3f}; wrong labels "
                      f"{m['wrong_before']:.3f} -> {m['wrong_after']:.3f}")
    doc["given"]["seeds"] = list(SEEDS)
    write_json(json_ready(doc), args.json)
    print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
