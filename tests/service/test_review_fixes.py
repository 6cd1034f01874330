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
