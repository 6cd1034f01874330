"""The multi-annotator route of ``openfer dataset issues --annotations FILE``: consensus labels and annotator quality
from individual annotations (one row per annotation: ``path,annotator,label``, the long format labelling tools
export).

- **Consensus** of an image: the label most of its annotators gave; a tie goes to the label the model's out-of-sample
  probability favours (as CROWDLAB starts, Goh et al. 2022). Its **share**: the fraction of the image's
  annotations that agree with it.
- **Annotator quality**: on the images an annotator shares with at least one other annotator, the fraction where
  their label equals the *others'* consensus (leave-one-out, so an annotator never agrees with themself), with a
  Wilson 95% interval and Cohen's kappa against that consensus (agreement beyond what the two label distributions
  give by chance); beside it the agreement with the model's prediction. An annotator with a low agreement that
  the model's prediction confirms as low is labelling differently from everyone else, not just on hard images.
- Fleiss' kappa over the images with two or more annotations (:func:`openfer.dataset.agreement.fleiss_kappa`, which
  takes a varying number of annotations per image).

FER+ ``label.csv`` has vote counts without annotator ids, so annotator quality cannot be computed for it (the route
reports per-image agreement only); this route is for data whose annotations name their annotator.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..eval.datasets import open_label_file
from ..eval.labels import canonical_label
from .agreement import fleiss_kappa
from .profile import wilson

REQUIRED = ("path", "annotator", "label")


@dataclass(frozen=True)
class Annotations:
    """Individual annotations: ``image[i]`` (resolved path) labelled ``label[i]`` (a class index) by
    ``annotator[i]`` (an index into ``annotators``)."""

    file: Path
    image: tuple[str, ...]
    annotator: np.ndarray  # (M,) int
    label: np.ndarray  # (M,) int
    annotators: tuple[str, ...]
    classes: tuple[str, ...]
    replaced: int  # rows that relabelled an (image, annotator) pair given earlier in the file: the last one counts

    def counts(self, paths: tuple[Path, ...]) -> tuple[np.ndarray, np.ndarray]:
        """``(N, C)`` vote counts of ``paths`` and the ``(N, A)`` label each annotator gave (-1: none)."""
        row = {str(Path(p).resolve()): i for i, p in enumerate(paths)}
        n, c, a = len(paths), len(self.classes), len(self.annotators)
        votes, by = np.zeros((n, c), np.int64), np.full((n, a), -1, np.int64)
        for img, who, lab in zip(self.image, self.annotator, self.label, strict=True):
            i = row.get(img)
            if i is not None:
                votes[i, lab] += 1
                by[i, who] = lab
        return votes, by


def read_annotations(file: str | Path, classes: tuple[str, ...], data_root: Path) -> Annotations:
    """A CSV with the columns ``path,annotator,label`` (others ignored); a relative path is looked up beside the
    file first, then under ``data_root``. Labels are the model's classes (case and common synonyms as for
    ``openfer evaluate``); anything else is a one-line error naming the file and line."""
    file = Path(file)
    index = {canonical_label(k): j for j, k in enumerate(classes)}
    pairs: dict[tuple[str, str], int] = {}
    replaced = 0
    with open_label_file(file) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise InputError(f"{file}: empty annotations file (expected the columns {','.join(REQUIRED)})")
        names = [h.strip().lower() for h in header]
        missing = [k for k in REQUIRED if k not in names]
        if missing:
            raise InputError(f"{file}: annotations need the columns {','.join(REQUIRED)}; missing {', '.join(missing)}")
        col = [names.index(k) for k in REQUIRED]
        for lineno, row in enumerate(reader, 2):
            if not any(x.strip() for x in row):
                continue
            if len(row) <= max(col):
                raise InputError(f"{file}:{lineno}: expected {len(names)} columns, got {len(row)}")
            path, who, lab = (row[k].strip() for k in col)
            if not path or not who:
                raise InputError(f"{file}:{lineno}: empty path or annotator")
            j = index.get(canonical_label(lab))
            if j is None:
                raise InputError(f"{file}:{lineno}: unknown label {lab!r}; the model's classes are {', '.join(classes)}")
            p = Path(path)
            if not p.is_absolute() and not (file.parent / p).exists() and (data_root / p).exists():
                p = data_root / p  # not beside the file but in the data set
            elif not p.is_absolute():
                p = file.parent / p
            key = (str(p.resolve()), who)
            replaced += key in pairs
            pairs[key] = j
    if not pairs:
        raise InputError(f"{file}: no annotations (expected rows of {','.join(REQUIRED)})")
    annotators = tuple(sorted({w for _, w in pairs}))
    aid = {w: k for k, w in enumerate(annotators)}
    keys = list(pairs)
    return Annotations(file, tuple(k[0] for k in keys), np.array([aid[k[1]] for k in keys], np.int64),
                       np.array(list(pairs.values()), np.int64), annotators, tuple(classes), replaced)


def consensus(votes: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Most-voted class per row; ties go to the higher model probability; -1 for rows without votes."""
    top = votes.max(axis=1, keepdims=True)
    tied = (votes == top) & (top > 0)
    out = np.where(tied, probs, -np.inf).argmax(axis=1)
    return np.where(top[:, 0] > 0, out, -1)


def cohen_kappa(a: np.ndarray, b: np.ndarray, n_classes: int) -> float:
    """Cohen's kappa of two label vectors over ``n_classes`` classes (NaN when chance agreement is 1 or no pair)."""
    if not len(a):
        return float("nan")
    po = float((a == b).mean())
    pe = float((np.bincount(a, minlength=n_classes) * np.bincount(b, minlength=n_classes)).sum()) / len(a) ** 2
    return (po - pe) / (1 - pe) if pe < 1 else float("nan")


def annotator_table(ann: Annotations, votes: np.ndarray, by: np.ndarray, probs: np.ndarray) -> list[dict]:
    """One row per annotator (lowest agreement with the others first): images, images shared with others,
    agreement with the others' consensus (Wilson 95%), Cohen's kappa against it, agreement with the model."""
    c = len(ann.classes)
    pred = probs.argmax(axis=1)
    rows = []
    for k, name in enumerate(ann.annotators):
        mine = by[:, k] >= 0
        own = by[mine, k]
        others = votes[mine].copy()
        others[np.arange(len(own)), own] -= 1  # leave this annotator out
        shared = others.sum(axis=1) > 0
        loo = consensus(others[shared], probs[mine][shared])
        agree = int((own[shared] == loo).sum())
        n = int(shared.sum())
        lo, hi = wilson(agree, n) if n else (float("nan"), float("nan"))
        rows.append({
            "annotator": name, "images": int(mine.sum()), "shared_with_others": n,
            "agreement_with_others": agree / n if n else float("nan"),
            "agreement_low_95": lo, "agreement_high_95": hi,
            "kappa_with_others": cohen_kappa(own[shared], loo, c),
            "agreement_with_model": float((own == pred[mine]).mean()) if mine.any() else float("nan"),
        })
    rows.sort(key=lambda r: (np.nan_to_num(r["agreement_with_others"], nan=2.0), r["annotator"]))
    return rows


def annotator_summary(ann: Annotations, votes: np.ndarray, given: np.ndarray, probs: np.ndarray,
                      table: list[dict], not_in_data: int) -> dict:
    """The issues.json section of the route: counts, Fleiss' kappa, where the consensus differs from the label."""
    annotated = votes.sum(axis=1) > 0
    cons = consensus(votes, probs)
    multi = votes.sum(axis=1) >= 2
    share = np.where(annotated, votes.max(axis=1) / np.maximum(votes.sum(axis=1), 1), np.nan)
    low = [r["annotator"] for r in table if r["shared_with_others"] >= 20 and r["agreement_high_95"] <
           np.nanmedian([t["agreement_with_others"] for t in table])]
    return {
        "file": str(ann.file), "annotators": len(ann.annotators), "annotations": int(votes.sum()),
        "images_annotated": int(annotated.sum()), "images_with_two_or_more": int(multi.sum()),
        "annotations_not_in_data": not_in_data, "relabelled_pairs": ann.replaced,
        "fleiss_kappa": fleiss_kappa(votes[multi]) if multi.any() else float("nan"),
        "consensus_share_mean": float(np.nanmean(share)) if annotated.any() else float("nan"),
        "consensus_differs_from_label": int((annotated & (cons != given)).sum()),
        "below_the_median_annotator": low,
        "method": "consensus: most-voted label, ties to the model's probability; annotator quality: agreement with "
                  "the other annotators' consensus (leave-one-out) on shared images, Wilson 95%; "
                  "below_the_median_annotator: >= 20 shared images and the interval's upper end below the median "
                  "annotator's agreement",
        "table": "annotators.csv",
    }
