"""The speed cost of each output beyond the label, with 1 and 2 threads.

End-to-end ``Analyzer.analyze_rgb`` on the 640x360 one-face frame and the five-face photo with:

* ``label_only``: expression probabilities (and the open-set score, computed inside the expression
  model's graph when the model has the head), no blendshapes, no AUs, no explanations;
* ``blendshapes``: plus MediaPipe's 52 blendshapes;
* ``aus``: plus the 18 action units and PSPI (calibrated from the blendshapes and the mesh);
* ``aus_explain``: plus derived valence/arousal and the reason text (the default);
* ``saliency``: the occlusion-saliency overlay of ``--explain --annotate`` on top of the default
  (``openfer.explain.saliency.saliency_image``).

Each variant also reports the median of every stage timer (``FrameResult.timings``); ``stage_ms``
gives the blendshape and AU stages of the default directly, beside ``added_ms`` (differences of
the variants' totals, which carry the noise of two totals).

The four analysis variants take turns: ``--rounds`` rounds of ``repeats / rounds`` calls each, the
order reversed every other round, so that load which comes and goes falls on all of them alike (run
one after the other, two runs on the shared AMD machine disagreed by up to 27 ms on the differences).

Usage: python benchmarks/bench_outputs.py [--repeats 30] [--rounds 6] [--warmup 3] [--out benchmarks/results/outputs.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
from bench_pipeline import IMAGES, machine, timed, timing_stats

from openfer.explain.saliency import saliency_image
from openfer.io.images import read_image
from openfer.io.tables import write_json
from openfer.pipeline import Analyzer


def alternating(fns: dict, warmup: int, repeats: int, rounds: int) -> dict[str, dict]:
    """:func:`bench_pipeline.timed`'s statistics for each of ``fns``, their calls interleaved, and the
    median of each stage timer (``FrameResult.timings``: detect, landmarks, expression, blendshapes,
    aus, ...) as ``stages_median_ms``."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    ts: dict[str, list[float]] = {k: [] for k in fns}
    stages: dict[str, dict[str, list[float]]] = {k: {} for k in fns}
    per = max(repeats // rounds, 1)
    names = list(fns)
    for r in range(rounds):
        for k in names if r % 2 == 0 else names[::-1]:
            for _ in range(per):
                t = time.perf_counter()
                res = fns[k]()
                ts[k].append((time.perf_counter() - t) * 1000)
                for stage, sec in res.timings.items():
                    stages[k].setdefault(stage, []).append(sec * 1000)
    return {
        k: {**timing_stats(v), "stages_median_ms": {s: round(float(np.median(x)), 2) for s, x in stages[k].items()}}
        for k, v in ts.items()
    }


def bench(threads: int, warmup: int, repeats: int, rounds: int) -> dict:
    cv2.setNumThreads(threads)
    variants = {
        "label_only": Analyzer(threads=threads, aus=False, explain=False, blendshapes=False),
        "blendshapes": Analyzer(threads=threads, aus=False, explain=False),
        "aus": Analyzer(threads=threads, explain=False),
        "aus_explain": Analyzer(threads=threads),
    }
    out = {}
    for name, path in IMAGES.items():
        rgb = read_image(path)
        row = alternating({v: (lambda an=an: an.analyze_rgb(rgb)) for v, an in variants.items()},
                          warmup, repeats, rounds)
        an = variants["aus_explain"]
        faces = an.analyze_rgb(rgb).faces
        row["saliency"] = timed(lambda: saliency_image(an, rgb, faces), 1, max(repeats // 5, 3))
        row["faces"] = int(len(faces))
        row["open_set_head"] = an.expression.openset is not None
        base = row["label_only"]["median_ms"]
        row["added_ms"] = {
            "blendshapes": round(row["blendshapes"]["median_ms"] - base, 2),
            "aus": round(row["aus"]["median_ms"] - row["blendshapes"]["median_ms"], 2),
            "explain": round(row["aus_explain"]["median_ms"] - row["aus"]["median_ms"], 2),
            "saliency": row["saliency"]["median_ms"],
        }
        # the same costs from the stage timers of the default: less noisy than differences of totals
        # (explain and valence/arousal have no timer of their own: they are the rest of describe)
        st = row["aus_explain"]["stages_median_ms"]
        row["stage_ms"] = {"blendshapes": st.get("blendshapes"), "aus": st.get("aus")}
        out[name] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=6, help="alternating rounds of repeats/rounds calls per variant")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "outputs.json"))
    a = ap.parse_args()
    res = {
        "suite": "outputs",
        "machine": machine(),
        "settings": {"warmup": a.warmup, "repeats": a.repeats, "rounds": a.rounds, "order": "alternating",
                     "preset": "default"},
        "threads": {str(t): bench(t, a.warmup, a.repeats, a.rounds) for t in a.threads},
    }
    write_json(res, a.out)
    for t, r in res["threads"].items():
        for name, row in r.items():
            print(
                f"threads={t} {name}: label only {row['label_only']['median_ms']:.1f} ms, added {row['added_ms']}, "
                f"stage timers {row['stage_ms']}"
            )
    print(json.dumps({k: v for k, v in res.items() if k != "threads"}, indent=1))


if __name__ == "__main__":
    main()
