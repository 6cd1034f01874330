"""Face Mesh v2 against v1 + Iris on the same ROIs (photos_dev, first 150 photos): landmark agreement
(mean px at 192), presence scores, time per call (one thread) and the blendshape differences that
each mesh's points give. Writes docs/models/facemesh_v2.json.

    python scripts/compare_facemesh.py [--photos ../shared/datasets/photos_dev] [--n 150]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from openfer.components.blendshapes import BLENDSHAPE_NAMES, Blendshapes
from openfer.components.landmarks import FaceMesh, mesh_postprocess, mesh_preprocess, rois_from_detections
from openfer.io.images import read_image
from openfer.pipeline import Analyzer

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "datasets" / "photos_dev")
    p.add_argument("--n", type=int, default=150)
    args = p.parse_args()
    an = Analyzer(threads=1, mesh="facemesh")  # its detector, v1 mesh and iris
    v2 = FaceMesh(threads=1).model
    bs = Blendshapes(threads=1)
    files = sorted((args.photos / "images").glob("*.jpg"))[: args.n]
    diff, s1_all, s2_all, bs_diff = [], [], [], []
    t1 = ti = t2 = 0.0
    for f in files:
        rgb = read_image(f)
        det = an.detector(rgb)
        if len(det.boxes) == 0:
            continue
        c, s, a = rois_from_detections(det.boxes, det.keypoints)
        crops, inv = mesh_preprocess(rgb, c, s, a)
        t = time.perf_counter()
        o1 = an.mesh.model.run_batched(crops)
        t1 += time.perf_counter() - t
        lm1, s1 = mesh_postprocess(o1[an.mesh._lm_idx], o1[an.mesh._flag_idx], inv, s)
        t = time.perf_counter()
        iris = an.mesh._iris(rgb, lm1)
        ti += time.perf_counter() - t
        lm1 = np.concatenate([lm1, iris], 1)
        t = time.perf_counter()
        o2 = v2.run_batched(crops)
        t2 += time.perf_counter() - t
        raw = next(o for o in o2 if o.size == len(crops) * 478 * 3)
        flag = next(o for o in o2 if o.size == len(crops))
        lm2, s2 = mesh_postprocess(raw, flag, inv, s)
        ok = s1 >= 0.9
        d = np.linalg.norm(lm1[:, :, :2] - lm2[:, :, :2], axis=-1) * (192 / s[:, None])
        diff += list(d[ok].mean(1))
        s1_all += list(s1)
        s2_all += list(s2)
        if ok.any():
            bs_diff.append(np.abs(bs(lm1[ok]) - bs(lm2[ok])))
    s1a, s2a, bsd = np.array(s1_all), np.array(s2_all), np.concatenate(bs_diff)
    n = len(s1a)
    out = {
        "photos": len(files), "faces": n, "v1_accepted": int((s1a >= 0.9).sum()),
        "landmark_diff_px_at_192": {"mean": float(np.mean(diff)), "median": float(np.median(diff)),
                                    "p95": float(np.percentile(diff, 95))},
        "v2_presence_on_v1_accepted": {"min": float(s2a[s1a >= 0.9].min()),
                                       "p5": float(np.percentile(s2a[s1a >= 0.9], 5))},
        "v2_presence_on_v1_rejected": sorted(float(x) for x in s2a[s1a < 0.9]),
        "ms_per_face_one_thread": {"v1": t1 / n * 1e3, "iris": ti / n * 1e3, "v2": t2 / n * 1e3},
        "blendshape_abs_diff_mean": dict(zip(BLENDSHAPE_NAMES, bsd.mean(0).round(4).tolist(), strict=True)),
    }
    (ROOT / "docs" / "models" / "facemesh_v2.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "blendshape_abs_diff_mean"}, indent=1))


if __name__ == "__main__":
    main()
