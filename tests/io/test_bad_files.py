"""Regression files in tests/assets/bad: crash inputs and corrupt files, each a named error or a named
warning, never a foreign exception or a C library's line on stderr; and the decoder-message policy.

(tests/assets/README.md says how each file was made.)
"""

from __future__ import annotations

import logging
import struct
import threading
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from openfer.errors import InputError
from openfer.eval.datasets import load_gray
from openfer.io import images, native
from openfer.io.images import decode_image, read_image

BAD = Path(__file__).resolve().parents[1] / "assets" / "bad"
PHOTOS = Path(__file__).resolve().parents[1] / "assets" / "photos"


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "openfer" and r.levelno >= logging.WARNING]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(extra: bytes = b"", idat_crc: int | None = None) -> bytes:
    raw = b"".join(b"\x00" + bytes([200] * 12) for _ in range(4))  # 4x4 RGB
    idat = zlib.compress(raw)
    idat_chunk = _chunk(b"IDAT", idat)
    if idat_crc is not None:
        idat_chunk = idat_chunk[:-4] + struct.pack(">I", idat_crc)
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + extra + idat_chunk + _chunk(b"IEND", b"")


# --------------------------------------------------------------------------- defect 1: BigTIFF offsets


def test_bigtiff_with_a_64_bit_directory_offset_is_a_named_error(capfd):
    path = BAD / "bigtiff_offset.tif"
    assert path.stat().st_size == 16
    with pytest.raises(InputError) as e:
        read_image(path)
    assert str(e.value) == f"{path}: truncated or corrupt TIFF (first directory at byte {1 << 63} of 16)"
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("name", ["exif_bigtiff.png", "exif_bigtiff.webp"])
def test_exif_block_holding_the_bigtiff_bytes_is_ignored_with_a_warning(name, caplog, capfd):
    path = BAD / name
    with caplog.at_level(logging.WARNING, logger="openfer"):
        rgb = read_image(path)
    assert rgb.shape == (8, 8, 3) and (rgb == 128).all()  # decoded, orientation left alone
    (msg,) = _warnings(caplog)  # one line per file, libpng's own complaint folded in
    assert msg.startswith(f"{path}: unreadable EXIF block ignored, orientation not applied (first directory at")
    assert capfd.readouterr().err == ""  # libpng's "eXIf: invalid" did not reach stderr


def test_ifd_offsets_are_bounded_by_the_data_length():
    little = b"II*\x00" + struct.pack("<I", 0xFFFFFFF0)
    for data in (b"II+\x00\x08\x00\x00\x00" + struct.pack("<Q", (1 << 64) - 1), little):
        with pytest.raises(ValueError, match="first directory at byte"):
            images._ifd0_tags(data, (256,))


def test_any_header_parser_failure_becomes_a_named_input_error(monkeypatch):
    def broken(b, name):
        raise OverflowError("from a parser")

    monkeypatch.setitem(images._HEADER_PARSERS, "PNG", broken)
    with pytest.raises(InputError, match=r"^x.png: corrupt PNG header \(OverflowError\)$"):
        decode_image(_png(), "x.png")


def test_decoder_exceptions_become_named_input_errors(monkeypatch):
    def boom(*a):
        raise cv2.error("OpenCV(5.0.0) /x/loadsave.cpp:1: error: (-215:Assertion failed) size > 0 in function 'f'")

    monkeypatch.setattr(images.cv2, "imdecode", boom)
    with pytest.raises(InputError, match=r"^x.png: corrupt PNG data \(OpenCV: .*size > 0"):
        decode_image(_png(), "x.png")


def test_truncated_png_names_an_unprintable_chunk_type_on_one_line():
    data = _png()[:33] + struct.pack(">I", 999) + b"\n\x01ab" + b"\x00" * 8
    with pytest.raises(InputError) as e:
        decode_image(data, "x.png")
    assert "\n" not in str(e.value) and "b'\\n\\x01ab' chunk runs past the end" in str(e.value)


# --------------------------------------------------------------------------- defect 5: decoder messages


def test_jpeg_corrupt_mid_file_is_a_named_warning_and_nothing_reaches_stderr(caplog, capfd):
    path = BAD / "corrupt_mid.jpg"
    with caplog.at_level(logging.WARNING, logger="openfer"):
        rgb = read_image(path)
    assert rgb.shape == (350, 350, 3)
    assert _warnings(caplog) == [
        f"{path}: corrupt JPEG data, decoded with errors "
        "(libjpeg: Corrupt JPEG data: premature end of data segment)"
    ]
    assert capfd.readouterr().err == ""


def test_jpeg_extraneous_bytes_before_a_restart_marker_is_a_warning(caplog):
    ok, buf = cv2.imencode(".jpg", cv2.imread(str(PHOTOS / "labeled" / "Ariel_Sharon_0075.jpg")),
                           [cv2.IMWRITE_JPEG_RST_INTERVAL, 4])
    data = bytearray(buf.tobytes())
    data[len(data) // 2 : len(data) // 2 + 200] = bytes(200)
    with caplog.at_level(logging.WARNING, logger="openfer"):
        decode_image(bytes(data), "rst.jpg")
    (msg,) = _warnings(caplog)
    assert msg.startswith("rst.jpg: corrupt JPEG data, decoded with errors (libjpeg: Corrupt JPEG data: ")
    assert "extraneous bytes before marker 0xd" in msg


def test_libjpeg_premature_end_of_file_is_a_truncation_error(monkeypatch):
    def premature(*a):
        import os

        os.write(2, b"Premature end of JPEG file\n")
        return np.zeros((4, 4, 3), np.uint8)

    monkeypatch.setattr(images.cv2, "imdecode", premature)
    monkeypatch.setattr(images, "_simplejpeg", None)  # OpenCV's path: the one whose messages are captured
    jpeg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    with pytest.raises(InputError, match=r"^x.jpg: truncated JPEG \(libjpeg: Premature end of JPEG file\)$"):
        decode_image(jpeg, "x.jpg")


def test_libpng_error_is_named_in_the_input_error(capfd):
    with pytest.raises(InputError, match=r"^x.png: corrupt or truncated PNG data \(libpng: IDAT: CRC error\)$"):
        decode_image(_png(idat_crc=1), "x.png")
    assert capfd.readouterr().err == ""


def test_libpng_warning_on_a_decoded_image_is_one_named_warning(caplog, capfd):
    bad_text = _chunk(b"tEXt", b"a\x00b")[:-4] + b"\x00\x00\x00\x01"  # wrong CRC on an ancillary chunk
    with caplog.at_level(logging.WARNING, logger="openfer"):
        assert decode_image(_png(bad_text), "x.png").shape == (4, 4, 3)
    assert _warnings(caplog) == ["x.png: PNG decoder warning (libpng: tEXt: CRC error)"]
    assert capfd.readouterr().err == ""


def test_opencv_decoder_message_is_named_when_decoding_fails(capfd):
    bmp = cv2.imencode(".bmp", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    with pytest.raises(InputError) as e:
        decode_image(bmp[:80], "cut.bmp")
    assert str(e.value).startswith("cut.bmp: corrupt or truncated BMP data (OpenCV: ")
    assert "Unexpected end of input stream" in str(e.value)
    assert capfd.readouterr().err == ""


def test_empty_file(capfd):
    with pytest.raises(InputError, match="empty.jpg: empty file"):
        read_image(BAD / "empty.jpg")
    with pytest.raises(InputError, match="empty.jpg: cannot be read as an image"):
        load_gray(BAD / "empty.jpg")


def test_data_set_images_report_decoder_messages_too(caplog, capfd):
    path = BAD / "corrupt_mid.jpg"
    with caplog.at_level(logging.WARNING, logger="openfer"):
        assert load_gray(path, 48).shape == (48, 48)
    assert _warnings(caplog) == [
        f"{path}: corrupt JPEG data, decoded with errors (libjpeg: Corrupt JPEG data: premature end of data segment)"
    ]
    assert capfd.readouterr().err == ""


def test_note_lines_are_tagged_and_cleaned():
    notes = native.native_notes(
        [
            "[ WARN:0@0.6] global cap.cpp:212 open VIDEOIO(FFMPEG): backend is generally available",
            "[ERROR:0@0.04] global grfmt_tiff.cpp:117 TIFF_Error Using code not yet in table",
            "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x556e09666900] moov atom not found",
            "libpng warning: iCCP: known incorrect sRGB profile",
            "Corrupt JPEG data: 110 extraneous bytes before marker 0xd7\x1b[0m",
        ],
        "libjpeg",
    )
    assert [(n.source, n.text, n.severe) for n in notes] == [
        ("OpenCV", "VIDEOIO(FFMPEG): backend is generally available", False),
        ("libtiff", "Using code not yet in table", True),
        ("FFmpeg", "moov atom not found", True),
        ("libpng", "iCCP: known incorrect sRGB profile", False),
        ("libjpeg", "Corrupt JPEG data: 110 extraneous bytes before marker 0xd7\\x1b[0m", True),
    ]
    assert native.summary(notes[2:4]) == "FFmpeg: moov atom not found; 1 more message(s)"


def test_capture_restores_stderr_and_keeps_python_output(capfd):
    import os
    import sys

    sys.stderr.write("before ")
    with native.NATIVE.capture() as lines:
        os.write(2, b"from C\n")
        with native.NATIVE.capture() as inner:  # nested: the outer capture gets it
            os.write(2, b"nested\n")
    os.write(2, b"after\n")
    assert lines == ["from C", "nested"] and inner == []
    assert capfd.readouterr().err == "before after\n"


def test_concurrent_decodes_each_get_their_own_messages(caplog):
    good = cv2.imencode(".png", np.zeros((16, 16, 3), np.uint8))[1].tobytes()
    corrupt = (BAD / "corrupt_mid.jpg").read_bytes()
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for _ in range(10):
                decode_image(corrupt if k % 2 else good, f"t{k}.{'jpg' if k % 2 else 'png'}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with caplog.at_level(logging.WARNING, logger="openfer"):
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    msgs = _warnings(caplog)
    assert len(msgs) == 20 and all(m.split(":")[0] in ("t1.jpg", "t3.jpg") for m in msgs)
