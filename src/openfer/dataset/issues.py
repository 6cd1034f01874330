"""``openfer dataset issues``: likely label errors of a labelled expression data set, by confident learning
(:mod:`openfer.dataset.confident`) on out-of-sample predicted probabilities.

Where the probabilities come from (``predictions``):

- ``model``: the shipped model's calibrated probabilities, for images it never saw (photos_dev, FER2013Test):
  face crops resized to the model input (:func:`openfer.eval.evaluate.score_crops`) or photos through the full
  pipeline, largest face (:func:`openfer.eval.evaluate.score_detect`; photos without a face are not scored);
- ``kfold``: for images the model was trained or selected on (FER2013Train, FER2013Valid), K-fold
  cross-validated probabilities of a linear softmax head on the model's penultimate features
  (:mod:`openfer.dataset.crossval`, :mod:`openfer.dataset.features`);
- ``auto``: ``kfold`` for the train and valid splits of FER+ and fer2013, ``model`` otherwise.

:func:`find_issues` returns an :class:`IssuesReport`; :mod:`openfer.dataset.issues_report` writes it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..eval.datasets import LabeledImages, relabel
from ..eval.labels import FERPLUS_VOTE_COLUMNS, canonical_label
from .agreement import majority_share, vote_entropy
from .annotators import annotator_summary, annotator_table, consensus, read_annotations
from .confident import ConfidentResult, find_label_issues
from .crossval import HeadOptions, cross_val_probs
from .sources import DataSource, Split

log = logging.getLogger("openfer")
SCHEMA = "openfer.dataset_issues/1"
PREDICTIONS = ("auto", "model", "kfold")
SEEN_SPLITS = ("train", "valid")  # the shipped model was trained on FER2013Train and selected on FER2013Valid
ANNOTATOR_NOTE = ("FER+ gives vote counts per image, not who cast them: there are no annotator ids, so the "
                  "quality of individual annotators cannot be estimated; per image the consensus (most-voted "
                  "of the 10 categories) and the agreement of the votes are reported instead.")


@dataclass(frozen=True)
class IssuesOptions:
    predictions: str = "auto"
    model: str = "fernet_s"
    faces: str | None = None  # "crops" / "detect"; None: crops for ferplus and fer2013, detect otherwise
    k: int = 5
    seed: int = 0
    head: HeadOptions = HeadOptions()
    filter: str = "prune_by_noise_rate"
    ranking: str = "self_confidence"
    features_cache: Path | None = None
    threads: int = 0
    annotations: Path | None = None  # path,annotator,label rows: the multi-annotator route (:mod:`.annotators`)


@dataclass(frozen=True)
class SplitIssues:
    """One split's scored images (``paths[i]`` labelled ``given[i]``), their probabilities and the result."""

    split: str
    route: str  # "model" or "kfold"
    paths: tuple[Path, ...]
    given: np.ndarray  # (N,) over ``classes``
    probs: np.ndarray  # (N, C) out-of-sample
    result: ConfidentResult
    votes: np.ndarray | None  # (N, 10) raw FER+ votes
    doc: dict
    annotated: np.ndarray | None = None  # (N, C) counts of the individual annotations (--annotations)


@dataclass(frozen=True)
class IssuesReport:
    doc: dict  # issues.json
    rows: list[dict]  # issues.csv, most likely wrong first
    splits: tuple[SplitIssues, ...] = field(repr=False)
    classes: tuple[str, ...] = ()
    annotators: list[dict] | None = None  # annotators.csv (--annotations), least agreeing first


def route_of(src: DataSource, split: str, predictions: str) -> str:
    if predictions not in PREDICTIONS:
        raise InputError(f"unknown predictions {predictions!r}; choose one of {', '.join(PREDICTIONS)}")
    if predictions != "auto":
        return predictions
    return "kfold" if src.format in ("ferplus", "fer2013") and split in SEEN_SPLITS else "model"


def _rel(p: Path, root: Path) -> str:
    try:
        return Path(p).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(p)


def _model_probs(data: LabeledImages, faces: str, options: IssuesOptions,
                 progress: Callable[[int, int], None] | None) -> tuple[LabeledImages, np.ndarray, dict]:
    """The shipped model's probabilities for the images of ``data`` it scores (photos: those with a face)."""
    from ..eval.evaluate import score_crops, score_detect

    if faces == "crops":
        from ..components.expression import ExpressionClassifier

        clf = ExpressionClassifier(options.model, threads=options.threads)
        ev = score_crops(data, clf, progress)
        return data, ev.probs, {"model": clf.model.name, "sha256": clf.model.sha256, "report": ev.report}
    from ..eval.subgroups import ResultRecorder
    from ..pipeline import Analyzer

    analyzer = Analyzer(expression_model=options.model, threads=options.threads, blendshapes=False, aus=False,
                        explain=False)
    rec = ResultRecorder(analyzer)
    ev = score_detect(data, rec, progress)
    keep = np.zeros(len(data), bool)
    probs = np.zeros((len(data), len(analyzer.classes)))
    for i, p in enumerate(data.paths):
        res = rec.results.get(str(p))
        if res is None or not len(res.faces):  # unreadable (None) or no face
            continue
        b = res.faces.boxes
        k = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
        probs[i], keep[i] = res.faces.expressions[k], True
    m = analyzer.expression.model
    return data.subset(keep), probs[keep], {"model": m.name, "sha256": m.sha256, "report": ev.report,
                                            "no_face": int((~keep).sum())}


def _kfold_probs(data: LabeledImages, split: str, n_classes: int, options: IssuesOptions,
                 progress: Callable[[int, int], None] | None) -> tuple[np.ndarray, dict]:
    from .features import FeatureExtractor, split_features

    if len(data) < options.k:  # before the features: a split too small is refused at once
        raise InputError(f"{split}: {len(data)} labelled images, fewer than the {options.k} folds of --folds")
    ext = FeatureExtractor(options.model, threads=options.threads)
    feats, origin = split_features(data, split, ext, options.features_cache, progress, options.seed)
    t0 = time.monotonic()
    probs = cross_val_probs(feats, data.labels, n_classes, options.k, options.seed, options.head)
    return probs, {"model": ext.model.name, "sha256": ext.model.sha256, "features": origin,
                   "feature_dim": int(feats.shape[1]), "k": options.k, "seed": options.seed,
                   "head": {"l2": options.head.l2, "steps": options.head.steps, "lr": options.head.lr},
                   "fit_seconds": round(time.monotonic() - t0, 1)}


def _stats(x: np.ndarray) -> dict:
    v = np.asarray(x, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"n": 0, "mean": math.nan, "median": math.nan}
    return {"n": int(len(v)), "mean": float(v.mean()), "median": float(np.median(v))}


def agreement_comparison(votes: np.ndarray, flagged: np.ndarray) -> dict:
    """Majority share and vote entropy of the flagged images against the rest (raw votes, 10 categories)."""
    ms, h = majority_share(votes), vote_entropy(votes)
    out = {}
    for name, m in (("flagged", flagged), ("rest", ~flagged)):
        out[name] = {"majority_share": _stats(ms[m]), "entropy_bits": _stats(h[m]),
                     "majority_share_below_0.6": float(np.mean(ms[m] < 0.6)) if m.any() else math.nan}
    return out


def _split_doc(sp: Split, route: str, classes: tuple[str, ...], given: np.ndarray, probs: np.ndarray,
               res: ConfidentResult, votes: np.ndarray | None, info: dict, dropped: dict) -> dict:
    c = len(classes)
    counts = np.bincount(given, minlength=c)
    flagged = np.bincount(given[res.issue], minlength=c)
    doc = {
        "route": route, "scored": int(len(given)), "not_scored": dropped,
        "flagged": int(res.issue.sum()), "flagged_share": float(res.issue.mean()) if len(given) else math.nan,
        "estimated_label_errors": int(round(len(given) * (1 - np.trace(res.calibrated)))) if len(given) else 0,
        "accuracy_of_predictions": float((probs.argmax(1) == given).mean()) if len(given) else math.nan,
        "per_class": {k: {"given": int(counts[j]), "flagged": int(flagged[j]),
                          "threshold": float(res.thresholds[j]), "noise_rate": float(res.noise_rate[j])}
                      for j, k in enumerate(classes)},
        "confident_joint": {"rows": "given label", "columns": "confidently predicted label",
                            "classes": list(classes), "counts": res.joint.tolist(),
                            "calibrated": np.round(res.calibrated, 6).tolist()},
        "predictions": info,
    }
    if votes is not None:
        doc["agreement"] = agreement_comparison(votes, res.issue)
    return doc


def _votes_of(sp: Split, data: LabeledImages) -> np.ndarray | None:
    if sp.votes is None:
        return None
    row = {str(p): i for i, p in enumerate(sp.paths)}
    return sp.votes[[row[str(p)] for p in data.paths]]


def _rows(si: SplitIssues, root: Path, classes: tuple[str, ...]) -> list[dict]:
    res = si.result
    rows = []
    # a model class's FER+ vote column by name (the model's class order need not be FER+'s)
    vcol = {canonical_label(c): j for j, c in enumerate(FERPLUS_VOTE_COLUMNS)}
    col = [vcol.get(canonical_label(c)) for c in classes]
    ms = majority_share(si.votes) if si.votes is not None else None
    cons = consensus(si.annotated, si.probs) if si.annotated is not None else None
    h = vote_entropy(si.votes) if si.votes is not None else None
    for i in res.ranked:
        g, s = int(si.given[i]), int(res.suggested[i])
        r = {"path": _rel(si.paths[i], root), "split": si.split, "given": classes[g], "suggested": classes[s],
             "score": round(float(res.score[i]), 5), "self_confidence": round(float(res.self_confidence[i]), 5),
             "normalized_margin": round(float(res.normalized_margin[i]), 5),
             "p_suggested": round(float(si.probs[i, s]), 5), "route": si.route}
        if si.votes is not None:
            v = si.votes[i]
            total = v.sum()
            cg, cs = col[g], col[s]
            r.update({"consensus": FERPLUS_VOTE_COLUMNS[int(v.argmax())],
                      "votes": " ".join(str(int(x)) for x in v),
                      "vote_share_given": round(float(v[cg] / total), 3) if total and cg is not None else "",
                      "vote_share_suggested": (round(float(v[cs] / total), 3) if total and cs is not None
                                               else ""),
                      "majority_share": round(float(ms[i]), 3), "entropy_bits": round(float(h[i]), 3) + 0.0})
        if si.annotated is not None and si.annotated[i].sum():
            a = si.annotated[i]
            r.update({"annotator_consensus": classes[int(cons[i])], "annotations": int(a.sum()),
                      "annotator_share": round(float(a.max() / a.sum()), 3)})
        rows.append(r)
    return rows


def find_issues(src: DataSource, options: IssuesOptions, *, data_arg: str, command: str,
                progress: Callable[[str, int, int], None] | None = None) -> IssuesReport:
    """Confident learning on every split of ``src`` (each split on its own)."""
    t0 = time.monotonic()
    faces = options.faces or ("crops" if src.format in ("ferplus", "fer2013") else "detect")
    out: list[SplitIssues] = []
    by_split: list[np.ndarray] = []
    seconds: dict[str, float] = {}
    from ..components.expression import ExpressionSpec
    from ..runtime import as_model

    model_classes = ExpressionSpec.from_dict(as_model(options.model, options.threads).spec).classes
    classes = model_classes
    ann = read_annotations(options.annotations, model_classes, src.root) if options.annotations else None
    for sp in src.splits:
        ts = time.monotonic()
        route = route_of(src, sp.name, options.predictions)
        if route == "kfold" and faces != "crops":
            raise InputError(f"{src.root}: K-fold predictions need face crops (--faces crops); photos get the "
                             "model's probabilities (--predictions model)")
        ready = relabel(sp.labelled, tuple(model_classes))
        data = ready.subset(ready.labels >= 0)
        dropped = {"no_label": int((sp.labels < 0).sum()),
                   "class_not_in_model": int(((sp.labelled.labels >= 0) & (ready.labels < 0)).sum())}
        step = None if progress is None else (lambda d, t, n=f"{route} {sp.name}": progress(n, d, t))
        if not len(data):
            raise InputError(f"{sp.label_file or src.root}: no labelled image of the model's classes in {sp.name}")
        if route == "model":
            scored, probs, info = _model_probs(data, faces, options, step)
            if "no_face" in info:
                dropped["no_face"] = info["no_face"]
            info = {k: v for k, v in info.items() if k != "report"} | {
                "accuracy": info["report"]["accuracy"], "uar": info["report"]["uar"], "faces": faces}
        else:
            probs, info = _kfold_probs(data, sp.name, len(model_classes), options, step)
            scored = data
        res = find_label_issues(scored.labels, probs, filter=options.filter, ranking=options.ranking)
        votes = _votes_of(sp, scored)
        doc = _split_doc(sp, route, model_classes, scored.labels, probs, res, votes, info, dropped)
        annotated = by = None
        if ann is not None:
            annotated, by = ann.counts(scored.paths)
            has = annotated.sum(1) > 0
            if has.any():
                doc["annotator_agreement"] = agreement_comparison(annotated[has], res.issue[has])
            by_split.append(by)
        out.append(SplitIssues(sp.name, route, scored.paths, scored.labels, probs, res, votes, doc, annotated))
        seconds[sp.name] = round(time.monotonic() - ts, 1)
    rows = sorted((r for si in out for r in _rows(si, src.root, classes)), key=lambda r: r["score"])
    for k, r in enumerate(rows, 1):
        r["rank"] = k
    seconds["total"] = round(time.monotonic() - t0, 1)
    summary = []
    for si in out:
        d = si.doc
        line = (f"{si.split}: {d['flagged']:,} of {d['scored']:,} images flagged ({100 * d['flagged_share']:.1f}%; "
                f"predictions: {si.route}, their accuracy against the given labels {d['accuracy_of_predictions']:.3f})")
        if "agreement" in d:
            a = d["agreement"]
            if a["flagged"]["majority_share"]["n"] and a["rest"]["majority_share"]["n"]:
                line += (f"; mean annotator majority share {a['flagged']['majority_share']['mean']:.2f} flagged "
                         f"vs {a['rest']['majority_share']['mean']:.2f} the rest")
        summary.append(line)
    doc = {
        "schema": SCHEMA,
        "data": {"path": data_arg, "format": src.format, "splits": [s.name for s in src.splits]},
        "generated_by": {"openfer": __version__, "command": command, "seconds": seconds},
        "method": {
            "confident_learning": "Northcutt et al., JAIR 2021: per-class thresholds (mean self-confidence), "
                                  "confident joint, calibrated to the label counts, then " + options.filter,
            "filter": options.filter, "ranking": options.ranking,
            "score": "label quality in [0, 1] by the ranking (low: likely wrong); issues.csv is sorted by it",
            "predictions": options.predictions,
        },
        "classes": list(classes),
        "summary": summary,
        "splits": {si.split: si.doc for si in out},
        "annotators": ANNOTATOR_NOTE if any(si.votes is not None for si in out) else None,
        "csv": "issues.csv", "contact_sheet": None,
    }
    table = None
    if ann is not None:
        votes_all = np.concatenate([si.annotated for si in out])
        probs_all = np.concatenate([si.probs for si in out])
        given_all = np.concatenate([si.given for si in out])
        if not votes_all.sum():
            raise InputError(f"{ann.file}: none of its {len(ann.image):,} annotations is of a scored image of "
                             f"{data_arg} (paths are looked up beside the file, then under the data set)")
        table = annotator_table(ann, votes_all, np.concatenate(by_split), probs_all)
        doc["annotators"] = annotator_summary(ann, votes_all, given_all, probs_all, table,
                                              int(len(ann.image) - votes_all.sum()))
        a = doc["annotators"]
        summary.append(f"annotators: {a['annotators']} gave {a['annotations']:,} annotations of "
                       f"{a['images_annotated']:,} images (Fleiss' kappa {a['fleiss_kappa']:.2f}); the consensus "
                       f"differs from the label on {a['consensus_differs_from_label']:,}; least agreeing with the "
                       f"others: {table[0]['annotator']} ({table[0]['agreement_with_others']:.2f})")
    return IssuesReport(doc, rows, tuple(out), tuple(classes), table)
