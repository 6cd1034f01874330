"""Validate openfer's landmark-based action-unit (AU) estimates on FER+, and fit their scales.

The face mesh is run on FER+ 48x48 crops (``openfer.train.template.mesh_on_crops``); AU intensities
come from ``openfer.core.au``. For each basic expression, the intensity of each of its EMFACS
prototype AUs on faces with that (majority) label is compared with neutral faces: Cohen's d (pooled
SD) and the AUC (probability that a face of the class scores higher than a neutral face, ties 1/2),
with a 95% bootstrap interval for the AUC. Contempt's prototype is one-sided (AU12/AU14 on one side):
it is also tested with the magnitude of ``au_asymmetry``.

Two disjoint samples, each at most ``--n`` images, stratified by class (every class gets an equal
share; classes smaller than their share, the rare ones, are included whole):

* ``--fit-scales``: FER2013Train (seed 1) -> prints ``AU_SCALES`` (5 / the 95th percentile of the
  signed feature change on faces of the AU's prototype classes); ``--write-scales`` also writes them
  into ``src/openfer/core/au.py``. The validation never uses these images.
* default: FER2013Valid (seed 0) -> ``docs/validation_aus.json`` and the "Action units" section of
  ``docs/validation.md``.

Usage: python scripts/validate_aus.py [--ferplus ../shared/datasets/ferplus] [--fit-scales [--write-scales]]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from openfer.components.landmarks import FaceMesh
from openfer.components.pose import reference_face
from openfer.core import au
from openfer.eval.datasets import LabeledImages, load_gray_stack, read_ferplus
from openfer.train.template import mesh_on_crops

ROOT = Path(__file__).resolve().parent.parent
AU_MODULE = ROOT / "src" / "openfer" / "core" / "au.py"
DOCS = ROOT / "docs"
MIN_SCORE = 0.5
FIT_PERCENTILE = 95.0


def stratified_sample(labels: np.ndarray, n: int, num_classes: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``n`` items, an equal share per class; a class smaller than its
    share is taken whole and the rest is shared among the others."""
    counts = np.bincount(labels[labels >= 0], minlength=num_classes)
    quota = np.zeros(num_classes, dtype=int)
    left, open_ = n, [c for c in range(num_classes) if counts[c] > 0]
    while open_ and left > 0:
        share = left // len(open_)
        small = [c for c in open_ if counts[c] <= share]
        if not small:
            for c in open_:
                quota[c] = share
            break
        for c in small:
            quota[c] = counts[c]
            left -= counts[c]
            open_.remove(c)
    rng = np.random.default_rng(seed)
    pick = [
        rng.choice(np.flatnonzero(labels == c), quota[c], replace=False)
        for c in range(num_classes)
        if quota[c]
    ]
    return np.sort(np.concatenate(pick)) if pick else np.zeros(0, dtype=int)


def sample_landmarks(
    data: LabeledImages, n: int, seed: int, cache: Path | None
) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks ``(M, 468, 3)`` (crop pixels) and labels of the faces the mesh accepts (score >= 0.5)."""
    if cache is not None and cache.is_file():
        z = np.load(cache)
        return z["landmarks"], z["labels"]
    idx = stratified_sample(data.labels, n, len(data.classes), seed)
    sub = data.subset(np.isin(np.arange(len(data)), idx))
    lm, score = mesh_on_crops(load_gray_stack(sub), FaceMesh(iris=False, threads=1))
    ok = score >= MIN_SCORE
    print(f"{data.name}: {int(ok.sum())} of {len(ok)} sampled faces meshed (score >= {MIN_SCORE})")
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, landmarks=lm[ok], labels=sub.labels[ok])
    return lm[ok], sub.labels[ok]


def auc_score(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(pos > neg) + P(pos == neg) / 2 (the Mann-Whitney AUC), from mid-ranks."""
    x = np.concatenate([pos, neg])
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, inv, cnt = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = (sums / cnt)[inv]  # mid-ranks for ties
    r = ranks[: len(pos)].sum()
    return float((r - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def cohens_d(pos: np.ndarray, neg: np.ndarray) -> float:
    n1, n2 = len(pos), len(neg)
    pooled = ((n1 - 1) * pos.var(ddof=1) + (n2 - 1) * neg.var(ddof=1)) / (n1 + n2 - 2)
    return float((pos.mean() - neg.mean()) / np.sqrt(pooled)) if pooled > 0 else 0.0


def bootstrap_auc(
    pos: np.ndarray, neg: np.ndarray, rng: np.random.Generator, reps: int = 500
) -> tuple[float, float]:
    vals = [auc_score(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))) for _ in range(reps)]
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(lo), float(hi)


def fit_scales(landmarks: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
    ref = reference_face()
    change = au.feature_changes(landmarks, ref)
    col = {k: i for i, k in enumerate(au.FEATURE_NAMES)}
    out: dict[str, float] = {}
    for name, feature, sign in au.AU_FEATURES:
        cls = au.PROTOTYPE_CLASSES[name]
        if not cls:
            continue
        mask = np.isin(labels, [classes.index(c) for c in cls])
        q = float(np.percentile(sign * change[mask, col[feature]], FIT_PERCENTILE))
        if q <= 1e-4:  # the feature does not move the expected way on these faces: use the spread
            q = float(np.percentile(np.abs(change[:, col[feature]]), FIT_PERCENTILE))
            print(f"warning: {name} does not increase on {cls}; scale from the overall spread")
        out[name] = float(f"{5.0 / q:.3g}")
        print(
            f"{name:5s} {feature:20s} classes {','.join(cls):28s} n={int(mask.sum()):4d} "
            f"p{FIT_PERCENTILE:.0f} change {q:.4f} -> scale {out[name]}"
        )
    return out


def write_scales(scales: dict[str, float]) -> None:
    body = "".join(f'    "{k}": {v!r},\n' for k, v in scales.items())
    text = AU_MODULE.read_text()
    new = re.sub(
        r"(    # BEGIN fitted scales\n).*?(    # END fitted scales\n)",
        lambda m: m[1] + body + m[2],
        text,
        flags=re.S,
    )
    if new == text and body not in text:
        raise SystemExit(f"{AU_MODULE}: fitted-scales block not found")
    AU_MODULE.write_text(new)
    print(f"wrote {len(scales)} scales into {AU_MODULE.relative_to(ROOT)}")


def validate(landmarks: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], seed: int) -> dict:
    ref = reference_face()
    aus = au.au_intensities(landmarks, ref)
    asym = np.abs(au.au_asymmetry(landmarks, ref))
    rng = np.random.default_rng(seed)
    neutral = labels == classes.index("neutral")
    per_class: dict[str, list[dict]] = {}
    for cls, proto in au.PROTOTYPE_AUS.items():
        mask = labels == classes.index(cls)
        rows = []
        columns = [(a, aus[:, au.AU_NAMES.index(a)]) for a in proto]
        if cls == "contempt":
            columns += [(f"{a} one-sided", asym[:, i]) for i, a in enumerate(au.ASYMMETRY_NAMES)]
        for name, x in columns:
            pos, neg = x[mask], x[neutral]
            lo, hi = bootstrap_auc(pos, neg, rng)
            rows.append(
                {
                    "au": name,
                    "d": round(cohens_d(pos, neg), 3),
                    "auc": round(auc_score(pos, neg), 3),
                    "auc_ci95": [round(lo, 3), round(hi, 3)],
                    "mean": round(float(pos.mean()), 3),
                    "mean_neutral": round(float(neg.mean()), 3),
                }
            )
        per_class[cls] = rows
    full = {
        cls: {a: round(auc_score(aus[labels == k, j], aus[neutral, j]), 3) for j, a in enumerate(au.AU_NAMES)}
        for k, cls in enumerate(classes)
        if cls != "neutral"
    }
    return {
        "n_faces": int(len(labels)),
        "faces_per_class": {c: int((labels == k).sum()) for k, c in enumerate(classes)},
        "mean_intensity": {
            c: dict(zip(au.AU_NAMES, np.round(aus[labels == k].mean(0), 3).tolist(), strict=True))
            for k, c in enumerate(classes)
            if (labels == k).any()
        },
        "prototype": per_class,
        # intensity that 90% of neutral faces stay under: the spread of resting faces around the reference
        "neutral_intensity_p90": dict(
            zip(au.AU_NAMES, np.round(np.percentile(aus[neutral], 90, 0), 2).tolist(), strict=True)
        ),
        "pspi_mean": {
            c: round(float(au.pspi(aus[labels == k]).mean()), 2)
            for k, c in enumerate(classes)
            if (labels == k).any()
        },
        "auc_all_aus_vs_neutral": full,
    }


def markdown(res: dict) -> str:
    lines = [
        "## Action units",
        "",
        "Landmark-based AU intensity estimates (`openfer.core.au`, 0-5) on FER+ **FER2013Valid**: "
        f"{res['n_faces']} faces from a class-stratified sample (all disgust, fear and contempt images), "
        "48x48 grayscale crops upscaled 4x for the face mesh, FER+ majority labels. For each basic "
        "expression and each of its EMFACS prototype AUs: Cohen's d and AUC of the AU intensity on faces "
        "of that expression versus neutral faces (AUC 0.5 = no separation; 95% bootstrap interval). "
        "The scales were fitted on a different sample (FER2013Train), where the choice between candidate "
        "measurements (e.g. the reference point of the nose-wing height) was also made; the AUC does not "
        "depend on the scales.",
        "",
        "These are geometric estimates from a 3D face mesh fitted to tiny, low-resolution images, not FACS "
        "coding: FER+ has no AU labels, so this checks only that each prototype AU moves the expected way "
        "on faces of the expression. Texture-only cues (wrinkles, dimples) are invisible to the mesh.",
        "",
        "| expression (n) | AU | d | AUC [95% CI] | mean (class / neutral) |",
        "|---|---|---:|---:|---:|",
    ]
    n = res["faces_per_class"]
    for cls, rows in res["prototype"].items():
        for i, r in enumerate(rows):
            head = f"{cls} ({n[cls]})" if i == 0 else ""
            desc = au.AU_DESCRIPTIONS.get(r["au"], "(abs of au_asymmetry: left - right)")
            lines.append(
                f"| {head} | {r['au']} {desc} | {r['d']:+.2f} | {r['auc']:.2f} "
                f"[{r['auc_ci95'][0]:.2f}, {r['auc_ci95'][1]:.2f}] | {r['mean']:.2f} / {r['mean_neutral']:.2f} |"
            )
    p90 = res["neutral_intensity_p90"]
    lines += [
        "",
        "Spread of resting faces: the intensity that 90% of neutral faces stay under (single images are "
        "compared with the population's mean neutral face, so every face's own shape reads as a little "
        "of some AUs; in video, a per-person `baseline` removes most of it):",
        "",
        "| " + " | ".join(p90) + " |",
        "|" + "---:|" * len(p90),
        "| " + " | ".join(f"{v:.1f}" for v in p90.values()) + " |",
    ]
    pain = ", ".join(f"{c} {v:.1f}" for c, v in res["pspi_mean"].items())
    lines += [
        "",
        f"Neutral faces: {n['neutral']}. All AUs x all expressions (AUC): `docs/validation_aus.json`.",
        "",
        "Cross-talk: each AU is one geometric measurement, and expressions move many of them at once. "
        "A smile also widens the mouth (AU20), pulls the corners back (AU14), lifts the nose wings "
        "(AU9) and upper lip (AU10) and the lower lids (AU7), so those read high on happy faces too "
        "(AUC vs neutral 0.7-0.95 in the JSON). Mean PSPI (pain score built from AU4, AU6/7, AU9/10, "
        f"AU43) per class, which no FER+ class should raise much: {pain}.",
        "",
    ]
    return "\n".join(lines)


def write_docs(res: dict) -> None:
    DOCS.mkdir(exist_ok=True)
    (DOCS / "validation_aus.json").write_text(json.dumps(res, indent=1) + "\n")
    md = DOCS / "validation.md"
    text = md.read_text() if md.exists() else "# Validation\n"
    block = (
        "<!-- BEGIN action units: written by scripts/validate_aus.py -->\n"
        + markdown(res)
        + "<!-- END action units -->\n"
    )
    text = re.sub(r"<!-- BEGIN action units.*?<!-- END action units -->\n", "", text, flags=re.S)
    md.write_text(text.rstrip("\n") + "\n\n" + block)
    print(f"wrote {DOCS / 'validation_aus.json'} and the Action units section of {md}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ferplus", default=str(ROOT.parent / "shared" / "datasets" / "ferplus"))
    ap.add_argument("--n", type=int, default=1500, help="images per sample (at most)")
    ap.add_argument("--fit-scales", action="store_true", help="fit AU_SCALES on FER2013Train and print them")
    ap.add_argument(
        "--write-scales", action="store_true", help="with --fit-scales: write them into core/au.py"
    )
    ap.add_argument(
        "--cache", default=None, help="folder to keep the sampled landmarks in (re-used when present)"
    )
    a = ap.parse_args()
    cache = Path(a.cache) if a.cache else None
    if a.fit_scales:
        data = read_ferplus(a.ferplus, "train")
        lm, y = sample_landmarks(data, a.n, seed=1, cache=cache and cache / f"train_n{a.n}_s1.npz")
        scales = fit_scales(lm, y, data.classes)
        print("AU_SCALES = " + json.dumps(scales, indent=4))
        if a.write_scales:
            write_scales(scales)
        return
    data = read_ferplus(a.ferplus, "valid")
    lm, y = sample_landmarks(data, a.n, seed=0, cache=cache and cache / f"valid_n{a.n}_s0.npz")
    res = validate(lm, y, data.classes, seed=0)
    for cls, rows in res["prototype"].items():
        print(f"{cls:10s} " + "  ".join(f"{r['au']} d={r['d']:+.2f} AUC={r['auc']:.2f}" for r in rows))
    write_docs(res)


if __name__ == "__main__":
    main()
