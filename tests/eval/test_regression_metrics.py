"""Lin's concordance correlation coefficient and the regression report, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from openfer.errors import ShapeError
from openfer.eval.metrics import ccc, regression_report

T = np.array([1.0, 2.0, 3.0, 4.0])  # mean 2.5, population variance 1.25


def test_identical_is_one():
    assert ccc(T, T) == pytest.approx(1.0)


def test_shift_by_a_constant_lowers_it_by_the_exact_formula():
    # cov = var = 1.25 on both sides, mean difference 1: 2 * 1.25 / (1.25 + 1.25 + 1) = 5/7
    assert ccc(T + 1.0, T) == pytest.approx(5 / 7)
    # scaled by 2: var_p = 5, cov = 2.5, mean difference 2.5: 5 / (5 + 1.25 + 6.25) = 0.4
    assert ccc(2 * T, T) == pytest.approx(0.4)


def test_anti_correlated_is_negative():
    assert ccc(5.0 - T, T) == pytest.approx(-1.0)  # same mean and variance, mirrored
    # -T: cov = -1.25, mean difference 5: -2.5 / (2.5 + 25) = -1/11
    assert ccc(-T, T) == pytest.approx(-1 / 11)


def test_per_column_and_symmetric():
    p = np.stack([T, T + 1.0, -T], 1)
    t = np.stack([T, T, T], 1)
    out = ccc(p, t)
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    np.testing.assert_allclose(out, [1.0, 5 / 7, -1 / 11])
    np.testing.assert_allclose(ccc(t, p), out)


def test_edge_cases_and_shape_errors():
    assert ccc(np.full(3, 0.2), np.full(3, 0.2)) == pytest.approx(1.0)  # same constant: perfect agreement
    assert ccc(np.zeros(3), np.zeros(3)) == 1.0  # zero denominator: defined as 1
    assert ccc(np.full(3, 0.2), np.full(3, 0.3)) == pytest.approx(0.0, abs=1e-12)  # constant, off by 0.1
    assert np.isnan(ccc(np.zeros(0), np.zeros(0)))
    with pytest.raises(ShapeError, match="pred: expected shape \\(4,\\), got \\(3,\\)"):
        ccc(T[:3], T)
    with pytest.raises(ShapeError, match="target"):
        ccc(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))


def test_regression_report_hand_computed():
    t = np.stack([T, T], 1) / 4  # valence, arousal
    p = t + np.array([[0.0, 0.5]])  # arousal off by 0.5 everywhere
    rep = regression_report(p, t, ("valence", "arousal"))
    assert rep["n"] == 4
    assert rep["ccc"]["valence"] == pytest.approx(1.0)
    # var = 1.25 / 16 on both sides: 2v / (2v + 0.25)
    v = 1.25 / 16
    assert rep["ccc"]["arousal"] == pytest.approx(2 * v / (2 * v + 0.25))
    assert rep["ccc_mean"] == pytest.approx((1 + 2 * v / (2 * v + 0.25)) / 2)
    assert rep["rmse"] == pytest.approx({"valence": 0.0, "arousal": 0.5})
    assert rep["mae"] == pytest.approx({"valence": 0.0, "arousal": 0.5})
    with pytest.raises(ShapeError, match="\\(N, 3\\)"):
        regression_report(p, t, ("a", "b", "c"))
