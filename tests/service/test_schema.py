"""Schemathesis against the service's own ``/openapi.json``: generated requests to every operation
(bounded, derandomised examples) never get a server error (issue 11). Real models, a real job store."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from jobs_helpers import free_port  # noqa: E402

from openfer.service import ServiceConfig, create_app  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A live uvicorn server on a free loopback port (in a thread): the lifespan runs once, as in
    ``openfer serve``."""
    import threading
    import time

    import uvicorn

    app = create_app(ServiceConfig(data=tmp_path_factory.mktemp("schema-data"), api_key=None,
                                   max_video_seconds=3.0, max_jobs=4))
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "the server did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=30)


def test_no_server_errors(server):
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {"POST /v1/analyze", "POST /v1/jobs",
                                                                      "GET /v1/jobs/{job_id}"}
    seen = []
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=15, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call()
            seen.append(response.status_code)
            assert response.status_code < 500, (case.method, case.formatted_path, response.status_code,
                                                response.text[:300])
            if response.status_code >= 400:  # every refusal is one JSON line naming the problem, no traceback
                body = response.json()
                assert isinstance(body.get("error"), str) and body["error"] and "\n" not in body["error"], response.text[:300]
                assert "Traceback" not in response.text

        check()
    assert len(seen) >= 3 * len(operations)
