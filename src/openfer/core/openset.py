"""Open-set scores: how unlike the known expression classes a face is (higher = more unknown).

Three scores over a classifier's outputs, all "higher means unknown":

* :func:`msp_score` -- one minus the maximum softmax probability (Hendrycks & Gimpel, 2017);
* :func:`energy_score` -- the negative free energy ``-T logsumexp(logits / T)`` (Liu et al., 2020);
* :class:`Mahalanobis` -- the smallest class-conditional Mahalanobis distance of the penultimate
  features, with one covariance shared by the classes (Lee et al., 2018), fitted on training features;
* :class:`NearestNeighbours` -- the distance to the k-th nearest known training sample of any
  standardised feature vector (Sun et al., 2022, "Out-of-distribution detection with deep nearest
  neighbors"); ``scripts/openset_protocol.py`` applies it to the AU intensities.

:func:`auroc` and :func:`fpr_at_tpr` evaluate a score (unknown = positive), and
:func:`threshold_at_tpr` picks the threshold that keeps a given share of known faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError


def _logits(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ShapeError("logits", "(N, C)", x.shape)
    return x


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = _logits(logits) / temperature
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def msp_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``1 - max softmax probability``: in [0, 1 - 1/C]."""
    return 1.0 - softmax(logits, temperature).max(1)


def energy_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Negative free energy ``-T log sum exp(logits / T)``: low for confident known inputs."""
    z = _logits(logits) / temperature
    m = z.max(1)
    return -temperature * (m + np.log(np.exp(z - m[:, None]).sum(1)))


@dataclass(frozen=True)
class Mahalanobis:
    """Class means ``(C, D)`` and the shared precision matrix ``(D, D)`` of penultimate features."""

    means: np.ndarray
    precision: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, shrinkage: float = 1e-3) -> Mahalanobis:
        """Fit on ``(N, D)`` training features with integer ``labels`` in ``[0, C)``; every class
        needs at least one sample. ``shrinkage`` adds that fraction of the mean variance to the
        diagonal (keeps the covariance invertible when D is close to N)."""
        f = np.asarray(features, dtype=np.float64)
        y = np.asarray(labels).reshape(-1)
        if f.ndim != 2 or len(f) != len(y):
            raise ShapeError("features", f"(N={len(y)}, D)", f.shape)
        classes = int(y.max()) + 1
        counts = np.bincount(y, minlength=classes)
        if (counts == 0).any():
            raise ValueError(
                f"every class needs training features; empty: {np.flatnonzero(counts == 0).tolist()}"
            )
        means = np.stack([f[y == c].mean(0) for c in range(classes)])
        centred = f - means[y]
        cov = centred.T @ centred / len(f)
        cov += np.eye(len(cov)) * shrinkage * np.trace(cov) / len(cov)
        return cls(means, np.linalg.inv(cov))

    def distances(self, features: np.ndarray) -> np.ndarray:
        """``(N, C)`` squared Mahalanobis distances to each class mean."""
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[1] != self.means.shape[1]:
            raise ShapeError("features", f"(N, {self.means.shape[1]})", f.shape)
        d = f[:, None, :] - self.means[None]
        return np.einsum("ncd,de,nce->nc", d, self.precision, d)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Distance to the nearest class mean (squared Mahalanobis): the open-set score."""
        return self.distances(features).min(1)


@dataclass(frozen=True)
class NearestNeighbours:
    """Squared Euclidean distance to the ``k``-th nearest reference vector, after standardising
    each dimension with the reference's mean and standard deviation."""

    reference: np.ndarray  # (M, D), standardised
    mean: np.ndarray
    std: np.ndarray
    k: int

    @classmethod
    def fit(
        cls, features: np.ndarray, k: int = 10, max_reference: int = 6000, seed: int = 0
    ) -> NearestNeighbours:
        """Keep (a seeded sample of at most ``max_reference`` of) the ``(N, D)`` known ``features``."""
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2:
            raise ShapeError("features", "(N, D)", f.shape)
        if len(f) <= k:
            raise ValueError(f"need more than k={k} reference vectors, got {len(f)}")
        mean, std = f.mean(0), f.std(0) + 1e-9
        if len(f) > max_reference:
            f = f[np.sort(np.random.default_rng(seed).choice(len(f), max_reference, replace=False))]
        return cls((f - mean) / std, mean, std, int(k))

    def score(self, features: np.ndarray, chunk: int = 1024) -> np.ndarray:
        """``(N,)`` squared distance of each row of ``features`` to its k-th nearest reference."""
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[1] != self.reference.shape[1]:
            raise ShapeError("features", f"(N, {self.reference.shape[1]})", f.shape)
        z = (f - self.mean) / self.std
        r2 = (self.reference**2).sum(1)
        out = np.empty(len(z))
        for i in range(0, len(z), chunk):
            q = z[i : i + chunk]
            d = np.maximum((q**2).sum(1)[:, None] - 2 * q @ self.reference.T + r2[None], 0.0)
            out[i : i + chunk] = np.partition(d, self.k - 1, axis=1)[:, self.k - 1]
        return out


@dataclass(frozen=True)
class OpenSetCalibration:
    """Turns raw open-set evidence into a score in [0, 1] that reads as a percentile.

    ``raw = sum_k weights[k] * (s_k - mean_k) / std_k`` over the scores ``s_k`` (``"mahalanobis"``,
    ``"msp"``), standardised on known-expression validation faces; ``unknown_score`` is the share of
    those validation faces with a lower ``raw`` (``quantiles`` hold ``raw`` at evenly spaced shares
    0, 1/Q, ..., 1). So ``unknown_score > 0.95`` flags a face more atypical than 95% of known faces.
    """

    weights: dict[str, float]
    stats: dict[str, tuple[float, float]]  # mean, std of each score on the known validation faces
    quantiles: tuple[float, ...]

    @classmethod
    def fit(
        cls, known: dict[str, np.ndarray], weights: dict[str, float], levels: int = 200
    ) -> OpenSetCalibration:
        stats = {k: (float(np.mean(known[k])), float(np.std(known[k]) + 1e-12)) for k in weights}
        cal = cls(dict(weights), stats, ())
        raw = cal.raw(**{k: known[k] for k in weights})
        q = np.quantile(raw, np.linspace(0, 1, levels + 1))
        return cls(dict(weights), stats, tuple(float(v) for v in np.maximum.accumulate(q)))

    def raw(self, **scores: np.ndarray) -> np.ndarray:
        missing = set(self.weights) - set(scores)
        if missing:
            raise ValueError(f"open-set calibration needs the scores {sorted(missing)}")
        out = 0.0
        for k, w in self.weights.items():
            m, sd = self.stats[k]
            out = out + w * (np.asarray(scores[k], dtype=np.float64) - m) / sd
        return np.asarray(out, dtype=np.float64)

    def __call__(self, **scores: np.ndarray) -> np.ndarray:
        """Open-set scores in [0, 1] from the raw scores named in ``weights``."""
        levels = np.linspace(0, 1, len(self.quantiles))
        return np.interp(self.raw(**scores), self.quantiles, levels)

    def to_dict(self) -> dict:
        return {
            "weights": self.weights,
            "stats": {k: list(v) for k, v in self.stats.items()},
            "quantiles": list(self.quantiles),
        }

    @classmethod
    def from_dict(cls, d: dict) -> OpenSetCalibration:
        q = tuple(float(v) for v in d["quantiles"])
        if len(q) < 2 or any(b < a for a, b in zip(q, q[1:], strict=False)):
            raise ValueError("open-set quantiles must be at least 2 non-decreasing values")
        return cls(
            {str(k): float(v) for k, v in d["weights"].items()},
            {str(k): (float(v[0]), float(v[1])) for k, v in d["stats"].items()},
            q,
        )


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """Area under the ROC curve for telling ``unknown`` (positive) from ``known`` by a score that
    is higher for unknowns; ties count one half (Mann-Whitney U)."""
    k, u = np.asarray(known, dtype=np.float64).ravel(), np.asarray(unknown, dtype=np.float64).ravel()
    if not len(k) or not len(u):
        raise ValueError("auroc needs known and unknown samples")
    allv = np.concatenate([k, u])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv))
    sv = allv[order]
    # average ranks over ties
    start = 0
    for i in range(1, len(sv) + 1):
        if i == len(sv) or sv[i] != sv[start]:
            ranks[order[start:i]] = (start + i + 1) / 2
            start = i
    r_u = ranks[len(k) :].sum()
    return float((r_u - len(u) * (len(u) + 1) / 2) / (len(u) * len(k)))


def threshold_at_tpr(known: np.ndarray, tpr: float = 0.95) -> float:
    """Score threshold below which a share ``tpr`` of ``known`` faces stays (label kept): a face
    is called unknown when its score is above it."""
    return float(np.quantile(np.asarray(known, dtype=np.float64), tpr))


def fpr_at_tpr(known: np.ndarray, unknown: np.ndarray, tpr: float = 0.95) -> float:
    """Share of ``unknown`` faces taken as known when the threshold keeps ``tpr`` of the known
    ones (FPR@95%TPR with known faces as the positive class, as in the OOD literature)."""
    t = threshold_at_tpr(known, tpr)
    return float((np.asarray(unknown, dtype=np.float64) <= t).mean())


__all__ = [
    "Mahalanobis",
    "NearestNeighbours",
    "OpenSetCalibration",
    "auroc",
    "energy_score",
    "fpr_at_tpr",
    "msp_score",
    "softmax",
    "threshold_at_tpr",
]
