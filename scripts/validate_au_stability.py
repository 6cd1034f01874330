"""AU noise on a static face in video: how much the AU intensities jitter when nothing moves.

There is no truly static real clip, so one is built from real frames: each source image (the first
frame of tests/assets/videos/single_face.mp4, ../shared/fixtures/photos/single_face.jpg and four
head photos of ../shared/datasets/photos_dev, the first two labelled neutral and the first two
labelled happiness, distinct people) is repeated for 3 s at 30 fps, every frame shifted by its own
random sub-pixel translation (uniform in [-0.5, 0.5] px in x and y, ``cv2.warpAffine``, bilinear),
re-encoded as JPEG (quality 90) and the clip written as MPEG-4 (mp4v): the noise of a real camera
and codec on a face that does not move. The default ``VideoAnalyzer`` (face mesh tracking, per-person
AU baseline) runs over each clip.

Per AU, over the last 2 s (frames 30-89: after the baseline has settled, since it keeps the first 30
neutral frames, and after the smoothing has warmed up), of the one face's track:

* ``std``: the temporal standard deviation of the intensity as written to the timeline (0-5, so
  clipped at 0: an AU resting at 0 hides half its noise), raw and after ``Timeline.smooth("ema")``;
* ``p95 |d|``: the 95th percentile of the absolute change from one frame to the next, raw and EMA;
* ``std unclipped``: the std of the signed intensity before clipping (the AU's signed evidence
  change over its calibrated ``k1``, :class:`openfer.core.au.AuCalibration`), raw and EMA (``openfer.core.filters.ema``, the same filter),
  which shows the noise of AUs that rest at 0 too.

The tables give the mean over the clips; ``docs/validation_au_stability.json`` has each clip's.

Usage: python scripts/validate_au_stability.py [--seed 0] [--json docs/validation_au_stability.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from openfer.components.au import calibration, estimate_evidence
from openfer.core.au import AU_NAMES, source_key
from openfer.core.filters import DEFAULT_TAU, ema
from openfer.video import Timeline, VideoAnalyzer, VideoReader

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
FPS, SECONDS, SKIP = 30.0, 3.0, 30  # clip rate and length; frames left out at the start
JITTER = 0.5  # px, largest shift
JPEG_QUALITY = 90


def sources() -> list[tuple[str, np.ndarray]]:
    """(name, RGB image) of the real frames the static clips are made of."""
    out = [
        ("single_face.mp4 frame 0", next(iter(VideoReader(ROOT / "tests/assets/videos/single_face.mp4"))).rgb)
    ]
    photo = SHARED / "fixtures/photos/single_face.jpg"
    out.append(("fixtures single_face.jpg", cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)))
    dev = SHARED / "datasets/photos_dev"
    with open(dev / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for label in ("neutral", "happiness"):
        people: list[str] = []
        for r in rows:
            person = Path(r["path"]).stem.rsplit("_", 1)[0]
            if r["label"] == label and person not in people:
                people.append(person)
                img = cv2.cvtColor(cv2.imread(str(dev / r["path"])), cv2.COLOR_BGR2RGB)
                out.append((f"photos_dev {Path(r['path']).name} ({label})", img))
            if len(people) == 2:
                break
    return out


def static_clip(rgb: np.ndarray, path: Path, rng: np.random.Generator) -> Path:
    """``rgb`` repeated for SECONDS at FPS, each frame shifted by its own sub-pixel translation and
    JPEG re-encoded, written as mp4v."""
    h, w = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2  # even sizes for the codec
    bgr = cv2.cvtColor(rgb[:h, :w], cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    if not writer.isOpened():
        raise SystemExit("this OpenCV build cannot write mp4v videos")
    try:
        for _ in range(int(SECONDS * FPS)):
            dx, dy = rng.uniform(-JITTER, JITTER, 2)
            m = np.float32([[1, 0, dx], [0, 1, dy]])
            moved = cv2.warpAffine(bgr, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
            ok, jpg = cv2.imencode(".jpg", moved, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            writer.write(cv2.imdecode(jpg, cv2.IMREAD_COLOR))
    finally:
        writer.release()
    return path


def noise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: temporal std and the 95th percentile of |frame-to-frame change|."""
    return x.std(0, ddof=1), np.percentile(np.abs(np.diff(x, axis=0)), 95, axis=0)


def unclipped(landmarks: np.ndarray, blendshapes: np.ndarray | None) -> np.ndarray:
    """``(T, len(AU_NAMES))`` signed intensities before clipping: each AU's signed change from the
    population neutral (smile-gated where the AU is) divided by its ``k1`` (the neutral p95, where
    the calibrated scale reads 1), so resting AUs show their noise on the same scale."""
    cal = calibration()
    ev = estimate_evidence(landmarks, blendshapes)
    use_bs = blendshapes is not None
    d = cal.changes(ev, cal.neutral, use_bs)
    return np.stack([d[a] / cal.knots[source_key(a, use_bs)][0] for a in AU_NAMES], 1)


def measure(video: VideoAnalyzer, clip: Path) -> dict | None:
    tl = Timeline.for_video(video)
    lms, bss, times = {}, {}, {}
    for f in video.run(clip):
        tl.add(f)
        for k, tid in enumerate(f.track_ids):
            lms.setdefault(int(tid), []).append(f.faces.landmarks[k])
            if f.faces.blendshapes is not None:
                bss.setdefault(int(tid), []).append(f.faces.blendshapes[k])
            times.setdefault(int(tid), []).append((f.frame_index, f.timestamp))
    if not len(tl):
        return None
    track = int(np.bincount(tl.tracks).argmax())
    sm = tl.smooth("ema")
    rows = (tl.tracks == track) & (tl.frames >= SKIP)
    frames_idx = np.array([i for i, _ in times[track]])
    t = np.array([s for _, s in times[track]])
    u = unclipped(np.stack(lms[track]), np.stack(bss[track]) if track in bss else None)
    keep = frames_idx >= SKIP
    u_raw, u_ema = u[keep], ema(u, t, DEFAULT_TAU)[keep]
    out = {
        "frames": int(rows.sum()),
        "faces_found": int((tl.tracks == track).sum()),
        "tracks": int(len(np.unique(tl.tracks))),
        "baseline_in_use": bool(tl.au_baseline[rows].all()),
        "label": max(set(tl.labels), key=tl.labels.count),
    }
    for name, (a, b) in {
        "raw": (tl.aus[rows], tl.pspi[rows]),
        "ema": (sm.aus[rows], sm.pspi[rows]),
    }.items():
        sd, d95 = noise(np.column_stack([a, b]))
        out[f"std_{name}"], out[f"p95_change_{name}"] = sd.tolist(), d95.tolist()
        out[f"mean_{name}"] = np.column_stack([a, b]).mean(0).tolist()
    out["std_unclipped_raw"] = noise(u_raw)[0].tolist()
    out["std_unclipped_ema"] = noise(u_ema)[0].tolist()
    out["p95_change_unclipped_raw"] = noise(u_raw)[1].tolist()
    return out


def markdown(results: dict) -> str:
    names = [*AU_NAMES, "PSPI"]
    clips = [r for r in results["clips"] if r["result"] is not None]

    def mean(key: str, j: int) -> float:
        vals = [c["result"][key][j] for c in clips if j < len(c["result"][key])]
        return float(np.mean(vals)) if vals else float("nan")

    lines = [
        "| AU | mean level | std raw | std EMA | p95 \\|d\\| raw | p95 \\|d\\| EMA | std unclipped raw | std unclipped EMA |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for j, n in enumerate(names):
        unc = (
            f"{mean('std_unclipped_raw', j):.3f} | {mean('std_unclipped_ema', j):.3f}"
            if j < len(AU_NAMES)
            else "- | -"
        )
        lines.append(
            f"| {n} | {mean('mean_raw', j):.2f} | {mean('std_raw', j):.3f} | {mean('std_ema', j):.3f} | "
            f"{mean('p95_change_raw', j):.3f} | {mean('p95_change_ema', j):.3f} | {unc} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=ROOT / "docs/validation_au_stability.json")
    args = ap.parse_args(argv)
    t0, cpu0 = time.perf_counter(), time.process_time()
    rng = np.random.default_rng(args.seed)
    video = VideoAnalyzer()
    clips = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, rgb) in enumerate(sources()):
            path = static_clip(rgb, Path(tmp) / f"static-{k}.mp4", rng)
            res = measure(video, path)
            clips.append({"source": name, "size": [int(rgb.shape[1]), int(rgb.shape[0])], "result": res})
            found = (
                "no face"
                if res is None
                else f"{res['frames']} frames, {res['label']}, baseline {res['baseline_in_use']}"
            )
            print(f"{name}: {found}")
    results = {
        "what": "AU noise on static clips (one real frame, sub-pixel jitter, JPEG + mp4v per frame)",
        "command": "python scripts/validate_au_stability.py",
        "seed": args.seed,
        "fps": FPS,
        "seconds": SECONDS,
        "frames_skipped": SKIP,
        "jitter_px": JITTER,
        "jpeg_quality": JPEG_QUALITY,
        "ema_tau": DEFAULT_TAU,
        "columns": [*AU_NAMES, "PSPI"],
        "clips": clips,
        "cpu_seconds": round(time.process_time() - cpu0, 1),
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))
    print(f"\n{results['cpu_seconds']} s CPU, {results['wall_seconds']} s; wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
