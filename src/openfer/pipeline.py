"""The analysis pipeline: image -> faces -> landmarks -> head pose -> expression -> FrameResult."""

from __future__ import annotations

import difflib
import logging
import math
import numbers
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import NoReturn

import numpy as np

from .components.au import AU_NAMES, estimate_aus
from .components.blendshapes import BLENDSHAPE_NAMES, Blendshapes
from .components.detector import Detections, FaceDetector
from .components.expression import ExpressionClassifier
from .components.landmarks import FaceMesh, rois_from_detections, rois_from_landmarks
from .components.pose import estimate_pose, rigid_fits
from .components.valence_arousal import ValenceArousalRegressor
from .core.affect import valence_arousal
from .core.au import pspi
from .core.boxes import greedy_pairs, iou_matrix
from .core.reasons import explain
from .errors import InputError, OpenFerError
from .io.images import DEFAULT_MAX_PIXELS, as_rgb_array, read_image
from .runtime.litert import RUNTIMES
from .types import Faces, FrameResult

log = logging.getLogger("openfer")


@dataclass(frozen=True)
class AnalyzerOptions:
    """All knobs of :class:`Analyzer`, with their defaults (one source of defaults for API and CLI).

    Attributes:
        min_face: smallest face (pixels, roughly the face height) searched for with tiling;
            ``None``: one detector pass over the whole image (fast, faces > ~15% of the image side).
        detector: the face detector: ``"blazeface_full"`` (MediaPipe's dense full-range BlazeFace,
            192x192, the photo default: the whole image, a context window and dense passes over the
            scaled image for small faces, 45/45 faces of the fixture mosaic from 25 px, ``docs/speed.md``
            "Dense detection passes") or ``"blazeface_short"`` (short range, 128x128,
            halving tiles: ``fast`` and ``video``, whose one pass or tracking sees large faces);
            or the path of a BlazeFace ``.onnx`` of either input size.
        search_detector: a second detector for the small-face search (down to ``min_face``), where
            ``detector`` is for the whole-image passes; ``None``: ``detector`` does both. The search
            then runs ``detector`` on the whole image and ``search_detector``'s full search
            (:meth:`Analyzer.search_faces`): a face both find is located by the search's box and
            reported with ``detector``'s. The ``video`` preset: whole-frame passes on the
            short-range model (2 ms), its periodic search on the dense full-range one (on a 1920x1080
            frame 280 ms against 575 ms for short-range halving tiles; the same ~32 ms at 640x360).
        detect_threshold: detector confidence to keep a candidate face.
        landmark_threshold: face-mesh presence score to accept a face; ``None``: the mesh's own
            (:data:`LANDMARK_THRESHOLDS`). Face Mesh v1: real faces score >= 0.99 (299 of 300 largest
            faces in photos_dev), a cartoon title card that fools the detector 0.57-0.74, so 0.9.
            Face Mesh v2's score is less saturated: the real faces of the 12 labelled fixture photos
            score 0.675-0.996, the v1-accepted faces of the first 150 photos_dev photos >= 0.92;
            the detector's false hits on mouths that v1 rejects score 0.01-0.73 under v2 and lie
            inside the real face, where the duplicate rule removes them
            (``scripts/compare_facemesh.py``, ``docs/models/facemesh_v2.json``). So 0.5.
        mesh_passes: Face Mesh passes per face in photos: the first on the detector's ROI, each
            further one on the ROI of the previous pass's landmarks (what video tracking does from
            frame to frame). The first pass's landmarks depend on the detector's box: on
            ``multi_face.jpg`` one face's AU6 reads 2.75 from the full-range detector's box and
            0.62 from the short-range one's, 2.28 and 2.50 after a second pass, 2.27 and 2.28 after a
            third; on photos_dev a second pass halves the landmark difference between the two
            detectors (``benchmarks/detector_agreement.py``). So 2 (``fast``: 1). A pass whose
            presence score falls below ``landmark_threshold`` keeps the previous landmarks.
        mesh: the face-landmark model: ``"facemesh_v2"`` (MediaPipe Face Mesh v2, 478 points with the
            iris in one pass) or ``"facemesh"`` (v1, 468 points, plus Iris when ``iris``).
        iris: with ``mesh="facemesh"``, add the 10 iris landmarks (478 points instead of 468); v2
            always has them.
        blendshapes: MediaPipe's 52 blendshapes per face (needs 478 landmarks; 2.5-3.3 ms a face
            on the 2-core benchmark machine).
        expression_model: shipped model name or path of an openfer ``.onnx`` expression model:
            ``"fernet_s"`` (the default) or ``"fernet_s_int8"`` (its int8 quantization, the ``fast`` and
            ``video`` presets' choice: FER+ test accuracy 87.22% against 87.31%, 99.3% of predictions
            the same, 0.54x the model's time; ``cards/fernet_s_int8.md``).
        flip: average the expression over the face and its mirror image.
        threads: intra-op threads per model (0: the runtime's default).
        runtime: ``"auto"`` (the default): the MediaPipe models that ship their original ``.tflite``
            (detectors, Face Mesh v2, blendshapes) run on LiteRT when ``ai-edge-litert`` is installed
            (``pip install "openfer[litert]"``; Face Mesh v2 4x faster than on ONNX Runtime,
            ``docs/speed.md``), everything else on ONNX Runtime; ``"onnxruntime"``: every model on ONNX
            Runtime; ``"litert"``: like ``"auto"`` but an error when LiteRT is not installed. The two
            runtimes agree within ``docs/models/litert_parity.json``.
        max_faces: keep at most this many faces (largest first); ``None``: all.
        aus: estimate action-unit intensities from the mesh (pure numpy, cheap; see
            ``openfer.core.au`` for the definitions and their validation).
        explain: add valence/arousal and a short evidence-based reason per face.
        unknown_threshold: with an expression model that has an open-set head, a face whose
            ``unknown_score`` (a percentile of known validation faces, 0-1) is above this gets the
            open label ``"unknown"``; 0.95 keeps 95% of known-expression faces. ``None``: never.
        va_model: shipped name or path of an openfer valence/arousal ``.onnx`` (trained with
            ``openfer train DATA.csv --task va``): ``Faces.valence_arousal`` then comes from it, on the
            same aligned crop as the expression model (``va_source == "model"``, also without
            ``explain``). ``None``: valence/arousal derived from the expression probabilities
            (``openfer.core.affect``, ``va_source == "derived"``), when ``explain``.
        max_pixels: largest image (width x height) :meth:`Analyzer.analyze` accepts, as a file (checked
            from its header before decoding) or as an array (checked before any conversion); larger
            ones are an :class:`~openfer.errors.InputError`, never silently downscaled. Default 100 MP.
    """

    min_face: float | None = 30.0
    detector: str = "blazeface_full"
    search_detector: str | None = None
    detect_threshold: float = 0.5
    landmark_threshold: float | None = None
    mesh: str = "facemesh_v2"
    mesh_passes: int = 2
    iris: bool = True
    blendshapes: bool = True
    expression_model: str = "fernet_s"
    flip: bool = True
    threads: int = 0
    runtime: str = "auto"
    max_faces: int | None = None
    aus: bool = True
    explain: bool = True
    unknown_threshold: float | None = 0.95
    va_model: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        """Check every field (type, range, model name): an :class:`InputError` naming the field."""
        for name in ("iris", "blendshapes", "flip", "aus", "explain"):
            if not isinstance(getattr(self, name), bool):
                _bad(name, "True or False", getattr(self, name))
        _number(self, "min_face", lo=0, lo_open=True, optional=True)
        _number(self, "detect_threshold", lo=0, hi=1, lo_open=True)
        _number(self, "landmark_threshold", lo=0, hi=1, optional=True)
        _number(self, "unknown_threshold", lo=0, hi=1, optional=True)
        _integer(self, "threads", lo=0)
        _integer(self, "mesh_passes", lo=1)
        _integer(self, "max_faces", lo=1, optional=True)
        _integer(self, "max_pixels", lo=1)
        if self.runtime not in RUNTIMES:
            _bad("runtime", " or ".join(map(repr, RUNTIMES)), self.runtime)
        if self.mesh not in LANDMARK_THRESHOLDS:
            _bad("mesh", " or ".join(map(repr, LANDMARK_THRESHOLDS)), self.mesh)
        _model_name("detector", self.detector, "face detection")
        if self.search_detector is not None:
            _model_name("search_detector", self.search_detector, "face detection")
        _model_name("expression_model", self.expression_model, "expression")
        if self.va_model is not None:
            _model_name("va_model", self.va_model, "valence")


def _bad(field: str, expected: str, value: object) -> NoReturn:
    raise InputError(f"AnalyzerOptions.{field}: expected {expected}, got {value!r}")


def _number(o: AnalyzerOptions, field: str, lo: float, hi: float | None = None, lo_open: bool = False,
            optional: bool = False) -> None:
    v = getattr(o, field)
    if v is None and optional:
        return
    rng = ("> " if lo_open else ">= ") + f"{lo:g}" if hi is None else f"in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    what = f"a number {rng}" + (" or None" if optional else "")
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        _bad(field, what, v)
    if v < lo or (lo_open and v == lo) or (hi is not None and v > hi):
        _bad(field, what, v)


def _integer(o: AnalyzerOptions, field: str, lo: int, optional: bool = False) -> None:
    v = getattr(o, field)
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
        _bad(field, f"an integer >= {lo}" + (" or None" if optional else ""), v)


def _model_name(field: str, value: object, task: str) -> None:
    """A shipped model of ``task`` (by name) or the path of an existing ``.onnx`` file."""
    from .runtime.onnx import list_models

    if isinstance(value, Path):
        value = str(value)
    shipped = [m.name for m in list_models() if m.task.startswith(task)]
    expected = (f"a shipped model ({', '.join(shipped)}) or" if shipped else "the path of") + " an .onnx file"
    if not isinstance(value, str) or not value:
        _bad(field, expected, value)
    if value in shipped:
        return
    if value.endswith(".onnx"):
        if not Path(value).is_file():
            raise InputError(f"AnalyzerOptions.{field}: {value}: model file not found")
        return
    _bad(field, expected, value)


LANDMARK_THRESHOLDS: dict[str, float] = {"facemesh": 0.9, "facemesh_v2": 0.5}
SEARCH_SAME_IOU = 0.3  # a search detection is a face the whole-image pass found (Analyzer.search_faces)
SEARCH_FRAME_IOU = 0.5  # ...and is framed by the whole pass's box from this IoU (below: that box is loose)
REFINE_MIN = 0.01  # Face Mesh v2 presence from which a rejected face gets a refined ROI (Analyzer._refine)
REFINE_PASSES = 2
REFINED_ACCEPT = 0.9  # presence a refined face needs

PRESETS: dict[str, AnalyzerOptions] = {
    "default": AnalyzerOptions(),
    # one detector pass, no iris, no mirror averaging, the int8 expression model (FER+ test -0.10
    # points, 0.54x the time; cards/fernet_s_int8.md): for large faces (webcam, portraits)
    "fast": AnalyzerOptions(min_face=None, detector="blazeface_short", mesh_passes=1, iris=False, flip=False,
                            expression_model="fernet_s_int8"),
    # the default of VideoAnalyzer: no iris, no mirror averaging, the int8 expression model, one thread
    # per model (the video pipeline runs the face mesh and the expression model side by side on two
    # cores); min_face applies to its periodic full searches, which add the dense full-range detector's
    # faces to the short-range whole-frame pass
    "video": AnalyzerOptions(detector="blazeface_short", search_detector="blazeface_full", iris=False, flip=False,
                             threads=1, expression_model="fernet_s_int8"),
}


def resolve_options(preset: str | AnalyzerOptions = "default", **overrides: object) -> AnalyzerOptions:
    """The :class:`AnalyzerOptions` of a preset name (or of given options) with ``overrides`` applied,
    validated; an unknown preset or field is an :class:`InputError` naming it."""
    if isinstance(preset, AnalyzerOptions):
        base = preset
    elif isinstance(preset, str) and preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise InputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)} or pass AnalyzerOptions")
    known = {f.name for f in fields(AnalyzerOptions)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(f"unknown Analyzer option {unknown[0]!r}{hint}; known: {', '.join(sorted(known))}")
    return replace(base, **overrides)  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class Located:
    """Faces after the face mesh, before expression: what :meth:`Analyzer.locate` hands to
    :meth:`Analyzer.describe`. Rows are the kept faces; ``index`` is each one's ROI index."""

    boxes: np.ndarray  # (F, 4) float64
    scores: np.ndarray  # (F,) detector scores, NaN without a detector
    keypoints: np.ndarray  # (F, 6, 2)
    landmarks: np.ndarray  # (F, K, 3) as the face mesh returns them (Faces stores float32)
    landmark_scores: np.ndarray  # (F,)
    index: np.ndarray  # (F,) int64 ROI index of each face
    timings: dict[str, float]
    # (F, 52) when the locate stage already ran the blendshape model (video does, to balance its two
    # pipeline stages); None: describe runs it
    blendshapes: np.ndarray | None = None


class Analyzer:
    """Analyse images: every face with box, keypoints, 478 landmarks, head pose and expression.

    >>> analyzer = Analyzer()                      # doctest: +SKIP
    >>> result = analyzer.analyze("photo.jpg")     # doctest: +SKIP
    >>> result.faces.labels                        # doctest: +SKIP
    """

    va: ValenceArousalRegressor | None = None  # set from ``options.va_model``

    def __init__(self, preset: str | AnalyzerOptions = "default", **overrides: object) -> None:
        """``preset``: a :data:`PRESETS` name or an :class:`AnalyzerOptions` (e.g. one sent to a worker
        process); ``overrides`` replace some of its fields (validated like the options themselves)."""
        self.options = resolve_options(preset, **overrides)
        o = self.options
        self.detector = FaceDetector(
            min_face=o.min_face, score_threshold=o.detect_threshold, threads=o.threads, model=o.detector,
            runtime=o.runtime,
        )
        self.search = self.detector  # the small-face search's detector (AnalyzerOptions.search_detector)
        if o.search_detector is not None and o.search_detector != o.detector and o.min_face is not None:
            self.search = FaceDetector(
                min_face=o.min_face, score_threshold=o.detect_threshold, threads=o.threads,
                model=o.search_detector, runtime=o.runtime,
            )
        self.mesh = FaceMesh(iris=o.iris, threads=o.threads, model=o.mesh, runtime=o.runtime)
        self.blendshapes = (
            Blendshapes(threads=o.threads, runtime=o.runtime) if o.blendshapes and self.mesh.num_landmarks == 478 else None
        )
        self.expression = ExpressionClassifier(o.expression_model, flip=o.flip, threads=o.threads, runtime=o.runtime)
        self.va = (
            None
            if o.va_model is None
            else ValenceArousalRegressor(o.va_model, flip=o.flip, threads=o.threads)
        )

    @property
    def runtimes(self) -> dict[str, str]:
        """Which runtime runs each model (``"litert"`` or ``"onnxruntime"``), by component, as
        ``runtime="auto"`` resolved it: what a record of the run should state."""
        parts = {"detector": self.detector, "search_detector": self.search if self.search is not self.detector else None,
                 "mesh": self.mesh, "blendshapes": self.blendshapes, "expression": self.expression,
                 "valence_arousal": self.va}
        return {k: c.model.runtime for k, c in parts.items() if c is not None}

    @classmethod
    def from_options(cls, options: AnalyzerOptions) -> Analyzer:
        """The analyzer of ``options`` (what a worker or a Ray actor builds from pickled options)."""
        return cls(options)

    @classmethod
    def from_components(
        cls,
        options: AnalyzerOptions,
        *,
        detector: FaceDetector,
        mesh: FaceMesh,
        expression: ExpressionClassifier,
        blendshapes: Blendshapes | None = None,
        va: ValenceArousalRegressor | None = None,
        search: FaceDetector | None = None,
    ) -> Analyzer:
        """An analyzer over components built elsewhere (shared sessions, other execution providers,
        stand-ins in tests); ``options`` supplies everything else (thresholds, ``aus``, ``explain``...).
        ``search``: the small-face search's detector (``None``: ``detector``)."""
        self = cls.__new__(cls)
        self.options = resolve_options(options)
        self.detector, self.mesh, self.expression = detector, mesh, expression
        self.search = detector if search is None else search
        self.blendshapes, self.va = blendshapes, va
        return self

    @property
    def classes(self) -> tuple[str, ...]:
        return self.expression.classes

    @property
    def landmark_threshold(self) -> float:
        """The presence score a face needs: the option, or the mesh's default."""
        t = self.options.landmark_threshold
        return LANDMARK_THRESHOLDS[self.mesh.model_name] if t is None else float(t)

    def analyze(self, image: str | Path | np.ndarray, source: str | None = None) -> FrameResult:
        """Analyse one image: a path or an RGB (or gray/RGBA) array. No face -> empty ``faces``."""
        if isinstance(image, (str, Path)):
            source = str(image) if source is None else source
            rgb = read_image(image, max_pixels=self.options.max_pixels)
        else:
            rgb = as_rgb_array(image, max_pixels=self.options.max_pixels)
        return self.analyze_rgb(rgb, source=source)

    def search_faces(self, rgb: np.ndarray) -> tuple[Detections, np.ndarray]:
        """The full face search of an RGB image and, per face, the box to frame it by ``(N, 4)``.

        Without a separate :attr:`search` detector (``AnalyzerOptions.search_detector``) that is the
        detector's search, framed by its own boxes. With one: the search's faces, plus the faces
        only the detector's whole-image pass finds; a face both find (IoU >= :data:`SEARCH_SAME_IOU`)
        is located by the search's box (the short-range model's whole-frame box of a face of ~10% of
        the frame side is loose: in the five-face pan, 180 px for a 106 px face, and a face mesh
        started from it can slide onto the neighbour). Where the two boxes agree (IoU >=
        :data:`SEARCH_FRAME_IOU`) the face is framed by the whole-image pass's box: the box reported
        for it (:meth:`analyze_rgb`) and, in video, the one its output box is kept relative to, so a
        face keeps one detector's framing from a whole-frame pass to a search; where they do not, the
        whole-image pass's box is the loose one and the search's frames it."""
        if self.search is self.detector:
            det = self.detector(rgb)
            return det, np.asarray(det.boxes, dtype=np.float64).reshape(-1, 4)
        whole, found = self.detector(rgb, whole_only=True), self.search(rgb)
        wb = np.asarray(whole.boxes, dtype=np.float64).reshape(-1, 4)
        fb = np.asarray(found.boxes, dtype=np.float64).reshape(-1, 4)
        frame = fb.copy()
        only = np.ones(len(wb), bool)  # whole-pass faces the search lacks
        if len(wb) and len(fb):
            iou = iou_matrix(fb, wb)
            for r, c in greedy_pairs(iou, iou >= SEARCH_SAME_IOU, descending=True):
                only[c] = False
                if iou[r, c] >= SEARCH_FRAME_IOU:  # framed by the whole pass where the two boxes agree
                    frame[r] = wb[c]
        det = Detections(
            np.concatenate([fb, wb[only]]),
            np.concatenate([np.asarray(found.scores, dtype=np.float64).reshape(-1),
                            np.asarray(whole.scores, dtype=np.float64).reshape(-1)[only]]),
            np.concatenate([np.asarray(found.keypoints, dtype=np.float64).reshape(-1, 6, 2),
                            np.asarray(whole.keypoints, dtype=np.float64).reshape(-1, 6, 2)[only]]),
        )
        return det, np.concatenate([frame, wb[only]])

    def analyze_rgb(
        self,
        rgb: np.ndarray,
        source: str | None = None,
        frame_index: int | None = None,
        timestamp: float | None = None,
    ) -> FrameResult:
        """Analyse a validated RGB uint8 ``(H, W, 3)`` array. Faces come left to right (by the centre
        of the detection box; equal centres top to bottom), so face ``i`` is the same in every output
        and on the annotated image."""
        t0 = time.perf_counter()
        det, framing = self.search_faces(rgb)
        timings = {"detect": time.perf_counter() - t0}
        b = framing  # the reported boxes; the face mesh starts from det.boxes (search_faces)
        order = np.lexsort(((b[:, 1] + b[:, 3]) / 2, (b[:, 0] + b[:, 2]) / 2))
        boxes, scores, keypoints = b[order], np.asarray(det.scores)[order], np.asarray(det.keypoints)[order]
        located = np.asarray(det.boxes, dtype=np.float64).reshape(-1, 4)[order]
        center, side, angle = rois_from_detections(located, keypoints)
        result, _ = self.analyze_rois(
            rgb,
            center,
            side,
            angle,
            boxes=boxes,
            scores=scores,
            keypoints=keypoints,
            source=source,
            frame_index=frame_index,
            timestamp=timestamp,
            timings=timings,
        )
        return result

    def analyze_rois(
        self,
        rgb: np.ndarray,
        center: np.ndarray,
        side: np.ndarray,
        angle: np.ndarray,
        boxes: np.ndarray | None = None,
        scores: np.ndarray | None = None,
        keypoints: np.ndarray | None = None,
        *,
        source: str | None = None,
        frame_index: int | None = None,
        timestamp: float | None = None,
        timings: dict[str, float] | None = None,
    ) -> tuple[FrameResult, np.ndarray]:
        """Analyse given face-mesh ROIs ``(center (N, 2), side (N,), angle (N,))``: from detections
        (:func:`~openfer.components.landmarks.rois_from_detections`) or, when tracking in video, from
        the previous frame's landmarks (:func:`~openfer.components.landmarks.rois_from_landmarks`).

        ``boxes``, ``scores`` and ``keypoints`` describe the ROIs' detections, row for row. Without
        ``boxes`` a face's box is the extent of its 468 mesh points; without ``keypoints`` they are
        the matching mesh points; without ``scores`` the scores are NaN (no detector ran).

        Returns the result and, per face, the index of the ROI it came from (faces whose mesh
        presence score is below ``landmark_threshold``, duplicates and faces over ``max_faces`` are
        dropped).
        """
        located = self.locate(rgb, center, side, angle, boxes, scores, keypoints, timings=timings,
                              passes=self.options.mesh_passes)
        result = self.describe(rgb, located, source=source, frame_index=frame_index, timestamp=timestamp)
        return result, located.index

    def locate(
        self,
        rgb: np.ndarray,
        center: np.ndarray,
        side: np.ndarray,
        angle: np.ndarray,
        boxes: np.ndarray | None = None,
        scores: np.ndarray | None = None,
        keypoints: np.ndarray | None = None,
        *,
        timings: dict[str, float] | None = None,
        passes: int = 1,
    ) -> Located:
        """First half of :meth:`analyze_rois`: the face mesh on each ROI and the choice of faces
        (presence threshold, duplicates, ``max_faces``). Video runs it for frame t+1 while
        :meth:`describe` works on frame t (``passes`` 1: its ROIs already come from landmarks);
        photos with :attr:`AnalyzerOptions.mesh_passes`."""
        t = dict(timings or {})
        n = len(np.asarray(side).reshape(-1))
        t0 = time.perf_counter()
        lm, lm_score = self.mesh(rgb, center, side, angle)
        lm, lm_score = self._refine(rgb, lm, lm_score)
        det_scores = np.full(n, np.nan) if scores is None else np.asarray(scores, dtype=np.float64).reshape(n)
        from_mesh = boxes is None
        if from_mesh:
            boxes = mesh_boxes(lm)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(n, 4)
        keep = lm_score >= self.landmark_threshold
        keep = _dedupe(boxes, lm, np.nan_to_num(det_scores, nan=1.0) * lm_score, keep)
        if self.options.max_faces is not None:
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            order = np.argsort(-np.where(keep, area, -1.0), kind="stable")[: self.options.max_faces]
            keep = np.isin(np.arange(len(keep)), order) & keep
        idx = np.flatnonzero(keep)
        lm, lm_score = self._settle(rgb, lm, lm_score, idx, passes - 1)
        lmk = lm[idx]
        if from_mesh and passes > 1:
            boxes = mesh_boxes(lm)
        kps = mesh_keypoints(lmk) if keypoints is None else np.asarray(keypoints).reshape(n, 6, 2)[idx]
        t["landmarks"] = time.perf_counter() - t0
        return Located(boxes[idx], det_scores[idx], kps, lmk, lm_score[idx], idx, t)

    def _settle(
        self, rgb: np.ndarray, lm: np.ndarray, score: np.ndarray, idx: np.ndarray, passes: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``passes`` more Face Mesh passes on the faces ``idx``, each from the ROI of the previous
        landmarks (:attr:`AnalyzerOptions.mesh_passes`); a face whose new presence score is below
        the threshold keeps its previous landmarks."""
        if passes <= 0 or len(idx) == 0:
            return lm, score
        lm, score = lm.copy(), score.copy()
        for _ in range(passes):
            new, new_score = self.mesh(rgb, *rois_from_landmarks(lm[idx]))
            ok = new_score >= self.landmark_threshold
            lm[idx[ok]], score[idx[ok]] = new[ok], new_score[ok]
        return lm, score

    def _refine(self, rgb: np.ndarray, lm: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Face Mesh v2 on a badly centred ROI (a loose whole-image detection of a small face) can
        score a real face low (0.12 and 0.02 for two faces of multi_face.jpg under the fast preset,
        which v1 accepts at 0.99): faces below the threshold but above :data:`REFINE_MIN` are run
        again on the ROI of their own landmarks, as tracking does, up to :data:`REFINE_PASSES`
        times (the same two faces: 0.92 / 0.59, then 0.99 / 0.99), and are kept only if they then
        reach the stricter :data:`REFINED_ACCEPT` (a shirt logo that scores 0.30 climbs to 0.46-0.60
        under refinement and stays out). A false hit inside a real face converges onto that face
        and is then removed as its duplicate."""
        if self.mesh.model_name != "facemesh_v2":
            return lm, score
        cand = (score < self.landmark_threshold) & (score >= REFINE_MIN)
        if not cand.any():
            return lm, score
        new_lm, new_score = lm.copy(), score.copy()
        for _ in range(REFINE_PASSES):
            redo = np.flatnonzero(cand & (new_score < REFINED_ACCEPT))
            if len(redo) == 0:
                break
            new_lm[redo], new_score[redo] = self.mesh(rgb, *rois_from_landmarks(new_lm[redo]))
        take = cand & (new_score >= REFINED_ACCEPT)
        lm, score = lm.copy(), score.copy()
        lm[take], score[take] = new_lm[take], new_score[take]
        return lm, score

    def describe(
        self,
        rgb: np.ndarray,
        located: Located,
        *,
        source: str | None = None,
        frame_index: int | None = None,
        timestamp: float | None = None,
        au_baseline: np.ndarray | None = None,
    ) -> FrameResult:
        """Second half of :meth:`analyze_rois`: head pose, expression, AUs and explanations of the
        located faces (``located`` may have had its boxes/keypoints replaced, e.g. by a tracker).

        ``au_baseline``: neutral AU features ``(F,)`` or one row per face ``(N, F)``
        (:func:`~openfer.core.au.neutral_baseline`) that the AUs, PSPI and reasons are measured
        against instead of the population reference face (video's per-person baseline); ``None``:
        the reference face."""
        t = dict(located.timings)
        au_names = AU_NAMES if self.options.aus else None
        bs_names = BLENDSHAPE_NAMES if self.blendshapes is not None else None
        lmk = located.landmarks
        if len(lmk) == 0:
            faces = Faces.empty(self.classes, self.mesh.num_landmarks, au_names, bs_names)
        else:
            t0 = time.perf_counter()
            fits = rigid_fits(lmk)  # the rigid points onto the reference face: head pose and AUs share it
            poses = estimate_pose(lmk, fits)
            probs, unknown = self.expression.classify(rgb, lmk)
            t["expression"] = time.perf_counter() - t0
            bs = None
            if self.blendshapes is not None and located.blendshapes is not None and len(located.blendshapes) == len(lmk):
                bs = located.blendshapes  # its time is in located.timings
            elif self.blendshapes is not None:
                t0 = time.perf_counter()
                bs = self.blendshapes(lmk)
                t["blendshapes"] = time.perf_counter() - t0
            aus = pain = None
            if self.options.aus:
                t0 = time.perf_counter()
                aus = estimate_aus(lmk, au_baseline, bs, fits)
                pain = pspi(aus)
                t["aus"] = time.perf_counter() - t0
            va, va_source, reasons = None, None, None
            if self.va is not None:
                t0 = time.perf_counter()
                va, va_source = self.va(rgb, lmk), "model"
                t["valence_arousal"] = time.perf_counter() - t0
            if self.options.explain:
                if va is None:
                    va, va_source = valence_arousal(probs, self.classes), "derived"
                reasons = tuple(
                    explain(p, self.classes, None if aus is None else aus[i], au_names or ())
                    for i, p in enumerate(probs)
                )
            faces = Faces(
                boxes=located.boxes,
                scores=located.scores,
                keypoints=located.keypoints,
                landmarks=lmk,
                landmark_scores=located.landmark_scores,
                poses=poses,
                expressions=probs,
                classes=self.classes,
                aus=aus,
                au_names=au_names or (),
                valence_arousal=va,
                reasons=reasons,
                pspi=pain,
                unknown_scores=unknown,
                unknown_threshold=self.options.unknown_threshold if unknown is not None else None,
                va_source=va_source,
                blendshapes=bs,
                blendshape_names=bs_names or (),
            )
        return FrameResult(
            faces,
            width=rgb.shape[1],
            height=rgb.shape[0],
            source=source,
            frame_index=frame_index,
            timestamp=timestamp,
            timings=t,
        )

    def analyze_many(self, paths: Iterable[str | Path]) -> Iterator[tuple[Path, FrameResult | OpenFerError]]:
        """Analyse each path; a bad file yields its error instead of stopping the batch."""
        for p in paths:
            try:
                yield Path(p), self.analyze(p)
            except OpenFerError as e:
                log.warning("%s", e)
                yield Path(p), e


# Mesh points standing in for the detector's keypoints (KEYPOINT_NAMES order) when no detector ran:
# eye centres (between the eye corners), nose tip, mouth centre (inner lips), ear tragions.
MESH_KEYPOINTS: tuple[tuple[int, ...], ...] = ((33, 133), (362, 263), (4,), (13, 14), (234,), (454,))


def mesh_boxes(landmarks: np.ndarray) -> np.ndarray:
    """``(N, 4)`` extent ``[x1, y1, x2, y2]`` of the 468 mesh points of ``(N, K, 3)`` landmarks."""
    xy = np.asarray(landmarks, dtype=np.float64)[:, :468, :2]
    if len(xy) == 0:
        return np.zeros((0, 4))
    return np.concatenate([xy.min(1), xy.max(1)], 1)


def mesh_keypoints(landmarks: np.ndarray) -> np.ndarray:
    """``(N, 6, 2)`` detector-style keypoints taken from the mesh (see :data:`MESH_KEYPOINTS`)."""
    xy = np.asarray(landmarks, dtype=np.float64)[:, :, :2]
    return np.stack([xy[:, list(ix)].mean(1) for ix in MESH_KEYPOINTS], 1) if len(xy) else np.zeros((0, 6, 2))


def _dedupe(boxes: np.ndarray, lm: np.ndarray, scores: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Drop faces that duplicate a better-scored kept face: tiles and scales can detect one face
    twice with boxes too different for the detector's NMS (e.g. a loose box at a coarser scale).

    Two faces are the same when their landmark boxes overlap (IoU > 0.5) or the centre of one lies
    inside the other's landmark box — two real faces' centres are never inside each other's face.
    """
    keep = keep.copy()
    if keep.sum() < 2:
        return keep
    xy = lm[:, :468, :2]
    lb = np.concatenate([xy.min(1), xy.max(1)], 1)
    centre = (lb[:, :2] + lb[:, 2:]) / 2
    inside = (
        (centre[None, :, 0] > lb[:, None, 0])
        & (centre[None, :, 0] < lb[:, None, 2])
        & (centre[None, :, 1] > lb[:, None, 1])
        & (centre[None, :, 1] < lb[:, None, 3])
    )  # inside[i, j]: centre of j lies in box i
    same = (iou_matrix(lb, lb) > 0.5) | inside | inside.T
    for i in np.argsort(-scores, kind="stable"):
        if not keep[i]:
            continue
        dup = same[i] & keep
        dup[i] = False
        keep[dup] = False
    return keep
