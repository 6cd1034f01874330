"""Images in: files, bytes and user arrays become one thing, an RGB ``uint8`` array ``(H, W, 3)``.

:func:`read_image` (a path) is :func:`decode_image` (bytes, what the REST service receives) after a
file read; :func:`as_rgb_array` checks and converts an array a caller hands to the Python API;
:func:`iter_image_paths` expands files, folders and glob patterns. Every failure is an
:class:`~openfer.errors.InputError` whose one-line message names the file (or ``image``) and the reason.

Policies, the same on every path:

* **Channel order** is RGB. Arrays passed in are taken as RGB too, *not* OpenCV's BGR: convert a
  ``cv2.imread`` result with ``cv2.cvtColor(img, cv2.COLOR_BGR2RGB)`` first.
* **Formats** are told apart by their signature, not their extension: JPEG, PNG, GIF, BMP, WebP and
  TIFF. Anything else (HEIC, AVIF, JPEG 2000, PDF, text...) is rejected, even where the OpenCV build
  could decode it, because every accepted format gets the size check below.
* **Size** is checked from the header *before* decoding: an image over ``max_pixels`` (default
  100 MP) is rejected with its dimensions in the message, so a 30000x30000 file costs nothing. Images
  are never silently downscaled. OpenCV's own ``CV_IO_MAX_IMAGE_PIXELS`` (default 2**30) is checked
  here too, so that error also comes from openfer.
* **Truncation** is an error. A JPEG without its end-of-image marker after the scan is rejected
  (OpenCV would return it with a grey bottom), as are a PNG without ``IEND`` and a WebP shorter than
  its RIFF header says; other formats are rejected when the decoder fails.
* **Alpha** (RGBA, grey+alpha, palette with transparency) is composited over white, the way a viewer
  shows a transparent image on a page; dropping alpha would expose whatever colour the transparent
  pixels happen to store (often black). OpenCV's GIF decoder gives no alpha channel, so transparent
  GIF pixels keep the colour OpenCV gives them.
* **16-bit** samples are scaled to 8 bits as ``round(v / 257)`` (so 65535 -> 255, 257 -> 1), never
  clipped or truncated. Float arrays must lie in [0, 1] and become ``round(v * 255)``.
* **Grey** (including 1-bit and palette images) is expanded to three equal channels.
* **Orientation**: the EXIF orientation tag is applied, so the array is upright as a viewer shows
  it. OpenCV applies it for JPEG and TIFF; this module applies it for PNG ``eXIf`` and WebP ``EXIF``,
  and for a JPEG decoded on the TurboJPEG path (below) where its EXIF block is plain (one block, one
  well-formed Orientation entry); any other EXIF block sends the JPEG to OpenCV's reader.
* **JPEG decoder**: with ``simplejpeg`` installed (the ``jpeg`` or ``fast`` extra), a JPEG decodes
  through libjpeg-turbo's TurboJPEG API: the same pixels as OpenCV's decoder bit for bit (both are
  libjpeg-turbo with its accurate DCT; ``benchmarks/jpeg_decode.py``: 2,290 files), in 5-20%
  less time. It is strict: a JPEG it reports anything for, a warning included, is decoded by OpenCV
  instead, with the messages below.
* **Multi-frame** files (animated GIF, WebP or PNG, multi-page TIFF) give their first frame. GIF
  decoding needs OpenCV >= 4.11.
* **Untrusted bytes**: any failure while parsing a file becomes an ``InputError`` naming it (a header
  that cannot be parsed is "corrupt <FMT> header (<exception type>)"); offsets read from a file are
  checked against its length before they are followed.
* **Decoder messages**: libjpeg, libpng, libtiff and OpenCV print their warnings straight to the
  process's stderr (file descriptor 2), naming no file. Decoding captures them (:mod:`openfer.io.native`: fd 2 is redirected
  to a temporary file around the call, one decode at a time under a process-wide lock) and reports
  them as openfer's own one line naming the file:

  - the decoder fails (libpng ``IDAT: CRC error``, a cut BMP): ``InputError`` "corrupt or truncated
    <FMT> data (<library>: <message>)";
  - libjpeg's ``Premature end of JPEG file``: ``InputError`` "truncated JPEG", as for a missing end
    marker (the rest of the picture would be grey);
  - decoded from corrupt data (libjpeg ``Corrupt JPEG data: ...``, libtiff ``Using code not yet in
    table``): a warning "corrupt <FMT> data, decoded with errors (<library>: <message>)";
  - decoded with another message (libpng ``tEXt: CRC error``): a warning "<FMT> decoder warning (...)";
  - an unreadable EXIF block in a PNG or WebP: a warning, the orientation is not applied.

  Corrupt-but-decoded data is a warning, not an error: libjpeg resynchronises at the next restart
  marker or scan, so such a photo (common from cameras and phone apps, shown by every viewer) keeps
  most of its pixels, and rejecting it would drop real photos from a batch; the warning names the
  file to look at. Output that a C library prints from another thread while a decode runs is
  attributed to that decode.
"""

from __future__ import annotations

import glob
import logging
import os
import stat
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

try:  # libjpeg-turbo through its TurboJPEG API (the "jpeg" extra): see _decode_jpeg_turbo
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - the extra is optional
    _simplejpeg = None

from ..errors import InputError, ShapeError
from .native import decode_reporting, exception_line, report_notes, summary

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "as_rgb_array",
    "decode_image",
    "iter_image_paths",
    "read_image",
]

logger = logging.getLogger("openfer")

#: File extensions (lower case, no dot) that folder and glob expansion treat as images. Test a path
#: with ``path.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS``.
IMAGE_EXTENSIONS: tuple[str, ...] = ("jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff", "gif")
#: Largest image (width x height) decoded by default: 100 MP, 300 MB as RGB uint8.
DEFAULT_MAX_PIXELS = 100_000_000

_SUPPORTED = "expected JPEG, PNG, GIF, BMP, WebP or TIFF"
# OpenCV reads CV_IO_MAX_IMAGE_PIXELS once, the first time it decodes; mirror it at import.
try:
    _OPENCV_MAX_PIXELS = int(os.environ.get("CV_IO_MAX_IMAGE_PIXELS", str(1 << 30)))
except ValueError:
    _OPENCV_MAX_PIXELS = 1 << 30
# The built-in GIF codec (decoder and the IMWRITE_GIF_* flags) arrived in OpenCV 4.11.
_HAS_GIF = hasattr(cv2, "IMWRITE_GIF_QUALITY")
_IMREAD_COLOR_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.11
_HALF_LEVEL = 0.5 / 255  # float overshoot that still rounds into 0..255
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class _Header:
    format: str
    width: int
    height: int
    orientation: int = 1  # EXIF orientation this module applies after decoding (1: nothing to do)
    exif_problem: str = ""  # why an EXIF block was ignored (reported with the decoder's messages)
    # a JPEG's EXIF orientation where it is plain enough to apply without OpenCV's reader (no EXIF
    # block, or one whose first directory holds one well-formed Orientation entry); None: ask OpenCV
    plain_orientation: int | None = None


def _fail(name: str, reason: str) -> InputError:
    return InputError(f"{name}: {reason}")


# --------------------------------------------------------------------------- public API


def read_image(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as an RGB ``uint8`` array ``(H, W, 3)``, C-contiguous.

    See the module docstring for the policies (alpha over white, 16-bit scaling, EXIF orientation,
    first frame, size limit, truncation). The file is read by Python, so non-ASCII paths work on
    every platform; a file that does not start like a supported image is rejected after reading
    its first bytes only.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"expected an image path (str or Path), got {type(path).__name__}")
    name = os.fspath(path)
    try:  # one stat for what Path.exists / is_dir / is_file would ask three times
        mode = os.stat(name).st_mode
    except PermissionError:
        raise _fail(name, "permission denied") from None
    except (OSError, ValueError):  # as Path.exists: missing, a dangling link, a null byte in the name
        raise _fail(name, "not found") from None
    if stat.S_ISDIR(mode):
        raise _fail(name, "is a directory, not an image file")
    if not stat.S_ISREG(mode):
        raise _fail(name, "not a regular file")
    try:
        with open(name, "rb") as f:
            head = f.read(64)
            if not head:
                raise _fail(name, "empty file (0 bytes)")
            _sniff(head, name)  # reject a video or a text file before reading all of it
            data = head + f.read()
    except PermissionError:
        raise _fail(name, "permission denied") from None
    except OSError as exc:
        raise _fail(name, f"could not be read ({exc.strerror or exc})") from None
    return decode_image(data, name, max_pixels=max_pixels)


def decode_image(
    data: bytes | bytearray | memoryview,
    name: str = "<bytes>",
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode an encoded image (file contents) as an RGB ``uint8`` array ``(H, W, 3)``.

    ``name`` only labels error messages (a file name, an upload's field). Policies as in the module
    docstring; the header is checked against ``max_pixels`` before anything is decoded.
    """
    if isinstance(data, str):
        raise _fail(name, "expected encoded image bytes, got str (use read_image for a path)")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise _fail(name, f"expected encoded image bytes, got {type(data).__name__}")
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise InputError(f"max_pixels must be a positive int, got {max_pixels!r}")
    buf = bytes(data) if not isinstance(data, bytes) else data
    if not buf:
        raise _fail(name, "empty data (0 bytes)")
    header = _parse_header(buf, name)
    _check_size(header, name, max_pixels)

    fmt = header.format
    if fmt == "JPEG" and header.plain_orientation is not None and (turbo := _decode_jpeg_turbo(buf)) is not None:
        if turbo.shape[0] * turbo.shape[1] > max_pixels:  # a header that understated the size
            h, w = turbo.shape[:2]
            raise _fail(name, f"image is {w}x{h} = {_mp(w * h)} MP, over the {_mp(max_pixels)} MP limit")
        if header.plain_orientation != 1:
            turbo = _apply_orientation(turbo, header.plain_orientation)
        return np.ascontiguousarray(turbo)
    # a JPEG decodes straight to RGB where OpenCV can (>= 4.11: one pass over the pixels fewer; the
    # same values as BGR then swapped)
    rgb_jpeg = fmt == "JPEG" and _IMREAD_COLOR_RGB is not None
    if rgb_jpeg:
        flags = _IMREAD_COLOR_RGB
    else:
        flags = cv2.IMREAD_COLOR if fmt == "JPEG" else cv2.IMREAD_UNCHANGED
    try:
        decoded, notes = decode_reporting(lambda: cv2.imdecode(np.frombuffer(buf, np.uint8), flags), fmt)
    except MemoryError:
        raise _fail(name, f"not enough memory to decode a {header.width}x{header.height} image") from None
    except Exception as exc:  # cv2.error or anything else the decoder raises on these bytes
        raise _fail(name, f"corrupt {fmt} data ({exception_line(exc)})") from None
    if decoded is None or decoded.size == 0:
        if fmt == "GIF" and not _HAS_GIF:
            raise _fail(name, f"GIF needs OpenCV >= 4.11 to decode (this is {cv2.__version__})")
        raise _fail(name, f"corrupt or truncated {fmt} data ({summary(notes) or 'OpenCV could not decode it'})")
    if decoded.shape[0] * decoded.shape[1] > max_pixels:  # a header that understated the size
        h, w = decoded.shape[:2]
        raise _fail(name, f"image is {w}x{h} = {_mp(w * h)} MP, over the {_mp(max_pixels)} MP limit")
    if decoded.ndim == 3 and decoded.shape[2] not in (1, 3, 4):
        raise _fail(name, f"unsupported {fmt} with {decoded.shape[2]} channels (expected grey, RGB or RGBA)")

    rgb = _to_rgb_uint8(decoded if rgb_jpeg else _bgr_to_rgb(decoded), name)
    if header.orientation != 1:
        rgb = _apply_orientation(rgb, header.orientation)
    report_notes(name, fmt, notes, header.exif_problem)
    return np.ascontiguousarray(rgb)


def _decode_jpeg_turbo(buf: bytes) -> np.ndarray | None:
    """A JPEG decoded by libjpeg-turbo's TurboJPEG API (``simplejpeg``) as RGB, or ``None`` where it
    is not installed or reports anything (strict: warnings too), and OpenCV's path decodes instead
    with its messages captured and reported as for every file.

    The pixels are OpenCV's bit for bit (both are libjpeg-turbo with its accurate DCT and fancy
    upsampling; checked on every JPEG of photos_dev and the fixtures and on re-encodings of one
    photo in each chroma subsampling, progressive, with restart markers, grey and CMYK:
    ``benchmarks/jpeg_decode.py``), in 5-20% less time (``single_face.jpg`` on one core: 1.10
    against 1.16-1.74 ms, OpenCV's time moving with the allocator's state; in the ``fast`` photo's
    decode, 1.32 against 1.48 ms)."""
    if _simplejpeg is None:
        return None
    try:
        out = _simplejpeg.decode_jpeg(buf, "RGB")
    except Exception:  # ValueError for the decoder's errors and warnings: OpenCV's path reports them
        return None
    return out if out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8 else None


def as_rgb_array(image: np.ndarray, *, max_pixels: int | None = None) -> np.ndarray:
    """Check and convert an image array from a caller into RGB ``uint8`` ``(H, W, 3)``, C-contiguous.

    Accepted: ``(H, W)`` or ``(H, W, 1)`` grey, ``(H, W, 3)`` RGB, ``(H, W, 4)`` RGBA (composited
    over white), in ``uint8``, ``uint16`` (``round(v / 257)``) or floating point in [0, 1]
    (``round(v * 255)``). Channels are read as **RGB, not OpenCV's BGR**. An array that already is
    C-contiguous RGB ``uint8`` is returned as is, without a copy.

    Raises :class:`~openfer.errors.ShapeError` for a wrong number of dimensions or channels or an
    empty image, and :class:`~openfer.errors.InputError` for other dtypes, NaN/inf, floats outside
    [0, 1], or more than ``max_pixels`` pixels (checked before any conversion, as for files).
    """
    if not isinstance(image, np.ndarray):
        if hasattr(image, "__array_interface__") or hasattr(image, "__array__"):
            image = np.asarray(image)  # e.g. a PIL image
        else:
            raise InputError(f"image: expected a numpy array (H, W, 3) RGB, got {type(image).__name__}")
    expected = "(H, W), (H, W, 1), (H, W, 3) or (H, W, 4)"
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ShapeError("image", expected, image.shape)
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ShapeError("image", f"{expected} with H, W > 0", image.shape)
    h, w = int(image.shape[0]), int(image.shape[1])
    if max_pixels is not None and h * w > max_pixels:
        raise InputError(
            f"image: array is {w}x{h} = {_mp(w * h)} MP, over the {_mp(max_pixels)} MP limit (max_pixels={max_pixels})"
        )
    return _to_rgb_uint8(image, "image")


def iter_image_paths(
    inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    recursive: bool = False,
) -> list[Path]:
    """Expand files, folders and glob patterns into a list of image paths, duplicates removed.

    * A file is returned as given, whatever its extension (:func:`read_image` judges its content).
    * A folder gives its images (by extension, case-insensitive: :data:`IMAGE_EXTENSIONS`), sorted;
      with ``recursive=True`` its subfolders' too. Hidden files and folders (``.name``, such as
      macOS ``._photo.jpg`` resource forks) are skipped.
    * A pattern with ``*``, ``?`` or ``[`` that is not an existing path is globbed (``**`` matches
      folders at any depth when ``recursive=True``); matched files are kept if they have an image
      extension, matched folders are expanded as above.

    The order is the order of ``inputs``; a path reached twice is kept at its first place. A missing
    path, a pattern matching no image or a folder without images raises
    :class:`~openfer.errors.InputError` naming it. A single str or Path is taken as one input.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        if not isinstance(item, (str, os.PathLike)):
            raise InputError(f"expected image paths (str or Path), got {type(item).__name__}")
        text = os.fspath(item)
        p = Path(text)
        if p.is_dir():
            found = _images_in(p, recursive)
            if not found:
                raise _fail(text, _no_images_reason(p, recursive))
        elif p.exists():
            found = [p]
        elif any(c in text for c in "*?["):
            found = []
            for match in sorted(glob.glob(text, recursive=recursive)):
                m = Path(match)
                if m.is_dir():
                    found.extend(_images_in(m, recursive))
                elif m.is_file() and _has_image_extension(m.name):
                    found.append(m)
            if not found:
                raise _fail(text, f"pattern matched no images ({_extension_list()})")
        else:
            raise _fail(text, "not found")
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


# --------------------------------------------------------------------------- paths


def _extension_list() -> str:
    return ", ".join(IMAGE_EXTENSIONS)


def _has_image_extension(name: str) -> bool:
    return Path(name).suffix.lower().lstrip(".") in IMAGE_EXTENSIONS


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")] if recursive else []
        for f in files:
            if not f.startswith(".") and _has_image_extension(f):
                found.append(Path(root) / f)
    return sorted(found)


def _no_images_reason(folder: Path, recursive: bool) -> str:
    reason = f"folder contains no images ({_extension_list()})"
    if not recursive and any(c.is_dir() and not c.name.startswith(".") for c in folder.iterdir()):
        reason += "; it has subfolders: pass recursive=True to search them"
    return reason


# --------------------------------------------------------------------------- headers


def _sniff(b: bytes, name: str) -> str:
    """The format from the first bytes, or InputError naming what it is instead."""
    if b[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if b[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if b[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if b[:2] == b"BM":
        return "BMP"
    if b[:4] == b"RIFF" and b[8:12] == b"WEBP":
        return "WebP"
    if b[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    what = "unrecognised content"
    if b[4:8] == b"ftyp":
        brand = b[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1"):
            what = "HEIC/HEIF image"
        elif brand in (b"avif", b"avis"):
            what = "AVIF image"
        else:
            what = "video/ISO media file"
    elif b[:4] == b"\xff\x4f\xff\x51" or b[4:8] == b"jP  ":
        what = "JPEG 2000 image"
    elif b[:4] == b"%PDF":
        what = "PDF document"
    raise _fail(name, f"not a supported image ({what}; {_SUPPORTED})")


def _parse_header(b: bytes, name: str) -> _Header:
    fmt = _sniff(b[:64], name)
    try:
        return _HEADER_PARSERS[fmt](b, name)
    except InputError:
        raise
    except (struct.error, IndexError):
        raise _fail(name, f"truncated {fmt} (the file ends inside its header)") from None
    except Exception as exc:  # whatever else these bytes make a parser raise is still the file's fault
        raise _fail(name, f"corrupt {fmt} header ({type(exc).__name__})") from None


def _check_size(h: _Header, name: str, max_pixels: int) -> None:
    if h.width <= 0 or h.height <= 0:
        raise _fail(name, f"corrupt {h.format} header (claims {h.width}x{h.height} pixels)")
    pixels = h.width * h.height
    size = f"{h.width}x{h.height} = {_mp(pixels)} MP"
    if pixels > max_pixels:
        raise _fail(name, f"image is {size}, over the {_mp(max_pixels)} MP limit (max_pixels={max_pixels})")
    if pixels > _OPENCV_MAX_PIXELS:
        raise _fail(
            name,
            f"image is {size}, over OpenCV's limit of {_OPENCV_MAX_PIXELS} pixels "
            "(set CV_IO_MAX_IMAGE_PIXELS before importing cv2 to raise it)",
        )


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.4g}"


def _jpeg_header(b: bytes, name: str) -> _Header:
    n, i = len(b), 2
    size: tuple[int, int] | None = None
    exif: list[bytes] = []
    while True:
        i = b.find(b"\xff", i)  # libjpeg also skips stray bytes between segments
        if i < 0:
            raise _fail(name, "truncated JPEG (the file ends before the image data)")
        while i < n and b[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            raise _fail(name, "truncated JPEG (the file ends before the image data)")
        marker = b[i]
        i += 1
        if marker == 0x00 or marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue  # stuffed byte or a marker without a length
        if marker == 0xD9:
            raise _fail(name, "corrupt JPEG (end-of-image marker before any image data)")
        (length,) = struct.unpack_from(">H", b, i)
        if length < 2:
            raise _fail(name, f"corrupt JPEG (segment 0xFF{marker:02X} has length {length})")
        if i + length > n:
            raise _fail(name, "truncated JPEG (the file ends inside its header)")
        if marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", b, i + 3)
            size = (width, height)
        elif marker == 0xE1 and b.startswith(b"Exif\x00\x00", i + 2):
            exif.append(b[i + 8 : i + length])
        elif marker == 0xDA:  # start of scan: entropy-coded data follows
            if size is None:
                raise _fail(name, "corrupt JPEG (image data before the frame header)")
            scan = i + length
            break
        i += length
    # In entropy-coded data a 0xFF byte is always stuffed (FF 00), so FF D9 is the real end marker.
    if b.rfind(b"\xff\xd9", scan) < 0:  # from the end: where the marker normally is
        raise _fail(name, "truncated JPEG (no end-of-image marker: the file was cut short)")
    plain = 1 if not exif else _plain_orientation(exif[0]) if len(exif) == 1 else None
    return _Header("JPEG", *size, plain_orientation=plain)


def _plain_orientation(tiff: bytes) -> int | None:
    """The orientation (1..8) in a JPEG's EXIF block (the TIFF structure after ``Exif\\0\\0``) whose
    first directory is in range and holds at most one Orientation entry, of type SHORT and count 1,
    with a value 1..8 (1 without one); ``None`` for anything else, which is left to OpenCV's reader."""
    if tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    e = "<" if tiff[:2] == b"II" else ">"
    found = []
    try:
        (offset,) = struct.unpack_from(e + "I", tiff, 4)
        (count,) = struct.unpack_from(e + "H", tiff, offset)
        for k in range(count):
            tag, kind, n = struct.unpack_from(e + "HHI", tiff, offset + 2 + 12 * k)
            if tag == _EXIF_ORIENTATION:
                if kind != 3 or n != 1:
                    return None
                found.append(struct.unpack_from(e + "H", tiff, offset + 10 + 12 * k)[0])
    except struct.error:
        return None
    if len(found) > 1:
        return None
    value = found[0] if found else 1
    return value if 1 <= value <= 8 else None


def _png_header(b: bytes, name: str) -> _Header:
    if b[12:16] != b"IHDR":
        raise _fail(name, "corrupt PNG (the first chunk is not IHDR)")
    width, height = struct.unpack_from(">II", b, 16)
    orientation, problem, i, n = 1, "", 8, len(b)
    while True:
        if i + 8 > n:
            raise _fail(name, "truncated PNG (no IEND chunk: the file was cut short)")
        length, kind = struct.unpack_from(">I4s", b, i)
        end = i + 12 + length
        if end > n:
            chunk = kind.decode("ascii") if kind.isalpha() else repr(kind)  # file bytes: no raw control chars
            raise _fail(name, f"truncated PNG (the {chunk} chunk runs past the end of the file)")
        if kind == b"eXIf":
            orientation, problem = _exif_orientation(b[i + 8 : i + 8 + length])
        elif kind == b"IEND":
            break
        i = end
    return _Header("PNG", width, height, orientation, problem)


def _gif_header(b: bytes, name: str) -> _Header:
    width, height = struct.unpack_from("<HH", b, 6)  # logical screen: the canvas every frame is on
    return _Header("GIF", width, height)


def _bmp_header(b: bytes, name: str) -> _Header:
    (dib,) = struct.unpack_from("<I", b, 14)
    if dib == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack_from("<HH", b, 18)
    else:
        width, height = struct.unpack_from("<ii", b, 18)
    return _Header("BMP", width, abs(height))  # negative height: rows stored top-down


def _webp_header(b: bytes, name: str) -> _Header:
    (riff_size,) = struct.unpack_from("<I", b, 4)
    if 8 + riff_size > len(b):
        raise _fail(name, f"truncated WebP (header says {8 + riff_size} bytes, got {len(b)})")
    kind = b[12:16]
    orientation, problem = 1, ""
    if kind == b"VP8X":
        width = 1 + int.from_bytes(b[24:27], "little")
        height = 1 + int.from_bytes(b[27:30], "little")
        i, end = 12, 8 + riff_size
        while i + 8 <= end:
            chunk, length = struct.unpack_from("<4sI", b, i)
            if chunk == b"EXIF":
                orientation, problem = _exif_orientation(b[i + 8 : i + 8 + length])
            i += 8 + length + (length & 1)
    elif kind == b"VP8 ":
        if b[23:26] != b"\x9d\x01\x2a":
            raise _fail(name, "corrupt WebP (bad VP8 start code)")
        w, h = struct.unpack_from("<HH", b, 26)
        width, height = w & 0x3FFF, h & 0x3FFF
    elif kind == b"VP8L":
        if b[20] != 0x2F:
            raise _fail(name, "corrupt WebP (bad VP8L signature)")
        (bits,) = struct.unpack_from("<I", b, 21)
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    else:
        raise _fail(name, f"corrupt WebP (unknown first chunk {kind!r})")
    return _Header("WebP", width, height, orientation, problem)


def _tiff_header(b: bytes, name: str) -> _Header:
    try:
        tags = _ifd0_tags(b, (256, 257))
    except ValueError as exc:  # the first directory lies past the end of the file
        raise _fail(name, f"truncated or corrupt TIFF ({exc})") from None
    if 256 not in tags or 257 not in tags:
        raise _fail(name, "corrupt TIFF (no image width/length in the first directory)")
    return _Header("TIFF", tags[256], tags[257])  # OpenCV (libtiff) applies TIFF orientation itself


def _ifd0_tags(b: bytes, wanted: tuple[int, ...]) -> dict[int, int]:
    """Integer tags of the first image directory of a TIFF structure (a TIFF file or EXIF data).

    Raises ValueError for a structure that is not TIFF or points outside ``b``, struct.error when
    ``b`` ends inside the directory.
    """
    if b[:2] not in (b"II", b"MM"):
        raise ValueError("not a TIFF structure")
    e = "<" if b[:2] == b"II" else ">"
    big = struct.unpack_from(e + "H", b, 2)[0] == 43
    if big:
        (offset,) = struct.unpack_from(e + "Q", b, 8)
        count_size, step, value_at = 8, 20, 12
    else:
        (offset,) = struct.unpack_from(e + "I", b, 4)
        count_size, step, value_at = 2, 12, 8
    if offset + count_size > len(b):  # checked before use: a 64-bit offset overflows struct's index
        raise ValueError(f"first directory at byte {offset} of {len(b)}")
    (count,) = struct.unpack_from(e + ("Q" if big else "H"), b, offset)
    start = offset + count_size
    codes = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8: stored inline, left-justified
    tags: dict[int, int] = {}
    for k in range(min(count, 4096)):
        entry = start + k * step
        tag, kind = struct.unpack_from(e + "HH", b, entry)
        if tag in wanted and kind in codes:
            (tags[tag],) = struct.unpack_from(e + codes[kind], b, entry + value_at)
    return tags


def _exif_orientation(payload: bytes) -> tuple[int, str]:
    """EXIF orientation (1..8) from an EXIF block, and why it was unreadable ('' if it was not).

    Absent or unreadable gives 1: a bad EXIF block is a warning, never an error.
    """
    if payload.startswith(b"Exif\x00\x00"):
        payload = payload[6:]
    try:
        value = _ifd0_tags(payload, (_EXIF_ORIENTATION,)).get(_EXIF_ORIENTATION, 1)
    except Exception as exc:  # untrusted bytes: whatever they raise, the image itself is still fine
        why = "it ends inside its directory" if isinstance(exc, struct.error) else str(exc) or type(exc).__name__
        return 1, f"unreadable EXIF block ignored, orientation not applied ({why})"
    return (value if 1 <= value <= 8 else 1), ""


_HEADER_PARSERS = {
    "JPEG": _jpeg_header,
    "PNG": _png_header,
    "GIF": _gif_header,
    "BMP": _bmp_header,
    "WebP": _webp_header,
    "TIFF": _tiff_header,
}


# --------------------------------------------------------------------------- pixels


def _bgr_to_rgb(arr: np.ndarray) -> np.ndarray:
    """OpenCV's BGR / BGRA channel order to RGB / RGBA (grey unchanged)."""
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        return arr
    if arr.dtype in (np.uint8, np.uint16, np.float32):
        code = cv2.COLOR_BGR2RGB if arr.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
        return cv2.cvtColor(arr, code)
    return arr[..., [2, 1, 0, 3][: arr.shape[2]]]


def _to_rgb_uint8(arr: np.ndarray, field: str) -> np.ndarray:
    """RGB(A) or grey of any accepted depth -> C-contiguous RGB uint8 (alpha over white)."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.dtype == np.uint8:
        pass
    elif arr.dtype == np.uint16:
        # round(v / 257) in integers: 65535 -> 255, exact for every v (257 is odd: no ties)
        arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InputError(f"{field}: contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -_HALF_LEVEL or hi > 1 + _HALF_LEVEL:
            raise InputError(
                f"{field}: float values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}] "
                "(divide 0-255 data by 255, or pass uint8)"
            )
        scaled = np.rint(arr.astype(np.float32, copy=False) * np.float32(255))
        arr = np.clip(scaled, 0, 255).astype(np.uint8)
    else:
        raise InputError(
            f"{field}: unsupported dtype {arr.dtype}; expected uint8, uint16 or float in [0, 1]"
            + (" (convert 0-255 integers with .astype(np.uint8))" if arr.dtype.kind in "iub" else "")
        )
    if arr.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_GRAY2RGB)
    if arr.shape[2] == 4:
        return _over_white(arr)
    return np.ascontiguousarray(arr)


def _over_white(rgba: np.ndarray) -> np.ndarray:
    """Composite straight (non-premultiplied) RGBA uint8 over white, rounding exactly."""
    alpha = rgba[..., 3:]
    if (alpha == 255).all():
        return np.ascontiguousarray(rgba[..., :3])
    # c*a/255 + 255*(1 - a/255) = 255 - (255 - c)*a/255; all terms fit in uint16
    ink = np.subtract(255, rgba[..., :3], dtype=np.uint16)
    ink *= alpha
    ink += 127
    ink //= 255
    return np.subtract(255, ink, dtype=np.uint16).astype(np.uint8)


def _apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels upright for an EXIF orientation value (2..8)."""
    if orientation == 2:
        return img[:, ::-1]  # mirrored
    if orientation == 3:
        return img[::-1, ::-1]  # rotated 180
    if orientation == 4:
        return img[::-1]  # mirrored vertically
    if orientation == 5:
        return img.swapaxes(0, 1)  # transposed
    if orientation == 6:
        return np.rot90(img, -1)  # stored rotated 90 counter-clockwise: turn clockwise
    if orientation == 7:
        return img[::-1, ::-1].swapaxes(0, 1)  # transverse
    if orientation == 8:
        return np.rot90(img, 1)
    return img
