"""Confident learning (openfer.dataset.confident) and K-fold predictions (openfer.dataset.crossval): a hand-computed
case, planted label noise found on synthetic features, and predictions that never see the sample's own label."""

import numpy as np
import pytest

from openfer.dataset.confident import (
    calibrate_joint,
    confident_assignments,
    confident_joint,
    find_label_issues,
    noise_rates,
    normalized_margin,
    per_class_thresholds,
)
from openfer.dataset.crossval import cross_val_probs, fit_softmax_head, fold_of

# 9 samples, 3 classes; every probability a multiple of 1/8, so the thresholds are exact binary fractions.
LABELS = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2])
PROBS = np.array([
    [0.75, 0.25, 0.0],    # a: above t0 only                  -> counted (0, 0)
    [0.25, 0.5, 0.25],    # b: above t2 only (0.25 >= 0.25)   -> (0, 2)
    [0.5, 0.125, 0.375],  # x: above t0 and t2, p0 larger     -> (0, 0)
    [0.5, 0.5, 0.0],      # c: above t0 (equality counts)     -> (1, 0)
    [0.0, 1.0, 0.0],      # d                                  -> (1, 1)
    [0.0, 0.875, 0.125],  # g                                  -> (1, 1)
    [0.375, 0.625, 0.0],  # h: above no threshold             -> not counted
    [0.625, 0.25, 0.125],  # e                                 -> (2, 0)
    [0.25, 0.375, 0.375],  # f                                 -> (2, 2)
])


def test_thresholds_and_confident_joint_by_hand():
    t = per_class_thresholds(LABELS, PROBS)
    np.testing.assert_array_equal(t, [0.5, 0.75, 0.25])  # (0.75+0.25+0.5)/3, (0.5+1+0.875+0.625)/4, (0.125+0.375)/2
    np.testing.assert_array_equal(confident_assignments(PROBS, t), [0, 2, 0, 0, 1, 1, -1, 0, 2])
    cj = confident_joint(LABELS, PROBS)
    np.testing.assert_array_equal(cj, [[2, 0, 1], [1, 2, 0], [1, 0, 1]])
    q = calibrate_joint(cj, np.bincount(LABELS))
    # row 1 holds 3 counted samples of 4 labelled: rescaled to 4/3, 8/3; total 3 + 4 + 2 = 9
    np.testing.assert_allclose(q * 9, [[2, 0, 1], [4 / 3, 8 / 3, 0], [1, 0, 1]])
    np.testing.assert_allclose(noise_rates(q), [1 / 3, 1 / 3, 1 / 2])


def test_prune_by_noise_rate_by_hand():
    # n Q[0,2] = 1: of a, b, x the largest p2 - p0 is b; n Q[1,0] = 4/3 -> 1: c (p0 - p1 = 0);
    # n Q[2,0] = 1: e (p0 - p2 = 0.5)
    res = find_label_issues(LABELS, PROBS)
    np.testing.assert_array_equal(np.flatnonzero(res.issue), [1, 3, 7])
    np.testing.assert_array_equal(res.suggested[[1, 3, 7]], [1, 0, 0])  # most probable other class
    np.testing.assert_array_equal(res.ranked, [7, 1, 3])  # self-confidence: e 0.125, b 0.25, c 0.5
    off = find_label_issues(LABELS, PROBS, filter="confident_joint")
    np.testing.assert_array_equal(np.flatnonzero(off.issue), [1, 3, 7])
    by_class = find_label_issues(LABELS, PROBS, filter="prune_by_class")
    # n * off-diagonal row sums: 1, 4/3 -> 1, 1: the lowest self-confidence of each class: b (0.25 of a, b, x),
    # c (0.5 of c, d, g, h: 0.5, 1, 0.875, 0.625), e (0.125 of e, f)
    np.testing.assert_array_equal(np.flatnonzero(by_class.issue), [1, 3, 7])
    np.testing.assert_array_equal(np.flatnonzero(find_label_issues(LABELS, PROBS, filter="both").issue), [1, 3, 7])


def test_ranking_orders_by_label_quality():
    res = find_label_issues(LABELS, PROBS)
    sc = PROBS[np.arange(9), LABELS]
    assert list(res.ranked) == sorted(np.flatnonzero(res.issue), key=lambda i: (sc[i], i))
    nm = find_label_issues(LABELS, PROBS, ranking="normalized_margin")
    np.testing.assert_allclose(nm.score, normalized_margin(LABELS, PROBS))
    assert nm.score[4] == 1.0 and nm.score[3] == 0.5  # d: 1 - 0 ; c: 0.5 - 0.5


def _clusters(n: int, c: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1, (c, d)) * 1.6
    y = rng.integers(0, c, n)
    return means[y] + rng.normal(0, 1, (n, d)), y


def test_planted_noise_is_found_and_the_clean_set_is_not():
    x, y = _clusters(1500, 4, 16, seed=1)
    rng = np.random.default_rng(2)
    flip = rng.random(len(y)) < 0.1
    noisy = np.where(flip, (y + rng.integers(1, 4, len(y))) % 4, y)
    probs = cross_val_probs(x, noisy, 4, k=5, seed=0)
    res = find_label_issues(noisy, probs)
    tp = (res.issue & flip).sum()
    precision, recall = tp / res.issue.sum(), tp / flip.sum()
    assert flip.sum() > 100
    assert precision > 0.85 and recall > 0.85, (precision, recall)
    # the estimated noise rate per class is close to the planted 10%
    assert np.all(np.abs(res.noise_rate - 0.1) < 0.05), res.noise_rate
    # the same images with their true labels: almost nothing flagged
    clean = find_label_issues(y, cross_val_probs(x, y, 4, k=5, seed=0))
    assert clean.issue.mean() < 0.02, clean.issue.mean()


def test_folds_are_a_seeded_partition():
    f = fold_of(103, 5, seed=3)
    assert sorted(np.bincount(f)) == [20, 20, 21, 21, 21]
    np.testing.assert_array_equal(f, fold_of(103, 5, seed=3))
    assert not np.array_equal(f, fold_of(103, 5, seed=4))
    with pytest.raises(ValueError):
        fold_of(3, 5)


def test_kfold_predictions_never_see_the_samples_own_label():
    # random features and random labels: a head fitted on everything memorises them, out of fold it cannot
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 120))
    y = rng.integers(0, 4, 80)
    in_sample = fit_softmax_head(x, y, 4).probs(x)
    assert (in_sample.argmax(1) == y).mean() > 0.95
    p = cross_val_probs(x, y, 4, k=5, seed=0)
    assert (p.argmax(1) == y).mean() < 0.5
    # changing sample 7's label leaves its own prediction bit-identical and changes those of the other folds
    y2 = y.copy()
    y2[7] = (y[7] + 1) % 4
    p2 = cross_val_probs(x, y2, 4, k=5, seed=0)
    np.testing.assert_array_equal(p2[7], p[7])
    folds = fold_of(80, 5, 0)
    same = folds == folds[7]
    np.testing.assert_array_equal(p2[same], p[same])
    assert np.abs(p2[~same] - p[~same]).max() > 1e-6
