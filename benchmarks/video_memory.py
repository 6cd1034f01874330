"""Memory over a long video: peak and sampled RSS while ``openfer video`` processes a long clip made by
concatenating tests/assets/videos/single_face.mp4 (72 frames, 640x360, 30 fps) with itself.

The clip is written to a temporary file (``--minutes`` long, default 60), then analysed end to end by
``analyze_video_to_dir`` (streamed timeline, checkpoints, summary) at ``--fps`` analysed frames per
second (every frame is still decoded). RSS is sampled after every 1000th analysed frame; the result
shows whether memory grows with the video's length.

Usage: python benchmarks/video_memory.py [--minutes 60] [--fps 5] [--out benchmarks/results/video_memory.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import cv2
from bench_pipeline import machine

from openfer.io.tables import write_json
from openfer.video import VideoAnalyzer, VideoReader, analyze_video_to_dir

CLIP = Path(__file__).resolve().parent.parent / "tests" / "assets" / "videos" / "single_face.mp4"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def long_clip(path: Path, minutes: float) -> int:
    frames = [f.rgb[:, :, ::-1].copy() for f in VideoReader(CLIP)]
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    n = int(minutes * 60 * 30)
    for i in range(n):
        out.write(frames[i % len(frames)])
    out.release()
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "video_memory.json"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "long.mp4"
        t0 = time.perf_counter()
        frames = long_clip(clip, a.minutes)
        write_s = time.perf_counter() - t0
        video = VideoAnalyzer(fps=a.fps)
        samples: list[tuple[int, float]] = [(0, rss_mib())]

        def on_frame(done: int, expected: int | None) -> None:
            if done % 1000 == 0:
                samples.append((done, round(rss_mib(), 1)))

        t0 = time.perf_counter()
        res = analyze_video_to_dir(video, clip, Path(tmp) / "out", on_frame=on_frame)
        run_s = time.perf_counter() - t0
        samples.append((res.frames, round(rss_mib(), 1)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    after_first = [m for d, m in samples if d >= 1000]
    report = {
        "suite": "video_memory",
        "machine": machine(),
        "settings": {"minutes": a.minutes, "analysed_fps": a.fps, "source_frames": frames, "clip": CLIP.name},
        "analysed_frames": res.frames,
        "rows": res.rows,
        "write_seconds": round(write_s, 1),
        "analyse_seconds": round(run_s, 1),
        "peak_rss_mib": round(peak, 1),
        "rss_samples_mib": samples,
        "growth_after_first_1000_frames_mib": round(max(after_first) - min(after_first), 1)
        if after_first
        else None,
    }
    write_json(report, a.out)
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
