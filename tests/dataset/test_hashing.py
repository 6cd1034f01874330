"""Perceptual hash and the pair search on real FER+ crops (tests/assets/dataset/ferplus_mini)."""

from pathlib import Path

import cv2
import numpy as np

from openfer.dataset.hashing import NEAR_DISTANCE, hamming, near_pairs, phash

MINI = Path(__file__).parents[1] / "assets" / "dataset" / "ferplus_mini"


def _grey(name: str) -> np.ndarray:
    img = cv2.imread(str(next(MINI.glob(f"*/{name}"))), cv2.IMREAD_GRAYSCALE)
    assert img is not None
    return img


def test_phash_survives_brightness_and_jpeg_but_separates_faces():
    a = _grey("fer0002461.png")
    shifted = np.clip(a.astype(np.int16) + 40, 0, 255).astype(np.uint8)
    jpeg = cv2.imdecode(cv2.imencode(".jpg", a, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], cv2.IMREAD_GRAYSCALE)
    assert hamming(phash(a), phash(shifted)) <= NEAR_DISTANCE
    assert hamming(phash(a), phash(jpeg)) <= NEAR_DISTANCE
    others = [p for p in sorted(MINI.glob("FER2013Train/*.png")) if p.name != "fer0002461.png"]
    assert len(others) >= 10
    d = [int(hamming(phash(a), phash(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)))) for p in others]
    assert min(d) > NEAR_DISTANCE  # unrelated faces are far apart


def test_near_pairs_matches_brute_force():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, size=40, dtype=np.uint64)
    flips = np.uint64(1) << rng.integers(0, 64, size=10).astype(np.uint64)
    h = np.concatenate([base, base[:10] ^ flips])  # 10 planted pairs at distance 1
    pairs = near_pairs(h, 3)
    brute = {(i, j) for i in range(len(h)) for j in range(i + 1, len(h)) if hamming(h[i], h[j]) <= 3}
    assert set(zip(pairs.i.tolist(), pairs.j.tolist(), strict=True)) == brute
    assert len(brute) >= 10
    full = hamming(h[:, None], h[None, :]) + np.eye(len(h), dtype=np.int64) * 100
    np.testing.assert_array_equal(pairs.nearest, full.min(1))
