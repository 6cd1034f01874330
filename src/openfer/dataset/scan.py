"""One pass over a data set's image files: what every image is (format, size, colour), its fingerprints
(bytes, pixels, perceptual hash) and cheap quality measures (brightness, contrast, blur), for all images.

Blur is the variance of the Laplacian (3x3 aperture, ``cv2.Laplacian``) of the grey image at its own
size: higher is sharper; it depends on resolution, so compare it within one data set. Brightness and
contrast are the mean and standard deviation of the grey levels (0-255).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..io.images import decode_image
from .hashing import phash, pixel_digest

log = logging.getLogger("openfer")
_MAGIC = ((b"\x89PNG", "PNG"), (b"\xff\xd8", "JPEG"), (b"GIF8", "GIF"), (b"BM", "BMP"),
          (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))
BLANK_STD = 2.0  # grey-level standard deviation below which an image is (nearly) uniform


def sniff_format(head: bytes) -> str:
    """Image format from a file's first bytes (``"other"`` when unknown)."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return "other"


@dataclass(frozen=True)
class ImageScan:
    """Per-image facts of ``N`` images; unreadable images have ``error`` set and NaN / empty values."""

    error: tuple[str, ...]  # "" for a readable image
    file_format: tuple[str, ...]  # PNG, JPEG, ... ("in label file" for pixels stored in a CSV)
    file_bytes: np.ndarray  # (N,) int64, -1 when not a file
    width: np.ndarray  # (N,) int64
    height: np.ndarray  # (N,) int64
    grey: np.ndarray  # (N,) bool: R == G == B everywhere
    byte_digest: tuple[str, ...]  # sha256 of the file ("" unreadable)
    pixel_digest: tuple[str, ...]
    phash: np.ndarray  # (N,) uint64
    brightness: np.ndarray  # (N,) float64, mean grey level
    contrast: np.ndarray  # (N,) float64, grey-level std
    blur: np.ndarray  # (N,) float64, variance of the Laplacian

    @property
    def ok(self) -> np.ndarray:
        return np.array([not e for e in self.error], dtype=bool)

    def __len__(self) -> int:
        return len(self.error)


def _measure(rgb: np.ndarray) -> tuple[bool, np.ndarray, float, float, float]:
    grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    g = rgb[..., 0] if grey else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    lap = cv2.Laplacian(g, cv2.CV_64F, ksize=3)
    return grey, g, float(g.mean()), float(g.std()), float(lap.var())


def scan_images(paths: Sequence[Path], images: np.ndarray | None = None,
                progress: Callable[[int, int], None] | None = None) -> ImageScan:
    """Scan image files (or ``images``, ``(N, H, W)`` uint8 pixels that came with the labels).

    An image that cannot be read is recorded with its one-line reason (and logged as a warning),
    never raised: a data set card reports its unreadable files.
    """
    n = len(paths)
    err, fmt, dig, pdig = [""] * n, [""] * n, [""] * n, [""] * n
    size = np.full(n, -1, np.int64)
    w, h = np.zeros(n, np.int64), np.zeros(n, np.int64)
    grey = np.zeros(n, bool)
    ph = np.zeros(n, np.uint64)
    bright, contrast, blur = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    for i, p in enumerate(paths):
        try:
            if images is not None:
                rgb = np.repeat(np.asarray(images[i])[:, :, None], 3, axis=2)
                fmt[i], dig[i] = "in label file", pixel_digest(images[i])
            else:
                try:
                    data = Path(p).read_bytes()
                except FileNotFoundError:
                    raise InputError(f"{p}: not found") from None
                except IsADirectoryError:
                    raise InputError(f"{p}: is a directory, not an image file") from None
                except OSError as e:
                    raise InputError(f"{p}: cannot be read ({e.strerror or e})") from None
                fmt[i], size[i], dig[i] = sniff_format(data[:16]), len(data), hashlib.sha256(data).hexdigest()
                rgb = decode_image(data, str(p))
            grey[i], g, bright[i], contrast[i], blur[i] = _measure(rgb)
            h[i], w[i] = g.shape
            pdig[i] = pixel_digest(rgb)
            ph[i] = phash(g)
        except InputError as e:
            err[i] = str(e)
            log.warning("%s", e)
        if progress is not None and (i + 1) % 500 == 0:
            progress(i + 1, n)
    return ImageScan(tuple(err), tuple(fmt), size, w, h, grey, tuple(dig), tuple(pdig), ph, bright, contrast, blur)
