"""Offline knowledge distillation: blend the training targets with trained teachers' predictions.

The teachers are ONNX expression models (shipped names or paths: a single network or an ensemble
built by ``scripts/build_ensemble.py``). Each one sees every training crop and its mirror image;
its probabilities are the softmax of the mirror-averaged logits at temperature 1 (the calibration
temperature in its spec is not applied: calibration sharpens, distillation wants the teacher's
softer view). Several teachers are averaged. The student's target is then

    (1 - weight) * own targets (FER+ vote distribution or one-hot) + weight * teacher probabilities

and the usual soft cross-entropy (with mixup/CutMix mixing the blended targets) trains on it.

The predictions depend only on the crops and the teachers, so they are computed once per run folder
and cached (``teacher.npz``, keyed by the teachers' sha256 and a hash of the crops); a resumed run
reads them back. Teachers must be trained on the training split only: distilling a teacher that saw
the validation or test images would leak them into the student.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..io.tables import atomic_open

log = logging.getLogger("openfer.train")

__all__ = ["blend_targets", "cached_teacher_probabilities", "load_teachers", "teacher_probabilities"]


def blend_targets(targets: np.ndarray, teacher: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * targets + weight * teacher`` as float32 rows summing to 1."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"teacher weight must be in [0, 1], got {weight}")
    targets = np.asarray(targets, dtype=np.float64)
    teacher = np.asarray(teacher, dtype=np.float64)
    if targets.shape != teacher.shape:
        raise ValueError(f"targets {targets.shape} and teacher predictions {teacher.shape} differ in shape")
    out = (1.0 - weight) * targets + weight * teacher
    return (out / out.sum(1, keepdims=True)).astype(np.float32)


def load_teachers(teachers: Sequence[str | Path], classes: Sequence[str], threads: int = 0) -> list:
    """The teachers as mirror-averaging :class:`~openfer.components.expression.ExpressionClassifier`
    objects; raises :class:`~openfer.errors.ModelError` for a missing or unreadable model and for
    one that lacks some of ``classes``."""
    from ..components.expression import ExpressionClassifier

    if not teachers:
        raise ModelError("no teacher given")
    out = []
    for name in teachers:
        clf = ExpressionClassifier(str(name), flip=True, threads=threads)
        missing = [c for c in classes if c not in clf.classes]
        if missing:
            raise ModelError(f"teacher {name} lacks the classes {missing} (it has {list(clf.classes)})")
        out.append(clf)
    return out


def teacher_probabilities(teachers: Sequence, crops: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Mean over ``teachers`` (from :func:`load_teachers`) of their mirror-averaged softmax
    (temperature 1) on ``crops`` (``(N, S, S)`` uint8, resized to each teacher's input size when
    needed), columns in the order of ``classes`` and renormalised over them."""
    import cv2

    from ..components.expression import postprocess, preprocess

    total = np.zeros((len(crops), len(classes)), dtype=np.float64)
    for clf in teachers:
        size = clf.spec.size
        x = crops
        if crops.shape[1:] != (size, size):
            x = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops])
        probs = np.zeros((len(x), len(clf.classes)))
        for i in range(0, len(x), 2048):  # bounded memory on large sets
            xb = x[i : i + 2048]
            lo = clf.model.run_batched(preprocess(xb, clf.spec, True), max_batch=512)[0]
            probs[i : i + len(xb)] = postprocess(lo, len(xb), True, 1.0)
        sub = probs[:, [clf.classes.index(c) for c in classes]]
        total += sub / np.maximum(sub.sum(1, keepdims=True), 1e-12)
        log.info("teacher %s: %d crops", clf.model.path, len(x))
    return (total / max(len(teachers), 1)).astype(np.float32)


def _fingerprint(teachers: Sequence, crops: np.ndarray, classes: Sequence[str]) -> str:
    h = hashlib.sha256()
    for clf in teachers:
        h.update(clf.model.sha256.encode())
    h.update(repr((crops.shape, tuple(classes))).encode())
    h.update(hashlib.sha256(np.ascontiguousarray(crops).tobytes()).digest())
    return h.hexdigest()


def cached_teacher_probabilities(
    path: Path, teachers: Sequence, crops: np.ndarray, classes: Sequence[str]
) -> np.ndarray:
    """:func:`teacher_probabilities`, stored in ``path`` and reused while the teachers (by sha256),
    crops and classes are the same."""
    key = _fingerprint(teachers, crops, classes)
    if path.is_file():
        with np.load(path) as d:
            if str(d["key"]) == key:
                return d["probs"]
        log.info("%s: teachers or data changed, recomputing", path)
    probs = teacher_probabilities(teachers, crops, classes)
    with atomic_open(path, "wb") as fh:
        np.savez(fh, probs=probs, key=np.array(key))
    return probs
