"""Every bad input of issue 10 and of the README's list, through the CLI: the exit code, exactly one
line naming the file, no traceback, and the rest of the batch still analysed (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from conftest import ASSETS, PHOTOS

from openfer.cli import EXIT_INPUT, EXIT_OK, main

BAD = ASSETS / "bad"
FACE = PHOTOS / "single_face.jpg"


def _png_header_only(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _make(kind: str, d: Path) -> Path:
    """The bad input ``kind`` in folder ``d``."""
    face = FACE.read_bytes()
    if kind in ("bigtiff_offset.tif", "exif_bigtiff.png", "exif_bigtiff.webp", "corrupt_mid.jpg", "empty.jpg",
                "no_moov.mp4"):
        return Path(shutil.copy(BAD / kind, d / kind))
    p = d / {
        "truncated": "cut.jpg", "text": "notes.jpg", "heic": "phone.jpg", "pdf": "paper.png", "huge": "huge.png",
        "newline": "two\nlines.jpg", "fifo": "pipe.jpg", "missing": "missing.jpg", "folder": "empty_dir",
        "pattern": "*.webp",
    }[kind]
    if kind == "truncated":
        p.write_bytes(face[: len(face) // 2])
    elif kind == "text":
        p.write_text("this is not a photo\n")
    elif kind == "heic":
        p.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)
    elif kind == "pdf":
        p.write_bytes(b"%PDF-1.4\n" + b"%" * 100)
    elif kind == "huge":
        p.write_bytes(_png_header_only(30000, 30000))
    elif kind == "newline":
        p.write_bytes(b"garbage")
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "folder":
        p.mkdir()
    return p


# kind, exit code, what the one line says (error or warning)
CASES = [
    ("bigtiff_offset.tif", EXIT_INPUT, "truncated or corrupt TIFF"),
    ("exif_bigtiff.png", EXIT_OK, "EXIF"),  # decodes: the unreadable EXIF block is a warning
    ("exif_bigtiff.webp", EXIT_OK, "EXIF"),
    ("corrupt_mid.jpg", EXIT_OK, "corrupt JPEG data, decoded with errors"),
    ("empty.jpg", EXIT_INPUT, "empty file (0 bytes)"),
    ("no_moov.mp4", EXIT_INPUT, "not a supported image (video/ISO media file"),
    ("truncated", EXIT_INPUT, "truncated JPEG"),
    ("text", EXIT_INPUT, "not a supported image (unrecognised content"),
    ("heic", EXIT_INPUT, "not a supported image (HEIC/HEIF image"),
    ("pdf", EXIT_INPUT, "not a supported image (PDF document"),
    ("huge", EXIT_INPUT, "image is 30000x30000 = 900 MP, over the 100 MP limit"),
    ("newline", EXIT_INPUT, "two\\nlines.jpg: not a supported image"),
    ("fifo", EXIT_INPUT, "not a regular file"),
    ("missing", EXIT_INPUT, "not found"),
    ("folder", EXIT_INPUT, "folder contains no images"),
    ("pattern", EXIT_INPUT, "pattern matched no images"),
]


@pytest.mark.parametrize("kind,code,says", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_named_line_and_the_batch_completes(kind, code, says, tmp_path, capsys):
    bad = _make(kind, tmp_path)
    good = Path(shutil.copy(FACE, tmp_path / "good.jpg"))
    rc = main(["analyze", str(bad), str(good), "--json", str(tmp_path / "r.json"), "-q"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert rc == code, err
    shown = str(bad).replace("\n", "\\n")
    lines = [line for line in err.splitlines() if shown in line]
    assert len(lines) == 1, err
    assert says in lines[0] and lines[0].startswith(("error: ", "WARNING: ")), lines[0]
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [i["source"] for i in doc["images"]][-1] == str(good)
    assert len(doc["images"][-1]["faces"]) == 1  # the good photo is still analysed
    first = doc["images"][0]
    assert first["status"].startswith("error: ") == (code == EXIT_INPUT)


def test_bad_frames_in_a_video_folder_are_named_and_the_good_ones_kept(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        shutil.copy(FACE, frames / f"f{i:02d}.jpg")
    (frames / "f04.jpg").write_bytes(b"")  # a 0-byte frame ends the sequence
    rc = main(["video", str(frames), "--out", str(tmp_path / "v"), "-q"])
    err = capsys.readouterr().err
    assert rc == EXIT_INPUT and "Traceback" not in err
    lines = [line for line in err.splitlines() if "f04.jpg" in line]
    assert len(lines) == 1 and "empty file (0 bytes)" in lines[0]
    assert "results for the 4 decoded frames" in lines[0]


def test_crafted_tiff_in_a_video_image_folder_is_named(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        shutil.copy(FACE, frames / f"f{i:02d}.jpg")
    shutil.copy(BAD / "bigtiff_offset.tif", frames / "f03.tif")  # the crash input of issue 10, defect 1
    rc = main(["video", str(frames), "--out", str(tmp_path / "v"), "-q"])
    err = capsys.readouterr().err
    assert rc == EXIT_INPUT and "Traceback" not in err
    lines = [line for line in err.splitlines() if "f03.tif" in line]
    assert len(lines) == 1 and "truncated or corrupt TIFF" in lines[0] and "3 decoded frames" in lines[0]
