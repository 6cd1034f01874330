"""The REST service: ``create_app(config)`` builds the FastAPI application that ``openfer serve`` runs.

Endpoints (OpenAPI at ``/openapi.json``, interactive docs at ``/docs``):

* ``GET /healthz``: the process is alive. ``GET /readyz``: the models are loaded (503 until then).
* ``POST /v1/analyze``: one image (multipart field ``image``) → the same per-image entry as the
  ``images`` list of ``openfer analyze --json`` (``status``, ``width``, ``height``, ``error``,
  ``warnings``, ``faces``), plus ``openfer`` (version) and ``classes``. A bad image is a 400 with that
  entry (``status`` ``"error: …"``). ``landmarks=true`` adds the mesh; ``annotate=true`` adds
  ``annotated_jpeg``: the annotated image as base64 JPEG **inline** (one request, no server-side
  state to fetch or expire).

The analysis goes through :func:`openfer.batch.analyze_one`, the function ``openfer analyze`` runs.

Limits, each a one-line JSON error ``{"error": "..."}`` with no traceback:

* request bodies over ``max_body_bytes`` (default 25 MB) → 413, counted as the bytes arrive (an ASGI
  middleware: FastAPI has no cap of its own, and a ``Content-Length`` can lie);
* images over ``AnalyzerOptions.max_pixels`` → 400 naming the size, checked from the header before
  decoding;
* more than ``queue`` requests waiting for the analyzer → 429 (the analysis runs ``concurrency`` at
  a time; the rest wait in a bounded queue instead of piling up);
* ``api_key`` set (``OPENFER_API_KEY``) → every ``/v1`` request needs ``X-API-Key`` (401 otherwise;
  compared in constant time);
* CORS is off unless ``cors_origins`` are given. Requests never name server paths or URLs: images come
  only as uploaded bytes, and an upload's file name only labels messages (escaped).
"""

# no ``from __future__ import annotations``: FastAPI reads the endpoints' annotations, which name
# classes imported inside create_app (fastapi is imported only when the service is built)
import base64
import hmac
import os
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from .. import __version__
from ..extras import require
from ..io.text import printable

DEFAULT_MAX_BODY = 25 * 1024 * 1024


@dataclass(frozen=True)
class ServiceConfig:
    """What ``openfer serve`` is started with (``options``: an :class:`~openfer.pipeline.AnalyzerOptions`
    or a preset name)."""

    options: Any = "default"
    max_body_bytes: int = DEFAULT_MAX_BODY
    concurrency: int = 1
    queue: int = 16
    api_key: str | None = field(default_factory=lambda: os.environ.get("OPENFER_API_KEY") or None)
    cors_origins: tuple[str, ...] = ()


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
    """The FastAPI application (models loaded at start-up, in the lifespan)."""
    require("fastapi", "serve", "openfer serve")
    require("multipart", "serve", "uploads to openfer serve")
    from fastapi import FastAPI, File, Query, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    cfg = config or ServiceConfig()
    state: dict[str, Any] = {}
    gate = _Gate(cfg.concurrency, cfg.queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        from ..pipeline import Analyzer

        state["analyzer"] = Analyzer(cfg.options)
        yield
        state.clear()

    app = FastAPI(title="openfer", version=__version__, lifespan=lifespan,
                  description="Offline facial expression analysis: faces, landmarks, pose, expressions, AUs.")
    app.state.gate = gate  # tests fill it to see the 429
    app.add_middleware(_BodyLimit, limit=cfg.max_body_bytes)
    if cfg.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["X-API-Key"])

    @app.middleware("http")
    async def api_key(request: Request, call_next):  # noqa: ANN001, ANN202
        if cfg.api_key and request.url.path.startswith("/v1"):
            given = request.headers.get("x-api-key", "")
            if not hmac.compare_digest(given.encode(), cfg.api_key.encode()):
                return JSONResponse({"error": "missing or wrong X-API-Key"}, status_code=401)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):  # noqa: ANN202
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # noqa: ANN202
        return JSONResponse({"error": f"internal error ({type(exc).__name__})"}, status_code=500)

    @app.get("/healthz")
    def healthz() -> dict:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """Models loaded: ready to analyse."""
        ready = "analyzer" in state
        return JSONResponse({"status": "ready" if ready else "loading"}, status_code=200 if ready else 503)

    @app.post("/v1/analyze")
    def analyze(
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
        data = image.file.read()
        try:
            with gate:
                row, rgb, res = analyze_one(
                    analyzer, lambda: decode_image(data, name, max_pixels=analyzer.options.max_pixels), name, landmarks
                )
        except _Busy:
            return JSONResponse({"error": "too many requests waiting; retry later"}, status_code=429)
        body = {"openfer": __version__, "classes": list(analyzer.classes), **row.document()}
        if row.error:
            return JSONResponse({**body, "error": row.error}, status_code=400)
        if annotate:
            import cv2

            from ..draw import annotate as draw

            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(draw(rgb, res.faces), cv2.COLOR_RGB2BGR))
            body["annotated_jpeg"] = base64.b64encode(buf.tobytes()).decode() if ok else None
        return JSONResponse(body)

    return app


class _BodyLimit:
    """413 for a request body over ``limit`` bytes, counted as it arrives (``Content-Length`` first)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _reject(send, self.limit)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _reject(send, self.limit)


class _TooLarge(Exception):
    pass


async def _reject(send: Any, limit: int) -> None:
    import json

    body = json.dumps({"error": f"request body over the {limit} byte limit"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


__all__ = ["DEFAULT_MAX_BODY", "ServiceConfig", "create_app"]
