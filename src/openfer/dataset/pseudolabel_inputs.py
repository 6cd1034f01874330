"""The inputs of ``openfer dataset pseudolabel``: the images to label (files, folders, globs, a ``path[,COLUMN]``
CSV or a data set ``openfer evaluate`` reads) with their given labels, and the labelled validation set."""

from __future__ import annotations

import csv
import glob
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..eval.datasets import LabeledImages, open_label_file
from ..eval.labels import canonical_label
from ..io.images import IMAGE_EXTENSIONS

log = logging.getLogger("openfer")


@dataclass(frozen=True)
class ImageSet:
    """The images to label, each with a given label (-1: none) over the model's classes where given."""

    paths: tuple[Path, ...]
    given: np.ndarray | None
    source: str
    format: str  # "files", "csv" or an ``openfer evaluate`` format
    faces: str
    inputs: frozenset[Path]  # every input file, resolved (outputs must not be one)
    given_column: str | None = None


def _image_files(folder: Path, recursive: bool = False) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS)


def _map_given(names: Sequence[str], classes: Sequence[str], where: Sequence[str], column: str) -> np.ndarray:
    """Given class names -> index over ``classes`` (empty: -1); an unknown name is an error naming it."""
    index = {canonical_label(c): j for j, c in enumerate(classes)}
    out = np.full(len(names), -1, np.int64)
    for i, name in enumerate(names):
        if not name.strip():
            continue
        j = index.get(canonical_label(name))
        if j is None:
            raise InputError(f"{where[i]}: --given {column}: unknown class {name.strip()!r}; the model's classes "
                             f"are {', '.join(classes)}")
        out[i] = j
    return out


def _read_csv(path: Path, given: str | None, classes: Sequence[str]) -> tuple[list[Path], np.ndarray | None]:
    with open_label_file(path) as fh:  # undecodable, malformed or unreadable: one line naming the file
        rows = list(csv.reader(fh))
    if not rows:
        raise InputError(f"{path}: empty file (expected a header with a path column)")
    head = {h.strip().lower(): k for k, h in enumerate(rows[0])}
    ip = next((head[c] for c in ("path", "image", "file") if c in head), None)
    if ip is None:
        raise InputError(f"{path}: needs a 'path' column, found {', '.join(rows[0])}")
    ig = None
    if given is not None:
        ig = head.get(given.strip().lower())
        if ig is None:
            raise InputError(f"{path}: --given {given}: no such column; found {', '.join(rows[0])}")
    paths, names, where = [], [], []
    for lineno, r in enumerate(rows[1:], 2):
        if not r or not any(x.strip() for x in r):
            continue
        if len(r) <= max(ip, ig if ig is not None else 0) or not r[ip].strip():
            raise InputError(f"{path}:{lineno}: missing image path" + ("" if ig is None else " or given label"))
        paths.append(path.parent / r[ip].strip())
        if ig is not None:
            names.append(r[ig])
            where.append(f"{path}:{lineno}")
    if not paths:
        raise InputError(f"{path}: no rows")
    return paths, None if ig is None else _map_given(names, classes, where, given)


def read_images(items: Sequence[str], classes: Sequence[str], given: str | None = None, fmt: str | None = None,
                faces: str | None = None, recursive: bool = False) -> ImageSet:
    """The images of ``items``: image files, folders of images, glob patterns, a ``path[,COLUMN]`` CSV, or one
    data set ``openfer evaluate`` reads (FER+ root or split folder, ImageFolder, RAF-DB...; its labels are the
    given ones with ``given="label"``). ``classes``: the model's. fer2013.csv is refused (its images are pixels
    in the CSV, which a label file for ``openfer train`` cannot point to)."""
    from ..eval.evaluate import _guess_format
    from .sources import open_source

    if not items:
        raise InputError("give the images to label (files, folders, globs, a CSV or a data set)")
    first = Path(items[0])
    if len(items) == 1 and (first.is_dir() or (first.is_file() and first.suffix.lower() == ".csv")):
        guessed, file = _guess_format(first) if fmt is None else (fmt, first)
        if guessed == "fer2013":
            raise InputError(f"{first}: fer2013.csv holds its images as pixels; pseudo-labels need image files "
                             "(a label file for openfer train points to them)")
        if guessed == "csv" and (fmt is None or fmt == "csv"):
            paths, g = _read_csv(file, given, classes)
            return _image_set(paths, g, str(first), "csv", faces or "detect", {file.resolve()}, given)
        if not (guessed == "imagefolder" and first.is_dir() and fmt is None and _image_files(first)):
            src = open_source(first, guessed)
            paths, names, where = [], [], []
            for sp in src.splits:
                paths += list(sp.paths)
                names += [sp.classes[k] if k >= 0 else "" for k in sp.labels]
                where += [str(sp.label_file or p) for p in sp.paths]
            if given is not None and given.strip().lower() != "label":
                raise InputError(f"{first}: --given {given}: a {src.format} data set gives its own labels; use "
                                 "--given label (or give a CSV with the column)")
            g = _map_given(names, classes, where, "label") if given is not None else None
            default = "crops" if src.format == "ferplus" else "detect"
            return _image_set(paths, g, str(first), src.format, faces or default, src.inputs(), given)
    if given is not None:
        raise InputError(f"--given {given}: image files have no labels; give a CSV (path,{given}) as IMAGES")
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = _image_files(p, recursive)
            if not found:
                below = "" if recursive or not _image_files(p, True) else " (its subfolders hold some: add -r)"
                raise InputError(f"{p}: no image files in the folder{below}")
            paths += found
        elif p.is_file():
            if p.suffix.lower().lstrip(".") not in IMAGE_EXTENSIONS:
                raise InputError(f"{p}: not an image file ({', '.join(IMAGE_EXTENSIONS)}); a CSV or data set must "
                                 "be the only IMAGES argument")
            paths.append(p)
        elif glob.has_magic(item):
            found = sorted(Path(x) for x in glob.glob(item, recursive=True)
                           if Path(x).suffix.lower().lstrip(".") in IMAGE_EXTENSIONS and Path(x).is_file())
            if not found:
                raise InputError(f"{item}: no image file matches")
            paths += found
        else:
            raise InputError(f"{p}: not found")
    return _image_set(paths, None, " ".join(items), "files", faces or "detect", set(), None)


def _image_set(paths: Sequence[Path], given: np.ndarray | None, source: str, fmt: str, faces: str,
               inputs: set[Path], column: str | None) -> ImageSet:
    seen: dict[Path, int] = {}
    for i, p in enumerate(paths):
        seen.setdefault(Path(p).resolve(), i)
    if len(seen) < len(paths):
        log.warning("%s: %d image(s) listed more than once; each is labelled once", source, len(paths) - len(seen))
    keep = sorted(seen.values())
    g = None if given is None else np.asarray(given)[keep]
    return ImageSet(tuple(Path(paths[i]) for i in keep), g, source, fmt, faces,
                    frozenset(inputs | set(seen)), column)


def read_validation(data: str, classes: Sequence[str], faces: str | None = None,
                    fmt: str | None = None) -> tuple[LabeledImages, str, str, frozenset[Path]]:
    """The labelled images of a validation data set (FER+ root: its valid split; otherwise every split),
    labels over ``classes`` (images of other classes left out), the faces mode and the input files."""
    from ..eval.datasets import relabel
    from .sources import open_source

    src = open_source(data, fmt)
    splits = [s for s in src.splits if s.name == "valid"] if len(src.splits) > 1 and any(
        s.name == "valid" for s in src.splits) else list(src.splits)
    parts = [relabel(s.labelled, tuple(classes)) for s in splits]
    paths = tuple(p for d in parts for p in d.paths)
    labels = np.concatenate([d.labels for d in parts]) if parts else np.zeros(0, np.int64)
    images = None
    if all(d.images is not None for d in parts) and parts:
        images = np.concatenate([d.images for d in parts])
    lab = LabeledImages(paths, labels, tuple(classes), name=str(data), images=images)
    lab = lab.subset(lab.labels >= 0)
    if not len(lab):
        raise InputError(f"{data}: no labelled image of the model's classes for the validation")
    mode = "crops" if src.format in ("ferplus", "fer2013") else (faces or "detect")
    name = f"{data} ({', '.join(s.name for s in splits)})"
    return lab, mode, name, frozenset(src.inputs())


