"""Expression events (hysteresis, gap merging, minimum duration, time gaps, smoothing), the dynamic
label and captions on synthetic tracks with known onsets, apexes and offsets: no models."""

from __future__ import annotations

import numpy as np
import pytest

from openfer.core.au import AU_NAMES
from openfer.errors import InputError, ShapeError
from openfer.types import EXPRESSIONS, Faces, FrameResult
from openfer.video import Timeline
from openfer.video.analyzer import VideoFrame
from openfer.video.events import (
    NO_FACES,
    ExpressionEvent,
    au_key,
    caption,
    captions_text,
    describe_event,
    detect_events,
    dynamic_label,
    timeline_dynamics,
    track_dynamics,
)

C = len(EXPRESSIONS)
HAP, SUR, SAD = EXPRESSIONS.index("happiness"), EXPRESSIONS.index("surprise"), EXPRESSIONS.index("sadness")
STEP = 0.1


def track(values: dict[int, list[float]], n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Times k * 0.1 s and probabilities: ``values[c]`` is class c's probability per row, neutral
    takes the rest."""
    n = n if n is not None else max(len(v) for v in values.values())
    p = np.zeros((n, C))
    for c, v in values.items():
        p[: len(v), c] = v
    p[:, 0] = 1.0 - p[:, 1:].sum(1)
    return np.arange(n) * STEP, p


def test_hysteresis_onset_apex_offset():
    # rises above on=0.5 at row 10, dips to 0.4 (above off=0.35: continues), peaks at row 15,
    # falls below off at row 20
    v = [0.0] * 8 + [0.3, 0.45, 0.6, 0.7, 0.4, 0.4, 0.8, 0.9, 0.7, 0.6, 0.5, 0.36, 0.3, 0.0, 0.0]
    t, p = track({HAP: v})
    (e,) = detect_events(t, p, EXPRESSIONS, step=STEP)
    assert (e.label, e.onset, e.apex, e.offset, e.frames) == ("happiness", 1.0, 1.5, 2.0, 10)
    assert e.duration == pytest.approx(1.0) and e.peak == pytest.approx(0.9)
    assert e.aus == {}
    # without hysteresis (off = on) the dip at rows 12-13 splits it; 0.2 s gap < 0.3 s: merged again
    (m,) = detect_events(t, p, EXPRESSIONS, off=0.5, step=STEP)
    assert (m.onset, m.offset) == (1.0, 1.9)
    assert detect_events(t, p, EXPRESSIONS, off=0.5, merge_gap=0.1, step=STEP)[0].offset == 1.2


def test_below_onset_threshold_is_no_event():
    t, p = track({HAP: [0.49] * 30})
    assert detect_events(t, p, EXPRESSIONS) == ()
    d = track_dynamics(t, p, EXPRESSIONS, track=3)
    assert d.dynamic_label == "neutral" and d.lead == "neutral"
    assert d.caption == "track 3: neutral throughout (0.0 s to 2.9 s)"


def test_gap_merging_and_min_duration():
    on3, off2, off4 = [0.8] * 3, [0.1] * 2, [0.1] * 4
    t, p = track({SUR: off4 + on3 + off2 + on3 + off4 + on3 + off4 + [0.8] + off4})
    ev = detect_events(t, p, EXPRESSIONS, step=STEP)
    # runs 0.4-0.7 and 0.9-1.2 (0.2 s apart) merge; 1.6-1.9 stays apart (0.4 s); the 0.1 s blip at 2.3 is dropped
    assert [(e.onset, e.offset) for e in ev] == [(0.4, 1.2), (1.6, 1.9)]
    assert [e.frames for e in ev] == [8, 3]
    two = detect_events(t, p, EXPRESSIONS, step=STEP, min_duration=0.1)
    assert [(e.onset, e.offset) for e in two][-1] == (2.3, 2.4)
    assert detect_events(t, p, EXPRESSIONS, step=STEP, min_duration=0.35)[0].onset == 0.4
    assert len(detect_events(t, p, EXPRESSIONS, step=STEP, min_duration=0.35)) == 1


def test_face_absent_gap_breaks_an_event_unless_short():
    t, p = track({HAP: [0.9] * 20})
    keep = np.r_[0:8, 18:20]  # rows 8-17 missing: the face was away for 1 s
    ev = detect_events(t[keep], p[keep], EXPRESSIONS, step=STEP)
    assert [(e.onset, e.offset) for e in ev] == [(0.0, 0.8), (1.8, 2.0)]
    keep = np.r_[0:8, 10:20]  # 0.2 s away: merged back into one event
    (e,) = detect_events(t[keep], p[keep], EXPRESSIONS, step=STEP)
    assert (e.onset, e.offset, e.frames) == (0.0, 2.0, 18)


def test_class_switch_and_unsorted_rows():
    t, p = track({HAP: [0.8] * 10 + [0.2] * 10, SUR: [0.0] * 10 + [0.6] * 10})
    rev = np.arange(len(t))[::-1]
    ev = detect_events(t[rev], p[rev], EXPRESSIONS, step=STEP, track=7)
    assert [(e.track, e.label, e.onset, e.offset) for e in ev] == [
        (7, "happiness", 0.0, 1.0),
        (7, "surprise", 1.0, 2.0),
    ]


def test_prototype_au_means_and_caption_cites_only_measured_high_aus():
    t, p = track({HAP: [0.0] * 21 + [0.9] * 19 + [0.0] * 20})
    aus = np.zeros((len(t), len(AU_NAMES)))
    aus[21:40, AU_NAMES.index("AU12")] = 3.0
    aus[21:40, AU_NAMES.index("AU6")] = 0.5
    aus[21:40, AU_NAMES.index("AU4")] = 4.0  # high but no happiness prototype: never cited
    d = track_dynamics(t, p, EXPRESSIONS, aus=aus, au_names=AU_NAMES, track=1)
    (e,) = d.events
    assert e.aus == {"AU6": 0.5, "AU12": 3.0}
    assert (e.onset, e.offset) == (2.1, 4.0)
    # mean prototype intensity 1.75: neither slight (< 1) nor broad (>= 2.5)
    assert d.caption == "track 1: neutral, then a smile (AU12) from 2.1 s to 4.0 s"
    aus[21:40, AU_NAMES.index("AU6")] = 2.0  # mean 2.5: broad, both cited
    d = track_dynamics(t, p, EXPRESSIONS, aus=aus, au_names=AU_NAMES, track=1)
    assert d.caption == "track 1: neutral, then a broad smile (AU6+AU12) from 2.1 s to 4.0 s"
    assert d.to_dict()["events"][0]["aus"] == {"AU6": 2.0, "AU12": 3.0}


def test_caption_brief_event_slight_and_unmeasured_aus():
    t, p = track({HAP: [0.0] * 21 + [0.9] * 19 + [0.0] * 13 + [0.7] * 3 + [0.0] * 4}, n=60)
    p[53:56, SUR], p[53:56, HAP] = p[53:56, HAP], 0.0
    aus = np.full((len(t), 2), np.nan)  # only AU6/AU12 measured, and only during the smile
    aus[21:40] = [2.6, 3.2]
    d = track_dynamics(t, p, EXPRESSIONS, aus=aus, au_names=("AU06", "AU12"))
    assert [e.label for e in d.events] == ["happiness", "surprise"]
    assert d.events[1].aus == {}  # no surprise AU was measured: no intensity word, none named
    assert (
        d.caption
        == "track 0: neutral, then a broad smile (AU6+AU12) from 2.1 s to 4.0 s, brief surprise at 5.3 s"
    )
    aus[53:56] = 0.0
    slight = ExpressionEvent(0, "surprise", 5.3, 5.3, 5.6, 0.3, 0.7, 3, {"AU1": 0.2, "AU2": 0.0})
    assert describe_event(slight) == "brief slight surprise at 5.3 s"
    # the same weak AUs under a confident classifier (peak 0.98): not "slight", and no match claimed
    sure = ExpressionEvent(0, "sadness", 0.2, 3.0, 6.1, 5.9, 0.98, 139, {"AU1": 0.1, "AU4": 0.0, "AU15": 0.5})
    assert describe_event(sure) == "sadness (prototype AUs not seen) from 0.2 s to 6.1 s"


def test_lead_is_left_out_when_the_first_event_starts_at_once_and_non_neutral_lead():
    t, p = track({HAP: [0.9] * 10 + [0.0] * 10})
    assert track_dynamics(t, p, EXPRESSIONS).caption == "track 0: a smile from 0.0 s to 1.0 s"
    t, p = track({SAD: [0.45] * 10 + [0.8] * 10, HAP: [0.2] * 10})  # neutral 0.35 before 1 s
    d = track_dynamics(t, p, EXPRESSIONS)
    assert d.lead == "sadness" and d.caption == "track 0: weakly sad, then sadness from 1.0 s to 2.0 s"


def test_dynamic_label_weights_duration_by_peak():
    def ev(label, onset, duration, peak):
        return ExpressionEvent(0, label, onset, onset, onset + duration, duration, peak, 1, {})

    assert dynamic_label([]) == "neutral"
    events = [ev("surprise", 0, 1.0, 0.9), ev("happiness", 2, 1.0, 0.6), ev("happiness", 4, 0.6, 0.6)]
    assert dynamic_label(events) == "happiness"  # 1.0 * 0.6 + 0.6 * 0.6 = 0.96 > 1.0 * 0.9
    assert dynamic_label([ev("anger", 3, 1.0, 0.5), ev("fear", 1, 0.5, 1.0)]) == "fear"  # tie: earlier first


def test_captions_text_and_no_faces():
    assert captions_text(()) == NO_FACES + "\n"
    t, p = track({HAP: [0.9] * 10})
    lines = captions_text([track_dynamics(t, p, EXPRESSIONS, track=k) for k in (0, 2)]).splitlines()
    assert lines == ["track 0: a smile from 0.0 s to 1.0 s", "track 2: a smile from 0.0 s to 1.0 s"]
    assert (
        caption([], track=0, start=0.0, end=1.0, lead=None)
        == "track 0: no expression events throughout (0.0 s to 1.0 s)"
    )


def test_au_key_and_misuse():
    assert (au_key("AU06"), au_key("AU12"), au_key("pain")) == ("AU6", "AU12", "pain")
    t, p = track({HAP: [0.9] * 10})
    with pytest.raises(InputError, match="off <= on"):
        detect_events(t, p, EXPRESSIONS, on=0.3, off=0.5)
    with pytest.raises(ShapeError, match="probs"):
        detect_events(t, p[:, :3], EXPRESSIONS)
    with pytest.raises(ShapeError, match="aus"):
        detect_events(t, p, EXPRESSIONS, aus=np.zeros((10, 3)), au_names=("AU6",))
    with pytest.raises(InputError, match="at least one row"):
        track_dynamics(np.zeros(0), np.zeros((0, C)), EXPRESSIONS)
    assert detect_events(np.zeros(0), np.zeros((0, C)), EXPRESSIONS) == ()


def au_timeline(fps: float = 30.0) -> tuple[Timeline, np.ndarray]:
    """One track at ``fps`` for 2 s: happiness 0.9 from 0.5 s to 1.5 s with AU12 4.0 (0 elsewhere), and
    a one-frame surprise flicker (0.9) at 0.2 s."""
    n = int(2 * fps)
    t = np.arange(n) / fps
    p = np.zeros((n, C))
    smile = (t >= 0.5 - 1e-9) & (t < 1.5 - 1e-9)
    p[smile, HAP] = 0.9
    p[int(0.2 * fps), SUR] = 0.9
    p[:, 0] = 1 - p.sum(1)
    aus = np.zeros((n, len(AU_NAMES)))
    aus[smile, AU_NAMES.index("AU12")] = 4.0
    tl = Timeline(frame_step=1 / fps, au_names=AU_NAMES)
    for k in range(n):
        faces = Faces(
            boxes=np.array([[10.0, 20.0, 60.0, 80.0]]),
            scores=np.full(1, 0.9),
            keypoints=np.zeros((1, 6, 2)),
            landmarks=np.zeros((1, 0, 3)),
            landmark_scores=np.full(1, 0.9),
            poses=np.zeros((1, 3)),
            expressions=p[k : k + 1],
            aus=aus[k : k + 1],
            au_names=AU_NAMES,
        )
        tl.add(VideoFrame(FrameResult(faces, 640, 360, "x.mp4", k, float(t[k])), np.zeros(1, np.int64)))
    return tl, aus


def test_timeline_dynamics_smooths_probabilities_but_cites_measured_aus():
    tl, aus = au_timeline()
    raw = timeline_dynamics(tl, smooth=None, min_duration=0.0)
    assert [e.label for e in raw[0].events] == ["surprise", "happiness"]  # the flicker is an event
    (d,) = timeline_dynamics(tl, min_duration=0.0)  # EMA (0.1 s): the flicker peaks at 0.25
    (e,) = d.events
    assert e.label == "happiness" and 0.5 < e.onset <= 0.6 and 1.5 < e.offset <= 1.6  # ~0.1 s lag
    span = (tl.times > e.onset - 1e-6) & (tl.times < e.offset - 1e-6)  # times are rounded to 1 µs
    assert e.aus["AU12"] == pytest.approx(aus[span, AU_NAMES.index("AU12")].mean())
    # an already smoothed timeline is used as it is (no second smoothing), with its raw AUs as evidence
    sm = tl.smooth("ema", tau=1.0)
    (d2,) = timeline_dynamics(sm, min_duration=0.0)
    assert d2.events == detect_events(
        tl.times, sm.probabilities, EXPRESSIONS, aus=aus, au_names=AU_NAMES, min_duration=0.0
    )
    (e2,) = d2.events
    span = (tl.times > e2.onset - 1e-6) & (tl.times < e2.offset - 1e-6)
    j = AU_NAMES.index("AU12")
    assert e2.aus["AU12"] == pytest.approx(aus[span, j].mean())
    assert abs(sm.aus[span, j].mean() - e2.aus["AU12"]) > 0.5
    assert d.caption == f"track 0: neutral, then a smile (AU12) from {e.onset:.1f} s to {e.offset:.1f} s"


def test_a_single_row_is_no_event_and_not_called_weak():
    t, p = track({HAP: [0.9]})
    d = track_dynamics(t, p, EXPRESSIONS)
    assert d.events == () and d.lead is None
    assert d.caption == "track 0: no expression events throughout (0.0 s to 0.0 s)"
