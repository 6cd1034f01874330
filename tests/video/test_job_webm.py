"""The annotated video of a video job as WebM (``annotate_format="webm"``, what ``openfer serve``
asks for, since browsers play VP8/VP9 and not mp4v): its codec, frames and size; the fallback to VP9;
no encoder at all is one line; mp4 stays the default; stale WebM files are the job's to discard."""

from __future__ import annotations

import cv2
import pytest
from video_assets import SINGLE_FACE, video_analyzer

from openfer.errors import InputError
from openfer.video import analyze_video_to_dir, job
from openfer.video.job import ANNOTATED_FILE, ANNOTATED_WEBM, annotated_video_codec


def _frames(path) -> tuple[int, str, tuple[float, float]]:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode(errors="replace")
    size = (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    return n, fourcc, size


@pytest.fixture(scope="module")
def video():
    return video_analyzer(every=6)  # 12 of the 72 frames


def test_webm_is_vp8_with_every_analysed_frame(video, tmp_path):
    assert annotated_video_codec("webm") == "VP80"  # this OpenCV build's FFmpeg has libvpx
    res = analyze_video_to_dir(video, SINGLE_FACE, tmp_path, annotate_video=True, annotate_format="webm")
    assert res.annotated == tmp_path / ANNOTATED_WEBM and not (tmp_path / ANNOTATED_FILE).exists()
    data = res.annotated.read_bytes()
    assert data[:4] == b"\x1a\x45\xdf\xa3" and b"webm" in data[:64] and b"V_VP8" in data[:4096]
    n, fourcc, size = _frames(res.annotated)
    assert (n, fourcc.upper(), size) == (12, "VP80", (640, 360))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".annotated")] == []  # no temporary left


def test_mp4_stays_the_default(video, tmp_path):
    res = analyze_video_to_dir(video, SINGLE_FACE, tmp_path, annotate_video=True)
    assert res.annotated == tmp_path / ANNOTATED_FILE and not (tmp_path / ANNOTATED_WEBM).exists()
    data = res.annotated.read_bytes()
    assert data[4:8] == b"ftyp" and b"mp4v" in data  # MPEG-4 Part 2's sample entry
    n, fourcc, _ = _frames(res.annotated)
    assert (n, fourcc) == (12, "FMP4")  # FFmpeg's name for the MPEG-4 Part 2 decoder


def test_falls_back_to_the_next_codec_and_names_them_all_when_none_opens(video, tmp_path, monkeypatch):
    monkeypatch.setitem(job.ANNOTATED_CODECS, "webm", (ANNOTATED_WEBM, ("XXXX", "VP90")))
    assert annotated_video_codec("webm") == "VP90"
    res = analyze_video_to_dir(video, SINGLE_FACE, tmp_path / "vp9", annotate_video=True, annotate_format="webm")
    assert _frames(res.annotated)[:2] == (12, "VP90")
    monkeypatch.setitem(job.ANNOTATED_CODECS, "webm", (ANNOTATED_WEBM, ("XXXX", "YYYY")))
    assert annotated_video_codec("webm") is None
    with pytest.raises(InputError) as err:
        analyze_video_to_dir(video, SINGLE_FACE, tmp_path / "none", annotate_video=True, annotate_format="webm")
    assert str(err.value) == (f"{tmp_path / 'none' / ANNOTATED_WEBM}: cannot write a webm video "
                              "(no XXXX or YYYY encoder in this OpenCV build)")
    assert not (tmp_path / "none" / ANNOTATED_WEBM).exists()


def test_a_bad_format_is_refused_before_any_work(video, tmp_path):
    with pytest.raises(InputError, match=r"^annotate_format: expected one of mp4, webm, got 'avi'$"):
        analyze_video_to_dir(video, SINGLE_FACE, tmp_path, annotate_video=True, annotate_format="avi")
    assert not any(tmp_path.iterdir())


def test_overwrite_discards_a_stale_webm_and_its_temporary(video, tmp_path):
    stale = [ANNOTATED_WEBM, ".annotated.x1y2z3w4.webm"]
    for name in stale:
        (tmp_path / name).write_bytes(b"stale")
    analyze_video_to_dir(video, SINGLE_FACE, tmp_path, overwrite=True)
    assert [n for n in stale if (tmp_path / n).exists()] == []
