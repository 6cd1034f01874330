"""Occlusion-sensitivity saliency for the ONNX expression model (no gradients needed).

A grey patch slides over the aligned face crop; the saliency of a pixel is the mean drop of the
predicted class's probability over the patches covering it (Zeiler & Fergus 2014). Maps are in crop
coordinates; :func:`overlay` warps them back onto the photo with the crop's alignment matrix.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..core.align import cv2_matrix, invert_affine


def occlusion_windows(size: int, patch: int, stride: int) -> list[tuple[int, int]]:
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return [(y, x) for y in starts for x in starts]


def occlusion_saliency(
    classifier,
    crop: np.ndarray,
    target: int | None = None,  # noqa: ANN001
    patch: int = 10,
    stride: int = 4,
) -> np.ndarray:
    """``(S, S)`` map in [0, 1] for one ``(S, S)`` uint8 aligned crop (1 = most important)."""
    s = crop.shape[0]
    base = classifier.predict_crops(crop[None])[0]
    t = int(base.argmax()) if target is None else int(target)
    wins = occlusion_windows(s, patch, stride)
    batch = np.repeat(crop[None], len(wins), axis=0)
    fill = int(np.median(crop))
    for k, (y, x) in enumerate(wins):
        batch[k, y : y + patch, x : x + patch] = fill
    drop = np.concatenate(
        [base[t] - classifier.predict_crops(batch[i : i + 256])[:, t] for i in range(0, len(batch), 256)]
    )
    heat = np.zeros((s, s))
    count = np.zeros((s, s))
    for d, (y, x) in zip(drop, wins, strict=True):
        heat[y : y + patch, x : x + patch] += max(float(d), 0.0)
        count[y : y + patch, x : x + patch] += 1
    heat /= np.maximum(count, 1)
    heat = cv2.GaussianBlur(heat, (0, 0), sigmaX=patch / 3.0)  # soften the patch grid
    m = heat.max()
    return heat / m if m > 0 else heat


def overlay(image_rgb: np.ndarray, maps: np.ndarray, mats: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend each face's saliency map (crop coordinates, aligned by ``mats`` image -> crop) onto the
    image as a colour heat map; pixels outside every face are left untouched."""
    h, w = image_rgb.shape[:2]
    heat = np.zeros((h, w), np.float32)
    for m, a in zip(maps, mats, strict=True):
        inv = invert_affine(a)
        warped = cv2.warpAffine(
            m.astype(np.float32),
            cv2_matrix(inv),
            (w, h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        heat = np.maximum(heat, warped)
    color = cv2.cvtColor(
        cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB
    )
    weight = (alpha * np.clip(heat * 1.5, 0, 1))[..., None]
    return (image_rgb * (1 - weight) + color * weight).astype(np.uint8)


def saliency_image(analyzer, image_rgb: np.ndarray, faces) -> np.ndarray:  # noqa: ANN001
    """The photo with every face's occlusion-saliency map for its predicted class overlaid."""
    from ..components.expression import align_matrices, crop_faces

    clf = analyzer.expression
    mats = align_matrices(faces.landmarks, clf.spec)
    crops = crop_faces(image_rgb, mats, clf.spec.size)
    maps = [
        occlusion_saliency(clf, c, int(p.argmax())) for c, p in zip(crops, faces.expressions, strict=True)
    ]
    return overlay(image_rgb, np.stack(maps), mats)
