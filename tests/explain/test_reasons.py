import numpy as np
import pytest

from openfer.core.affect import CIRCUMPLEX, valence_arousal
from openfer.core.au import AU_NAMES
from openfer.errors import ShapeError
from openfer.explain import compound_label, explain
from openfer.types import EXPRESSIONS


def _aus(**kw):
    a = np.zeros(len(AU_NAMES))
    for k, v in kw.items():
        a[AU_NAMES.index(k)] = v
    return a


def _p(**kw):
    p = np.full(len(EXPRESSIONS), 0.0)
    for k, v in kw.items():
        p[EXPRESSIONS.index(k)] = v
    p[EXPRESSIONS.index("neutral")] += 1 - p.sum()
    return p


def test_reason_cites_measured_prototype_aus():
    text = explain(_p(happiness=0.93), EXPRESSIONS, _aus(AU6=2.8, AU12=3.6), AU_NAMES)
    assert text == (
        "happiness (0.93): AU6 cheek raiser 2.8, AU12 lip corner puller 3.6 match the happiness prototype"
    )


def test_reason_says_when_classifier_and_aus_disagree():
    text = explain(_p(sadness=0.8), EXPRESSIONS, _aus(AU6=2.8, AU12=3.6), AU_NAMES)
    assert text.startswith("sadness (0.80): but the sadness prototype AUs are weak")
    assert "more like happiness (AU6 2.8, AU12 3.6)" in text and "disagree" in text
    # agreement: no disagreement clause
    assert "disagree" not in explain(_p(happiness=0.8), EXPRESSIONS, _aus(AU6=2.8, AU12=3.6), AU_NAMES)


def test_compound_naming_and_margin():
    assert compound_label(_p(happiness=0.45, surprise=0.40), EXPRESSIONS) == "happily surprised"
    assert compound_label(_p(surprise=0.45, happiness=0.40), EXPRESSIONS) == "happily surprised"
    assert compound_label(_p(fear=0.42, anger=0.38), EXPRESSIONS) == "fearfully angry"
    assert compound_label(_p(happiness=0.6, surprise=0.3), EXPRESSIONS) is None
    assert compound_label(_p(happiness=0.45), EXPRESSIONS) is None  # neutral runner-up: no compound
    text = explain(_p(happiness=0.45, surprise=0.40), EXPRESSIONS)
    assert text == "happily surprised (happiness 0.45, surprise 0.40)"


def test_valence_arousal_derived_from_probabilities():
    p = np.stack([_p(happiness=1.0), _p(), _p(sadness=0.5, anger=0.5)])
    va = valence_arousal(p, EXPRESSIONS)
    np.testing.assert_allclose(va[0], CIRCUMPLEX["happiness"])
    np.testing.assert_allclose(va[1], [0, 0])
    np.testing.assert_allclose(va[2], np.add(CIRCUMPLEX["sadness"], CIRCUMPLEX["anger"]) / 2)
    assert (
        np.abs(valence_arousal(np.random.default_rng(0).dirichlet(np.ones(8), 50), EXPRESSIONS)) <= 1
    ).all()
    with pytest.raises(ShapeError):
        valence_arousal(np.ones((2, 3)), EXPRESSIONS)


def test_a_smile_is_not_taken_for_contempt():
    text = explain(_p(happiness=0.9), EXPRESSIONS, _aus(AU6=2.5, AU12=4.4, AU14=5.0), AU_NAMES)
    assert "contempt" not in text and "disagree" not in text
