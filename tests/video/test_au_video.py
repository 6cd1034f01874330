"""The calibrated AUs on a real clip: a woman cries (0.2-6 s), then laughs (10-19 s)."""

import csv

import numpy as np
from video_assets import CRY_LAUGH

from openfer.cli import EXIT_OK, main


def test_crying_reads_as_crying_not_as_slight_sadness(tmp_path, capsys):
    assert main(["video", str(CRY_LAUGH), "--out", str(tmp_path)]) == EXIT_OK
    out = tmp_path / CRY_LAUGH.stem
    rows = list(csv.DictReader(open(out / "timeline.csv", newline="")))
    t = np.array([float(r["time"]) for r in rows])

    def mean(au, lo, hi):
        return float(np.mean([float(r[au]) for r, ti in zip(rows, t, strict=True) if lo <= ti <= hi]))

    cry, laugh = (0.2, 6.0), (10.0, 19.0)
    assert mean("AU1", *cry) > mean("AU1", *laugh)
    assert mean("AU4", *cry) > mean("AU4", *laugh) or mean("AU15", *cry) > mean("AU15", *laugh)
    assert mean("AU12", *laugh) > 2.0 and mean("AU12", *laugh) > mean("AU12", *cry)
    caption = (out / "captions.txt").read_text()
    assert "sadness" in caption and "slight sadness" not in caption
    assert "smile (AU6+AU12)" in caption
