"""Video jobs of the REST service with the real models and fixture videos (FastAPI TestClient): the
same timeline as ``openfer video``, result files, listing, cancelling, 404s, traversal, limits, expiry."""

from __future__ import annotations

import io
import json
import time

import pytest
from conftest import PHOTOS
from jobs_helpers import LONG, NO_FACE, SHORT, cli_timeline, wait_for

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
from fastapi.testclient import TestClient  # noqa: E402

from openfer.service import ServiceConfig, create_app  # noqa: E402
from openfer.service.store import JobStore, QueueFull  # noqa: E402

LIMITS = {"max_video_bytes": 1_000_000, "max_video_seconds": 3.0}  # SHORT passes; LONG: too big, NO_FACE: too long


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tmp_path_factory.mktemp("serve-data")


@pytest.fixture(scope="module")
def client(data):
    with TestClient(create_app(ServiceConfig(data=data, api_key=None, checkpoint_frames=10, **LIMITS))) as c:
        yield c


def _getter(c, headers=None):
    def get(url):
        r = c.get(url, headers=headers)
        return r.status_code, r.json()

    return get


def _submit(c, video=SHORT, headers=None, name=None, **options):
    files = {"video": (name or video.name, video.read_bytes(), "video/mp4")}
    return c.post("/v1/jobs", files=files, data={k: str(v).lower() if isinstance(v, bool) else str(v)
                                                 for k, v in options.items()}, headers=headers)


@pytest.fixture(scope="module")
def finished(client):
    """One job run to its end: every 3rd frame, with plots, Parquet and the annotated video."""
    r = _submit(client, every=3, plots=True, parquet=True, annotate=True)
    assert r.status_code == 202, r.text
    doc = r.json()
    assert doc["state"] == "queued" and r.headers["location"] == f"/v1/jobs/{doc['id']}"
    return wait_for(_getter(client), doc["id"], ("done", "failed", "cancelled"))


def test_job_gives_what_openfer_video_writes(client, finished, tmp_path):
    assert finished["state"] == "done" and finished["error"] is None, finished
    assert finished["frames_done"] == finished["frames_total"] == 24 and finished["input_name"] == SHORT.name
    assert set(finished["results"]) == {"timeline.csv", "timeline.parquet", "summary.json", "captions.txt",
                                        "annotated.webm", "plots/track-0.png"}
    want = cli_timeline(tmp_path, SHORT, "--every", "3")
    r = client.get(finished["results"]["timeline.csv"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content == want  # byte for byte what `openfer video --every 3` writes
    cli_summary = json.loads((tmp_path / SHORT.stem / "summary.json").read_text())
    summary = client.get(finished["results"]["summary.json"]).json()
    assert {**summary, "source": None} == {**cli_summary, "source": None}
    assert client.get(finished["results"]["captions.txt"]).text.startswith("track 0:")
    png = client.get(finished["results"]["plots/track-0.png"])
    assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    import pandas as pd

    table = pd.read_parquet(io.BytesIO(client.get(finished["results"]["timeline.parquet"]).content))
    assert len(table) == want.count(b"\n") - 1 == 24
    webm = client.get(finished["results"]["annotated.webm"])  # VP8 in WebM: browsers play it (mp4v: no)
    assert webm.headers["content-type"] == "video/webm" and webm.content[:4] == b"\x1a\x45\xdf\xa3"  # EBML
    assert b"V_VP8" in webm.content[:4096]


def test_list_and_get(client, finished):
    jobs = client.get("/v1/jobs").json()["jobs"]
    assert finished["id"] in [j["id"] for j in jobs]
    one = client.get(f"/v1/jobs/{finished['id']}").json()
    assert one["options"]["every"] == 3 and one["options"]["end"] == 3.0  # capped at --max-video-seconds
    assert client.get("/v1/jobs", params={"limit": 0}).status_code == 422


@pytest.mark.parametrize("name", [
    "..%2F..%2Fjobs.sqlite3",            # encoded slashes
    "%2e%2e/%2e%2e/jobs.sqlite3",        # encoded dots
    "plots%2F..%2F..%2Finput.mp4",       # out of the results folder through a listed folder
    "%2Fetc%2Fpasswd",                   # absolute path
    "/etc/passwd",
    "progress.json",                     # a file of the job, not a result
    "..%2Finput.mp4",                    # the upload
    "plots",                             # a folder
])
def test_result_names_are_only_the_jobs_results(client, finished, name):
    r = client.get(f"/v1/jobs/{finished['id']}/{name}")
    assert r.status_code == 404, r.text
    assert "has no result" in r.json()["error"] and "\n" not in r.json()["error"]


def test_unknown_jobs_are_404(client):
    for method, url in (("GET", "/v1/jobs/AAAAAAAAAAAAAAAA"), ("GET", "/v1/jobs/nope"),
                        ("GET", "/v1/jobs/AAAAAAAAAAAAAAAA/timeline.csv"), ("DELETE", "/v1/jobs/AAAAAAAAAAAAAAAA"),
                        ("GET", "/v1/jobs/..%2F..%2Fjobs.sqlite3")):
        r = client.request(method, url)
        assert r.status_code == 404 and r.json()["error"].startswith("no job"), (url, r.text)


def test_limits_oversize_too_long_not_a_video_bad_options(client, data):
    before = sorted(p.name for p in (data / "jobs").iterdir())
    r = _submit(client, LONG)
    assert r.status_code == 413 and r.json() == {"error": "request body over the 1000000 byte limit"}
    r = _submit(client, NO_FACE, name="../../long\x1bclip.mp4")
    assert r.status_code == 400
    assert r.json() == {"error": "long\\x1bclip.mp4: the video is 4.1 s long, over the 3 s limit"}
    r = _submit(client, PHOTOS / "single_face.jpg")
    assert r.status_code == 400 and r.json()["error"] == "single_face.jpg: an image, not a video (photos go to /v1/analyze)"
    r = client.post("/v1/jobs", files={"video": ("clip.mp4", b"\x00" * 5000)})
    assert r.status_code == 400 and r.json()["error"].startswith("clip.mp4: ") and str(data) not in r.text
    r = _submit(client, every=0)
    assert r.status_code == 400 and r.json()["error"] == "every: expected an integer >= 1, got 0"
    r = _submit(client, smooth="gauss")
    assert r.status_code == 400 and r.json()["error"].startswith("smooth: expected one of none, ema")
    r = _submit(client, start=5)
    assert r.status_code == 400 and r.json()["error"] == "start: 5 s is past the 3 s limit"
    r = client.post("/v1/jobs", data={"every": "2"})
    assert r.status_code == 422 and r.json() == {"error": "video: Field required"}
    assert sorted(p.name for p in (data / "jobs").iterdir()) == before  # nothing refused was kept


def test_store_refuses_beyond_the_queue_bound_in_the_insert(tmp_path):
    store = JobStore(tmp_path)
    store.accept(io.BytesIO(b"a"), "a.mp4", ".mp4", {}, max_queued=1)
    with pytest.raises(QueueFull):
        store.accept(io.BytesIO(b"b"), "b.mp4", ".mp4", {}, max_queued=1)
    assert store.count("queued") == 1 and len(list((tmp_path / "jobs").iterdir())) == 1
    (job,) = store.list()
    assert (tmp_path / "jobs" / job.id / "input.mp4").read_bytes() == b"a"
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_queue_full_429_and_delete_cancels(tmp_path):
    """One worker, one queue slot: A runs, B waits, C is refused; DELETE stops A at its next frame and
    removes its files, then cancels B (queued, or running if the worker took it meanwhile)."""
    cfg = ServiceConfig(data=tmp_path, api_key=None, max_jobs=1, workers=1)
    with TestClient(create_app(cfg)) as c:
        get = _getter(c)
        a = _submit(c).json()["id"]
        running = wait_for(get, a, ("done", "failed"), until=lambda d: d["state"] == "running" and d["frames_done"] > 0)
        assert running["state"] == "running" and running["frames_total"] == 72
        b = _submit(c, every=2)
        assert b.status_code == 202 and b.json()["state"] == "queued"
        r = _submit(c, every=4)
        assert r.status_code == 429 and r.json() == {"error": "1 video jobs are already queued (the limit); retry later"}
        r = c.delete(f"/v1/jobs/{a}")
        assert r.status_code == 200 and r.json() == {"id": a, "state": "cancelled"}
        after = c.get(f"/v1/jobs/{a}").json()
        assert after["state"] == "cancelled" and after["frames_done"] < 72 and after["results"] == {}
        assert not (tmp_path / "jobs" / a).exists()
        b = b.json()["id"]
        r = c.delete(f"/v1/jobs/{b}")
        assert r.status_code == 200 and r.json() == {"id": b, "state": "cancelled"}
        assert not (tmp_path / "jobs" / b).exists()
        assert c.delete(f"/v1/jobs/{a}").json() == {"id": a, "state": "deleted"}  # the cancelled row goes too
        assert c.get(f"/v1/jobs/{a}").status_code == 404
        assert [j["id"] for j in c.get("/v1/jobs").json()["jobs"]] == [b]


def test_stopping_the_server_requeues_a_running_job_which_resumes(tmp_path):
    with TestClient(create_app(ServiceConfig(data=tmp_path, api_key=None, checkpoint_frames=10))) as c:
        job = _submit(c).json()["id"]
        seen = wait_for(_getter(c), job, ("done", "failed"), until=lambda d: d["frames_done"] >= 25)
    assert seen["state"] == "running"  # the server stopped (lifespan end) in the middle of the job
    store = JobStore(tmp_path)
    assert store.get(job).state == "queued"
    store.close()
    with TestClient(create_app(ServiceConfig(data=tmp_path, api_key=None))) as c:
        done = wait_for(_getter(c), job, ("done", "failed"))
        assert done["state"] == "done" and done["resumed_frames"] >= 20 and done["frames_done"] == 72
        got = c.get(done["results"]["timeline.csv"]).content
    assert got == cli_timeline(tmp_path / "cli", SHORT)


def test_two_workers_run_two_jobs_at_once(tmp_path):
    with TestClient(create_app(ServiceConfig(data=tmp_path / "data", api_key=None, workers=2))) as c:
        get = _getter(c)
        ids = [_submit(c, every=2).json()["id"] for _ in range(2)]
        both, deadline = False, time.monotonic() + 30
        while not both:  # both running at one moment (one would be queued with a single worker)
            states = [get(f"/v1/jobs/{i}")[1]["state"] for i in ids]
            both = states == ["running", "running"]
            assert both or (set(states) <= {"queued", "running"} and time.monotonic() < deadline), states
            time.sleep(0.02)
        docs = [wait_for(get, i, ("done", "failed")) for i in ids]
        got = [c.get(d["results"]["timeline.csv"]).content for d in docs]
    assert all(d["state"] == "done" and d["frames_done"] == 36 for d in docs)
    assert got[0] == got[1] == cli_timeline(tmp_path / "cli", SHORT, "--every", "2")


def test_service_config_is_validated():
    from openfer.errors import InputError

    for bad, line in (({"workers": 0}, "workers: expected an integer >= 1, got 0"),
                      ({"timeout": -1.0}, "timeout: expected a number > 0, got -1.0"),
                      ({"max_video_seconds": float("inf")}, "max_video_seconds: expected a number > 0 or None, got inf"),
                      ({"checkpoint_frames": True}, "checkpoint_frames: expected an integer >= 1, got True")):
        with pytest.raises(InputError) as e:
            ServiceConfig(**bad)
        assert str(e.value) == line


def test_delete_removes_a_finished_job(client, data):
    r = _submit(client, every=12)
    job = wait_for(_getter(client), r.json()["id"], ("done", "failed"))
    assert job["state"] == "done" and (data / "jobs" / job["id"] / "out" / "timeline.csv").is_file()
    assert client.delete(job["url"]).json() == {"id": job["id"], "state": "deleted"}
    assert client.get(job["url"]).status_code == 404 and not (data / "jobs" / job["id"]).exists()
    assert client.get(job["url"] + "/timeline.csv").status_code == 404


def test_expiry_at_start_up_and_by_the_periodic_sweep(tmp_path):
    orphan = tmp_path / "jobs" / "Orphan0123456789"  # an upload cut off by a kill before its row
    orphan.mkdir(parents=True)
    (orphan / ".input.mp4.part").write_bytes(b"x")
    cfg = ServiceConfig(data=tmp_path, api_key=None, keep_hours=1.5 / 3600, sweep_seconds=0.2)
    with TestClient(create_app(cfg)) as c:
        assert not orphan.exists()  # removed at start-up
        job = wait_for(_getter(c), _submit(c, every=12).json()["id"], ("done", "failed"))
        assert job["state"] == "done" and (tmp_path / "jobs" / job["id"]).is_dir()
        deadline = time.monotonic() + 10
        while c.get(job["url"]).status_code == 200:  # kept 1.5 s after it ended, then swept
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert time.time() - job["finished"] >= 1.5
        assert c.get(job["url"]).json()["error"].startswith("no job") and not (tmp_path / "jobs" / job["id"]).exists()
        orphan.mkdir()  # as an upload in flight: the periodic sweeps leave it alone
        time.sleep(0.6)
        assert orphan.is_dir()
    store = JobStore(tmp_path)  # an ended job older than keep_hours is removed at the next start
    old = store.accept(io.BytesIO(SHORT.read_bytes()), "old.mp4", ".mp4", {}, max_queued=9)
    assert store.cancel_queued(old.id)
    store._db.execute("UPDATE jobs SET finished = finished - 7200 WHERE id = ?", (old.id,))
    store.close()
    with TestClient(create_app(ServiceConfig(data=tmp_path, api_key=None, keep_hours=1.0))) as c:
        assert c.get(f"/v1/jobs/{old.id}").status_code == 404 and not (tmp_path / "jobs" / old.id).exists()
        assert not orphan.exists()


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    cfg = ServiceConfig(data=tmp_path_factory.mktemp("strict"), api_key="s3cret", timeout=0.01)
    with TestClient(create_app(cfg)) as c:
        yield c


def test_api_key_guards_the_job_endpoints(strict):
    for method, url in (("POST", "/v1/jobs"), ("GET", "/v1/jobs"), ("GET", "/v1/jobs/AAAAAAAAAAAAAAAA"),
                        ("GET", "/v1/jobs/AAAAAAAAAAAAAAAA/timeline.csv"), ("DELETE", "/v1/jobs/AAAAAAAAAAAAAAAA")):
        r = strict.request(method, url)
        assert r.status_code == 401 and r.json() == {"error": "missing or wrong X-API-Key"}, url
        r = strict.request(method, url, headers={"X-API-Key": "wrong"})
        assert r.status_code == 401
    key = {"X-API-Key": "s3cret"}
    r = _submit(strict, every=12, headers=key)
    assert r.status_code == 202
    job = wait_for(_getter(strict, key), r.json()["id"], ("done", "failed"))
    assert strict.get(job["url"] + "/timeline.csv", headers=key).status_code == 200
    assert strict.get(job["url"] + "/timeline.csv").status_code == 401


def test_analyze_past_the_timeout_is_a_504(strict):
    r = strict.post("/v1/analyze", files={"image": ("f.jpg", (PHOTOS / "single_face.jpg").read_bytes())},
                    headers={"X-API-Key": "s3cret"})
    assert r.status_code == 504 and r.json() == {"error": "analysis took longer than the 0.01 s timeout"}
    gate = strict.app.state.gate
    deadline = time.monotonic() + 30  # the abandoned analysis runs to its end, then gives the analyzer back
    while not gate.run.acquire(blocking=False):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    gate.run.release()


def test_a_video_cut_short_fails_with_its_decoded_frames_kept(client, data, tmp_path):
    import cv2
    import numpy as np

    src = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    assert w.isOpened()
    for i in range(40):
        w.write(np.full((48, 64, 3), i * 5, np.uint8))
    w.release()
    raw = src.read_bytes()
    r = client.post("/v1/jobs", files={"video": ("cut.avi", raw[: len(raw) // 2])})
    assert r.status_code == 202, r.text
    job = wait_for(_getter(client), r.json()["id"], ("done", "failed", "cancelled"))
    assert job["state"] == "failed" and 0 < job["frames_done"] < 40
    err = job["error"]
    assert err.startswith("cut.avi: truncated or corrupt") and "of the 40 frames" in err
    assert err.endswith(f"(results for the {job['frames_done']} decoded frames are in results)")
    assert str(data) not in err and "\n" not in err
    timeline = client.get(job["results"]["timeline.csv"])
    assert timeline.status_code == 200 and timeline.text.startswith("time,frame,track")
