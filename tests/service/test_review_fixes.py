"""Regressions from the review of the REST service: CORS outside the API-key check, the body cap on
chunked uploads end to end, the job id pattern, the key and limits under a path prefix, a worker that outlives a failing store (final writes
retried, progress writes best-effort)."""

from __future__ import annotations

import io
import logging
import sqlite3
import threading
import time

import pytest
from conftest import PHOTOS
from jobs_helpers import SHORT

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
from fastapi.testclient import TestClient  # noqa: E402

from openfer.service import ServiceConfig, create_app  # noqa: E402

FACE = PHOTOS / "single_face.jpg"
ORIGIN = "http://page.example"


def test_cors_preflight_and_401_carry_cors_headers_with_an_api_key(tmp_path):
    cfg = ServiceConfig(api_key="s3cret", cors_origins=(ORIGIN,), data=tmp_path)
    with TestClient(create_app(cfg)) as c:
        r = c.options("/v1/jobs", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                                           "Access-Control-Request-Headers": "x-api-key"})
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == ORIGIN
        assert "x-api-key" in r.headers["access-control-allow-headers"].lower()
        r = c.get("/v1/jobs", headers={"Origin": ORIGIN})
        assert r.status_code == 401 and r.json() == {"error": "missing or wrong X-API-Key"}
        assert r.headers["access-control-allow-origin"] == ORIGIN
        r = c.get("/v1/jobs", headers={"Origin": ORIGIN, "X-API-Key": "s3cret"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ORIGIN


def _multipart(field: str, name: str, payload: bytes, boundary: str = "openferboundary"):
    """A multipart body as a generator, so the client sends it chunked, with no Content-Length."""
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()

    def body():
        yield head
        for i in range(0, len(payload), 64 * 1024):
            yield payload[i:i + 64 * 1024]
        yield f"\r\n--{boundary}--\r\n".encode()

    return body(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.mark.parametrize(("path", "field"), [("/v1/analyze", "image"), ("/v1/jobs", "video")])
def test_a_chunked_upload_over_the_cap_is_a_413_end_to_end(tmp_path, path, field):
    cfg = ServiceConfig(api_key=None, data=tmp_path, max_body_bytes=200_000, max_video_bytes=300_000)
    limit = 300_000 if path == "/v1/jobs" else 200_000
    with TestClient(create_app(cfg)) as c:
        body, headers = _multipart(field, "big.bin", b"\xff" * 400_000)
        r = c.post(path, content=body, headers=headers)
        assert "content-length" not in {k.lower() for k in r.request.headers}
        assert r.status_code == 413 and r.json() == {"error": f"request body over the {limit} byte limit"}
        assert c.get("/v1/jobs").json()["jobs"] == []  # nothing was accepted
        r = c.post("/v1/analyze", files={"image": ("f.jpg", FACE.read_bytes())})  # the service goes on
        assert r.status_code == 200 and r.json()["status"] == "ok"


def test_a_job_id_with_a_trailing_newline_is_refused(tmp_path):
    from openfer.service.store import JOB_ID, JobStore

    assert JOB_ID.match("a" * 16) and not JOB_ID.match("a" * 16 + "\n")
    store = JobStore(tmp_path)
    try:
        assert store.folder("a" * 16) == store.jobs_dir / ("a" * 16)
        with pytest.raises(KeyError):
            store.folder("a" * 16 + "\n")
    finally:
        store.close()


def test_mounted_under_a_path_prefix_the_key_and_the_video_limit_still_apply(tmp_path):
    """Mounted at /openfer (the ASGI root_path a proxy's prefix gives), the guards look at the path
    inside the app: /openfer/v1/... needs the key, and a video upload gets the video limit."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    inner = create_app(ServiceConfig(api_key="s3cret", data=tmp_path, max_body_bytes=100_000,
                                     max_video_bytes=1_000_000))
    outer = Starlette(routes=[Mount("/openfer", app=inner)], lifespan=lambda app: inner.router.lifespan_context(inner))
    key = {"X-API-Key": "s3cret"}
    with TestClient(outer) as c:
        r = c.get("/openfer/v1/jobs")
        assert r.status_code == 401 and r.json() == {"error": "missing or wrong X-API-Key"}
        assert c.get("/openfer/v1/jobs", headers=key).json() == {"jobs": []}
        assert c.get("/openfer/readyz").json() == {"status": "ready"}  # open, as at the root
        video = {"video": (SHORT.name, SHORT.read_bytes(), "video/mp4")}  # 204 KB: over the body cap
        r = c.post("/openfer/v1/jobs", files=video, data={"every": "12"}, headers=key)
        assert r.status_code == 202, r.text
        job = r.json()["id"]
        r = c.post("/openfer/v1/analyze", files={"image": ("big.jpg", b"\xff" * 150_000)}, headers=key)
        assert r.status_code == 413 and r.json() == {"error": "request body over the 100000 byte limit"}
        assert c.delete(f"/openfer/v1/jobs/{job}").status_code == 401
        assert c.delete(f"/openfer/v1/jobs/{job}", headers=key).status_code in (200, 202)


# -- a store that fails under the workers (SQLite locked past its busy timeout, a full disk) ----------

LOCKED = sqlite3.OperationalError("database is locked")


@pytest.fixture(scope="module")
def video_analyzer():
    from openfer.pipeline import Analyzer
    from openfer.service.jobs import VIDEO_PRESET

    return Analyzer(VIDEO_PRESET)


def _accept(store, every: int = 12):
    from openfer.service.jobs import JobOptions

    return store.accept(io.BytesIO(SHORT.read_bytes()), SHORT.name, ".mp4", JobOptions(every=every).to_json(),
                        max_queued=9).id


def _until(what, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_worker_outlives_a_store_that_cannot_record_a_jobs_end(tmp_path, video_analyzer, monkeypatch, caplog):
    """A fails unexpectedly and B runs to its end while the store refuses every final write: the one
    worker goes on (B runs after A), both rows stay running, and once the store works again the worker
    records A as failed and B as done, then runs C."""
    from openfer.service.jobs import WorkerPool
    from openfer.service.store import JobStore

    store = JobStore(tmp_path)
    a, b = _accept(store), _accept(store)
    locked, refused = threading.Event(), []
    locked.set()
    real_finish, real_input = store.finish, store.input_path

    def finish(job_id, state, **kw):
        if locked.is_set():
            refused.append((job_id, state))
            raise LOCKED
        return real_finish(job_id, state, **kw)

    def input_path(job):
        if job.id == a:
            raise RuntimeError("an unexpected error")
        return real_input(job)

    monkeypatch.setattr(store, "finish", finish)
    monkeypatch.setattr(store, "input_path", input_path)
    caplog.set_level(logging.INFO, logger="openfer")
    pool = WorkerPool(store, [video_analyzer], poll_seconds=0.05)
    pool.start()
    try:
        _until(lambda: (b, "done") in refused)  # B ran after A's end could not be written
        assert refused[0] == (a, "failed") and pool.alive
        assert store.get(a).state == store.get(b).state == "running"
        locked.clear()
        _until(lambda: store.get(a).state != "running" and store.get(b).state != "running")
        ja, jb = store.get(a), store.get(b)
        assert (ja.state, ja.error) == ("failed", "internal error")
        assert jb.state == "done" and jb.frames_done == 6 and "timeline.csv" in jb.results
        c = _accept(store)  # the worker still takes new jobs
        _until(lambda: store.get(c).state != "queued" and store.get(c).state != "running")
        assert store.get(c).state == "done" and pool.alive
        out = store.out_dir
        assert (out(c) / "timeline.csv").read_bytes() == (out(b) / "timeline.csv").read_bytes()
    finally:
        pool.stop()
        store.close()
    errors = [r for r in caplog.records if "cannot record the end of the job" in r.getMessage()]
    assert {r.getMessage().split()[1].rstrip(":") for r in errors} == {a, b} and all(r.exc_info for r in errors)


def test_failing_progress_writes_do_not_fail_the_job(tmp_path, video_analyzer, monkeypatch, caplog):
    """Every progress write of P fails: P still ends done with the timeline of Q (the same options,
    progress recorded), and says so in one warning, however many writes failed."""
    from openfer.service import jobs
    from openfer.service.jobs import WorkerPool
    from openfer.service.store import JobStore

    store = JobStore(tmp_path)
    q, p = _accept(store), _accept(store)
    real_progress, tried = store.progress, []

    def progress(job_id, done, total, **kw):
        if job_id == p:
            tried.append(done)
            raise LOCKED
        return real_progress(job_id, done, total, **kw)

    monkeypatch.setattr(store, "progress", progress)
    monkeypatch.setattr(jobs, "PROGRESS_RETRY_SECONDS", 0.0)  # retry at every frame: more than one failure
    caplog.set_level(logging.WARNING, logger="openfer")
    pool = WorkerPool(store, [video_analyzer], poll_seconds=0.05)
    pool.start()
    try:
        _until(lambda: store.get(p).state not in ("queued", "running"))
    finally:
        pool.stop()
    jq, jp = store.get(q), store.get(p)
    store.close()
    assert jq.state == "done" and jq.frames_done == jq.frames_total == 6
    assert jp.state == "done" and jp.error is None and jp.frames_done == 6 and jp.results == jq.results
    assert (tmp_path / "jobs" / p / "out" / "timeline.csv").read_bytes() == \
        (tmp_path / "jobs" / q / "out" / "timeline.csv").read_bytes()
    assert len(tried) >= 2
    warned = [r.getMessage() for r in caplog.records if p in r.getMessage()]
    assert warned == [f"job {p}: cannot record its progress (database is locked); the job goes on"]
