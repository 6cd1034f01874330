"""Detection recall on small real faces.

The five-person fixture photo is scaled so that its faces are H pixels high (H in 20..60) and tiled
into a 3x3 mosaic (45 faces, real faces at realistic group-photo sizes); recall = faces found / 45,
where a face counts as found when a detection's box centre lies inside its (scaled) reference box;
"extra_detections" counts detections beyond one per found face (duplicates or false positives).
Reference boxes come from the full-resolution photo. Results go to benchmarks/results/detection_recall.json.

    python benchmarks/detection_recall.py [--heights 20 25 30 40 60] [--min-face 30]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from openfer.io.images import read_image
from openfer.io.tables import write_json
from openfer.pipeline import Analyzer

PHOTO = Path(__file__).resolve().parent.parent / "tests" / "assets" / "photos" / "multi_face.jpg"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--heights", type=float, nargs="+", default=[20, 25, 30, 40, 60])
    ap.add_argument("--min-face", type=float, nargs="+", default=[30.0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "detection_recall.json"))
    a = ap.parse_args()
    rgb = read_image(PHOTO)
    ref = Analyzer().analyze_rgb(rgb).faces
    if len(ref) != 5:
        raise SystemExit(f"expected 5 reference faces, found {len(ref)}")
    ref_h = float(np.median(ref.boxes[:, 3] - ref.boxes[:, 1]))
    out = {"photo": PHOTO.name, "reference_faces": 5, "mosaic": "3x3", "results": []}
    for mf in a.min_face:
        an = Analyzer(min_face=mf)
        for h in a.heights:
            s = h / ref_h
            small = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            sh, sw = small.shape[:2]
            mosaic = np.concatenate([np.concatenate([small] * 3, 1)] * 3, 0)
            truth = np.concatenate(
                [ref.boxes * s + [dx * sw, dy * sh, dx * sw, dy * sh] for dy in range(3) for dx in range(3)]
            )
            faces = an.analyze_rgb(mosaic).faces
            c = (faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2
            hit = np.array(
                [
                    ((c[:, 0] > b[0]) & (c[:, 0] < b[2]) & (c[:, 1] > b[1]) & (c[:, 1] < b[3])).any()
                    for b in truth
                ]
            )
            row = {
                "min_face": mf,
                "face_height_px": h,
                "image": f"{mosaic.shape[1]}x{mosaic.shape[0]}",
                "faces": len(truth),
                "found": int(hit.sum()),
                "recall": round(float(hit.mean()), 3),
                "detections": int(len(faces)),
                "extra_detections": int(len(faces) - hit.sum()),
            }
            out["results"].append(row)
            print(json.dumps(row))
    write_json(out, a.out)


if __name__ == "__main__":
    main()
