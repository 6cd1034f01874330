"""Video speed: end-to-end frames/s on tests/assets/videos/single_face.mp4 (72 frames, 640x360, one face),
with ONNX Runtime threads = 1 and = 2.

One timed run = decode every frame + detect (every ``detect_every`` frames) / follow with the mesh +
iris + head pose + expression + track ids, i.e. ``list(VideoAnalyzer(...).run(clip))``. Also timed:
decoding alone, and detection on every frame (``detect_every=1``) to show what tracking saves.

Usage: python benchmarks/bench_video.py [--repeats 10] [--warmup 1] [--out benchmarks/results/video.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
from bench_pipeline import machine, timed

from openfer.io.tables import write_json
from openfer.pipeline import Analyzer
from openfer.video import VideoAnalyzer, VideoOptions, VideoReader

CLIP = Path(__file__).resolve().parent.parent / "tests" / "assets" / "videos" / "single_face.mp4"


def _with_fps(t: dict, frames: int) -> dict:
    return {**t, "frames": frames, "frames_per_second": round(frames * 1000.0 / t["median_ms"], 1)}


def bench(threads: int, warmup: int, repeats: int) -> dict:
    cv2.setNumThreads(threads)
    an = Analyzer(threads=threads)
    n = sum(1 for _ in VideoReader(CLIP))
    out = {"decode_only": _with_fps(timed(lambda: sum(1 for _ in VideoReader(CLIP)), warmup, repeats), n)}
    for name, detect_every in (
        ("end_to_end", VideoOptions().detect_every),
        ("end_to_end_detect_every_frame", 1),
    ):
        video = VideoAnalyzer(analyzer=an, detect_every=detect_every)
        faces = sum(len(f.faces) for f in video.run(CLIP))
        t = timed(lambda video=video: list(video.run(CLIP)), warmup, repeats)
        out[name] = {**_with_fps(t, n), "detect_every": detect_every, "faces": faces}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "video.json"))
    a = ap.parse_args()
    res = {
        "suite": "video",
        "machine": machine(),
        "settings": {
            "warmup": a.warmup,
            "repeats": a.repeats,
            "preset": "default",
            "clip": CLIP.name,
            "unit": "one timed run = the whole clip",
        },
        "threads": {},
    }
    for t in a.threads:
        r = res["threads"][str(t)] = bench(t, a.warmup, a.repeats)
        e = r["end_to_end"]
        print(
            f"threads={t}: {CLIP.name} end-to-end {e['frames_per_second']:.1f} frames/s "
            f"(detect every frame: {r['end_to_end_detect_every_frame']['frames_per_second']:.1f}; "
            f"decode only: {r['decode_only']['frames_per_second']:.0f})"
        )
    write_json(res, a.out)
    print(json.dumps({k: v for k, v in res.items() if k != "threads"}, indent=1))


if __name__ == "__main__":
    main()
