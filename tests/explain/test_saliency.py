import numpy as np

from openfer.explain.saliency import occlusion_saliency, occlusion_windows, overlay


class _MouthClassifier:
    """Stand-in with the classifier's interface: class 1 probability = brightness of rows 30-40."""

    def predict_crops(self, crops):
        v = crops[:, 30:40, 14:34].mean((1, 2)) / 255.0
        return np.stack([1 - v, v], 1)


def test_windows_cover_the_crop():
    wins = occlusion_windows(48, 10, 4)
    cover = np.zeros((48, 48), int)
    for y, x in wins:
        cover[y : y + 10, x : x + 10] += 1
    assert (cover > 0).all()


def test_saliency_finds_the_region_the_classifier_uses():
    crop = np.full((48, 48), 60, np.uint8)
    crop[30:40, 14:34] = 250  # a bright "mouth" that drives class 1
    m = occlusion_saliency(_MouthClassifier(), crop, target=1)
    assert m.shape == (48, 48) and m.min() >= 0 and m.max() == 1.0
    inside = m[30:40, 14:34].mean()
    outside = np.concatenate([m[:20].ravel(), m[:, :8].ravel()]).mean()
    assert inside > 5 * outside


def test_overlay_changes_only_the_face_region():
    img = np.full((100, 100, 3), 128, np.uint8)
    heat = np.ones((48, 48))
    mat = np.array([[1.0, 0.0, -20.0], [0.0, 1.0, -30.0]])  # crop = image shifted by (20, 30)
    out = overlay(img, heat[None], mat[None])
    assert (out[35:70, 25:60] != 128).any(axis=-1).all()
    assert (out[:25] == 128).all() and (out[85:] == 128).all()
