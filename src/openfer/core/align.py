"""Rotated square regions of interest, crop matrices and point back-projection.

Coordinates are continuous pixels: pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``, so its centre is at
``(j + 0.5, i + 0.5)`` (as MediaPipe's normalised coordinates times the image size). OpenCV warps index
pixel centres at integers; :func:`cv2_matrix` converts a matrix for them.

A region of interest (ROI) is a square of side ``side`` pixels centred at ``center`` and rotated by
``angle`` radians (image coordinates, y down: angle 0 is upright, positive turns the crop's x axis
towards +y). A crop of size ``S`` maps crop point ``(u, v)`` to image point
``center + R(angle) @ ((u - S/2) * side / S, (v - S/2) * side / S)``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def normalize_angle(a: np.ndarray | float) -> np.ndarray:
    """Wrap radians to [-pi, pi)."""
    return (np.asarray(a, dtype=np.float64) + np.pi) % (2 * np.pi) - np.pi


def roi_matrices(
    center: np.ndarray, side: np.ndarray, angle: np.ndarray, out_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Affine matrices for ``N`` ROIs: ``fwd (N, 2, 3)`` image -> crop and ``inv (N, 2, 3)`` crop -> image."""
    center = np.asarray(center, dtype=np.float64).reshape(-1, 2)
    side = np.asarray(side, dtype=np.float64).reshape(-1)
    angle = np.asarray(angle, dtype=np.float64).reshape(-1)
    s = side / out_size
    c, si = np.cos(angle), np.sin(angle)
    inv = np.empty((len(side), 2, 3))
    inv[:, 0, 0], inv[:, 0, 1] = c * s, -si * s
    inv[:, 1, 0], inv[:, 1, 1] = si * s, c * s
    off = -out_size / 2.0
    inv[:, 0, 2] = center[:, 0] + inv[:, 0, 0] * off + inv[:, 0, 1] * off
    inv[:, 1, 2] = center[:, 1] + inv[:, 1, 0] * off + inv[:, 1, 1] * off
    # the forward matrix in closed form: R(-angle) / s, then the translation that sends the
    # centre to the crop's centre (np.linalg.inv's answer to rounding; without its call)
    fwd = np.empty_like(inv)
    fwd[:, 0, 0], fwd[:, 0, 1] = c / s, si / s
    fwd[:, 1, 0], fwd[:, 1, 1] = -si / s, c / s
    fwd[:, 0, 2] = -(fwd[:, 0, 0] * inv[:, 0, 2] + fwd[:, 0, 1] * inv[:, 1, 2])
    fwd[:, 1, 2] = -(fwd[:, 1, 0] * inv[:, 0, 2] + fwd[:, 1, 1] * inv[:, 1, 2])
    return fwd, inv


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Invert ``(N, 2, 3)`` (or ``(2, 3)``) affine matrices."""
    m = np.asarray(m, dtype=np.float64)
    single = m.ndim == 2
    if single and m[0, 1] == 0.0 and m[1, 0] == 0.0 and m[0, 0] != 0.0 and m[1, 1] != 0.0:
        # axis-aligned (the detector's windows): the same numbers np.linalg.inv and the product below
        # give, without their ~20 us
        sx, sy = 1.0 / m[0, 0], 1.0 / m[1, 1]
        return np.array([[sx, 0.0, -(sx * m[0, 2] + 0.0 * m[1, 2])], [0.0, sy, -(0.0 * m[0, 2] + sy * m[1, 2])]])
    m = m.reshape(-1, 2, 3)
    a = m[:, :, :2]
    ainv = np.linalg.inv(a)
    t = -np.einsum("nij,nj->ni", ainv, m[:, :, 2])
    out = np.concatenate([ainv, t[:, :, None]], axis=2)
    return out[0] if single else out


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply ``(N, 2, 3)`` matrices to ``(N, K, 2)`` points (or a ``(2, 3)`` matrix to ``(K, 2)``)."""
    m = np.asarray(m, dtype=np.float64)
    pts = np.asarray(pts, dtype=np.float64)
    if m.ndim == 2:
        return pts @ m[:, :2].T + m[:, 2]
    return np.einsum("nij,nkj->nki", m[:, :, :2], pts) + m[:, None, :, 2]


def cv2_matrix(m: np.ndarray) -> np.ndarray:
    """Convert a ``(2, 3)`` continuous-coordinate matrix to OpenCV's pixel-index convention."""
    m = np.asarray(m, dtype=np.float64)
    out = m.copy()
    out[:, 2] = m[:, 2] + m[:, :2].sum(1) * 0.5 - 0.5
    return out


def crop_rois(
    image: np.ndarray, fwd: np.ndarray, out_size: int, border: int = cv2.BORDER_CONSTANT
) -> np.ndarray:
    """Warp each ROI of ``image`` into an ``out_size`` square: ``(N, S, S, C)`` (same dtype)."""
    mats = np.asarray(fwd).reshape(-1, 2, 3)
    out = np.empty((len(mats), out_size, out_size) + image.shape[2:], dtype=image.dtype)
    for i, m in enumerate(mats):  # warped in place (no per-ROI array and stack)
        cv2.warpAffine(image, cv2_matrix(m), (out_size, out_size), dst=out[i], flags=cv2.INTER_LINEAR,
                       borderMode=border)
    return out


def rois_from_keypoints(
    p_start: np.ndarray, p_end: np.ndarray, center: np.ndarray, extent: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROI whose x axis follows ``p_start -> p_end`` (e.g. right eye -> left eye), square side
    ``extent * scale`` around ``center`` (MediaPipe's DetectionsToRects + RectTransformation
    with ``square_long``)."""
    d = np.asarray(p_end, dtype=np.float64) - np.asarray(p_start, dtype=np.float64)
    angle = normalize_angle(np.arctan2(d[..., 1], d[..., 0]))
    return np.asarray(center, dtype=np.float64), np.asarray(extent, dtype=np.float64) * scale, angle


def rotated_extent(points: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre ``(N, 2)`` and longer side ``(N,)`` of the box around ``(N, K, 2)`` points in the frame
    rotated by ``angle`` (so the box follows the face's roll)."""
    pts = np.asarray(points, dtype=np.float64)
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    u = pts[..., 0] * c + pts[..., 1] * s
    v = -pts[..., 0] * s + pts[..., 1] * c
    umid = (u.min(1) + u.max(1)) / 2
    vmid = (v.min(1) + v.max(1)) / 2
    center = np.stack([umid * c[:, 0] - vmid * s[:, 0], umid * s[:, 0] + vmid * c[:, 0]], -1)
    side = np.maximum(u.max(1) - u.min(1), v.max(1) - v.min(1))
    return center, side


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Least-squares similarity ``dst ~ s * R @ src + t`` between ``(K, D)`` point sets (Umeyama 1991),
    reflections excluded -> ``(R (D, D), s, t (D,))``."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    # on the hot path (head pose, AU frontalization and the expression crop, per face and frame): sums
    # divided by the count (what .mean computes, without its Python layer), the determinants' signs
    # in closed form, the sign applied to u's columns (what u @ diag(sign) computes) only where it flips
    n = len(src)
    mu_s, mu_d = src.sum(0) / n, dst.sum(0) / n
    xs, xd = src - mu_s, dst - mu_d
    var_s = (xs**2).sum() / n
    if var_s <= 0:
        raise ValueError("umeyama: source points are degenerate")
    cov = xd.T @ xs / n
    if cov.shape == (2, 2):
        # in the plane, the best rotation in closed form: its angle is atan2(c10 - c01, c00 + c11) and
        # the scale's numerator the hypotenuse (= d1 + d2, or d1 - d2 where det < 0: Umeyama's
        # sign-corrected trace), without the SVD's LAPACK call
        (c00, c01), (c10, c11) = cov.tolist()
        a, b = c00 + c11, c10 - c01
        h = math.hypot(a, b)
        if h > 0:
            r = np.array([[a / h, -b / h], [b / h, a / h]])
            scale = h / float(var_s)
            return r, scale, mu_d - scale * r @ mu_s
    u, d, vt = np.linalg.svd(cov)
    if _det_sign(u) * _det_sign(vt) < 0:  # a reflection: flip the last singular direction
        sign = np.ones(src.shape[1])
        sign[-1] = -1
        u, d = u * sign, d * sign
    r = u @ vt
    scale = float(d.sum() / var_s)
    return r, scale, mu_d - scale * r @ mu_s


def _det_sign(m: np.ndarray) -> float:
    """The sign of the determinant of an orthogonal matrix (+-1: far from 0, so the closed form's
    rounding cannot flip it); 2x2 and 3x3 in closed form on Python floats, without LAPACK's call
    (in the pipeline, between model runs, ``np.linalg.det`` took ~30 us a call: its code is cold)."""
    if m.shape == (3, 3):
        (a, b, c), (d, e, f), (g, h, i) = m.tolist()
        det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    elif m.shape == (2, 2):
        (a, b), (c, d) = m.tolist()
        det = a * d - b * c
    else:
        det = float(np.linalg.det(m))
    return 1.0 if det >= 0 else -1.0


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2D :func:`umeyama` similarity mapping ``src (K, 2)`` onto ``dst (K, 2)`` as a ``(2, 3)`` matrix."""
    r, scale, t = umeyama(src, dst)
    return np.concatenate([scale * r, t[:, None]], axis=1)
