"""Shared by the video-job tests: the fixture videos, polling a job, what ``openfer video`` writes."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from conftest import ASSETS

VIDEOS = ASSETS / "videos"
SHORT = VIDEOS / "single_face.mp4"  # 72 frames, 30 fps, 2.4 s, 204 KB
NO_FACE = VIDEOS / "no_face.mp4"  # 98 frames declared, ~4.1 s, 180 KB
LONG = VIDEOS / "WolfgangLanger_Pexels.mp4"  # 472 frames, 19.7 s, 1.6 MB


def free_port() -> int:
    """A loopback port nobody listens on now (for a real server in a test)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_timeline(tmp: Path, video: Path, *args: str) -> bytes:
    """``timeline.csv`` as ``openfer video VIDEO ARGS`` writes it (in this process)."""
    from openfer.cli import main

    assert main(["video", str(video), "--out", str(tmp), "-q", *args]) == 0
    return (tmp / video.stem / "timeline.csv").read_bytes()


def wait_for(get, job_id: str, states: tuple[str, ...], timeout: float = 60.0, until=None) -> dict:
    """Poll ``GET /v1/jobs/{id}`` (``get(url) -> (status, json)``) until its state is one of ``states``
    (or ``until(doc)`` holds); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        status, doc = get(f"/v1/jobs/{job_id}")
        assert status == 200, doc
        if doc["state"] in states or (until is not None and until(doc)):
            return doc
        assert time.monotonic() < deadline, f"job still {doc['state']} after {timeout} s: {doc}"
        time.sleep(0.05)
