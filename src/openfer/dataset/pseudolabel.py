"""``openfer dataset pseudolabel``: labels for unlabelled (or synthetic) face images, kept only where the
model is confident enough to reach a stated precision; with given labels (the prompt label of a generated
image), the label rectified where the model confidently disagrees.

**Evidence** (:func:`collect_evidence`), per image: the model's calibrated probabilities and the action units
(AUs) of the face. Face crops (FER+'s 48x48) are scored as ``openfer evaluate --faces crops`` scores them
(resized to the model input, no detection), and their AUs are measured on the crop as ``openfer dataset card``
frames it (:func:`openfer.eval.attributes.crop_view`: upscaled 4x, 25% border, one detector pass); photos go
through :class:`openfer.pipeline.Analyzer` and the largest face is used (no face: no label).

**Prototype agreement** (:func:`prototype_agreement`) of the AUs with the predicted class ``c``, by the rules
of :func:`openfer.core.reasons.explain`:

- ``conflict``: another expression's EMFACS prototype (``openfer.core.au.PROTOTYPE_AUS``; not contempt's,
  which every smile raises) is clearly present: mean intensity >= ``CLEAR`` (2.5) and more than 1.0 above ``c``'s;
- ``match``: at least half of ``c``'s prototype AUs, and at least one, are present (intensity >= ``SUPPORT``,
  1.0); for neutral: no AU at ``CLEAR`` or above;
- ``weak``: neither; ``none``: no AUs (the face mesh found no face on the crop).

**Score** (:class:`ScoreModel`): the estimated probability that the model's label is right,
``sigmoid(a * logit(p) + b + c[agreement])`` with ``p`` the calibrated top probability and ``c[match] = 0``;
``a, b, c[weak], c[conflict], c[none]`` are fitted on the validation set by logistic regression of
"top class == label", with an L2 pull (:data:`PENALTY`) towards ``a = 1, b = c = 0`` (the score ``p``), so a
small validation set, or a state few images have, keeps the plain probability.

**Thresholds** (:func:`choose_threshold`): on the validation set, the lowest score ``t`` whose kept images
(score >= ``t``, at least ``min_kept`` of them) have a precision whose Wilson 95% lower bound is >= the
target (``--precision``, default 0.9). Changing a given label needs the score to reach a second threshold too,
chosen the same way for ``--rectify-precision`` (default :data:`RECTIFY`, 0.97): where the model disagrees
with a given label its errors are over-represented (a label it gets right is changed only when the given one is
wrong), so at the labelling threshold too many right given labels would be changed (``docs/validation.md``).
Without ``--validation`` the shipped record of the shipped model on FER2013Valid is used
(``openfer/models/pseudolabel_validation.json``, written by ``scripts/pseudolabel_validation.py``; refused for
another model). No threshold reaches the target: nothing is kept, and the report says so.

:func:`label_images` returns :class:`PseudoLabels`; :func:`openfer.dataset.pseudolabel_report.write_pseudolabels`
writes them; :mod:`openfer.dataset.pseudolabel_inputs` reads the images and the validation set.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import __version__
from ..core.au import PROTOTYPE_AUS
from ..core.reasons import CLEAR, SUPPORT, explain, prototype_strength
from ..errors import InputError
from ..eval.datasets import LabeledImages, load_gray, load_gray_stack
from .profile import wilson
from .pseudolabel_inputs import ImageSet, read_validation
from .report import json_ready

log = logging.getLogger("openfer")
SCHEMA = "openfer.dataset_pseudolabel/1"
RECORD_SCHEMA = "openfer.pseudolabel_validation/1"
RECORD = Path(__file__).resolve().parent.parent / "models" / "pseudolabel_validation.json"
AGREEMENT = ("match", "weak", "conflict", "none")
STATUSES = ("kept", "given", "low_score", "no_face", "unreadable")
ALL_COLUMNS = ("path", "label", "status", "score", "p_top", "model_label", "agreement", "given", "rectified",
               "reason")
LABEL_COLUMNS = ("path", "label", "status", "score")
RECTIFY = 0.97  # default precision a given label's change needs (FER2013Valid flips: docs/validation.md)
PENALTY = 5.0  # L2 pull of the score weights towards the plain probability (a = 1, b = c = 0)
EPS = 1e-6
CHUNK = 64
SMALL = 96  # a photo at most this many pixels on its longer side without a face: maybe a face crop


# ---------------------------------------------------------------------------------------------- pure parts
def prototype_agreement(probs: np.ndarray, aus: np.ndarray, au_names: Sequence[str],
                        classes: Sequence[str]) -> np.ndarray:
    """``(N,)`` index into :data:`AGREEMENT` of each face's AU evidence for its top class; rows of ``aus``
    (or ``probs``) with a NaN: ``none``. The rules are :func:`openfer.core.reasons.explain`'s."""
    p = np.asarray(probs, dtype=np.float64).reshape(len(probs), -1)
    a = np.asarray(aus, dtype=np.float64).reshape(len(p), -1)
    idx = {n: i for i, n in enumerate(au_names)}
    out = np.full(len(p), AGREEMENT.index("none"), np.int64)
    for i in range(len(p)):
        if not a.shape[1] or not np.isfinite(a[i]).all() or not np.isfinite(p[i]).all():
            continue
        label = classes[int(p[i].argmax())]
        strength = prototype_strength(a[i], au_names)
        own = strength.get(label, 0.0)
        rival = max((s for c, s in strength.items() if c not in (label, "contempt")), default=0.0)
        if rival >= CLEAR and rival > own + 1.0:
            out[i] = AGREEMENT.index("conflict")
            continue
        if label in PROTOTYPE_AUS:
            proto = [x for x in PROTOTYPE_AUS[label] if x in idx]
            present = sum(bool(a[i, idx[x]] >= SUPPORT) for x in proto)
            ok = present > 0 and 2 * present >= len(proto)
        else:  # neutral (or a class without a prototype): no AU strongly active
            ok = not bool((a[i] >= CLEAR).any())
        out[i] = AGREEMENT.index("match" if ok else "weak")
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(q) - np.log1p(-q)


@dataclass(frozen=True)
class ScoreModel:
    """``score = sigmoid(a * logit(p_top) + b + c[agreement])`` (``c`` per :data:`AGREEMENT`, ``match`` 0)."""

    a: float = 1.0
    b: float = 0.0
    c: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def __call__(self, p_top: np.ndarray, agreement: np.ndarray) -> np.ndarray:
        """Scores in (0, 1); NaN where ``p_top`` is NaN (no prediction)."""
        p = np.asarray(p_top, dtype=np.float64)
        z = self.a * _logit(np.nan_to_num(p, nan=0.5)) + self.b + np.asarray(self.c)[np.asarray(agreement, int)]
        return np.where(np.isfinite(p), 1 / (1 + np.exp(-z)), np.nan)

    @classmethod
    def fit(cls, p_top: np.ndarray, agreement: np.ndarray, correct: np.ndarray,
            penalty: float = PENALTY) -> ScoreModel:
        """Penalised maximum likelihood (Newton steps) of ``correct`` on ``logit(p_top)`` and the agreement
        state; ``penalty * |w - w0|^2 / 2`` with ``w0`` the plain probability."""
        p = np.asarray(p_top, dtype=np.float64)
        ok = np.isfinite(p)
        ag = np.asarray(agreement, int)[ok]
        y = np.asarray(correct, dtype=np.float64)[ok]
        x = np.column_stack([_logit(p[ok]), np.ones(len(y))] + [(ag == k).astype(float) for k in (1, 2, 3)])
        w0 = np.array([1.0, 0, 0, 0, 0])
        w = w0.copy()
        for _ in range(50):
            q = 1 / (1 + np.exp(-(x @ w)))
            grad = x.T @ (q - y) + penalty * (w - w0)
            hess = (x * (q * (1 - q))[:, None]).T @ x + penalty * np.eye(len(w))
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.abs(step).max() < 1e-9:
                break
        return cls(float(w[0]), float(w[1]), (0.0, float(w[2]), float(w[3]), float(w[4])))

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, **{f"c_{n}": v for n, v in zip(AGREEMENT, self.c, strict=True)}}


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold chosen on validation and what it achieves there (``met``: it reaches ``target``)."""

    threshold: float  # keep score >= threshold; inf when nothing reaches the target
    met: bool
    target: float
    min_kept: int
    n: int  # validation images (with or without a score)
    kept: int
    correct: int
    precision: float
    low: float  # Wilson 95% interval of the precision
    high: float
    best_low: float  # highest lower bound any threshold with min_kept images reached (NaN: none had them)

    @property
    def coverage(self) -> float:
        return self.kept / self.n if self.n else math.nan


def _wilson_low(k: np.ndarray, n: np.ndarray, z: float = 1.959964) -> np.ndarray:
    k, n = np.asarray(k, np.float64), np.asarray(n, np.float64)
    p = k / n
    den = 1 + z * z / n
    return (p + z * z / (2 * n) - z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / den


def choose_threshold(scores: np.ndarray, correct: np.ndarray, target: float = 0.9,
                     min_kept: int = 50) -> ThresholdChoice:
    """The lowest score ``t`` such that the images scoring >= ``t`` (at least ``min_kept`` of them) have a
    precision (share ``correct``) whose Wilson 95% lower bound is >= ``target``. Images with a NaN score are
    never kept (they count in the coverage); the candidates are the distinct scores."""
    if not 0 < target < 1:
        raise InputError(f"--precision must be between 0 and 1 (exclusive), got {target}")
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(correct, dtype=bool)
    total = len(s)
    ok = np.isfinite(s)
    s, c = s[ok], c[ok]
    order = np.argsort(-s, kind="stable")
    s, c = s[order], c[order]
    last = np.r_[s[1:] != s[:-1], True] if len(s) else np.zeros(0, bool)  # last of each run of tied scores
    kept, good, cand = np.arange(1, len(s) + 1)[last], np.cumsum(c)[last], s[last]
    low = _wilson_low(good, kept)
    enough = kept >= max(1, min_kept)
    best = float(low[enough].max()) if enough.any() else math.nan
    hit = np.flatnonzero(enough & (low >= target))
    if not len(hit):
        return ThresholdChoice(math.inf, False, target, min_kept, total, 0, 0, math.nan, math.nan, math.nan, best)
    j = int(hit[-1])  # candidates come in decreasing score: the last hit is the lowest threshold
    lo, hi = wilson(int(good[j]), int(kept[j]))
    return ThresholdChoice(float(cand[j]), True, target, min_kept, total, int(kept[j]), int(good[j]),
                           float(good[j] / kept[j]), lo, hi, best)


def per_class(scores: np.ndarray, pred: np.ndarray, labels: np.ndarray, threshold: float,
              classes: Sequence[str]) -> dict[str, dict]:
    """Per class at ``threshold``: ``kept`` (labels assigned to the class), their precision and Wilson
    interval, and ``coverage``, the share of the class's images that get a label (of any class)."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    keep = s >= threshold
    right = keep & (pred == labels)
    out = {}
    for j, name in enumerate(classes):
        k, good, n = int((keep & (pred == j)).sum()), int((right & (pred == j)).sum()), int((labels == j).sum())
        lo, hi = wilson(good, k)
        out[name] = {"images": n, "kept": k, "precision": good / k if k else math.nan, "low": lo, "high": hi,
                     "coverage": float((keep & (labels == j)).sum() / n) if n else math.nan}
    return out


# ---------------------------------------------------------------------------------------------- evidence
@dataclass(frozen=True)
class Evidence:
    """Per image: ``probs`` ``(N, C)`` and ``aus`` ``(N, A)`` of the face (NaN rows: none) and ``status``
    ("ok", "no_face", "unreadable")."""

    paths: tuple[Path, ...]
    probs: np.ndarray
    aus: np.ndarray
    status: tuple[str, ...]
    classes: tuple[str, ...]
    au_names: tuple[str, ...]
    faces: str  # "crops" or "detect"
    model: str
    sha256: str

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def scored(self) -> np.ndarray:
        return np.isfinite(self.probs).all(1) if len(self) else np.zeros(0, bool)

    @property
    def pred(self) -> np.ndarray:
        return np.where(self.scored, np.nan_to_num(self.probs, nan=-1.0).argmax(1), -1) if len(self) \
            else np.zeros(0, np.int64)

    @property
    def p_top(self) -> np.ndarray:
        return np.where(self.scored, np.nan_to_num(self.probs, nan=-1.0).max(1), np.nan) if len(self) \
            else np.zeros(0)

    @property
    def agreement(self) -> np.ndarray:
        return prototype_agreement(self.probs, self.aus, self.au_names, self.classes)


def evidence_analyzer(model: str = "fernet_s", faces: str = "crops", threads: int = 0):  # noqa: ANN201
    """The analyzer :func:`collect_evidence` runs: AUs (with the blendshapes they are calibrated on), no
    reasons; for crops one detector pass over the upscaled crop, as ``openfer dataset card`` runs it."""
    from ..pipeline import Analyzer

    base = dict(expression_model=model, threads=threads, blendshapes=True, aus=True, explain=False)
    return Analyzer(**base, min_face=None) if faces == "crops" else Analyzer(**base)


def collect_evidence(paths: Sequence[Path], faces: str, analyzer, images: np.ndarray | None = None,  # noqa: ANN001
                     progress: Callable[[int, int], None] | None = None) -> Evidence:
    """Probabilities and AUs of each image (``images``: its pixels, where the label file holds them).

    ``crops``: the probabilities of ``analyzer.expression`` on the crop resized to the model input (as
    ``openfer evaluate --faces crops``) and the AUs of the largest face found in
    :func:`~openfer.eval.attributes.crop_view` of it (none found: NaN AUs, the probabilities still count).
    ``detect``: the analyzer on the photo, its largest face (none: ``no_face``)."""
    from ..components.au import AU_NAMES
    from ..eval.attributes import crop_view
    from ..eval.subgroups import largest_face

    if faces not in ("crops", "detect"):
        raise InputError(f"faces must be 'crops' or 'detect', got {faces!r}")
    n = len(paths)
    clf = analyzer.expression
    au_names = tuple(AU_NAMES) if analyzer.options.aus else ()
    probs = np.full((n, len(clf.classes)), np.nan)
    aus = np.full((n, len(au_names)), np.nan)
    status = ["ok"] * n
    for start in range(0, n, CHUNK):
        idx = range(start, min(start + CHUNK, n))
        if faces == "crops":
            chunk = LabeledImages(tuple(paths[i] for i in idx), np.full(len(idx), -1, np.int64), clf.classes,
                                  images=None if images is None else images[idx.start : idx.stop])
            try:
                probs[idx.start : idx.stop] = clf.predict_crops(load_gray_stack(chunk, clf.spec.size))
            except InputError:  # an unreadable image in the chunk: one at a time
                for k, i in enumerate(idx):
                    try:
                        probs[i] = clf.predict_crops(load_gray_stack(chunk.subset(np.arange(len(idx)) == k),
                                                                     clf.spec.size))[0]
                    except InputError as e:
                        log.warning("%s", e)
                        status[i] = "unreadable"
        for i in idx:
            if status[i] != "ok":
                continue
            try:
                if faces == "crops":
                    gray = images[i] if images is not None else load_gray(paths[i])
                    res = analyzer.analyze_rgb(crop_view(np.asarray(gray, np.uint8)), source=str(paths[i]))
                else:
                    res = analyzer.analyze(paths[i] if images is None else images[i], source=str(paths[i]))
            except InputError as e:
                log.warning("%s", e)
                status[i], probs[i] = "unreadable", np.nan
                continue
            k = largest_face(res)
            if k < 0:
                if faces == "detect":
                    status[i] = "no_face"
                continue
            if faces == "detect":
                probs[i] = res.faces.expressions[k]
            if res.faces.aus is not None:
                aus[i] = res.faces.aus[k]
        if progress is not None and n:
            progress(idx.stop, n)
    m = clf.model
    return Evidence(tuple(Path(p) for p in paths), probs, aus, tuple(status), tuple(clf.classes), au_names,
                    faces, m.name, m.sha256)


# ---------------------------------------------------------------------------------------------- validation
@dataclass(frozen=True)
class Validation:
    """A labelled validation set as the threshold needs it: per image the top probability, predicted class
    (-1: none), agreement state and true label over ``classes``."""

    source: str
    faces: str
    model: str
    sha256: str
    classes: tuple[str, ...]
    p_top: np.ndarray
    pred: np.ndarray
    agreement: np.ndarray
    labels: np.ndarray
    record: str | None = None  # the record file it was read from

    @classmethod
    def from_evidence(cls, ev: Evidence, labels: np.ndarray, source: str) -> Validation:
        return cls(source, ev.faces, ev.model, ev.sha256, ev.classes, ev.p_top, ev.pred, ev.agreement,
                   np.asarray(labels, np.int64))

    def to_record(self, command: str = "") -> dict:
        return {"schema": RECORD_SCHEMA, "source": self.source, "faces": self.faces, "model": self.model,
                "sha256": self.sha256, "classes": list(self.classes), "agreement_states": list(AGREEMENT),
                "generated_by": {"openfer": __version__, "command": command}, "n": int(len(self.labels)),
                "p_top": [None if not math.isfinite(x) else round(float(x), 6) for x in self.p_top],
                "pred": self.pred.tolist(), "agreement": self.agreement.tolist(), "labels": self.labels.tolist()}

    @classmethod
    def from_record(cls, path: Path) -> Validation:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise InputError(f"{path}: not a readable validation record ({e})") from None
        if not isinstance(doc, dict) or doc.get("schema") != RECORD_SCHEMA:
            raise InputError(f"{path}: not a pseudo-label validation record (schema {RECORD_SCHEMA})")
        try:
            n = int(doc["n"])
            arrays = (np.array([math.nan if x is None else x for x in doc["p_top"]], np.float64),
                      np.asarray(doc["pred"], np.int64), np.asarray(doc["agreement"], np.int64),
                      np.asarray(doc["labels"], np.int64))
            classes = tuple(str(c) for c in doc["classes"])
            head = (str(doc["source"]), str(doc["faces"]), str(doc["model"]), str(doc["sha256"]))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{path}: malformed validation record ({e})") from None
        if any(a.shape != (n,) for a in arrays) or not ((arrays[2] >= 0) & (arrays[2] < len(AGREEMENT))).all():
            raise InputError(f"{path}: malformed validation record (arrays of {n} images expected)")
        return cls(*head, classes, *arrays, record=str(path))

    def check_model(self, model: str, sha256: str) -> None:
        if self.sha256 != sha256:
            where = self.record or self.source
            raise InputError(f"{where}: the validation record is for {self.model} (sha256 {self.sha256[:12]}), "
                             f"not {model} (sha256 {sha256[:12]}): give --validation DATA for this model")


@dataclass(frozen=True)
class Selection:
    """The score fitted on a validation set and the thresholds chosen on it: ``choice`` to write a label,
    ``rectify`` (at least as high) to change a given label."""

    score: ScoreModel
    choice: ThresholdChoice
    per_class: dict[str, dict]
    rectify: ThresholdChoice

    @property
    def rectify_threshold(self) -> float:
        return max(self.choice.threshold, self.rectify.threshold)


def select(val: Validation, target: float = 0.9, min_kept: int = 50, rectify: float = RECTIFY,
           penalty: float = PENALTY) -> Selection:
    """Fit the score on ``val`` and choose the thresholds for ``target`` and ``rectify`` (module docstring)."""
    ok = val.pred >= 0
    correct = (val.pred == val.labels) & ok
    score = ScoreModel.fit(val.p_top[ok], val.agreement[ok], correct[ok], penalty) if ok.any() else ScoreModel()
    s = score(val.p_top, val.agreement)
    choice = choose_threshold(s, correct, target, min_kept)
    return Selection(score, choice, per_class(s, val.pred, val.labels, choice.threshold, val.classes),
                     choose_threshold(s, correct, rectify, min_kept))


# ---------------------------------------------------------------------------------------------- assignment
@dataclass(frozen=True)
class Assignment:
    """Per image: the label written (-1: none), status (:data:`STATUSES`), score and whether a given label
    was changed."""

    label: np.ndarray
    status: tuple[str, ...]
    score: np.ndarray
    rectified: np.ndarray


def assign(ev: Evidence, sel: Selection, given: np.ndarray | None = None,
           drop_unconfirmed: bool = False) -> Assignment:
    """``kept``: the model's label, where the score reaches the threshold and, for an image whose given label
    differs, the rectify threshold too (the given label is then rectified); ``given``: the given label stands
    (the model does not confirm it confidently; with ``drop_unconfirmed``: ``low_score``); ``low_score``: no
    label; ``no_face`` / ``unreadable``: no label, given or not."""
    s = sel.score(ev.p_top, ev.agreement)
    g = np.full(len(ev), -1, np.int64) if given is None else np.asarray(given, np.int64)
    pred = ev.pred
    v = np.nan_to_num(s, nan=-np.inf)
    differs = (g >= 0) & (g != pred)
    keep = (v >= sel.choice.threshold) & (~differs | (v >= sel.rectify_threshold))
    label = np.where(keep, pred, -1)
    status = []
    for i, st in enumerate(ev.status):
        if st != "ok":
            status.append(st)
            label[i] = -1
        elif keep[i]:
            status.append("kept")
        elif g[i] >= 0 and not drop_unconfirmed:
            status.append("given")
            label[i] = g[i]
        else:
            status.append("low_score")
    return Assignment(label, tuple(status), s, keep & differs)


# ---------------------------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class PseudoOptions:
    model: str = "fernet_s"
    precision: float = 0.9
    rectify: float = RECTIFY
    min_kept: int = 50
    drop_unconfirmed: bool = False
    threads: int = 0


@dataclass(frozen=True)
class PseudoLabels:
    doc: dict  # the report (JSON)
    rows: list[dict]  # labels_all.csv, input order
    validation: Validation = field(repr=False)
    evidence: Evidence = field(repr=False)
    assignment: Assignment = field(repr=False)


def label_images(images: ImageSet, validation: Validation, options: PseudoOptions, *, command: str = "",
                 analyzer=None, progress: Callable[[str, int, int], None] | None = None,  # noqa: ANN001
                 base: Path | None = None) -> PseudoLabels:
    """Collect the evidence of ``images``, choose the threshold on ``validation`` and assign the labels.
    ``base``: the folder paths in the rows are relative to (the label file's)."""
    t0 = time.monotonic()
    analyzer = analyzer or evidence_analyzer(options.model, images.faces, options.threads)
    m = analyzer.expression.model
    validation.check_model(m.name, m.sha256)
    if tuple(validation.classes) != tuple(analyzer.classes):
        raise InputError(f"{validation.record or validation.source}: validation classes {validation.classes} are "
                         f"not the model's {analyzer.classes}")
    sel = select(validation, options.precision, options.min_kept, options.rectify)
    step = None if progress is None else (lambda d, t: progress("images", d, t))
    ev = collect_evidence(images.paths, images.faces, analyzer, progress=step)
    asg = assign(ev, sel, images.given, options.drop_unconfirmed)
    rows = _rows(ev, asg, sel, images, base)
    doc = _doc(images, validation, sel, ev, asg, rows, options, command, time.monotonic() - t0)
    return PseudoLabels(doc, rows, validation, ev, asg)


def _rel(p: Path, base: Path | None) -> str:
    """``p`` relative to ``base`` when it lies inside it, else absolute (``read_csv_labels`` joins it to the
    label file's folder either way)."""
    q = Path(p).resolve()
    if base is None:
        return str(p)
    try:
        return q.relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        return str(q)


def _reason(ev: Evidence, asg: Assignment, sel: Selection, i: int, given: int) -> str:
    st, c = asg.status[i], ev.classes
    if st == "no_face":
        return "no face found"
    if st == "unreadable":
        return "the image cannot be read"
    aus = ev.aus[i] if ev.au_names and np.isfinite(ev.aus[i]).all() else None
    evidence = explain(ev.probs[i], c, aus, ev.au_names if aus is not None else ())
    if aus is None:
        evidence += ": no AUs (the face mesh found no face)"
    t, tr, v = sel.choice.threshold, sel.rectify_threshold, float(asg.score[i])

    def versus(limit: float, name: str = "threshold") -> str:
        if not math.isfinite(limit):
            return f"no {name} reaches its precision target"
        return f"score {v:.3f} {'>=' if v >= limit else '<'} {name} {limit:.3f}"

    if given >= 0 and asg.rectified[i]:
        return f"given {c[given]}, model {evidence}; {versus(tr, 'rectify threshold')}"
    if st == "kept" and given >= 0:
        return f"given {c[given]} confirmed: {evidence}; {versus(t)}"
    if given >= 0 and given != ev.pred[i] and v >= t:
        why = f"the model disagrees below the rectify threshold: {evidence}; {versus(tr, 'rectify threshold')}"
    elif given >= 0:
        why = f"the model does not confirm it: {evidence}; {versus(t)}"
    else:
        return f"{evidence}; {versus(t)}"
    return f"given {c[given]} {'kept' if st == 'given' else 'dropped (--drop-unconfirmed)'}, {why}"


def _rows(ev: Evidence, asg: Assignment, sel: Selection, images: ImageSet, base: Path | None) -> list[dict]:
    ag, pred, p = ev.agreement, ev.pred, ev.p_top
    rows = []
    for i, path in enumerate(ev.paths):
        g = -1 if images.given is None else int(images.given[i])
        ok = ev.status[i] == "ok"
        rows.append({
            "path": _rel(path, base), "label": ev.classes[asg.label[i]] if asg.label[i] >= 0 else "",
            "status": asg.status[i], "score": round(float(asg.score[i]), 5) if ok else "",
            "p_top": round(float(p[i]), 5) if ok else "", "model_label": ev.classes[pred[i]] if ok else "",
            "agreement": AGREEMENT[ag[i]] if ok else "", "given": ev.classes[g] if g >= 0 else "",
            "rectified": ("yes" if asg.rectified[i] else "no") if g >= 0 else "",
            "reason": _reason(ev, asg, sel, i, g)})
    return rows


def _doc(images: ImageSet, val: Validation, sel: Selection, ev: Evidence, asg: Assignment, rows: list[dict],
         options: PseudoOptions, command: str, seconds: float) -> dict:
    ch, classes = sel.choice, ev.classes
    counts = {s: int(sum(x == s for x in asg.status)) for s in STATUSES}
    labelled = asg.label >= 0
    assigned = {c: int((asg.label[labelled] == j).sum()) for j, c in enumerate(classes)}
    warnings = []
    if val.faces != images.faces:
        warnings.append(f"the threshold was chosen on {val.faces} ({val.source}) but the images are scored as "
                        f"{images.faces}: the validation precision need not carry over")
    low = [c for c, d in sel.per_class.items() if d["kept"] and d["precision"] < ch.target]
    if images.given is not None and ch.met and not sel.rectify.met:
        warnings.append(f"no threshold reaches the rectify precision {sel.rectify.target:g} on validation: no "
                        "given label is changed")
    if ch.met and low:
        warnings.append(f"on validation the precision of {', '.join(low)} is below the target (the target holds "
                        "for all classes together)")
    small = sum(1 for i, st in enumerate(asg.status) if st == "no_face" and _small(ev.paths[i]))
    if small:
        warnings.append(f"{small} image(s) of at most {SMALL} px without a face: if they are face crops, use "
                        "--faces crops")
    if ch.met:
        head = (f"threshold {ch.threshold:.4f}: validation precision {ch.precision:.3f} (95% {ch.low:.3f}-"
                f"{ch.high:.3f}, target {ch.target:g}) at coverage {ch.coverage:.3f} ({ch.kept:,} of {ch.n:,})")
    else:
        best = "no threshold keeps --min-kept images" if not math.isfinite(ch.best_low) else \
            f"the best lower bound was {ch.best_low:.3f}"
        head = (f"no threshold reaches precision {ch.target:g} on validation with {ch.min_kept} images or more "
                f"({best}): no label kept")
    summary = [head, f"{len(ev):,} images: " + ", ".join(f"{k} {v:,}" for k, v in counts.items() if v)
               + f"; {int(labelled.sum()):,} labels written"]
    given_doc = None
    if images.given is not None:
        g = images.given
        has = g >= 0
        cols = [*classes, "none"]
        conf = np.zeros((len(classes), len(cols)), np.int64)
        for i in np.flatnonzero(has):
            conf[g[i], asg.label[i] if asg.label[i] >= 0 else len(classes)] += 1
        changes = [{k: rows[i][k] for k in ("path", "given", "label", "score", "reason")}
                   for i in np.flatnonzero(asg.rectified)]
        confirmed = int((has & (np.array(asg.status) == "kept") & ~asg.rectified).sum())
        given_doc = {"column": images.given_column, "with_given": int(has.sum()), "confirmed": confirmed,
                     "rectified": int(asg.rectified.sum()), "kept_as_given": counts["given"],
                     "confusion": {"rows": "given label", "columns": "label written (none: no label)",
                                   "classes": cols, "counts": conf.tolist()},
                     "changes": changes}
        summary.append(f"given labels: {int(has.sum()):,}; confirmed {confirmed:,}, rectified "
                       f"{int(asg.rectified.sum()):,}, kept unconfirmed {counts['given']:,}")
    summary += [f"warning: {w}" for w in warnings]
    return json_ready({
        "schema": SCHEMA,
        "generated_by": {"openfer": __version__, "command": command, "seconds": round(seconds, 1)},
        "images": {"source": images.source, "format": images.format, "faces": images.faces, "n": len(ev)},
        "model": {"name": ev.model, "sha256": ev.sha256},
        "score": {"definition": "sigmoid(a * logit(p_top) + b + c[agreement]): the estimated probability that "
                                "the model's label is right, fitted on the validation set (openfer.dataset."
                                "pseudolabel)", "weights": sel.score.to_dict(), "penalty": PENALTY},
        "threshold": {"value": ch.threshold if ch.met else None, "met": ch.met, "target_precision": ch.target,
                      "min_kept": ch.min_kept, "interval": "Wilson 95%, its lower end must reach the target",
                      "rectify": _choice_doc(sel.rectify) | {"value": sel.rectify_threshold if sel.rectify.met
                                                             else None}},
        "validation": {"source": val.source, "record": val.record, "faces": val.faces, "n": ch.n,
                       "kept": ch.kept, "correct": ch.correct, "precision": ch.precision,
                       "precision_95": [ch.low, ch.high], "coverage": ch.coverage,
                       "agreement": {a: int((val.agreement == k).sum()) for k, a in enumerate(AGREEMENT)},
                       "per_class": sel.per_class},
        "counts": counts, "labels_written": int(labelled.sum()), "assigned": assigned,
        "agreement": {a: int(((ev.agreement == k) & ev.scored).sum()) for k, a in enumerate(AGREEMENT)},
        "given": given_doc, "drop_unconfirmed": options.drop_unconfirmed,
        "summary": summary, "warnings": warnings,
    })


def _choice_doc(ch: ThresholdChoice) -> dict:
    return {"value": ch.threshold if ch.met else None, "met": ch.met, "target_precision": ch.target,
            "kept": ch.kept, "correct": ch.correct, "precision": ch.precision, "precision_95": [ch.low, ch.high],
            "coverage": ch.coverage}


def _small(path: Path) -> bool:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return img is not None and max(img.shape[:2]) <= SMALL


def shipped_validation() -> Validation:
    """The record of the shipped model on FER2013Valid (``scripts/pseudolabel_validation.py``)."""
    from ..runtime.onnx import verified_path

    if not RECORD.is_file():
        raise InputError(f"{RECORD}: no shipped validation record; give --validation DATA")
    path = verified_path("pseudolabel_validation")  # sha256 against models.toml, as for every shipped file
    return replace(Validation.from_record(path), record="openfer/models/pseudolabel_validation.json (shipped)")


def load_validation(data: str | None, model: str = "fernet_s", faces: str | None = None, fmt: str | None = None,
                    threads: int = 0, progress: Callable[[int, int], None] | None = None,
                    ) -> tuple[Validation, frozenset[Path]]:
    """The validation set the threshold is chosen on, and its input files: ``None``, the shipped record (for
    the shipped model only); a ``.json`` record (``*_validation.json`` of an earlier run); or a labelled data
    set, whose evidence is collected here (the slow part)."""
    from ..components.expression import ExpressionSpec
    from ..runtime import as_model

    m = as_model(model, threads)
    if data is None or (Path(data).suffix.lower() == ".json" and Path(data).is_file()):
        val = shipped_validation() if data is None else Validation.from_record(Path(data))
        val.check_model(m.name, m.sha256)
        return val, frozenset() if data is None else frozenset({Path(data).resolve()})
    classes = ExpressionSpec.from_dict(m.spec).classes
    lab, mode, name, inputs = read_validation(data, classes, faces, fmt)
    ev = collect_evidence(lab.paths, mode, evidence_analyzer(model, mode, threads), lab.images, progress)
    return Validation.from_evidence(ev, lab.labels, name), inputs
