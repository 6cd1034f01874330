"""Action units from the mesh: synthetic warps of the reference face, pose invariance, PSPI, misuse."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openfer.components.pose import reference_face
from openfer.core.au import (
    AU_NAMES,
    AU_SCALES,
    FEATURE_NAMES,
    RIGID_INDEX,
    au_asymmetry,
    au_features,
    au_intensities,
    frontalize,
    neutral_baseline,
    pspi,
)
from openfer.core.pose import euler_to_rotation
from openfer.errors import InputError, ShapeError

REF = reference_face()
UPPER_LIDS = [246, 161, 160, 159, 158, 157, 173, 466, 388, 387, 386, 385, 384, 398]
LOWER_LIDS = [7, 163, 144, 145, 153, 154, 155, 249, 390, 373, 374, 380, 381, 382]
INNER_BROWS = [107, 66, 55, 65, 336, 296, 285, 295]
BROW_AUS = ("AU1", "AU2", "AU4")


def to_image(mesh, yaw=0.0, pitch=0.0, roll=0.0, scale=120.0, t=(320.0, 240.0, 0.0)):
    """A head-frame mesh (X right, Y up, Z to camera) posed and put in image space (y down, z away)."""
    p = scale * np.asarray(mesh) @ euler_to_rotation(yaw, pitch, roll).T + np.asarray(t)
    return p * np.array([1.0, -1.0, -1.0])


def aus_of(mesh, **pose):
    a = au_intensities(to_image(mesh, **pose)[None], REF)[0]
    return dict(zip(AU_NAMES, a, strict=True))


def bump(mesh, centre, dy, sigma=0.08):
    """Move points near ``centre`` (a point index) up by ``dy`` with a Gaussian fall-off."""
    w = np.exp(-np.sum((mesh - mesh[centre]) ** 2, 1) / (2 * sigma**2))
    out = mesh.copy()
    out[:, 1] += dy * w
    return out


def open_jaw(mesh, drop=0.15):
    """Lower the lower lip and chin by ``drop``; the lip corners, at the hinge of the lips, and the
    jaw's sides go down half as far (the corners stay at mid-aperture)."""
    y13, y14 = mesh[13, 1], mesh[14, 1]
    below = np.clip((y13 - mesh[:, 1]) / (y13 - y14), 0.0, 1.0)
    lateral = np.clip(np.abs(mesh[:, 0]) / abs(mesh[61, 0]), 0.0, 1.0) ** 4
    out = mesh.copy()
    out[:, 1] -= drop * below * (1.0 - 0.5 * lateral)
    return out


def smile(mesh, dy=0.05):
    return bump(bump(mesh, 61, dy), 291, dy)


def test_warps_leave_rigid_points_alone():
    for warped in (open_jaw(REF), smile(REF), raise_inner_brows(REF), close_eyes(REF)):
        np.testing.assert_allclose(warped[RIGID_INDEX], REF[RIGID_INDEX], atol=1e-9)


def test_reference_face_gives_zero():
    lm = to_image(REF)[None]
    np.testing.assert_allclose(au_intensities(lm, REF), 0.0, atol=1e-9)
    np.testing.assert_allclose(au_asymmetry(lm, REF), 0.0, atol=1e-9)
    assert pspi(au_intensities(lm, REF))[0] == pytest.approx(0.0, abs=1e-9)


def test_open_jaw_raises_au25_au26_not_brows():
    a = aus_of(open_jaw(REF))
    assert a["AU26"] > 1.0 and a["AU25"] > 1.0
    assert all(a[k] == pytest.approx(0.0, abs=1e-9) for k in BROW_AUS)
    assert a["AU17"] == pytest.approx(0.0, abs=1e-9)  # the chin went down, not up
    assert a["AU24"] == pytest.approx(0.0, abs=1e-9)  # lips apart, not pressed
    assert a["AU12"] < 0.5 and a["AU15"] < 0.5  # corners at mid-aperture: neither up nor down


def test_jaw_drop_is_monotonic():
    au26 = [aus_of(open_jaw(REF, d))["AU26"] for d in (0.02, 0.05, 0.1)]
    assert au26[0] < au26[1] < au26[2]


def test_raised_lip_corners_raise_au12_not_au15():
    a = aus_of(smile(REF))
    assert a["AU12"] > 1.0
    assert a["AU15"] == 0.0
    assert all(a[k] == pytest.approx(0.0, abs=1e-9) for k in BROW_AUS)


def test_lowered_lip_corners_raise_au15_not_au12():
    a = aus_of(smile(REF, dy=-0.03))
    assert a["AU15"] > 1.0 and a["AU12"] == 0.0


def close_eyes(mesh):
    out = mesh.copy()
    out[UPPER_LIDS, 1] = mesh[LOWER_LIDS, 1]
    return out


def test_closed_eyelids_give_au43():
    a = aus_of(close_eyes(REF))
    assert a["AU43"] > 4.5
    assert a["AU5"] == 0.0
    assert pspi(np.array([list(a.values())]))[0] == pytest.approx(
        a["AU43"] / 5 + max(a["AU6"], a["AU7"]) + max(a["AU9"], a["AU10"]) + a["AU4"]
    )


def raise_inner_brows(mesh, dy=0.05):
    out = mesh.copy()
    out[INNER_BROWS, 1] += dy
    return out


def test_raised_inner_brows_give_au1_not_au4():
    a = aus_of(raise_inner_brows(REF))
    assert a["AU1"] > 1.0
    assert a["AU4"] == 0.0 and a["AU2"] == 0.0
    lowered = aus_of(raise_inner_brows(REF, dy=-0.03))
    assert lowered["AU4"] > 1.0 and lowered["AU1"] == 0.0


def test_one_sided_smile_is_asymmetric():
    left = bump(REF, 291, 0.05)  # 291: the subject's left lip corner (+X, image right)
    right = bump(REF, 61, 0.05)
    assert REF[291, 0] > 0 > REF[61, 0]
    a_left = au_asymmetry(to_image(left)[None], REF)[0]
    a_right = au_asymmetry(to_image(right)[None], REF)[0]
    assert a_left[0] > 1.0 and a_right[0] < -1.0
    np.testing.assert_allclose(a_left, -a_right, atol=1e-6)  # the reference face is symmetric
    assert abs(au_asymmetry(to_image(smile(REF))[None], REF)[0, 0]) < 1e-6


EXPRESSIVE = open_jaw(raise_inner_brows(smile(REF, 0.03), 0.03), 0.08)


@settings(max_examples=60, deadline=None)
@given(
    st.floats(-60, 60), st.floats(-45, 45), st.floats(-90, 90),
    st.floats(0.05, 2000.0), st.tuples(*[st.floats(-1e4, 1e4)] * 3),
)  # fmt: skip
def test_pose_scale_translation_do_not_change_aus(yaw, pitch, roll, scale, t):
    base = au_intensities(to_image(EXPRESSIVE)[None], REF)
    moved = au_intensities(to_image(EXPRESSIVE, yaw, pitch, roll, scale, t)[None], REF)
    assert base.max() > 0.5  # the test face does express something
    np.testing.assert_allclose(moved, base, atol=1e-6)
    np.testing.assert_allclose(
        au_asymmetry(to_image(EXPRESSIVE, yaw, pitch, roll, scale, t)[None], REF),
        au_asymmetry(to_image(EXPRESSIVE)[None], REF),
        atol=1e-6,
    )


def test_frontalize_recovers_the_head_frame():
    lm = to_image(EXPRESSIVE, 25, -10, 15, scale=80.0)[None]
    np.testing.assert_allclose(frontalize(lm, REF)[0], EXPRESSIVE, atol=1e-9)


def test_iris_points_are_ignored_and_batch_equals_single():
    faces = np.stack([to_image(m) for m in (REF, smile(REF), open_jaw(REF), close_eyes(REF))])
    with_iris = np.concatenate([faces, np.random.default_rng(0).normal(size=(4, 10, 3))], 1)
    batch = au_intensities(with_iris, REF)
    assert batch.shape == (4, len(AU_NAMES))
    np.testing.assert_allclose(batch, au_intensities(faces, REF))
    for i in range(4):
        np.testing.assert_allclose(batch[i], au_intensities(faces[i : i + 1], REF)[0])
    assert ((batch >= 0) & (batch <= 5)).all()


def test_empty_batch():
    assert au_intensities(np.zeros((0, 478, 3)), REF).shape == (0, len(AU_NAMES))
    assert au_features(frontalize(np.zeros((0, 468, 3)), REF)).shape == (0, len(FEATURE_NAMES))


def test_baseline_replaces_the_reference():
    person = smile(REF, 0.03)  # someone whose resting mouth turns up
    lm = np.stack([to_image(person), to_image(smile(REF, 0.06))])
    assert au_intensities(lm[:1], REF)[0, AU_NAMES.index("AU12")] > 0.5
    base = neutral_baseline(lm[:1], REF)
    assert base.shape == (len(FEATURE_NAMES),)
    with_base = au_intensities(lm, REF, baseline=base)
    np.testing.assert_allclose(with_base[0], 0.0, atol=1e-9)
    assert 0 < with_base[1, AU_NAMES.index("AU12")] < au_intensities(lm[1:], REF)[0, AU_NAMES.index("AU12")]
    np.testing.assert_allclose(au_intensities(lm, REF, baseline=np.stack([base, base])), with_base)


def test_saturates_at_five():
    a = aus_of(open_jaw(REF, 1.0))
    assert a["AU26"] == 5.0 and a["AU25"] == 5.0


def test_pspi_hand_computed():
    aus = np.zeros((3, len(AU_NAMES)))
    col = {k: i for i, k in enumerate(AU_NAMES)}
    aus[0, [col["AU4"], col["AU6"], col["AU7"], col["AU9"], col["AU10"], col["AU43"]]] = [2, 1, 3, 4, 0.5, 5]
    aus[1, [col["AU12"], col["AU1"]]] = [5, 5]  # not pain AUs
    aus[2] = 5
    np.testing.assert_allclose(pspi(aus), [2 + 3 + 4 + 1, 0, 5 + 5 + 5 + 1])


def test_scales_cover_every_au_but_the_analytic_au43():
    assert set(AU_SCALES) == set(AU_NAMES) - {"AU43"}
    assert all(v > 0 for v in AU_SCALES.values())


@pytest.mark.parametrize(
    "shape",
    [(468, 3), (1, 400, 3), (1, 468, 2), (2, 478)],
)
def test_bad_landmark_shapes(shape):
    with pytest.raises(ShapeError, match="landmarks"):
        au_intensities(np.zeros(shape), REF)


def test_bad_inputs():
    lm = to_image(REF)[None]
    with pytest.raises(ShapeError, match="reference"):
        au_intensities(lm, REF[:400])
    with pytest.raises(ShapeError, match="baseline"):
        au_intensities(lm, REF, baseline=np.zeros(3))
    with pytest.raises(InputError, match="baseline"):
        au_intensities(lm, REF, baseline=np.full(len(FEATURE_NAMES), np.nan))
    bad = lm.copy()
    bad[0, 5, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        au_intensities(bad, REF)
    with pytest.raises(ShapeError, match="frontal"):
        au_features(np.zeros((1, 478, 3)))
    with pytest.raises(ShapeError, match="aus"):
        pspi(np.zeros((2, 3)))
    with pytest.raises(InputError):
        neutral_baseline(np.zeros((0, 468, 3)), REF)


def test_calibrated_intensities_equal_the_per_au_definition_on_both_evidence_paths():
    """:meth:`AuCalibration.intensities` (one matrix product) against its definition, AU by AU:
    :func:`knot_intensity` of :meth:`AuCalibration.changes`, on the reference face and expressive
    variants, with blendshapes (random in [0, 1]) and without (NaN columns), rows mixed."""
    from openfer.components.au import calibration, estimate_evidence
    from openfer.core.au import knot_intensity, source_key

    cal = calibration()
    faces = np.stack([to_image(m, yaw=y) for m in (REF, smile(REF), open_jaw(REF), close_eyes(REF))
                      for y in (0.0, 0.3)])
    bs = np.random.default_rng(1).uniform(0, 1, (len(faces), 52))
    ev = np.concatenate([estimate_evidence(faces, bs), estimate_evidence(faces, None)])
    got = cal.intensities(ev)
    base = np.broadcast_to(cal.neutral, ev.shape)
    for rows, use_bs in ((slice(0, len(faces)), True), (slice(len(faces), None), False)):
        d = cal.changes(ev[rows], base[rows], use_bs)
        want = np.stack([knot_intensity(d[n], *cal.knots[source_key(n, use_bs)]) for n in AU_NAMES], 1)
        np.testing.assert_allclose(got[rows], want, rtol=1e-12, atol=1e-12)
    assert (got[: len(faces)] > 0).any() and (got[len(faces) :] > 0).any()
