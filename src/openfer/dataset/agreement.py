"""Annotator agreement from vote counts (pure numpy): Fleiss' kappa, per-category kappa, vote entropy,
majority share.

``counts`` is an ``(N, K)`` array: ``counts[i, j]`` raters put item ``i`` in category ``j``. Fleiss
(1971) assumes the same number of raters per item; items with another number are handled with the
per-item agreement ``P_i = sum_j n_ij (n_ij - 1) / (n_i (n_i - 1))`` and category shares pooled over
all votes, which reduces to Fleiss' formula when every ``n_i`` is equal. Items with fewer than two
votes carry no agreement information and are left out of kappa.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError


def _counts(counts: np.ndarray) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] < 2:
        raise ShapeError("counts", "(N, K) with K >= 2", c.shape)
    if not np.isfinite(c).all() or (c < 0).any():
        raise ValueError("counts must be finite and non-negative")
    return c


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa over all categories: ``(P - P_e) / (1 - P_e)`` with ``P`` the mean per-item
    agreement and ``P_e = sum_j p_j^2``. NaN when fewer than one item has two votes or ``P_e == 1``."""
    c = _counts(counts)
    n = c.sum(axis=1)
    c = c[n >= 2]
    n = n[n >= 2]
    if len(c) == 0:
        return float("nan")
    p_i = ((c * (c - 1)).sum(axis=1)) / (n * (n - 1))
    p_j = c.sum(axis=0) / c.sum()
    p_bar, p_e = p_i.mean(), float((p_j**2).sum())
    return float((p_bar - p_e) / (1 - p_e)) if p_e < 1 else float("nan")


def category_kappa(counts: np.ndarray) -> np.ndarray:
    """Fleiss' (1971) kappa of each category against all the others (eq. 9 there):
    ``1 - sum_i n_ij (n_i - n_ij) / (sum_i n_i (n_i - 1) p_j (1 - p_j))``; NaN for a category
    that no one or every one chose."""
    c = _counts(counts)
    n = c.sum(axis=1)
    c = c[n >= 2]
    n = n[n >= 2]
    out = np.full(c.shape[1], np.nan)
    if len(c) == 0:
        return out
    p = c.sum(axis=0) / c.sum()
    disagree = (c * (n[:, None] - c)).sum(axis=0)
    den = (n * (n - 1)).sum() * p * (1 - p)
    ok = den > 0
    out[ok] = 1 - disagree[ok] / den[ok]
    return out


def vote_entropy(counts: np.ndarray) -> np.ndarray:
    """Shannon entropy (bits) of each item's vote distribution; 0 = unanimous. NaN without votes."""
    c = _counts(counts)
    n = c.sum(axis=1, keepdims=True)
    p = np.divide(c, n, out=np.zeros_like(c), where=n > 0)
    logp = np.log2(p, out=np.zeros_like(p), where=p > 0)
    h = -(p * logp).sum(axis=1)
    return np.where(n[:, 0] > 0, h, np.nan)


def majority_share(counts: np.ndarray) -> np.ndarray:
    """Share of each item's votes held by its most-voted category (1 = unanimous). NaN without votes."""
    c = _counts(counts)
    n = c.sum(axis=1)
    return np.divide(c.max(axis=1), n, out=np.full(len(c), np.nan), where=n > 0)


@dataclass(frozen=True)
class Agreement:
    """Agreement summary of a vote table over ``categories`` (see :func:`summarize`)."""

    items: int
    raters_per_item: tuple[int, ...]  # the distinct numbers of votes per item
    fleiss_kappa: float
    category_kappa: dict[str, float]
    majority_share_mean: float
    entropy_mean_bits: float
    unanimous_share: float

    def to_dict(self) -> dict:
        return {
            "items": self.items,
            "raters_per_item": list(self.raters_per_item),
            "fleiss_kappa": self.fleiss_kappa,
            "category_kappa": dict(self.category_kappa),
            "majority_share_mean": self.majority_share_mean,
            "entropy_mean_bits": self.entropy_mean_bits,
            "unanimous_share": self.unanimous_share,
        }


def summarize(counts: np.ndarray, categories: tuple[str, ...] | list[str]) -> Agreement:
    """Kappa (overall and per category), mean majority share, mean vote entropy and the share of
    unanimous items of a vote table."""
    c = _counts(counts)
    if c.shape[1] != len(categories):
        raise ShapeError("counts", f"(N, {len(categories)})", c.shape)
    n = c.sum(axis=1)
    ms = majority_share(c)
    h = vote_entropy(c)
    ck = category_kappa(c)
    return Agreement(
        items=int(len(c)),
        raters_per_item=tuple(sorted({int(x) for x in n})),
        fleiss_kappa=fleiss_kappa(c),
        category_kappa={k: float(v) for k, v in zip(categories, ck, strict=True)},
        majority_share_mean=float(np.nanmean(ms)) if np.isfinite(ms).any() else float("nan"),
        entropy_mean_bits=float(np.nanmean(h)) if np.isfinite(h).any() else float("nan"),
        unanimous_share=float(np.mean(ms[np.isfinite(ms)] == 1.0)) if np.isfinite(ms).any() else float("nan"),
    )
