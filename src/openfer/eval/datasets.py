"""Readers for labelled expression data sets.

Each reader returns a :class:`LabeledImages`: paths, integer labels over a class list, and optional
soft targets (vote distributions). Images are decoded lazily by :func:`load_gray` so a reader is cheap;
:func:`load_gray_stack` decodes everything into one ``(N, H, W)`` uint8 array for training/evaluation.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from .labels import FERPLUS_CLASSES, FERPLUS_VOTE_COLUMNS, majority_labels, soft_targets

FERPLUS_SPLITS = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}


@dataclass(frozen=True)
class LabeledImages:
    """A labelled image set: ``paths[i]`` has class ``classes[labels[i]]`` (-1: no usable label)."""

    paths: tuple[Path, ...]
    labels: np.ndarray  # (N,) int64
    classes: tuple[str, ...]
    soft: np.ndarray | None = None  # (N, C) float32 target distributions, when the format has votes
    name: str = ""

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.paths):
            raise InputError(f"{self.name}: {len(self.paths)} paths but {len(self.labels)} labels")
        if self.soft is not None and self.soft.shape != (len(self.paths), len(self.classes)):
            raise InputError(f"{self.name}: soft targets shape {self.soft.shape} does not match")

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, mask: np.ndarray) -> LabeledImages:
        idx = np.flatnonzero(mask)
        return LabeledImages(
            paths=tuple(self.paths[i] for i in idx),
            labels=self.labels[idx],
            classes=self.classes,
            soft=None if self.soft is None else self.soft[idx],
            name=self.name,
        )


def read_ferplus(root: str | Path, split: str, protocol: str = "majority") -> LabeledImages:
    """FER+ folder layout: ``root/FER2013{Train,Valid,Test}/label.csv`` with 10 vote columns.

    ``protocol="majority"`` keeps only images with a majority label (the standard test protocol:
    25,045 / 3,191 / 3,137 images); ``protocol="all"`` keeps every image that has at least one
    counted expression vote (label -1 where there is no majority), for soft-label training.
    """
    root = Path(root)
    if split not in FERPLUS_SPLITS:
        raise InputError(f"FER+ split must be one of {sorted(FERPLUS_SPLITS)}, got {split!r}")
    folder = root / FERPLUS_SPLITS[split]
    if not folder.is_dir() and (root / "label.csv").is_file():
        folder = root  # the split folder itself was given
    label_csv = folder / "label.csv"
    if not label_csv.is_file():
        raise InputError(f"{label_csv}: not found (expected the FER+ layout FER2013Train/label.csv)")
    paths: list[Path] = []
    votes: list[list[float]] = []
    with open(label_csv, newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            if not row:
                continue
            if len(row) != 2 + len(FERPLUS_VOTE_COLUMNS):
                raise InputError(f"{label_csv}:{lineno}: expected 12 columns, got {len(row)}")
            try:
                votes.append([float(x) for x in row[2:]])
            except ValueError:
                raise InputError(f"{label_csv}:{lineno}: vote counts must be numbers") from None
            paths.append(folder / row[0].strip())
    v = np.asarray(votes, dtype=np.float32).reshape(-1, len(FERPLUS_VOTE_COLUMNS))
    labels = majority_labels(v)
    soft = soft_targets(v)
    data = LabeledImages(tuple(paths), labels, FERPLUS_CLASSES, soft, name=f"ferplus/{split}")
    if protocol == "majority":
        return data.subset(labels >= 0)
    if protocol == "all":
        return data.subset(soft.sum(axis=1) > 0)
    raise InputError(f"FER+ protocol must be 'majority' or 'all', got {protocol!r}")


def load_gray(path: Path, size: int | None = None) -> np.ndarray:
    """Decode one image as grayscale uint8, optionally resized to ``size x size``."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise InputError(f"{path}: cannot be read as an image")
    if size is not None and img.shape != (size, size):
        interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
    return img


def load_gray_stack(data: LabeledImages, size: int = 48) -> np.ndarray:
    """Decode all images of ``data`` into one ``(N, size, size)`` uint8 array."""
    out = np.empty((len(data), size, size), dtype=np.uint8)
    for i, p in enumerate(data.paths):
        out[i] = load_gray(p, size)
    return out


def _labels_from_names(names: list[str], classes: tuple[str, ...] | None, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    from .labels import canonical_label

    canon = [canonical_label(n) for n in names]
    if classes is None:
        present = sorted(set(canon))
        # keep the FER+ order for FER+ classes, then any other label sets alphabetically
        classes = tuple([c for c in FERPLUS_CLASSES if c in present] + [c for c in present if c not in FERPLUS_CLASSES])
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(c, -1) for c in canon], dtype=np.int64), classes


def read_csv_labels(csv_path: str | Path, classes: tuple[str, ...] | None = FERPLUS_CLASSES) -> LabeledImages:
    """CSV with ``path,label`` columns (header required; paths relative to the CSV's folder).

    Labels are matched case-insensitively with synonyms; a label outside ``classes`` gets -1 and is
    reported by the caller (see :func:`label_coverage`). ``classes=None`` takes the label set found.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(f"{csv_path}: not found")
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise InputError(f"{csv_path}: no rows")
    cols = {c.strip().lower(): c for c in rows[0]}
    pcol = cols.get("path") or cols.get("image") or cols.get("file")
    lcol = cols.get("label") or cols.get("emotion") or cols.get("expression")
    if pcol is None or lcol is None:
        raise InputError(f"{csv_path}: needs 'path' and 'label' columns, found {list(rows[0])}")
    paths = tuple(csv_path.parent / r[pcol].strip() for r in rows)
    labels, classes = _labels_from_names([r[lcol] for r in rows], classes, str(csv_path))
    return LabeledImages(paths, labels, classes, None, name=str(csv_path))


def read_imagefolder(root: str | Path, classes: tuple[str, ...] | None = FERPLUS_CLASSES) -> LabeledImages:
    """One sub-folder per class (``root/happy/*.jpg`` …); folder names matched like CSV labels."""
    from ..io.images import IMAGE_EXTENSIONS

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    paths, names = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(sub.iterdir()):
            if f.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS:
                paths.append(f)
                names.append(sub.name)
    if not paths:
        raise InputError(f"{root}: no class folders with images")
    labels, classes = _labels_from_names(names, classes, str(root))
    return LabeledImages(tuple(paths), labels, classes, None, name=str(root))
