"""What switching the default preset's face detector changes in the outputs, on real photos.

    python benchmarks/detector_agreement.py [--photos ../shared/datasets/photos_dev] [--limit N]

Runs the default preset twice on every labelled photo of ``--photos`` (a folder with ``labels.csv``,
``path,label``), once with each detector of :data:`DETECTORS` (one ONNX Runtime thread each), and
writes ``results/detector_agreement.json``:

* per detector: photos with at least one face, faces found, accuracy and UAR of the largest face's
  expression against the photo's label (a photo without a face counts as an error);
* on the photos where both find the same number of faces (matched by box IoU): the landmark
  difference (mean and max of the 478 points, pixels and per cent of the face's box height), the
  difference after one more Face Mesh pass on each side from its own landmarks' ROI (what video
  tracking does; how much of the difference is the mesh's sensitivity to its ROI), the expression
  (label agreement, largest probability difference), and per action unit the mean, 95th percentile
  and largest absolute intensity difference, with PSPI's.

No detector is ground truth here: the differences are what a user would see change, stated so the
switch is a measured one (issue "Speed": "AU/blendshape differences stated").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from bench_pipeline import machine

from openfer.components.landmarks import rois_from_landmarks
from openfer.core.boxes import iou_matrix
from openfer.errors import InputError
from openfer.eval.evaluate import read_dataset
from openfer.eval.metrics import classification_report
from openfer.eval.subgroups import largest_face
from openfer.io.images import read_image
from openfer.io.tables import write_json
from openfer.pipeline import Analyzer

RESULTS = Path(__file__).parent / "results"
DETECTORS = ("blazeface_short", "blazeface_full")


def match(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    """Greedy one-to-one box matching at IoU >= 0.3 (the two detectors' boxes differ in size)."""
    iou = iou_matrix(a, b)
    pairs = []
    while iou.size and iou.max() >= 0.3:
        i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
        pairs.append((int(i), int(j)))
        iou[i, :], iou[:, j] = -1, -1
    return pairs


def stats(x: np.ndarray) -> dict:
    x = np.asarray(x, np.float64)
    if x.size == 0:
        return {}
    return {"mean": round(float(x.mean()), 4), "p95": round(float(np.percentile(x, 95)), 4),
            "max": round(float(x.max()), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets" / "photos_dev"))
    ap.add_argument("--limit", type=int, default=None, help="first N photos only")
    ap.add_argument("--out", default=str(RESULTS / "detector_agreement.json"))
    args = ap.parse_args()

    data = read_dataset(args.photos, "csv")
    data = data.subset(data.labels >= 0)
    paths = list(data.paths)[: args.limit]
    labels = np.asarray(data.labels)[: len(paths)]
    analyzers = {d: Analyzer(detector=d, threads=1) for d in DETECTORS}
    mesh = analyzers[DETECTORS[0]].mesh
    classes = analyzers[DETECTORS[0]].classes
    to_label = [classes.index(c) if c in classes else -1 for c in data.classes]
    per = {d: {"photos_with_face": 0, "faces": 0, "pred": [], "seconds": 0.0} for d in DETECTORS}
    lm_px, lm_rel, lm_max, lm2_px, lm2_rel, agree, pdiff, au_d, pspi_d = [], [], [], [], [], [], [], [], []
    same_count, unreadable = 0, 0
    au_names = None
    for path in paths:
        try:
            rgb = read_image(path)
        except InputError:
            unreadable += 1
            for d in DETECTORS:
                per[d]["pred"].append(-1)
            continue
        faces = {}
        for d, an in analyzers.items():
            t = time.perf_counter()
            res = an.analyze_rgb(rgb)
            per[d]["seconds"] += time.perf_counter() - t
            f = faces[d] = res.faces
            per[d]["photos_with_face"] += bool(len(f))
            per[d]["faces"] += len(f)
            per[d]["pred"].append(int(np.argmax(f.expressions[largest_face(res)])) if len(f) else -1)
        a, b = faces[DETECTORS[0]], faces[DETECTORS[1]]
        au_names = au_names or a.au_names
        if len(a) != len(b) or not len(a):
            continue
        same_count += 1
        pairs = match(a.boxes, b.boxes)
        if not pairs:
            continue
        ia, ib = map(list, zip(*pairs, strict=True))
        la, lb = a.landmarks[ia][..., :2], b.landmarks[ib][..., :2]
        height = np.maximum(a.boxes[ia, 3] - a.boxes[ia, 1], 1.0)
        d = np.linalg.norm(la - lb, axis=-1)  # (F, 478)
        lm_px += d.mean(1).tolist()
        lm_rel += (100 * d.mean(1) / height).tolist()
        lm_max += d.max(1).tolist()
        ra, _ = mesh(rgb, *rois_from_landmarks(a.landmarks[ia]))
        rb, _ = mesh(rgb, *rois_from_landmarks(b.landmarks[ib]))
        d2 = np.linalg.norm(ra[..., :2] - rb[..., :2], axis=-1)
        lm2_px += d2.mean(1).tolist()
        lm2_rel += (100 * d2.mean(1) / height).tolist()
        agree += (a.expressions[ia].argmax(1) == b.expressions[ib].argmax(1)).tolist()
        pdiff += np.abs(a.expressions[ia] - b.expressions[ib]).max(1).tolist()
        au_d.append(np.abs(a.aus[ia] - b.aus[ib]))
        pspi_d += np.abs(a.pspi[ia] - b.pspi[ib]).tolist()
    au_d = np.concatenate(au_d) if au_d else np.zeros((0, 0))
    y = np.asarray([to_label[v] for v in labels])
    out = {"machine": machine(), "photos": str(args.photos), "n_photos": len(paths), "unreadable": unreadable,
           "detectors": {}, "same_face_count_photos": same_count, "matched_faces": len(lm_px)}
    for d in DETECTORS:
        pred = np.asarray(per[d]["pred"])
        keep = y >= 0
        onehot = np.eye(len(classes) + 1)[np.where(pred[keep] < 0, len(classes), pred[keep])]
        rep = classification_report(onehot, y[keep], (*classes, "(no face)"))
        out["detectors"][d] = {
            "photos_with_face": per[d]["photos_with_face"],
            "faces": per[d]["faces"],
            "accuracy": round(float(rep["accuracy"]), 4),
            "uar": round(float(rep["uar"]), 4),
            "ms_per_photo": round(1000 * per[d]["seconds"] / max(len(paths) - unreadable, 1), 1),
        }
    out["differences"] = {
        "landmarks_mean_px": stats(lm_px),
        "landmarks_mean_pct_of_box_height": stats(lm_rel),
        "landmarks_max_px": stats(lm_max),
        "after_one_landmark_roi_pass": {"landmarks_mean_px": stats(lm2_px),
                                        "landmarks_mean_pct_of_box_height": stats(lm2_rel)},
        "expression_label_agreement": round(float(np.mean(agree)), 4) if agree else None,
        "expression_max_probability_difference": stats(pdiff),
        "aus": {n: stats(au_d[:, k]) for k, n in enumerate(au_names or ())},
        "pspi": stats(pspi_d),
    }
    write_json(out, args.out)
    print(f"wrote {args.out}")
    for d, r in out["detectors"].items():
        print(f"{d}: {r}")
    diffs = out["differences"]
    print("landmarks mean px", diffs["landmarks_mean_px"], "after one ROI pass",
          diffs["after_one_landmark_roi_pass"]["landmarks_mean_px"])
    print("expression agreement", diffs["expression_label_agreement"], "PSPI", diffs["pspi"])
    worst = sorted(diffs["aus"].items(), key=lambda kv: -kv[1].get("p95", 0))[:5]
    print("largest AU differences (p95):", worst)


if __name__ == "__main__":
    main()
