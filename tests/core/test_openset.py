"""Open-set scores and their evaluation, against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openfer.core.openset import (
    Mahalanobis,
    NearestNeighbours,
    OpenSetCalibration,
    auroc,
    energy_score,
    fpr_at_tpr,
    msp_score,
    threshold_at_tpr,
)


def test_msp_and_energy_by_hand():
    logits = np.array([[0.0, 0.0], [np.log(3.0), 0.0]])
    np.testing.assert_allclose(msp_score(logits), [0.5, 0.25])
    np.testing.assert_allclose(energy_score(logits), [-np.log(2.0), -np.log(4.0)])
    # temperature: energy = -T logsumexp(z / T)
    np.testing.assert_allclose(energy_score(logits, 2.0), -2 * np.log(np.exp(logits / 2).sum(1)))


def test_auroc_by_hand_with_ties():
    assert auroc([0, 1], [2, 3]) == 1.0
    assert auroc([2, 3], [0, 1]) == 0.0
    # pairs (k, u): (0,1) win, (0,0.5) win, (1,1) tie, (1,0.5) loss -> (1 + 1 + 0.5) / 4
    assert auroc([0.0, 1.0], [1.0, 0.5]) == pytest.approx(0.625)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=12),
    st.lists(st.integers(0, 5), min_size=1, max_size=12),
)
def test_auroc_equals_pair_counting(k, u):
    k, u = np.array(k, float), np.array(u, float)
    pairs = (u[:, None] > k[None]).mean() + 0.5 * (u[:, None] == k[None]).mean()
    assert auroc(k, u) == pytest.approx(pairs)


def test_fpr_at_tpr_and_threshold():
    known = np.arange(100, dtype=float)  # threshold at the 95th percentile: 94.05
    assert threshold_at_tpr(known) == pytest.approx(94.05)
    unknown = np.array([10.0, 50.0, 94.0, 95.0, 200.0])
    assert fpr_at_tpr(known, unknown) == pytest.approx(3 / 5)


def test_mahalanobis_recovers_whitened_distance():
    rng = np.random.default_rng(0)
    a = np.array([[2.0, 0.0], [0.0, 0.5]])  # per-axis scales 2 and 0.5
    means = np.array([[0.0, 0.0], [10.0, 0.0]])
    y = rng.integers(0, 2, 20000)
    f = means[y] + rng.standard_normal((20000, 2)) @ a
    m = Mahalanobis.fit(f, y, shrinkage=0.0)
    np.testing.assert_allclose(m.means, means, atol=0.05)
    # a point 1 unit off class 0 along the tight axis is 2 sigma away (squared distance 4),
    # along the loose axis 0.5 sigma (0.25)
    d = m.distances(np.array([[0.0, 1.0], [1.0, 0.0]]))[:, 0]
    np.testing.assert_allclose(d, [4.0, 0.25], rtol=0.05)
    # the score is the nearest class: far from both means -> larger than near either
    s = m.score(np.array([[0.0, 0.0], [10.0, 0.0], [5.0, 3.0]]))
    assert s[2] > 10 * max(s[0], s[1])


def test_mahalanobis_rejects_empty_class_and_bad_shapes():
    with pytest.raises(ValueError, match="empty"):
        Mahalanobis.fit(np.zeros((4, 3)), np.array([0, 0, 2, 2]))
    m = Mahalanobis.fit(np.random.default_rng(1).standard_normal((50, 3)), np.arange(50) % 2)
    with pytest.raises(Exception, match="features"):
        m.score(np.zeros((2, 4)))


def test_calibration_is_a_percentile_of_known_faces_and_round_trips():
    rng = np.random.default_rng(0)
    known = {"mahalanobis": rng.gamma(5.0, 10.0, 4000), "msp": rng.uniform(0, 0.5, 4000)}
    cal = OpenSetCalibration.fit(known, {"mahalanobis": 1.0, "msp": 1.0})
    s = cal(**known)
    assert s.min() == 0.0 and s.max() == 1.0
    assert abs((s > 0.95).mean() - 0.05) < 0.005  # 95% of the known faces stay below 0.95
    # monotone in each score; far-out evidence saturates at 1
    assert cal(mahalanobis=np.array([10.0, 50.0, 500.0]), msp=np.array([0.1, 0.1, 0.1])).tolist() == sorted(
        cal(mahalanobis=np.array([10.0, 50.0, 500.0]), msp=np.array([0.1, 0.1, 0.1])).tolist()
    )
    assert cal(mahalanobis=np.array([1e4]), msp=np.array([0.8]))[0] == 1.0
    again = OpenSetCalibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_array_equal(again(**known), s)
    with pytest.raises(ValueError, match="needs the scores"):
        cal(msp=np.zeros(2))
    with pytest.raises(ValueError, match="non-decreasing"):
        OpenSetCalibration.from_dict({**cal.to_dict(), "quantiles": [1.0, 0.0]})


def test_nearest_neighbours_is_the_kth_standardised_distance():
    ref = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    nn = NearestNeighbours.fit(ref, k=2)
    sd = ref.std(0)
    q = np.array([[0.0, 0.0], [10.0, 10.0]])
    # by brute force: standardised squared distances, sorted, second smallest
    z = lambda v: (v - ref.mean(0)) / sd  # noqa: E731
    want = [np.sort(((z(ref) - z(x)) ** 2).sum(1))[1] for x in q]
    np.testing.assert_allclose(nn.score(q), want, rtol=1e-6)
    assert nn.score(q)[1] > 10 * nn.score(q)[0]  # far from every known vector scores high
    # chunking does not change the result
    rng = np.random.default_rng(0)
    many = NearestNeighbours.fit(rng.normal(size=(500, 3)), k=5, max_reference=200)
    x = rng.normal(size=(50, 3))
    np.testing.assert_allclose(many.score(x, chunk=7), many.score(x), rtol=1e-9)
    assert many.reference.shape == (200, 3)


def test_nearest_neighbours_rejects_bad_input():
    with pytest.raises(ValueError, match="more than k"):
        NearestNeighbours.fit(np.zeros((3, 2)), k=3)
    nn = NearestNeighbours.fit(np.arange(20.0).reshape(10, 2), k=2)
    with pytest.raises(ValueError):
        nn.score(np.zeros((2, 3)))
