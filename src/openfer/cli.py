"""``openfer`` command line: a thin shell over the Python API.

Exit codes: 0 ok, 2 usage error, 3 bad input (reported per file; the rest of a batch completes),
4 model error, 5 a missing optional dependency (the message names the extra to install), 6 an output
that cannot be written (the message names the file; the other outputs are still written).
``--debug`` shows tracebacks. Every message is one line: names are shown with undecodable bytes as
``\\xNN`` and control characters escaped (:func:`openfer.io.text.printable`).
"""

from __future__ import annotations

import argparse
import difflib
import logging
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .errors import InputError, MissingDependencyError, ModelError, OpenFerError, OutputError
from .io.text import printable
from .runtime.litert import RUNTIMES

EXIT_OK, EXIT_USAGE, EXIT_INPUT, EXIT_MODEL, EXIT_DEPENDENCY, EXIT_OUTPUT = 0, 2, 3, 4, 5, 6
log = logging.getLogger("openfer")


def _error(e: BaseException | str, prefix: str = "error") -> None:
    """Print one error line on stderr (names escaped: always exactly one line)."""
    print(f"{prefix}: {printable(str(e))}", file=sys.stderr)


class _OneLineFormatter(logging.Formatter):
    """Log records as ``LEVEL: message`` on one line, names escaped (warnings name files)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        head, sep, tail = text.partition(": ")
        return head + sep + printable(tail) if record.exc_info is None else text


class _Parser(argparse.ArgumentParser):
    """argparse with did-you-mean suggestions for unknown options and commands."""

    def _all_options(self) -> list[str]:
        opts = [o for a in self._actions for o in a.option_strings]
        for a in self._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub in a.choices.values():
                    opts += [o for sa in sub._actions for o in sa.option_strings]
        return opts

    def error(self, message: str) -> None:  # type: ignore[override]
        if "unrecognized arguments:" in message:
            known = self._all_options()
            for w in message.split("unrecognized arguments:", 1)[1].split():
                flag = w.split("=")[0]
                m = difflib.get_close_matches(flag, [k for k in known if k != flag], n=1, cutoff=0.75) if w.startswith("-") else []
                if m:  # never the unknown flag itself (another command may have it)
                    message += f" (did you mean {m[0]}?)"
                    break
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _demo_image() -> Path:
    return Path(__file__).resolve().parent / "assets" / "demo.jpg"


def _add_analyze(sub: argparse._SubParsersAction) -> None:
    from .pipeline import PRESETS, AnalyzerOptions

    d = AnalyzerOptions()
    p = sub.add_parser("analyze", help="analyse images (files, folders, globs); no path: the bundled demo photo")
    p.add_argument("paths", nargs="*", help="image files, folders or glob patterns")
    p.add_argument("--json", metavar="OUT", help="write results as JSON ('-': standard output)")
    p.add_argument("--csv", metavar="OUT", help="write one row per face (and per image without a face or with an "
                   "error, see 'status') as CSV ('-': standard output)")
    p.add_argument("--parquet", metavar="OUT", help="write one row per face as Parquet (needs openfer[tables])")
    p.add_argument("--annotate", metavar="DIR", help="write annotated images into DIR")
    p.add_argument("--draw", choices=("auto", "box", "points", "mesh"), default="auto",
                   help="what annotated images show besides box and label: the landmarks (points), their "
                   "triangulation (mesh); auto: points and a probability panel for one face, box only for several")
    p.add_argument("--landmarks", action="store_true", help="include the 478 landmarks in JSON/CSV/Parquet")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS))
    p.add_argument("--min-face", type=float, default=None,
                   help=f"smallest face height in pixels to search for (default {d.min_face:g}; 0: whole image only)")
    p.add_argument("--detector", default=None, metavar="MODEL",
                   help="face detector: blazeface_full (the default preset's) or blazeface_short (fast's), "
                   "or a BlazeFace .onnx, for the whole search; default: the preset's (video's: short range for "
                   "the whole image, full range for the small-face search)")
    p.add_argument("--recursive", "-r", action="store_true", help="recurse into folders")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted batch (its finished images are kept in <first output>.openfer-work/)")
    p.add_argument("--overwrite", action="store_true", help="discard an interrupted batch's work and start again")
    p.add_argument("--max-pixels", type=_positive_int, default=d.max_pixels, metavar="N",
                   help=f"largest image (width x height) to decode (default {d.max_pixels}); larger ones are an error")
    p.add_argument("--threads", type=int, default=d.threads, help="threads per model (0: the runtime's default)")
    _add_runtime(p)
    _add_engine(p, "images")
    p.add_argument("--va-model", default=d.va_model, metavar="MODEL",
                   help="valence/arousal model (.onnx from `openfer train --task va`); default: derived from the expression")
    p.add_argument("--quiet", "-q", action="store_true", help="no table on the terminal")
    p.add_argument("--aus", action="store_true", help="show action units (intensity >= 1) in the table")
    p.add_argument("--explain", action="store_true", help="show each face's evidence-based reason; with --annotate also "
                   "write an occlusion-saliency overlay (<name>_saliency.jpg)")


def _add_runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runtime", choices=RUNTIMES, default=None,
                   help="auto (default): the MediaPipe models and fernet_s_int8 on LiteRT when ai-edge-litert is "
                   "installed (pip install \"openfer[litert]\"), else ONNX Runtime; onnxruntime: every model on ONNX Runtime")
    p.add_argument("--expression-model", default=None, metavar="MODEL",
                   help="fernet_s (the default preset's), fernet_s_int8 (fast's and video's: int8, 0.54x the time) "
                   "or an openfer expression .onnx; default: the preset's")


def _model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The --runtime and --expression-model overrides that were given."""
    out: dict[str, Any] = {}
    if args.runtime is not None:
        out["runtime"] = args.runtime
    if args.expression_model is not None:
        out["expression_model"] = args.expression_model
    return out


def _add_engine(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help=f"analyse the {what} with N processes, one analyzer each (threads split between them); "
                   "with --engine ray: N Ray workers (default: one per CPU of the cluster)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="where the analysis runs: this machine (local), or a Ray cluster (needs openfer[ray]; "
                   "without --ray-address a local one is started for the job)")
    p.add_argument("--ray-address", metavar="ADDR", default=None,
                   help="the Ray cluster to join (e.g. auto, or HOST:6379 from `ray start --head`)")


def _engine(args: argparse.Namespace) -> Any:
    """A context manager giving the batch/video engine the arguments ask for (``None``: local)."""
    import contextlib

    if args.engine != "ray":
        if args.ray_address:
            raise InputError("--ray-address needs --engine ray")
        return contextlib.nullcontext(None)
    from .scale.ray_engine import RayEngine

    return RayEngine(args.ray_address, workers=args.workers)


def _cmd_analyze(args: argparse.Namespace) -> int:
    from .batch import STDOUT, BatchOutputs, run_batch
    from .extras import require
    from .pipeline import Analyzer

    if args.parquet:  # before the analysis, not after it
        require("pandas", "tables", "Parquet output")
        require("pyarrow", "tables", "Parquet output")
    outputs = BatchOutputs(json=args.json, csv=args.csv, parquet=args.parquet, annotate=args.annotate,
                           landmarks=args.landmarks, saliency=args.explain, draw=args.draw)
    overrides: dict = {"threads": args.threads, "max_pixels": args.max_pixels}
    if args.va_model:
        overrides["va_model"] = args.va_model
    if args.min_face is not None:
        overrides["min_face"] = args.min_face or None
    if args.detector is not None:  # the given detector does the whole search (no second search detector)
        overrides["detector"], overrides["search_detector"] = args.detector, None
    overrides |= _model_overrides(args)
    analyzer = Analyzer(args.preset, **overrides)
    table = not args.quiet and STDOUT not in (args.json, args.csv)  # stdout carries the data then
    progress = _Progress("images", unit="images")
    classes = analyzer.classes

    def on_row(row) -> None:  # noqa: ANN001 - batch.ImageRow
        if table:
            progress.clear()
            _print_table(row, classes, aus=args.aus, reasons=args.explain)

    def on_error(msg: str) -> None:
        progress.clear()
        _error(msg)

    inputs = args.paths or [str(_demo_image())]
    try:
        with _engine(args) as engine:
            summary = run_batch(analyzer, inputs, outputs, recursive=args.recursive, resume=args.resume,
                                overwrite=args.overwrite, on_row=on_row, on_error=on_error,
                                progress=None if args.quiet else progress,
                                workers=1 if engine is not None else args.workers or 1, engine=engine)
    except KeyboardInterrupt:
        progress.close()
        print("interrupted: finished images are kept; rerun with --resume to continue", file=sys.stderr)
        return 130
    progress.close()
    tail = f", {len(summary.unwritten)} output(s) not written" if summary.unwritten else ""
    resumed = f" ({summary.resumed} from the unfinished run)" if summary.resumed else ""
    print(f"{summary.images} image(s){resumed}, {summary.faces} face(s), {summary.no_face} without a face, "
          f"{summary.failed} failed{tail}", file=sys.stderr)
    if summary.skipped_in_subfolders:
        print(f"note: {summary.skipped_in_subfolders} image(s) in subfolders were skipped: add -r to include them",
              file=sys.stderr)
    return EXIT_OUTPUT if summary.unwritten else EXIT_INPUT if summary.failed else EXIT_OK


def _print_table(row, classes, aus: bool = False, reasons: bool = False) -> None:  # noqa: ANN001
    """The terminal table of one input's row (``batch.ImageRow``)."""
    from .core.au import AU_NAMES

    if row.error:
        return  # reported as an error line
    recs = row.records
    print(f"{printable(row.source)}  ({row.width}x{row.height}): {len(recs)} face(s)")
    if not recs:
        return
    print(f"  {'#':>2} {'box (x1,y1,x2,y2)':>24} {'det':>5} {'yaw':>6} {'pitch':>6} {'roll':>6}  expression")
    for r in recs:
        top = sorted(((c, r[c]) for c in classes), key=lambda kv: -kv[1])[:3]
        tops = ", ".join(f"{c} {p:.2f}" for c, p in top)
        box = ",".join(f"{r[k]:.0f}" for k in ("x1", "y1", "x2", "y2"))
        print(f"  {r['face']:>2} {box:>24} {r['score']:5.2f} {r['yaw']:6.1f} {r['pitch']:6.1f} {r['roll']:6.1f}  "
              f"{r['label']:<10} ({tops})")
        if aus and any(n in r for n in AU_NAMES):
            active = [f"{n} {r[n]:.1f}" for n in AU_NAMES if r.get(n, 0.0) >= 1.0]
            print(f"     AUs (0-5, calibrated): {', '.join(active) or 'none >= 1'}")
        if reasons and r.get("reason") is not None:
            va = "" if r.get("valence") is None else (
                f"  [valence {r['valence']:+.2f}, arousal {r['arousal']:+.2f}, {r.get('va_source') or 'derived'}]")
            print(f"     why: {r['reason']}{va}")


def _add_video(sub: argparse._SubParsersAction) -> None:
    from .pipeline import PRESETS, AnalyzerOptions
    from .video.analyzer import VideoOptions
    from .video.timeline import SMOOTH_METHODS

    d, v = AnalyzerOptions(), VideoOptions()
    p = sub.add_parser("video", help="analyse videos or image sequences: per-frame timeline with track ids")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video files, folders or image globs; a folder that holds videos gives each of them "
                   "(into OUT/<name>/), a folder without videos is one image sequence")
    p.add_argument("--sequence", action="store_true",
                   help="read every folder as an image sequence, even one that holds videos")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--every", type=int, default=v.every, metavar="N", help="analyse every N-th frame")
    g.add_argument(
        "--fps", type=float, default=v.fps, metavar="F", help="analyse at most F frames per second"
    )
    p.add_argument("--start", type=float, default=v.start, metavar="S", help="start at S seconds")
    p.add_argument("--end", type=float, default=v.end, metavar="S", help="stop at S seconds")
    p.add_argument(
        "--out",
        default="openfer-video",
        metavar="DIR",
        help="output folder; each input writes DIR/<name>/ (default: %(default)s)",
    )
    state = p.add_mutually_exclusive_group()
    state.add_argument("--resume", action="store_true", help="continue unfinished runs in the output folders")
    state.add_argument("--overwrite", action="store_true",
                       help="discard earlier runs in the output folders (only the files openfer wrote) and start again")
    p.add_argument(
        "--annotate", action="store_true", help="also write annotated.mp4 (boxes, track ids, labels)"
    )
    p.add_argument(
        "--plots",
        action="store_true",
        help="also write plots/track-<id>.png: probabilities, valence/arousal, AUs, events "
        "(needs openfer[plots])",
    )
    p.add_argument(
        "--detect-every",
        type=int,
        default=v.detect_every,
        metavar="N",
        help=f"run the face detector every N analysed frames (default {v.detect_every})",
    )
    p.add_argument(
        "--sequence-fps",
        type=float,
        default=v.sequence_fps,
        metavar="F",
        help=f"frame rate of image sequences (default {v.sequence_fps:g})",
    )
    _add_au_baseline(p, v.au_baseline)
    p.add_argument("--preset", default="video", choices=sorted(PRESETS))
    p.add_argument(
        "--min-face",
        type=float,
        default=None,
        help=f"smallest face height in pixels to search for (default {d.min_face:g}; 0: whole image only)",
    )
    p.add_argument("--threads", type=int, default=None, help="threads per model (0: the runtime's default; default: the preset's)")
    _add_runtime(p)
    p.add_argument(
        "--parquet", action="store_true", help="also write timeline.parquet (needs openfer[tables])"
    )
    p.add_argument(
        "--smooth",
        default="none",
        choices=("none", *SMOOTH_METHODS),
        help="also write timeline_smooth.csv: boxes, probabilities, valence/arousal and AUs smoothed "
        "over time per track, raw values alongside (default: %(default)s)",
    )
    _add_engine(p, "videos (one job per video)")
    p.add_argument("--quiet", "-q", action="store_true", help="no per-track summary on the terminal")


def _add_au_baseline(p: argparse.ArgumentParser, default: str) -> None:
    from .video.baseline import BASELINE_MODES

    p.add_argument(
        "--au-baseline",
        default=default,
        choices=BASELINE_MODES,
        help="measure each face's AUs against its own resting face once seen (neutral), or always "
        "against the population reference face (none) (default: %(default)s)",
    )


def _video_out_dirs(inputs: list[str], out: Path) -> list[Path]:
    """One folder per input, named after it; repeated names get -2, -3..."""
    dirs, seen = [], {}
    for text in inputs:
        stem = Path(text.rstrip("/\\")).stem or "video"
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
        seen[stem] = seen.get(stem, 0) + 1
        dirs.append(out / (stem if seen[stem] == 1 else f"{stem}-{seen[stem]}"))
    return dirs


class _Progress:
    """``done / total <unit>, rate, ETA`` on one rewritten stderr line (only when stderr is a TTY)."""

    def __init__(self, name: str, unit: str = "frames") -> None:
        import time

        self.name, self._time, self.t0, self.last = name, time.monotonic, time.monotonic(), 0.0
        self.enabled = sys.stderr.isatty()
        self.start_done: int | None = None
        self.unit, self.shown = unit, False

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        now = self._time()
        if self.start_done is None:
            self.start_done = done - 1
        if now - self.last < 0.25 and done != total:
            return
        self.last = now
        rate = (done - self.start_done) / max(now - self.t0, 1e-9)
        per = "fps" if self.unit == "frames" else f"{self.unit}/s"
        msg = f"{self.name}: {done}" + (f"/{total}" if total else "") + f" {self.unit}, {rate:.1f} {per}"
        if total and rate > 0:
            eta = max(total - done, 0) / rate
            msg += f", ETA {int(eta // 60)}:{int(eta % 60):02d}"
        print("\r" + msg.ljust(70), end="", file=sys.stderr, flush=True)
        self.shown = True

    def clear(self) -> None:
        """Erase the progress line, so that a table or an error line can be printed."""
        if self.shown:
            print("\r" + " " * 70 + "\r", end="", file=sys.stderr, flush=True)
            self.shown = False

    def close(self) -> None:
        if self.shown:
            print(file=sys.stderr, flush=True)
            self.shown = False


def _cmd_video(args: argparse.Namespace) -> int:
    from .scale.videos import VideoTask, run_video_tasks
    from .video.reader import video_inputs

    overrides: dict = {
        "every": args.every,
        "fps": args.fps,
        "start": args.start,
        "end": args.end,
        "detect_every": args.detect_every,
        "sequence_fps": args.sequence_fps,
        "au_baseline": args.au_baseline,
    }
    if args.min_face is not None:
        overrides["min_face"] = args.min_face or None
    if args.threads is not None:
        overrides["threads"] = args.threads
    overrides |= _model_overrides(args)
    from .video import VideoAnalyzer

    VideoAnalyzer.check_options(args.preset, **overrides)  # a bad option is one error, not one per video
    inputs, notes = video_inputs(args.inputs, sequence=args.sequence)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    tasks = [
        VideoTask(i, text, str(out), args.preset, overrides, resume=args.resume, overwrite=args.overwrite,
                  annotate=args.annotate, plots=args.plots, parquet=args.parquet,
                  smooth=None if args.smooth == "none" else args.smooth)
        for i, (text, out) in enumerate(zip(inputs, _video_out_dirs(inputs, Path(args.out)), strict=True))
    ]
    bars: dict[int, _Progress] = {}

    def on_frame(task: VideoTask) -> _Progress:
        bars[task.index] = _Progress(Path(task.source).name)
        return bars[task.index]

    failed = unwritten = 0
    with _engine(args) as engine:
        workers = 1 if engine is not None else args.workers or 1
        for done in run_video_tasks(tasks, workers=workers, engine=engine, on_frame=on_frame):
            if done.index in bars:
                bars.pop(done.index).close()
            if done.error is not None:  # this video failed; the others still run
                failed += 1
                unwritten += done.output_error
                _error(done.error)
                continue
            _print_video(done.result, done.source, done.out_dir, args.quiet)
    return EXIT_OUTPUT if unwritten else EXIT_INPUT if failed else EXIT_OK


def _print_video(res, text: str, out: str, quiet: bool) -> None:  # noqa: ANN001 - video.job.VideoJobResult
    state = (
        "already complete, "
        if res.already_complete
        else (f"resumed after {res.frames_before} frames, " if res.resumed else "")
    )
    print(f"{text}: {state}{res.frames} frame(s), {res.rows} row(s), {len(res.tracks)} track(s) -> {out}",
          file=sys.stderr)
    if quiet:
        return
    for t in res.tracks:
        top = sorted(t.shares.items(), key=lambda kv: -kv[1])[:3]
        shares = ", ".join(f"{c} {p:.0%}" for c, p in top if p > 0)
        print(
            f"  track {t.track:>3}: {t.frames:>6} frames, {t.first_time:8.2f}-{t.last_time:8.2f} s, "
            f"mostly {t.dominant} ({shares})"
        )
    print("\n".join(f"  {d.caption}" for d in res.dynamics) or "  no faces")


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return n


def _add_live(sub: argparse._SubParsersAction) -> None:
    from .pipeline import PRESETS
    from .video.analyzer import VideoOptions

    v = VideoOptions()
    p = sub.add_parser(
        "live",
        help="analyse a webcam or stream live: annotated window, or CSV rows with --headless",
        description="Analyse a webcam (or a video file / stream URL) frame by frame. Window: q or Esc "
        "quits. --headless: one CSV row per face per frame on stdout (the columns of openfer video's "
        "timeline.csv), fps on stderr. Ctrl-C ends either cleanly. Exit codes: 2 when the window "
        "cannot be shown (OpenCV without GUI: use --headless), 3 when the source cannot be read.",
    )
    p.add_argument(
        "--camera",
        default="0",
        metavar="SOURCE",
        help="camera index, video file or stream URL (rtsp://, http://) (default: %(default)s)",
    )
    p.add_argument("--headless", action="store_true", help="no window: CSV rows on stdout, status on stderr")
    p.add_argument("--preset", default="video", choices=sorted(PRESETS))
    p.add_argument("--max-frames", type=_positive_int, default=None, metavar="N", help="stop after N frames")
    p.add_argument("--csv", metavar="OUT", help="also write the rows to OUT (complete after every frame)")
    p.add_argument(
        "--detect-every",
        type=int,
        default=v.detect_every,
        metavar="N",
        help=f"run the face detector every N frames (default {v.detect_every})",
    )
    _add_au_baseline(p, v.au_baseline)
    p.add_argument("--threads", type=int, default=None, help="threads per model (0: the runtime's default; default: the preset's)")
    _add_runtime(p)


def _cmd_live(args: argparse.Namespace) -> int:
    import contextlib
    import os
    import time

    from .video import VideoAnalyzer
    from .video.live import NoGuiError, TimelineStream, check_gui, run_live

    if not args.headless:
        try:
            check_gui()  # before loading models or opening the camera
        except NoGuiError as e:
            _error(e)
            return EXIT_USAGE
    threads = {} if args.threads is None else {"threads": args.threads}
    threads |= _model_overrides(args)
    video = VideoAnalyzer(
        args.preset, detect_every=args.detect_every, au_baseline=args.au_baseline, **threads
    )
    with contextlib.ExitStack() as stack:
        streams = [sys.stdout] if args.headless else []
        if args.csv:
            streams.append(stack.enter_context(open(args.csv, "w", newline="")))
        rows = TimelineStream.for_video(streams, video)
        last = [time.monotonic()]

        def on_frame(frame, fps: float) -> None:  # noqa: ANN001 - VideoFrame
            rows.write(frame)
            now = time.monotonic()
            if args.headless and now - last[0] >= 1.0:
                last[0] = now
                print(f"live: frame {frame.frame_index}, {fps:.1f} fps, {len(frame.faces)} face(s)",
                      file=sys.stderr, flush=True)

        try:
            n = run_live(args.camera, video, headless=args.headless, max_frames=args.max_frames,
                         on_frame=on_frame)
        except BrokenPipeError:  # stdout closed by the reader (| head): stop quietly
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):
                pass
            return EXIT_OK
        rows.finish()
    print(f"live: {n} frame(s), {rows.rows} row(s) from {args.camera}", file=sys.stderr)
    return EXIT_OK


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    from .eval.evaluate import FORMATS

    p = sub.add_parser("evaluate", help="evaluate an expression model on a labelled data set")
    p.add_argument("data", help="FER+ root, fer2013.csv, RAF-DB basic folder, AffectNet CSV, "
                                "CSV (path,label), folder with labels.csv, or ImageFolder")
    p.add_argument("--format", choices=FORMATS, default=None, help="data set layout (default: guessed)")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"),
                   help="split for ferplus, fer2013 and rafdb (RAF-DB has no valid split)")
    p.add_argument("--votes", metavar="CSV", default=None,
                   help="FER+ fer2013new.csv: label fer2013.csv by the FER+ majority protocol")
    p.add_argument("--faces", default="crops", choices=("crops", "detect"),
                   help="crops: images are face crops; detect: run the full pipeline on photos")
    p.add_argument("--model", default=None, help="shipped model name or .onnx path (default: the preset's)")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="auto (default): a shipped model with a LiteRT twin (fernet_s_int8) runs it where ai-edge-litert "
                   "is installed; onnxruntime: the .onnx file; the report names the runtime and the file's sha256")
    p.add_argument("--json", metavar="OUT", help="write the report as JSON")
    p.add_argument("--plots", metavar="DIR",
                   help="write confusion.png and reliability.png into DIR (needs openfer[plots])")
    p.add_argument("--threads", type=int, default=0)
    g = p.add_argument_group("subgroup audit (metrics per group with bootstrap 95% intervals)")
    g.add_argument("--by", action="append", default=[], metavar="COLUMN",
                   help="group by a column of the data's CSV, or by face_size, yaw, brightness or blur "
                        "measured on the images (repeatable)")
    g.add_argument("--groups", metavar="CSV", default=None,
                   help="a side CSV path,group (paths relative to it or to the data folder)")
    g.add_argument("--report", metavar="DIR", default=None,
                   help="write subgroups.md, subgroups.json and subgroups_<by>.png into DIR")
    g.add_argument("--bootstrap", type=_positive_int, default=1000, metavar="N", help="resamples (default 1000)")
    g.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    g.add_argument("--min-group", type=_positive_int, default=30, metavar="N",
                   help="groups under N images are warned about and left out of the gaps (default 30)")
    g.add_argument("--bins", type=_positive_int, default=4, metavar="N",
                   help="quantile bins for face_size, brightness and blur (default 4)")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .components.expression import ExpressionClassifier
    from .eval.datasets import label_coverage
    from .eval.evaluate import read_dataset, score_crops, score_detect
    from .eval.subgroups import ResultRecorder
    from .io.tables import write_json
    from .pipeline import Analyzer, AnalyzerOptions

    model = args.model or AnalyzerOptions().expression_model
    rec = None
    if args.report and not (args.by or args.groups):
        raise InputError("--report writes a subgroup audit: give --by COLUMN|face_size|yaw|brightness|blur "
                         "or --groups FILE")
    # classes=None: keep every label name found, so the coverage report can name what the model lacks
    data = read_dataset(args.data, args.format, args.split, classes=None, votes=args.votes)
    progress = _Progress(data.name, unit="images")
    if args.faces == "crops":
        clf = ExpressionClassifier(model, threads=args.threads, runtime=args.runtime)
        ev = score_crops(data, clf, progress)
        used = clf.model
    else:
        an = Analyzer(expression_model=model, threads=args.threads, runtime=args.runtime)
        rec = ResultRecorder(an)  # keeps each photo's faces for a subgroup audit
        ev = score_detect(data, rec, progress)
        used = an.expression.model
    progress.close()
    cov = label_coverage(data, ev.classes)
    rep = {"model": used.name, "runtime": used.runtime, "file": used.path.name, "sha256": used.sha256,
           "data": str(args.data), "split": data.split,
           "faces": args.faces, **ev.report, "coverage": cov}
    print(f"{data.name}: n={rep['n']} accuracy={rep['accuracy']:.4f} uar={rep['uar']:.4f} "
          f"macro_f1={rep['macro_f1']:.4f} ece={rep['ece']:.4f}"
          + (f" face_found_rate={rep['face_found_rate']:.4f}" if "face_found_rate" in rep else ""))
    if cov["not_in_model"]:
        print("  classes not in the model (not scored): "
              + ", ".join(f"{c} ({k})" for c, k in cov["not_in_model"].items()))
    if cov["not_in_data"]:
        print("  model classes without samples: " + ", ".join(cov["not_in_data"]))
    if cov["unlabeled"]:
        print(f"  samples without a usable label: {cov['unlabeled']}")
    labels = rep["confusion"]["labels"]
    print("  " + " ".join(f"{c[:7]:>8}" for c in ["true\\pred"] + labels))
    for c, row in zip(labels, rep["confusion"]["matrix"], strict=True):
        print("  " + f"{c[:8]:>8} " + " ".join(f"{v:>8}" for v in row))
    if args.json:
        write_json(rep, args.json)
    if args.plots:
        from .eval.plots import plot_confusion, plot_reliability

        out = Path(args.plots)
        for path in (plot_confusion(rep, out / "confusion.png"),
                     plot_reliability(ev.probs, ev.labels, out / "reliability.png")):
            print(f"  wrote {path}")
    if args.by or args.groups:
        from .eval.audit_report import print_audit, subgroup_audits, write_subgroup_report

        sub_progress = _Progress("image attributes", unit="images")
        audits = subgroup_audits(data, ev, args.faces, args.by, args.groups, rec, args.bootstrap, args.seed,
                                 args.min_group, args.bins, progress=sub_progress)
        sub_progress.close()
        for a in audits:
            print_audit(a)
            for w in a.doc["warnings"]:
                log.warning("%s: by %s: %s", data.name, a.doc["by"], w)
        if args.report:
            meta = {k: rep[k] for k in ("model", "sha256", "data", "split", "faces")}
            meta["command"] = " ".join(["openfer evaluate", str(args.data),
                                        *([f"--split {args.split}"] if data.split else []),
                                        f"--faces {args.faces}", *(f"--by {b}" for b in args.by),
                                        *([f"--groups {args.groups}"] if args.groups else [])])
            for path in write_subgroup_report(audits, args.report, meta):
                print(f"  wrote {path}")
    return EXIT_OK


def _add_audit(sub: argparse._SubParsersAction) -> None:
    from .eval.evaluate import FORMATS

    p = sub.add_parser("audit", help="audit the expression model on a labelled data set (robustness)")
    asub = p.add_subparsers(dest="audit", metavar="AUDIT", parser_class=_Parser, required=True)
    r = asub.add_parser("robustness", help="accuracy under controlled image variations, one at a time")
    r.add_argument("data", help="a data set as openfer evaluate reads it")
    r.add_argument("--format", choices=FORMATS, default=None, help="data set layout (default: guessed)")
    r.add_argument("--split", default="test", choices=("train", "valid", "test"),
                   help="split for ferplus, fer2013 and rafdb")
    r.add_argument("--votes", metavar="CSV", default=None, help="FER+ fer2013new.csv for fer2013.csv")
    r.add_argument("--faces", default="crops", choices=("crops", "detect"),
                   help="crops: images are face crops; detect: the full pipeline on photos")
    r.add_argument("--model", default=None, help="shipped model name or .onnx path (default: the preset's)")
    r.add_argument("--out", metavar="DIR", default=None,
                   help="write robustness.md, robustness.json and robustness.png into DIR")
    r.add_argument("--limit", type=int, default=500, metavar="N",
                   help="a seeded sample of N labelled images (default 500; 0: all)")
    r.add_argument("--seed", type=int, default=0, help="sample, noise and bootstrap seed (default 0)")
    r.add_argument("--bootstrap", type=_positive_int, default=1000, metavar="N", help="resamples (default 1000)")
    r.add_argument("--no-plots", action="store_true", help="no robustness.png (no matplotlib needed)")
    r.add_argument("--threads", type=int, default=0)


def _cmd_audit(args: argparse.Namespace) -> int:
    from .eval.audit_report import write_robustness_report
    from .eval.evaluate import read_dataset
    from .eval.robustness import audit_robustness
    from .pipeline import Analyzer, AnalyzerOptions

    model = args.model or AnalyzerOptions().expression_model
    data = read_dataset(args.data, args.format, args.split, classes=None, votes=args.votes)
    if args.faces == "crops":
        from .components.expression import ExpressionClassifier

        scorer = ExpressionClassifier(model, threads=args.threads)
        name, sha = scorer.model.name, scorer.model.sha256
    else:
        scorer = Analyzer(expression_model=model, threads=args.threads)
        name, sha = scorer.expression.model.name, scorer.expression.model.sha256
    progress = _Progress(data.name, unit="images" if args.faces == "detect" else "variations")
    audit = audit_robustness(data, args.faces, scorer, args.limit, args.seed, args.bootstrap, progress=progress)
    progress.close()
    d = audit.doc
    print(f"{data.name}: n={d['n']} of {d['of']} clean accuracy={d['clean']['accuracy']:.4f}")
    for r in d["variations"]:
        print(f"  {r['variation']:<18} accuracy {r['accuracy']:.4f} change {r['change']:+.4f} "
              f"[{r['low']:+.4f}, {r['high']:+.4f}] changed {r['changed_predictions']:.3f}")
    if args.out:
        meta = {"model": name, "sha256": sha,
                "command": " ".join(["openfer audit robustness", str(args.data),
                                     *([f"--split {args.split}"] if data.split else []),
                                     f"--faces {args.faces}", f"--limit {args.limit}", f"--seed {args.seed}"])}
        for path in write_robustness_report(audit, args.out, meta, plots=not args.no_plots):
            print(f"  wrote {path}")
    return EXIT_OK


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train an expression model (needs openfer[train]: PyTorch)")
    try:
        from .train.cli import add_arguments
    except ImportError:  # pragma: no cover - torch missing is reported when the command runs
        p.add_argument("rest", nargs=argparse.REMAINDER)
        return
    add_arguments(p)


def _cmd_train(args: argparse.Namespace) -> int:
    from .extras import require

    require("torch", "train", "openfer train")
    from .train.cli import run

    if not args.debug:  # a run takes hours: show its per-epoch lines (loss, valid score, seconds)
        log.setLevel(logging.INFO)
    return run(args)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    from .service.app import DEFAULT_MAX_BODY, DEFAULT_MAX_VIDEO
    from .service.store import DEFAULT_DATA

    p = sub.add_parser("serve", help="REST service on this machine (needs openfer[serve]: FastAPI, uvicorn)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--port", type=_positive_int, default=8000)
    p.add_argument("--preset", default="default", help="analyzer preset (see openfer analyze --help)")
    p.add_argument("--max-body", type=_positive_int, default=DEFAULT_MAX_BODY, metavar="BYTES",
                   help="largest request body (default %(default)s); larger ones get 413")
    p.add_argument("--concurrency", type=_positive_int, default=1, help="analyses at a time (default 1)")
    p.add_argument("--queue", type=int, default=16, help="requests that may wait for the analyzer (then 429)")
    p.add_argument("--cors", nargs="*", default=[], metavar="ORIGIN", help="allow these browser origins (CORS)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="per-request limit of /v1/analyze, queue wait included (default %(default)g s; then 504)")
    p.add_argument("--data", default=DEFAULT_DATA, metavar="DIR",
                   help="job store: the SQLite database, uploads and results of video jobs (default: ./%(default)s)")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="video jobs run at a time, each with its own models (default %(default)s)")
    p.add_argument("--max-jobs", type=_positive_int, default=16, metavar="N",
                   help="video jobs that may wait in the queue (default %(default)s; then 429)")
    p.add_argument("--keep-hours", type=float, default=24.0, metavar="H",
                   help="remove ended jobs (files and row) this long after they end (default %(default)g)")
    p.add_argument("--max-video-bytes", type=_positive_int, default=DEFAULT_MAX_VIDEO, metavar="BYTES",
                   help="largest video upload (default %(default)s; then 413)")
    p.add_argument("--max-video-seconds", type=float, default=3600.0, metavar="S",
                   help="longest video, from its container's frame count and rate (default %(default)g; "
                   "then 400); 0: no limit")
    p.add_argument("--checkpoint-frames", type=_positive_int, default=25, metavar="N",
                   help="a running job saves its work every N analysed frames (and every 30 s); a killed "
                   "server's jobs resume from there (default %(default)s)")


def _cmd_serve(args: argparse.Namespace) -> int:
    from .extras import require
    from .service import ServiceConfig, create_app
    from .service.store import check_data_dir

    uvicorn = require("uvicorn", "serve", "openfer serve")
    try:
        config = ServiceConfig(options=args.preset, max_body_bytes=args.max_body, concurrency=args.concurrency,
                               queue=args.queue, cors_origins=tuple(args.cors), timeout=args.timeout,
                               data=args.data, workers=args.workers, max_jobs=args.max_jobs,
                               keep_hours=args.keep_hours, max_video_bytes=args.max_video_bytes,
                               max_video_seconds=args.max_video_seconds or None,
                               checkpoint_frames=args.checkpoint_frames)
    except InputError as e:
        print(f"openfer serve: error: {printable(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    try:
        check_data_dir(args.data)
    except OpenFerError as e:  # not usable (OutputError) or used by another server (FolderInUseError)
        _error(e)
        return EXIT_OUTPUT if isinstance(e, OutputError) else EXIT_INPUT
    app = create_app(config)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return EXIT_OK


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the shipped models: task, size, sha256, licence, card")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.add_argument("--verify", action="store_true", help="also check every file's sha256 against the registry")


def _cmd_models(args: argparse.Namespace) -> int:
    import json

    from .runtime.onnx import list_models, verified_file

    models = list_models()
    checked: dict[str, str] = {}
    if args.verify:
        for m in models:
            try:
                verified_file(m.name)
                checked[m.name] = "ok"
            except ModelError as e:
                checked[m.name] = f"FAILED: {e}"
    if args.json:
        rows = [{**{k: str(v) if isinstance(v, Path) else v for k, v in vars(m).items()},
                 **({"verified": checked[m.name]} if checked else {})} for m in models]
        print(json.dumps(rows, indent=1))
    else:
        print(f"{'name':<16} {'size':>8}  {'sha256':<12}  {'licence':<10}  task")
        for m in models:
            lic = m.license.split(" ")[0]
            size = f"{m.size_bytes / 2**20:.1f}M" if m.size_bytes >= 2**20 else f"{m.size_bytes / 2**10:.1f}K"
            print(f"{m.name:<16} {size:>8}  {m.sha256[:12]:<12}  {lic:<10}  {m.task}")
            extra = [f"card {m.card}"] if m.card else []
            extra += [f"sha256 {checked[m.name]}"] if checked else []
            if extra:
                print(f"{'':<16} {'; '.join(extra)}")
    return EXIT_MODEL if any(v != "ok" for v in checked.values()) else EXIT_OK


def _add_dataset(sub: argparse._SubParsersAction) -> None:
    from .dataset.cli import add_parser

    add_parser(sub)


def _cmd_dataset(args: argparse.Namespace) -> int:
    from .dataset.cli import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="openfer", description="Offline facial expression analysis.")
    p.add_argument("--version", action="version", version=f"openfer {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_analyze(sub)
    _add_video(sub)
    _add_live(sub)
    _add_evaluate(sub)
    _add_audit(sub)
    _add_train(sub)
    _add_models(sub)
    _add_serve(sub)
    _add_dataset(sub)
    return p


def _log_to_stderr(level: int) -> logging.Handler:
    """openfer's warnings (decoder messages naming a file...) as one line each on the current stderr,
    while a command runs (``main`` removes the handler after it)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter("%(levelname)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    return handler


def _safe_streams() -> None:
    """Never crash on printing a name the terminal's encoding cannot show (``PYTHONIOENCODING=ascii``,
    surrogate-escaped bytes): such characters are written as backslash escapes."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a detached or closed stream: leave it
                pass


def main(argv: list[str] | None = None) -> int:
    _safe_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handler = {"analyze": _cmd_analyze, "video": _cmd_video, "live": _cmd_live, "evaluate": _cmd_evaluate,
               "train": _cmd_train, "models": _cmd_models, "serve": _cmd_serve,
               "dataset": _cmd_dataset, "audit": _cmd_audit}[args.command]
    log_handler = _log_to_stderr(logging.DEBUG if args.debug else logging.WARNING)
    try:
        return _run(handler, args)
    finally:
        log.removeHandler(log_handler)


def _run(handler, args: argparse.Namespace) -> int:  # noqa: ANN001
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed by its reader (| head): stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as e:
        if args.debug:
            raise
        for kind, prefix, code in _EXIT_CODES:
            if isinstance(e, kind):
                _error(e, prefix)
                return code
        raise


# first match wins: the most specific types first
_EXIT_CODES: tuple[tuple[type[BaseException], str, int], ...] = (
    (MissingDependencyError, "missing dependency", EXIT_DEPENDENCY),
    (OutputError, "error", EXIT_OUTPUT),
    (InputError, "error", EXIT_INPUT),
    (ModelError, "model error", EXIT_MODEL),
    (OpenFerError, "error", EXIT_INPUT),
    (OSError, "error: cannot write output", EXIT_OUTPUT),  # an OSError no writer wrapped
)


if __name__ == "__main__":
    sys.exit(main())
