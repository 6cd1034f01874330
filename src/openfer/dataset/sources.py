"""The splits of a data set in a format ``openfer evaluate`` reads, with every image listed (not only the
labelled ones) and the raw FER+ vote counts where the format has them.

Labelled sets come from :func:`openfer.eval.evaluate.read_dataset` (the same reader, label mapping and FER+
majority protocol as ``openfer evaluate``). FER+ ``label.csv`` lists images the majority protocol drops
(no majority, or a majority for ``unknown``/``NF``); a card counts them too, so for FER+ the image list and
the ten vote columns are read from ``label.csv`` here as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..eval.datasets import (
    FERPLUS_SPLITS,
    LabeledImages,
    ferplus_images,
    ferplus_label_csv,
    read_ferplus_votes,
)
from ..eval.evaluate import FORMATS, _guess_format, read_dataset  # the same layout guess as openfer evaluate
from ..eval.labels import majority_labels

SPLITS_OF = {"ferplus": ("train", "valid", "test"), "fer2013": ("train", "valid", "test"), "rafdb": ("train", "test")}


@dataclass(frozen=True)
class Split:
    """One split: every image (``paths``), its label (-1: none under the format's protocol) over
    ``classes``, the raw votes ``(N, 10)`` for FER+, and the labelled set ``openfer evaluate`` scores."""

    name: str  # "train", "valid", "test", or "all" for formats without splits
    paths: tuple[Path, ...]
    labels: np.ndarray
    classes: tuple[str, ...]
    votes: np.ndarray | None
    labelled: LabeledImages
    label_file: Path | None
    unlisted: tuple[Path, ...] = ()  # image files in the split folder that the label file does not list
    images: np.ndarray | None = None  # pixels stored in the label file (fer2013.csv)


@dataclass(frozen=True)
class DataSource:
    root: Path
    format: str
    splits: tuple[Split, ...]

    def pixels(self) -> dict[str, np.ndarray]:
        """The images whose pixels the label file holds (fer2013.csv), by resolved ``str(path)`` (synthetic paths)."""
        return {str(Path(p).resolve()): s.images[i] for s in self.splits if s.images is not None for i, p in enumerate(s.paths)}

    def inputs(self) -> set[Path]:
        """Every input file (label files and images), resolved: outputs must not be one of them."""
        out: set[Path] = set()
        for s in self.splits:
            if s.label_file is not None:
                out.add(s.label_file.resolve())
            if s.images is None:
                out.update(Path(p).resolve() for p in s.paths)
        return out


def _ferplus_split(root: Path, split: str) -> Split:
    label_csv = ferplus_label_csv(root, split)  # checks the layout, names the missing file
    folder = label_csv.parent
    paths, votes = read_ferplus_votes(label_csv)  # read once: every row here, the majority protocol below
    labelled = ferplus_images(paths, votes, split)
    listed = {p.name for p in paths}
    from ..io.images import IMAGE_EXTENSIONS

    unlisted = tuple(sorted(p for p in folder.iterdir()
                            if p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS and p.name not in listed))
    return Split(split, tuple(paths), majority_labels(votes), labelled.classes, votes, labelled, label_csv,
                 unlisted)


def open_source(data: str | Path, fmt: str | None = None, splits: tuple[str, ...] | None = None) -> DataSource:
    """Read every split of ``data`` (``splits``: a subset; default: all the format has and the data holds)."""
    p = Path(data)
    if not p.exists():
        raise InputError(f"{p}: not found")
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    guessed, file = _guess_format(p) if fmt is None else (fmt, p)
    root = p if p.is_dir() else p.parent
    names = SPLITS_OF.get(guessed, ("all",))
    if splits:
        bad = [s for s in splits if s not in names]
        if bad:
            raise InputError(f"{p}: the {guessed} format has the splits {', '.join(names)}, not {', '.join(bad)}")
        names = tuple(splits)
    elif guessed == "ferplus" and not (p / "label.csv").is_file():
        names = tuple(s for s in names if (p / FERPLUS_SPLITS[s] / "label.csv").is_file())
        if not names:
            raise InputError(f"{p}: no FER+ split folder with a label.csv (expected FER2013Train/label.csv ...)")
    elif guessed == "ferplus":  # a split folder itself: one split, named after it
        inv = {v: k for k, v in FERPLUS_SPLITS.items()}
        names = (inv.get(p.name, "all"),)
    out: list[Split] = []
    for s in names:
        if guessed == "ferplus":
            sp = _ferplus_split(p, s if s != "all" else "test")
            out.append(Split(s, sp.paths, sp.labels, sp.classes, sp.votes, sp.labelled, sp.label_file, sp.unlisted))
            continue
        labelled = read_dataset(file, guessed, s if s != "all" else "test", classes=None)
        label_file = file if file.is_file() else None
        if guessed == "csv" and file.is_dir():
            label_file = file / "labels.csv"
        out.append(Split(s, labelled.paths, labelled.labels, labelled.classes, None, labelled, label_file,
                         images=labelled.images))
    return DataSource(root, guessed, tuple(out))
