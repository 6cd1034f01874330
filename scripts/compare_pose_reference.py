"""What a different head-pose reference face would change: the shipped ``mean_face`` against candidates.

    python scripts/build_mean_face.py --mesh facemesh_v2 --out /tmp/mean_face_v2.npy
    python scripts/compare_pose_reference.py --candidate v2=/tmp/mean_face_v2.npy [--n 400]

On the first ``--n`` neutral-labelled photos of photos_dev (the default pipeline, largest face), head
pose (yaw, pitch, roll) against the shipped reference and against each candidate: the medians, the
mean and largest absolute differences, in degrees; and how far each candidate's 468 points lie from the
shipped ones (inter-ocular units). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from openfer.components.pose import reference_face
from openfer.core.pose import RIGID_INDEX, head_pose
from openfer.eval.subgroups import largest_face
from openfer.io.images import read_image
from openfer.pipeline import Analyzer

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidate", nargs="+", required=True, metavar="LABEL=NPY")
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "datasets" / "photos_dev")
    ap.add_argument("--n", type=int, default=400)
    a = ap.parse_args()
    shipped = reference_face()[:468]
    cands = {k: np.load(v)[:468] for k, v in (c.split("=", 1) for c in a.candidate)}
    with open(a.photos / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"] == "neutral"][: a.n]
    an = Analyzer(threads=1, aus=False, explain=False, blendshapes=False)
    poses: dict[str, list] = {"shipped": [], **{k: [] for k in cands}}
    for r in rows:
        res = an.analyze_rgb(read_image(a.photos / r["path"]))
        i = largest_face(res)
        if i < 0:
            continue
        lm = res.faces.landmarks[i : i + 1, :468]
        poses["shipped"].append(head_pose(lm, shipped, RIGID_INDEX)[0])
        for k, ref in cands.items():
            poses[k].append(head_pose(lm, ref, RIGID_INDEX)[0])
    base = np.array(poses["shipped"])
    out = {"photos": str(a.photos), "neutral_faces": len(base),
           "shipped_median_yaw_pitch_roll": np.median(base, 0).round(2).tolist(), "candidates": {}}
    for k, ref in cands.items():
        p = np.array(poses[k])
        d = np.abs(p - base)
        out["candidates"][k] = {
            "reference_point_distance": {"mean": round(float(np.linalg.norm(ref - shipped, axis=1).mean()), 4),
                                         "max": round(float(np.linalg.norm(ref - shipped, axis=1).max()), 4)},
            "median_yaw_pitch_roll": np.median(p, 0).round(2).tolist(),
            "mean_abs_difference_deg": d.mean(0).round(2).tolist(),
            "max_abs_difference_deg": d.max(0).round(2).tolist(),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
