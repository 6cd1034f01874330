"""A/B: the video preset's small-face search before and after ``AnalyzerOptions.search_detector``.

"before": the short-range detector's own search (halving tiles) as the periodic search, as up to
commit 94add28; "now": the short-range whole-frame pass plus the dense full-range search
(``Analyzer.search_faces``). Both in one process on one loaded ``Analyzer("video")``, the search
detector swapped between runs (``Analyzer.search``), ``--rounds`` alternating rounds after a warm-up.

Clips: ``single_face.mp4`` and ``WolfgangLanger_Pexels.mp4`` (640x360), the five-face pan of
``bench_video.five_face_clip`` (1000x667), and the first 150 frames of ``WolfgangLanger_Pexels.mp4``
upscaled to 1920x1080 (bicubic; written to a temporary file). Per clip and side: ms a frame, the
detection's share (``FrameResult.timings["detect"]``), faces a frame, tracks, and the frame-to-frame
change of each track's box (mean absolute edge change over the box height: mean and 99th percentile),
which shows whether boxes jump at the searches.

Usage: python benchmarks/ab_video_search.py [--rounds 4] [--pipeline] [--cores 1]
    [--out benchmarks/results/ab_video_search.json]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from bench_pipeline import machine
from bench_video import five_face_clip

from openfer.io.tables import write_json
from openfer.pipeline import Analyzer
from openfer.video import VideoAnalyzer

ROOT = Path(__file__).resolve().parent.parent
VIDEOS = ROOT / "tests" / "assets" / "videos"


def upscaled_clip(src: Path, path: Path, frames: int = 150, size: tuple[int, int] = (1920, 1080)) -> Path:
    cap = cv2.VideoCapture(str(src))
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    for _ in range(frames):
        ok, f = cap.read()
        if not ok:
            break
        out.write(cv2.resize(f, size, interpolation=cv2.INTER_CUBIC))
    out.release()
    cap.release()
    return path


def box_change(frames: list) -> tuple[float, float]:
    last: dict[int, np.ndarray] = {}
    change = []
    for f in frames:
        for tid, b in zip(f.track_ids.tolist(), np.asarray(f.faces.boxes, np.float64), strict=True):
            if tid in last:
                change.append(float(np.abs(b - last[tid]).mean() / max(b[3] - b[1], 1.0)))
            last[tid] = b
    return (round(float(np.mean(change)), 4), round(float(np.percentile(change, 99)), 4)) if change else (0.0, 0.0)


def run_clip(an: Analyzer, video: VideoAnalyzer, clip: Path, rounds: int) -> dict:
    full = an.search
    sides = {"before": an.detector, "now": full}
    ms: dict[str, list[float]] = {k: [] for k in sides}
    det: dict[str, list[float]] = {k: [] for k in sides}
    quality: dict[str, dict] = {}
    try:
        for r in range(rounds + 1):
            for name in (("now", "before") if r % 2 == 0 else ("before", "now")):
                an.search = sides[name]
                t = time.perf_counter()
                frames = list(video.run(clip))
                dt = time.perf_counter() - t
                if r == 0:  # warm-up: the outputs, untimed
                    mean, p99 = box_change(frames)
                    quality[name] = {
                        "faces_per_frame": round(sum(len(f.faces) for f in frames) / len(frames), 3),
                        "min_faces": min(len(f.faces) for f in frames),
                        "tracks": len({int(t) for f in frames for t in f.track_ids}),
                        "box_change_mean": mean,
                        "box_change_p99": p99,
                    }
                    continue
                ms[name].append(1000 * dt / len(frames))
                det[name].append(1000 * sum(f.result.timings.get("detect", 0.0) for f in frames) / len(frames))
    finally:
        an.search = full
    out = {
        k: {"ms_per_frame": round(float(np.median(ms[k])), 2), "detect_ms_per_frame": round(float(np.median(det[k])), 2),
            **quality[k]}
        for k in sides
    }
    out["fps_now_over_before"] = round(float(np.median(ms["before"]) / np.median(ms["now"])), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--pipeline", action="store_true", help="the pipelined iterator (default: one stage after the other)")
    ap.add_argument("--cores", type=int, default=1, help="1: pinned to one core, one thread per model and OpenCV")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ab_video_search.json"))
    a = ap.parse_args()
    if a.cores == 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        cv2.setNumThreads(1)
    an = Analyzer("video", threads=1)
    video = VideoAnalyzer(analyzer=an, pipeline=a.pipeline)
    res = {"suite": "ab_video_search", "machine": machine(),
           "settings": {"rounds": a.rounds, "pipeline": a.pipeline, "cores": a.cores}, "clips": {}}
    with tempfile.TemporaryDirectory() as tmp:
        clips = {
            "single_face.mp4 640x360": VIDEOS / "single_face.mp4",
            "WolfgangLanger_Pexels.mp4 640x360": VIDEOS / "WolfgangLanger_Pexels.mp4",
            "five-face pan 1000x667": five_face_clip(Path(tmp) / "five.mp4"),
            "WolfgangLanger_Pexels.mp4 1920x1080, 150 frames": upscaled_clip(
                VIDEOS / "WolfgangLanger_Pexels.mp4", Path(tmp) / "w1080.mp4"
            ),
        }
        for name, clip in clips.items():
            res["clips"][name] = row = run_clip(an, video, clip, a.rounds)
            print(name, row, flush=True)
    write_json(res, a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
