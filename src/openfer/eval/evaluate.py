"""Evaluate an expression model on a labelled data set, on face crops or through the full pipeline."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import InputError
from .datasets import LabeledImages, load_gray, read_csv_labels, read_ferplus, read_imagefolder
from .metrics import classification_report

log = logging.getLogger("openfer")
FORMATS = ("ferplus", "csv", "imagefolder")


def read_dataset(path: str | Path, fmt: str | None = None, split: str = "test") -> LabeledImages:
    """Read a data set in one of :data:`FORMATS` (guessed from the layout when ``fmt`` is None)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: not found")
    if fmt is None:
        if p.is_file() and p.suffix.lower() == ".csv":
            fmt = "csv"
        elif (p / "FER2013Test").is_dir() or (p / "label.csv").is_file():
            fmt = "ferplus"
        elif p.is_dir() and (p / "labels.csv").is_file():
            fmt, p = "csv", p / "labels.csv"
        else:
            fmt = "imagefolder"
    if fmt == "ferplus":
        return read_ferplus(p, split)
    if fmt == "csv":
        return read_csv_labels(p / "labels.csv" if p.is_dir() else p)
    if fmt == "imagefolder":
        return read_imagefolder(p)
    raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def evaluate_crops(data: LabeledImages, classifier) -> dict:  # noqa: ANN001
    """Images are face crops: resize to the model input and classify (no detection, no alignment)."""
    size = classifier.spec.size
    usable = data.subset(data.labels >= 0)
    probs = []
    for i in range(0, len(usable), 256):
        crops = np.stack([load_gray(p, size) for p in usable.paths[i : i + 256]])
        probs.append(classifier.predict_crops(crops))
    p = np.concatenate(probs) if probs else np.zeros((0, len(classifier.classes)))
    rep = classification_report(p, usable.labels, classifier.classes)
    rep["dropped_unlabeled"] = int(len(data) - len(usable))
    return rep


def evaluate_detect(data: LabeledImages, analyzer) -> dict:  # noqa: ANN001
    """Full pipeline on each photo; the largest face is scored. No face counts as an error."""
    usable = data.subset(data.labels >= 0)
    ncls = len(analyzer.classes)
    probs = np.zeros((len(usable), ncls))
    found = np.zeros(len(usable), bool)
    for i, path in enumerate(usable.paths):
        try:
            res = analyzer.analyze(path)
        except InputError as e:
            log.warning("%s", e)
            continue
        if len(res.faces):
            b = res.faces.boxes
            k = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
            probs[i] = res.faces.expressions[k]
            found[i] = True
    y = usable.labels
    rep = classification_report(probs[found], y[found], analyzer.classes)  # confusion: found faces
    # headline numbers count an image without a detected face as an error
    correct = (probs.argmax(1) == y) & found
    rep["n"] = int(len(y))
    rep["accuracy"] = float(correct.mean()) if len(y) else float("nan")
    present = [c for c in range(ncls) if (y == c).any()]
    rep["uar"] = float(np.mean([correct[y == c].mean() for c in present])) if present else float("nan")
    rep["face_found_rate"] = float(found.mean()) if len(found) else float("nan")
    rep["accuracy_on_found"] = float(correct[found].mean()) if found.any() else float("nan")
    rep["dropped_unlabeled"] = int(len(data) - len(usable))
    return rep
