"""Loopback load test of ``openfer serve``: photo requests at a fixed concurrency, and video-job throughput.

Usage: python benchmarks/bench_service.py [--requests 500] [--concurrency 8] [--data ../shared/datasets/photos_dev]
           [--server-concurrency 2] [--out benchmarks/results/service.json]

A real ``openfer serve`` process (default preset) on a free loopback port, with a temporary ``--data``.

* Photos: ``--requests`` ``POST /v1/analyze`` requests of photos_dev images (256x256; the first N sorted),
  sent by ``--concurrency`` client threads (httpx, one connection each). Reports requests/s, latency
  p50/p95/max, the count of every status (the target: all 200), and the server's resident memory
  (``/proc/<pid>/status`` VmRSS) after the warm-up, at the half and at the end: flat memory means no
  leak per request. The server analyses ``--server-concurrency`` photos at a time; the rest wait in
  its queue (``--queue`` is set to the client concurrency so that none is refused).
* Videos: the fixture clips (``tests/assets/videos``) submitted as jobs one after the other and
  polled to the end; frames/s per job, against ``openfer video`` on the same clip and options run in
  this process beforehand (the same job code; the difference is upload, queue and polling).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import machine  # noqa: E402

from openfer.io.tables import write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--server-concurrency", type=int, default=2)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "photos_dev")
    ap.add_argument("--every", type=int, default=1, help="video jobs: analyse every N-th frame")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "service.json")
    a = ap.parse_args()
    import httpx

    photos = sorted((a.data / "images").glob("*.jpg"))[: a.requests]
    if not photos:
        raise SystemExit(f"{a.data}: no images")
    bodies = [(p.name, p.read_bytes()) for p in photos]
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "openfer.cli", "serve", "--port", str(port), "--data", str(Path(tmp) / "data"),
             "--concurrency", str(a.server_concurrency), "--queue", str(a.concurrency)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base, server)
            with httpx.Client(base_url=base, timeout=120) as c:  # warm-up: first runs of every model
                for name, data in bodies[:10]:
                    c.post("/v1/analyze", files={"image": (name, data, "image/jpeg")}).raise_for_status()
            photos_result = _load(base, bodies, a.concurrency, server.pid)
            videos_result = _videos(base, a.every)
        finally:
            server.terminate()
            server.wait(timeout=60)
    result = {"machine": machine(), "photos": photos_result, "videos": videos_result,
              "settings": {"requests": len(bodies), "client_concurrency": a.concurrency,
                           "server_concurrency": a.server_concurrency, "data": str(a.data)}}
    write_json(result, a.out)
    p = photos_result
    print(f"photos: {p['requests_per_s']:.1f} req/s, p50 {p['latency_ms']['p50']:.0f} ms, p95 "
          f"{p['latency_ms']['p95']:.0f} ms, statuses {p['statuses']}, RSS MiB {p['server_rss_mib']}")
    for v in videos_result:
        print(f"{v['video']}: job {v['job_frames_per_s']:.1f} frames/s, openfer video {v['cli_frames_per_s']:.1f} "
              f"frames/s ({v['ratio_to_cli']:.2f}x)")
    print(f"wrote {a.out}")


def _load(base: str, bodies: list[tuple[str, bytes]], concurrency: int, pid: int) -> dict:
    import httpx

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    rss: dict[str, float] = {"after_warmup": _rss_mib(pid)}
    lock = threading.Lock()
    todo = iter(range(len(bodies)))

    def client() -> None:
        with httpx.Client(base_url=base, timeout=120) as c:
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                name, data = bodies[i]
                t = time.perf_counter()
                r = c.post("/v1/analyze", files={"image": (name, data, "image/jpeg")})
                dt = time.perf_counter() - t
                with lock:
                    latencies.append(dt)
                    statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
                    if len(latencies) == len(bodies) // 2:
                        rss["half"] = _rss_mib(pid)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    rss["end"] = _rss_mib(pid)
    q = statistics.quantiles(latencies, n=100)
    return {"requests": len(latencies), "seconds": round(wall, 2), "requests_per_s": round(len(latencies) / wall, 2),
            "latency_ms": {"p50": round(q[49] * 1000, 1), "p95": round(q[94] * 1000, 1),
                           "max": round(max(latencies) * 1000, 1)},
            "statuses": statuses, "server_rss_mib": rss}


def _videos(base: str, every: int) -> list[dict]:
    import httpx

    from openfer.video import VideoAnalyzer, analyze_video_to_dir

    out = []
    video = VideoAnalyzer(every=every)
    for clip in ("single_face.mp4", "WolfgangLanger_Pexels.mp4"):
        path = ROOT / "tests" / "assets" / "videos" / clip
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            res = analyze_video_to_dir(video, path, Path(tmp) / "cli")
            cli_s = time.perf_counter() - t
        with httpx.Client(base_url=base, timeout=120) as c:
            t = time.perf_counter()
            r = c.post("/v1/jobs", files={"video": (clip, path.read_bytes(), "video/mp4")}, data={"every": str(every)})
            r.raise_for_status()
            url = r.headers["location"]
            while (doc := c.get(url).json())["state"] in ("queued", "running"):
                time.sleep(0.1)
            job_s = time.perf_counter() - t
        if doc["state"] != "done":
            raise SystemExit(f"{clip}: the job ended {doc['state']}: {doc.get('error')}")
        out.append({"video": clip, "frames": res.frames, "cli_seconds": round(cli_s, 2), "job_seconds": round(job_s, 2),
                    "cli_frames_per_s": round(res.frames / cli_s, 2), "job_frames_per_s": round(res.frames / job_s, 2),
                    "ratio_to_cli": round(cli_s / job_s, 3)})
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(base: str, server: subprocess.Popen) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"openfer serve exited: {server.stderr.read().decode()[-500:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("openfer serve was not ready after 120 s")


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
