"""openfer.io.images: files, bytes and arrays -> RGB uint8.

Every awkward input is built here, byte by byte where OpenCV cannot write it (grey+alpha and palette
PNGs, EXIF blocks, a CMYK JPEG, a two-frame GIF, headers that claim 30000x30000 pixels).
"""

from __future__ import annotations

import csv
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from openfer.errors import InputError, ShapeError
from openfer.io import images
from openfer.io.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    as_rgb_array,
    decode_image,
    iter_image_paths,
    read_image,
)

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "photos"
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


# --------------------------------------------------------------------------- builders


def _encode(ext: str, rgb: np.ndarray, params: tuple[int, ...] = ()) -> bytes:
    """Encode an RGB(A) array with OpenCV (which wants BGR(A))."""
    arr = rgb
    if rgb.ndim == 3 and rgb.shape[2] == 3:
        arr = rgb[..., ::-1]
    elif rgb.ndim == 3 and rgb.shape[2] == 4:
        arr = rgb[..., [2, 1, 0, 3]]
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(arr), list(params))
    assert ok, ext
    return buf.tobytes()


def _pattern(h: int = 32, w: int = 48) -> np.ndarray:
    """RGB image with a distinct colour in three 16-pixel corners (so flips and turns are visible).

    Edges fall on 16-pixel JPEG block boundaries, so JPEG round trips stay close.
    """
    img = np.full((h, w, 3), 128, np.uint8)
    img[:16, :16] = RED  # top-left
    img[:16, -16:] = GREEN  # top-right
    img[-16:, :16] = BLUE  # bottom-left
    return img


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width, height, bit_depth, color_type, rows: list[bytes], extra: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    raw = b"".join(b"\x00" + r for r in rows)  # filter type 0 on every row
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + extra
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def _rgb_png(img: np.ndarray, extra: bytes = b"") -> bytes:
    h, w = img.shape[:2]
    return _png(w, h, 8, 2, [img[r].tobytes() for r in range(h)], extra)


def _exif(orientation: int, little_endian: bool = True) -> bytes:
    """A TIFF structure holding one tag, Orientation (0x0112), as EXIF blocks do."""
    e = "<" if little_endian else ">"
    head = (b"II*\x00" if little_endian else b"MM\x00*") + struct.pack(e + "I", 8)
    entry = struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0)
    return head + struct.pack(e + "H", 1) + entry + struct.pack(e + "I", 0)


def _jpeg_with_exif(jpeg: bytes, orientation: int, little_endian: bool = False) -> bytes:
    app1 = b"Exif\x00\x00" + _exif(orientation, little_endian)
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def _tiff(img: np.ndarray, orientation: int | None = None) -> bytes:
    """Uncompressed single-strip little-endian TIFF of a grey or RGB array (uint8/uint16)."""
    h, w = img.shape[:2]
    c = 1 if img.ndim == 2 else img.shape[2]
    data = img.astype(img.dtype.newbyteorder("<")).tobytes()
    tags = [
        (256, 4, w),
        (257, 4, h),
        (258, 3, img.dtype.itemsize * 8),
        (259, 3, 1),
        (262, 3, 2 if c == 3 else 1),
        (273, 4, 0),
        (277, 3, c),
        (278, 4, h),
        (279, 4, len(data)),
    ]
    if orientation is not None:
        tags.append((274, 3, orientation))
    tags.sort()
    data_at = 8 + 2 + 12 * len(tags) + 4
    out = b"II*\x00" + struct.pack("<IH", 8, len(tags))
    for tag, kind, value in tags:
        value = data_at if tag == 273 else value
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, 1) + packed
    return out + b"\x00\x00\x00\x00" + data


def _webp_with_exif(rgb: np.ndarray, orientation: int) -> bytes:
    """Extended (VP8X) WebP: a lossless bitstream from OpenCV plus an EXIF chunk."""
    simple = _encode(".webp", rgb, (cv2.IMWRITE_WEBP_QUALITY, 101))
    assert simple[12:16] == b"VP8L"
    bitstream = simple[12:]  # the VP8L chunk, header included
    exif = _exif(orientation)
    h, w = rgb.shape[:2]
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([0x08, 0, 0, 0])
    vp8x += (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    exif_chunk = b"EXIF" + struct.pack("<I", len(exif)) + exif + b"\x00" * (len(exif) & 1)
    body = b"WEBP" + vp8x + bitstream + exif_chunk
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _gif_two_frames(first: int, second: int, w: int = 4, h: int = 2) -> bytes:
    """GIF89a with a 4-colour palette (red, green, blue, white) and two full frames of one colour.

    The LZW stream is 'uncompressed': a clear code before every two pixels keeps the code width at 3.
    """
    palette = bytes([*RED, *GREEN, *BLUE, *WHITE])
    out = b"GIF89a" + struct.pack("<HHBBB", w, h, 0b10000001, 0, 0) + palette
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    for index in (first, second):
        codes: list[int] = []
        pixels = [index] * (w * h)
        for k in range(0, len(pixels), 2):
            codes += [4, *pixels[k : k + 2]]  # clear, then two literal codes
        codes.append(5)  # end of information
        bits = "".join(format(c, "03b")[::-1] for c in codes)  # LSB first
        bits += "0" * (-len(bits) % 8)
        data = bytes(int(bits[i : i + 8][::-1], 2) for i in range(0, len(bits), 8))
        out += b"\x21\xf9\x04\x00\x0a\x00\x00\x00"  # graphic control: 0.1 s, no transparency
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0)
        out += b"\x02" + bytes([len(data)]) + data + b"\x00"
    return out + b";"


def _segment(marker: int, payload: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload


def _cmyk_jpeg(ink: tuple[int, int, int, int], blocks: int = 2) -> bytes:
    """Baseline 4-component Adobe JPEG of one flat CMYK ink (0 = no ink, 255 = full).

    Adobe (Photoshop) CMYK JPEGs store inverted samples; every block has a DC coefficient only, with
    a quantisation table of ones and hand-made Huffman tables (DC: 12 four-bit codes, AC: EOB = '0').
    """
    stored = [255 - v for v in ink]
    size = 8 * blocks
    out = b"\xff\xd8" + _segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 0))
    out += _segment(0xDB, b"\x00" + b"\x01" * 64)
    comps = b"".join(bytes([i + 1, 0x11, 0]) for i in range(4))
    out += _segment(0xC0, struct.pack(">BHHB", 8, size, size, 4) + comps)
    out += _segment(0xC4, b"\x00" + bytes([0, 0, 0, 12] + [0] * 12) + bytes(range(12)))
    out += _segment(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\x00")
    out += _segment(0xDA, b"\x04" + b"".join(bytes([i + 1, 0]) for i in range(4)) + b"\x00\x3f\x00")
    bits, prev = "", [0, 0, 0, 0]
    for _ in range(blocks * blocks):
        for c in range(4):
            dc = 8 * (stored[c] - 128)  # flat block: DC = 8 x level-shifted sample
            diff, prev[c] = dc - prev[c], dc
            cat = abs(diff).bit_length()
            bits += format(cat, "04b")
            if cat:
                bits += format(diff if diff > 0 else diff + (1 << cat) - 1, f"0{cat}b")
            bits += "0"  # end of block
    bits += "1" * (-len(bits) % 8)
    scan = bytearray()
    for i in range(0, len(bits), 8):
        scan.append(int(bits[i : i + 8], 2))
        if scan[-1] == 0xFF:
            scan.append(0)
    return out + bytes(scan) + b"\xff\xd9"


def _px(img: np.ndarray, row: int, col: int) -> tuple[int, ...]:
    return tuple(int(v) for v in img[row, col])


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _message(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, "error messages are one line"
    return msg


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if anything reaches the decoder."""

    def boom(*args, **kwargs):
        raise AssertionError("cv2.imdecode must not be called")

    monkeypatch.setattr(images.cv2, "imdecode", boom)
    monkeypatch.setattr(images, "_decode_jpeg_turbo", boom)


# --------------------------------------------------------------------------- smoke: formats


def test_real_photo_matches_opencv_in_rgb_order():
    path = ASSETS / "single_face.jpg"
    img = read_image(path)
    assert img.shape == (562, 572, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    np.testing.assert_array_equal(img, cv2.imread(str(path))[..., ::-1])
    assert read_image(str(path)).tobytes() == img.tobytes()  # str and Path alike


@pytest.mark.parametrize("name", ["single_face.jpg", "multi_face.jpg", "no_face_landscape.jpg"])
def test_asset_photos_read(name):
    img = read_image(ASSETS / name)
    assert img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) > 100
    assert 20 < img.mean() < 235  # a real photo, not a blank


@pytest.mark.parametrize(
    ("ext", "params", "exact"),
    [
        (".png", (), True),
        (".bmp", (), True),
        (".tif", (), True),
        (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101), True),  # lossless
        (".jpg", (cv2.IMWRITE_JPEG_QUALITY, 98), False),
    ],
)
def test_formats_decode_to_rgb(tmp_path, ext, params, exact):
    src = _pattern()
    path = _write(tmp_path, f"pattern{ext}", _encode(ext, src, params))
    img = read_image(path)
    assert img.shape == src.shape and img.dtype == np.uint8 and img.flags.c_contiguous
    if exact:
        np.testing.assert_array_equal(img, src)
    else:
        assert np.abs(img.astype(int) - src).mean() < 4
    assert _px(img, 0, 0) == pytest.approx(RED, abs=12)  # RGB, not BGR


def test_animated_gif_gives_first_frame(tmp_path):
    data = _gif_two_frames(first=0, second=2)  # red, then blue
    if hasattr(cv2, "imdecodeanimation"):  # the hand-made file really has two frames
        ok, anim = cv2.imdecodeanimation(np.frombuffer(data, np.uint8))
        assert ok and len(anim.frames) == 2
    img = read_image(_write(tmp_path, "anim.gif", data))
    assert img.shape == (2, 4, 3)
    assert (np.abs(img.astype(int) - RED) <= 4).all()


@pytest.mark.skipif(not hasattr(cv2, "imencodeanimation"), reason="needs OpenCV >= 4.11")
@pytest.mark.parametrize("ext", [".webp", ".png"])
def test_animated_webp_and_apng_give_first_frame(ext):
    anim = cv2.Animation()
    red, blue = np.zeros((8, 10, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)
    red[:] = RED[::-1]
    blue[:] = BLUE[::-1]
    anim.frames, anim.durations = [red, blue], [100, 100]
    ok, buf = cv2.imencodeanimation(ext, anim)
    assert ok
    img = decode_image(buf.tobytes(), f"anim{ext}")
    assert img.shape == (8, 10, 3)
    assert (np.abs(img.astype(int) - RED) <= 8).all()


def test_non_ascii_path(tmp_path):
    folder = tmp_path / "фото ü"
    folder.mkdir()
    path = _write(folder, "лицо é.png", _rgb_png(_pattern()))
    np.testing.assert_array_equal(read_image(path), _pattern())


def test_decode_accepts_bytes_like():
    data = _rgb_png(_pattern())
    for buf in (data, bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(decode_image(buf), _pattern())


# --------------------------------------------------------------------------- feature: depth, alpha, palette


def test_16bit_grey_png_is_scaled_not_clipped_or_truncated(tmp_path):
    values = np.array([[0, 257, 1000, 32896, 65535]], np.uint16)
    path = _write(tmp_path, "grey16.png", _encode(".png", values))
    img = read_image(path)
    assert img.shape == (1, 5, 3)
    # round(v / 257); 1000 -> 4 where a >> 8 shift (OpenCV's IMREAD_COLOR) would give 3
    np.testing.assert_array_equal(img[0, :, 0], [0, 1, 4, 128, 255])
    assert (img == img[..., :1]).all()


def test_16bit_rgb_png_keeps_channel_order():
    px = np.zeros((1, 2, 3), np.uint16)
    px[0, 0] = (65535, 0, 1000)
    px[0, 1] = (0, 32896, 65535)
    img = decode_image(_encode(".png", px))
    np.testing.assert_array_equal(img[0], [[255, 0, 4], [0, 128, 255]])


def test_16bit_tiff():
    img = decode_image(_tiff(np.array([[0, 1000, 65535]], np.uint16)), "grey16.tif")
    np.testing.assert_array_equal(img[0, :, 1], [0, 4, 255])


def test_rgba_png_is_composited_over_white():
    rgba = np.array([[[255, 0, 0, 255], [0, 0, 0, 0], [0, 0, 0, 128], [0, 0, 255, 51]]], np.uint8)
    img = decode_image(_encode(".png", rgba), "rgba.png")
    assert img.shape == (1, 4, 3)
    # 255 - round((255 - c) * a / 255)
    np.testing.assert_array_equal(img[0], [RED, WHITE, (127, 127, 127), (204, 204, 255)])


def test_grey_alpha_png():
    png = _png(2, 1, 8, 4, [bytes([200, 0, 10, 255])])  # (grey 200, clear), (grey 10, opaque)
    np.testing.assert_array_equal(decode_image(png)[0], [WHITE, (10, 10, 10)])


def test_palette_png_with_transparency():
    plte = _chunk(b"PLTE", bytes([*RED, *GREEN, *BLUE]))
    trns = _chunk(b"tRNS", bytes([255, 255, 0]))  # the third entry is fully transparent
    png = _png(3, 1, 8, 3, [bytes([0, 1, 2])], plte + trns)
    np.testing.assert_array_equal(decode_image(png)[0], [RED, GREEN, WHITE])


def test_one_bit_grey_png():
    png = _png(3, 1, 1, 0, [bytes([0b10100000])])
    np.testing.assert_array_equal(decode_image(png)[0], [WHITE, (0, 0, 0), WHITE])


@pytest.mark.parametrize(
    ("ink", "rgb"),
    [
        ((0, 255, 255, 0), RED),
        ((255, 0, 255, 0), GREEN),
        ((0, 0, 255, 0), (255, 255, 0)),
        ((0, 0, 0, 0), WHITE),
        ((0, 0, 0, 255), (0, 0, 0)),
    ],
)
def test_cmyk_jpeg_colours(ink, rgb):
    img = decode_image(_cmyk_jpeg(ink), "cmyk.jpg")
    assert img.shape == (16, 16, 3)
    assert (np.abs(img.astype(int) - rgb) <= 6).all(), img[0, 0]


# --------------------------------------------------------------------------- feature: orientation


def test_exif_orientation_6_turns_jpeg_upright(tmp_path):
    src = _pattern()  # 32 x 48, red top-left, green top-right, blue bottom-left
    jpeg = _jpeg_with_exif(_encode(".jpg", src, (cv2.IMWRITE_JPEG_QUALITY, 98)), 6)
    img = read_image(_write(tmp_path, "phone.jpg", jpeg))
    assert img.shape == (48, 32, 3)  # transposed
    # stored 90 deg counter-clockwise: turned clockwise, the top-left corner goes to the top-right
    assert _px(img, 0, -1) == pytest.approx(RED, abs=12)
    assert _px(img, -1, -1) == pytest.approx(GREEN, abs=12)
    assert _px(img, 0, 0) == pytest.approx(BLUE, abs=12)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_exif_orientation_matches_opencv_jpeg_handling(orientation):
    src = _pattern(32, 64)
    via_opencv = decode_image(
        _jpeg_with_exif(_encode(".jpg", src, (cv2.IMWRITE_JPEG_QUALITY, 100)), orientation)
    )
    ours = decode_image(_rgb_png(src, _chunk(b"eXIf", _exif(orientation))))
    assert ours.shape == via_opencv.shape == ((64, 32, 3) if orientation >= 5 else (32, 64, 3))
    assert np.abs(ours.astype(int) - via_opencv).mean() < 3
    assert ours.flags.c_contiguous


def test_big_endian_exif_and_unknown_orientation_values():
    src = _pattern()
    big = decode_image(_rgb_png(src, _chunk(b"eXIf", _exif(8, little_endian=False))))
    np.testing.assert_array_equal(big, np.rot90(src, 1))
    for junk in (_exif(0), _exif(9), b"MM\x00*\xff\xff", b"garbage"):  # ignored, never an error
        np.testing.assert_array_equal(decode_image(_rgb_png(src, _chunk(b"eXIf", junk))), src)


def test_tiff_orientation_applied_once():
    src = _pattern()
    img = decode_image(_tiff(src, orientation=6), "rotated.tif")
    np.testing.assert_array_equal(img, np.rot90(src, -1))


def test_webp_exif_orientation_applied_once():
    src = _pattern()
    img = decode_image(_webp_with_exif(src, 3), "rotated.webp")
    np.testing.assert_array_equal(img, src[::-1, ::-1])


# --------------------------------------------------------------------------- exceptions: bad files


def test_missing_directory_empty_and_text(tmp_path):
    with pytest.raises(InputError) as e:
        read_image(tmp_path / "nope.jpg")
    assert _message(e) == f"{tmp_path / 'nope.jpg'}: not found"
    with pytest.raises(InputError) as e:
        read_image(tmp_path)
    assert "is a directory" in _message(e)
    with pytest.raises(InputError) as e:
        read_image(_write(tmp_path, "zero.jpg", b""))
    assert _message(e).endswith("zero.jpg: empty file (0 bytes)")
    with pytest.raises(InputError) as e:
        read_image(_write(tmp_path, "notes.png", b"just some text, not a picture\n" * 3))
    msg = _message(e)
    assert "notes.png: not a supported image" in msg and "expected JPEG, PNG" in msg


def test_wrong_argument_types():
    with pytest.raises(InputError, match="expected an image path"):
        read_image(123)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="use read_image for a path"):
        decode_image("photo.jpg")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="empty data"):
        decode_image(b"", "upload")
    with pytest.raises(InputError, match="max_pixels must be a positive int"):
        decode_image(_rgb_png(_pattern()), max_pixels=0)


@pytest.mark.parametrize(
    ("head", "what"),
    [
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC/HEIF"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", "AVIF"),
        (b"%PDF-1.7\n", "PDF"),
    ],
)
def test_known_unsupported_formats_are_named(no_decoding, head, what):
    with pytest.raises(InputError) as e:
        decode_image(head + b"\x00" * 100, "upload")
    assert f"not a supported image ({what}" in _message(e)


_NOISE = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("ext", "params", "keep", "reason"),
    [
        (".jpg", (), -2, "truncated JPEG (no end-of-image marker"),  # only the EOI marker missing
        (".jpg", (), 0.6, "truncated JPEG (no end-of-image marker"),
        (".jpg", (), 0.01, "truncated JPEG"),  # cut inside the header
        (".png", (), 0.5, "truncated PNG (the IDAT chunk runs past the end"),
        (".png", (), -12, "truncated PNG (no IEND chunk"),  # exactly the IEND chunk missing
        (".webp", (cv2.IMWRITE_WEBP_QUALITY, 90), 0.7, "truncated WebP"),
        (".gif", (), 0.5, "corrupt or truncated GIF"),
        (".bmp", (), 0.5, "corrupt or truncated BMP"),
        (".tif", (), 0.5, "truncated or corrupt TIFF (first directory at byte"),  # OpenCV writes it last
    ],
)
def test_truncated_files_are_rejected(tmp_path, ext, params, keep, reason):
    data = _encode(ext, _NOISE, params)
    cut = data[:keep] if isinstance(keep, int) else data[: int(len(data) * keep)]
    assert len(cut) < len(data)
    with pytest.raises(InputError) as e:
        read_image(_write(tmp_path, f"cut{ext}", cut))
    msg = _message(e)
    assert msg.startswith(str(tmp_path / f"cut{ext}") + ": ")
    assert reason in msg


def test_truncated_gif_header():
    with pytest.raises(InputError, match="truncated GIF"):
        decode_image(b"GIF89a\x10", "tiny.gif")


# --------------------------------------------------------------------------- exceptions: huge headers


def _patch(data: bytes, offset: int, packed: bytes) -> bytes:
    return data[:offset] + packed + data[offset + len(packed) :]


def _huge(fmt: str) -> bytes:
    """A small file whose header claims 30000 x 30000 pixels."""
    small = np.zeros((8, 8, 3), np.uint8)
    if fmt == "PNG":
        return _png(30000, 30000, 8, 2, [b""])
    if fmt == "JPEG":
        data = _encode(".jpg", small)
        sof = data.index(b"\xff\xc0")
        return _patch(data, sof + 5, struct.pack(">HH", 30000, 30000))
    if fmt == "GIF":
        return _patch(_encode(".gif", small), 6, struct.pack("<HH", 30000, 30000))
    if fmt == "BMP":
        return _patch(_encode(".bmp", small), 18, struct.pack("<ii", 30000, -30000))
    if fmt == "WebP":
        return _patch(_webp_with_exif(small, 1), 24, (29999).to_bytes(3, "little") * 2)
    if fmt == "TIFF":
        data = _tiff(small)
        for tag in (256, 257):  # ImageWidth, ImageLength
            data = data.replace(struct.pack("<HHII", tag, 4, 1, 8), struct.pack("<HHII", tag, 4, 1, 30000))
        return data
    raise AssertionError(fmt)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WebP", "TIFF"])
def test_huge_header_rejected_before_decoding(tmp_path, no_decoding, fmt):
    data = _huge(fmt)
    assert len(data) < 10_000
    path = _write(tmp_path, "huge.img", data)
    with pytest.raises(InputError) as e:
        read_image(path)
    assert _message(e) == (
        f"{path}: image is 30000x30000 = 900 MP, over the 100 MP limit (max_pixels={DEFAULT_MAX_PIXELS})"
    )


def test_max_pixels_is_inclusive():
    data = _rgb_png(_pattern())  # 48 x 32 = 1536 pixels
    assert decode_image(data, max_pixels=1536).shape == (32, 48, 3)
    with pytest.raises(InputError, match=r"small.png: image is 48x32 = 0.001536 MP, over the 0.001535 MP"):
        decode_image(data, "small.png", max_pixels=1535)


def test_opencv_pixel_limit_reported_by_us(monkeypatch, no_decoding):
    monkeypatch.setattr(images, "_OPENCV_MAX_PIXELS", 1000)
    with pytest.raises(InputError) as e:
        decode_image(_png(40, 30, 8, 2, [b""]), "wide.png", max_pixels=10**9)
    assert "over OpenCV's limit of 1000 pixels (set CV_IO_MAX_IMAGE_PIXELS" in _message(e)


def test_zero_size_header(no_decoding):
    with pytest.raises(InputError, match=r"corrupt PNG header \(claims 0x5 pixels\)"):
        decode_image(_png(0, 5, 8, 2, [b""]), "zero.png")


# --------------------------------------------------------------------------- as_rgb_array


def test_rgb_uint8_passes_through_without_copy():
    arr = _pattern()
    assert as_rgb_array(arr) is arr


def test_non_contiguous_input_becomes_contiguous():
    arr = _pattern()[:, ::-1]
    out = as_rgb_array(arr)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1)])
def test_grey_arrays_expand_to_three_channels(shape):
    grey = np.arange(35, dtype=np.uint8).reshape(shape)
    out = as_rgb_array(grey)
    assert out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, np.repeat(grey.reshape(5, 7, 1), 3, axis=2))


def test_array_dtypes_scale():
    np.testing.assert_array_equal(as_rgb_array(np.array([[0, 1000, 65535]], np.uint16))[0, :, 0], [0, 4, 255])
    floats = np.array([[0.0, 0.5, 1.0, 1.001]], np.float64)  # 1.001 is within half a grey level
    np.testing.assert_array_equal(as_rgb_array(floats)[0, :, 0], [0, 128, 255, 255])
    half = np.full((2, 2, 3), 0.25, np.float16)
    assert (as_rgb_array(half) == 64).all()
    rgba = np.zeros((1, 1, 4), np.float32)  # transparent -> white
    assert (as_rgb_array(rgba) == 255).all()


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((10,), "(H, W), (H, W, 1), (H, W, 3) or (H, W, 4)"),
        ((4, 4, 2), "(H, W, 3)"),
        ((1, 4, 4, 3), "(H, W)"),
    ],
)
def test_wrong_shapes(shape, expected):
    with pytest.raises(ShapeError) as e:
        as_rgb_array(np.zeros(shape, np.uint8))
    assert e.value.field == "image" and e.value.actual == shape
    assert expected in e.value.expected
    assert f"got {shape}" in _message(e)


def test_empty_array():
    with pytest.raises(ShapeError, match=r"H, W > 0, got \(0, 5, 3\)"):
        as_rgb_array(np.zeros((0, 5, 3), np.uint8))


@pytest.mark.parametrize(
    ("arr", "match"),
    [
        (np.full((2, 2, 3), 200.0), r"float values must lie in \[0, 1\], got \[200, 200\]"),
        (np.full((2, 2, 3), -0.1, np.float32), r"float values must lie in \[0, 1\]"),
        (np.array([[np.nan, 0.5]]), "NaN or infinite"),
        (np.array([[np.inf, 0.5]], np.float32), "NaN or infinite"),
        (np.zeros((2, 2, 3), np.int64), r"unsupported dtype int64.*astype\(np.uint8\)"),
        (np.zeros((2, 2), bool), "unsupported dtype bool"),
        (np.zeros((2, 2), np.complex64), "unsupported dtype complex64"),
    ],
)
def test_bad_array_values(arr, match):
    with pytest.raises(InputError, match=match):
        as_rgb_array(arr)


def test_non_array_rejected():
    with pytest.raises(InputError, match=r"expected a numpy array \(H, W, 3\) RGB, got list"):
        as_rgb_array([[1, 2], [3, 4]])  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 6), st.just(4))))
def test_alpha_compositing_is_exactly_rounded(rgba):
    out = as_rgb_array(rgba).astype(float)
    c, a = rgba[..., :3].astype(float), rgba[..., 3:].astype(float) / 255
    reference = c * a + 255 * (1 - a)
    assert np.abs(out - reference).max() <= 0.5 + 1e-9


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.uint16, st.tuples(st.integers(1, 5), st.integers(1, 5), st.sampled_from([1, 3]))))
def test_uint16_scaling_is_round_of_v_over_257(arr):
    out = as_rgb_array(arr)
    expected = np.floor(arr.astype(float) / 257 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(out, np.broadcast_to(expected, out.shape))


# --------------------------------------------------------------------------- iter_image_paths


@pytest.fixture
def tree(tmp_path):
    for rel in [
        "b.png",
        "a.JPG",
        "c.TiFf",
        "notes.txt",
        ".hidden.jpg",
        "._a.JPG",
        "sub/d.jpeg",
        "sub/deeper/e.gif",
        ".cache/f.png",
        "only_sub/x/y.webp",
    ]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    return tmp_path


def _names(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_folder_lists_images_sorted_case_insensitive(tree):
    assert _names(iter_image_paths([tree]), tree) == ["a.JPG", "b.png", "c.TiFf"]
    assert _names(iter_image_paths(tree, recursive=True), tree) == [
        "a.JPG",
        "b.png",
        "c.TiFf",
        "only_sub/x/y.webp",
        "sub/d.jpeg",
        "sub/deeper/e.gif",
    ]


def test_explicit_files_kept_whatever_the_extension(tree):
    out = iter_image_paths([tree / "notes.txt", str(tree / "b.png")])
    assert out == [tree / "notes.txt", tree / "b.png"]


def test_globs(tree):
    assert _names(iter_image_paths([str(tree / "*.png")]), tree) == ["b.png"]
    assert _names(iter_image_paths([str(tree / "*")]), tree) == ["a.JPG", "b.png", "c.TiFf", "sub/d.jpeg"]
    deep = iter_image_paths([str(tree / "**" / "*.gif")], recursive=True)
    assert _names(deep, tree) == ["sub/deeper/e.gif"]


def test_duplicates_removed_in_first_seen_order(tree):
    out = iter_image_paths([tree / "c.TiFf", tree, str(tree / "*.png"), tree / "sub" / ".." / "a.JPG"])
    assert _names(out, tree) == ["c.TiFf", "a.JPG", "b.png"]


def test_path_errors(tree):
    with pytest.raises(InputError) as e:
        iter_image_paths([tree / "b.png", tree / "missing.jpg"])
    assert _message(e) == f"{tree / 'missing.jpg'}: not found"
    with pytest.raises(InputError) as e:
        iter_image_paths([str(tree / "*.bmp")])
    extensions = "jpg, jpeg, png, bmp, webp, tif, tiff, gif"
    assert _message(e) == f"{tree / '*.bmp'}: pattern matched no images ({extensions})"
    (tree / "empty").mkdir()
    with pytest.raises(InputError) as e:
        iter_image_paths([tree / "empty"])
    assert _message(e) == f"{tree / 'empty'}: folder contains no images ({extensions})"
    with pytest.raises(InputError) as e:
        iter_image_paths([tree / "only_sub"])
    assert "pass recursive=True" in _message(e)
    assert iter_image_paths([tree / "only_sub"], recursive=True) == [tree / "only_sub" / "x" / "y.webp"]
    with pytest.raises(InputError, match="got int"):
        iter_image_paths([3])  # type: ignore[list-item]


def test_extensions_constant():
    # no dots: callers test path.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS
    assert set(IMAGE_EXTENSIONS) == {"jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff", "gif"}
    assert Path("x/Photo.JPEG").suffix.lower().lstrip(".") in IMAGE_EXTENSIONS


def test_labeled_assets_all_listed_and_readable():
    folder = ASSETS / "labeled"
    with open(folder / "labels.csv", newline="") as f:
        labels = {row["image"]: row["emotion"] for row in csv.DictReader(f)}
    paths = iter_image_paths([folder])
    assert len(paths) == len(labels) == 12
    assert {p.name for p in paths} == set(labels)
    assert sorted(set(labels.values())) == ["anger", "disgust", "happiness", "neutral", "sadness", "surprise"]
    for p in paths:
        img = read_image(p)
        assert img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 32


# --------------------------------------------------------------------------- feature: the TurboJPEG path

needs_simplejpeg = pytest.mark.skipif(images._simplejpeg is None, reason="simplejpeg (the jpeg extra) not installed")


def _both_paths(monkeypatch, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """``data`` decoded by the TurboJPEG path, then by OpenCV's (the path without simplejpeg)."""
    calls = []
    real = images._decode_jpeg_turbo
    def turbo(buf):
        calls.append(real(buf))
        return calls[-1]

    monkeypatch.setattr(images, "_decode_jpeg_turbo", turbo)
    fast = decode_image(data)
    assert calls and calls[0] is not None, "the TurboJPEG path was not taken"
    monkeypatch.setattr(images, "_simplejpeg", None)
    slow = decode_image(data)
    monkeypatch.undo()
    return fast, slow


def _variants() -> dict[str, bytes]:
    photo = cv2.imread(str(ASSETS / "single_face.jpg"))
    big = cv2.resize(photo, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
    out = {p.name: p.read_bytes() for p in sorted(ASSETS.glob("*.jpg"))}
    for name, img in (("photo", photo), ("odd", big[:-1, :-3])):
        for s, code in (("420", cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420), ("422", cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422),
                        ("444", cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444)):
            out[f"{name} {s}"] = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, code])[1].tobytes()
        out[f"{name} progressive"] = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
        out[f"{name} restarts"] = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_RST_INTERVAL, 3])[1].tobytes()
        out[f"{name} grey"] = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))[1].tobytes()
    return out


@needs_simplejpeg
def test_turbojpeg_path_gives_opencvs_pixels_bit_for_bit(monkeypatch):
    for name, data in _variants().items():
        fast, slow = _both_paths(monkeypatch, data)
        assert fast.shape == slow.shape and fast.dtype == np.uint8 and fast.flags.c_contiguous, name
        np.testing.assert_array_equal(fast, slow, err_msg=name)


@needs_simplejpeg
@pytest.mark.parametrize("little_endian", [True, False])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_turbojpeg_path_applies_exif_orientation_as_opencv_does(monkeypatch, orientation, little_endian):
    jpeg = _jpeg_with_exif(_encode(".jpg", _pattern(32, 64), (cv2.IMWRITE_JPEG_QUALITY, 95)), orientation, little_endian)
    fast, slow = _both_paths(monkeypatch, jpeg)
    assert fast.shape == ((64, 32, 3) if orientation >= 5 else (32, 64, 3))
    np.testing.assert_array_equal(fast, slow)


_ENTRY = st.tuples(st.sampled_from([0x0112, 0x0112, 0x0112, 0x010F]), st.sampled_from([3, 3, 3, 4, 1]),
                   st.sampled_from([1, 1, 1, 0, 2]), st.integers(0, 10))


@needs_simplejpeg
@settings(max_examples=300, deadline=None)
@given(little=st.booleans(), entries=st.lists(_ENTRY, max_size=4), offset=st.sampled_from([8, 8, 8, 10, 2000]),
       cut=st.sampled_from([0, 0, 0, 1, 3]), twice=st.sampled_from([False, False, False, True]))
def test_turbojpeg_path_agrees_with_opencv_on_any_exif_block(little, entries, offset, cut, twice):
    """EXIF blocks with odd types, counts, values, offsets, cut directories and two APP1 blocks:
    the orientation is applied exactly where OpenCV applies it (what the fast path does not read
    plainly is left to OpenCV)."""
    e = "<" if little else ">"
    tiff = (b"II*\x00" if little else b"MM\x00*") + struct.pack(e + "I", offset) + bytes(max(offset - 8, 0))
    tiff += struct.pack(e + "H", len(entries)) + b"".join(
        struct.pack(e + "HHIHH", tag, kind, n, value, 0) for tag, kind, n, value in entries) + bytes(4)
    tiff = tiff[: len(tiff) - 4 * cut]
    jpeg = _encode(".jpg", _pattern(32, 64), (cv2.IMWRITE_JPEG_QUALITY, 95))
    for _ in range(2 if twice else 1):
        app1 = b"Exif\x00\x00" + tiff
        jpeg = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(images, "_simplejpeg", None)
        slow = decode_image(jpeg)
    np.testing.assert_array_equal(decode_image(jpeg), slow)


@needs_simplejpeg
def test_turbojpeg_path_leaves_damaged_jpegs_to_opencv_and_its_report(monkeypatch, caplog, capfd):
    """A JPEG with corrupt data makes the strict TurboJPEG decoder refuse; OpenCV's path decodes it
    and reports the one named warning it always did, with nothing printed on stderr."""
    data = (ASSETS.parent / "bad" / "corrupt_mid.jpg").read_bytes()
    assert images._decode_jpeg_turbo(data) is None
    import logging

    with caplog.at_level(logging.WARNING, logger="openfer"):
        img = decode_image(data, "corrupt_mid.jpg")
    assert img.shape[2] == 3
    assert [r.getMessage() for r in caplog.records] == [
        "corrupt_mid.jpg: corrupt JPEG data, decoded with errors (libjpeg: Corrupt JPEG data: premature end of data segment)"]
    assert capfd.readouterr().err == ""
