"""Fuzz: random and mutated bytes of every accepted image format (PNG and WebP with EXIF, BigTIFF),
of video containers and of label files; only openfer's own errors may escape.

Property: a reader given untrusted bytes returns, or raises an ``OpenFerError`` whose message is one
line naming the file; every warning it logs is one line naming the file too. Mutations are bit
flips, truncations, overwritten ranges and inserted bytes, half of them in the first 64 bytes where
the headers are. Hypothesis runs derandomized (the same examples every run, no example database).
The default run is bounded to a few seconds per reader; ``pytest -m slow tests/io/test_fuzz.py``
runs the same properties with 20 times as many examples (about 5 minutes).
"""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openfer.errors import OpenFerError
from openfer.eval import datasets
from openfer.io.images import decode_image, read_image
from openfer.video.reader import VideoReader

_COMMON = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
FAST = settings(max_examples=100, **_COMMON)
FAST_FILES = settings(max_examples=50, **_COMMON)  # each example writes and reads files
FAST_RANDOM = settings(max_examples=500, **_COMMON)
SLOW = settings(max_examples=2000, **_COMMON)
SLOW_FILES = settings(max_examples=1000, **_COMMON)
MAX_PIXELS = 1 << 20  # a mutated header may claim a large image: keep each decode cheap
NAME = "fuzz-input"

# --------------------------------------------------------------------------- seeds


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _exif(orientation: int) -> bytes:
    return b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + bytes(4)


def _png_with_exif(img: np.ndarray) -> bytes:
    h, w = img.shape[:2]
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"eXIf", _exif(6))
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def _webp_with_exif(img: np.ndarray) -> bytes:
    ok, simple = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 101])
    assert ok and simple[12:16].tobytes() == b"VP8L"
    h, w = img.shape[:2]
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([0x08, 0, 0, 0])
    vp8x += (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    exif = _exif(3)
    body = b"WEBP" + vp8x + simple.tobytes()[12:] + b"EXIF" + struct.pack("<I", len(exif)) + exif
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _bigtiff(grey: np.ndarray) -> bytes:
    """Uncompressed single-strip little-endian BigTIFF of a grey uint8 array."""
    h, w = grey.shape
    data = grey.tobytes()
    tags = [(256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 16, 0), (277, 3, 1)]
    tags += [(278, 4, h), (279, 16, len(data))]
    data_at = 16 + 8 + 20 * len(tags) + 8
    out = b"II+\x00" + struct.pack("<HHQ", 8, 0, 16) + struct.pack("<Q", len(tags))
    for tag, kind, value in tags:
        out += struct.pack("<HHQQ", tag, kind, 1, data_at if tag == 273 else value)
    return out + bytes(8) + data


def _encode(ext: str, img: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok, ext
    return buf.tobytes()


_IMG = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
IMAGE_SEEDS = {
    "JPEG": _encode(".jpg", _IMG, cv2.IMWRITE_JPEG_RST_INTERVAL, 1),
    "PNG+eXIf": _png_with_exif(_IMG),
    "BMP": _encode(".bmp", _IMG),
    "WebP": _encode(".webp", _IMG, cv2.IMWRITE_WEBP_QUALITY, 80),
    "WebP+EXIF": _webp_with_exif(_IMG),
    "TIFF": _encode(".tiff", _IMG),
    "BigTIFF": _bigtiff(_IMG[..., 0]),
}
if hasattr(cv2, "IMWRITE_GIF_QUALITY"):  # OpenCV >= 4.11 writes GIF
    IMAGE_SEEDS["GIF"] = _encode(".gif", _IMG)
else:  # a 1x1 GIF89a
    IMAGE_SEEDS["GIF"] = bytes.fromhex("47494638396101000100800000ffffff00000021f90401000000002c00000000010001000002024401003b")
SIGNATURES = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"]

_PIXELS = " ".join(["12"] * 2304)
_VOTE_HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
LABEL_SEEDS = {  # reader: (file, contents)
    "csv_labels": ("labels.csv", "path,label,valence,arousal\na.jpg,happy,0.5,-0.2\nb.jpg,sad,,\n"),
    "valence_arousal": ("va.csv", "path,valence,arousal\na.jpg,0.5,-0.2\nb.jpg,-2,0.1\n"),
    "ferplus": ("FER2013Train/label.csv", 'f0.png,"(0, 0, 48, 48)",4,6,0,0,0,0,0,0,0,0\nf1.png,"(0, 0, 48, 48)",10,0,0,0,0,0,0,0,0,0\n'),
    "fer2013": ("fer2013.csv", f"emotion,pixels,Usage\n3,{_PIXELS},Training\n0,{_PIXELS},PublicTest\n"),
    "fer2013new": ("fer2013new.csv", _VOTE_HEADER + "Training,f0.png,4,6,0,0,0,0,0,0,0,0\nTraining,f1.png,0,0,9,0,0,0,0,1,0,0\n"),
    "affectnet": ("affectnet.csv", "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,"
                  "expression,valence,arousal\n1/a.jpg,0,0,9,9,,1,0.5,0.1\n2/b.jpg,0,0,9,9,,8,-2,-2\n"),
    "rafdb": ("EmoLabel/list_patition_label.txt", "train_00001.jpg 5\ntest_0001.jpg 1\n"),
}
_INTERESTING = [b"\x00" * 8, b"\xff" * 8, b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00\x00\x00\x00\x00", b"\x01\x00"]
_TEXT_BITS = [b",", b'"', b"\n", b"\r", b"\x00", b"inf", b"nan", b"-1", b"1e999", b"\xff", b"\xef\xbb\xbf", b"\xc2\xb2"]


def _apply(seed: bytes, edits: list[tuple]) -> bytes:
    b = bytearray(seed)
    for op, at, arg in edits:
        at = min(at, len(b))
        if op == "flip" and at < len(b):
            b[at] ^= 1 << arg
        elif op == "cut":
            del b[at:]
        elif op == "put":
            b[at : at + len(arg)] = arg
        elif op == "insert":
            b[at:at] = arg
    return bytes(b)


def mutated(seed: bytes, extra: list[bytes] = _INTERESTING) -> st.SearchStrategy[bytes]:
    """``seed`` with 1-4 edits: bit flips, truncations, overwritten ranges, inserted bytes."""
    n = len(seed)
    at = st.one_of(st.integers(0, min(n, 64)), st.integers(0, n))  # the header, then anywhere
    chunk = st.one_of(st.sampled_from(extra), st.binary(min_size=1, max_size=32))
    edit = st.one_of(
        st.tuples(st.just("flip"), at, st.integers(0, 7)),
        st.tuples(st.just("cut"), at, st.none()),
        st.tuples(st.just("put"), at, chunk),
        st.tuples(st.just("insert"), at, chunk),
    )
    return st.lists(edit, min_size=1, max_size=4).map(lambda edits: _apply(seed, edits))


# --------------------------------------------------------------------------- the property


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def only_openfer_errors(name: str, call) -> None:
    """``call()`` returns or raises an OpenFerError; its error and warnings are one line naming ``name``."""
    log = logging.getLogger("openfer")
    records = _Records()
    log.addHandler(records)
    try:
        call()
    except OpenFerError as exc:
        msg = str(exc)
        assert "\n" not in msg and name in msg, msg
    finally:
        log.removeHandler(records)
    for msg in records.messages:
        assert "\n" not in msg and name in msg, msg


# --------------------------------------------------------------------------- images


def _check_image_bytes(data: bytes) -> None:
    only_openfer_errors(NAME, lambda: decode_image(data, NAME, max_pixels=MAX_PIXELS))


@pytest.mark.parametrize("fmt", sorted(IMAGE_SEEDS))
def test_seeds_decode(fmt):
    assert decode_image(IMAGE_SEEDS[fmt]).shape[2] == 3  # the mutations start from valid files


@pytest.mark.parametrize("fmt", sorted(IMAGE_SEEDS))
@FAST
@given(data=st.data())
def test_mutated_images(fmt, data):
    _check_image_bytes(data.draw(mutated(IMAGE_SEEDS[fmt])))


@FAST_RANDOM
@given(st.sampled_from(SIGNATURES), st.binary(max_size=200))
def test_random_bytes_after_a_signature(signature, tail):
    _check_image_bytes(signature + tail)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FAST_FILES
@given(st.sampled_from(sorted(IMAGE_SEEDS)), st.data())
def test_mutated_image_files(scratch, fmt, data):
    path = scratch / "image.bin"
    path.write_bytes(data.draw(mutated(IMAGE_SEEDS[fmt])))
    only_openfer_errors(str(path), lambda: read_image(path, max_pixels=MAX_PIXELS))
    only_openfer_errors(str(path), lambda: datasets.load_gray(path, 48))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", sorted(IMAGE_SEEDS))
@SLOW
@given(data=st.data())
def test_mutated_images_long(fmt, data):
    _check_image_bytes(data.draw(mutated(IMAGE_SEEDS[fmt])))


@pytest.mark.slow
@SLOW
@given(st.sampled_from(SIGNATURES), st.binary(max_size=2000))
def test_random_bytes_after_a_signature_long(signature, tail):
    _check_image_bytes(signature + tail)


# --------------------------------------------------------------------------- video containers


@pytest.fixture(scope="module")
def video_seeds(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("video-seeds")
    seeds = {}
    for ext, fourcc in (("avi", "MJPG"), ("mp4", "mp4v"), ("mkv", "MJPG")):
        path = folder / f"seed.{ext}"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (32, 24))
        assert writer.isOpened(), ext
        for i in range(8):
            writer.write(np.full((24, 32, 3), 30 * i, np.uint8))
        writer.release()
        assert len(list(VideoReader(path))) == 8, ext
        seeds[ext] = path.read_bytes()
    return seeds


def _check_video(scratch: Path, ext: str, data: bytes) -> None:
    path = scratch / f"clip.{ext}"
    path.write_bytes(data)

    def read() -> None:
        with VideoReader(path, every=2) as reader:
            for _ in reader:
                pass

    only_openfer_errors(str(path), read)


@pytest.mark.parametrize("ext", ["avi", "mp4", "mkv"])
@FAST_FILES
@given(data=st.data())
def test_mutated_videos(video_seeds, scratch, ext, data):
    _check_video(scratch, ext, data.draw(mutated(video_seeds[ext])))


@pytest.mark.slow
@pytest.mark.parametrize("ext", ["avi", "mp4", "mkv"])
@SLOW_FILES
@given(data=st.data())
def test_mutated_videos_long(video_seeds, scratch, ext, data):
    _check_video(scratch, ext, data.draw(mutated(video_seeds[ext])))


# --------------------------------------------------------------------------- label files


def _read_labels(kind: str, root: Path, path: Path) -> None:
    if kind == "csv_labels":
        datasets.read_csv_labels(path)
        datasets.read_csv_labels(path, classes=None)
    elif kind == "valence_arousal":
        datasets.read_csv_valence_arousal(path)
    elif kind == "ferplus":
        datasets.read_ferplus(root, "train", protocol="all")
    elif kind == "fer2013":
        datasets.read_fer2013_csv(path, "train")
    elif kind == "fer2013new":
        pixels = root / "fer2013.csv"
        pixels.write_text("emotion,pixels,Usage\n" + f"3,{_PIXELS},Training\n" * 2)
        datasets.read_fer2013_csv(pixels, "train", votes_csv=path)
    elif kind == "affectnet":
        datasets.read_affectnet_csv(path)
        datasets.read_csv_valence_arousal(path)
    else:
        datasets.read_rafdb(root, "train")


def _check_labels(scratch: Path, kind: str, data: bytes) -> None:
    root = scratch / kind
    rel, _ = LABEL_SEEDS[kind]
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    only_openfer_errors(str(path) if kind != "fer2013new" else str(root), lambda: _read_labels(kind, root, path))


@pytest.mark.parametrize("kind", sorted(LABEL_SEEDS))
def test_label_seeds_read(scratch, kind):
    root = scratch / f"seed-{kind}"
    rel, text = LABEL_SEEDS[kind]
    (root / rel).parent.mkdir(parents=True)
    (root / rel).write_text(text)
    _read_labels(kind, root, root / rel)  # the mutations start from valid files


@pytest.mark.parametrize("kind", sorted(LABEL_SEEDS))
@FAST_FILES
@given(data=st.data())
def test_mutated_label_files(scratch, kind, data):
    _check_labels(scratch, kind, data.draw(mutated(LABEL_SEEDS[kind][1].encode(), _TEXT_BITS)))


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(LABEL_SEEDS))
@SLOW_FILES
@given(data=st.data())
def test_mutated_label_files_long(scratch, kind, data):
    _check_labels(scratch, kind, data.draw(mutated(LABEL_SEEDS[kind][1].encode(), _TEXT_BITS)))
