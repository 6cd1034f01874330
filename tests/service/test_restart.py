"""Restart durability: ``openfer serve`` as a real process, killed with SIGKILL in the middle of a video
job, started again on the same ``--data``: the job resumes from its checkpoint and ends with the
timeline of an uninterrupted run, and the job queued behind it is not lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest
from jobs_helpers import SHORT, cli_timeline, free_port, wait_for

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


class Server:
    def __init__(self, data, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "openfer.cli", "serve", "--port", str(port), "--data", str(data),
             "--checkpoint-frames", "10"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.get("/readyz")[1]["status"] == "ready":
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, self.proc.stderr.read().decode()
            time.sleep(0.1)

    def get(self, url: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(self.base + url, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def raw(self, url: str) -> bytes:
        with urllib.request.urlopen(self.base + url, timeout=10) as r:
            return r.read()

    def submit(self, video, **fields) -> dict:
        b = uuid.uuid4().hex
        parts = [f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
        parts.append(f'--{b}\r\nContent-Disposition: form-data; name="video"; filename="{video.name}"\r\n'
                     "Content-Type: video/mp4\r\n\r\n".encode() + video.read_bytes() + b"\r\n")
        req = urllib.request.Request(self.base + "/v1/jobs", data=b"".join(parts) + f"--{b}--\r\n".encode(),
                                     headers={"Content-Type": f"multipart/form-data; boundary={b}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 202
            return json.loads(r.read())

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc.stderr.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            assert self.proc.wait(timeout=30) == 0
        self.proc.stderr.close()


def test_sigkill_mid_job_then_restart_resumes_to_the_same_timeline(tmp_path):
    data = tmp_path / "data"
    first = Server(data, free_port())
    try:
        a = first.submit(SHORT)  # all 72 frames, a checkpoint every 10
        b = first.submit(SHORT, every="6")  # queued behind it (one worker)
        seen = wait_for(first.get, a["id"], ("done", "failed"), until=lambda d: d["frames_done"] >= 25)
    except BaseException:
        first.kill()
        raise
    first.kill()  # SIGKILL: no shutdown, no cleanup
    assert seen["state"] == "running" and 25 <= seen["frames_done"] < 72, seen
    assert first.proc.returncode == -signal.SIGKILL
    assert os.path.exists(data / "jobs" / a["id"] / "out" / ".openfer.lock")  # left by the killed worker
    # what the killed run had committed when the signal came: the worker goes on between the last poll
    # and the kill (it may commit another chunk), so that poll is no bound on it
    committed = json.loads((data / "jobs" / a["id"] / "out" / "progress.json").read_text())["frames_done"]
    assert 20 <= committed < 72, committed  # committed at least every 10 frames (--checkpoint-frames 10)

    second = Server(data, free_port())
    try:
        done = wait_for(second.get, a["id"], ("done", "failed", "cancelled"))
        assert done["state"] == "done", done
        assert done["frames_done"] == 72 and done["resumed_frames"] == committed  # resumed, not redone
        got = second.raw(done["results"]["timeline.csv"])
        other = wait_for(second.get, b["id"], ("done", "failed", "cancelled"))
        assert other["state"] == "done" and other["frames_done"] == 12 and other["resumed_frames"] is None
    finally:
        second.stop()
    assert got == cli_timeline(tmp_path / "cli", SHORT)  # byte for byte an uninterrupted `openfer video`
