import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from openfer.core.au import RIGID_INDEX, frontalize, rigid_fits
from openfer.core.pose import euler_to_rotation, head_pose, pose_from_fits, rotation_to_euler


@settings(max_examples=80, deadline=None)
@given(st.floats(-80, 80), st.floats(-60, 60), st.floats(-80, 80))
def test_euler_roundtrip(yaw, pitch, roll):
    r = euler_to_rotation(yaw, pitch, roll)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(rotation_to_euler(r), [yaw, pitch, roll], atol=1e-7)


def _image_landmarks(mesh, yaw, pitch, roll, scale=10.0, t=(300.0, 200.0, 0.0)):
    p = scale * mesh @ euler_to_rotation(yaw, pitch, roll).T + t
    return p * np.array([1.0, -1.0, -1.0])  # pose frame -> image frame (y down, z smaller = nearer)


def test_head_pose_recovers_rotation_of_a_mesh():
    mesh = np.random.default_rng(3).normal(size=(50, 3))
    lm = np.stack([_image_landmarks(mesh, 30, -10, 5), _image_landmarks(mesh, 0, 0, 0)])
    np.testing.assert_allclose(head_pose(lm, mesh), [[30, -10, 5], [0, 0, 0]], atol=1e-6)


def test_head_pose_sign_conventions():
    # nose ahead of the face (towards the camera, +Z); turning the face to image-right moves the nose right
    mesh = np.array([[0, 0, 1.0], [-1, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0]])
    lm = _image_landmarks(mesh, 20, 0, 0)
    assert lm[0, 0] > 300  # nose right of centre in the image
    assert head_pose(lm[None], mesh)[0, 0] > 0
    lm = _image_landmarks(mesh, 0, 20, 0)  # looking up: nose moves up the image (smaller y)
    assert lm[0, 1] < 200
    assert head_pose(lm[None], mesh)[0, 1] > 0


@settings(max_examples=40, deadline=None)
@given(st.floats(-80, 80), st.floats(-60, 60), st.floats(-80, 80), st.integers(0, 2**31 - 1))
def test_pose_from_the_frontalization_fit_is_head_pose(yaw, pitch, roll, seed):
    """The head pose read off the AU frontalization's rigid fit (its rotation transposed) is the
    pose the separate fit gives, on noisy, expressive meshes (every point jittered), and
    frontalize with the fit passed in is frontalize without it, bit for bit."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(468, 3))
    lm = np.stack([_image_landmarks(ref + rng.normal(scale=0.05, size=ref.shape), yaw, pitch, roll, scale=s)
                   for s in (3.0, 40.0)])
    fits = rigid_fits(lm, ref)
    np.testing.assert_allclose(pose_from_fits(fits[0]), head_pose(lm, ref, RIGID_INDEX), atol=1e-9)
    np.testing.assert_array_equal(frontalize(lm, ref, fits), frontalize(lm, ref))
