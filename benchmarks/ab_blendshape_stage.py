"""A/B: the blendshape model in video's tracking stage (as shipped) against the describe stage (the
placement before), in one process, alternating, outputs compared bit for bit.

    python benchmarks/ab_blendshape_stage.py tests/assets/videos/single_face.mp4

The old placement is restored by a wrapper that drops ``Located.blendshapes`` after the tracking stage,
so ``Analyzer.describe`` runs the model as it used to. 6 rounds, the first a warm-up; prints the median
frames/s of each and their ratio, and whether every frame's blendshapes, expressions and AUs are equal.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np

from openfer.video import VideoAnalyzer
from openfer.video import analyzer as va_mod


def main(clip: str) -> None:
    orig = va_mod.VideoRun._follow

    def old_follow(self, rgb, index, t):  # noqa: ANN001, ANN202
        loc, ids = orig(self, rgb, index, t)
        tm = dict(loc.timings)
        tm.pop("blendshapes", None)
        return dataclasses.replace(loc, blendshapes=None, timings=tm), ids

    va = VideoAnalyzer()
    fps: dict[str, list[float]] = {"new": [], "old": []}
    outs = {}
    try:
        for r in range(6):
            for k in ["new", "old"] if r % 2 == 0 else ["old", "new"]:
                va_mod.VideoRun._follow = orig if k == "new" else old_follow
                t = time.perf_counter()
                o = list(va.run(clip))
                el = time.perf_counter() - t
                if r:
                    fps[k].append(len(o) / el)
                outs[k] = o
    finally:
        va_mod.VideoRun._follow = orig
    med = {k: round(float(np.median(v)), 1) for k, v in fps.items()}
    print(med, "ratio", round(med["new"] / med["old"], 3))
    same = all(
        all(np.array_equal(getattr(x.result.faces, n), getattr(y.result.faces, n)) for n in ("blendshapes", "expressions", "aus"))
        for x, y in zip(outs["new"], outs["old"], strict=True)
    )
    print("same outputs", same)


if __name__ == "__main__":
    main(sys.argv[1])
