"""The issue's fixture checks of the calibrated AUs on real photos (tolerances as stated there)."""

from pathlib import Path

import pytest

from openfer import Analyzer

PHOTOS = Path(__file__).resolve().parent / "assets" / "photos"


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(threads=1)


def test_single_face_smile_is_a_smile_not_pain(analyzer):
    faces = analyzer.analyze(PHOTOS / "single_face.jpg").faces
    assert len(faces) == 1
    a = faces[0].action_units
    assert a["AU12"] >= 2.0
    for name in ("AU4", "AU9", "AU15", "AU20", "AU43"):
        assert a[name] < 1.0, (name, a[name])
    assert float(faces.pspi[0]) < 5.0
    assert "match the happiness prototype" in faces.reasons[0]
    assert faces.blendshapes.shape == (1, 52)
    assert faces[0].blendshape_scores["mouthSmileLeft"] > 0.5


def test_single_face_cheek_raiser(analyzer):
    # AU6 1.9 with the full-range detector's face box (the default since it replaced the short-range
    # one); 1.4 from the short-range box: the mesh's landmarks, and so the geometric AUs, move with
    # the ROI the detector hands it (photos_dev: AU6 differs by 0.54 at the 95th percentile between
    # the two, benchmarks/results/detector_agreement.json)
    a = analyzer.analyze(PHOTOS / "single_face.jpg").faces[0].action_units
    assert max(a["AU6"], a["AU7"]) >= 1.5


def test_every_smile_of_the_group_photo(analyzer):
    faces = analyzer.analyze(PHOTOS / "multi_face.jpg").faces
    assert len(faces) == 5
    au12 = faces.aus[:, faces.au_names.index("AU12")]
    assert (au12 >= 2.0).all(), au12
