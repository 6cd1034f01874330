"""Collect action-unit evidence on FER+ and photos_dev for ``scripts/calibrate_aus.py`` (cached).

Per face: the 21 geometric features (``openfer.core.au.au_features``) and the 52 blendshapes from
Face Mesh v2 + the blendshape model, and, for the old estimator beside the new, the landmark-only AU
intensities of openfer 0.1 (Face Mesh v1, ``openfer.core.au.au_intensities``).

* FER+ (``--split FER2013Train|FER2013Valid``): a class-stratified sample (``--n``, seed: 1 for
  train, 0 for valid as in ``scripts/validate_aus.py``), the mesh run on the 48x48 crops
  (``openfer.train.template.mesh_on_crops``), faces kept at mesh score >= 0.5 under both meshes.
* photos_dev (``--photos DIR``): every photo, one detector pass, the largest face; both meshes on
  the same ROI; faces kept at the v2 mesh score >= 0.9.

Writes ``runs/au_calib/<name>.npz`` (features, blendshapes, old_aus, labels, classes, paths).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from openfer.components.au import estimate_evidence
from openfer.components.blendshapes import Blendshapes
from openfer.components.detector import FaceDetector
from openfer.components.landmarks import FaceMesh, rois_from_detections
from openfer.components.pose import reference_face
from openfer.core import au
from openfer.eval.datasets import load_gray_stack, read_ferplus
from openfer.eval.subgroups import largest_box
from openfer.io.images import read_image
from openfer.train.template import mesh_on_crops

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "runs" / "au_calib"


def stratified(labels: np.ndarray, n_per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pick = [rng.permutation(np.flatnonzero(labels == c))[:n_per_class] for c in np.unique(labels[labels >= 0])]
    return np.sort(np.concatenate(pick))


def evidence(lm: np.ndarray, bs_model: Blendshapes) -> tuple[np.ndarray, np.ndarray]:
    """Mesh features and blendshapes: the two parts of ``openfer.components.au.estimate_evidence``."""
    bs = bs_model(lm)
    return estimate_evidence(lm, bs)[:, : len(au.FEATURE_NAMES)], bs


def ferplus(root: Path, split: str, n: int, seed: int) -> dict:
    data = read_ferplus(root, {"FER2013Train": "train", "FER2013Valid": "valid"}[split])
    idx = stratified(data.labels, n, seed)
    sub = data.subset(np.isin(np.arange(len(data)), idx))
    crops = load_gray_stack(sub)
    lm2, s2 = mesh_on_crops(crops, FaceMesh(threads=1))
    lm1, s1 = mesh_on_crops(crops, FaceMesh(iris=False, threads=1, model="facemesh"))
    ok = (s2 >= 0.5) & (s1 >= 0.5)
    print(f"{split}: {int(ok.sum())} of {len(ok)} sampled faces meshed by both meshes")
    feats, bs = evidence(lm2[ok], Blendshapes(threads=1))
    old = au.au_intensities(lm1[ok], reference_face())
    return {"features": feats, "blendshapes": bs, "old_aus": old, "labels": sub.labels[ok],
            "classes": np.array(data.classes), "paths": np.array([str(p) for p in np.asarray(sub.paths)[ok]])}


def photos(folder: Path) -> dict:
    rows = list(csv.DictReader(open(folder / "labels.csv", newline="")))
    classes = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    det = FaceDetector(min_face=None, threads=1)
    m2, m1 = FaceMesh(threads=1), FaceMesh(iris=False, threads=1, model="facemesh")
    keep_lm2, keep_lm1, labels, paths = [], [], [], []
    for r in rows:
        if r["label"] not in classes:
            continue
        rgb = read_image(folder / r["path"])
        d = det(rgb)
        if len(d.boxes) == 0:
            continue
        i = largest_box(d.boxes)
        c, s, a = rois_from_detections(d.boxes[i : i + 1], d.keypoints[i : i + 1])
        lm2, sc2 = m2(rgb, c, s, a)
        lm1, _ = m1(rgb, c, s, a)
        if sc2[0] < 0.9:
            continue
        keep_lm2.append(lm2[0]), keep_lm1.append(lm1[0])
        labels.append(classes.index(r["label"])), paths.append(r["path"])
    lm2, lm1 = np.stack(keep_lm2), np.stack(keep_lm1)
    print(f"photos_dev: {len(lm2)} of {len(rows)} photos with a meshed face")
    feats, bs = evidence(lm2, Blendshapes(threads=1))
    return {"features": feats, "blendshapes": bs, "old_aus": au.au_intensities(lm1, reference_face()),
            "labels": np.array(labels), "classes": np.array(classes), "paths": np.array(paths)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ferplus", type=Path, default=ROOT.parent / "shared" / "datasets" / "ferplus")
    p.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "datasets" / "photos_dev")
    p.add_argument("--n", type=int, default=500, help="FER+ faces per class, at most")
    p.add_argument("--only", choices=("FER2013Train", "FER2013Valid", "photos_dev"), nargs="*")
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    jobs = args.only or ("FER2013Train", "FER2013Valid", "photos_dev")
    for name in jobs:
        if name == "photos_dev":
            res = photos(args.photos)
        else:
            res = ferplus(args.ferplus, name, args.n, 1 if name == "FER2013Train" else 0)
        np.savez_compressed(OUT / f"{name}.npz", **res)
        print(f"wrote {OUT / name}.npz")


if __name__ == "__main__":
    main()
