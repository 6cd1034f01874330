"""Per-track neutral AU baselines: the pure state (AuBaselines), and VideoRun end to end on a synthetic
face (the reference face with a wide mouth) whose mesh and expression are scripted per frame, so the
real locate/describe/track/checkpoint code runs without models."""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from openfer.components.au import estimate_aus
from openfer.components.pose import reference_face
from openfer.core.au import AU_NAMES, FEATURE_NAMES, au_features
from openfer.core.blendshapes import BLENDSHAPE_NAMES
from openfer.errors import InputError, ShapeError
from openfer.pipeline import PRESETS, Analyzer, mesh_boxes, mesh_keypoints
from openfer.types import EXPRESSIONS
from openfer.video import VideoAnalyzer, VideoCheckpoint, VideoOptions, VideoRun
from openfer.video.baseline import (
    BASELINE_FRAMES,
    BASELINE_MIN_FRAMES,
    NEUTRAL_PROB,
    AuBaselines,
    neutral_faces,
)

F = len(FEATURE_NAMES) + len(BLENDSHAPE_NAMES)  # evidence: mesh features, then blendshapes
AU20, AU12 = AU_NAMES.index("AU20"), AU_NAMES.index("AU12")


# --- the state ------------------------------------------------------------------------------------


def test_collects_the_first_frames_per_track_and_uses_their_median():
    b = AuBaselines.empty()
    assert b.counts(np.array([0, 1])).tolist() == [0, 0]
    rows = np.arange(12 * F, dtype=np.float64).reshape(12, F)
    b = b.add(np.array([0] * 12), rows, max_frames=10)
    b = b.add(np.array([1, 0]), rows[:2] + 0.5, max_frames=10)  # track 0 is full: ignored
    assert b.counts(np.array([1, 0, 7])).tolist() == [1, 10, 0]
    np.testing.assert_array_equal(b.tracks[0], rows[:10])  # the first ones, in order
    base, ready = b.neutral(np.array([0, 1, 7]), min_frames=2)
    assert ready.tolist() == [True, False, False]
    np.testing.assert_array_equal(base[0], np.median(rows[:10], 0))
    assert np.isnan(base[1:]).all()
    assert b.keep(np.array([0, 1])) is b and list(b.keep(np.array([1, 5])).tracks) == [1]
    with pytest.raises(ShapeError, match="features"):
        b.add(np.array([0, 1]), rows[:3])
    with pytest.raises(InputError, match="NaN"):
        b.add(np.array([0]), np.full((1, F), np.nan))
    with pytest.raises(TypeError):
        b.tracks[3] = rows  # read-only


def test_medians_kept_from_one_state_to_the_next_are_those_of_the_unchanged_tracks():
    """neutral() is asked every frame and computes each track's median once; add() and keep() hand
    the medians on, but never that of a track they changed (it would be a stale baseline)."""
    rng = np.random.default_rng(1)
    b = AuBaselines.empty().add(np.array([0] * 3 + [1] * 3), rng.normal(size=(6, F)))
    ids = np.array([0, 1])
    first, _ = b.neutral(ids, min_frames=1)
    b2 = b.add(np.array([1]), rng.normal(size=(1, F)) + 5.0)  # track 1 changes, track 0 does not
    again, _ = b2.neutral(ids, min_frames=1)
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], np.median(b2.tracks[1], 0))
    assert not np.array_equal(again[1], first[1])
    kept, _ = b2.keep(np.array([1])).neutral(np.array([1]), min_frames=1)
    np.testing.assert_array_equal(kept[0], again[1])
    assert AuBaselines.from_json(b2.to_json()).neutral(ids, min_frames=1)[0].tolist() == again.tolist()


def test_state_round_trips_json_exactly_and_none_is_empty():
    rng = np.random.default_rng(0)
    b = AuBaselines.empty().add(np.array([4, 4, 9]), rng.normal(size=(3, F)) / 3)
    back = AuBaselines.from_json(json.loads(json.dumps(b.to_json())))
    assert list(back.tracks) == [4, 9]
    for k in b.tracks:
        np.testing.assert_array_equal(back.tracks[k], b.tracks[k])  # bit-exact
    assert AuBaselines.from_json(None).tracks == {}
    # without a blendshape model the blendshape channels are NaN: written as null (strict JSON), read back
    rows = rng.normal(size=(2, F)) / 3
    rows[:, len(FEATURE_NAMES) :] = np.nan
    b = AuBaselines.empty().add(np.array([1, 1]), rows)
    text = json.dumps(b.to_json(), allow_nan=False)
    np.testing.assert_array_equal(AuBaselines.from_json(json.loads(text)).tracks[1], rows)


def test_only_confident_neutral_faces_of_unfilled_tracks_are_collected():
    p = np.zeros((4, len(EXPRESSIONS)))
    p[:, 0] = [0.9, NEUTRAL_PROB, 0.59, 0.95]
    want = neutral_faces(p, EXPRESSIONS, np.array([0, 5, 0, BASELINE_FRAMES]))
    assert want.tolist() == [True, True, False, False]  # the last one's track is full
    assert not neutral_faces(p, ("happy", "sad") + EXPRESSIONS[2:], np.zeros(4)).any()  # no neutral


# --- VideoRun on a scripted face ------------------------------------------------------------------


def face(wide: float = 0.05, smile: float = 0.0) -> np.ndarray:
    """The reference face in image space (100 px per inter-ocular distance), lip corners moved out
    by ``wide`` and up by ``smile`` (inter-ocular distances)."""
    ref = reference_face().copy()
    ref[61, 0] -= wide  # subject's right corner: towards the image's left
    ref[291, 0] += wide
    ref[[61, 291], 1] += smile
    return np.stack([320 + 100 * ref[:, 0], 180 - 100 * ref[:, 1], -100 * ref[:, 2]], 1)


def scene():
    """(landmarks or None, p(neutral)) per frame: 0-4 wide mouth but not confidently neutral, 5-19
    confidently neutral, 20-24 neutral-ish again (0.5), 25-29 a smile."""
    out = [(face(), 0.55)] * 5 + [(face(), 0.9)] * 15 + [(face(), 0.5)] * 5
    return out + [(face(smile=0.06), 0.02)] * 5  # corners 0.06 up: AU12 ~2.5 on the calibrated scale


def frame_rgb(index: int) -> np.ndarray:
    rgb = np.full((360, 640, 3), 90, np.uint8)
    rgb[0, 0] = (index % 256, index // 256, 0)  # the fakes read the frame index from here
    return rgb


def scripted_analyzer(frames) -> Analyzer:
    """A real :class:`Analyzer` (locate/describe) over scripted components: the mesh and detector
    return frame k's landmarks (none when ``frames[k][0]`` is None), the expression model its p."""

    def current(rgb):
        return frames[int(rgb[0, 0, 0]) + 256 * int(rgb[0, 0, 1])]

    def mesh(rgb, center, side, angle):
        lm, _ = current(rgb)
        n = len(np.asarray(side).reshape(-1))
        if lm is None:
            return np.zeros((n, 468, 3), np.float32), np.zeros(n)
        return np.repeat(lm[None].astype(np.float32), n, 0), np.ones(n)

    def detector(rgb, whole_only=False):
        lm, _ = current(rgb)
        if lm is None:
            return SimpleNamespace(boxes=np.zeros((0, 4)), scores=np.zeros(0), keypoints=np.zeros((0, 6, 2)))
        return SimpleNamespace(
            boxes=mesh_boxes(lm[None]), scores=np.array([0.9]), keypoints=mesh_keypoints(lm[None])
        )

    def classify(rgb, lmk):
        _, pn = current(rgb)
        p = np.zeros((len(lmk), len(EXPRESSIONS)))
        p[:, 0], p[:, 1] = pn, 1 - pn
        return p, None

    return Analyzer.from_components(
        PRESETS["video"],
        mesh=_Callable(mesh, num_landmarks=468, model_name="facemesh"),
        detector=_Callable(detector),
        expression=SimpleNamespace(classes=EXPRESSIONS, openset=None, classify=classify),
        blendshapes=None,  # 468 points: AUs from their calibrated geometric fallbacks
    )


class _Callable:
    def __init__(self, fn, **attrs):
        self._fn = fn
        self.__dict__.update(attrs)

    def __call__(self, *args, **kw):
        return self._fn(*args, **kw)


def stepped(video: VideoAnalyzer, frames, first: int = 0, resume: VideoCheckpoint | None = None, until=None):
    run = VideoRun(video, None, resume)
    out, ckpts = [], {}
    for k in range(first, len(frames) if until is None else until + 1):
        out.append(run.step(frame_rgb(k), k, k / 30))
        ckpts[k] = run.checkpoint()
    return out, ckpts


@pytest.fixture(scope="module")
def frames():
    return scene()


@pytest.fixture(scope="module")
def video(frames):
    return VideoAnalyzer(analyzer=scripted_analyzer(frames))


def test_wide_mouth_reads_as_au20_until_the_baseline_is_in(video, frames):
    out, ckpts = stepped(video, frames)
    aus = np.stack([f.faces.aus[0] for f in out])
    flags = np.array([bool(f.au_baseline[0]) for f in out])
    assert [int(f.track_ids[0]) for f in out] == [0] * len(frames)
    # collected only from frames 5-19 (p(neutral) >= 0.6): the baseline is in from frame 5 + 10 on
    assert ckpts[4].au_baseline.counts(np.array([0])).tolist() == [0]
    assert ckpts[29].au_baseline.counts(np.array([0])).tolist() == [15]
    ready = 5 + BASELINE_MIN_FRAMES
    assert flags.tolist() == [False] * ready + [True] * (len(frames) - ready)
    # 0.1 inter-ocular distances wider than the population's neutral mouth: a marked AU20, exactly
    # what the calibrated geometric AU20 gives the same face on its own
    assert (aus[:ready, AU20] > 2.0).all()
    np.testing.assert_allclose(aus[:ready, AU20], estimate_aus(face()[None])[0, AU20], atol=1e-5)
    assert (aus[ready:, AU20] < 0.01).all()  # the person's own resting mouth
    assert (aus[:25, AU12] < 0.01).all()
    assert (aus[25:, AU12] > 2.0).all() and (aus[25:, AU20] < 0.01).all()  # the smile still shows
    # PSPI and the reasons come from the same (baseline-relative) AUs
    for f in out:
        assert f.faces.pspi[0] == pytest.approx(
            float(
                f.faces.aus[0, AU_NAMES.index("AU4")]
                + f.faces.aus[0, [AU_NAMES.index("AU6"), AU_NAMES.index("AU7")]].max()
                + f.faces.aus[0, [AU_NAMES.index("AU9"), AU_NAMES.index("AU10")]].max()
                + f.faces.aus[0, AU_NAMES.index("AU43")] / 5
            ),
            abs=1e-4,
        )
    assert "AU12" in out[-1].faces.reasons[0]
    # the baseline is the median of the collected features of the face
    base, ok = ckpts[29].au_baseline.neutral(np.array([0]))
    assert ok[0]
    want = au_features(reference_face()[None].copy())[0]
    assert base[0, FEATURE_NAMES.index("mouth_width")] == pytest.approx(
        want[FEATURE_NAMES.index("mouth_width")] + 0.1, abs=1e-3
    )


def test_none_mode_keeps_the_reference_face(frames):
    video = VideoAnalyzer(analyzer=scripted_analyzer(frames), au_baseline="none")
    out, ckpts = stepped(video, frames, until=24)
    assert all(f.au_baseline is None for f in out)
    assert all(f.faces.aus[0, AU20] > 2.0 for f in out)
    assert ckpts[24].au_baseline.tracks == {}
    with pytest.raises(InputError, match="au_baseline"):
        VideoOptions(au_baseline="median")


def test_resume_mid_collection_is_exact_and_old_checkpoints_load(video, frames):
    full, ckpts = stepped(video, frames)
    text = json.dumps(ckpts[11].to_json())
    ckpt = VideoCheckpoint.from_json(json.loads(text))
    assert ckpt.au_baseline.counts(np.array([0])).tolist() == [7]  # frames 5-11: still collecting
    rest, _ = stepped(video, frames, first=12, resume=ckpt)
    for a, b in zip(rest, full[12:], strict=True):
        np.testing.assert_array_equal(a.faces.aus, b.faces.aus)
        np.testing.assert_array_equal(a.faces.pspi, b.faces.pspi)
        assert a.au_baseline.tolist() == b.au_baseline.tolist() and a.faces.reasons == b.faces.reasons
    # a checkpoint written before baselines existed has no such field: it loads, collection restarts
    old = json.loads(text)
    del old["au_baseline"]
    ckpt = VideoCheckpoint.from_json(old)
    assert ckpt.au_baseline.tracks == {} and ckpt.frame_index == 11
    again, after = stepped(video, frames, first=12, resume=ckpt)
    assert not any(f.au_baseline[0] for f in again)  # 8 neutral frames left (12-19): not enough
    assert after[len(frames) - 1].au_baseline.counts(np.array([0])).tolist() == [8]


def test_a_forgotten_track_drops_its_baseline(frames):
    script = scene()[:20] + [(None, 0.0)] * 4 + [(face(), 0.5)] * 3
    video = VideoAnalyzer(analyzer=scripted_analyzer(script), max_missed=2)
    out, ckpts = stepped(video, script)
    assert out[19].au_baseline.tolist() == [True] and list(ckpts[19].au_baseline.tracks) == [0]
    assert [len(f.faces) for f in out[20:24]] == [0] * 4
    assert ckpts[23].au_baseline.tracks == {}  # the tracker forgot track 0 after 2 missed frames
    back = out[24:]
    assert {int(f.track_ids[0]) for f in back} == {1}  # a new track: measured on the reference again
    assert all(not f.au_baseline[0] and f.faces.aus[0, AU20] > 2.0 for f in back)


def test_pipelined_iteration_hands_out_the_state_after_each_frame(tmp_path, frames):
    for k in range(len(frames)):
        cv2.imwrite(str(tmp_path / f"f{k:03d}.png"), cv2.cvtColor(frame_rgb(k), cv2.COLOR_RGB2BGR))
    video = VideoAnalyzer(analyzer=scripted_analyzer(frames), sequence_fps=30.0)
    assert video.options.pipeline
    stepped_frames, ckpts = stepped(video, frames)
    run = video.run(tmp_path)
    for a, b in zip(run, stepped_frames, strict=True):
        np.testing.assert_array_equal(a.faces.aus, b.faces.aus)
        assert a.au_baseline.tolist() == b.au_baseline.tolist()
        got = run.checkpoint().au_baseline
        want = ckpts[a.frame_index].au_baseline
        assert list(got.tracks) == list(want.tracks)
        for k in want.tracks:
            np.testing.assert_array_equal(got.tracks[k], want.tracks[k])
