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


def annotate(image_rgb: np.ndarray, faces: Faces, mesh: str = "points", bars: bool = True) -> np.ndarray:
    """Draw ``faces`` on a copy of ``image_rgb``. ``mesh``: "points" (all landmarks), "none"."""
    out = np.ascontiguousarray(image_rgb.copy())
    h, w = out.shape[:2]
    scale = max(min(h, w) / 720.0, 0.4)
    th = max(int(round(2 * scale)), 1)
    for f in faces:
        col = _color(f.label)
        x1, y1, x2, y2 = (int(round(v)) for v in f.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), col, th, cv2.LINE_AA)
        if mesh == "points":
            r = max(int(round((x2 - x1) / 150)), 1)
            for x, y in f.landmarks[:, :2].astype(int):
                cv2.circle(out, (int(x), int(y)), r, (0, 255, 120), -1, cv2.LINE_AA)
        text = f"{f.label} {f.expression.max():.2f}"
        fs = 0.6 * scale * max((x2 - x1) / 160, 0.6)
        (tw, tht), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, th)
        ty = max(y1 - 4, tht + 4)
        cv2.rectangle(out, (x1, ty - tht - 4), (x1 + tw + 4, ty + base - 2), col, -1)
        cv2.putText(out, text, (x1 + 2, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0), th, cv2.LINE_AA)
        if bars:
            _bars(
                out,
                f.expression,
                faces.classes,
                x2 + 4,
                y1,
                max(int((y2 - y1) / len(faces.classes)), 6),
                scale,
            )
    return out


def _bars(
    img: np.ndarray, probs: np.ndarray, classes: tuple[str, ...], x: int, y: int, row: int, scale: float
) -> None:
    """A compact table beside the face: class name, then a bar of its probability."""
    h, w = img.shape[:2]
    row = int(np.clip(row, 9, 16 * scale + 4))
    fs = row / 32.0
    text_w = cv2.getTextSize("happiness", cv2.FONT_HERSHEY_SIMPLEX, fs, 1)[0][0] + 4
    bar_w = int(3 * text_w / 4)
    width = text_w + bar_w + 2
    if x + width > w:  # no room on the right: draw inside the image's right edge
        x = max(w - width - 2, 0)
    y = int(np.clip(y, 0, max(h - row * len(classes), 0)))
    panel = img[y : y + row * len(classes), x : x + width]
    panel[:] = (panel * 0.35).astype(img.dtype)  # darken, keep some context
    for k, (c, p) in enumerate(zip(classes, probs, strict=True)):
        yy = y + k * row
        cv2.putText(
            img, c[:9], (x + 2, yy + row - 3), cv2.FONT_HERSHEY_SIMPLEX, fs, (255, 255, 255), 1, cv2.LINE_AA
        )
        cv2.rectangle(
            img, (x + text_w, yy + 2), (x + text_w + int(bar_w * float(p)), yy + row - 2), _color(c), -1
        )


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
