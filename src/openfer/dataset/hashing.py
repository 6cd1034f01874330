"""Image fingerprints for duplicate search: exact (bytes, pixels) and perceptual (DCT pHash), pure numpy/OpenCV.

The perceptual hash is a 64-bit DCT hash after Zauner (2010): the grey image resized to 32x32 (OpenCV area
interpolation), its 2-D DCT (OpenCV's orthonormal ``cv2.dct``), the 8x8 lowest frequencies, each bit set
where a coefficient is above their median. The resize and DCT differ from the ``imagehash`` package's
``phash``, so its hashes are not interchangeable with imagehash's. Brightness shifts and re-encoding change few bits;
different faces differ in about half of them. Two images are near-duplicates when their hashes are within
:data:`NEAR_DISTANCE` bits (Hamming distance), a threshold chosen on FER+ (``docs/datasets/README.md``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

HASH_SIZE = 8  # 8x8 = 64 bits
DCT_SIZE = 32
NEAR_DISTANCE = 4  # bits of 64
_CHUNK = 512


def phash(gray: np.ndarray) -> np.uint64:
    """64-bit DCT perceptual hash of a 2-D uint8 image (bit 63 = coefficient (0, 0))."""
    g = np.asarray(gray)
    if g.ndim != 2 or g.size == 0:
        raise ValueError(f"phash: expected a non-empty 2-D grey image, got shape {g.shape}")
    small = cv2.resize(g.astype(np.float32), (DCT_SIZE, DCT_SIZE), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:HASH_SIZE, :HASH_SIZE]
    bits = (low > np.median(low)).reshape(-1)
    return np.uint64(int("".join("1" if b else "0" for b in bits), 2))


def pixel_digest(pixels: np.ndarray) -> str:
    """sha256 of decoded pixels with their shape (equal for two files that decode to the same image)."""
    a = np.ascontiguousarray(pixels)
    return hashlib.sha256(repr(a.shape).encode() + a.tobytes()).hexdigest()


def popcount64(x: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64."""
    x = np.asarray(x, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int64)
    b = x.view(np.uint8).reshape(*x.shape, 8)
    return np.unpackbits(b, axis=-1).sum(-1).astype(np.int64)


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bitwise Hamming distance between 64-bit hashes (broadcasting)."""
    return popcount64(np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)))


@dataclass(frozen=True)
class HashPairs:
    """Pairs ``(i, j)``, ``i < j``, of hashes within ``max_distance`` bits, and each hash's nearest
    other hash: ``nearest[i]`` its distance (65 when there is only one hash)."""

    i: np.ndarray  # (P,) int64
    j: np.ndarray  # (P,) int64
    distance: np.ndarray  # (P,) int64
    nearest: np.ndarray  # (N,) int64
    max_distance: int


def near_pairs(hashes: np.ndarray, max_distance: int = NEAR_DISTANCE) -> HashPairs:
    """All pairs of ``hashes`` within ``max_distance`` bits (exhaustive, in chunks: 36k hashes take
    a few seconds), plus the nearest-neighbour distance of every hash."""
    h = np.asarray(hashes, dtype=np.uint64).reshape(-1)
    n = len(h)
    nearest = np.full(n, 65, dtype=np.int64)
    ii, jj, dd = [], [], []
    for s in range(0, n, _CHUNK):
        d = hamming(h[s : s + _CHUNK, None], h[None, :])  # (c, n)
        rows = np.arange(s, min(s + _CHUNK, n))
        d[np.arange(len(rows)), rows] = 65  # not oneself
        nearest[rows] = d.min(axis=1) if n > 1 else 65
        r, c = np.nonzero(d <= max_distance)
        keep = rows[r] < c
        ii.append(rows[r][keep])
        jj.append(c[keep])
        dd.append(d[r[keep], c[keep]])
    cat = (lambda xs: np.concatenate(xs).astype(np.int64)) if ii else (lambda xs: np.zeros(0, np.int64))
    return HashPairs(cat(ii), cat(jj), cat(dd), nearest, int(max_distance))


def equal_groups(keys: list[str]) -> list[list[int]]:
    """Indices of equal keys, groups of two or more, in order of first appearance."""
    where: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        where.setdefault(k, []).append(i)
    return [g for g in where.values() if len(g) > 1]
