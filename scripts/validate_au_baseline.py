"""Effect of the per-person neutral AU baseline in video (``VideoOptions.au_baseline``) on real clips.

Each clip is analysed once with the default ``VideoAnalyzer`` (``au_baseline="neutral"``). The AUs
without the baseline are those of the same faces measured against the reference face
(``estimate_aus(landmarks)``): what ``au_baseline="none"`` gives, since the baseline changes no
landmark, track or expression (checked on the first clip by a second run with ``"none"``, equal up
to the float32 rounding of the stored landmarks).

Per clip and AU: the median intensity over all face rows (reference face / own baseline), then, over
the rows where the track's baseline is in use, the medians of the rows labelled neutral (the resting
face: should be ~0 with the baseline) and of the rows labelled happiness (a smile: AU6/AU12 should
stay). For comparison, "final baseline (offline)": every row of a track against the baseline the
track ends with, also the rows before it was known (what a two-pass analysis could do; the video
pipeline streams, so it cannot). Prints Markdown for docs/validation.md.

Usage: python scripts/validate_au_baseline.py [clips...]
(default: tests/assets/videos/*.mp4, *.mov and ../shared/fixtures/videos/WolfgangLanger_Pexels.mp4)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from openfer.components.au import AU_NAMES, estimate_aus
from openfer.video import VideoAnalyzer
from openfer.video.baseline import BASELINE_FRAMES, BASELINE_MIN_FRAMES, NEUTRAL_PROB

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CLIPS = (
    ROOT / "tests/assets/videos/single_face.mp4",
    ROOT / "tests/assets/videos/face_noface.mov",
    ROOT.parent / "shared/fixtures/videos/WolfgangLanger_Pexels.mp4",
)


def measure(video: VideoAnalyzer, clip: Path) -> dict:
    own, ref, used, labels, pn, lms, bss, tracks = [], [], [], [], [], [], [], []
    final: dict[int, np.ndarray] = {}  # each track's last baseline (before the tracker forgets it)
    run = video.run(clip)
    for f in run:
        if not len(f.faces):
            continue
        own.append(f.faces.aus)
        ref.append(estimate_aus(f.faces.landmarks, None, f.faces.blendshapes))
        used.append(f.au_baseline)
        labels += f.faces.labels
        pn.append(f.faces.expressions[:, f.faces.classes.index("neutral")])
        lms.append(f.faces.landmarks)
        bss.append(f.faces.blendshapes)
        tracks.append(f.track_ids)
        base, ready = run.checkpoint().au_baseline.neutral(f.track_ids)
        final.update({int(k): b for k, b, r in zip(f.track_ids, base, ready, strict=True) if r})
    if not own:
        return {"clip": clip.name, "rows": 0}
    own_a, ref_a, used_a = np.concatenate(own), np.concatenate(ref), np.concatenate(used)
    # for comparison, what an offline (two-pass) analysis could give: every row of a track against
    # the track's final baseline, also before it was known
    lm_a, tr_a = np.concatenate(lms), np.concatenate(tracks)
    bs_a = None if any(b is None for b in bss) else np.concatenate(bss)
    late = ref_a.copy()
    for k, b in final.items():
        m = tr_a == k
        late[m] = estimate_aus(lm_a[m], b, None if bs_a is None else bs_a[m])
    lab = np.array(labels)
    frames_in = int(np.argmax(used_a)) if used_a.any() else None
    return {
        "clip": clip.name,
        "rows": len(own_a),
        "confident_neutral": int((np.concatenate(pn) >= NEUTRAL_PROB).sum()),
        "first_row_with_baseline": frames_in,
        "rows_with_baseline": int(used_a.sum()),
        "own": own_a,
        "ref": ref_a,
        "late": late,
        "used": used_a,
        "labels": lab,
    }


def _row(name: str, a: np.ndarray, mask: np.ndarray) -> str:
    med = np.median(a[mask], 0) if mask.any() else np.full(len(AU_NAMES), np.nan)
    return f"| {name} ({int(mask.sum())}) | " + " | ".join(f"{v:.1f}" for v in med) + " |"


def table(m: dict) -> str:
    if m["rows"] == 0:
        return f"**{m['clip']}**: no faces.\n"
    used, lab = m["used"], m["labels"]
    everything = np.ones(m["rows"], bool)
    lines = [
        f"**{m['clip']}**: {m['rows']} face rows, {m['confident_neutral']} confidently neutral; the "
        f"baseline is in from row {m['first_row_with_baseline']} on ({m['rows_with_baseline']} rows).",
        "",
        "| median AU (rows) | " + " | ".join(AU_NAMES) + " |",
        "|---|" + "---:|" * len(AU_NAMES),
        _row("all rows, reference face", m["ref"], everything),
        _row("all rows, own baseline", m["own"], everything),
        _row("all rows, final baseline (offline)", m["late"], everything),
    ]
    for name, cls in (("resting", "neutral"), ("smiling", "happiness")):
        mask = used & (lab == cls)
        lines.append(_row(f"{name} rows with baseline, reference face", m["ref"], mask))
        lines.append(_row(f"{name} rows with baseline, own baseline", m["own"], mask))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", type=Path, default=list(DEFAULT_CLIPS))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    video = VideoAnalyzer()
    clips = [c for c in args.clips if c.exists()]
    # the baseline changes only the AUs: a run with "none" gives estimate_aus(landmarks) exactly
    plain = VideoAnalyzer(analyzer=video.analyzer, au_baseline="none")
    check = [f.faces.aus for f in plain.run(clips[0]) if len(f.faces)]
    out = []
    for clip in clips:
        m = measure(video, clip)
        if clip == clips[0]:
            # (up to the float32 rounding of the landmarks that Faces stores)
            np.testing.assert_allclose(np.concatenate(check), m["ref"], atol=1e-3)
        out.append(table(m))
    print(
        f"Baseline: p(neutral) >= {NEUTRAL_PROB}, {BASELINE_MIN_FRAMES} frames needed, the first "
        f"{BASELINE_FRAMES} kept; {time.perf_counter() - t0:.0f} s.\n"
    )
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
