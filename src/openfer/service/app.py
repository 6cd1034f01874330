"""The REST service: ``create_app(config)`` builds the FastAPI application that ``openfer serve`` runs
(how-to, every limit and curl examples: ``docs/service.md``).

Endpoints (OpenAPI at ``/openapi.json``, interactive docs at ``/docs``):

* ``GET /healthz``: the process is alive. ``GET /readyz``: the models are loaded and the job store is
  open (503 until then).
* ``POST /v1/analyze``: one image (multipart field ``image``) → the same per-image entry as the
  ``images`` list of ``openfer analyze --json`` (``status``, ``width``, ``height``, ``error``,
  ``warnings``, ``faces``), plus ``openfer`` (version) and ``classes``. A bad image is a 400 with that
  entry (``status`` ``"error: …"``). ``landmarks=true`` adds the mesh; ``annotate=true`` adds
  ``annotated_jpeg``: the annotated image as base64 JPEG **inline** (one request, no server-side
  state to fetch or expire). The analysis goes through :func:`openfer.batch.analyze_one`, the
  function ``openfer analyze`` runs.
* Video jobs (:mod:`.jobs`, stored by :mod:`.store`): ``POST /v1/jobs`` (multipart field ``video``;
  form fields ``every``, ``fps``, ``start``, ``end``, ``detect_every``, ``au_baseline``, ``aus``,
  ``explain``, ``annotate``, ``plots``, ``parquet``, ``smooth``, as ``openfer video``'s options) →
  202 with the job (``state`` ``queued``) and ``Location: /v1/jobs/<id>``. ``GET /v1/jobs`` lists
  them, newest first; ``GET /v1/jobs/<id>`` gives the state (``queued``, ``running``, ``done``,
  ``failed``, ``cancelled``), ``frames_done``/``frames_total``, ``eta_seconds``, ``resumed_frames``,
  ``error`` and, once ended, ``results``: name → URL. ``GET /v1/jobs/<id>/<name>`` serves one of
  those names (``timeline.csv``, ``timeline.parquet``, ``timeline_smooth.csv``, ``summary.json``,
  ``captions.txt``, ``annotated.webm`` (``annotated.mp4`` where OpenCV has no VP8/VP9),
  ``plots/track-<n>.png``) and nothing else: any other name, ``..``, an absolute or URL-encoded path
  is a 404. ``DELETE /v1/jobs/<id>`` cancels a queued or
  running job (the worker stops at its next frame; the row stays as ``cancelled`` until it expires)
  or deletes an ended one; its files are removed either way. A job runs
  :func:`openfer.video.analyze_video_to_dir`, the function ``openfer video`` runs, so its
  ``timeline.csv`` is byte for byte the CLI's; a job that a killed server left running resumes from
  its checkpoint at the next start.

Limits, each a one-line JSON error ``{"error": "..."}`` with no traceback:

* request bodies over ``max_body_bytes`` (default 25 MB; video uploads: ``max_video_bytes``, default
  1 GiB) → 413, counted as the bytes arrive (an ASGI middleware: FastAPI has no cap of its own, and a
  ``Content-Length`` can lie);
* images over ``AnalyzerOptions.max_pixels`` → 400 naming the size, checked from the header before
  decoding;
* videos longer than ``max_video_seconds`` (default 3600; from the container's frame count and rate,
  before the job is accepted) → 400 naming the limit; a job never analyses past it (its ``end`` is
  capped), whatever the container claims;
* more than ``queue`` requests waiting for the analyzer → 429 (the analysis runs ``concurrency`` at
  a time; the rest wait in a bounded queue instead of piling up); more than ``max_jobs`` video jobs
  queued → 429, before the upload is read;
* an analysis that takes longer than ``timeout`` seconds (queue wait included; default 60) → 504
  (an analysis already running finishes in the background and keeps its slot until then);
* ``api_key`` set (``OPENFER_API_KEY``) → every ``/v1`` request needs ``X-API-Key`` (401 otherwise;
  compared in constant time);
* CORS is off unless ``cors_origins`` are given. Requests never name server paths or URLs: images and
  videos come only as uploaded bytes, an upload's file name only labels messages and listings
  (escaped), and job errors name the upload, not the server's folders.

The web page (``GET /``, its files under ``/static/``: ``static/`` in this package, no CDN, served
with a Content-Security-Policy that allows only this server) drives the same endpoints from a
browser: photos, a webcam, video jobs; ``GET /limits`` tells it the size limits and whether an API
key is needed (docs/service.md, "The web page").

Ended jobs (``done``, ``failed``, ``cancelled``) are removed, files and row, ``keep_hours`` (default
24) after they ended: at start-up and by a sweep every ``keep_hours / 4`` (at most every 10 minutes).
"""

# no ``from __future__ import annotations``: FastAPI reads the endpoints' annotations, which name
# classes imported inside create_app (fastapi is imported only when the service is built)
import base64
import hmac
import logging
import os
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from .. import __version__
from ..extras import require
from ..io.text import printable
from .store import DEFAULT_DATA

log = logging.getLogger("openfer")

DEFAULT_MAX_BODY = 25 * 1024 * 1024
DEFAULT_MAX_VIDEO = 1024 * 1024 * 1024


@dataclass(frozen=True)
class ServiceConfig:
    """What ``openfer serve`` is started with (``options``: an :class:`~openfer.pipeline.AnalyzerOptions`
    or a preset name). The limits are described in the module doc; ``data``: the job store's folder
    (:mod:`.store`); ``workers``: video jobs at a time; ``checkpoint_frames``: a running job saves its
    work this often (what a killed server's job resumes from). A bad value is an
    :class:`~openfer.errors.InputError` naming the field."""

    options: Any = "default"
    max_body_bytes: int = DEFAULT_MAX_BODY
    concurrency: int = 1
    queue: int = 16
    api_key: str | None = field(default_factory=lambda: os.environ.get("OPENFER_API_KEY") or None)
    cors_origins: tuple[str, ...] = ()
    timeout: float = 60.0
    data: str | os.PathLike[str] = DEFAULT_DATA
    workers: int = 1
    max_jobs: int = 16
    keep_hours: float = 24.0
    max_video_bytes: int = DEFAULT_MAX_VIDEO
    max_video_seconds: float | None = 3600.0
    checkpoint_frames: int = 25
    sweep_seconds: float | None = None  # between expiry sweeps; None: keep_hours / 4, at most 10 minutes

    def __post_init__(self) -> None:
        import math

        from ..errors import InputError

        for name in ("max_body_bytes", "concurrency", "workers", "max_jobs", "max_video_bytes", "checkpoint_frames"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name}: expected an integer >= 1, got {v!r}")
        for name, low, optional in (("timeout", 0.0, False), ("keep_hours", None, False),
                                    ("max_video_seconds", 0.0, True), ("sweep_seconds", 0.0, True)):
            v = getattr(self, name)
            if v is None and optional:
                continue
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or (v <= low if low is not None else v < 0):
                bound = "> 0" if low is not None else ">= 0"
                raise InputError(f"{name}: expected a number {bound}{' or None' if optional else ''}, got {v!r}")
        if isinstance(self.queue, bool) or not isinstance(self.queue, int) or self.queue < 0:
            raise InputError(f"queue: expected an integer >= 0, got {self.queue!r}")


class _Gate:
    """At most ``concurrency`` analyses at a time and ``queue`` waiting; beyond that, refuse."""

    def __init__(self, concurrency: int, queue: int) -> None:
        self.run = threading.Semaphore(max(1, concurrency))
        self.slots = threading.BoundedSemaphore(max(1, concurrency) + max(0, queue))

    def __enter__(self) -> "_Gate":
        if not self.slots.acquire(blocking=False):
            raise _Busy
        self.run.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.run.release()
        self.slots.release()


class _Busy(Exception):
    pass


def create_app(config: ServiceConfig | None = None) -> Any:
    """The FastAPI application (models loaded and the job store opened at start-up, in the lifespan)."""
    require("fastapi", "serve", "openfer serve")
    require("multipart", "serve", "uploads to openfer serve")
    import anyio
    from fastapi import FastAPI, File, Form, Query, Request, UploadFile
    from fastapi import Path as PathParam
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from starlette.exceptions import HTTPException

    from ..errors import InputError, MissingDependencyError
    from .jobs import VIDEO_PRESET, JobOptions, WorkerPool, annotated_format, check_duration
    from .store import JOB_ID, Job, JobStore, QueueFull

    cfg = config or ServiceConfig()
    state: dict[str, Any] = {}
    gate = _Gate(cfg.concurrency, cfg.queue)
    keep = float(cfg.keep_hours) * 3600.0

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        from ..io.lock import FolderLock

        with FolderLock(cfg.data, command="openfer serve"):  # one server per job store
            async with _serving(app):
                yield

    @asynccontextmanager
    async def _serving(app: FastAPI):  # noqa: ANN202
        from ..pipeline import Analyzer

        store = JobStore(cfg.data)
        requeued = store.requeue_running()
        if requeued:
            log.warning("job store: %d job(s) left running by the last server resume: %s",
                        len(requeued), ", ".join(requeued))
        store.sweep(keep, orphans=True)  # nothing is being uploaded yet: a folder without a row is lost
        state["analyzer"] = Analyzer(cfg.options)
        pool = WorkerPool(store, [Analyzer(VIDEO_PRESET) for _ in range(cfg.workers)],
                          checkpoint_frames=cfg.checkpoint_frames, annotate_format=annotated_format())
        stop = threading.Event()
        every = cfg.sweep_seconds if cfg.sweep_seconds is not None else min(max(keep / 4, 1.0), 600.0)

        def sweeper() -> None:
            while not stop.wait(every):
                try:
                    store.sweep(keep)
                except Exception:  # noqa: BLE001 - the next sweep tries again
                    log.exception("job store: expiry sweep failed")

        sweep_thread = threading.Thread(target=sweeper, name="openfer-sweep", daemon=True)
        state.update(store=store, pool=pool)
        app.state.store, app.state.pool = store, pool  # tests reach the sweep and the workers
        pool.start()
        sweep_thread.start()
        try:
            yield
        finally:
            stop.set()
            pool.stop()
            sweep_thread.join(5)
            state.clear()
            if not pool.alive:  # else a worker still needs it; the process is ending anyway
                store.close()

    app = FastAPI(title="openfer", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Offline facial expression analysis: faces, landmarks, pose, expressions, AUs; "
                  "video jobs with timelines, summaries, captions, plots and annotated videos.")
    app.state.gate = gate  # tests fill it to see the 429
    app.add_middleware(_BodyLimit, limit=cfg.max_body_bytes, paths={("POST", "/v1/jobs"): cfg.max_video_bytes})

    @app.middleware("http")
    async def api_key(request: Request, call_next):  # noqa: ANN001, ANN202
        path = _route_path(request.scope)  # /v1/... also when mounted under a prefix
        if cfg.api_key and path.startswith("/v1"):
            given = request.headers.get("x-api-key", "")
            if not hmac.compare_digest(given.encode(), cfg.api_key.encode()):
                return JSONResponse({"error": "missing or wrong X-API-Key"}, status_code=401)
        if request.method == "POST" and path == "/v1/jobs" and "store" in state \
                and state["store"].count("queued") >= cfg.max_jobs:  # refused before the upload is read
            return _queue_full(cfg.max_jobs)
        return await call_next(request)

    # added last, so outermost: a preflight OPTIONS (which carries no X-API-Key) is answered here, and
    # the 401s, 413s and 429s of the layers inside carry the CORS headers a browser needs to read them
    if cfg.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["X-API-Key"],
                           expose_headers=["Location"])

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):  # noqa: ANN202
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):  # noqa: ANN202
        return JSONResponse({"error": " ".join(str(exc.detail).split())}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # noqa: ANN202
        return JSONResponse({"error": f"internal error ({type(exc).__name__})"}, status_code=500)

    @app.get("/healthz")
    def healthz() -> dict:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """Models loaded and job store open: ready to analyse."""
        ready = "analyzer" in state and "store" in state
        return JSONResponse({"status": "ready" if ready else "loading"}, status_code=200 if ready else 503)

    # -- the web page -------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    def page_file(name: str) -> FileResponse:
        if name not in _STATIC:
            raise HTTPException(404, f"no page file {printable(name)[:80]!r}")
        return FileResponse(STATIC_DIR / name, media_type=_STATIC[name], headers=PAGE_HEADERS)

    # -- the API docs, offline: Swagger UI's files from the swagger-ui-bundle-v2 package, not a CDN

    @app.get("/docs", include_in_schema=False)
    def docs() -> Any:
        from fastapi.openapi.docs import get_swagger_ui_html
        from fastapi.responses import HTMLResponse

        if _swagger_dir() is None:
            return HTMLResponse("<!doctype html><title>openfer API</title><p>The interactive API docs need the "
                                "swagger-ui-bundle-v2 package (<code>pip install \"openfer[serve]\"</code>). The OpenAPI "
                                "document is at <a href=\"openapi.json\">openapi.json</a>.</p>")
        # relative, as the web page's: they work under a path prefix too
        return get_swagger_ui_html(openapi_url="openapi.json", title="openfer API",
                                   swagger_js_url="docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="docs-assets/swagger-ui.css",
                                   swagger_favicon_url="docs-assets/favicon-32x32.png")

    @app.get("/docs-assets/{name}", include_in_schema=False)
    def docs_file(name: str) -> FileResponse:
        folder = _swagger_dir()
        if folder is None or name not in _SWAGGER_FILES:
            raise HTTPException(404, f"no docs file {printable(name)[:80]!r}")
        return FileResponse(folder / name, media_type=_SWAGGER_FILES[name], headers={"Cache-Control": "max-age=86400"})

    @app.get("/limits")
    def limits() -> dict:
        """What a client needs before uploading: the size limits and whether ``/v1`` needs an API key."""
        return {"openfer": __version__, "api_key_required": bool(cfg.api_key), "max_body_bytes": cfg.max_body_bytes,
                "max_video_bytes": cfg.max_video_bytes, "max_video_seconds": cfg.max_video_seconds}

    @app.post("/v1/analyze")
    async def analyze(
        image: Annotated[UploadFile, File(description="the image file (JPEG, PNG, GIF, BMP, WebP, TIFF)")],
        landmarks: Annotated[bool, Query(description="add the 478 landmarks of each face")] = False,
        annotate: Annotated[bool, Query(description="add the annotated image as base64 JPEG (annotated_jpeg)")] = False,
    ) -> JSONResponse:
        """Analyse one image: every face with box, landmarks, pose, expression, AUs, blendshapes, reason."""
        from ..batch import analyze_one
        from ..io.images import decode_image

        analyzer = state.get("analyzer")
        if analyzer is None:
            return JSONResponse({"error": "models are still loading"}, status_code=503)
        name = printable(os.path.basename(image.filename or "upload"))
        data = await image.read()
        deadline = time.monotonic() + cfg.timeout

        def work() -> tuple | None:
            with gate:
                if time.monotonic() > deadline:  # waited in the queue past the timeout: skip the work
                    return None
                row, rgb, res = analyze_one(
                    analyzer, lambda: decode_image(data, name, max_pixels=analyzer.options.max_pixels), name, landmarks
                )
                jpeg = _annotated_jpeg(rgb, res) if annotate and not row.error else None
                return row, jpeg

        try:
            with anyio.fail_after(cfg.timeout):
                done = await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except _Busy:
            return JSONResponse({"error": "too many requests waiting; retry later"}, status_code=429)
        except TimeoutError:
            done = None
        if done is None:
            return JSONResponse({"error": f"analysis took longer than the {cfg.timeout:g} s timeout"}, status_code=504)
        row, jpeg = done
        body = {"openfer": __version__, "classes": list(analyzer.classes), **row.document()}
        if row.error:
            return JSONResponse({**body, "error": row.error}, status_code=400)
        if annotate:
            body["annotated_jpeg"] = jpeg
        return JSONResponse(body)

    # -- video jobs ---------------------------------------------------------------------------

    d = JobOptions()

    def store_or_503() -> JobStore:
        store = state.get("store")
        if store is None:
            raise HTTPException(503, "the job store is not open yet")
        return store

    def job_or_404(job_id: str) -> Job:
        job = store_or_503().get(job_id) if JOB_ID.match(job_id) else None
        if job is None:
            raise HTTPException(404, f"no job {printable(job_id)[:40]!r}")
        return job

    def document(job: Job) -> dict:
        url = f"/v1/jobs/{job.id}"
        return {
            "id": job.id, "state": job.state, "input_name": job.input_name, "url": url,
            "created": job.created, "updated": job.updated, "finished": job.finished,
            "frames_done": job.frames_done, "frames_total": job.frames_total, "eta_seconds": job.eta_seconds,
            "resumed_frames": job.resumed_frames, "error": job.error, "options": job.options,
            "results": {n: f"{url}/{n}" for n in job.results} if job.state in ("done", "failed") else {},
        }

    @app.post("/v1/jobs", status_code=202, responses={202: {"description": "accepted: the job, queued"}})
    def submit_job(
        video: Annotated[UploadFile, File(description="the video file (mp4, mov, avi, mkv, webm...)")],
        every: Annotated[int, Form(description="analyse every N-th frame")] = d.every,
        fps: Annotated[float | None, Form(description="analyse at most F frames per second (instead of every)")] = None,
        start: Annotated[float, Form(description="start at S seconds")] = d.start,
        end: Annotated[float | None, Form(description="stop at S seconds")] = None,
        detect_every: Annotated[int, Form(description="run the face detector every N analysed frames")] = d.detect_every,
        au_baseline: Annotated[str, Form(description="neutral (each face's own resting face) or none")] = d.au_baseline,
        aus: Annotated[bool, Form(description="action units")] = d.aus,
        explain: Annotated[bool, Form(description="valence/arousal and reasons")] = d.explain,
        annotate: Annotated[bool, Form(description="also write annotated.webm (annotated.mp4 where OpenCV "
                                       "has no VP8/VP9 encoder)")] = d.annotate,
        plots: Annotated[bool, Form(description="also write plots/track-<id>.png")] = d.plots,
        parquet: Annotated[bool, Form(description="also write timeline.parquet")] = d.parquet,
        smooth: Annotated[str, Form(description="also write timeline_smooth.csv: none, ema, window, one_euro")] = d.smooth,
    ) -> JSONResponse:
        """Upload a video: a job (202, ``Location``) that runs ``openfer video`` on it in the worker pool."""
        store = store_or_503()
        name = printable(os.path.basename(video.filename or "upload")) or "upload"
        limit = cfg.max_video_seconds
        try:
            opts = JobOptions(every=every, fps=fps, start=start, end=end, detect_every=detect_every,
                              au_baseline=au_baseline, aus=aus, explain=explain, annotate=annotate, plots=plots,
                              parquet=parquet, smooth=smooth)
            opts.require_extras()
            if limit is not None:  # never analyse past the limit, whatever the container says
                if opts.start >= limit:
                    raise InputError(f"start: {opts.start:g} s is past the {limit:g} s limit")
                opts = JobOptions.from_json({**opts.to_json(), "end": min(opts.end or limit, limit)})
        except (InputError, MissingDependencyError) as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        check = check_duration(limit)

        def checked(path: Any) -> None:
            try:
                check(path)
            except InputError as e:
                raise InputError(f"{name}: {str(e).replace(str(path) + ': ', '').replace(str(path), name)}") from None

        try:
            job = store.accept(video.file, name, os.path.splitext(video.filename or "")[1], opts.to_json(),
                               max_queued=cfg.max_jobs, check=checked)
        except InputError as e:
            return JSONResponse({"error": " ".join(str(e).split())}, status_code=400)
        except QueueFull:
            return _queue_full(cfg.max_jobs)
        state["pool"].wake()
        return JSONResponse(document(job), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    @app.get("/v1/jobs")
    def list_jobs(limit: Annotated[int, Query(ge=1, le=1000, description="at most this many, newest first")] = 100
                  ) -> dict:
        """The jobs in the store, newest first."""
        return {"jobs": [document(j) for j in store_or_503().list(limit)]}

    @app.get("/v1/jobs/{job_id}")
    def get_job(job_id: str) -> dict:
        """A job's state, progress (frames done / expected, ETA), error and, once ended, its result URLs."""
        return document(job_or_404(job_id))

    @app.get("/v1/jobs/{job_id}/{name:path}")
    def get_result(job_id: str, name: Annotated[str, PathParam(description="a name from the job's results")]
                   ) -> FileResponse:
        """One result file of an ended job: timeline.csv, timeline.parquet, summary.json, captions.txt,
        timeline_smooth.csv, annotated.webm (or .mp4), plots/track-<id>.png (only those the job produced)."""
        job = job_or_404(job_id)
        out = store_or_503().out_dir(job.id).resolve()
        path = (out / name).resolve() if name in job.results and job.state in ("done", "failed") else None
        if path is None or not path.is_relative_to(out) or not path.is_file():
            raise HTTPException(404, f"job {job.id} has no result {printable(name)[:80]!r}")
        return FileResponse(path, media_type=_MEDIA.get(path.suffix, "application/octet-stream"))

    @app.delete("/v1/jobs/{job_id}", responses={202: {"description": "cancel requested, the job is still ending"}})
    def delete_job(job_id: str) -> JSONResponse:
        """Cancel a queued or running job (its row stays, ``cancelled``, until it expires) or delete an
        ended one (row and files); either way its files are removed."""
        store = store_or_503()
        job = job_or_404(job_id)
        if job.state == "queued" and store.cancel_queued(job.id):
            store.remove_files(job.id)
            return JSONResponse({"id": job.id, "state": "cancelled"})
        if job.state in ("queued", "running"):  # queued: a worker took it meanwhile
            now = state["pool"].cancel(job.id, wait=10.0)
            if now is not None and now.state == "running":
                return JSONResponse({"id": job.id, "state": "running", "cancel_requested": True}, status_code=202)
            if now is not None and now.state == "cancelled":
                return JSONResponse({"id": job.id, "state": "cancelled"})
            if now is None:
                return JSONResponse({"id": job.id, "state": "deleted"})
        # done, failed, or a cancelled job's row: remove everything
        store.delete(job.id)
        return JSONResponse({"id": job.id, "state": "deleted"})

    return app


_SWAGGER_FILES = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8",
                  "favicon-32x32.png": "image/png"}


def _swagger_dir() -> Path | None:
    """Swagger UI's distribution folder from the swagger-ui-bundle-v2 package, or ``None`` without it."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    folder = Path(swagger_ui_path)
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


STATIC_DIR = Path(__file__).resolve().parent / "static"
_STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8", "icon.svg": "image/svg+xml"}
# the page is self-contained: scripts, styles and requests only from this server; images also from
# data: (annotated photos come inline) and blob: (results fetched with an API key); no frames, no forms
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                "Permissions-Policy": "camera=(self), microphone=(), geolocation=()", "Cache-Control": "no-cache"}

_MEDIA = {".csv": "text/csv; charset=utf-8", ".json": "application/json", ".txt": "text/plain; charset=utf-8",
          ".png": "image/png", ".mp4": "video/mp4", ".webm": "video/webm", ".parquet": "application/vnd.apache.parquet"}


def _queue_full(max_jobs: int) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": f"{max_jobs} video jobs are already queued (the limit); retry later"},
                        status_code=429)


def _annotated_jpeg(rgb: Any, res: Any) -> str | None:
    import cv2

    from ..draw import annotate as draw

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(draw(rgb, res.faces), cv2.COLOR_RGB2BGR))
    return base64.b64encode(buf.tobytes()).decode() if ok else None


class _BodyLimit:
    """413 for a request body over ``limit`` bytes (``paths``: another limit for some ``(method,
    path)``s, e.g. video uploads), counted as it arrives (``Content-Length`` first).

    A body that passes the limit while the app reads it (a chunked upload declares no size) is
    answered here: the 413 is sent at once, the app gets ``http.disconnect`` instead of more body, and
    whatever it answers or raises after that (FastAPI turns a form it cannot finish into a 400) is
    dropped, so the client sees the 413 and the rest of the upload is never read."""

    def __init__(self, app: Any, limit: int, paths: dict[tuple[str, str], int] | None = None) -> None:
        self.app, self.default, self.paths = app, limit, dict(paths or {})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.paths.get((scope.get("method", ""), _route_path(scope)), self.default)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _reject(send, limit)
            return
        seen, started, rejected, answered = 0, False, False, False

        async def counted() -> dict:
            nonlocal seen, rejected, answered
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    rejected = True
                    if not started:  # else the app already answers: it sees the disconnect
                        answered = True
                        await _reject(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: dict) -> None:
            nonlocal started
            if answered:
                return  # the 413 went out: the app's own answer is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not answered:
                raise
            # the app failed on the cut-off body; the client already has its 413


def _route_path(scope: dict) -> str:
    """The request's path inside this app: without the ``root_path`` of a mount or a proxy's
    ``--root-path`` (ASGI puts it in front of ``path``), so ``/v1/...`` is guarded under any prefix."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] in ("", "/"):
        return path[len(root):] or "/"
    return path


async def _reject(send: Any, limit: int) -> None:
    import json

    body = json.dumps({"error": f"request body over the {limit} byte limit"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


__all__ = ["DEFAULT_MAX_BODY", "DEFAULT_MAX_VIDEO", "ServiceConfig", "create_app"]
