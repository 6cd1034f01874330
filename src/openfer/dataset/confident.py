"""Confident learning (Northcutt, Jiang and Chuang, *Confident Learning: Estimating Uncertainty in Dataset
Labels*, JAIR 70, 2021), written from the paper in numpy.

Given labels ``y~`` and out-of-sample predicted probabilities ``p`` (``(N, C)``, each row sums to 1):

1. per-class thresholds ``t_j``: the mean self-confidence ``p_j`` of the samples labelled ``j`` (eq. 2);
2. the confident joint ``C[i, j]``: samples labelled ``i`` whose ``p_j >= t_j``; a sample above several
   thresholds counts once, for the class of its largest ``p`` among them; a sample above none is not counted;
3. calibrated to the label counts (eq. 3): each row of ``C`` rescaled to sum to the number of samples labelled
   ``i``, then the whole matrix to sum to 1: ``Q[i, j]``, the estimated joint of given and true label;
4. the issues: *prune by noise rate* (for each off-diagonal ``(i, j)``, the ``round(N * Q[i, j])`` samples
   labelled ``i`` with the largest margin ``p_j - p_i``), *prune by class* (for each class ``i``, the
   ``round(N * sum_{j != i} Q[i, j])`` samples labelled ``i`` with the lowest self-confidence), both (their
   intersection), or the off-diagonal entries of the confident joint itself;
5. a ranking by label quality: self-confidence ``p_y~`` or the normalised margin
   ``(p_y~ - max_{k != y~} p_k + 1) / 2`` (both in [0, 1]; low = likely wrong).

A class nobody is labelled with has no threshold (``t_j = inf``): no sample is counted for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError

FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_joint")
RANKINGS = ("self_confidence", "normalized_margin")


def _check(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or y.ndim != 1 or len(y) != len(p):
        raise ShapeError("labels/probs", f"(N,) and (N={len(y)}, C)", p.shape)
    if len(y) and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must index the {p.shape[1]} classes of probs")
    return y.astype(np.int64), p


def per_class_thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``t_j``: mean ``probs[:, j]`` over the samples labelled ``j`` (``inf`` for a class with none)."""
    y, p = _check(labels, probs)
    c = p.shape[1]
    n = np.bincount(y, minlength=c).astype(np.float64)
    s = np.zeros(c)
    np.add.at(s, y, p[np.arange(len(y)), y])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.inf)


def confident_assignments(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per sample the class it is confidently counted for (-1: above no threshold)."""
    p = np.asarray(probs, dtype=np.float64)
    above = p >= np.asarray(thresholds)[None, :]
    masked = np.where(above, p, -np.inf)
    out = masked.argmax(axis=1)
    return np.where(above.any(axis=1), out, -1)


def confident_joint(labels: np.ndarray, probs: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
    """``(C, C)`` int64 counts: rows the given label, columns the confidently predicted (true) label."""
    y, p = _check(labels, probs)
    t = per_class_thresholds(y, p) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    a = confident_assignments(p, t)
    c = p.shape[1]
    keep = a >= 0
    joint = np.zeros((c, c), np.int64)
    np.add.at(joint, (y[keep], a[keep]), 1)
    return joint


def calibrate_joint(joint: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    """``Q``: each row of ``joint`` rescaled to its class's label count, the whole summing to 1. A class with
    labels but no confidently counted sample keeps them all on the diagonal (no evidence of noise)."""
    cj = np.asarray(joint, dtype=np.float64)
    n = np.asarray(label_counts, dtype=np.float64)
    rows = cj.sum(axis=1)
    out = np.zeros_like(cj)
    for i in range(len(cj)):
        if rows[i] > 0:
            out[i] = cj[i] / rows[i] * n[i]
        else:
            out[i, i] = n[i]
    total = out.sum()
    return out / total if total > 0 else out


def noise_rates(q: np.ndarray) -> np.ndarray:
    """Per given class ``i``: the estimated share of its samples whose true label is another class,
    ``1 - Q[i, i] / sum_j Q[i, j]`` (NaN for a class with no samples)."""
    q = np.asarray(q, dtype=np.float64)
    rows = q.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, 1.0 - np.diag(q) / rows, np.nan)


def self_confidence(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    y, p = _check(labels, probs)
    return p[np.arange(len(y)), y]


def best_other(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per sample the most probable class other than its given label."""
    y, p = _check(labels, probs)
    q = p.copy()
    q[np.arange(len(y)), y] = -np.inf
    return q.argmax(axis=1)


def normalized_margin(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    y, p = _check(labels, probs)
    other = p[np.arange(len(y)), best_other(y, p)]
    return (p[np.arange(len(y)), y] - other + 1.0) / 2.0


def _prune_by_noise_rate(y: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    n, c = p.shape
    out = np.zeros(n, bool)
    for i in range(c):
        members = np.flatnonzero(y == i)
        for j in range(c):
            if i == j or not len(members):
                continue
            k = min(int(round(n * q[i, j])), len(members))
            if k <= 0:
                continue
            margin = p[members, j] - p[members, i]
            order = np.lexsort((members, -margin))  # largest margin first; ties by index
            out[members[order[:k]]] = True
    return out


def _prune_by_class(y: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    n, c = p.shape
    out = np.zeros(n, bool)
    sc = p[np.arange(n), y]
    for i in range(c):
        members = np.flatnonzero(y == i)
        k = min(int(round(n * (q[i].sum() - q[i, i]))), len(members))
        if k <= 0:
            continue
        order = np.lexsort((members, sc[members]))  # lowest self-confidence first
        out[members[order[:k]]] = True
    return out


@dataclass(frozen=True)
class ConfidentResult:
    """Everything confident learning estimates about one labelled set (arrays over its ``N`` samples)."""

    thresholds: np.ndarray  # (C,) t_j
    joint: np.ndarray  # (C, C) int64 confident joint, rows given label, columns true label
    calibrated: np.ndarray  # (C, C) Q, sums to 1
    noise_rate: np.ndarray  # (C,) P(true != i | given i)
    issue: np.ndarray  # (N,) bool, the flagged samples
    suggested: np.ndarray  # (N,) int64, the most probable class other than the given one
    self_confidence: np.ndarray  # (N,) p of the given label
    normalized_margin: np.ndarray  # (N,)
    score: np.ndarray  # (N,) label quality by the chosen ranking (low: likely wrong)
    ranking: str
    filter: str

    @property
    def ranked(self) -> np.ndarray:
        """Indices of the flagged samples, most likely wrong first (ties by index)."""
        idx = np.flatnonzero(self.issue)
        return idx[np.lexsort((idx, self.score[idx]))]


def find_label_issues(labels: np.ndarray, probs: np.ndarray, *, filter: str = "prune_by_noise_rate",  # noqa: A002
                      ranking: str = "self_confidence") -> ConfidentResult:
    """Confident learning on given ``labels`` ``(N,)`` and out-of-sample ``probs`` ``(N, C)``."""
    if filter not in FILTERS:
        raise ValueError(f"filter must be one of {', '.join(FILTERS)}, got {filter!r}")
    if ranking not in RANKINGS:
        raise ValueError(f"ranking must be one of {', '.join(RANKINGS)}, got {ranking!r}")
    y, p = _check(labels, probs)
    c = p.shape[1]
    t = per_class_thresholds(y, p)
    cj = confident_joint(y, p, t)
    q = calibrate_joint(cj, np.bincount(y, minlength=c))
    if filter == "prune_by_noise_rate":
        issue = _prune_by_noise_rate(y, p, q)
    elif filter == "prune_by_class":
        issue = _prune_by_class(y, p, q)
    elif filter == "both":
        issue = _prune_by_noise_rate(y, p, q) & _prune_by_class(y, p, q)
    else:
        a = confident_assignments(p, t)
        issue = (a >= 0) & (a != y)
    sc, nm = self_confidence(y, p), normalized_margin(y, p)
    return ConfidentResult(thresholds=t, joint=cj, calibrated=q, noise_rate=noise_rates(q), issue=issue,
                           suggested=best_other(y, p), self_confidence=sc, normalized_margin=nm,
                           score=sc if ranking == "self_confidence" else nm, ranking=ranking, filter=filter)
