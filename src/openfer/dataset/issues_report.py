"""Writing an :class:`~openfer.dataset.issues.IssuesReport`: ``issues.csv`` (ranked), ``issues.json`` and
``contact_sheet.png`` (the top issues: image, given -> suggested label, score), each file atomically."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..io.tables import atomic_open, check_folders, write_csv, write_json
from .issues import IssuesReport
from .report import json_ready

COLUMNS = ("rank", "path", "split", "given", "suggested", "score", "self_confidence", "normalized_margin",
           "p_suggested", "route", "consensus", "votes", "vote_share_given", "vote_share_suggested",
           "majority_share", "entropy_bits", "annotator_consensus", "annotations", "annotator_share")
OUTPUT_NAMES = ("issues.csv", "issues.json", "contact_sheet.png", "annotators.csv")
ANNOTATOR_COLUMNS = ("annotator", "images", "shared_with_others", "agreement_with_others", "agreement_low_95",
                     "agreement_high_95", "kappa_with_others", "agreement_with_model")
TILE = 120


def check_outputs(out: Path, data_root: Path, inputs: set[Path]) -> None:
    """Refuse an output folder that is (inside) the data set, or whose files would replace an input."""
    o, r = Path(out).resolve(), Path(data_root).resolve()
    if o == r or r in o.parents:
        raise InputError(f"{out}: the issues folder must be outside the data set {data_root} "
                         "(its contact sheet would become an image of the data set)")
    check_folders(Path(out) / "issues.json")
    for name in OUTPUT_NAMES:
        if (o / name).resolve() in inputs:
            raise InputError(f"{out / name}: is an input of the data set; choose another --out")


def _tile(path: Path, head: list[str], pixels: np.ndarray | None = None) -> np.ndarray:
    if pixels is not None:  # the image's pixels from the label file (fer2013.csv): its path is not a file
        g = np.asarray(pixels, np.uint8)
        img = np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2) if g.ndim == 2 else g[..., ::-1])
    else:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        img = np.zeros((8, 8, 3), np.uint8)
    h, w = img.shape[:2]
    s = TILE / max(h, w)
    img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))),
                     interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)
    canvas = np.full((TILE, TILE, 3), 255, np.uint8)
    y0, x0 = (TILE - img.shape[0]) // 2, (TILE - img.shape[1]) // 2
    canvas[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]] = img
    top = np.full((13 * len(head) + 3, TILE, 3), 255, np.uint8)
    for k, line in enumerate(head):
        cv2.putText(top, line, (2, 11 + 13 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.34, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([top, canvas, np.full((6, TILE, 3), 255, np.uint8)])


def contact_sheet(rows: list[dict], root: Path, path: Path, n: int = 40, columns: int = 8,
                  pixels: dict[str, np.ndarray] | None = None) -> Path | None:
    """The first ``n`` rows (most likely wrong first) as labelled tiles, ``columns`` per row; ``pixels``: the
    images whose pixels the label file holds, by path (:meth:`DataSource.pixels`)."""
    pick = rows[:n]
    if not pick:
        return None
    tiles = []
    for r in pick:
        p = Path(r["path"]) if Path(r["path"]).is_absolute() else Path(root) / r["path"]
        head = [f"#{r['rank']} {r['split']} score {r['score']:.2g}", f"{r['given'][:9]}>{r['suggested'][:9]}"]
        if r.get("votes"):
            head.append(f"votes {float(r['vote_share_given']):.1f} / {float(r['vote_share_suggested']):.1f}")
        tiles.append(_tile(p, head, (pixels or {}).get(str(p.resolve()))))
    h = max(t.shape[0] for t in tiles)
    tiles = [np.vstack([t, np.full((h - t.shape[0], TILE, 3), 255, np.uint8)]) for t in tiles]
    gap = np.full((h, 6, 3), 255, np.uint8)
    lines = []
    for i in range(0, len(tiles), columns):
        row = tiles[i : i + columns]
        row += [np.full((h, TILE, 3), 255, np.uint8)] * (columns - len(row))
        lines.append(np.hstack([x for t in row for x in (t, gap)]))
    sheet = np.vstack(lines)
    if (sheet[..., 0] == sheet[..., 1]).all() and (sheet[..., 1] == sheet[..., 2]).all():
        sheet = sheet[..., 0]  # grey images: a grey PNG, a third of the size
    ok, buf = cv2.imencode(".png", sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    with atomic_open(path, "wb") as fh:
        fh.write(buf.tobytes())
    return Path(path)


def write_issues(report: IssuesReport, out: Path, data_root: Path, *, max_rows: int = 0,
                 sheet: int = 40, pixels: dict[str, np.ndarray] | None = None) -> list[Path]:
    """Write ``issues.csv`` (the first ``max_rows`` rows; 0: all), ``issues.json`` and the contact sheet of the
    first ``sheet`` issues (0: none) into ``out``; returns the paths written."""
    out = Path(out)
    written = []
    doc = dict(report.doc)
    rows = report.rows[:max_rows] if max_rows else report.rows
    doc["csv_rows"] = {"written": len(rows), "flagged": len(report.rows)}
    s = contact_sheet(report.rows, data_root, out / "contact_sheet.png", sheet, pixels=pixels) if sheet else None
    doc["contact_sheet"] = s.name if s else None
    written += [s] if s else []
    cols = [c for c in COLUMNS if any(c in r for r in rows)] or list(COLUMNS[:10])
    written.append(write_csv(rows, out / "issues.csv", columns=cols))
    if report.annotators is not None:
        table = [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in report.annotators]
        written.append(write_csv(table, out / "annotators.csv", columns=list(ANNOTATOR_COLUMNS)))
    written.append(write_json(json_ready(doc), out / "issues.json"))
    return written
