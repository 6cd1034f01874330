"""Readers for labelled expression data sets.

Each reader returns a :class:`LabeledImages`: paths, integer labels over a class list, and optional
soft targets (vote distributions), continuous targets (valence/arousal) and in-memory images. Images on
disk are decoded lazily by :func:`load_gray` so a reader is cheap; :func:`load_gray_stack` decodes
everything into one ``(N, H, W)`` uint8 array for training/evaluation. Formats whose pixels live in the
label file (the Kaggle ``fer2013.csv``) carry them in ``LabeledImages.images`` and use synthetic paths
such as ``fer2013.csv#row123`` (0-based data row).

Formats: FER+ folders (:func:`read_ferplus`), Kaggle FER2013 CSV with optional FER+ votes
(:func:`read_fer2013_csv`), RAF-DB basic (:func:`read_rafdb`), AffectNet CSV
(:func:`read_affectnet_csv`), ``path,label`` CSV (:func:`read_csv_labels`) and ImageFolder
(:func:`read_imagefolder`). All expression label sets are mapped to the FER+ class names.

For valence/arousal regression, :func:`read_csv_valence_arousal` reads a ``path,valence,arousal``
CSV (or an AffectNet CSV) into a :class:`ValenceArousalImages`.

Label files are untrusted bytes: they are read as UTF-8 (a byte-order mark is skipped), and any
failure while one is parsed (not UTF-8, a malformed CSV, a value no check foresaw) is an
:class:`~openfer.errors.InputError` naming the file. Images are decoded with the decoder messages
of :mod:`openfer.io.images` captured: a truncated JPEG is an error, corrupt data a warning, both
naming the image.
"""

from __future__ import annotations

import contextlib
import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from ..errors import InputError, ShapeError
from ..io.native import decode_reporting, exception_line, report_notes, summary
from ..io.text import printable as _printable
from .labels import FERPLUS_CLASSES, FERPLUS_VOTE_COLUMNS, canonical_label, majority_labels, soft_targets

FERPLUS_SPLITS = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}
SPLITS = ("train", "valid", "test")
# Kaggle fer2013.csv: emotion 0..6 and the Usage column
FER2013_CLASSES: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
FER2013_USAGE = {"Training": "train", "PublicTest": "valid", "PrivateTest": "test"}
FER2013_SIZE = 48
# RAF-DB basic: labels 1..7
RAFDB_CLASSES: tuple[str, ...] = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
# AffectNet expression 0..7 (8 None, 9 Uncertain, 10 Non-Face have no expression label)
AFFECTNET_CLASSES: tuple[str, ...] = (
    "neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt",
)
AFFECTNET_NO_LABEL = (8, 9, 10)
AFFECTNET_NOT_APPLICABLE = -2.0  # AffectNet's valence/arousal value for "not applicable"
VA_NAMES: tuple[str, ...] = ("valence", "arousal")
_MAX_VOTES = 1e6  # FER+ has 10 annotators per image; this only keeps sums finite in float32
_IMAGE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WebP"}
log = logging.getLogger("openfer")


@contextlib.contextmanager
def open_label_file(path: Path) -> Iterator[TextIO]:
    """``path`` opened as UTF-8 text; any failure while the block parses it is an InputError naming it."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            yield fh
    except InputError:
        raise
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.start + 1].hex()
        raise InputError(f"{path}: not UTF-8 text (undecodable byte 0x{bad})") from None
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV ({exception_line(exc)})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # whatever else these bytes make a parser raise is still the file's fault
        raise InputError(f"{path}: malformed label file ({exception_line(exc)})") from None


def _votes(cells: list[str], source: str) -> list[float]:
    """FER+ vote counts: numbers from 0 to ``_MAX_VOTES`` (NaN and inf rejected)."""
    try:
        votes = [float(x) for x in cells]
    except ValueError:
        raise InputError(f"{source}: vote counts must be numbers") from None
    if not all(0 <= v <= _MAX_VOTES for v in votes):  # also rejects NaN
        raise InputError(f"{source}: vote counts must be numbers from 0 to {_MAX_VOTES:g}, got {cells}")
    return votes


def _check_images(name: str, images: np.ndarray | None, n: int) -> None:
    """Pixels that come with the labels must be ``(n, H, W)`` uint8."""
    if images is not None and (images.ndim != 3 or len(images) != n or images.dtype != np.uint8):
        raise ShapeError(f"{name}: images", f"({n}, H, W) uint8", images.shape)


@dataclass(frozen=True)
class LabeledImages:
    """A labelled image set: ``paths[i]`` has class ``classes[labels[i]]`` (-1: no usable label)."""

    paths: tuple[Path, ...]
    labels: np.ndarray  # (N,) int64
    classes: tuple[str, ...]
    soft: np.ndarray | None = None  # (N, C) float32 target distributions, when the format has votes
    name: str = ""
    images: np.ndarray | None = None  # (N, H, W) uint8, when the pixels come with the labels
    targets: dict[str, np.ndarray] | None = None  # continuous targets, e.g. valence/arousal: (N,) float32
    split: str | None = None  # train/valid/test for formats with splits

    def __post_init__(self) -> None:
        n = len(self.paths)
        if len(self.labels) != n:
            raise InputError(f"{self.name}: {n} paths but {len(self.labels)} labels")
        if self.soft is not None and self.soft.shape != (n, len(self.classes)):
            raise ShapeError(f"{self.name}: soft", f"({n}, {len(self.classes)})", self.soft.shape)
        _check_images(self.name, self.images, n)
        for k, v in (self.targets or {}).items():
            if np.shape(v) != (n,):
                raise ShapeError(f"{self.name}: targets[{k!r}]", f"({n},)", np.shape(v))

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
            images=None if self.images is None else self.images[idx],
            targets=None if self.targets is None else {k: v[idx] for k, v in self.targets.items()},
            split=self.split,
        )

    def counts(self) -> dict[str, int]:
        """Number of samples per class name (classes without samples included, with 0)."""
        c = np.bincount(self.labels[self.labels >= 0], minlength=len(self.classes))
        return {name: int(c[i]) for i, name in enumerate(self.classes)}


def read_ferplus_votes(label_csv: Path) -> tuple[list[Path], np.ndarray]:
    """Every row of a FER+ ``label.csv``: the image paths (beside it) and the ``(N, 10)`` vote counts, before any
    protocol drops a row; a malformed row is a one-line error naming the file and line."""
    paths: list[Path] = []
    votes: list[list[float]] = []
    with open_label_file(label_csv) as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            if not row:
                continue
            if len(row) != 2 + len(FERPLUS_VOTE_COLUMNS):
                raise InputError(f"{label_csv}:{lineno}: expected 12 columns, got {len(row)}")
            votes.append(_votes(row[2:], f"{label_csv}:{lineno}"))
            paths.append(label_csv.parent / row[0].strip())
    return paths, np.asarray(votes, dtype=np.float64).reshape(-1, len(FERPLUS_VOTE_COLUMNS))


def read_ferplus(root: str | Path, split: str, protocol: str = "majority") -> LabeledImages:
    """FER+ folder layout: ``root/FER2013{Train,Valid,Test}/label.csv`` with 10 vote columns.

    ``protocol="majority"`` keeps only images with a majority label (the standard test protocol:
    25,045 / 3,191 / 3,137 images); ``protocol="all"`` keeps every image that has at least one
    counted expression vote (label -1 where there is no majority), for soft-label training.
    """
    paths, votes = read_ferplus_votes(ferplus_label_csv(root, split))
    return ferplus_images(paths, votes, split, protocol)


def ferplus_label_csv(root: str | Path, split: str) -> Path:
    """The ``label.csv`` of a FER+ split: ``root/FER2013<Split>/label.csv``, or ``root/label.csv`` when
    ``root`` is the split folder itself; an :class:`InputError` naming what is missing."""
    root = Path(root)
    if split not in FERPLUS_SPLITS:
        raise InputError(f"FER+ split must be one of {sorted(FERPLUS_SPLITS)}, got {split!r}")
    folder = root / FERPLUS_SPLITS[split]
    if not folder.is_dir() and (root / "label.csv").is_file():
        folder = root  # the split folder itself was given
    label_csv = folder / "label.csv"
    if not label_csv.is_file():
        raise InputError(f"{label_csv}: not found (expected the FER+ layout FER2013Train/label.csv)")
    return label_csv


def ferplus_images(paths: list[Path], votes: np.ndarray, split: str, protocol: str = "majority") -> LabeledImages:
    """The :func:`read_ferplus` data set of the rows :func:`read_ferplus_votes` read."""
    v = np.asarray(votes).astype(np.float32)
    labels = majority_labels(v)
    soft = soft_targets(v)
    data = LabeledImages(tuple(paths), labels, FERPLUS_CLASSES, soft, name=f"ferplus/{split}", split=split)
    if protocol == "majority":
        return data.subset(labels >= 0)
    if protocol == "all":
        return data.subset(soft.sum(axis=1) > 0)
    raise InputError(f"FER+ protocol must be 'majority' or 'all', got {protocol!r}")


def _resize_gray(img: np.ndarray, size: int | None) -> np.ndarray:
    if size is not None and img.shape != (size, size):
        interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
    return img


def load_gray(path: Path, size: int | None = None) -> np.ndarray:
    """Decode one image as grayscale uint8, optionally resized to ``size x size``.

    Decoder messages are handled as in :mod:`openfer.io.images` (truncated JPEG: an error; corrupt
    data: a warning naming the image).
    """
    fmt = _IMAGE_FORMATS.get(Path(path).suffix.lower(), "image")
    try:
        img, notes = decode_reporting(lambda: cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), fmt)
    except Exception as exc:  # cv2.error on these bytes is still the file's fault
        raise InputError(f"{path}: cannot be read as an image ({exception_line(exc)})") from None
    if img is None:
        raise InputError(f"{path}: cannot be read as an image" + (f" ({summary(notes)})" if notes else ""))
    report_notes(str(path), fmt, notes)
    return _resize_gray(img, size)


def load_gray_stack(data: LabeledImages | ValenceArousalImages, size: int = 48) -> np.ndarray:
    """All images of ``data`` as one ``(N, size, size)`` uint8 array (in-memory images when present)."""
    out = np.empty((len(data), size, size), dtype=np.uint8)
    if data.images is not None:
        for i, img in enumerate(data.images):
            out[i] = _resize_gray(img, size)
        return out
    for i, p in enumerate(data.paths):
        out[i] = load_gray(p, size)
    return out


def _labels_from_names(names: list[str], classes: tuple[str, ...] | None, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
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
    Optional ``valence``/``arousal`` columns are kept in ``targets`` (empty cell: NaN).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(f"{csv_path}: not found")
    with open_label_file(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise InputError(f"{csv_path}: no rows")
    cols = {c.strip().lower(): c for c in rows[0] if c is not None}
    pcol = cols.get("path") or cols.get("image") or cols.get("file")
    lcol = cols.get("label") or cols.get("emotion") or cols.get("expression")
    if pcol is None or lcol is None:
        raise InputError(f"{csv_path}: needs 'path' and 'label' columns, found {list(rows[0])}")
    paths = tuple(csv_path.parent / (r[pcol] or "").strip() for r in rows)
    labels, classes = _labels_from_names([r[lcol] or "" for r in rows], classes, str(csv_path))
    targets = {k: _float_column(rows, cols[k], csv_path) for k in ("valence", "arousal") if k in cols}
    return LabeledImages(paths, labels, classes, None, name=str(csv_path), targets=targets or None)


def _float_column(rows: list[dict[str, str]], col: str, source: Path, lineno0: int = 2) -> np.ndarray:
    out = np.empty(len(rows), dtype=np.float32)
    for i, r in enumerate(rows):
        cell = (r.get(col) or "").strip()
        try:
            out[i] = float(cell) if cell else np.nan
        except ValueError:
            raise InputError(f"{source}:{i + lineno0}: {col} must be a number, got {cell!r}") from None
    return out


@dataclass(frozen=True)
class ValenceArousalImages:
    """Images with continuous targets: ``values[i]`` is (valence, arousal) of ``paths[i]``, in [-1, 1].

    ``dropped`` counts the rows of the source file that had no value and were left out.
    """

    paths: tuple[Path, ...]
    values: np.ndarray  # (N, 2) float32 in [-1, 1]
    name: str = ""
    dropped: int = 0
    images: np.ndarray | None = None  # (N, H, W) uint8, when the pixels come with the values

    def __post_init__(self) -> None:
        n = len(self.paths)
        v = np.asarray(self.values, dtype=np.float32)
        if v.shape != (n, len(VA_NAMES)):
            raise ShapeError(f"{self.name}: values", f"({n}, 2)", v.shape)
        if not (np.isfinite(v).all() and (np.abs(v) <= 1.0).all()):
            raise InputError(f"{self.name}: valence/arousal values must be finite and in [-1, 1]")
        _check_images(self.name, self.images, n)
        object.__setattr__(self, "values", v)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, mask: np.ndarray) -> ValenceArousalImages:
        idx = np.flatnonzero(mask)
        return ValenceArousalImages(
            paths=tuple(self.paths[i] for i in idx),
            values=self.values[idx],
            name=self.name,
            dropped=self.dropped,
            images=None if self.images is None else self.images[idx],
        )


def read_csv_valence_arousal(csv_path: str | Path, image_root: str | Path | None = None) -> ValenceArousalImages:
    """CSV with ``path,valence,arousal`` columns (header required; paths relative to ``image_root``,
    default the CSV's folder) for valence/arousal regression.

    The path column may be named ``path``, ``image``, ``file`` or AffectNet's ``subDirectory_filePath``,
    so an AffectNet CSV reads as it is; other columns (``label``, ``expression``, face boxes) are
    ignored. A row with an empty (or NaN) valence or arousal cell, or AffectNet's "not applicable"
    value -2, is dropped and counted in ``dropped`` (and logged); any other value must be a number in [-1, 1]
    (:class:`~openfer.errors.InputError` naming the file and line otherwise).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(f"{csv_path}: not found (expected a CSV with path,valence,arousal columns)")
    base = Path(image_root) if image_root is not None else csv_path.parent
    paths: list[Path] = []
    values: list[tuple[float, float]] = []
    dropped = 0
    with open_label_file(csv_path) as fh:
        reader = csv.reader(fh)
        col = _header(reader, csv_path, VA_NAMES)
        ip = next((col[k] for k in ("path", "image", "file", "subdirectory_filepath") if k in col), None)
        if ip is None:
            raise InputError(f"{csv_path}: needs a 'path' column (or image, file, subDirectory_filePath) "
                             f"with valence and arousal; found {_printable(', '.join(col))}")
        iv = [col[k] for k in VA_NAMES]
        for lineno, rec in enumerate(reader, 2):
            if not rec:
                continue
            if len(rec) < len(col):
                raise InputError(f"{csv_path}:{lineno}: expected {len(col)} columns, got {len(rec)}")
            row: list[float] = []
            for name, i in zip(VA_NAMES, iv, strict=True):
                cell = rec[i].strip()
                try:
                    x = float(cell) if cell else np.nan
                except ValueError:
                    raise InputError(f"{csv_path}:{lineno}: {name} must be a number in [-1, 1], "
                                     f"got {cell!r}") from None
                if x == AFFECTNET_NOT_APPLICABLE:
                    x = np.nan
                if not np.isnan(x) and not -1.0 <= x <= 1.0:
                    raise InputError(f"{csv_path}:{lineno}: {name} must be in [-1, 1], got {cell!r}")
                row.append(x)
            if np.isnan(row).any():
                dropped += 1
                continue
            if not rec[ip].strip():
                raise InputError(f"{csv_path}:{lineno}: empty image path")
            paths.append(base / rec[ip].strip())
            values.append((row[0], row[1]))
    if dropped:
        log.warning("%s: %d row(s) without valence/arousal dropped", csv_path, dropped)
    if not paths:
        raise InputError(f"{csv_path}: no rows with both valence and arousal ({dropped} dropped)")
    return ValenceArousalImages(tuple(paths), np.asarray(values, dtype=np.float32).reshape(-1, 2),
                                name=str(csv_path), dropped=dropped)


def _check_split(split: str, fmt: str, allowed: tuple[str, ...] = SPLITS) -> None:
    if split not in allowed:
        raise InputError(f"{fmt} split must be one of {', '.join(allowed)}, got {split!r}")


def _header(reader: Iterator[list[str]], source: Path, required: tuple[str, ...]) -> dict[str, int]:
    """Column index by lower-cased name; names every required column that is missing."""
    try:
        head = next(reader)
    except StopIteration:
        raise InputError(f"{source}: empty file (expected a header with {', '.join(required)})") from None
    index = {h.strip().lower(): i for i, h in enumerate(head)}
    missing = [c for c in required if c.lower() not in index]
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(missing)}; found {_printable(', '.join(head))}")
    return index


def read_fer2013_csv(path: str | Path, split: str, votes_csv: str | Path | None = None) -> LabeledImages:
    """The Kaggle ``fer2013.csv`` (``emotion,pixels,Usage``): 48x48 gray images inside the CSV.

    ``Usage`` Training / PublicTest / PrivateTest is ``split`` train / valid / test. Without
    ``votes_csv`` the labels are the 7 original emotions mapped to FER+ names (``classes`` is the
    8 FER+ classes; contempt has no samples). With ``votes_csv``, the FER+ ``fer2013new.csv`` (one
    row per fer2013.csv row, same order), labels follow the FER+ majority protocol (-1 where there is
    no majority: drop them with ``data.subset(data.labels >= 0)``) and ``soft`` holds the vote
    distributions. Paths are synthetic: ``fer2013.csv#row{i}`` with ``i`` the 0-based data row.
    """
    path = Path(path)
    _check_split(split, "FER2013")
    if not path.is_file():
        raise InputError(f"{path}: not found (expected the Kaggle fer2013.csv)")
    npx = FER2013_SIZE * FER2013_SIZE
    rows: list[int] = []
    usages: list[str] = []
    emotions: list[int] = []
    images: list[np.ndarray] = []
    with open_label_file(path) as fh:
        reader = csv.reader(fh)
        col = _header(reader, path, ("emotion", "pixels", "Usage"))
        ie, ip, iu = col["emotion"], col["pixels"], col["usage"]
        width = len(col)
        row = -1
        for lineno, rec in enumerate(reader, 2):
            if not rec:
                continue
            row += 1
            if len(rec) < width:
                raise InputError(f"{path}:{lineno}: expected {width} columns, got {len(rec)}")
            usage = rec[iu].strip()
            if usage not in FER2013_USAGE:
                raise InputError(f"{path}:{lineno}: Usage must be one of {', '.join(FER2013_USAGE)}, "
                                 f"got {usage!r}")
            usages.append(usage)
            if FER2013_USAGE[usage] != split:
                continue
            try:
                e = int(rec[ie])
            except ValueError:
                msg = f"{path}:{lineno}: emotion must be an integer 0..6, got {rec[ie]!r}"
                raise InputError(msg) from None
            if not 0 <= e < len(FER2013_CLASSES):
                raise InputError(f"{path}:{lineno}: emotion must be 0..6, got {e}")
            px = rec[ip].split()
            if len(px) != npx:
                raise InputError(f"{path}:{lineno}: expected {npx} pixels (48x48), got {len(px)}")
            try:
                v = np.asarray(px, dtype=np.int64)
            except (ValueError, OverflowError):
                raise InputError(f"{path}:{lineno}: pixels must be integers 0..255") from None
            if v.min() < 0 or v.max() > 255:
                raise InputError(f"{path}:{lineno}: pixels must be integers 0..255")
            rows.append(row)
            emotions.append(e)
            images.append(v.astype(np.uint8).reshape(FER2013_SIZE, FER2013_SIZE))
    paths = tuple(Path(f"{path}#row{r}") for r in rows)
    imgs = np.stack(images) if images else np.zeros((0, FER2013_SIZE, FER2013_SIZE), np.uint8)
    if votes_csv is None:
        to_ferplus = np.array([FERPLUS_CLASSES.index(c) for c in FER2013_CLASSES], dtype=np.int64)
        labels = to_ferplus[np.asarray(emotions, dtype=np.int64)]
        return LabeledImages(paths, labels, FERPLUS_CLASSES, None, name=f"fer2013/{split}", images=imgs,
                             split=split)
    votes = _read_fer2013new(Path(votes_csv), usages)[rows]
    return LabeledImages(paths, majority_labels(votes), FERPLUS_CLASSES, soft_targets(votes),
                         name=f"ferplus-fer2013/{split}", images=imgs, split=split)


def _read_fer2013new(path: Path, usages: list[str]) -> np.ndarray:
    """FER+ ``fer2013new.csv`` votes as an ``(N, 10)`` array, checked row by row against fer2013's Usage."""
    if not path.is_file():
        raise InputError(f"{path}: not found (expected the FER+ fer2013new.csv)")
    votes: list[list[float]] = []
    with open_label_file(path) as fh:
        reader = csv.reader(fh)
        col = _header(reader, path, ("Usage", "Image name") + FERPLUS_VOTE_COLUMNS)
        iv = [col[c.lower()] for c in FERPLUS_VOTE_COLUMNS]
        for lineno, rec in enumerate(reader, 2):
            if not rec:
                continue
            if len(rec) < len(col):
                raise InputError(f"{path}:{lineno}: expected {len(col)} columns, got {len(rec)}")
            row = len(votes)
            usage = rec[col["usage"]].strip()
            if row < len(usages) and usage != usages[row]:
                raise InputError(f"{path}:{lineno}: Usage {usage!r} but fer2013.csv row {row} has "
                                 f"{usages[row]!r}; the two files must list the same images in the "
                                 "same order")
            votes.append(_votes([rec[i] for i in iv], f"{path}:{lineno}"))
    if len(votes) != len(usages):
        raise InputError(f"{path}: {len(votes)} rows but fer2013.csv has {len(usages)}; "
                         "fer2013new.csv must have one row per fer2013.csv row, in the same order")
    return np.asarray(votes, dtype=np.float32).reshape(-1, len(FERPLUS_VOTE_COLUMNS))


def read_rafdb(root: str | Path, split: str) -> LabeledImages:
    """RAF-DB basic: ``root/EmoLabel/list_patition_label.txt`` and ``root/Image/aligned`` images.

    Lines read ``train_00001.jpg 5`` with labels 1..7 = surprise, fear, disgust, happiness, sadness,
    anger, neutral (mapped to FER+ names; ``classes`` is the 8 FER+ classes). The image is
    ``Image/aligned/train_00001_aligned.jpg``, or ``Image/original/train_00001.jpg`` when the aligned
    one is missing. The split (train/test) is the file-name prefix; RAF-DB has no validation split.
    ``root`` may also be the folder holding ``basic/``.
    """
    root = Path(root)
    if split == "valid":
        raise InputError("RAF-DB has no validation split: use --split train or --split test")
    _check_split(split, "RAF-DB", ("train", "test"))
    if not (root / "EmoLabel").is_dir() and (root / "basic" / "EmoLabel").is_dir():
        root = root / "basic"
    label_file = root / "EmoLabel" / "list_patition_label.txt"
    if not label_file.is_file():
        raise InputError(f"{label_file}: not found "
                         "(expected the RAF-DB basic layout EmoLabel/list_patition_label.txt)")
    aligned, original = root / "Image" / "aligned", root / "Image" / "original"
    to_ferplus = np.array([FERPLUS_CLASSES.index(c) for c in RAFDB_CLASSES], dtype=np.int64)
    paths: list[Path] = []
    labels: list[int] = []
    with open_label_file(label_file) as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise InputError(f"{label_file}:{lineno}: expected 'name label', got {line.strip()!r}")
            name, lab = parts
            prefix = name.split("_", 1)[0]
            if prefix not in ("train", "test"):
                raise InputError(f"{label_file}:{lineno}: file name must start with train_ or test_, "
                                 f"got {name!r}")
            if not (lab.isascii() and lab.isdigit()) or not 1 <= int(lab) <= len(RAFDB_CLASSES):
                raise InputError(f"{label_file}:{lineno}: label must be 1..7, got {lab!r}")
            if prefix != split:
                continue
            stem, suffix = Path(name).stem, Path(name).suffix
            p = aligned / f"{stem}_aligned{suffix}"
            if not p.is_file() and (original / name).is_file():
                p = original / name
            paths.append(p)
            labels.append(int(to_ferplus[int(lab) - 1]))
    return LabeledImages(tuple(paths), np.asarray(labels, dtype=np.int64), FERPLUS_CLASSES, None,
                         name=f"rafdb/{split}", split=split)


def read_affectnet_csv(path: str | Path, image_root: str | Path | None = None) -> LabeledImages:
    """AffectNet CSV (``subDirectory_filePath,…,expression,valence,arousal``).

    Expressions 0..7 (neutral, happy, sad, surprise, fear, disgust, anger, contempt) are mapped to FER+
    names; 8..10 (None, Uncertain, Non-Face) get label -1. Image paths are relative to ``image_root``
    (default: the CSV's folder); the face box columns are not used. ``valence``/``arousal`` are kept
    in ``targets``, with AffectNet's "not applicable" value -2 (anything outside [-1, 1]) as NaN.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: not found (expected an AffectNet CSV)")
    base = Path(image_root) if image_root is not None else path.parent
    to_ferplus = np.array([FERPLUS_CLASSES.index(c) for c in AFFECTNET_CLASSES], dtype=np.int64)
    paths: list[Path] = []
    labels: list[int] = []
    va: dict[str, list[float]] = {}
    with open_label_file(path) as fh:
        reader = csv.reader(fh)
        col = _header(reader, path, ("subDirectory_filePath", "expression"))
        ip, ie = col["subdirectory_filepath"], col["expression"]
        extra = {k: col[k] for k in ("valence", "arousal") if k in col}
        va = {k: [] for k in extra}
        for lineno, rec in enumerate(reader, 2):
            if not rec:
                continue
            if len(rec) < len(col):
                raise InputError(f"{path}:{lineno}: expected {len(col)} columns, got {len(rec)}")
            try:
                e = int(float(rec[ie]))
            except (ValueError, OverflowError):  # OverflowError: inf
                msg = f"{path}:{lineno}: expression must be an integer 0..10, got {rec[ie]!r}"
                raise InputError(msg) from None
            if not 0 <= e <= max(AFFECTNET_NO_LABEL):
                raise InputError(f"{path}:{lineno}: expression must be 0..10, got {e}")
            for k, i in extra.items():
                try:
                    x = float(rec[i]) if rec[i].strip() else np.nan
                except ValueError:
                    raise InputError(f"{path}:{lineno}: {k} must be a number, got {rec[i]!r}") from None
                va[k].append(x if -1.0 <= x <= 1.0 else np.nan)
            paths.append(base / rec[ip].strip())
            labels.append(-1 if e in AFFECTNET_NO_LABEL else int(to_ferplus[e]))
    if not paths:
        raise InputError(f"{path}: no rows")
    targets = {k: np.asarray(v, dtype=np.float32) for k, v in va.items()} or None
    return LabeledImages(tuple(paths), np.asarray(labels, dtype=np.int64), FERPLUS_CLASSES, None,
                         name=str(path), targets=targets)


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


def relabel(data: LabeledImages, classes: tuple[str, ...]) -> LabeledImages:
    """``data`` with labels (and soft targets) re-indexed over ``classes``, matched by canonical name.

    Samples whose class is not in ``classes`` get -1; soft-target columns of missing classes are dropped.
    """
    target = {canonical_label(c): j for j, c in enumerate(classes)}
    new_index = np.array([target.get(canonical_label(c), -1) for c in data.classes] + [-1], dtype=np.int64)
    labels = new_index[np.where(data.labels >= 0, data.labels, len(data.classes))]
    soft = None
    if data.soft is not None:
        soft = np.zeros((len(data), len(classes)), dtype=np.float32)
        for i, j in enumerate(new_index[:-1]):
            if j >= 0:
                soft[:, j] = data.soft[:, i]
    return LabeledImages(data.paths, labels, tuple(classes), soft, name=data.name, images=data.images,
                         targets=data.targets, split=data.split)


def label_coverage(data: LabeledImages, model_classes: tuple[str, ...] | list[str]) -> dict:
    """How the data's classes line up with a model's, matched by canonical name (case, synonyms).

    Returns a dict with fixed keys: ``matched`` (model class -> labelled samples), ``not_in_model``
    (data class with samples but unknown to the model -> count; those samples cannot be scored),
    ``not_in_data`` (model classes without any labelled sample) and ``unlabeled`` (samples with label -1).
    """
    counts = data.counts()
    model = {canonical_label(c): c for c in model_classes}
    data_canon: dict[str, int] = {}
    for c, k in counts.items():
        data_canon[canonical_label(c)] = data_canon.get(canonical_label(c), 0) + k
    return {
        "matched": {m: data_canon[c] for c, m in model.items() if data_canon.get(c, 0) > 0},
        "not_in_model": {c: k for c, k in data_canon.items() if c not in model and k > 0},
        "not_in_data": [m for c, m in model.items() if data_canon.get(c, 0) == 0],
        "unlabeled": int((data.labels < 0).sum()),
    }
