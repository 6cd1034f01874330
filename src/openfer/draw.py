"""Annotated images: boxes, face mesh, expression label and probability bars."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import InputError
from .io.tables import atomic_open
from .types import Faces

# One colour per FER+ class (RGB), used for boxes and bars.
CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "neutral": (200, 200, 200),
    "happiness": (255, 200, 0),
    "surprise": (0, 200, 255),
    "sadness": (60, 110, 255),
    "anger": (255, 40, 40),
    "disgust": (120, 200, 60),
    "fear": (180, 90, 255),
    "contempt": (255, 120, 200),
}


def _color(label: str) -> tuple[int, int, int]:
    return CLASS_COLORS.get(label, (0, 255, 0))


DRAW_MODES = ("auto", "box", "points", "mesh")


def annotate(
    image_rgb: np.ndarray,
    faces: Faces,
    mesh: str = "auto",
    bars: bool | None = None,
    index: bool = True,
) -> np.ndarray:
    """Draw ``faces`` on a copy of ``image_rgb``: a box and a label (``"<i> <label> <p>"``, ``i`` the
    face's index in the outputs) per face. ``mesh``: ``"box"`` (nothing more; ``"none"`` is the same),
    ``"points"`` (the landmarks), ``"mesh"`` (the landmarks' triangulation), ``"auto"`` (points for a
    single face, box only for several). ``bars``: the probability panel beside each face (``None``:
    for a single face only); a panel is placed right, left or below its face where it covers no other
    face, and left out where it would."""
    if mesh not in (*DRAW_MODES, "none"):
        raise InputError(f"draw: expected one of {', '.join(DRAW_MODES)}, got {mesh!r}")
    many = len(faces) > 1
    if mesh == "auto":
        mesh = "box" if many else "points"
    if bars is None:
        bars = not many
    out = np.ascontiguousarray(image_rgb.copy())
    h, w = out.shape[:2]
    scale = max(min(h, w) / 720.0, 0.4)
    th = max(int(round(2 * scale)), 1)
    boxes = [tuple(int(round(v)) for v in f.box) for f in faces]
    for i, f in enumerate(faces):
        col = _color(f.label)
        x1, y1, x2, y2 = boxes[i]
        cv2.rectangle(out, (x1, y1), (x2, y2), col, th, cv2.LINE_AA)
        r = max(int(round((x2 - x1) / 150)), 1)
        if mesh == "points":
            for x, y in f.landmarks[:, :2].astype(int):
                cv2.circle(out, (int(x), int(y)), r, (0, 255, 120), -1, cv2.LINE_AA)
        elif mesh == "mesh":
            _triangulation(out, f.landmarks[:468, :2])
        text = (f"{i} " if index else "") + f"{f.label} {f.expression.max():.2f}"
        fs = 0.6 * scale * max((x2 - x1) / 160, 0.6)
        (tw, tht), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, th)
        ty = max(y1 - 4, tht + 4)
        cv2.rectangle(out, (x1, ty - tht - 4), (x1 + tw + 4, ty + base - 2), col, -1)
        cv2.putText(out, text, (x1 + 2, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0), th, cv2.LINE_AA)
        if bars:
            others = boxes[:i] + boxes[i + 1 :]
            row = max(int((y2 - y1) / len(faces.classes)), 6)
            _bars(out, f.expression, faces.classes, boxes[i], row, scale, others)
    return out


def _triangulation(img: np.ndarray, pts: np.ndarray) -> None:
    """The Delaunay triangulation of the landmarks, as thin half-transparent lines."""
    h, w = img.shape[:2]
    x0, y0 = np.floor(np.clip(pts.min(0), 0, None)).astype(int)
    x1, y1 = np.ceil(np.minimum(pts.max(0) + 1, (w, h))).astype(int)
    if x1 <= x0 or y1 <= y0:
        return
    roi = img[y0:y1, x0:x1]
    lines = roi.copy()
    sub = cv2.Subdiv2D((0, 0, w, h))
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    for x, y in pts[inside]:
        sub.insert((float(x), float(y)))
    for t in sub.getTriangleList().reshape(-1, 3, 2):
        if ((t >= 0) & (t[:, :1] < w) & (t[:, 1:] < h)).all():
            cv2.polylines(lines, [(t - (x0, y0)).astype(np.int32)], True, (0, 255, 120), 1, cv2.LINE_AA)
    cv2.addWeighted(lines, 0.45, roi, 0.55, 0, dst=roi)


def _bars(
    img: np.ndarray,
    probs: np.ndarray,
    classes: tuple[str, ...],
    box: tuple[int, int, int, int],
    row: int,
    scale: float,
    others: list[tuple[int, int, int, int]] = (),  # type: ignore[assignment]
) -> bool:
    """A compact table beside the face (class name, then a bar of its probability): right of the
    box, else left, else below, wherever it stays in the image and covers no other face's box.
    Returns whether it was drawn."""
    h, w = img.shape[:2]
    row = int(np.clip(row, 9, 16 * scale + 4))
    fs = row / 32.0
    text_w = cv2.getTextSize("happiness", cv2.FONT_HERSHEY_SIMPLEX, fs, 1)[0][0] + 4
    bar_w = int(3 * text_w / 4)
    width, height = text_w + bar_w + 2, row * len(classes)
    x1, y1, x2, y2 = box
    for x, y in ((x2 + 4, y1), (x1 - 4 - width, y1), (x1, y2 + 4)):
        y = int(np.clip(y, 0, max(h - height, 0)))
        if x < 0 or x + width > w or y + height > h:
            continue
        if any(x < ox2 and ox1 < x + width and y < oy2 and oy1 < y + height for ox1, oy1, ox2, oy2 in others):
            continue
        break
    else:
        return False
    panel = img[y : y + height, x : x + width]
    panel[:] = (panel * 0.35).astype(img.dtype)  # darken, keep some context
    for k, (c, p) in enumerate(zip(classes, probs, strict=True)):
        yy = y + k * row
        cv2.putText(
            img, c[:9], (x + 2, yy + row - 3), cv2.FONT_HERSHEY_SIMPLEX, fs, (255, 255, 255), 1, cv2.LINE_AA
        )
        cv2.rectangle(
            img, (x + text_w, yy + 2), (x + text_w + int(bar_w * float(p)), yy + row - 2), _color(c), -1
        )
    return True


def save_image(image_rgb: np.ndarray, path: str | Path) -> Path:
    """Write an RGB image atomically (format from the suffix; .jpg when none)."""
    path = Path(path)
    suffix = path.suffix.lower() or ".jpg"
    ok, buf = cv2.imencode(suffix, cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError(f"{path}: cannot encode an image with suffix {suffix!r}")
    with atomic_open(path, "wb") as fh:
        fh.write(buf.tobytes())
    return path
