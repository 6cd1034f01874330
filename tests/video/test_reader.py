"""VideoReader: frame counts, timestamps, selection, colour, image sequences and bad files (no models,
except the two tests of the pipelined analysis keeping every frame of a stream that ends in an error)."""

from __future__ import annotations

import logging
import math
import os
import shutil
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from video_assets import FACE_NOFACE, NO_FACE, SINGLE_FACE, video_analyzer

from openfer.errors import InputError
from openfer.video import reader as reader_mod
from openfer.video.reader import VideoReader, _Notes, _read, _Selector, _timestamp, _truncated

BAD = Path(__file__).resolve().parents[1] / "assets" / "bad"


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


def _cut_avi(tmp_path, frames=40):
    src = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    for i in range(frames):
        w.write(np.full((48, 64, 3), i * 5, np.uint8))
    w.release()
    data = src.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    return cut


# --- regressions of issue 10 (bad input) --------------------------------------------------------


def _ebml(b, start, end):
    """(id, body start, body end) of the EBML (Matroska) elements in ``b[start:end]``."""

    def vint(i):
        n = 1
        while not b[i] & (0x80 >> (n - 1)):
            n += 1
        v = b[i] & (0xFF >> n)
        for k in range(1, n):
            v = (v << 8) | b[i + k]
        return v, n

    i = start
    while i < end:
        _, n1 = vint(i)
        size, n2 = vint(i + n1)
        body = i + n1 + n2
        if size == (1 << (7 * n2)) - 1:  # unknown size: to the end
            size = end - body
        yield int.from_bytes(b[i : i + n1], "big"), body, body + size, vint
        i = body + size


def _vfr_mkv(path, frames=72, slow_from=36, slow_ms=140):
    """A valid MJPG Matroska clip: frames 0-35 at 30 fps, then one every ``slow_ms`` ms.

    Matroska stores no frame count, so OpenCV estimates duration x 30 fps: 187 for these 72 frames.
    """
    w = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    assert w.isOpened()
    for i in range(frames):
        w.write(np.full((48, 64, 3), 3 * i, np.uint8))
    w.release()
    b = bytearray(path.read_bytes())
    at = [round(1000 * k / 30) for k in range(slow_from)]
    at += [at[-1] + 33 + slow_ms * k for k in range(frames - slow_from)]
    k = 0
    for eid, body, end, _ in _ebml(b, 0, len(b)):
        if eid != 0x18538067:  # Segment
            continue
        for sid, sbody, send, vint in _ebml(b, body, end):
            if sid == 0x1549A966:  # Info: its Duration (ms, a float)
                for iid, ibody, iend, _ in _ebml(b, sbody, send):
                    if iid == 0x4489:
                        b[ibody:iend] = struct.pack(">d" if iend - ibody == 8 else ">f", at[-1] + slow_ms)
            elif sid == 0x1F43B675:  # Cluster: a timecode, then SimpleBlocks (track, int16 time, ...)
                for cid, cbody, cend, _ in _ebml(b, sbody, send):
                    if cid == 0xE7:
                        cluster = int.from_bytes(b[cbody:cend], "big")
                    elif cid == 0xA3:
                        n = vint(cbody)[1]
                        b[cbody + n : cbody + n + 2] = struct.pack(">h", at[k] - cluster)
                        k += 1
    assert k == frames
    path.write_bytes(bytes(b))
    return path


def test_variable_frame_rate_file_with_an_overestimated_frame_count_is_complete(tmp_path, caplog):
    path = _vfr_mkv(tmp_path / "vfr.mkv")
    r = VideoReader(path)
    assert r.info.frame_count == 187 and r.info.fps == pytest.approx(30.0)  # the container's estimate
    with caplog.at_level(logging.DEBUG, logger="openfer"):
        frames = list(r)  # was: "truncated or corrupt: the stream ends after 72 of the 187 frames"
    assert len(frames) == 72
    assert frames[-1].timestamp == pytest.approx(6.1, abs=0.01)
    assert not [m for m in caplog.records if m.levelno >= logging.WARNING]  # not even a warning
    assert any("the container estimates 187" in m.getMessage() for m in caplog.records)


def test_truncated_variable_frame_rate_file_is_still_an_error(tmp_path):
    data = _vfr_mkv(tmp_path / "vfr.mkv").read_bytes()
    cut = tmp_path / "vfr_cut.mkv"
    cut.write_bytes(data[: len(data) * 9 // 10])
    with pytest.raises(InputError, match=r"vfr_cut.mkv: truncated or corrupt: the stream ends after 6\d of the 187"):
        list(VideoReader(cut))


def test_truncation_needs_both_the_frame_count_and_the_timestamps_short():
    assert not _truncated(None, 10, 0.3, 30.0)
    assert not _truncated(100, 96, 3.17, 30.0)  # within 5 frames: a container's estimate
    assert _truncated(100, 50, 50 / 30, 30.0)  # half the frames, half the time: cut
    assert not _truncated(187, 72, 6.1, 30.0)  # fewer frames spanning the whole duration: VFR
    assert _truncated(187, 69, 5.68, 30.0)  # fewer frames and short of the duration: cut


def test_mp4_without_its_moov_index_is_named_and_nothing_reaches_stderr(capfd):
    path = BAD / "no_moov.mp4"
    with pytest.raises(InputError) as e:
        VideoReader(path)
    assert str(e.value) == (
        f"{path}: cannot open as a video (an MP4/MOV file without its 'moov' index: "
        "the recording was cut short or never finished)"
    )
    assert capfd.readouterr().err == ""  # no "moov atom not found", no "[ WARN:0@...] cap.cpp"


def test_empty_video_file_is_named(tmp_path, capfd):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty.mp4: cannot open as a video \(empty file, 0 bytes\)$"):
        VideoReader(path)
    assert capfd.readouterr().err == ""


def test_ffmpeg_is_silenced_so_corrupt_frames_print_nothing_foreign(tmp_path, capfd):
    assert os.environ.get("OPENCV_FFMPEG_LOGLEVEL") == "-8"  # set on import, before FFmpeg is first used
    data = bytearray(SINGLE_FACE.read_bytes())
    rng = np.random.default_rng(1)
    for at in range(20000, 200000, 20000):  # h264 "error while decoding MB", "Invalid NAL unit size"
        data[at : at + 500] = rng.integers(0, 256, 500, dtype=np.uint8).tobytes()
    path = tmp_path / "damaged.mp4"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"damaged.mp4: truncated or corrupt: the stream ends after \d+ of the 72"):
        list(VideoReader(path))
    assert capfd.readouterr().err == ""


class _NoisyCapture:
    """A capture whose grab prints like OpenCV's FFmpeg backend does (straight to fd 2)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def grab(self) -> bool:
        if self.fail:
            raise cv2.error("OpenCV(5.0.0) /x/cap.cpp:1: error: (-2:Unspecified error) boom in function 'grab'")
        os.write(2, b"[ WARN:0@0.6] global cap_ffmpeg_impl.hpp:1600 grabFrame packet read max attempts exceeded\n")
        return True


def test_opencv_messages_while_reading_become_one_named_warning_and_a_count(caplog, capfd):
    notes = _Notes("clip.mp4")
    with caplog.at_level(logging.WARNING, logger="openfer"):
        for i in range(3):
            assert _read(_NoisyCapture().grab, "clip.mp4", i, notes)
        notes.finish()
    assert [r.getMessage() for r in caplog.records] == [
        "clip.mp4: frame 0: video decoder warning (OpenCV: packet read max attempts exceeded)",
        "clip.mp4: video decoder warnings on 3 frames in all (the first at frame 0)",
    ]
    assert capfd.readouterr().err == ""


def test_opencv_exception_while_reading_is_a_named_input_error():
    with pytest.raises(InputError, match=r"^clip.mp4: frame 7 cannot be decoded \(OpenCV: boom in function"):
        _read(_NoisyCapture(fail=True).grab, "clip.mp4", 7, _Notes("clip.mp4"))


def test_zero_byte_image_ends_a_sequence_after_the_frames_before_it(tmp_path):
    _write_sequence(tmp_path / "seq", n=8)
    shutil.copy(BAD / "empty.jpg", tmp_path / "seq" / "img6.jpg")  # img1..img5 come first
    got = []
    with pytest.raises(InputError, match="img6.jpg: empty file"):
        for f in VideoReader(tmp_path / "seq"):
            got.append(f.index)
    assert got == [0, 1, 2, 3, 4]


def test_pipelined_analysis_keeps_the_last_frame_before_a_bad_image(tmp_path):
    _write_sequence(tmp_path / "seq", n=8)
    shutil.copy(BAD / "empty.jpg", tmp_path / "seq" / "img6.jpg")
    run = video_analyzer().run(tmp_path / "seq")
    got = []
    with pytest.raises(InputError, match="img6.jpg: empty file"):
        for vf in run:
            got.append(vf.frame_index)
    assert got == [0, 1, 2, 3, 4]  # frame 4, in the worker when the error came, was lost
    assert run.frames_done == 5 and run.checkpoint().frame_index == 4


def test_pipelined_analysis_keeps_the_last_frame_of_a_truncated_video(tmp_path):
    cut = _cut_avi(tmp_path)
    decoded = []
    with pytest.raises(InputError):
        for f in VideoReader(cut):
            decoded.append(f.index)
    assert len(decoded) > 5
    got = []
    with pytest.raises(InputError, match="cut.avi: truncated or corrupt"):
        for vf in video_analyzer().run(cut):
            got.append(vf.frame_index)
    assert got == decoded  # was one short: "results for the 227 decoded frames" of 228
