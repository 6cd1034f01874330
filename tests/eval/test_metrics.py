import numpy as np
import pytest

from openfer.eval.labels import majority_labels, soft_targets
from openfer.eval.metrics import classification_report, confusion_matrix, expected_calibration_error


def test_confusion_and_report_hand_computed():
    y = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[pred] * 0.7 + 0.1
    c = confusion_matrix(y, pred, 3)
    assert c.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    r = classification_report(probs, y, ("a", "b", "c"))
    assert r["accuracy"] == pytest.approx(4 / 6)
    # recalls 2/3, 1/2, 1 -> UAR 13/18; precisions 1, 1/2, 1/2
    assert r["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    f1 = [2 * 1 * (2 / 3) / (1 + 2 / 3), 0.5, 2 * 0.5 * 1 / 1.5]
    assert r["macro_f1"] == pytest.approx(np.mean(f1))
    assert r["per_class"]["a"]["support"] == 3


def test_ece_hand_computed():
    # two bins used: conf 0.9 (2 samples, 1 correct) and conf 0.6 (2 samples, 2 correct)
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 1, 0, 1])
    expected = 0.5 * abs(0.5 - 0.9) + 0.5 * abs(1.0 - 0.6)
    assert expected_calibration_error(probs, y) == pytest.approx(expected)


def test_ece_zero_for_perfectly_calibrated_bins():
    probs = np.array([[1.0, 0.0]] * 4)
    assert expected_calibration_error(probs, np.zeros(4, int)) == pytest.approx(0.0)


def test_ferplus_majority_protocol():
    v = np.zeros((5, 10))
    v[0, [0, 1]] = [6, 4]  # neutral majority
    v[1, [0, 1]] = [5, 5]  # tie: no majority -> dropped
    v[2, [8]] = [10]  # unknown majority -> dropped
    v[3, [2, 3]] = [4, 1]  # the single stray vote is removed first: 4/4 surprise
    v[4, [9, 7]] = [7, 3]  # NF -> dropped
    assert majority_labels(v).tolist() == [0, -1, -1, 2, -1]
    s = soft_targets(v)
    np.testing.assert_allclose(s[0, :2], [0.6, 0.4])
    np.testing.assert_allclose(s[3, 2], 1.0)
