"""VideoReader: frame counts, timestamps, selection, colour, image sequences and bad files (no models)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from video_assets import FACE_NOFACE, NO_FACE, SINGLE_FACE

from openfer.errors import InputError
from openfer.video import reader as reader_mod
from openfer.video.reader import VideoReader, _Selector, _timestamp


def _frames(**kw):
    with VideoReader(kw.pop("source", SINGLE_FACE), **kw) as r:
        return list(r)


# --- smoke / feature ---------------------------------------------------------------------------


def test_single_face_frame_count_indices_and_monotonic_timestamps():
    r = VideoReader(SINGLE_FACE)
    assert (r.info.width, r.info.height, r.info.frame_count, r.info.is_sequence) == (640, 360, 72, False)
    assert r.info.fps == pytest.approx(30.0)
    assert r.expected_frames() == 72
    frames = list(r)
    assert len(frames) == 72
    assert [f.index for f in frames] == list(range(72))
    ts = np.array([f.timestamp for f in frames])
    assert ts[0] == 0.0 and (np.diff(ts) > 0).all()
    np.testing.assert_allclose(ts, np.arange(72) / 30.0, atol=1e-3)
    assert all(f.rgb.shape == (360, 640, 3) and f.rgb.dtype == np.uint8 for f in frames)


def test_frames_are_rgb_converted_once_per_selected_frame(monkeypatch):
    cap = cv2.VideoCapture(str(SINGLE_FACE))
    ok, bgr = cap.read()
    cap.release()
    assert ok
    calls = []
    real = cv2.cvtColor

    def counting(src, code, *a, **k):
        calls.append(code)
        return real(src, code, *a, **k)

    monkeypatch.setattr(reader_mod.cv2, "cvtColor", counting)
    frames = _frames(every=3)
    assert len(frames) == 24
    assert calls == [cv2.COLOR_BGR2RGB] * 24  # once per yielded frame, never for skipped ones
    np.testing.assert_array_equal(frames[0].rgb, bgr[..., ::-1])


def test_iterating_twice_gives_the_same_frames():
    r = VideoReader(SINGLE_FACE, every=12)
    a, b = list(r), list(r)
    assert [f.index for f in a] == [f.index for f in b] == [0, 12, 24, 36, 48, 60]
    assert all(np.array_equal(x.rgb, y.rgb) for x, y in zip(a, b, strict=True))


def test_every_fps_start_end_selection():
    assert [f.index for f in _frames(every=5)] == list(range(0, 72, 5))
    f10 = _frames(fps=10)
    assert [f.index for f in f10] == list(range(0, 72, 3))
    f_hi = _frames(fps=100)  # above the source rate: every frame
    assert len(f_hi) == 72
    part = _frames(start=1.0, end=2.0)
    ts = [f.timestamp for f in part]
    assert len(part) == 30 and min(ts) >= 1.0 - 1e-6 and max(ts) < 2.0
    assert part[0].index == 30
    part5 = _frames(start=1.0, end=2.0, every=5)
    assert [f.index for f in part5] == list(range(30, 60, 5))  # counted from the first frame >= start


def test_expected_frames_estimates_the_selection():
    for kw in ({}, {"every": 5}, {"fps": 10}, {"start": 1.0, "end": 2.0}, {"start": 0.5, "every": 4}):
        r = VideoReader(SINGLE_FACE, **kw)
        assert abs(r.expected_frames() - len(list(r))) <= 1, kw


def test_after_skips_done_frames_without_changing_selection():
    full = _frames(fps=7)
    idx = [f.index for f in full]
    tail = _frames(fps=7, after=idx[5])
    assert [f.index for f in tail] == idx[6:]
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(full[6:], tail, strict=True))


def test_variable_frame_rate_timestamps_come_from_the_container():
    frames = _frames(source=FACE_NOFACE)
    assert len(frames) == 169
    ts = np.array([f.timestamp for f in frames])
    assert (np.diff(ts) > 0).all()
    d = np.diff(ts)
    # 30 fps for the face part, 24 fps later: index / fps would get these wrong
    assert d[:70] == pytest.approx(1 / 30, abs=1e-4) and d[-50:] == pytest.approx(1 / 24, abs=1e-4)


def test_stream_shorter_than_declared_by_a_few_frames_is_fine():
    r = VideoReader(NO_FACE, every=10)
    assert r.info.frame_count == 98
    assert len(list(r)) == 10  # 95 decodable frames, within the tolerance for container estimates


def test_timestamp_falls_back_to_index_over_fps_and_stays_increasing():
    assert _timestamp(500.0, 15, 30.0, 0.4) == 0.5
    assert _timestamp(0.0, 3, 30.0, 0.05) == pytest.approx(0.1)  # 0 after the first frame: not sane
    assert _timestamp(float("nan"), 3, 30.0, 0.05) == pytest.approx(0.1)
    assert _timestamp(100.0, 3, 30.0, 0.2) == pytest.approx(0.2 + 1 / 30)  # going back; index/fps too small


@settings(max_examples=60, deadline=None)
@given(st.floats(1, 60), st.floats(0.5, 120), st.integers(2, 400))
def test_fps_selection_keeps_at_most_the_target_rate(src_fps, target, n):
    sel = _Selector(1, target, 0.0, None)
    times = np.arange(n) / src_fps
    kept = [t for t in times if sel(t)]
    assert kept[0] == 0.0
    duration = times[-1]
    assert len(kept) <= math.floor(duration * target + 1e-6) + 1
    if target >= src_fps:
        assert len(kept) == n


# --- image sequences ---------------------------------------------------------------------------


def _write_sequence(folder, n=12, size=(48, 64)):
    folder.mkdir()
    rng = np.random.default_rng(0)
    imgs = []
    for i in range(1, n + 1):
        img = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"img{i}.png"), img[..., ::-1])
        imgs.append(img)
    (folder / "notes.txt").write_text("not an image")
    return imgs


def test_image_folder_in_natural_order_at_given_fps(tmp_path):
    imgs = _write_sequence(tmp_path / "seq")
    r = VideoReader(tmp_path / "seq", sequence_fps=12.0)
    assert r.info.is_sequence and r.info.frame_count == 12 and (r.info.width, r.info.height) == (64, 48)
    frames = list(r)
    assert [f.index for f in frames] == list(range(12))  # img2 before img10
    np.testing.assert_allclose([f.timestamp for f in frames], np.arange(12) / 12.0)
    assert all(np.array_equal(f.rgb, im) for f, im in zip(frames, imgs, strict=True))
    assert [f.index for f in VideoReader(tmp_path / "seq", every=4)] == [0, 4, 8]


def test_image_glob_with_default_fps(tmp_path):
    _write_sequence(tmp_path / "seq")
    frames = list(VideoReader(str(tmp_path / "seq" / "img1*.png")))  # img1, img10, img11, img12
    assert len(frames) == 4
    assert frames[1].timestamp == pytest.approx(1 / 30)


def test_image_sequence_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        VideoReader(tmp_path / "empty")
    with pytest.raises(InputError, match="matches no images"):
        VideoReader(str(tmp_path / "nothing*.png"))
    _write_sequence(tmp_path / "seq", n=3)
    cv2.imwrite(str(tmp_path / "seq" / "img4.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(InputError, match="img4.png.*one size"):
        list(VideoReader(tmp_path / "seq"))


# --- exceptions ---------------------------------------------------------------------------------


def test_bad_options():
    for kw, msg in [
        ({"every": 0}, "every"),
        ({"every": 2, "fps": 5.0}, "either"),
        ({"fps": -1.0}, "fps"),
        ({"start": -1.0}, "start"),
        ({"start": 2.0, "end": 1.0}, "end"),
    ]:
        with pytest.raises(InputError, match=msg):
            VideoReader(SINGLE_FACE, **kw)


def test_missing_file():
    with pytest.raises(InputError, match="nope.mp4: no such file"):
        VideoReader("nope.mp4")


@pytest.mark.parametrize(
    "content", [b"", b"hello, this is not a video\n" * 50, b"\x00\x00\x00\x20ftypisom" + b"\x00" * 300]
)
def test_not_a_video_names_the_file(tmp_path, content):
    p = tmp_path / "clip.mp4"
    p.write_bytes(content)
    with pytest.raises(InputError, match="clip.mp4: cannot open as a video"):
        VideoReader(p)


def test_truncated_mp4_names_the_file(tmp_path):
    data = SINGLE_FACE.read_bytes()
    p = tmp_path / "cut.mp4"
    p.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: nothing can be decoded
    with pytest.raises(InputError, match="cut.mp4"):
        VideoReader(p)


def _faststart(mp4: bytes) -> bytes:
    """The same mp4 with its index (moov) moved before the media data, chunk offsets shifted."""
    import struct

    atoms, pos = [], 0
    while pos < len(mp4):
        size, kind = struct.unpack(">I4s", mp4[pos : pos + 8])
        atoms.append((kind, mp4[pos : pos + size]))
        pos += size
    moov = bytearray(dict(atoms)[b"moov"])
    i = moov.find(b"stco")
    while i >= 0:
        n = struct.unpack(">I", moov[i + 8 : i + 12])[0]
        for k in range(n):
            o = i + 12 + 4 * k
            moov[o : o + 4] = struct.pack(">I", struct.unpack(">I", moov[o : o + 4])[0] + len(moov))
        i = moov.find(b"stco", i + 4)
    out = b""
    for kind, raw in atoms:
        if kind == b"moov":
            continue
        if kind == b"mdat":
            out += bytes(moov)
        out += raw
    return out


def test_truncated_streamable_mp4_raises_after_the_decodable_frames(tmp_path):
    fast = _faststart(SINGLE_FACE.read_bytes())
    whole = tmp_path / "fast.mp4"
    whole.write_bytes(fast)
    assert len(list(VideoReader(whole))) == 72  # the rewrite itself is a valid video
    cut = tmp_path / "fast_cut.mp4"
    cut.write_bytes(fast[: len(fast) * 6 // 10])
    r = VideoReader(cut)
    got = []
    with pytest.raises(InputError, match="fast_cut.mp4: truncated or corrupt"):
        for f in r:
            got.append(f.index)
    assert 10 < len(got) < 72 and got == list(range(len(got)))


def test_truncated_avi_raises_after_the_decodable_frames(tmp_path):
    src = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    assert w.isOpened()
    for i in range(40):
        w.write(np.full((48, 64, 3), i * 5, np.uint8))
    w.release()
    assert len(list(VideoReader(src))) == 40
    data = src.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.avi: truncated or corrupt.*of the 40 frames"):
        list(VideoReader(cut))
