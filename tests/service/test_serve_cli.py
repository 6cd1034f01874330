"""``openfer serve`` as a real server on loopback: starts, gets ready, answers, stops on SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest
from conftest import PHOTOS, held_elsewhere
from jobs_helpers import free_port

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    b = uuid.uuid4().hex
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()
    return body, f"multipart/form-data; boundary={b}"


def test_serve_starts_answers_and_stops(tmp_path):
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "openfer.cli", "serve", "--port", str(port), "--data", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                    if json.loads(r.read())["status"] == "ready":
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert p.poll() is None and time.monotonic() < deadline, p.stderr.read().decode()
            time.sleep(0.2)
        body, ctype = _multipart("face.jpg", (PHOTOS / "single_face.jpg").read_bytes())
        req = urllib.request.Request(base + "/v1/analyze", data=body, headers={"Content-Type": ctype,
                                     "Origin": "http://elsewhere.example"})
        with urllib.request.urlopen(req, timeout=30) as r:
            got = json.loads(r.read())
            assert "access-control-allow-origin" not in {k.lower() for k in r.headers}  # CORS off
        assert got["status"] == "ok" and got["faces"][0]["label"] == "happiness"
    finally:
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=30) == 0


def test_serve_refuses_bad_settings_in_one_line(tmp_path, capsys):
    from openfer.cli import main

    (tmp_path / "afile").write_text("x")
    assert main(["serve", "--data", str(tmp_path / "afile"), "--port", str(free_port())]) == 6
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write ") and "cannot use as the job store" in err and err.count("\n") == 1
    for flag, value, line in (
        ("--timeout", "0", "timeout: expected a number > 0, got 0.0"),
        ("--keep-hours", "-1", "keep_hours: expected a number >= 0, got -1.0"),
        ("--max-video-seconds", "nan", "max_video_seconds: expected a number > 0 or None, got nan"),
        ("--queue", "-1", "queue: expected an integer >= 0, got -1"),
    ):
        assert main(["serve", "--data", str(tmp_path / "d"), flag, value]) == 2
        assert capsys.readouterr().err == f"openfer serve: error: {line}\n"
    assert not (tmp_path / "d").exists()  # refused before the store is created


def test_a_second_server_on_the_same_data_is_refused(tmp_path, capsys):
    from openfer.cli import main

    with held_elsewhere(tmp_path) as pid:  # as a running server holds its --data folder
        assert main(["serve", "--data", str(tmp_path), "--port", str(free_port())]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path}: in use by ") and f"pid {pid}" in err and err.count("\n") == 1
