"""Calibrated AUs: the knot scale, the smile gate, the geometric fallback and the calibration file."""

import numpy as np
import pytest

from openfer.components.au import calibration, estimate_baseline
from openfer.core import au
from openfer.core.blendshapes import BLENDSHAPE_NAMES
from openfer.errors import InputError


def test_knot_scale_is_anchored_and_monotone():
    k1, k2 = 0.2, 0.8
    d = np.array([-1.0, 0.0, 0.1, k1, 0.5, k2, 10.0])
    v = au.knot_intensity(d, k1, k2)
    np.testing.assert_allclose(v[:4], [0.0, 0.0, 0.5, 1.0])
    assert v[5] == pytest.approx(4.0) and v[-1] == 5.0
    assert np.all(np.diff(au.knot_intensity(np.linspace(-1, 3, 200), k1, k2)) >= 0)


def test_smile_gate():
    np.testing.assert_allclose(au.smile_gate(np.array([0.0, 1.0, 2.0, 5.0])), [1.0, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(au.smile_gate(np.array([0.0, 0.75, 1.5, 2.0]), 1.5), [1.0, 0.5, 0.0, 0.0])


def test_the_smile_gate_level_comes_from_the_calibration_file():
    cal = calibration()
    assert cal.smile_full == 1.5  # fitted by scripts/calibrate_aus.py, see docs/validation.md
    k = {n: i for i, n in enumerate(cal.names)}
    ev = cal.neutral.copy()
    ev[k["mouthStretchLeft"]] = ev[k["mouthStretchRight"]] = 0.6  # a stretched mouth ...
    a12, a20 = au.AU_NAMES.index("AU12"), au.AU_NAMES.index("AU20")
    faces = np.repeat(ev[None], 30, 0)
    faces[:, k["mouthSmileLeft"]] = faces[:, k["mouthSmileRight"]] = np.linspace(0.0, 0.9, 30)  # ... under a growing smile
    smiles = cal.intensities(faces)
    assert smiles[smiles[:, a12] == 0, a20].min() > 1.0
    assert np.all(smiles[smiles[:, a12] >= cal.smile_full, a20] == 0)  # closed from AU12 = smile_full on
    loose = au.AuCalibration(cal.names, cal.neutral, cal.knots, smile_full=2.0).intensities(faces)
    partly = (smiles[:, a12] > 0.2) & (smiles[:, a12] < 1.9)
    assert np.all(loose[:, a20] >= smiles[:, a20]) and (loose[partly, a20] > smiles[partly, a20]).sum() >= 3
    with pytest.raises(InputError, match="smile_full"):
        au.AuCalibration.from_dict({"names": list(cal.names), "neutral": cal.neutral.tolist(),
                                    "knots": {n: list(v) for n, v in cal.knots.items()}, "smile_full": 0})


def test_shipped_calibration_at_its_own_neutral():
    cal = calibration()
    assert cal.names == au.evidence_names(BLENDSHAPE_NAMES)
    # the population neutral reads as no AU at all, with or without blendshapes
    assert np.all(cal.intensities(cal.neutral[None]) == 0)
    no_bs = cal.neutral.copy()
    no_bs[len(au.FEATURE_NAMES):] = np.nan
    assert np.all(cal.intensities(no_bs[None]) == 0)
    # every AU and every geometric fallback has knots
    for name in au.AU_NAMES:
        assert au.source_key(name, True) in cal.knots and au.source_key(name, False) in cal.knots


def test_person_baseline_replaces_the_population_neutral():
    cal = calibration()
    rng = np.random.default_rng(0)
    person = cal.neutral + rng.normal(0, 0.02, cal.neutral.shape)
    frames = person + rng.normal(0, 0.001, (12, len(person)))
    base = estimate_baseline(frames)
    assert np.all(cal.intensities(person[None], base) < 0.2)
    # the same face against the population neutral is not all zero (its resting face differs)
    assert cal.intensities(person[None]).max() > 0.2


def test_smile_gates_the_confounded_aus():
    cal = calibration()
    names = cal.names
    ev = cal.neutral.copy()
    k = {n: i for i, n in enumerate(names)}
    ev[k["mouthUpperUpLeft"]] = ev[k["mouthUpperUpRight"]] = 0.9  # upper lip raised ...
    with_smile = ev.copy()
    with_smile[k["mouthSmileLeft"]] = with_smile[k["mouthSmileRight"]] = 0.9  # ... by a smile
    a10 = au.AU_NAMES.index("AU10")
    assert cal.intensities(ev[None])[0, a10] > 3.0
    assert cal.intensities(with_smile[None])[0, a10] == 0.0


def test_bad_calibration_is_rejected():
    good = {"names": ["a", "b"], "neutral": [0.0, 1.0], "knots": {"AU1": [0.1, 0.5]}}
    assert au.AuCalibration.from_dict(good).knots["AU1"] == (0.1, 0.5)
    with pytest.raises(InputError, match="knots of AU1"):
        au.AuCalibration.from_dict({**good, "knots": {"AU1": [0.5, 0.1]}})
    with pytest.raises(InputError, match="neutral"):
        au.AuCalibration.from_dict({**good, "neutral": [0.0]})
    with pytest.raises(InputError, match="missing or malformed"):
        au.AuCalibration.from_dict({"names": ["a"]})
