import numpy as np

from openfer.core.anchors import decode_blazeface, ssd_anchor_centers


def test_blazeface_short_range_anchor_layout():
    a = ssd_anchor_centers()
    assert a.shape == (896, 2)
    # 16x16 grid, 2 anchors per cell, then 8x8 grid, 6 anchors per cell (MediaPipe's layout)
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[2], [1.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[512], [0.5 / 8, 0.5 / 8])
    np.testing.assert_allclose(a[512:518], np.repeat([[0.5 / 8, 0.5 / 8]], 6, 0))
    np.testing.assert_allclose(a[-1], [7.5 / 8, 7.5 / 8])
    assert ((a > 0) & (a < 1)).all()


def test_decode_offsets_are_relative_to_anchor_in_input_pixels():
    anchors = np.array([[0.5, 0.5], [0.25, 0.75]])
    raw = np.zeros((2, 16))
    raw[0, :4] = [12.8, -12.8, 64, 32]  # +0.1, -0.1 in x/y; w=0.5, h=0.25
    raw[0, 4:6] = [6.4, 6.4]
    scores = np.array([0.0, 100.0])
    b, s, k = decode_blazeface(raw, scores, anchors, 128)
    np.testing.assert_allclose(b[0], [0.6 - 0.25, 0.4 - 0.125, 0.6 + 0.25, 0.4 + 0.125])
    np.testing.assert_allclose(k[0, 0], [0.55, 0.55])
    np.testing.assert_allclose(k[1], np.repeat([[0.25, 0.75]], 6, 0))
    np.testing.assert_allclose(s, [0.5, 1.0])
