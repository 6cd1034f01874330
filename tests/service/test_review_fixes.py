"""Regressions from the review of the REST service: CORS outside the API-key check, the body cap on
chunked uploads end to end, a worker that outlives a failing store, the job id pattern."""

from __future__ import annotations

import pytest
from conftest import PHOTOS

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
