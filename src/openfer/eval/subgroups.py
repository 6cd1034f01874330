"""Subgroup audits: accuracy, UAR, macro-F1 and ECE per group with bootstrap 95% intervals.

``openfer evaluate DATA --by COLUMN`` (a column of the data's CSV), ``--groups FILE`` (a side CSV
``path,group``) or ``--by face_size|yaw|brightness|blur`` (groups computed from the images,
:mod:`openfer.eval.attributes`) runs :func:`audit_groups` on the per-image predictions of
:func:`sample_scores`, the same predictions ``openfer evaluate`` scores.

Statistics (all pure numpy):

* Per group, the metrics of :func:`openfer.eval.metrics.classification_report` on the group's images
  (UAR and macro-F1 over the classes present in the group; ECE with 15 equal-width bins). In the detect
  mode, as in ``openfer evaluate``'s report: an image without a found face counts as an error for
  accuracy and UAR; macro-F1 and ECE are over the found faces.
* Intervals: percentile bootstrap, stratified by class: each class's images of the group resampled
  with replacement within the class, ``resamples`` times (default 1000), by
  ``numpy.random.default_rng(SeedSequence([seed, k]))`` for the k-th group; the interval is the 2.5th
  and 97.5th percentile of the resampled metric. (Unstratified resamples drop a group's rare classes
  now and then, and UAR averaged over fewer classes jumps: the interval would not be about the group's
  classes.) ECE is biased upwards on small samples, resamples included: its interval sits high.
* Gap and ratio, per metric, among groups with at least ``min_group`` images (default 30): the
  highest minus the lowest group value (the range among the groups) and lowest / highest, with a
  simultaneous 95% interval (:func:`simultaneous_interval`): ``gap -+ c``, c the 95th percentile of
  ``max - min`` over the groups of their centred resamples (the ratio likewise on the log scale). It
  allows for the two groups having been picked as highest and lowest among many.
* Warnings: a group under ``min_group`` images is reported but left out of the gap; a group of one
  image always gets its own warning (its metrics are 0 or 1 and its interval is a single point).
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .datasets import LabeledImages, relabel
from .evaluate import Evaluation

log = logging.getLogger("openfer")
SCHEMA = "openfer.subgroups/1"
METRICS = ("accuracy", "uar", "macro_f1", "ece")
LOWER_IS_BETTER = {"ece"}
ECE_BINS = 15
RESAMPLES = 1000
MIN_GROUP = 30


# ---------------------------------------------------------------- per-image predictions


@dataclass(frozen=True)
class SampleScores:
    """Per scored image (the labelled images of a data set whose class the model knows, in data order):
    ``pred[i]`` the predicted class (-1: no face found, detect mode), ``conf[i]`` its probability."""

    paths: tuple[Path, ...]
    labels: np.ndarray  # (N,) int64 over ``classes``
    pred: np.ndarray  # (N,) int64, -1 without a face
    conf: np.ndarray  # (N,) float64, NaN without a face
    classes: tuple[str, ...]
    mask: np.ndarray  # (len(data),) bool: which images of the data set these are
    results: tuple = field(default=(), repr=False)  # detect mode: each image's FrameResult (None: none)
    images: np.ndarray | None = field(default=None, repr=False)  # pixels from the label file (fer2013.csv)

    @property
    def found(self) -> np.ndarray:
        return self.pred >= 0

    def __len__(self) -> int:
        return len(self.paths)


class ResultRecorder:
    """An analyzer stand-in for :func:`~openfer.eval.evaluate.score_detect` that keeps each photo's
    result by source, so the subgroups see the very faces ``openfer evaluate`` scored."""

    def __init__(self, analyzer) -> None:  # noqa: ANN001
        self.analyzer, self.results = analyzer, {}

    @property
    def classes(self) -> tuple[str, ...]:
        return self.analyzer.classes

    def analyze(self, image, source: str | None = None):  # noqa: ANN001, ANN201
        try:
            res = self.analyzer.analyze(image, source=source)
        except InputError:
            self.results[source] = None
            raise
        self.results[source] = res
        return res


def largest_box(boxes: np.ndarray) -> int:
    """Index of the largest ``(x1, y1, x2, y2)`` box by area (the first of equals); -1: no boxes."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))) if len(b) else -1


def largest_face(res) -> int:  # noqa: ANN001
    """Index of the largest face (box area) of a FrameResult, as ``score_detect`` picks it; -1: none."""
    if res is None or not len(res.faces):
        return -1
    return largest_box(res.faces.boxes)


def sample_scores(data: LabeledImages, ev: Evaluation, recorder: ResultRecorder | None = None) -> SampleScores:
    """Per-image predictions behind an :class:`Evaluation` of ``data``: crops (``recorder`` None, every
    image scored) or detect (``recorder`` the :class:`ResultRecorder` ``score_detect`` ran on)."""
    ready = relabel(data, tuple(ev.classes))
    mask = ready.labels >= 0
    usable = ready.subset(mask)
    n = len(usable)
    pred = np.full(n, -1, np.int64)
    conf = np.full(n, np.nan)
    results: list = []
    if recorder is None:
        if len(ev.probs) != n:
            raise InputError(f"{data.name}: {len(ev.probs)} predictions for {n} images")
        pred[:] = ev.probs.argmax(1) if n else pred
        conf[:] = ev.probs.max(1) if n else conf
    else:
        found = []
        for i, p in enumerate(usable.paths):
            res = recorder.results.get(str(p))
            results.append(res)
            k = largest_face(res)
            if k >= 0:
                pr = np.asarray(res.faces.expressions[k], dtype=np.float64)
                pred[i], conf[i] = int(pr.argmax()), float(pr.max())
                found.append(i)
        if len(found) != len(ev.probs) or not np.array_equal(pred[found], ev.probs.argmax(1)):
            raise InputError(f"{data.name}: the recorded faces do not match the scored ones")
    return SampleScores(usable.paths, usable.labels, pred, conf, tuple(ev.classes), mask, tuple(results),
                        usable.images)


# ---------------------------------------------------------------- bootstrap metrics


def _metrics(y: np.ndarray, pred: np.ndarray, conf: np.ndarray, idx: np.ndarray, ncls: int) -> np.ndarray:
    """``(R, 4)`` accuracy, UAR, macro-F1, ECE of the ``R`` resamples ``idx`` ``(R, n)`` of one group."""
    r, n = idx.shape
    yy, pp = y[idx], np.where(pred[idx] < 0, ncls, pred[idx])  # column ncls: no face
    w = ncls + 1
    codes = (np.arange(r)[:, None] * (ncls * w) + yy * w + pp).ravel()
    cm = np.bincount(codes, minlength=r * ncls * w).reshape(r, ncls, w).astype(np.float64)
    tp = cm[:, np.arange(ncls), np.arange(ncls)]
    support = cm.sum(2)
    predicted = cm[:, :, :ncls].sum(1)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
    # macro-F1 over found faces (as openfer evaluate's report): recall among the found faces of a class
    support_f = cm[:, :, :ncls].sum(2)
    present_f = support_f > 0
    recall_f = np.divide(tp, support_f, out=np.zeros_like(tp), where=present_f)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    s = precision + recall_f
    f1 = np.divide(2 * precision * recall_f, s, out=np.zeros_like(tp), where=s > 0)
    k, kf = present.sum(1), present_f.sum(1)
    out = np.empty((r, 4))
    out[:, 0] = (yy == pp).mean(1) if n else np.nan
    out[:, 1] = np.where(k > 0, (recall * present).sum(1) / np.maximum(k, 1), np.nan)
    out[:, 2] = np.where(kf > 0, (f1 * present_f).sum(1) / np.maximum(kf, 1), np.nan)
    # ECE over found faces: sum over bins |sum correct - sum confidence| / number found
    c = conf[idx]
    ok = np.isfinite(c)
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    which = np.clip(np.searchsorted(edges, np.where(ok, c, 0.0), side="left") - 1, 0, ECE_BINS - 1)
    bin_codes = (np.arange(r)[:, None] * ECE_BINS + which)[ok]
    right = ((yy == pp) & ok)[ok].astype(np.float64)
    sum_right = np.bincount(bin_codes, weights=right, minlength=r * ECE_BINS).reshape(r, ECE_BINS)
    sum_conf = np.bincount(bin_codes, weights=c[ok], minlength=r * ECE_BINS).reshape(r, ECE_BINS)
    nf = ok.sum(1)
    out[:, 3] = np.where(nf > 0, np.abs(sum_right - sum_conf).sum(1) / np.maximum(nf, 1), np.nan)
    return out


def group_metrics(y: np.ndarray, pred: np.ndarray, conf: np.ndarray, ncls: int, resamples: int = RESAMPLES,
                  seed: int = 0, key: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point values ``(4,)``, the resampled values ``(resamples, 4)`` and the face-found rate of the
    point and of each resample ``(resamples + 1,)`` for one group (see the module doc for the rules)."""
    y, pred, conf = np.asarray(y, np.int64), np.asarray(pred, np.int64), np.asarray(conf, np.float64)
    n = len(y)
    if n == 0:
        raise InputError("a group needs at least one image")
    point = _metrics(y, pred, conf, np.arange(n)[None, :], ncls)[0]
    rng = np.random.default_rng(np.random.SeedSequence([seed, key]))
    boot = np.empty((resamples, 4))
    found = np.empty(resamples + 1)
    found[0] = (pred >= 0).mean()
    step = max(1, 2_000_000 // n)  # bound the memory of one block of resamples
    members = [np.flatnonzero(y == c) for c in np.unique(y)]
    for a in range(0, resamples, step):
        r = min(step, resamples - a)
        # stratified: each class's images resampled within the class, so every resample has the group's
        # class counts (UAR and macro-F1 average the same classes in every resample)
        idx = np.concatenate([m[rng.integers(0, len(m), size=(r, len(m)))] for m in members], axis=1)
        boot[a : a + len(idx)] = _metrics(y, pred, conf, idx, ncls)
        found[1 + a : 1 + a + len(idx)] = (pred[idx] >= 0).mean(1)
    return point, boot, found


def simultaneous_interval(gap: float, centred: Sequence[np.ndarray]) -> tuple[float, float]:
    """``gap -+ c``, c the 95th percentile over resamples of ``max_g u_g - min_g u_g`` where ``u_g`` are
    group g's resamples minus its point value (``centred``, one array per group, independent resamples).

    ``max - min`` of the centred resamples is the largest error over all pairwise differences, so the
    intervals ``d_ab -+ c`` hold for every pair at once (95%, as far as the bootstrap approximates), the
    pair that came out highest and lowest included, and ``range -+ c`` covers the true range among the
    groups. (The percentile interval of one pair's difference ignores that the pair was picked for being
    apart, and the percentile interval of the resampled range is never about 0: with equal groups both
    exclude 0 far more often than 5%.) Resamples where a group's value is not finite are left out."""
    u = np.vstack([np.asarray(c, np.float64) for c in centred])
    r = u.max(0) - u.min(0)
    r = r[np.isfinite(r)]
    if not len(r):
        return math.nan, math.nan
    c = float(np.percentile(r, 95))
    return gap - c, gap + c


def percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """2.5th and 97.5th percentile of the finite values (NaN, NaN when there are none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan, math.nan
    lo, hi = np.percentile(v, [2.5, 97.5])
    return float(lo), float(hi)


# ---------------------------------------------------------------- groups


@dataclass(frozen=True)
class Grouping:
    """A group name per scored image, the order of the groups, and how they were formed."""

    by: str
    names: tuple[str, ...]  # (N,) one per image
    order: tuple[str, ...]
    definition: str
    edges: tuple[float, ...] = ()


def _natural(values: Sequence[str]) -> list[str]:
    def key(v: str) -> tuple:
        try:
            return (0, float(v), v)
        except ValueError:
            return (1, 0.0, v)

    return sorted(set(values), key=key)


EMPTY = "(empty)"
NOT_LISTED = "(not listed)"


def _csv_columns(csv_path: Path) -> tuple[list[str], list[dict[str, str]]]:
    from .datasets import open_label_file

    with open_label_file(csv_path) as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        cols = [c for c in (reader.fieldnames or []) if c is not None]
    return cols, rows


def column_grouping(data: LabeledImages, scores: SampleScores, column: str, csv_path: Path) -> Grouping:
    """Groups from a column of the data's own ``path,label,...`` CSV (rows in the order
    :func:`~openfer.eval.datasets.read_csv_labels` read them). Column names match case-insensitively;
    an empty cell is the group ``(empty)``."""
    cols, rows = _csv_columns(csv_path)
    match = {c.strip().lower(): c for c in cols}
    col = match.get(column.strip().lower())
    if col is None:
        raise InputError(f"{csv_path}: no column {column!r}; its columns are {', '.join(cols)} "
                         "(or give --by face_size|yaw|brightness|blur, or --groups FILE)")
    if len(rows) != len(data):
        raise InputError(f"{csv_path}: {len(rows)} rows but the data set has {len(data)} images")
    values = np.array([(r.get(col) or "").strip() or EMPTY for r in rows], dtype=object)[scores.mask]
    names = tuple(str(v) for v in values)
    return Grouping(column, names, tuple(_natural(names)), f"column {col!r} of {csv_path.name}")


def side_grouping(scores: SampleScores, groups_csv: str | Path, data_root: Path | None = None) -> Grouping:
    """Groups from a side CSV with ``path`` and ``group`` columns (or the first two columns).

    A path is looked up relative to the side CSV's folder, then relative to ``data_root`` (the data
    set's folder), then as given. Scored images the file does not list get the group
    ``(not listed)``; listed paths that are not among the scored images are logged (count and first
    line) and ignored; a file none of whose paths is in the data set is an :class:`InputError`, as is
    a path listed twice with two different groups.
    """
    groups_csv = Path(groups_csv)
    if not groups_csv.is_file():
        raise InputError(f"{groups_csv}: not found")
    cols, rows = _csv_columns(groups_csv)
    if not rows or len(cols) < 2:
        raise InputError(f"{groups_csv}: needs a header and 'path' and 'group' columns, found {cols}")
    low = {c.strip().lower(): c for c in cols}
    pcol = low.get("path") or low.get("image") or low.get("file") or cols[0]
    gcol = low.get("group") or next(c for c in cols if c != pcol)
    index: dict[str, list[int]] = {}  # a file the data set lists twice is scored twice: both get the group
    for i, p in enumerate(scores.paths):
        index.setdefault(str(Path(p).resolve()), []).append(i)
    names = [NOT_LISTED] * len(scores)
    seen: dict[int, tuple[str, int]] = {}
    missing: list[tuple[int, str]] = []
    for lineno, r in enumerate(rows, 2):
        p = (r.get(pcol) or "").strip()
        g = (r.get(gcol) or "").strip() or EMPTY
        bases = [groups_csv.parent] + ([data_root] if data_root is not None else []) + [Path()]
        hits = next((index[k] for k in (str((b / p).resolve()) for b in bases) if k in index), None)
        if hits is None:
            missing.append((lineno, p))
            continue
        for i in hits:
            if i in seen and seen[i][0] != g:
                raise InputError(f"{groups_csv}:{lineno}: {p} is listed again with group {g!r} "
                                 f"(line {seen[i][1]}: {seen[i][0]!r})")
            seen[i] = (g, lineno)
            names[i] = g
    if not seen:
        raise InputError(f"{groups_csv}: none of its {len(rows)} paths is an image of the data set "
                         f"(first: {missing[0][1]!r}; paths are relative to {groups_csv.parent} or the data folder)")
    if missing:
        log.warning("%s: %d listed paths are not scored images of the data set and are ignored "
                    "(first: line %d, %s)", groups_csv, len(missing), missing[0][0], missing[0][1])
    order = _natural([n for n in names if n != NOT_LISTED]) + ([NOT_LISTED] if NOT_LISTED in names else [])
    return Grouping(gcol, tuple(names), tuple(order), f"column {gcol!r} of {groups_csv.name}")


# ---------------------------------------------------------------- the audit


@dataclass(frozen=True)
class GroupAudit:
    """The audit of one grouping: ``doc`` is the JSON document (fixed keys), ``boot`` the resampled
    metrics per group for the plot."""

    doc: dict
    boot: dict[str, np.ndarray] = field(repr=False)


def _finite(x: float) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def small_group_warning(name: str, n: int, min_group: int) -> str | None:
    """The stated rule: n == 1 always; n < ``min_group`` too small to compare (left out of the gap)."""
    if n == 1:
        return (f"group {name!r} has a single image: its metrics are 0 or 1 and its interval a single point; "
                "it says nothing about the group")
    if n < min_group:
        return f"group {name!r} has {n} images (< {min_group}): too few to compare; left out of the gaps"
    return None


def audit_groups(scores: SampleScores, grouping: Grouping, resamples: int = RESAMPLES, seed: int = 0,
                 min_group: int = MIN_GROUP) -> GroupAudit:
    """Metrics per group with percentile bootstrap intervals, gaps and ratios, small-group warnings."""
    if resamples < 1:
        raise InputError(f"resamples must be at least 1, got {resamples}")
    names = np.asarray(grouping.names, dtype=object)
    if len(names) != len(scores):
        raise InputError(f"grouping {grouping.by!r}: {len(names)} names for {len(scores)} images")
    ncls = len(scores.classes)
    groups, boots, warnings = [], {}, []
    detect = bool((~scores.found).any()) or bool(scores.results)
    for k, g in enumerate(grouping.order):
        m = names == g
        n = int(m.sum())
        if n == 0:
            continue
        point, boot, found = group_metrics(scores.labels[m], scores.pred[m], scores.conf[m], ncls,
                                           resamples, seed, k)
        boots[g] = boot
        entry = {"group": g, "n": n,
                 "counts": {c: int((scores.labels[m] == j).sum()) for j, c in enumerate(scores.classes)},
                 "metrics": {}}
        for j, metric in enumerate(METRICS):
            lo, hi = percentile_interval(boot[:, j])
            entry["metrics"][metric] = {"value": _finite(point[j]), "low": _finite(lo), "high": _finite(hi)}
        if detect:
            lo, hi = percentile_interval(found[1:])
            entry["face_found_rate"] = {"value": _finite(found[0]), "low": _finite(lo), "high": _finite(hi)}
        w = small_group_warning(g, n, min_group)
        entry["warning"] = w
        if w:
            warnings.append(w)
        groups.append(entry)
    overall_point = _metrics(scores.labels, scores.pred, scores.conf, np.arange(len(scores))[None, :], ncls)[0] \
        if len(scores) else np.full(4, np.nan)
    gaps = {}
    eligible = [e for e in groups if e["n"] >= min_group]
    for j, metric in enumerate(METRICS):
        vals = [(e["metrics"][metric]["value"], e["group"]) for e in eligible
                if e["metrics"][metric]["value"] is not None]
        if len(vals) < 2:
            gaps[metric] = None
            continue
        hi_v, hi_g = max(vals, key=lambda t: t[0])
        lo_v, lo_g = min(vals, key=lambda t: t[0])
        dlo, dhi = simultaneous_interval(hi_v - lo_v, [boots[g][:, j] - v for v, g in vals])
        ratio = lo_v / hi_v if hi_v > 0 and lo_v > 0 else None
        rlo = rhi = None
        if ratio is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                rlo, rhi = simultaneous_interval(math.log(ratio), [np.log(boots[g][:, j]) - math.log(v)
                                                                  for v, g in vals])
            rlo, rhi = (math.exp(rlo), math.exp(rhi)) if np.isfinite(rlo) else (None, None)
        worst = hi_g if metric in LOWER_IS_BETTER else lo_g
        gaps[metric] = {"highest": hi_g, "lowest": lo_g, "worst": worst, "gap": hi_v - lo_v,
                        "gap_low": _finite(dlo), "gap_high": _finite(dhi),
                        "ratio": _finite(lo_v / hi_v) if hi_v else None,
                        "ratio_low": _finite(rlo), "ratio_high": _finite(rhi)}
    if len(eligible) < 2:
        warnings.append(f"fewer than two groups with at least {min_group} images: no gap reported")
    doc = {
        "schema": SCHEMA,
        "by": grouping.by,
        "definition": grouping.definition,
        "edges": [float(e) for e in grouping.edges],
        "n": int(len(scores)),
        "classes": list(scores.classes),
        "bootstrap": {"resamples": int(resamples), "seed": int(seed), "interval": "percentile, 95% (2.5th-97.5th)",
                      "unit": "images, resampled with replacement within each class of each group (stratified)"},
        "min_group": int(min_group),
        "rules": {
            "no_face": "detect mode: an image without a found face counts as an error in accuracy and UAR; "
                       "macro-F1 and ECE are over found faces (as openfer evaluate)",
            "gap": f"highest minus lowest group value (the range among groups) among groups with >= {min_group} "
                   "images; interval: simultaneous 95% over all pairs of those groups, gap +- c with c the 95th "
                   "percentile over resamples of max - min of the groups' centred resamples (resample - point), "
                   "so it allows for the two groups being picked as highest and lowest; it covers the true range",
            "ratio": "lowest / highest group value; interval likewise on the log scale (none when a value is 0)",
            "small": f"n < {min_group}: warned and left out of the gaps; n = 1: always warned",
        },
        "overall": {m: _finite(overall_point[j]) for j, m in enumerate(METRICS)},
        "groups": groups,
        "gaps": gaps,
        "warnings": warnings,
    }
    return GroupAudit(doc, boots)
