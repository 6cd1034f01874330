"""Out-of-sample probabilities for images a model was trained on: K-fold cross-validated predictions of a
linear softmax head on frozen features (the shipped network's penultimate layer).

Folds are a seeded random permutation cut into ``k`` near-equal parts; they do not depend on the labels,
so a sample's label can reach neither its fold nor the head that predicts it. Each fold's head is fitted on
the other folds only: features standardised with those folds' mean and spread, full-batch Adam on the
cross-entropy against the given (hard) labels plus an L2 penalty, from zeros; the products in float32 (twice
as fast as float64 on a CPU; the statistics, the optimiser state and the returned head are float64). Deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError


@dataclass(frozen=True)
class HeadOptions:
    l2: float = 1e-3  # on the standardised features, against the mean cross-entropy
    steps: int = 300
    lr: float = 0.05


@dataclass(frozen=True)
class SoftmaxHead:
    """``logits = features @ weight.T + bias`` for raw (not standardised) features."""

    weight: np.ndarray  # (C, D)
    bias: np.ndarray  # (C,)

    def logits(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.weight.T + self.bias

    def probs(self, features: np.ndarray) -> np.ndarray:
        return softmax(self.logits(features))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_softmax_head(features: np.ndarray, labels: np.ndarray, n_classes: int,
                     options: HeadOptions = HeadOptions()) -> SoftmaxHead:
    """Multinomial logistic regression on ``(N, D)`` features and labels in ``0..n_classes-1``."""
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if f.ndim != 2 or y.shape != (len(f),):
        raise ShapeError("features/labels", f"(N, D) and (N={len(f)},)", y.shape)
    if not len(f):
        raise ValueError("no samples to fit a head on")
    mu, sd = f.mean(0), f.std(0) + 1e-6
    z = ((f - mu) / sd).astype(np.float32)
    zt = np.ascontiguousarray(z.T)  # (D, N): zt @ g is ~10x faster than g.T @ z in OpenBLAS
    t = np.zeros((len(y), n_classes), np.float32)
    t[np.arange(len(y)), y] = 1.0
    w, b = np.zeros((n_classes, f.shape[1])), np.zeros(n_classes)
    params = [w, b]
    m = [np.zeros_like(a) for a in params]
    v = [np.zeros_like(a) for a in params]
    inv_n = 1.0 / len(y)
    for step in range(1, options.steps + 1):
        logits = z @ np.ascontiguousarray(w.T, dtype=np.float32) + b.astype(np.float32)
        g = ((softmax(logits) - t) * inv_n).astype(np.float32)
        grads = [(zt @ g).T.astype(np.float64) + options.l2 * w, g.sum(0, dtype=np.float64)]
        for i, (pa, gr) in enumerate(zip(params, grads, strict=True)):
            m[i] = 0.9 * m[i] + 0.1 * gr
            v[i] = 0.999 * v[i] + 0.001 * gr * gr
            pa -= options.lr * (m[i] / (1 - 0.9**step)) / (np.sqrt(v[i] / (1 - 0.999**step)) + 1e-8)
    return SoftmaxHead(w / sd[None], b - (w / sd[None]) @ mu)


def fold_of(n: int, k: int, seed: int = 0) -> np.ndarray:
    """``(n,)`` fold index in ``0..k-1`` of each sample: a seeded permutation cut into ``k`` parts."""
    if k < 2:
        raise ValueError(f"K-fold needs k >= 2, got {k}")
    if n < k:
        raise ValueError(f"K-fold with k={k} needs at least {k} samples, got {n}")
    folds = np.empty(n, np.int64)
    for f, part in enumerate(np.array_split(np.random.default_rng(seed).permutation(n), k)):
        folds[part] = f
    return folds


def cross_val_probs(features: np.ndarray, labels: np.ndarray, n_classes: int, k: int = 5, seed: int = 0,
                    options: HeadOptions = HeadOptions()) -> np.ndarray:
    """``(N, n_classes)`` probabilities, each row from a head fitted without the sample's fold."""
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    folds = fold_of(len(f), k, seed)
    out = np.zeros((len(f), n_classes))
    for fold in range(k):
        test = folds == fold
        head = fit_softmax_head(f[~test], y[~test], n_classes, options)
        out[test] = head.probs(f[test])
    return out
