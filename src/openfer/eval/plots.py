"""Evaluation figures: confusion matrix and reliability diagram as PNG (needs ``openfer[plots]``).

matplotlib is imported inside the functions, so ``import openfer`` (and ``openfer.eval``) never loads
it. Figures are drawn on a bare :class:`matplotlib.figure.Figure` (no pyplot, no global state) and
written atomically: a temp file in the target folder, then ``os.replace``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..extras import require
from .metrics import expected_calibration_error, reliability_bins

RELIABILITY_BINS = 15


def _figure(width: float, height: float) -> Any:
    Figure = require("matplotlib.figure", "plots", "plots").Figure
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save_png(fig: Any, path: str | Path) -> Path:
    from ..io.tables import atomic_open

    path = Path(path)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png")
    return path


def plot_confusion(report: dict, path: str | Path) -> Path:
    """Confusion matrix of a :func:`~openfer.eval.metrics.classification_report`: colours are the
    row-normalised rates (recall on the diagonal), each cell annotated with its count."""
    try:
        labels = list(report["confusion"]["labels"])
        counts = np.asarray(report["confusion"]["matrix"], dtype=np.int64).reshape(len(labels), len(labels))
    except (KeyError, TypeError, ValueError):
        raise InputError("report: expected a 'confusion' entry with 'labels' and a square 'matrix'") from None
    rows = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, rows, out=np.zeros(counts.shape, np.float64), where=rows > 0)
    k = len(labels)
    fig = _figure(1.6 + 0.75 * k, 1.2 + 0.7 * k)
    ax = fig.add_subplot()
    im = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of true class")
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(counts[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if rates[i, j] > 0.5 else "black",
            )
    acc = report.get("accuracy")
    title = f"confusion (n={int(counts.sum())}"
    title += f", accuracy {acc:.3f})" if isinstance(acc, float) and np.isfinite(acc) else ")"
    ax.set_title(title)
    return _save_png(fig, path)


def plot_reliability(probs: np.ndarray, labels: np.ndarray, path: str | Path) -> Path:
    """Reliability diagram: accuracy per confidence bin (15 equal-width bins) against the diagonal,
    with the expected calibration error in the title."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if p.ndim != 2 or y.shape != (len(p),):
        raise InputError(f"probs/labels: expected (N, C) and (N,), got {p.shape} and {y.shape}")
    bins = (
        reliability_bins(p, y, RELIABILITY_BINS)
        if len(p)
        else {"accuracy": [np.nan] * RELIABILITY_BINS, "count": [0] * RELIABILITY_BINS}
    )
    ece = expected_calibration_error(p, y, RELIABILITY_BINS)
    width = 1.0 / RELIABILITY_BINS
    centers = (np.arange(RELIABILITY_BINS) + 0.5) * width
    acc = np.nan_to_num(np.asarray(bins["accuracy"], dtype=np.float64), nan=0.0)
    fig = _figure(5.0, 5.0)
    ax = fig.add_subplot()
    ax.bar(centers, acc, width=width, edgecolor="black", color="tab:blue", alpha=0.8, label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left")
    ece_text = f"{ece:.4f}" if np.isfinite(ece) else "n/a"
    ax.set_title(f"reliability (n={len(p)}, {RELIABILITY_BINS} bins, ECE {ece_text})")
    return _save_png(fig, path)
