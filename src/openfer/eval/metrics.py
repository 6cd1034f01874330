"""Classification metrics on integer labels and probability matrices, and regression metrics
(concordance correlation, RMSE) on continuous targets such as valence/arousal (pure numpy)."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``C[i, j]`` = number of samples of true class i predicted as j."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def per_class(conf: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix (0 where undefined)."""
    tp = np.diag(conf).astype(np.float64)
    pred = conf.sum(0).astype(np.float64)
    true = conf.sum(1).astype(np.float64)
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    recall = np.divide(tp, true, out=np.zeros_like(tp), where=true > 0)
    s = precision + recall
    f1 = np.divide(2 * precision * recall, s, out=np.zeros_like(tp), where=s > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": true.astype(np.int64)}


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """ECE with ``bins`` equal-width confidence bins (Guo et al. 2017): sum over bins of
    ``|bin| / N * |accuracy(bin) - mean confidence(bin)|``."""
    p = np.asarray(probs, dtype=np.float64)
    if len(p) == 0:
        return float("nan")
    conf = p.max(1)
    correct = (p.argmax(1) == np.asarray(y_true)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bin b holds confidences in (edges[b], edges[b+1]]; a confidence of exactly 0 joins bin 0
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def reliability_bins(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> dict[str, list[float]]:
    """Per-bin mean confidence, accuracy and count, for reliability diagrams."""
    p = np.asarray(probs, dtype=np.float64)
    conf = p.max(1)
    correct = (p.argmax(1) == np.asarray(y_true)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    out: dict[str, list[float]] = {"confidence": [], "accuracy": [], "count": []}
    for b in range(bins):
        m = which == b
        out["confidence"].append(float(conf[m].mean()) if m.any() else float("nan"))
        out["accuracy"].append(float(correct[m].mean()) if m.any() else float("nan"))
        out["count"].append(int(m.sum()))
    return out


def classification_report(probs: np.ndarray, y_true: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Accuracy, UAR (macro recall), macro F1, per-class metrics, confusion matrix and 15-bin ECE."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    pred = p.argmax(1) if len(p) else np.zeros(0, np.int64)
    conf = confusion_matrix(y, pred, len(classes))
    pc = per_class(conf)
    present = pc["support"] > 0
    return {
        "n": int(len(y)),
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "uar": float(pc["recall"][present].mean()) if present.any() else float("nan"),
        "macro_f1": float(pc["f1"][present].mean()) if present.any() else float("nan"),
        "ece": expected_calibration_error(p, y),
        "per_class": {
            c: {k: (int(v[i]) if k == "support" else float(v[i])) for k, v in pc.items()}
            for i, c in enumerate(classes)
        },
        "confusion": {"labels": list(classes), "matrix": conf.tolist()},
    }


def _pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if t.ndim not in (1, 2):
        raise ShapeError("target", "(N,) or (N, K)", t.shape)
    if p.shape != t.shape:
        raise ShapeError("pred", str(t.shape), p.shape)
    return p, t


def ccc(pred: np.ndarray, target: np.ndarray) -> float | np.ndarray:
    """Lin's (1989) concordance correlation coefficient, per column.

    ``2 cov(p, t) / (var(p) + var(t) + (mean(p) - mean(t))^2)`` with population (1/N) moments: 1 for
    perfect agreement, 0 for none, negative for anti-agreement; unlike Pearson's r it is lowered by
    any shift or scaling of the predictions. ``(N,)`` inputs give a float, ``(N, K)`` a ``(K,)``
    array. A column where both sides are the same constant counts as perfect agreement (1.0); an
    empty input gives NaN.
    """
    p, t = _pair(pred, target)
    if len(p) == 0:
        out = np.full(p.shape[1:], np.nan)
    else:
        mp, mt = p.mean(0), t.mean(0)
        cov = ((p - mp) * (t - mt)).mean(0)
        den = p.var(0) + t.var(0) + (mp - mt) ** 2
        out = np.where(den > 0, 2.0 * cov / np.where(den > 0, den, 1.0), 1.0)
    return float(out) if p.ndim == 1 else np.asarray(out, dtype=np.float64)


def regression_report(pred: np.ndarray, target: np.ndarray, names: tuple[str, ...]) -> dict:
    """CCC (per column and mean), RMSE and MAE per column for ``(N, K)`` predictions over ``names``
    (e.g. ``("valence", "arousal")``)."""
    p, t = _pair(pred, target)
    if p.ndim != 2 or p.shape[1] != len(names):
        raise ShapeError("pred", f"(N, {len(names)})", p.shape)
    c = np.atleast_1d(ccc(p, t))
    n = len(p)
    rmse = np.sqrt(((p - t) ** 2).mean(0)) if n else np.full(len(names), np.nan)
    mae = np.abs(p - t).mean(0) if n else np.full(len(names), np.nan)
    return {
        "n": int(n),
        "ccc": {k: float(v) for k, v in zip(names, c, strict=True)},
        "ccc_mean": float(c.mean()),
        "rmse": {k: float(v) for k, v in zip(names, rmse, strict=True)},
        "mae": {k: float(v) for k, v in zip(names, mae, strict=True)},
    }
