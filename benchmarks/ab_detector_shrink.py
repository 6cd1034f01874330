"""A/B of the short-range detector's whole-image resize: one INTER_AREA step (before 2026-12-04,
restored here as ``one_step``) against :func:`openfer.components.detector.shrink` (exact halvings,
then INTER_AREA), measured against a face-mesh keypoint reference.

    python benchmarks/ab_detector_shrink.py [--dev-every 1] [--out benchmarks/results/ab_detector_shrink.json]

Images: the fixture photos (``tests/assets/photos``, ``labeled/`` included), every 4th frame of the
fixture clips and of the five-face pan (``bench_video.five_face_clip``), and every ``--dev-every``-th (1: all 2,260)
photo of photos_dev enlarged 2.25x (INTER_CUBIC; its photos are 256 px, which the detector's 2x
shrink to 128 takes in one exact step either way, so as they are they would not test the change).
Reference: the default preset's face mesh on each image (eye centres from points 33/133 and
362/263, nose 4, mouth centre 13/14; the face height from the mesh's extent). No detector keypoint is
ground truth; this one is independent of the resize under test.

Per variant: reference faces the short-range detector finds (box IoU >= 0.3 with the mesh's box),
the keypoint error per face height (mean, p95), the ``fast`` preset's landmark error against the
reference's (mean of the 468 points, per face height) and its accuracy on the enlarged photos_dev
photos (their crowd labels; the largest face; none found: an error); between the variants: the largest keypoint and box
move per face height, and, through the ``fast`` preset end to end, the landmark move (mean and max
px), the expression label agreement and largest probability difference, and the largest AU
difference. Also the resize's own time on ``single_face.jpg`` (median of 300, one thread).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import openfer.components.detector as D
from openfer.core.boxes import iou_matrix
from openfer.eval.evaluate import read_dataset
from openfer.io.images import read_image
from openfer.io.tables import write_json
from openfer.pipeline import Analyzer, mesh_boxes, mesh_keypoints
from openfer.video import VideoReader

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tests" / "assets" / "photos"
VIDEOS = ROOT / "tests" / "assets" / "videos"
DEV = ROOT.parent / "shared" / "datasets" / "photos_dev"
shrink = D.shrink


def one_step(image: np.ndarray, width: int, height: int) -> np.ndarray:
    interp = cv2.INTER_AREA if image.shape[0] > height else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def images(dev_every: int, tmp: Path) -> list[tuple[str, np.ndarray, str | None]]:
    """``(name, rgb, label)``; the label (photos_dev's, ``None`` elsewhere) scores the fast preset's
    largest face."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_video import five_face_clip

    out = [(p.name, read_image(p), None) for p in sorted(PHOTOS.rglob("*.jpg"))]
    clips = [VIDEOS / "single_face.mp4", VIDEOS / "WolfgangLanger_Pexels.mp4", five_face_clip(tmp / "five.mp4")]
    for clip in clips:
        out += [(f"{clip.name}#{f.index}", f.rgb, None) for f in VideoReader(clip, every=4)]
    if DEV.is_dir() and dev_every > 0:
        data = read_dataset(str(DEV), "csv")
        for p, y in list(zip(data.paths, data.labels, strict=True))[::dev_every]:
            big = cv2.resize(read_image(p), None, fx=2.25, fy=2.25, interpolation=cv2.INTER_CUBIC)
            out.append((f"dev:{Path(p).name}", big, data.classes[y] if y >= 0 else None))
    return out


def stats(x) -> dict:
    x = np.asarray(x, np.float64)
    if x.size == 0:
        return {}
    return {"mean": round(float(x.mean()), 5), "p95": round(float(np.percentile(x, 95)), 5),
            "max": round(float(x.max()), 5), "n": int(x.size)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev-every", type=int, default=1, help="every N-th photos_dev photo (0: none)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ab_detector_shrink.json"))
    a = ap.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        imgs = images(a.dev_every, Path(tmp))
    ref_an, fast = Analyzer(threads=1), Analyzer("fast", threads=1)
    det = fast.detector
    err = {"one_step": [], "shrink": []}
    found = {"one_step": 0, "shrink": 0}
    n_ref, kp_move, box_move, lm_mean, lm_max, agree, pdiff, au_diff = 0, [], [], [], [], [], [], []
    changed_input = 0
    mesh_err = {"one_step": [], "shrink": []}
    hits = {"one_step": [], "shrink": []}
    for _name, rgb, label in imgs:
        ref = ref_an.analyze_rgb(rgb).faces
        rb = mesh_boxes(ref.landmarks)
        rk = mesh_keypoints(ref.landmarks)[:, :4]
        rh = rb[:, 3] - rb[:, 1]
        n_ref += len(ref)
        dets = {}
        for v, fn in (("one_step", one_step), ("shrink", shrink)):
            D.shrink = fn
            dets[v] = det(rgb)
            res = fast.analyze_rgb(rgb).faces
            dets[v + "_faces"] = res
            if label is not None:  # the largest face's label, none found: an error
                big = np.argmax((res.boxes[:, 2] - res.boxes[:, 0]) * (res.boxes[:, 3] - res.boxes[:, 1])) if len(res) else -1
                hits[v].append(big >= 0 and fast.classes[int(np.argmax(res.expressions[big]))] == label)
            if len(res) and len(ref):
                iou = iou_matrix(rb, mesh_boxes(res.landmarks))
                for i in range(len(ref)):
                    j = int(np.argmax(iou[i]))
                    if iou[i, j] >= 0.5:
                        d = np.linalg.norm(res.landmarks[j, :468, :2] - ref.landmarks[i, :468, :2], axis=-1)
                        mesh_err[v].append(d.mean() / rh[i])
        D.shrink = shrink
        h, w = rgb.shape[:2]
        nw, nh, _, _ = D.letterbox_geometry(h, w, det.input_size)
        changed_input += int(not np.array_equal(one_step(rgb, nw, nh), shrink(rgb, nw, nh)))
        for v in err:
            d = dets[v]
            if len(d) == 0 or len(ref) == 0:
                continue
            iou = iou_matrix(rb, d.boxes)
            for i in range(len(ref)):
                j = int(np.argmax(iou[i]))
                if iou[i, j] >= 0.3:
                    found[v] += 1
                    err[v].append(np.linalg.norm(d.keypoints[j, :4] - rk[i], axis=-1).mean() / rh[i])
        o, s = dets["one_step"], dets["shrink"]
        if len(o) and len(o) == len(s):
            iou = iou_matrix(o.boxes, s.boxes)
            for i in range(len(o)):
                j = int(np.argmax(iou[i]))
                side = o.boxes[i, 3] - o.boxes[i, 1]
                kp_move.append(np.linalg.norm(o.keypoints[i] - s.keypoints[j], axis=-1).max() / side)
                box_move.append(np.abs(o.boxes[i] - s.boxes[j]).max() / side)
        fo, fs = dets["one_step_faces"], dets["shrink_faces"]
        if len(fo) and len(fo) == len(fs):
            d = np.linalg.norm(fo.landmarks[:, :, :2] - fs.landmarks[:, :, :2], axis=-1)
            lm_mean.append(d.mean())
            lm_max.append(d.max())
            agree += list(fo.expressions.argmax(1) == fs.expressions.argmax(1))
            pdiff.append(np.abs(fo.expressions - fs.expressions).max())
            au_diff.append(np.abs(fo.aus - fs.aus).max())
    rgb = read_image(PHOTOS / "single_face.jpg")
    nw, nh, _, _ = D.letterbox_geometry(*rgb.shape[:2], det.input_size)
    timing = {}
    for v, fn in (("one_step", one_step), ("shrink", shrink)):
        ts = []
        for _ in range(300):
            t = time.perf_counter()
            fn(rgb, nw, nh)
            ts.append((time.perf_counter() - t) * 1000)
        timing[v] = round(float(np.median(ts)), 3)
    res = {
        "suite": "ab_detector_shrink",
        "images": len(imgs),
        "images_whose_detector_input_changes": changed_input,
        "reference_faces": n_ref,
        "found": found,
        "keypoint_error_per_face_height": {v: stats(e) for v, e in err.items()},
        "fast_preset_landmark_error_per_face_height": {v: stats(e) for v, e in mesh_err.items()},
        "fast_preset_dev_accuracy": {v: {"accuracy": round(float(np.mean(h)), 4), "photos": len(h)} if h else None
                                     for v, h in hits.items()},
        "between_variants": {
            "detector_keypoint_move_per_face_height": stats(kp_move),
            "detector_box_move_per_face_height": stats(box_move),
            "fast_preset_landmark_move_px_mean": stats(lm_mean),
            "fast_preset_landmark_move_px_max": stats(lm_max),
            "fast_preset_expression_label_agreement": round(float(np.mean(agree)), 4) if agree else None,
            "fast_preset_probability_diff_max": stats(pdiff),
            "fast_preset_au_diff_max": stats(au_diff),
        },
        "resize_ms_single_face_jpg": timing,
    }
    write_json(res, a.out)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
