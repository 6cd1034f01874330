"""Track ids on the fixture videos: frames, faces, distinct ids and id switches per clip, with the
shipped ``VideoAnalyzer()`` defaults. Writes ``docs/video_tracking.json`` and prints a Markdown table
(pasted into docs/video.md).

An id switch is counted for one-face clips: a change of the face's id between consecutive frames that
have a face (``openfer.video.id_switches``). Each clip here shows at most one person, so every id
beyond the first is a track that was lost and not recovered (or a false face).

    python scripts/video_tracking_report.py [--videos tests/assets/videos ../shared/fixtures/videos]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--videos",
        type=Path,
        nargs="+",
        default=[ROOT / "tests" / "assets" / "videos", ROOT.parent / "shared" / "fixtures" / "videos"],
    )
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "video_tracking.json")
    a = ap.parse_args()
    from openfer.video import VIDEO_EXTENSIONS, VideoAnalyzer, id_switches

    video = VideoAnalyzer()
    seen, rows = set(), []
    for folder in a.videos:
        for clip in sorted(p for p in folder.glob("*") if p.suffix.lower().lstrip(".") in VIDEO_EXTENSIONS):
            if clip.name in seen:
                continue
            seen.add(clip.name)
            frames = list(video.run(clip))
            ids = [f.track_ids for f in frames]
            with_face = sum(1 for i in ids if len(i))
            distinct = sorted({int(x) for i in ids for x in i})
            rows.append(
                {
                    "clip": clip.name,
                    "frames": len(frames),
                    "frames_with_a_face": with_face,
                    "max_faces_in_a_frame": max((len(i) for i in ids), default=0),
                    "distinct_ids": len(distinct),
                    "id_switches": id_switches(ids),
                }
            )
    a.json.write_text(json.dumps({"defaults": "VideoAnalyzer()", "clips": rows}, indent=1) + "\n")
    print("| clip | frames | frames with a face | most faces in a frame | distinct ids | id switches |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['clip']} | {r['frames']} | {r['frames_with_a_face']} | {r['max_faces_in_a_frame']} | "
            f"{r['distinct_ids']} | {r['id_switches']} |"
        )


if __name__ == "__main__":
    main()
