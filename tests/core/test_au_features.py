"""openfer.core.au.au_features against its definition written out feature by feature.

The shipped function computes every feature for both sides at once from gathered group means and
distances; ``reference_features`` below is the same arithmetic one named feature at a time (the form
the module docstring defines them in, and the code before 2026-12-04). The two must agree bit for
bit, on random meshes and on real ones."""

from collections import defaultdict

import numpy as np
import pytest
from conftest import PHOTOS

from openfer.components.pose import reference_face
from openfer.core import au as A


def _y(p, idx):
    return np.einsum("nk,k->n", p[:, :, 1], A._WY[:, A._Y_GROUPS.index(A._key(idx))])


def _z(p, idx):
    return np.einsum("nk,k->n", p[:, :, 2], A._WZ[:, A._Z_GROUPS.index(A._key(idx))])


def _dist(p, a, b):
    return np.linalg.norm(p[:, a] - p[:, b], axis=-1)


def reference_features(p: np.ndarray) -> np.ndarray:
    side = defaultdict(list)
    lip_mid_y, lip_mid_z, ridge_y = _y(p, (13, 14)), _z(p, (0, 17, 13, 14)), _y(p, A._NASAL_RIDGE)
    for s in (A._R, A._L):
        outer, inner = A._EYE_CORNERS[s]
        eye_y, eye_w = _y(p, (outer, inner)), _dist(p, outer, inner)
        upper, lower = _y(p, A._UPPER_LID[s]), _y(p, A._LOWER_LID[s])
        side["inner_brow_height"].append(_y(p, A._INNER_BROW[s]) - _y(p, inner))
        side["outer_brow_height"].append(_y(p, A._OUTER_BROW[s]) - _y(p, outer))
        side["brow_eye_distance"].append(sum(_dist(p, b, inner) for b in A._BROW_KNIT[s]) / len(A._BROW_KNIT[s]))
        side["upper_lid_height"].append((upper - eye_y) / eye_w)
        side["lower_lid_height"].append((lower - eye_y) / eye_w)
        side["eye_aperture"].append((upper - lower) / eye_w)
        side["cheek_height"].append(_y(p, A._CHEEK[s]) - eye_y)
        side["nose_wing_height"].append(_y(p, A._NOSE_WING[s]) - ridge_y)
        side["lip_corner_height"].append(_y(p, A._LIP_CORNER[s]) - lip_mid_y)
        side["lip_corner_depth"].append(_z(p, A._LIP_CORNER[s]) - lip_mid_z)
    f = {k: (v[A._R] + v[A._L]) / 2 for k, v in side.items()}
    f["nose_lip_distance"] = _y(p, A._SUBNASALE) - _y(p, A._UPPER_LIP_TOP)
    f["chin_height"] = _y(p, A._CHIN)
    f["mouth_width"] = _dist(p, *A._LIP_CORNER)
    f["lip_red_height"] = (_y(p, 0) - _y(p, 13)) + (_y(p, 14) - _y(p, 17))
    f["mouth_height"] = _y(p, 0) - _y(p, 17)
    f["lip_aperture"] = _y(p, A._UPPER_LIP_INNER) - _y(p, A._LOWER_LIP_INNER)
    f["lower_face_height"] = (_dist(p, A._NOSE_TIP, 17) + _dist(p, A._NOSE_TIP, 152)) / 2
    for k in ("lip_corner_height", "lip_corner_depth"):
        f[k + "_R"], f[k + "_L"] = side[k][A._R], side[k][A._L]
    return np.stack([f[k] for k in A.FEATURE_NAMES], 1)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_au_features_equal_their_feature_by_feature_definition_on_random_meshes(n):
    rng = np.random.default_rng(n)
    p = reference_face()[None] + rng.normal(0, 0.05, (n, 468, 3))
    got = A.au_features(p)
    assert got.shape == (n, len(A.FEATURE_NAMES)) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, reference_features(p))


def test_au_features_equal_their_definition_on_the_fixture_faces():
    from openfer.pipeline import Analyzer

    faces = Analyzer("fast", threads=1).analyze(PHOTOS / "single_face.jpg").faces
    p = A.frontalize(faces.landmarks, reference_face())
    np.testing.assert_array_equal(A.au_features(p), reference_features(p))
    # and a face's row does not depend on the batch it comes in
    both = np.concatenate([p, reference_face()[None]])
    np.testing.assert_array_equal(A.au_features(both)[:1], A.au_features(p))
