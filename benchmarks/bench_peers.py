"""Peers side by side: openfer's whole analysis against MediaPipe's face landmarks alone (issue 13).

Absolute frames/s do not transfer between machines, so speed is a ratio against a peer measured in
the same run: each side is a persistent worker process with its models loaded once, and the timed
repeats alternate between them (A B B A ...), so load on a shared machine hits both sides alike.
Decoding is inside every timed run, by OpenCV's FFmpeg backend on both sides (each venv's own
OpenCV; ``decode_only`` times it alone on each side).

* video: ``VideoAnalyzer()`` as shipped over a whole clip (decode + detect/track + mesh + blendshapes
  + expression + AUs + pose + reasons) against the legacy
  ``mp.solutions.face_mesh.FaceMesh(static_image_mode=False, refine_landmarks=False, max_num_faces=N)``
  in tracking mode over the same clip (N = 1; 5 on the five-face pan of ``bench_video.five_face_clip``);
  ``reset()`` (untimed) before each run, so both start without a face.
* photos: ``Analyzer()`` and ``Analyzer("fast")`` on ``single_face.jpg``, file decode included, against
  ``FaceMesh(static_image_mode=True, refine_landmarks=True)`` (478 points) on the same file; and the
  faces each finds on ``multi_face.jpg`` (MediaPipe with ``max_num_faces=10``).
* ratios: video ``openfer fps / mediapipe fps`` (target >= 1), photo ``mediapipe ms / openfer fast
  ms`` (target >= 0.8) and ``openfer default ms / mediapipe ms`` (target <= 3); the ratio of medians,
  and the spread of the ratios of adjacent A/B pairs.
* floors (``--cores 1``): the time openfer spends inside its models' ``run`` calls (both runtimes,
  counted in the worker) plus decoding (``decode_only``; the photo's ``read_image`` timed after each
  run), against MediaPipe's whole run: the best ratio these models allow were everything around
  them free (pre/post-processing, resizing, tracking, AUs, reasons). Below the target, no amount of
  work around the models reaches it; a cheaper model must.
* ``--cores 1`` (the main comparison): both workers pinned to the same single core, openfer with one
  ONNX Runtime thread per model (``threads=1``) and OpenCV at one thread; MediaPipe's legacy API sets
  no thread count, so its graph and XNNPACK threads share that core. ``--cores 2``: unpinned, every
  side's defaults.
* ``--models``: each model alone under ONNX Runtime (one thread, warm, batch 1; the detector also
  with the 19 windows of a 640x360 search), the same ``.tflite`` under LiteRT when
  ``--litert-python`` has ``ai-edge-litert``, and an ONNX Runtime session-option sweep (optimisation
  level, intra-op threads 1/2, spinning) on the face mesh and the expression model. The v2 mesh and
  the blendshapes ``.tflite`` come only from ``--mediapipe-task`` (a maintainer's copy of MediaPipe's
  ``face_landmarker_v2_with_blendshapes.task``); the others from the peer venv's mediapipe wheel.

MediaPipe pins ``numpy<2``, so it runs from its own virtualenv (``--mediapipe-python``, default
``$OPENFER_MEDIAPIPE_PYTHON``); without one the peer is skipped with a one-line message and openfer's
side is still measured and written.

Usage:
    python3.11 -m venv /tmp/mp-venv
    /tmp/mp-venv/bin/pip install mediapipe==0.10.21 "numpy<2" opencv-python-headless
    nice python benchmarks/bench_peers.py --mediapipe-python /tmp/mp-venv/bin/python [--repeats 5]
        [--cores 1 2] [--models --litert-python /tmp/litert-venv/bin/python --mediapipe-task FILE] [--photos-only]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VIDEOS = ROOT / "tests" / "assets" / "videos"
PHOTOS = ROOT / "tests" / "assets" / "photos"
TARGETS = {"video": 1.0, "photo_fast": 0.8, "photo_default": 3.0}

# Worker protocol (both sides): argv[1] = JSON config; one JSON command per stdin line
# {"op": ..., **args}; one JSON answer per stdout line; the first line is {"ready": ...}.
SERVE = r"""
def serve(ops, ready):
    import json, sys, traceback
    print(json.dumps({"ready": ready}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            out = ops[cmd.pop("op")](**cmd)
        except Exception as exc:
            out = {"error": "".join(traceback.format_exception_only(exc)).strip()}
        print(json.dumps(out), flush=True)


def pin(cfg):
    import os
    if cfg.get("cpu") is not None:
        os.sched_setaffinity(0, {cfg["cpu"]})
"""

MEDIAPIPE_WORKER = (
    SERVE
    + r"""
import json, sys, time
cfg = json.loads(sys.argv[1])
pin(cfg)
import cv2
import mediapipe as mp
if cfg.get("cpu") is not None:
    cv2.setNumThreads(1)
fm = mp.solutions.face_mesh
meshes = {}


def mesh(static, n):
    key = (static, n)
    if key not in meshes:
        meshes[key] = fm.FaceMesh(static_image_mode=static, refine_landmarks=static, max_num_faces=n)
    return meshes[key]


def frames(clip):
    cap = cv2.VideoCapture(clip, cv2.CAP_FFMPEG)
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    cap.release()


def video(clip, max_faces):
    m = mesh(False, max_faces)
    m.reset()  # a fresh graph: no face followed from the previous run (untimed)
    n = faces = 0
    t = time.perf_counter()
    for rgb in frames(clip):
        res = m.process(rgb)
        n, faces = n + 1, faces + len(res.multi_face_landmarks or ())
    return {"ms": (time.perf_counter() - t) * 1000, "frames": n, "faces": faces}


def decode(clip):
    t = time.perf_counter()
    n = sum(1 for _ in frames(clip))
    return {"ms": (time.perf_counter() - t) * 1000, "frames": n, "faces": 0}


def photo(path, mode, max_faces=1):
    m = mesh(True, max_faces)
    t = time.perf_counter()
    res = m.process(cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB))
    faces = res.multi_face_landmarks or ()
    return {"ms": (time.perf_counter() - t) * 1000, "faces": len(faces),
            "points": len(faces[0].landmark) if faces else 0}


serve({"video": video, "decode": decode, "photo": photo},
      {"mediapipe": mp.__version__, "opencv": cv2.__version__, "python": sys.version.split()[0]})
"""
)

LITERT_WORKER = (
    SERVE
    + r"""
import json, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
import ai_edge_litert
cfg = json.loads(sys.argv[1])
pin(cfg)


def model(path, batch=1, threads=1, runs=30):
    it = Interpreter(model_path=path, num_threads=threads)
    d = it.get_input_details()[0]
    if batch != 1:
        it.resize_tensor_input(d["index"], [batch, *d["shape"][1:]])
    it.allocate_tensors()
    d = it.get_input_details()[0]
    x = np.random.default_rng(0).random(d["shape"], dtype=np.float32)
    ts = []
    for i in range(runs + 5):
        t = time.perf_counter()
        it.set_tensor(d["index"], x)
        it.invoke()
        if i >= 5:
            ts.append((time.perf_counter() - t) * 1000)
    return {"ms": ts, "shape": [int(s) for s in d["shape"]]}


serve({"model": model}, {"litert": getattr(ai_edge_litert, "__version__", "?")})
"""
)


def openfer_worker(cfg: dict) -> None:
    """The openfer side (run by this interpreter as ``bench_peers.py --worker CONFIG``)."""
    ns: dict = {}
    exec(SERVE, ns)  # the same serve/pin as the peer's worker
    ns["pin"](cfg)
    import threading

    import cv2
    import onnxruntime as ort

    from openfer.io.images import read_image
    from openfer.pipeline import Analyzer
    from openfer.runtime.litert import LiteRTSession
    from openfer.runtime.onnx import verified_path
    from openfer.video import VideoAnalyzer, VideoReader

    # CPU time spent inside the models' run calls (both runtimes, every thread): the "model floor", what
    # a run would cost if everything around the models were free. The calling thread's CPU clock, not
    # the wall clock: on one core the pipelined video's two threads take turns, and a model call's wall
    # time would include the other thread's turns. Exact where a model runs in its caller's thread
    # (one intra-op thread: the --cores 1 runs, where the floors are computed). Two clock reads and a
    # lock per call.
    spent, lock = [0.0], threading.Lock()

    def counted(run):
        def timed_run(self, *args, **kwargs):
            t = time.thread_time()
            try:
                return run(self, *args, **kwargs)
            finally:
                dt = time.thread_time() - t
                with lock:
                    spent[0] += dt
        return timed_run

    ort.InferenceSession.run = counted(ort.InferenceSession.run)
    LiteRTSession.run = counted(LiteRTSession.run)

    def model_ms() -> float:
        with lock:
            v, spent[0] = spent[0], 0.0
        return v * 1000

    one = cfg.get("cpu") is not None
    if one:
        cv2.setNumThreads(1)
    kw = {"threads": 1} if one else {}
    kw["runtime"] = cfg.get("runtime", "auto")
    cache: dict = {}

    def get(key, make):
        if key not in cache:
            cache[key] = make()
        return cache[key]

    def video(clip, max_faces):
        # the video preset: threads=1 per model, pipelined
        va = get("video", lambda: VideoAnalyzer(runtime=kw["runtime"]))
        model_ms()
        t = time.perf_counter()
        out = list(va.run(clip))
        ms = (time.perf_counter() - t) * 1000
        return {"ms": ms, "model_ms": model_ms(), "frames": len(out), "faces": sum(len(f.faces) for f in out),
                "runtimes": va.analyzer.runtimes}

    def decode(clip):
        t = time.perf_counter()
        n = sum(1 for _ in VideoReader(clip))
        return {"ms": (time.perf_counter() - t) * 1000, "frames": n, "faces": 0}

    def photo(path, mode, max_faces=None):
        an = get(mode, lambda: Analyzer(mode, **kw))
        model_ms()
        t = time.perf_counter()
        r = an.analyze(path)
        ms = (time.perf_counter() - t) * 1000
        spent_ms = model_ms()
        t = time.perf_counter()
        read_image(path)  # untimed above: the file decode alone, for the floor
        return {
            "ms": ms,
            "model_ms": spent_ms,
            "read_ms": (time.perf_counter() - t) * 1000,
            "faces": len(r.faces),
            "points": int(r.faces.landmarks.shape[1]) if len(r.faces) else 0,
            "stages_ms": {k: v * 1000 for k, v in r.timings.items()},
            "runtimes": an.runtimes,
        }

    def model(name, batch=1, runs=30, threads=1, level="all", spinning=0):
        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }

        def make():
            o = ort.SessionOptions()
            o.intra_op_num_threads, o.inter_op_num_threads = threads, 1
            o.graph_optimization_level = levels[level]
            o.add_session_config_entry("session.intra_op.allow_spinning", str(spinning))
            return ort.InferenceSession(str(verified_path(name)), o, providers=["CPUExecutionProvider"])

        sess = get(("model", name, threads, level, spinning), make)
        inp = sess.get_inputs()[0]
        shape = [batch if not isinstance(s, int) else s for s in inp.shape]
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        ts = []
        for i in range(runs + 5):
            t = time.perf_counter()
            sess.run(None, {inp.name: x})
            if i >= 5:
                ts.append((time.perf_counter() - t) * 1000)
        return {"ms": ts, "shape": shape}

    import openfer
    from openfer.runtime import litert

    versions = {"openfer": openfer.__version__, "onnxruntime": ort.__version__, "opencv": cv2.__version__,
                "runtime_option": kw["runtime"]}
    if litert.available():
        from importlib.metadata import version

        versions["ai-edge-litert"] = version("ai-edge-litert")
    from openfer.io import images

    if images._simplejpeg is not None:  # JPEGs through libjpeg-turbo's TurboJPEG API (the jpeg extra)
        versions["simplejpeg"] = images._simplejpeg.__version__
    ns["serve"]({"video": video, "decode": decode, "photo": photo, "model": model}, versions)


class Worker:
    """A worker process: ``call(op, **args)`` sends one command and returns its JSON answer."""

    def __init__(self, argv: list[str], name: str) -> None:
        self.name = name
        env = {**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}  # MediaPipe's log
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        first = self.proc.stdout.readline()
        if not first:
            self.close()
            raise RuntimeError(f"{name} worker did not start (exit code {self.proc.returncode})")
        self.ready = json.loads(first)["ready"]

    def call(self, op: str, **args: object) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        if "error" in out:
            raise RuntimeError(f"{self.name} worker, {op} {args}: {out['error']}")
        return out

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def stats(ms: list[float]) -> dict:
    q25, med, q75 = np.percentile(ms, [25, 50, 75])
    return {
        "median_ms": round(float(med), 2),
        "min_ms": round(float(min(ms)), 2),
        "max_ms": round(float(max(ms)), 2),
        "iqr_ms": [round(float(q25), 2), round(float(q75), 2)],
        "repeats": len(ms),
    }


def ratio(num: list[float], den: list[float], value: float, target: float | None, at_least: bool) -> dict:
    """The ratio of medians and the spread of the per-pair ratios (pair i: repeat i of each side);
    ``target`` None: a comparison without a target (openfer against its own ONNX Runtime path)."""
    pairs = [a / b for a, b in zip(num, den, strict=True)]
    return {
        "value": round(value, 3),
        "target": None if target is None else (">= " if at_least else "<= ") + str(target),
        "met": None if target is None else bool(value >= target if at_least else value <= target),
        "pairs_median": round(float(np.median(pairs)), 3),
        "pairs_min": round(min(pairs), 3),
        "pairs_max": round(max(pairs), 3),
    }


def alternate(sides: dict[str, tuple[Worker, str, dict]], repeats: int) -> dict[str, list[dict]]:
    """One untimed warm-up per side, then ``repeats`` rounds, the order reversed every other round."""
    for w, op, args in sides.values():
        w.call(op, **args)
    runs: dict[str, list[dict]] = {k: [] for k in sides}
    names = list(sides)
    for r in range(repeats):
        for k in names if r % 2 == 0 else names[::-1]:
            w, op, args = sides[k]
            runs[k].append(w.call(op, **args))
    return runs


def video_side(runs: list[dict]) -> dict:
    ms = [r["ms"] for r in runs]
    s = stats(ms)
    n = runs[0]["frames"]
    return {
        **s,
        "frames": n,
        "frames_per_second": round(n * 1000 / s["median_ms"], 1),
        "faces_per_frame": round(runs[0]["faces"] / max(n, 1), 2),
    }


def bench(a: argparse.Namespace, cores: int, peer: str | None, clips: dict[str, tuple[Path, int]]) -> dict:
    cpu = min(os.sched_getaffinity(0)) if cores == 1 else None
    cfg = json.dumps({"cpu": cpu, "runtime": a.runtime})
    of = Worker([sys.executable, __file__, "--worker", cfg], "openfer")
    ortw = (Worker([sys.executable, __file__, "--worker", json.dumps({"cpu": cpu, "runtime": "onnxruntime"})],
                   "openfer_onnxruntime") if a.vs_onnxruntime else None)
    mp = Worker([peer, "-c", MEDIAPIPE_WORKER, cfg], "mediapipe") if peer else None
    out: dict = {
        "cores": cores,
        "pinned_cpu": cpu,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "openfer_worker": of.ready,
        "mediapipe_worker": mp.ready if mp else None,
        "openfer_onnxruntime_worker": ortw.ready if ortw else None,
        "video": {},
        "photo": {},
        "faces_multi_face_jpg": {},
        "ratios": {},
        # 1 core: the best ratio openfer's models allow, were everything around them (and the
        # detector's and crops' resizing) free: model run time + decode against MediaPipe's whole run
        "floors": {},
    }
    t0 = time.perf_counter()
    try:
        for name, (clip, nmax) in clips.items():
            args = {"clip": str(clip), "max_faces": nmax}
            sides = {"openfer": (of, "video", args)}
            if ortw:
                sides["openfer_onnxruntime"] = (ortw, "video", args)
            if mp:
                sides["mediapipe"] = (mp, "video", args)
            runs = alternate(sides, a.repeats)
            dec = {"openfer": of.call("decode", clip=str(clip))}
            if mp:
                dec["mediapipe"] = mp.call("decode", clip=str(clip))
            row = {k: video_side(v) for k, v in runs.items()}
            for k, v in runs.items():
                if "runtimes" in v[0]:
                    row[k]["runtimes"] = v[0]["runtimes"]
            for k, d in dec.items():
                row[k]["decode_only_frames_per_second"] = round(d["frames"] * 1000 / d["ms"], 1)
            for k, v in runs.items():
                if "model_ms" in v[0]:  # an openfer side: the models' share, and the floor it sets
                    n = v[0]["frames"]
                    per_frame = float(np.median([r["model_ms"] for r in v])) / max(n, 1)
                    row[k]["model_ms_per_frame"] = round(per_frame, 2)
                    row[k]["decode_ms_per_frame"] = round(dec["openfer"]["ms"] / max(dec["openfer"]["frames"], 1), 2)
            out["video"][name] = row
            fps = {k: [r["frames"] * 1000 / r["ms"] for r in v] for k, v in runs.items()}
            if ortw:
                value = row["openfer"]["frames_per_second"] / row["openfer_onnxruntime"]["frames_per_second"]
                out["ratios"][f"video {name}: openfer fps / openfer onnxruntime fps"] = ratio(
                    fps["openfer"], fps["openfer_onnxruntime"], value, None, True
                )
            if mp:
                value = row["openfer"]["frames_per_second"] / row["mediapipe"]["frames_per_second"]
                out["ratios"][f"video {name}: openfer fps / mediapipe fps"] = ratio(
                    fps["openfer"], fps["mediapipe"], value, TARGETS["video"], True
                )
                if cores == 1 and "model_ms_per_frame" in row["openfer"]:
                    floor = row["openfer"]["model_ms_per_frame"] + row["openfer"]["decode_ms_per_frame"]
                    out["floors"][f"video {name}"] = {
                        "openfer_models_plus_decode_ms_per_frame": round(floor, 2),
                        "mediapipe_ms_per_frame": round(1000 / row["mediapipe"]["frames_per_second"], 2),
                        "best_ratio": round(1000 / floor / row["mediapipe"]["frames_per_second"], 3),
                        "target": TARGETS["video"],
                    }
            print(
                f"[{cores} core(s)] {name}: "
                + ", ".join(f"{k} {v['frames_per_second']} frames/s" for k, v in row.items()),
                flush=True,
            )
        photo = str(PHOTOS / "single_face.jpg")
        sides = {
            "openfer_default": (of, "photo", {"path": photo, "mode": "default"}),
            "openfer_fast": (of, "photo", {"path": photo, "mode": "fast"}),
        }
        if ortw:
            sides["openfer_onnxruntime_default"] = (ortw, "photo", {"path": photo, "mode": "default"})
            sides["openfer_onnxruntime_fast"] = (ortw, "photo", {"path": photo, "mode": "fast"})
        if mp:
            sides["mediapipe_static"] = (mp, "photo", {"path": photo, "mode": "static"})
        runs = alternate(sides, a.photo_repeats)
        for k, v in runs.items():
            out["photo"][k] = {
                **stats([r["ms"] for r in v]),
                "faces": v[0]["faces"],
                "points": v[0]["points"],
                **({"runtimes": v[0]["runtimes"]} if "runtimes" in v[0] else {}),
            }
            if "model_ms" in v[0]:
                out["photo"][k]["model_median_ms"] = round(float(np.median([r["model_ms"] for r in v])), 2)
                out["photo"][k]["read_median_ms"] = round(float(np.median([r["read_ms"] for r in v])), 2)
            if "stages_ms" in v[0]:
                keys = v[0]["stages_ms"]
                out["photo"][k]["stages_median_ms"] = {
                    s: round(float(np.median([r["stages_ms"].get(s, 0.0) for r in v])), 2) for s in keys
                }
        multi = str(PHOTOS / "multi_face.jpg")
        out["faces_multi_face_jpg"] = {
            "openfer_default": of.call("photo", path=multi, mode="default")["faces"],
            "openfer_fast": of.call("photo", path=multi, mode="fast")["faces"],
            "mediapipe_static_max10": mp.call("photo", path=multi, mode="static", max_faces=10)["faces"]
            if mp
            else None,
        }
        ms = {k: [r["ms"] for r in v] for k, v in runs.items()}
        med = {k: v["median_ms"] for k, v in out["photo"].items()}
        if ortw:
            for mode in ("default", "fast"):
                out["ratios"][f"photo {mode}: openfer onnxruntime ms / openfer ms"] = ratio(
                    ms[f"openfer_onnxruntime_{mode}"], ms[f"openfer_{mode}"],
                    med[f"openfer_onnxruntime_{mode}"] / med[f"openfer_{mode}"], None, True,
                )
        if mp:
            out["ratios"]["photo: mediapipe ms / openfer fast ms"] = ratio(
                ms["mediapipe_static"],
                ms["openfer_fast"],
                med["mediapipe_static"] / med["openfer_fast"],
                TARGETS["photo_fast"],
                True,
            )
            out["ratios"]["photo: openfer default ms / mediapipe ms"] = ratio(
                ms["openfer_default"],
                ms["mediapipe_static"],
                med["openfer_default"] / med["mediapipe_static"],
                TARGETS["photo_default"],
                False,
            )
        if mp and cores == 1 and "model_median_ms" in out["photo"]["openfer_fast"]:
            for mode, key in (("fast", "photo_fast"), ("default", "photo_default")):
                side = out["photo"][f"openfer_{mode}"]
                floor = side["model_median_ms"] + side["read_median_ms"]
                mp_ms = med["mediapipe_static"]
                out["floors"][f"photo {mode}"] = {
                    "openfer_models_plus_read_ms": round(floor, 2),
                    "mediapipe_ms": mp_ms,
                    "best_ratio": round(mp_ms / floor if mode == "fast" else floor / mp_ms, 3),
                    "target": TARGETS[key],
                }
        print(
            f"[{cores} core(s)] single_face.jpg: "
            + ", ".join(f"{k} {v['median_ms']} ms" for k, v in out["photo"].items()),
            flush=True,
        )
    finally:
        of.close()
        if ortw:
            ortw.close()
        if mp:
            mp.close()
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def tflite_files(peer: str | None, task: str | None, tmp: Path, extra: list[str] = ()) -> dict[str, str]:
    """The ``.tflite`` twin of each shipped MediaPipe ONNX model, from models.toml's ``source``; an
    ``extra`` file whose name ends a model's source (e.g. ``face_detection_full_range.tflite`` for
    ``blazeface_full``) is that model's twin."""
    import tomllib

    found: dict[str, str] = {}
    wheel = None
    if peer:
        wheel = subprocess.run(
            [peer, "-c", "import mediapipe, os; print(os.path.dirname(mediapipe.__file__))"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    reg = tomllib.loads((ROOT / "src" / "openfer" / "models" / "models.toml").read_text())
    for name, e in reg.items():
        src = e.get("source", "")
        twin = [x for x in extra if src.endswith("/" + Path(x).name)]
        if twin:
            found[name] = twin[0]
        elif ".whl!" in src and wheel:
            p = Path(wheel).parent / src.split("!", 1)[1]
            if p.is_file():
                found[name] = str(p)
        elif ".task!" in src and task:
            member = src.split("!", 1)[1]
            with zipfile.ZipFile(task) as z:
                found[name] = z.extract(member, tmp)
    return found


def bench_models(a: argparse.Namespace, peer: str | None) -> dict:
    """Each model alone: ONNX Runtime vs LiteRT (one thread, warm), and the ORT option sweep."""
    cfg = json.dumps({"cpu": None})
    of = Worker([sys.executable, __file__, "--worker", cfg], "openfer")
    lt = Worker([a.litert_python, "-c", LITERT_WORKER, cfg], "litert") if a.litert_python else None
    out: dict = {
        "litert_worker": lt.ready if lt else None,
        "loadavg_before": list(os.getloadavg()),
        "per_model": {},
        "ort_options": {},
    }
    rows = [
        ("blazeface_short", 1),
        ("blazeface_short", 19),
        ("blazeface_full", 1),
        ("facemesh_v2", 1),
        ("facemesh_v2", 5),
        ("blendshapes", 1),
        ("fernet_s", 1),
        ("fernet_s", 2),
        ("fernet_s", 5),
        ("facemesh", 1),
        ("iris", 1),
    ]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            files = tflite_files(peer, a.mediapipe_task, Path(tmp), a.extra_tflite) if lt else {}
            for name, batch in rows:
                sides = {"onnxruntime": (of, "model", {"name": name, "batch": batch})}
                if name in files:
                    sides["litert"] = (lt, "model", {"path": files[name], "batch": batch})
                runs = alternate(sides, 3)
                row = {k: stats([t for r in v for t in r["ms"]]) for k, v in runs.items()}
                row["input_shape"] = runs["onnxruntime"][0]["shape"]
                out["per_model"][f"{name} x{batch}"] = row
                print(
                    f"model {name} x{batch}: "
                    + ", ".join(f"{k} {v['median_ms']} ms" for k, v in row.items() if k != "input_shape"),
                    flush=True,
                )
            for path in [x for x in a.extra_tflite if x not in files.values()] if lt else []:  # LiteRT only
                runs = alternate({"litert": (lt, "model", {"path": path})}, 3)
                out["per_model"][f"{Path(path).stem} x1 (tflite only)"] = {
                    "litert": stats([t for r in runs["litert"] for t in r["ms"]]),
                    "input_shape": runs["litert"][0]["shape"],
                }
        for name in ("facemesh_v2", "fernet_s"):
            sides = {
                f"level={lv} threads={th} spinning={sp}": (
                    of,
                    "model",
                    {"name": name, "threads": th, "level": lv, "spinning": sp},
                )
                for lv in ("basic", "extended", "all")
                for th in (1, 2)
                for sp in (0, 1)
            }
            runs = alternate(sides, 3)
            out["ort_options"][name] = {k: stats([t for r in v for t in r["ms"]]) for k, v in runs.items()}
            best = min(out["ort_options"][name].items(), key=lambda kv: kv[1]["median_ms"])
            print(f"ORT options {name}: best {best[0]} {best[1]['median_ms']} ms", flush=True)
    finally:
        of.close()
        if lt:
            lt.close()
    out["loadavg_after"] = list(os.getloadavg())
    return out


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        openfer_worker(json.loads(sys.argv[2]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument(
        "--mediapipe-python",
        default=os.environ.get("OPENFER_MEDIAPIPE_PYTHON"),
        help="python of a venv with mediapipe==0.10.21 (default: $OPENFER_MEDIAPIPE_PYTHON)",
    )
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of each clip per side")
    ap.add_argument("--photo-repeats", type=int, default=15)
    ap.add_argument("--cores", type=int, nargs="+", default=[1], choices=[1, 2])
    ap.add_argument("--runtime", default="auto", choices=["auto", "onnxruntime", "litert"],
                    help="AnalyzerOptions.runtime of the openfer side (default auto: LiteRT where installed)")
    ap.add_argument("--vs-onnxruntime", action="store_true",
                    help="add a third side: openfer with runtime=onnxruntime (the 0.1 runtime), same run")
    ap.add_argument("--photos-only", action="store_true", help="skip the video clips (a quick photo A/B)")
    ap.add_argument("--models", action="store_true", help="also time each model alone and the ORT options")
    ap.add_argument("--models-only", action="store_true", help="only --models (no peer comparison)")
    ap.add_argument("--litert-python", help="python of a venv with ai-edge-litert (for --models)")
    ap.add_argument("--mediapipe-task", help="face_landmarker_v2_with_blendshapes.task (for --models)")
    ap.add_argument("--extra-tflite", nargs="*", default=[], help="more .tflite files to time under LiteRT")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "peers.json"))
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_pipeline import machine
    from bench_video import five_face_clip

    from openfer.io.tables import write_json

    peer, why = a.mediapipe_python, None
    if not peer:
        why = "no --mediapipe-python and no $OPENFER_MEDIAPIPE_PYTHON"
    elif not Path(peer).is_file():
        why = f"{peer} does not exist"
    elif subprocess.run([peer, "-c", "import mediapipe"], capture_output=True).returncode != 0:
        why = f"{peer} cannot import mediapipe"
    if why:
        print(f"MediaPipe peer skipped ({why}); measuring openfer alone, no ratios", flush=True)
        peer = None
    res = {
        "suite": "peers",
        "machine": {**machine(), "nice": os.nice(0)},
        "settings": {
            "repeats": a.repeats,
            "photo_repeats": a.photo_repeats,
            "warmup": 1,
            "order": "A B, then B A, alternating per round",
            "cores": a.cores,
            "runtime": a.runtime,
            "vs_onnxruntime": a.vs_onnxruntime,
        },
        "peer": {"available": peer is not None, "skipped_because": why, "python": peer},
        "targets": TARGETS,
        "runs": {},
        "models": None,
    }
    with tempfile.TemporaryDirectory() as tmp:
        clips = {"single_face.mp4": (VIDEOS / "single_face.mp4", 1)}
        if (VIDEOS / "WolfgangLanger_Pexels.mp4").is_file():
            clips["WolfgangLanger_Pexels.mp4"] = (VIDEOS / "WolfgangLanger_Pexels.mp4", 1)
        clips["five_faces_pan.mp4"] = (five_face_clip(Path(tmp) / "five.mp4"), 5)
        if a.photos_only:
            clips = {}
        for cores in [] if a.models_only else a.cores:
            res["runs"][str(cores)] = bench(a, cores, peer, clips)
    if a.models or a.models_only:
        res["models"] = bench_models(a, peer)
    write_json(res, a.out)
    for cores, r in res["runs"].items():
        for k, v in r["ratios"].items():
            print(
                f"[{cores} core(s)] {k}: {v['value']} (target {v['target'] or 'none'}, "
                f"pairs {v['pairs_min']}-{v['pairs_max']}){'  NOT MET' if v['met'] is False else ''}"
            )
        for k, v in r.get("floors", {}).items():
            print(f"[{cores} core(s)] floor, {k}: best ratio {v['best_ratio']} with these models (target {v['target']})")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
