"""Validation of ``openfer dataset issues`` (docs/validation.md, "Label issues"; docs/experiments.md).

    python scripts/validate_label_issues.py [--ferplus ../shared/datasets/ferplus] [--cache runs/rebalance]
        [--seeds 5] [--out docs/datasets/ferplus/issues/validation.json]

1. Injected flips: the FER2013Valid images whose annotators agree (majority share of the 10 raw votes >= 0.8);
   10% of them (seeded) get a random other class; the K-fold route (5 folds, linear head on the shipped network's
   penultimate features) and confident learning run on these labels; precision and recall of the flagged set
   against the flips, per filter, and the precision of the self-confidence ranking where it reaches recall 0.6.
   The same flips again with the model route (the shipped model's probabilities, as for data it never saw).
2. Real FER+ train (K-fold route, as the command runs it): the flagged images' annotator agreement (majority share,
   vote entropy) against the rest.
3. The cheap lever: the same linear head re-trained on frozen FER2013Train features with all images, without the
   flagged ones, with the flagged ones relabelled to the suggested class, and without as many random images
   (control); FER2013Valid accuracy and UAR, paired bootstrap intervals of the change. FER2013Test is not read.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from openfer.components.expression import ExpressionClassifier
from openfer.dataset.agreement import majority_share, vote_entropy
from openfer.dataset.confident import FILTERS, find_label_issues
from openfer.dataset.crossval import HeadOptions, cross_val_probs, fit_softmax_head
from openfer.dataset.features import FeatureExtractor, split_features
from openfer.dataset.issues import _votes_of, agreement_comparison
from openfer.dataset.sources import open_source
from openfer.eval.datasets import relabel
from openfer.eval.evaluate import score_crops
from openfer.io.tables import write_json

ROOT = Path(__file__).resolve().parent.parent


def load(ferplus: Path, split: str, ext: FeatureExtractor, cache: Path | None):
    sp = open_source(ferplus, "ferplus", (split,)).splits[0]
    ready = relabel(sp.labelled, ext.spec.classes)
    data = ready.subset(ready.labels >= 0)
    feats, origin = split_features(data, split, ext, cache)
    return data, feats, _votes_of(sp, data), origin


def uar(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean([(pred[y == k] == k).mean() for k in np.unique(y)]))


def precision_at_recall(score: np.ndarray, truth: np.ndarray, recall: float) -> tuple[float, int]:
    order = np.argsort(score, kind="stable")
    hits = np.cumsum(truth[order])
    k = int(np.searchsorted(hits, recall * truth.sum() - 1e-9)) + 1  # first prefix reaching the recall
    return float(hits[k - 1] / k), k


def injected_flips(feats: np.ndarray, y: np.ndarray, n_classes: int, seeds: int, share: float = 0.1,
                   model_probs: np.ndarray | None = None) -> dict:
    """K-fold route (``model_probs`` None: a head fitted per fold on the flipped labels) or model route (the
    given probabilities, which do not depend on the labels); the same seeded flips for both."""
    rows = []
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        flip = np.zeros(len(y), bool)
        flip[rng.choice(len(y), size=int(round(share * len(y))), replace=False)] = True
        noisy = y.copy()
        noisy[flip] = (y[flip] + rng.integers(1, n_classes, flip.sum())) % n_classes
        probs = cross_val_probs(feats, noisy, n_classes, k=5, seed=seed) if model_probs is None else model_probs
        r = {"seed": seed, "flipped": int(flip.sum()), "accuracy_vs_true": float((probs.argmax(1) == y).mean())}
        for f in FILTERS:
            res = find_label_issues(noisy, probs, filter=f)
            tp = int((res.issue & flip).sum())
            r[f] = {"flagged": int(res.issue.sum()), "precision": tp / max(res.issue.sum(), 1),
                    "recall": tp / flip.sum()}
        res = find_label_issues(noisy, probs)
        for name, score in (("self_confidence", res.self_confidence), ("normalized_margin", res.normalized_margin)):
            p, k = precision_at_recall(score, flip, 0.6)
            r[f"ranking_{name}_precision_at_recall_0.6"] = {"precision": p, "top_k": k}
        rows.append(r)
        print(f"  seed {seed}: " + ", ".join(f"{f} P {r[f]['precision']:.3f} R {r[f]['recall']:.3f} (n {r[f]['flagged']})"
                                             for f in FILTERS))

    def ms(get) -> dict:  # noqa: ANN001
        v = np.array([get(r) for r in rows])
        return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0}

    summary = {f: {k: ms(lambda r, f=f, k=k: r[f][k]) for k in ("precision", "recall", "flagged")} for f in FILTERS}
    for name in ("self_confidence", "normalized_margin"):
        key = f"ranking_{name}_precision_at_recall_0.6"
        summary[key] = ms(lambda r, key=key: r[key]["precision"])
    return {"runs": rows, "summary": summary}


def bootstrap_delta(pred: np.ndarray, base: np.ndarray, y: np.ndarray, n: int = 1000, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    da, du = [], []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        da.append((pred[i] == y[i]).mean() - (base[i] == y[i]).mean())
        du.append(uar(pred[i], y[i]) - uar(base[i], y[i]))
    q = lambda a: [float(np.quantile(a, 0.025)), float(np.quantile(a, 0.975))]  # noqa: E731
    return {"delta_accuracy_95": q(da), "delta_uar_95": q(du)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ferplus", type=Path, default=ROOT.parent / "shared" / "datasets" / "ferplus")
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "rebalance")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--threshold", type=float, default=0.8, help="majority share of a high-agreement image")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "datasets" / "ferplus" / "issues" / "validation.json")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    t0 = time.monotonic()
    ext = FeatureExtractor("fernet_s", threads=a.threads)
    classes = ext.spec.classes
    c = len(classes)
    va, fva, vva, ova = load(a.ferplus, "valid", ext, a.cache)
    tr, ftr, vtr, otr = load(a.ferplus, "train", ext, a.cache)
    print(f"features: valid {ova}; train {otr} ({time.monotonic() - t0:.0f} s)")
    out: dict = {"model": ext.model.name, "sha256": ext.model.sha256, "head": HeadOptions().__dict__,
                 "features": {"valid": ova, "train": otr}, "seconds": {}}

    # 1. injected flips into high-agreement valid images
    t = time.monotonic()
    ha = majority_share(vva) >= a.threshold
    print(f"1. {ha.sum()} of {len(ha)} valid images with majority share >= {a.threshold}; 10% flipped, {a.seeds} seeds")
    inj = injected_flips(fva[ha], va.labels[ha], c, a.seeds)
    inj.update({"images": int(ha.sum()), "of": int(len(ha)), "majority_share_at_least": a.threshold,
                "per_class": {k: int(n) for k, n in zip(classes, np.bincount(va.labels[ha], minlength=c), strict=True)}})
    out["injected_flips"] = inj
    out["seconds"]["injected_flips"] = round(time.monotonic() - t, 1)
    # the model route on the same flips: the shipped model's own probabilities (crop route, mirror-averaged).
    # FER2013Valid was not trained on but was selected on (epoch, head, temperature), so these are out-of-sample
    # only in the training sense: the route `dataset issues` takes for data the model never saw.
    t = time.monotonic()
    ev = score_crops(va, ExpressionClassifier("fernet_s", threads=a.threads))
    if not np.array_equal(ev.labels, va.labels):
        raise SystemExit("score_crops reordered or dropped FER2013Valid images")
    print(f"1b. model route: shipped fernet_s on the same images, accuracy vs true {(ev.probs.argmax(1) == va.labels)[ha].mean():.3f}")
    out["injected_flips_model_route"] = injected_flips(fva[ha], va.labels[ha], c, a.seeds, model_probs=ev.probs[ha])
    out["seconds"]["injected_flips_model_route"] = round(time.monotonic() - t, 1)
    for route, res in (("kfold", inj), ("model", out["injected_flips_model_route"])):
        for f in FILTERS:
            s = res["summary"][f]
            print(f"   {route} {f}: precision {s['precision']['mean']:.3f} ± {s['precision']['sd']:.3f}, recall "
                  f"{s['recall']['mean']:.3f} ± {s['recall']['sd']:.3f}")

    # 2. real FER+ train, K-fold route as the command runs it (k 5, seed 0)
    t = time.monotonic()
    probs = cross_val_probs(ftr, tr.labels, c, k=5, seed=0)
    res = find_label_issues(tr.labels, probs)
    flagged = res.issue
    ag = agreement_comparison(vtr, flagged)
    ms, h = majority_share(vtr), vote_entropy(vtr)
    rng = np.random.default_rng(0)
    diffs = []
    fi, ri = np.flatnonzero(flagged), np.flatnonzero(~flagged)
    for _ in range(1000):
        diffs.append(ms[rng.choice(fi, len(fi))].mean() - ms[rng.choice(ri, len(ri))].mean())
    ag["majority_share_mean_difference_95"] = [float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))]
    ag["entropy_mean_difference"] = float(h[flagged].mean() - h[~flagged].mean())
    # how often the annotators' second choice is the suggested label
    v = vtr[:, :c].copy()
    v[np.arange(len(v)), tr.labels] = -1
    ag["suggested_is_annotators_second_choice"] = float((v[flagged].argmax(1) == res.suggested[flagged]).mean())
    ag["suggested_has_a_vote"] = float((vtr[flagged, res.suggested[flagged]] > 0).mean())
    out["train"] = {"images": int(len(flagged)), "flagged": int(flagged.sum()),
                    "kfold_accuracy": float((probs.argmax(1) == tr.labels).mean()),
                    "noise_rate": {k: float(x) for k, x in zip(classes, res.noise_rate, strict=True)},
                    "flagged_per_class": {k: int(x) for k, x in zip(classes, np.bincount(tr.labels[flagged], minlength=c), strict=True)},
                    "agreement": ag}
    out["seconds"]["train_kfold"] = round(time.monotonic() - t, 1)
    print(f"2. train: {flagged.sum()} of {len(flagged)} flagged; majority share flagged "
          f"{ag['flagged']['majority_share']['mean']:.3f} vs rest {ag['rest']['majority_share']['mean']:.3f}; entropy "
          f"{ag['flagged']['entropy_bits']['mean']:.3f} vs {ag['rest']['entropy_bits']['mean']:.3f} bits")

    # 3. the linear head re-trained without / with relabelled flagged images
    t = time.monotonic()
    yv = va.labels
    variants = {"all": (ftr, tr.labels),
                "without_flagged": (ftr[~flagged], tr.labels[~flagged]),
                "relabelled_flagged": (ftr, np.where(flagged, res.suggested, tr.labels))}
    keep = np.ones(len(flagged), bool)
    keep[np.random.default_rng(1).choice(len(flagged), size=int(flagged.sum()), replace=False)] = False
    variants["without_random_control"] = (ftr[keep], tr.labels[keep])
    preds = {}
    out["retrain"] = {}
    for name, (f, y) in variants.items():
        preds[name] = fit_softmax_head(f, y, c).logits(fva).argmax(1)
        out["retrain"][name] = {"train_images": int(len(y)), "valid_accuracy": float((preds[name] == yv).mean()),
                                "valid_uar": uar(preds[name], yv)}
        if name != "all":
            out["retrain"][name].update(bootstrap_delta(preds[name], preds["all"], yv))
        r = out["retrain"][name]
        print(f"3. {name:24s} n {r['train_images']:6d}  valid accuracy {r['valid_accuracy']:.4f}  UAR {r['valid_uar']:.4f}"
              + (f"  d acc 95% {r['delta_accuracy_95'][0]:+.4f}..{r['delta_accuracy_95'][1]:+.4f}  d UAR "
                 f"{r['delta_uar_95'][0]:+.4f}..{r['delta_uar_95'][1]:+.4f}" if name != "all" else ""))
    out["seconds"]["retrain"] = round(time.monotonic() - t, 1)
    out["seconds"]["total"] = round(time.monotonic() - t0, 1)
    write_json(out, a.out)
    print(f"wrote {a.out} ({out['seconds']['total']:.0f} s)")


if __name__ == "__main__":
    main()
