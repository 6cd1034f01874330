"""The REST service with the real models (FastAPI TestClient): the same results as the CLI, and every
limit with a one-line JSON error."""

from __future__ import annotations

import asyncio
import base64
import json

import cv2
import numpy as np
import pytest
from conftest import PHOTOS

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
from fastapi.testclient import TestClient  # noqa: E402

from openfer.cli import main  # noqa: E402
from openfer.service import ServiceConfig, create_app  # noqa: E402
from openfer.service.app import _BodyLimit, _Busy, _Gate  # noqa: E402

FACE = PHOTOS / "single_face.jpg"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    cfg = ServiceConfig(max_body_bytes=3_000_000, api_key=None, data=tmp_path_factory.mktemp("data"))
    with TestClient(create_app(cfg)) as c:
        yield c


def _post(c, name, data, **params):
    return c.post("/v1/analyze", files={"image": (name, data, "application/octet-stream")}, params=params)


def test_health_ready_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    spec = client.get("/openapi.json").json()
    assert "/v1/analyze" in spec["paths"] and spec["info"]["title"] == "openfer"
    assert set(spec["paths"]["/v1/jobs"]) == {"get", "post"} and set(spec["paths"]["/v1/jobs/{job_id}"]) == {"get", "delete"}
    assert "/v1/jobs/{job_id}/{name}" in spec["paths"]


def test_api_docs_are_served_from_this_server(client):
    """/docs is Swagger UI from the swagger-ui-bundle-v2 package: no CDN (it must work offline)."""
    page = client.get("/docs")
    assert page.status_code == 200 and '<script src="docs-assets/swagger-ui-bundle.js">' in page.text
    assert "url: 'openapi.json'" in page.text  # relative, as the page's URLs: they work under a path prefix
    assert "cdn." not in page.text and "https://" not in page.text.replace("https://fastapi.tiangolo.com", "")
    js = client.get("/docs-assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript") and len(js.content) > 100_000
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200
    assert client.get("/docs-assets/..%2Fswagger-ui-bundle.js").status_code == 404
    assert client.get("/docs-assets/index.html").status_code == 404  # only the files the page needs


def test_analyze_gives_what_the_cli_writes(client, tmp_path, capsys):
    r = _post(client, "single_face.jpg", FACE.read_bytes(), annotate=True)
    assert r.status_code == 200
    got = r.json()
    assert main(["analyze", str(FACE), "--json", str(tmp_path / "r.json"), "-q"]) == 0
    (want,) = json.loads((tmp_path / "r.json").read_text())["images"]
    assert got["status"] == want["status"] == "ok" and got["classes"][1] == "happiness"
    assert len(got["faces"]) == 1
    for k in ("label", "x1", "y2", "happiness", "AU12", "pspi", "reason"):
        assert got["faces"][0][k] == pytest.approx(want["faces"][0][k]) if isinstance(want["faces"][0][k], float) \
            else got["faces"][0][k] == want["faces"][0][k]
    img = cv2.imdecode(np.frombuffer(base64.b64decode(got["annotated_jpeg"]), np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[:2] == (got["height"], got["width"])


def test_bad_upload_is_a_400_with_one_line(client):
    r = _post(client, "../../etc/passwd", b"not an image")
    assert r.status_code == 400
    err = r.json()["error"]
    assert err.startswith("passwd: not a supported image") and "\n" not in err  # the name only labels
    r = client.post("/v1/analyze")
    assert r.status_code == 422 and r.json() == {"error": "image: Field required"}


def test_no_face_is_an_empty_result(client):
    r = _post(client, "landscape.jpg", (PHOTOS / "no_face_landscape.jpg").read_bytes())
    assert r.status_code == 200 and r.json()["status"] == "no_face" and r.json()["faces"] == []


def test_pixel_cap_and_body_cap(client):
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
           + b"\x00\x00\x00\x00IEND\xaeB`\x82")
    r = _post(client, "huge.png", png)
    assert r.status_code == 400 and "over the 100 MP limit" in r.json()["error"]
    r = _post(client, "big.jpg", b"\xff" * 3_500_000)
    assert r.status_code == 413 and r.json() == {"error": "request body over the 3000000 byte limit"}


def test_body_cap_counts_a_body_without_content_length():
    """A chunked upload that never declares its size is cut off once it passes the cap."""
    sent = []

    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})

    chunks = [{"type": "http.request", "body": b"x" * 600, "more_body": True} for _ in range(5)]

    async def receive():
        return chunks.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(_BodyLimit(app, limit=1000)({"type": "http", "headers": []}, receive, send))
    assert sent[0]["status"] == 413 and len(chunks) == 3  # stopped after the second chunk


def test_video_uploads_have_their_own_body_cap():
    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})

    def run(method, path, n):
        sent, chunks = [], [{"type": "http.request", "body": b"x" * 600, "more_body": True} for _ in range(n)]
        chunks[-1]["more_body"] = False

        async def receive():
            return chunks.pop(0)

        async def send(message):
            sent.append(message)

        limit = _BodyLimit(app, limit=1000, paths={("POST", "/v1/jobs"): 5000})
        asyncio.run(limit({"type": "http", "method": method, "path": path, "headers": []}, receive, send))
        return sent[0]["status"]

    assert run("POST", "/v1/jobs", 8) == 200  # 4800 bytes: under the video cap
    assert run("POST", "/v1/jobs", 9) == 413  # 5400
    assert run("POST", "/v1/analyze", 2) == 413  # 1200: over the default cap


def test_api_key_is_required_when_set(tmp_path):
    with TestClient(create_app(ServiceConfig(api_key="s3cret", data=tmp_path))) as c:
        assert c.get("/healthz").status_code == 200  # health stays open
        r = _post(c, "f.jpg", FACE.read_bytes())
        assert r.status_code == 401 and r.json() == {"error": "missing or wrong X-API-Key"}
        r = c.post("/v1/analyze", files={"image": ("f.jpg", FACE.read_bytes())}, headers={"X-API-Key": "s3cret"})
        assert r.status_code == 200


def test_full_queue_is_a_429(client):
    gate: _Gate = client.app.state.gate
    held = 0
    while gate.slots.acquire(blocking=False):  # as if every slot were taken by waiting requests
        held += 1
    try:
        r = _post(client, "f.jpg", FACE.read_bytes())
        assert r.status_code == 429 and "retry later" in r.json()["error"]
    finally:
        for _ in range(held):
            gate.slots.release()
    assert _post(client, "f.jpg", FACE.read_bytes()).status_code == 200
    g = _Gate(1, 0)
    with g, pytest.raises(_Busy):
        g.__enter__()
