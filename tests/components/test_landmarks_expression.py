import numpy as np
import pytest

from openfer.components.expression import ExpressionSpec, align_matrices, crop_faces, postprocess, preprocess
from openfer.components.landmarks import mesh_postprocess, rois_from_detections, rois_from_landmarks
from openfer.core.align import apply_affine, roi_matrices


def test_rois_from_detections_follow_the_eyes():
    boxes = np.array([[100, 100, 200, 180]], float)
    kp = np.zeros((1, 6, 2))
    kp[0, 0], kp[0, 1] = [130, 130], [170, 170]  # eyes on a 45 degree line
    c, s, a = rois_from_detections(boxes, kp)
    np.testing.assert_allclose(c, [[150, 140]])
    np.testing.assert_allclose(s, [150])  # 1.5 x the longer side
    np.testing.assert_allclose(a, [np.pi / 4])


def test_mesh_postprocess_back_projects_crop_points():
    c, s, a = np.array([[300.0, 200.0]]), np.array([96.0]), np.array([0.3])
    _, inv = roi_matrices(c, s, a, 192)
    raw = np.zeros((1, 468, 3))
    raw[0, :, :2] = 96.0  # crop centre
    raw[0, :, 2] = 19.2
    lm, score = mesh_postprocess(raw.reshape(1, 1, 1, 1404), np.array([[[[0.0]]]]), inv, s)
    np.testing.assert_allclose(lm[0, :, :2], np.repeat([[300, 200]], 468, 0), atol=1e-9)
    np.testing.assert_allclose(lm[0, :, 2], 9.6)  # z scales like x, y (96 px ROI / 192 crop)
    np.testing.assert_allclose(score, [0.5])


def test_rois_from_landmarks_roundtrip_angle():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-50, 50, (468, 2))
    pts[33], pts[263] = [-40, 0], [40, 0]
    ang = 0.4
    r = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    lm = np.concatenate([pts @ r.T + [320, 240], np.zeros((468, 1))], 1)[None]
    c, s, a = rois_from_landmarks(lm)
    np.testing.assert_allclose(a, [ang])
    assert s[0] > 100 * 1.5 * 0.9


def _spec():
    return ExpressionSpec(
        arch="x",
        classes=("a", "b"),
        size=48,
        mean=0.5,
        std=0.25,
        template_index=(0, 1, 2),
        template=((0.3, 0.4), (0.7, 0.4), (0.5, 0.75)),
    )


def test_align_maps_template_landmarks_exactly():
    spec = _spec()
    lm = np.zeros((1, 3, 3))
    lm[0, :, :2] = [[110, 90], [150, 100], [126, 135]]
    m = align_matrices(lm, spec)
    got = apply_affine(m[0], lm[0, :, :2])
    # a similarity fit of 3 points is least squares: close, not exact, to the template
    np.testing.assert_allclose(got, np.asarray(spec.template) * 48, atol=4)


def test_crop_faces_and_preprocess_shapes_and_flip():
    spec = _spec()
    img = np.tile(np.arange(200, dtype=np.uint8), (200, 1))
    lm = np.zeros((2, 3, 3))
    lm[:, :, :2] = [[80, 80], [120, 80], [100, 110]]
    crops = crop_faces(img, align_matrices(lm, spec), 48)
    assert crops.shape == (2, 48, 48) and crops.dtype == np.uint8
    assert crops[0, :, -1].mean() > crops[0, :, 0].mean()  # horizontal gradient preserved
    x = preprocess(crops, spec, flip=True)
    assert x.shape == (4, 1, 48, 48)
    np.testing.assert_allclose(x[2], x[0][..., ::-1])


def test_postprocess_averages_mirror_logits_and_applies_temperature():
    lo = np.array([[2.0, 0.0], [0.0, 2.0]])  # original, mirror of one face
    p = postprocess(lo, 1, flip=True)
    np.testing.assert_allclose(p, [[0.5, 0.5]])
    p2 = postprocess(np.array([[2.0, 0.0]]), 1, flip=False, temperature=2.0)
    np.testing.assert_allclose(p2, [[np.e / (np.e + 1), 1 / (np.e + 1)]])


def test_a_shrunk_crop_reads_block_means_of_its_region_only():
    # a face shrunk ~5x (scale 0.2 < 0.5: pre-blurred by 3x3 block means): averaging only the region
    # the crop reads must give exactly the crop of the whole image averaged in blocks (dimensions cut
    # to multiples of 3, so both are OpenCV's integer-ratio area resize of the same blocks)
    import cv2
    from conftest import PHOTOS

    from openfer.core.align import cv2_matrix
    from openfer.io.images import read_image

    gray = cv2.cvtColor(read_image(PHOTOS / "multi_face.jpg"), cv2.COLOR_RGB2GRAY)[:666, :999]
    a = 0.2
    mats = np.array([[[a, 0.0, -a * 380], [0.0, a, -a * 250]],  # a 240 px patch inside the image
                     [[a * np.cos(0.3), -a * np.sin(0.3), -50.0], [a * np.sin(0.3), a * np.cos(0.3), -20.0]],
                     [[a, 0.0, 10.0], [0.0, a, 5.0]]])  # reaches beyond the top-left corner
    got = crop_faces(gray, mats, 48)
    blocks = cv2.resize(gray, (333, 222), interpolation=cv2.INTER_AREA)
    for m, crop in zip(mats, got, strict=True):
        want = cv2.warpAffine(blocks, cv2_matrix(m @ np.diag([3.0, 3.0, 1.0])), (48, 48), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        np.testing.assert_array_equal(crop, want)


@pytest.mark.parametrize("scale", [0.8, 0.35, 0.2])  # crop side 60 px; 137 px (f 1); 240 px (3x3 blocks)
def test_a_crop_of_an_rgb_image_converts_only_its_region_and_equals_the_crop_of_its_grey_image(scale):
    # crop_faces converts the part each crop reads to grey: the same crop as from the grey image,
    # also for crops that reach beyond the image (border replicated)
    import cv2
    from conftest import PHOTOS

    from openfer.core.align import cv2_matrix
    from openfer.io.images import read_image

    rgb = read_image(PHOTOS / "multi_face.jpg")
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    a = scale
    mats = np.array([[[a, 0.0, -a * 380], [0.0, a, -a * 250]],
                     [[a * np.cos(0.3), -a * np.sin(0.3), -a * 200], [a * np.sin(0.3), a * np.cos(0.3), -a * 300]],
                     [[a, 0.0, 10.0], [0.0, a, 5.0]],  # beyond the top-left corner
                     [[a, 0.0, -a * 960], [0.0, a, -a * 640]]])  # beyond the bottom-right corner
    got = crop_faces(rgb, mats, 48)
    np.testing.assert_array_equal(got, crop_faces(gray, mats, 48))
    if scale > 1 / 3:  # no pre-blur (f = 1): the plain warp of the whole grey image, but for the
        # warp's fixed-point rounding of a matrix shifted to the region (1 level, in rare pixels)
        for m, crop in zip(mats, got, strict=True):
            want = cv2.warpAffine(gray, cv2_matrix(m), (48, 48), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
            diff = np.abs(crop.astype(int) - want)
            assert diff.max() <= 1 and (diff > 0).mean() < 0.005
