"""Evaluate an expression model on a labelled data set, on face crops or through the full pipeline."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .datasets import (
    LabeledImages,
    load_gray_stack,
    read_affectnet_csv,
    read_csv_labels,
    read_fer2013_csv,
    read_ferplus,
    read_imagefolder,
    read_rafdb,
    relabel,
)
from .labels import FERPLUS_CLASSES
from .metrics import classification_report

log = logging.getLogger("openfer")
FORMATS = ("ferplus", "fer2013", "imagefolder", "csv", "rafdb", "affectnet")


def _csv_header(path: Path) -> set[str]:
    with open(path, newline="") as fh:
        head = next(csv.reader(fh), [])
    return {h.strip().lower() for h in head}


def _guess_format(p: Path) -> tuple[str, Path]:
    if p.is_file():
        if p.suffix.lower() != ".csv":
            raise InputError(f"{p}: a data set file must be a .csv (or give a folder)")
        head = _csv_header(p)
        if "pixels" in head:
            return "fer2013", p
        if "subdirectory_filepath" in head:
            return "affectnet", p
        return "csv", p
    if (p / "FER2013Test").is_dir() or (p / "label.csv").is_file():
        return "ferplus", p
    if (p / "EmoLabel" / "list_patition_label.txt").is_file() or (p / "basic" / "EmoLabel").is_dir():
        return "rafdb", p
    if (p / "fer2013.csv").is_file():
        return "fer2013", p / "fer2013.csv"
    if (p / "labels.csv").is_file():
        return "csv", p / "labels.csv"
    return "imagefolder", p


def read_dataset(path: str | Path, fmt: str | None = None, split: str = "test",
                 classes: tuple[str, ...] | None = FERPLUS_CLASSES,
                 votes: str | Path | None = None) -> LabeledImages:
    """Read a data set in one of :data:`FORMATS` (guessed from the layout when ``fmt`` is None).

    ``split`` applies to ferplus, fer2013 and rafdb; ``classes`` to the free-label formats csv and
    imagefolder (None: the label set found, so :func:`~openfer.eval.datasets.label_coverage` can name
    classes a model lacks); ``votes`` is the FER+ ``fer2013new.csv`` for fer2013.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: not found")
    if fmt is None:
        fmt, p = _guess_format(p)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if votes is not None and fmt != "fer2013":
        raise InputError(f"votes (fer2013new.csv) only apply to the fer2013 format, not {fmt!r}")
    if fmt == "ferplus":
        return read_ferplus(p, split)
    if fmt == "fer2013":
        return read_fer2013_csv(p / "fer2013.csv" if p.is_dir() else p, split, votes)
    if fmt == "rafdb":
        return read_rafdb(p, split)
    if fmt == "affectnet":
        return read_affectnet_csv(p)
    if fmt == "csv":
        return read_csv_labels(p / "labels.csv" if p.is_dir() else p, classes)
    return read_imagefolder(p, classes)


@dataclass(frozen=True)
class Evaluation:
    """A report plus the arrays behind it (for plots): ``probs[i]`` scored a sample of ``labels[i]``.

    ``labels`` index ``classes`` (the model's classes). For the detect mode the arrays hold the images
    with a found face, the same set the report's confusion matrix and ECE use.
    """

    report: dict
    probs: np.ndarray  # (M, C) float
    labels: np.ndarray  # (M,) int64
    classes: tuple[str, ...]


def score_crops(data: LabeledImages, classifier, progress=None) -> Evaluation:  # noqa: ANN001
    """Images are face crops: resize to the model input and classify (no detection, no alignment).

    Labels are matched to the model's classes by name; samples of other classes count as unlabeled.
    ``progress(done, total)`` is called after each chunk of 256 images.
    """
    size = classifier.spec.size
    ready = relabel(data, tuple(classifier.classes))
    usable = ready.subset(ready.labels >= 0)
    probs = []
    for i in range(0, len(usable), 256):
        chunk = np.zeros(len(usable), bool)
        chunk[i : i + 256] = True
        probs.append(classifier.predict_crops(load_gray_stack(usable.subset(chunk), size)))
        if progress is not None:
            progress(min(i + 256, len(usable)), len(usable))
    p = np.concatenate(probs) if probs else np.zeros((0, len(classifier.classes)))
    rep = classification_report(p, usable.labels, classifier.classes)
    rep["dropped_unlabeled"] = int(len(data) - len(usable))
    return Evaluation(rep, p, usable.labels, tuple(classifier.classes))


def evaluate_crops(data: LabeledImages, classifier) -> dict:  # noqa: ANN001
    """:func:`score_crops`, report only."""
    return score_crops(data, classifier).report


def score_detect(data: LabeledImages, analyzer, progress=None) -> Evaluation:  # noqa: ANN001
    """Full pipeline on each photo; the largest face is scored. No face counts as an error.
    ``progress(done, total)`` is called after each photo."""
    ready = relabel(data, tuple(analyzer.classes))
    usable = ready.subset(ready.labels >= 0)
    ncls = len(analyzer.classes)
    probs = np.zeros((len(usable), ncls))
    found = np.zeros(len(usable), bool)
    for i, path in enumerate(usable.paths):
        if progress is not None and i:
            progress(i, len(usable))
        try:
            res = analyzer.analyze(path if usable.images is None else usable.images[i], source=str(path))
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
    return Evaluation(rep, probs[found], y[found], tuple(analyzer.classes))


def evaluate_detect(data: LabeledImages, analyzer) -> dict:  # noqa: ANN001
    """:func:`score_detect`, report only."""
    return score_detect(data, analyzer).report
