"""Agreement measures against hand-checkable cases."""

import numpy as np
import pytest

from openfer.dataset.agreement import category_kappa, fleiss_kappa, majority_share, summarize, vote_entropy

# Fleiss (1971) as reproduced on Wikipedia ("Fleiss' kappa", worked example): 10 subjects, 14 raters,
# 5 categories; P-bar = 0.378, P_e = 0.213, kappa = 0.210.
FLEISS_EXAMPLE = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
])


def test_fleiss_kappa_textbook_example():
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.20993, abs=5e-5)


def test_fleiss_kappa_perfect_and_chance():
    perfect = np.array([[10, 0, 0], [0, 10, 0], [0, 0, 10], [10, 0, 0]])
    assert fleiss_kappa(perfect) == pytest.approx(1.0)
    # every item split the same way as the pooled shares: agreement at chance level or below
    even = np.array([[5, 5], [5, 5], [5, 5]])
    assert fleiss_kappa(even) < 0


def test_category_kappa_hand_computed():
    # category 0 of [[2, 0], [0, 2]]: perfect separation -> 1; a category nobody chose -> NaN
    k = category_kappa(np.array([[2, 0, 0], [0, 2, 0]]))
    assert k[0] == pytest.approx(1.0) and k[1] == pytest.approx(1.0) and np.isnan(k[2])
    # the category kappas of the textbook example (Fleiss 1971 eq. 9), computed by hand from the table
    c = FLEISS_EXAMPLE.astype(float)
    p = c.sum(0) / c.sum()
    expected = 1 - (c * (14 - c)).sum(0) / (10 * 14 * 13 * p * (1 - p))
    np.testing.assert_allclose(category_kappa(FLEISS_EXAMPLE), expected)
    assert category_kappa(FLEISS_EXAMPLE)[4] == pytest.approx(0.5077, abs=1e-4)


def test_entropy_and_majority_share():
    v = np.array([[10, 0, 0, 0], [5, 5, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    h = vote_entropy(v)
    np.testing.assert_allclose(h[:3], [0.0, 1.0, 2.0])
    assert np.isnan(h[3])
    np.testing.assert_allclose(majority_share(v)[:3], [1.0, 0.5, 0.25])


def test_summary_of_unequal_rater_counts():
    # 9 and 10 votes per item (FER2013Train has one item with 9): both numbers are reported
    s = summarize(np.array([[9, 0], [0, 10], [5, 5]]), ("a", "b"))
    assert s.raters_per_item == (9, 10) and s.items == 3
    assert s.unanimous_share == pytest.approx(2 / 3)
