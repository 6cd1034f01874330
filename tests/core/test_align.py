import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openfer.core.align import (
    _det_sign,
    apply_affine,
    crop_rois,
    invert_affine,
    normalize_angle,
    roi_matrices,
    rotated_extent,
    similarity_transform,
    umeyama,
)

angles = st.floats(-np.pi, np.pi)


@settings(max_examples=80, deadline=None)
@given(st.floats(10, 500), st.floats(10, 500), st.floats(5, 300), angles, st.integers(8, 256))
def test_roi_forward_inverse_roundtrip(cx, cy, side, ang, size):
    fwd, inv = roi_matrices([[cx, cy]], [side], [ang], size)
    # the forward matrix in closed form is the inverse's inverse, to rounding
    np.testing.assert_allclose(fwd, invert_affine(inv), rtol=1e-12, atol=1e-9)
    pts = np.random.default_rng(0).uniform(0, 600, (1, 7, 2))
    back = apply_affine(inv, apply_affine(fwd, pts))
    np.testing.assert_allclose(back, pts, atol=1e-6)
    # the ROI centre maps to the crop centre, and the crop's x axis follows the angle
    np.testing.assert_allclose(
        apply_affine(fwd, np.array([[[cx, cy]]]))[0, 0], [size / 2, size / 2], atol=1e-6
    )
    e = apply_affine(inv, np.array([[[size, size / 2]]]))[0, 0] - [cx, cy]
    np.testing.assert_allclose(e, side / 2 * np.array([np.cos(ang), np.sin(ang)]), atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(st.floats(-5, 5), st.floats(0.2, 5), st.floats(-100, 100), st.floats(-100, 100))
def test_similarity_transform_recovers_known_transform(ang, s, tx, ty):
    src = np.random.default_rng(1).uniform(-50, 50, (9, 2))
    r = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = src @ r.T + [tx, ty]
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], r, atol=1e-7 * max(s, 1))
    np.testing.assert_allclose(apply_affine(m, src), dst, atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(st.floats(-100, 100))
def test_normalize_angle_range(a):
    n = normalize_angle(a)
    assert -np.pi <= n < np.pi
    np.testing.assert_allclose(np.cos(n), np.cos(a), atol=1e-9)


def test_invert_affine_single_and_batch():
    m = np.array([[2.0, 0.5, 3.0], [-0.5, 1.5, -2.0]])
    mi = invert_affine(m)
    p = np.array([[1.0, 2.0], [-3.0, 4.0]])
    np.testing.assert_allclose(apply_affine(mi, apply_affine(m, p)), p)
    assert invert_affine(np.stack([m, m])).shape == (2, 2, 3)


def test_crop_rois_pixel_convention():
    # a single bright pixel at (x=20, y=10) covers [20, 21) x [10, 11): its centre is (20.5, 10.5)
    img = np.zeros((40, 40), np.uint8)
    img[10, 20] = 255
    fwd, _ = roi_matrices([[20.5, 10.5]], [9.0], [0.0], 9)
    crop = crop_rois(img, fwd, 9)[0]
    assert crop.shape == (9, 9)
    assert np.unravel_index(crop.argmax(), crop.shape) == (4, 4)
    assert crop[4, 4] == 255


def test_crop_rois_rotation_matches_cv2_rotation():
    img = np.zeros((101, 101), np.uint8)
    cv2.line(img, (50, 50), (90, 50), 255, 3)  # a horizontal bar to the right of the centre
    fwd, _ = roi_matrices([[50.5, 50.5]], [101.0], [np.pi / 2], 101)
    crop = crop_rois(img, fwd, 101)[0]
    # the crop's x axis points along image +y, so the bar (image +x) appears along crop -y
    assert crop[20:45, 49:52].mean() > 200 and crop[55:90, 49:52].mean() < 10


def test_rotated_extent_axis_aligned():
    pts = np.array([[[0, 0], [10, 0], [10, 4], [0, 4]]], float)
    c, s = rotated_extent(pts, np.zeros(1))
    np.testing.assert_allclose(c, [[5, 2]])
    np.testing.assert_allclose(s, [10])


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 4), st.integers(0, 2**31 - 1))
def test_det_sign_of_orthogonal_matrices_is_lapacks(dim, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    for m in (q, q * np.r_[np.ones(dim - 1), -1.0]):  # a rotation or a reflection, either way
        assert _det_sign(m) == np.sign(np.linalg.det(m))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.booleans())
def test_umeyama_never_returns_a_reflection(seed, mirrored):
    """Mirrored targets (a reflection fits them best) still give a proper rotation (det +1) and the
    least-squares similarity among rotations: Umeyama's sign correction."""
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(21, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    dst = 1.7 * src @ q.T + rng.normal(size=3)
    if mirrored:
        dst[:, 0] *= -1
    r, scale, t = umeyama(src, dst)
    assert np.linalg.det(r) > 0 and scale > 0
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-9)
    if not mirrored:  # an exact similarity is recovered
        np.testing.assert_allclose(scale * src @ r.T + t, dst, atol=1e-9)


def _umeyama_svd(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """The textbook Umeyama (1991) by SVD: the reference for the closed form used in the plane."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    u, d, vt = np.linalg.svd(xd.T @ xs / len(src))
    s = np.ones(src.shape[1])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s[-1] = -1
    r = u @ np.diag(s) @ vt
    scale = float((d * s).sum() / (xs**2).sum(1).mean())
    return r, scale, mu_d - scale * r @ mu_s


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**31 - 1), st.booleans(), st.integers(3, 40))
def test_umeyama_in_the_plane_is_the_svd_solution(seed, mirrored, k):
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(k, 2)) * rng.uniform(0.1, 100)
    dst = src @ rng.normal(size=(2, 2)).T + rng.normal(size=2) + rng.normal(size=(k, 2)) * rng.uniform(0, 1)
    if mirrored:
        dst[:, 0] *= -1
    r, scale, t = umeyama(src, dst)
    r0, scale0, t0 = _umeyama_svd(src, dst)
    np.testing.assert_allclose(r, r0, atol=1e-9)
    assert scale == pytest.approx(scale0, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(t, t0, rtol=1e-9, atol=1e-9 * (1 + np.abs(dst).max()))
