"""Pipeline speed: detection, landmarks, expression and end-to-end, with 1 and 2 threads.

Usage: python benchmarks/bench_pipeline.py [--repeats 50] [--warmup 5] [--out benchmarks/results/pipeline.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime

import openfer
from openfer.components.au import estimate_aus
from openfer.components.landmarks import rois_from_detections
from openfer.components.pose import estimate_pose
from openfer.io.images import read_image
from openfer.io.tables import write_json
from openfer.pipeline import Analyzer

ASSETS = Path(__file__).resolve().parent.parent / "tests" / "assets" / "photos"
IMAGES = {
    "frame_640x360_1face": ASSETS / "frame_640x360.jpg",
    "photo_1000x667_5faces": ASSETS / "multi_face.jpg",
}


def timing_stats(ts: list[float]) -> dict:
    """Median, IQR and throughput of call times in ms (the suites' common result row)."""
    q25, med, q75 = np.percentile(ts, [25, 50, 75])
    return {
        "median_ms": round(float(med), 3),
        "iqr_ms": [round(float(q25), 3), round(float(q75), 3)],
        "per_second": round(1000.0 / float(med), 1),
        "repeats": len(ts),
    }


def timed(fn, warmup: int, repeats: int) -> dict:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    return timing_stats(ts)


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        "opencv": cv2.__version__,
        "openfer": openfer.__version__,
        "commit": commit,
    }


def bench(threads: int, warmup: int, repeats: int) -> dict:
    cv2.setNumThreads(threads)
    an = Analyzer(threads=threads)
    out = {}
    for name, path in IMAGES.items():
        rgb = read_image(path)
        det = an.detector(rgb)
        c, s, a = rois_from_detections(det.boxes, det.keypoints)
        lm, _ = an.mesh(rgb, c, s, a)
        crops = an.expression.crops(rgb, lm)
        bs = an.blendshapes(lm)
        out[name] = {
            "faces": int(len(an.analyze_rgb(rgb).faces)),
            "detect": timed(lambda: an.detector(rgb), warmup, repeats),
            "landmarks": timed(lambda: an.mesh(rgb, c, s, a), warmup, repeats),
            "head_pose": timed(lambda: estimate_pose(lm), warmup, repeats),
            "blendshapes": timed(lambda: an.blendshapes(lm), warmup, repeats),
            "action_units": timed(lambda: estimate_aus(lm, None, bs), warmup, repeats),
            "expression": timed(lambda: an.expression(rgb, lm), warmup, repeats),
            "expression_model_only": timed(lambda: an.expression.predict_crops(crops), warmup, repeats),
            "end_to_end": timed(lambda: an.analyze_rgb(rgb), warmup, repeats),
        }
    # openfer 0.1's mesh in the same run: Face Mesh v1 + Iris, no blendshapes (the cost of v2 + blendshapes)
    v1 = Analyzer(threads=threads, mesh="facemesh", blendshapes=False)
    for name, path in IMAGES.items():
        rgb = read_image(path)
        out[name]["v1_mesh_end_to_end"] = timed(lambda: v1.analyze_rgb(rgb), warmup, repeats)
    # the "fast" preset: one detector pass (faces > ~15% of the image side), no mirror averaging
    fast = Analyzer("fast", threads=threads)
    for name, path in IMAGES.items():
        rgb = read_image(path)
        out[name]["fast_preset_faces"] = int(len(fast.analyze_rgb(rgb).faces))
        out[name]["fast_preset_end_to_end"] = timed(lambda: fast.analyze_rgb(rgb), warmup, repeats)
    # classification throughput on a batch of aligned crops (faces/s), as in a batch job
    rgb = read_image(IMAGES["photo_1000x667_5faces"])
    r = an.analyze_rgb(rgb)
    crops = an.expression.crops(rgb, r.faces.landmarks)
    batch = np.concatenate([crops] * (256 // max(len(crops), 1) + 1))[:256]
    t = timed(lambda: an.expression.predict_crops(batch), max(warmup // 2, 1), max(repeats // 5, 5))
    out["classify_batch256"] = {
        **t,
        "faces_per_second": round(256 * 1000 / t["median_ms"], 1),
        "flip_tta": an.expression.flip,
    }
    an_fast = Analyzer(threads=threads, flip=False)
    t = timed(lambda: an_fast.expression.predict_crops(batch), max(warmup // 2, 1), max(repeats // 5, 5))
    out["classify_batch256_noflip"] = {**t, "faces_per_second": round(256 * 1000 / t["median_ms"], 1)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "pipeline.json"))
    a = ap.parse_args()
    res = {
        "suite": "pipeline",
        "machine": machine(),
        "settings": {"warmup": a.warmup, "repeats": a.repeats, "preset": "default"},
        "threads": {},
    }
    for t in a.threads:
        res["threads"][str(t)] = bench(t, a.warmup, a.repeats)
        e2e = res["threads"][str(t)]["frame_640x360_1face"]["end_to_end"]
        print(
            f"threads={t}: 640x360 one face end-to-end {e2e['median_ms']:.1f} ms ({e2e['per_second']:.1f} images/s)"
        )
    write_json(res, a.out)
    print(json.dumps({k: v for k, v in res.items() if k != "threads"}, indent=1))


if __name__ == "__main__":
    main()
