"""Annotated images: face index in the label, panels that never cover another face, draw modes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PHOTOS

from openfer.draw import _bars, annotate
from openfer.errors import InputError
from openfer.io.images import read_image


@pytest.fixture(scope="module")
def group(analyzer):
    rgb = read_image(PHOTOS / "multi_face.jpg")
    return rgb, analyzer.analyze_rgb(rgb).faces


def test_auto_draws_boxes_only_for_a_group_and_points_for_one_face(group, analyzer):
    rgb, faces = group
    boxed, points = annotate(rgb, faces), annotate(rgb, faces, mesh="points")
    for f in faces:  # inside each face, points change far more pixels than the box-only drawing
        x1, y1, x2, y2 = (int(v) for v in f.box)
        inner = (slice(y1 + 12, y2 - 12), slice(x1 + 12, x2 - 12))
        assert (boxed[inner] != rgb[inner]).mean() < 0.01 < (points[inner] != rgb[inner]).mean()
    single = read_image(PHOTOS / "single_face.jpg")
    one = analyzer.analyze_rgb(single).faces
    x1, y1, x2, y2 = (int(v) for v in one[0].box)
    drawn = annotate(single, one)
    assert (drawn[y1 + 12 : y2 - 12, x1 + 12 : x2 - 12] != single[y1 + 12 : y2 - 12, x1 + 12 : x2 - 12]).mean() > 0.05
    assert (drawn[y1:y2, x2 + 5 : x2 + 60] != single[y1:y2, x2 + 5 : x2 + 60]).mean() > 0.5  # the panel


def test_probability_panels_never_cover_another_face(group):
    rgb, faces = group
    boxes = [tuple(int(round(v)) for v in f.box) for f in faces]
    for i, f in enumerate(faces):
        img = rgb.copy()
        others = boxes[:i] + boxes[i + 1 :]
        drawn = _bars(img, f.expression, faces.classes, boxes[i], 14, 1.0, others)
        changed = np.any(img != rgb, axis=-1)
        for ox1, oy1, ox2, oy2 in others:
            assert not changed[oy1:oy2, ox1:ox2].any(), (i, "panel over another face")
        assert drawn == bool(changed.any())
    assert annotate(rgb, faces, bars=True).shape == rgb.shape


def test_mesh_mode_and_bad_mode(group):
    rgb, faces = group
    meshed = annotate(rgb, faces[:1], mesh="mesh", bars=False)
    x1, y1, x2, y2 = (int(v) for v in faces[0].box)
    assert (meshed[y1 + 10 : y2 - 10, x1 + 10 : x2 - 10] != rgb[y1 + 10 : y2 - 10, x1 + 10 : x2 - 10]).any()
    with pytest.raises(InputError, match="draw: expected one of auto, box, points, mesh, got 'wire'"):
        annotate(rgb, faces, mesh="wire")
