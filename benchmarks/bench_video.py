"""Video speed: end-to-end frames/s on tests/assets/videos/single_face.mp4 (72 frames, 640x360, one
face) and on a five-face clip made from tests/assets/photos/multi_face.jpg (a slow pan over the real
photo, 60 frames at 1000x667, written to a temporary file; the motion is synthetic, the faces are real).

One timed run = the whole clip through ``list(VideoAnalyzer(...).run(clip))``: decode + detection
(a whole-frame pass every ``detect_every`` frames, the full small-face search every ``scan_every``)
+ face-mesh tracking + head pose + expression + AUs + valence/arousal + reasons + track ids.

Configurations:

* ``default``: ``VideoAnalyzer()`` as shipped (the ``video`` preset: Face Mesh v2, blendshapes, no mirror averaging,
  1 ONNX Runtime thread per model; the face mesh of frame t+1 runs beside the expression of frame t);
* ``no_pipeline``: the same, one stage after the other, with ``--threads`` intra-op threads;
* ``image_preset``: the image default (iris, mirror-averaged expression), pipelined;
* ``detect_every_frame``: ``detect_every=1`` (what tracking saves);
* ``v1_mesh``: openfer 0.1's defaults in the same run (Face Mesh v1 without iris, no blendshapes):
  the cost of Face Mesh v2's 478 points and the 52 blendshapes;
* ``decode_only``: decoding alone.

Usage: python benchmarks/bench_video.py [--repeats 7] [--warmup 1] [--out benchmarks/results/video.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
from bench_pipeline import machine, timed

from openfer.io.tables import write_json
from openfer.pipeline import Analyzer
from openfer.video import VideoAnalyzer, VideoReader

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "tests" / "assets" / "videos" / "single_face.mp4"
GROUP = ROOT / "tests" / "assets" / "photos" / "multi_face.jpg"


def five_face_clip(path: Path, frames: int = 60) -> Path:
    """A slow pan over the five-face photo: 30 fps, the photo shifted by up to 40 px."""
    img = cv2.imread(str(GROUP))
    h, w = img.shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    for i in range(frames):
        dx = 40.0 * i / max(frames - 1, 1)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, 1.0)
        m[0, 2] += dx - 20
        out.write(cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT))
    out.release()
    return path


def _with_fps(t: dict, frames: int) -> dict:
    return {**t, "frames": frames, "frames_per_second": round(frames * 1000.0 / t["median_ms"], 1)}


def bench_clip(clip: Path, threads: int, warmup: int, repeats: int) -> dict:
    cv2.setNumThreads(1)
    n = sum(1 for _ in VideoReader(clip))
    out = {"decode_only": _with_fps(timed(lambda: sum(1 for _ in VideoReader(clip)), warmup, repeats), n)}
    video_an = Analyzer("video")
    configs = {
        "default": VideoAnalyzer(analyzer=video_an),
        "no_pipeline": VideoAnalyzer(analyzer=Analyzer("video", threads=threads), pipeline=False),
        "image_preset": VideoAnalyzer(analyzer=Analyzer("default", threads=1)),
        "detect_every_frame": VideoAnalyzer(analyzer=video_an, detect_every=1),
        # openfer 0.1's video defaults in the same run: Face Mesh v1 without iris, no blendshapes
        "v1_mesh": VideoAnalyzer(analyzer=Analyzer("video", mesh="facemesh", blendshapes=False)),
    }
    for name, video in configs.items():
        frames = list(video.run(clip))
        t = timed(lambda video=video: list(video.run(clip)), warmup, repeats)
        out[name] = {
            **_with_fps(t, n),
            "faces_per_frame": round(sum(len(f.faces) for f in frames) / max(len(frames), 1), 2),
            "threads_per_model": video.analyzer.options.threads,
            "pipeline": video.options.pipeline,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads of the no_pipeline run")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "video.json"))
    a = ap.parse_args()
    res = {
        "suite": "video",
        "machine": machine(),
        "settings": {
            "warmup": a.warmup,
            "repeats": a.repeats,
            "unit": "one timed run = the whole clip",
        },
        "clips": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        clips = {"single_face.mp4": CLIP, "five_faces_pan.mp4": five_face_clip(Path(tmp) / "five.mp4")}
        for name, clip in clips.items():
            r = res["clips"][name] = bench_clip(clip, a.threads, a.warmup, a.repeats)
            print(
                f"{name}: default {r['default']['frames_per_second']:.1f} frames/s "
                f"({r['default']['faces_per_frame']} faces/frame); no pipeline "
                f"{r['no_pipeline']['frames_per_second']:.1f}; image preset "
                f"{r['image_preset']['frames_per_second']:.1f}; detect every frame "
                f"{r['detect_every_frame']['frames_per_second']:.1f}; v1 mesh "
                f"{r['v1_mesh']['frames_per_second']:.1f}; decode only "
                f"{r['decode_only']['frames_per_second']:.0f}",
                flush=True,
            )
    write_json(res, a.out)
    print(json.dumps({k: v for k, v in res.items() if k != "clips"}, indent=1))


if __name__ == "__main__":
    main()
