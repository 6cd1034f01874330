"""Video analysis: detect faces every few frames, follow them with the face mesh in between, track ids.

Per analysed frame (see :class:`VideoOptions`):

* every ``detect_every`` analysed frames, and whenever no face is followed, the detector runs; a
  detection that overlaps a followed face only refreshes that face's box and score, the others
  start new faces (ROIs from the detection, as in :meth:`Analyzer.analyze_rgb`);
* every followed face gets its mesh ROI from its previous landmarks (``rois_from_landmarks``); a face
  whose mesh presence score falls below ``landmark_threshold`` is dropped (the pipeline's rule);
* mesh, head pose and expression run once for all ROIs, through :meth:`Analyzer.analyze_rois`;
* :class:`~openfer.video.tracker.FaceTracker` gives ids: a followed face keeps its track's id, a new
  one is matched to recently lost tracks by overlap and distance, else gets a new id;
* with ``au_baseline="neutral"`` each track's AUs are measured against its own neutral face once it
  has shown one (:mod:`openfer.video.baseline`); ``VideoFrame.au_baseline`` says which faces.

Boxes stay in the detector's convention on frames without detection: each face keeps the offsets of
its last detector box from its mesh extent. Scores are the face's last detector score.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields

import numpy as np

from ..components.au import estimate_evidence, reference_evidence
from ..components.landmarks import rois_from_detections, rois_from_landmarks
from ..core.boxes import iou_matrix
from ..errors import InputError, ShapeError
from ..pipeline import SEARCH_FRAME_IOU, Analyzer, AnalyzerOptions, Located, mesh_boxes, resolve_options
from ..types import FrameResult
from .baseline import BASELINE_MODES, AuBaselines, neutral_faces
from .reader import DEFAULT_SEQUENCE_FPS, VideoInfo, VideoReader, _check_selection
from .tracker import FaceTracker, TrackerState, greedy_pairs

# A detection and a followed face are the same face from this IoU with the face's previous box; a
# whole-frame pass re-frames it (its output box follows the detection's) from SEARCH_FRAME_IOU with the
# box it has: below it, the detection's box is the loose one (the rule of Analyzer.search_faces)
_ASSOCIATE_IOU = 0.3


@dataclass(frozen=True)
class VideoOptions:
    """How a video is sampled and tracked (one source of defaults for the API and the CLI).

    Attributes:
        every: analyse every N-th frame (exclusive with ``fps``).
        fps: analyse at most this many frames per second.
        start, end: seconds; analyse frames with ``start <= time < end``.
        detect_every: run the face detector every N analysed frames (and whenever no face is
            followed); in between, faces are followed by the face mesh alone. These runs are one
            detector pass over the whole frame (faces larger than ~15% of the frame side).
        scan_every: every N analysed frames the detection is the Analyzer's full search instead
            (:meth:`~openfer.pipeline.Analyzer.search_faces`: the ``video`` preset adds the dense full-range
            detector's faces down to its ``min_face``, ~15x the cost of a whole-frame pass at 640x360); so a
            new small face is found within ``scan_every`` frames, a new large one within
            ``detect_every``.
        pipeline: when iterating a run, analyse the expression of frame t in a worker thread
            while the face mesh follows the faces into frame t+1 (same results, ~2x the frame rate
            on 2 cores).
        max_missed: analysed frames a lost track survives, so a face that comes back keeps its id;
            ``None``: about one second of analysed frames.
        iou_threshold: tracker overlap to match a face to a lost track.
        sequence_fps: frame rate of image sequences (folders, globs).
        au_baseline: what a track's AUs (and PSPI, and the AU evidence in reasons) are measured
            against. ``"neutral"``: its own resting face, once it has one: the median AU features
            of the track's first frames that the expression model calls neutral (p(neutral) >= 0.6;
            10 such frames needed, the first 30 kept; see :mod:`openfer.video.baseline`), the
            population reference face until then. ``"none"``: always the reference face, as for
            images. ``VideoFrame.au_baseline`` (and the timeline's ``au_baseline`` column) say
            which one each face got.
    """

    every: int = 1
    fps: float | None = None
    start: float = 0.0
    end: float | None = None
    detect_every: int = 10
    scan_every: int = 30
    pipeline: bool = True
    max_missed: int | None = None
    iou_threshold: float = 0.3
    sequence_fps: float = DEFAULT_SEQUENCE_FPS
    au_baseline: str = "neutral"

    def __post_init__(self) -> None:
        _check_selection(self.every, self.fps, self.start, self.end)
        if self.au_baseline not in BASELINE_MODES:
            raise InputError(
                f"au_baseline: expected one of {', '.join(BASELINE_MODES)}, got {self.au_baseline!r}"
            )
        if (
            isinstance(self.detect_every, bool)
            or not isinstance(self.detect_every, int)
            or self.detect_every < 1
        ):
            raise InputError(f"detect_every: expected an integer >= 1, got {self.detect_every!r}")
        if isinstance(self.scan_every, bool) or not isinstance(self.scan_every, int) or self.scan_every < 1:
            raise InputError(f"scan_every: expected an integer >= 1, got {self.scan_every!r}")
        if self.max_missed is not None and self.max_missed < 0:
            raise InputError(f"max_missed: expected >= 0, got {self.max_missed!r}")
        if not 0 < self.iou_threshold <= 1:
            raise InputError(f"iou_threshold: expected in (0, 1], got {self.iou_threshold!r}")


@dataclass(frozen=True, eq=False)
class VideoFrame:
    """One analysed frame: the :class:`~openfer.types.FrameResult` (``frame_index`` and ``timestamp``
    set) and ``track_ids``, one int64 per face, stable across frames.

    ``au_baseline``: one bool per face, True where its AUs (and PSPI) were measured against its
    track's own neutral baseline rather than the reference face (``VideoOptions.au_baseline``);
    ``None`` when no baseline was kept (no AUs, or ``au_baseline="none"``)."""

    result: FrameResult
    track_ids: np.ndarray
    au_baseline: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.result.faces)
        for name, dtype in (("track_ids", np.int64), ("au_baseline", np.bool_)):
            value = getattr(self, name)
            if value is None and name == "au_baseline":
                continue
            a = np.asarray(value, dtype=dtype).reshape(-1) if np.size(value) else np.zeros(0, dtype)
            if a.shape != (n,):
                raise ShapeError(name, f"(N={n},)", np.shape(value))
            a = a.copy()
            a.setflags(write=False)
            object.__setattr__(self, name, a)

    @property
    def faces(self):  # noqa: ANN201 - Faces
        return self.result.faces

    @property
    def frame_index(self) -> int:
        return int(self.result.frame_index or 0)

    @property
    def timestamp(self) -> float:
        return float(self.result.timestamp or 0.0)


@dataclass(frozen=True, eq=False)
class VideoCheckpoint:
    """The state of a :class:`VideoRun` after a frame: resuming from it gives the same results as
    not stopping. Serialise with :meth:`to_json` (exact: floats round-trip through JSON)."""

    frame_index: int  # last analysed source frame
    frames_done: int  # analysed frames so far
    since_detect: int  # analysed frames since the detector last ran
    tracker: TrackerState
    ids: np.ndarray  # (F,) followed faces' track ids
    landmarks: np.ndarray  # (F, K, 3) float32, their last landmarks
    boxes: np.ndarray  # (F, 4) their last boxes
    offsets: np.ndarray  # (F, 4) detector box minus mesh extent, in mesh-extent widths/heights
    scores: np.ndarray  # (F,) last detector scores
    since_scan: int = 0  # analysed frames since the last full (small-face) search
    au_baseline: AuBaselines = field(default_factory=AuBaselines.empty)  # per-track neutral features

    def to_json(self) -> dict:
        return {
            "frame_index": self.frame_index,
            "frames_done": self.frames_done,
            "since_detect": self.since_detect,
            "tracker": self.tracker.to_json(),
            "ids": self.ids.tolist(),
            "landmarks": self.landmarks.tolist(),
            "landmarks_shape": list(self.landmarks.shape),
            "boxes": self.boxes.tolist(),
            "offsets": self.offsets.tolist(),
            "scores": self.scores.tolist(),
            "since_scan": self.since_scan,
            "au_baseline": self.au_baseline.to_json(),
        }

    @classmethod
    def from_json(cls, d: dict) -> VideoCheckpoint:
        return cls(
            frame_index=int(d["frame_index"]),
            frames_done=int(d["frames_done"]),
            since_detect=int(d["since_detect"]),
            tracker=TrackerState.from_json(d["tracker"]),
            ids=np.asarray(d["ids"], dtype=np.int64).reshape(-1),
            landmarks=np.asarray(d["landmarks"], dtype=np.float32).reshape(d["landmarks_shape"]),
            boxes=np.asarray(d["boxes"], dtype=np.float64).reshape(-1, 4),
            offsets=np.asarray(d["offsets"], dtype=np.float64).reshape(-1, 4),
            scores=np.asarray(d["scores"], dtype=np.float64).reshape(-1),
            since_scan=int(d.get("since_scan", 0)),
            au_baseline=AuBaselines.from_json(d.get("au_baseline")),  # absent in older checkpoints
        )


def box_offsets(det_boxes: np.ndarray, extent: np.ndarray) -> np.ndarray:
    """Detector boxes relative to mesh extents: ``(det - extent) / [w, h, w, h]`` of the extent."""
    wh = np.clip(extent[:, 2:] - extent[:, :2], 1e-6, None)
    return (det_boxes - extent) / np.concatenate([wh, wh], 1)


def apply_box_offsets(extent: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Inverse of :func:`box_offsets`: detector-style boxes from mesh extents."""
    wh = extent[:, 2:] - extent[:, :2]
    return extent + offsets * np.concatenate([wh, wh], 1)


def _inside(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``(P, B)``: point p lies inside box b."""
    x, y = points[:, None, 0], points[:, None, 1]
    return (
        (x > boxes[None, :, 0]) & (x < boxes[None, :, 2]) & (y > boxes[None, :, 1]) & (y < boxes[None, :, 3])
    )


def _split_options(options: VideoOptions | None, overrides: dict[str, object]) -> tuple[VideoOptions, dict[str, object]]:
    """The validated :class:`VideoOptions` with their overrides applied, and the Analyzer overrides."""
    video_keys = {f.name for f in fields(VideoOptions)}
    analyzer_keys = {f.name for f in fields(AnalyzerOptions)}
    unknown = set(overrides) - video_keys - analyzer_keys
    if unknown:
        raise InputError(f"unknown VideoAnalyzer option(s): {', '.join(sorted(unknown))}")
    vo = {k: v for k, v in overrides.items() if k in video_keys}
    ao = {k: v for k, v in overrides.items() if k in analyzer_keys}
    return dataclasses.replace(options or VideoOptions(), **vo), ao  # type: ignore[arg-type]


class VideoAnalyzer:
    """Analyse videos and image sequences: per frame, every face with its track id.

    Keyword arguments are :class:`VideoOptions` fields or :class:`~openfer.pipeline.AnalyzerOptions`
    fields (``preset`` picks the latter's defaults); ``analyzer`` reuses a loaded :class:`Analyzer`.

    >>> video = VideoAnalyzer(fps=10, threads=2)                 # doctest: +SKIP
    >>> for frame in video.run("clip.mp4"):                      # doctest: +SKIP
    ...     print(frame.timestamp, frame.track_ids, frame.faces.labels)
    """

    def __init__(
        self,
        preset: str = "video",
        options: VideoOptions | None = None,
        *,
        analyzer: Analyzer | None = None,
        **overrides: object,
    ) -> None:
        self.options, ao = _split_options(options, overrides)
        if analyzer is not None and ao:
            raise InputError(
                f"pass Analyzer options ({', '.join(sorted(ao))}) to the Analyzer, not with analyzer="
            )
        self.analyzer = analyzer if analyzer is not None else Analyzer(preset, **ao)

    @staticmethod
    def check_options(preset: str = "video", options: VideoOptions | None = None, **overrides: object) -> None:
        """Validate what :class:`VideoAnalyzer` would be built from, without loading any model: an
        :class:`InputError` naming the bad preset or field (for jobs that build their analyzers elsewhere)."""
        _, ao = _split_options(options, overrides)
        resolve_options(preset, **ao)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.analyzer.classes

    def reader(self, source: str | os.PathLike[str], after: int | None = None) -> VideoReader:
        """The frame source this analyzer reads ``source`` with (its sampling options)."""
        o = self.options
        return VideoReader(
            source,
            every=o.every,
            fps=o.fps,
            start=o.start,
            end=o.end,
            sequence_fps=o.sequence_fps,
            after=after,
        )

    def run(self, source: str | os.PathLike[str], resume: VideoCheckpoint | None = None) -> VideoRun:
        """A :class:`VideoRun` over ``source`` (iterate it for :class:`VideoFrame` results);
        ``resume`` continues after a checkpoint of an earlier run with the same options."""
        return VideoRun(self, source, resume)

    def stream(self, frame_rate: float = 30.0, name: str = "stream") -> VideoRun:
        """A :class:`VideoRun` without a source, for frames you read yourself (a camera, a network
        stream): call ``run.step(rgb, index, timestamp)`` per frame. ``frame_rate`` sets how long a
        lost track is kept (``max_missed``: about one second of frames unless set in the options)."""
        return VideoRun(self, None, frame_rate=frame_rate, name=name)


class VideoRun:
    """One pass over a source: iterate for :class:`VideoFrame` results; :meth:`checkpoint` is the
    state after the last frame yielded. Opening the source (and its errors) happens on construction.

    Each frame is analysed in two stages: *follow* (detection when due, face mesh, track ids) and
    *describe* (head pose, expression, AUs, explanations). Frame t+1's follow needs only frame t's
    landmarks, so with ``VideoOptions.pipeline`` iteration runs frame t's describe in a worker
    thread while the caller's thread follows the faces into frame t+1. Results are identical to
    calling :meth:`step` frame by frame.

    The per-track AU baselines belong to the describe stage: only it reads and updates them (one
    describe at a time, in frame order), and each describe returns the snapshot after its frame,
    which goes into the checkpoint handed out with that frame.
    """

    def __init__(
        self,
        video: VideoAnalyzer,
        source: str | os.PathLike[str] | None,
        resume: VideoCheckpoint | None = None,
        *,
        frame_rate: float = 30.0,
        name: str = "stream",
    ) -> None:
        self.video = video
        self.source = name if source is None else str(source)
        self.reader = (
            None if source is None else video.reader(source, after=resume.frame_index if resume else None)
        )
        rate = self.reader.frame_rate if self.reader is not None else float(frame_rate)
        o = video.options
        max_missed = o.max_missed if o.max_missed is not None else max(int(round(rate)), 1)
        self.tracker = FaceTracker(max_missed=max_missed, iou_threshold=o.iou_threshold)
        k = video.analyzer.mesh.num_landmarks
        self._index, self._done, self._since, self._since_scan = -1, 0, o.detect_every, o.scan_every
        self._ids = np.zeros(0, np.int64)
        self._lm = np.zeros((0, k, 3), np.float32)
        self._boxes, self._offsets, self._scores = np.zeros((0, 4)), np.zeros((0, 4)), np.zeros(0)
        self._baselines = resume.au_baseline if resume is not None else AuBaselines.empty()
        an = video.analyzer
        self._keep_baselines = o.au_baseline == "neutral" and an.options.aus
        if self._keep_baselines:
            self._reference_features = reference_evidence()
        self._done_before = resume.frames_done if resume is not None else 0
        self._yielded: VideoCheckpoint | None = None  # state after the last frame handed out
        if resume is not None:
            if resume.landmarks.shape[1:] != (k, 3) and len(resume.ids):
                raise InputError(
                    f"checkpoint has {resume.landmarks.shape[1]} landmarks per face, this analyzer {k}"
                )
            self.tracker.set_state(resume.tracker)
            self._index, self._done, self._since = resume.frame_index, resume.frames_done, resume.since_detect
            self._since_scan = resume.since_scan
            self._ids, self._lm = resume.ids.copy(), resume.landmarks.reshape(-1, k, 3).copy()
            self._boxes, self._offsets, self._scores = (
                resume.boxes.copy(),
                resume.offsets.copy(),
                resume.scores.copy(),
            )

    @property
    def info(self) -> VideoInfo:
        if self.reader is None:
            raise InputError("a stream has no video info: it reads no source")
        return self.reader.info

    @property
    def frames_done(self) -> int:
        """Frames handed out so far (including any done before a resume)."""
        return self._yielded.frames_done if self._yielded is not None else self._done

    def expected_frames(self) -> int | None:
        """Estimated analysed frames in total (including any done before a resume)."""
        if self.reader is None:
            return None
        left = self.reader.expected_frames()
        return None if left is None else left + self._done_before

    def checkpoint(self) -> VideoCheckpoint:
        """The state after the last frame handed out (by iteration or :meth:`step`)."""
        return self._yielded if self._yielded is not None else self._state()

    def _state(self) -> VideoCheckpoint:
        # the arrays are replaced, never modified in place, by _follow: no copies needed. The
        # baselines are the describe stage's: while pipelining, the snapshot its task returns
        # replaces them (_hand_out)
        return VideoCheckpoint(
            self._index,
            self._done,
            self._since,
            self.tracker.state,
            self._ids,
            self._lm,
            self._boxes,
            self._offsets,
            self._scores,
            self._since_scan,
            self._baselines,
        )

    def __iter__(self) -> Iterator[VideoFrame]:
        if self.reader is None:
            raise InputError("a stream has no source to iterate: call step(rgb, index, timestamp)")
        if not self.video.options.pipeline:
            for index, t, rgb in self.reader:
                yield self.step(rgb, index, t)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="openfer-describe") as pool:
            pending: tuple[Future, np.ndarray, VideoCheckpoint] | None = None
            try:
                for index, t, rgb in self.reader:
                    located, ids = self._follow(rgb, index, t)
                    state = self._state()
                    fut = pool.submit(self._describe, rgb, located, ids, state.tracker.ids, index, t)
                    if pending is not None:
                        yield self._hand_out(*pending)
                    pending = (fut, ids, state)
                if pending is not None:
                    last, pending = pending, None
                    yield self._hand_out(*last)
            except InputError:  # the stream ends in an error: the frame in the worker is still a result
                if pending is not None:
                    last, pending = pending, None
                    yield self._hand_out(*last)
                raise
            finally:
                if pending is not None:  # stopped early: the worker's last frame is dropped
                    pending[0].cancel()

    def _hand_out(self, fut: Future, ids: np.ndarray, state: VideoCheckpoint) -> VideoFrame:
        res, used, baselines = fut.result()
        self._yielded = dataclasses.replace(state, au_baseline=baselines)
        return VideoFrame(res, ids, used)

    def step(self, rgb: np.ndarray, index: int, timestamp: float) -> VideoFrame:
        """Analyse one frame (in order; timestamps must increase) and advance the state."""
        located, ids = self._follow(rgb, index, timestamp)
        res, used, _ = self._describe(rgb, located, ids, self.tracker.state.ids, index, timestamp)
        self._yielded = None
        return VideoFrame(res, ids, used)

    def _describe(
        self,
        rgb: np.ndarray,
        located: Located,
        ids: np.ndarray,
        live: np.ndarray,
        index: int,
        timestamp: float,
    ) -> tuple[FrameResult, np.ndarray | None, AuBaselines]:
        """The describe stage of one frame: :meth:`Analyzer.describe` with each face's track baseline
        (where ready), then the baselines updated with this frame's confident-neutral faces and
        pruned to the tracks still ``live``. Returns the result, which faces used a baseline
        (``None`` without baselines) and the baselines after this frame."""
        an = self.video.analyzer
        if not self._keep_baselines:
            res = an.describe(rgb, located, source=self.source, frame_index=index, timestamp=timestamp)
            return res, None, self._baselines
        base = self._baselines
        neutral, ready = base.neutral(ids)
        rows = np.where(ready[:, None], neutral, self._reference_features) if ready.any() else None
        res = an.describe(
            rgb, located, source=self.source, frame_index=index, timestamp=timestamp, au_baseline=rows
        )
        want = neutral_faces(res.faces.expressions, res.faces.classes, base.counts(ids))
        if want.any():
            bs = res.faces.blendshapes
            feats = estimate_evidence(located.landmarks[want], None if bs is None else bs[want])
            base = base.add(ids[want], feats)
        self._baselines = base = base.keep(live)
        return res, ready, base

    def _follow(self, rgb: np.ndarray, index: int, timestamp: float) -> tuple[Located, np.ndarray]:
        """Detection when due, face mesh on every followed or new face, track ids; advances the state."""
        if index <= self._index:
            raise InputError(
                f"frame {index} is not after frame {self._index}: video frames must come in order"
            )
        an, o = self.video.analyzer, self.video.options
        nf = len(self._ids)
        timings: dict[str, float] = {}
        center, side, angle = (
            rois_from_landmarks(self._lm) if nf else (np.zeros((0, 2)), np.zeros(0), np.zeros(0))
        )
        scores = self._scores.copy()
        det_box = np.full((nf, 4), np.nan)  # a detection paired with a followed face
        new_boxes, new_kps = np.zeros((0, 4)), np.zeros((0, 6, 2))
        new_framing = new_boxes
        scan = self._since_scan >= o.scan_every
        detect = scan or nf == 0 or self._since >= o.detect_every
        if detect:
            t0 = time.perf_counter()
            if scan:  # framing: the box a face's output box is kept relative to (Analyzer.search_faces)
                det, framing = an.search_faces(rgb)
            else:
                det = an.detector(rgb, whole_only=True)
                framing = np.asarray(det.boxes, dtype=np.float64).reshape(-1, 4)
            timings["detect"] = time.perf_counter() - t0
            boxes = np.asarray(det.boxes, dtype=np.float64).reshape(-1, 4)
            is_new = np.ones(len(boxes), bool)
            if nf and len(boxes):
                iou = iou_matrix(framing, self._boxes)
                for r, c in greedy_pairs(iou, iou >= _ASSOCIATE_IOU, descending=True):
                    # a whole-frame box that disagrees with the track's framing leaves it (a search's
                    # framing has settled that disagreement already: Analyzer.search_faces)
                    if scan or iou[r, c] >= SEARCH_FRAME_IOU:
                        det_box[c] = framing[r]
                    scores[c] = float(det.scores[r])
                    is_new[r] = False
                is_new &= ~_inside((framing[:, :2] + framing[:, 2:]) / 2, self._boxes).any(1)
            new_boxes, new_kps = boxes[is_new], np.asarray(det.keypoints, dtype=np.float64)[is_new]
            new_framing = framing[is_new]
            dc, ds, da = rois_from_detections(new_boxes, new_kps)
            center, side, angle = (
                np.concatenate([center, dc]),
                np.concatenate([side, ds]),
                np.concatenate([angle, da]),
            )
            scores = np.concatenate([scores, np.asarray(det.scores, dtype=np.float64)[is_new]])
        located = an.locate(rgb, center, side, angle, scores=scores, timings=timings)
        src = located.index
        extent = mesh_boxes(located.landmarks)
        fi, ni = np.flatnonzero(src < nf), np.flatnonzero(src >= nf)
        ref = np.full((len(src), 4), np.nan)  # this frame's detector box of each face, if any
        ref[fi] = det_box[src[fi]]
        ref[ni] = new_framing[src[ni] - nf]
        has_ref = ~np.isnan(ref).any(1)
        offsets = np.empty((len(src), 4))
        offsets[has_ref] = box_offsets(ref[has_ref], extent[has_ref])
        offsets[~has_ref] = self._offsets[src[~has_ref]]  # followed faces without a detection now
        boxes = apply_box_offsets(extent, offsets)
        if len(src):
            kps = located.keypoints.astype(np.float64)
            kps[ni] = new_kps[src[ni] - nf]
            located = dataclasses.replace(located, boxes=boxes, keypoints=kps)
        hints = np.full(len(src), -1, np.int64)
        hints[fi] = self._ids[src[fi]]
        ids = self.tracker.update(boxes.astype(np.float64), hints)
        self._ids, self._lm = ids, located.landmarks.astype(np.float32)  # as Faces stores them
        self._boxes, self._offsets = boxes.astype(np.float64), offsets
        self._scores = located.scores.astype(np.float64)
        self._since = 1 if detect else self._since + 1
        self._since_scan = 1 if scan else self._since_scan + 1
        self._index, self._done = index, self._done + 1
        if an.blendshapes is not None and len(located.landmarks):
            # in this stage, not in describe's: with the mesh on LiteRT the describe stage (expression,
            # AUs, reasons) is the slower of the two, and the blendshapes need only the landmarks
            t0 = time.perf_counter()
            bs = an.blendshapes(located.landmarks)
            located = dataclasses.replace(
                located, blendshapes=bs, timings={**located.timings, "blendshapes": time.perf_counter() - t0}
            )
        return located, ids


def id_switches(track_ids_per_frame: list[np.ndarray]) -> int:
    """For one-face footage: how often the id of the face changes from one frame with a face to the next."""
    seq = [int(ids[0]) for ids in track_ids_per_frame if len(ids)]
    return sum(a != b for a, b in zip(seq, seq[1:], strict=False))


__all__ = [
    "VideoAnalyzer",
    "VideoCheckpoint",
    "VideoFrame",
    "VideoOptions",
    "VideoRun",
    "apply_box_offsets",
    "box_offsets",
    "id_switches",
]
