"""Classification metrics on integer labels and probability matrices (pure numpy)."""

from __future__ import annotations

import numpy as np


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
