"""Ray engine on a real local cluster: photo batches and folders of videos give exactly what local
mode gives, and a killed driver resumes from the manifest (issue 14). Marked ``ray`` (``.ci/run``
runs them; ``pip install ".[ray]"``); one cluster for the module."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ASSETS, PHOTOS

from openfer.batch import BatchOutputs, run_batch
from openfer.pipeline import Analyzer

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from openfer.scale.ray_engine import RayEngine  # noqa: E402
from openfer.scale.videos import VideoTask, run_video_tasks  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def engine():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with RayEngine(workers=2) as e:  # joins the running cluster, does not stop it
            yield e
    finally:
        ray.shutdown()


def photos(tmp_path: Path, n: int = 10) -> Path:
    src = [PHOTOS / "no_face_landscape.jpg", PHOTOS / "multi_face.jpg", PHOTOS / "single_face.jpg",
           *sorted((PHOTOS / "labeled").glob("*.jpg"))]
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(n):
        shutil.copy(src[i % len(src)], folder / f"img{i:03d}.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    return folder


def test_photo_batch_on_ray_equals_local_mode(engine, tmp_path):
    folder = photos(tmp_path)
    analyzer = Analyzer(threads=1)
    inputs = [str(folder), str(tmp_path / "missing.jpg")]
    local = BatchOutputs(csv=str(tmp_path / "l.csv"), json=str(tmp_path / "l.json"), annotate=str(tmp_path / "la"))
    remote = BatchOutputs(csv=str(tmp_path / "r.csv"), json=str(tmp_path / "r.json"), annotate=str(tmp_path / "ra"))
    sl = run_batch(analyzer, inputs, local)
    seen = []
    sr = run_batch(analyzer, inputs, remote, engine=engine, progress=lambda done, total: seen.append((done, total)))
    assert (sr.images, sr.failed, sr.no_face, sr.faces) == (sl.images, sl.failed, sl.no_face, sl.faces)
    assert sr.images == 12 and sr.failed == 2 and sr.no_face >= 1 and sr.finished
    assert seen[-1] == (12, 12)
    for ext in ("csv", "json"):
        assert (tmp_path / f"r.{ext}").read_bytes() == (tmp_path / f"l.{ext}").read_bytes(), ext
    names = sorted(p.name for p in (tmp_path / "la").glob("*.jpg"))
    assert names and names == sorted(p.name for p in (tmp_path / "ra").glob("*.jpg"))
    assert (tmp_path / "la" / names[0]).read_bytes() == (tmp_path / "ra" / names[0]).read_bytes()


def test_interrupted_ray_batch_resumes_to_identical_outputs(engine, tmp_path):
    folder = photos(tmp_path)
    analyzer = Analyzer(threads=1)
    ref = BatchOutputs(csv=str(tmp_path / "ref.csv"), json=str(tmp_path / "ref.json"))
    run_batch(analyzer, [str(folder)], ref)
    out = BatchOutputs(csv=str(tmp_path / "o.csv"), json=str(tmp_path / "o.json"))

    class Stop(Exception):
        pass

    def stop_after_4(row):  # the fourth row is logged, then the driver stops
        if len(got) == 3:
            raise Stop
        got.append(row)

    got: list = []
    with pytest.raises(Stop):
        run_batch(analyzer, [str(folder)], out, engine=engine, on_row=stop_after_4)
    work = tmp_path / "o.json.openfer-work"
    lines = [json.loads(line) for line in (work / "rows.jsonl").read_text().splitlines()]
    done = len(lines)
    assert 4 <= done < 11 and not (tmp_path / "o.csv").exists()
    # the actors wrote the rows into partitions; the driver's manifest holds references to them
    assert all("records" not in d and (work / "parts" / d["part"]).is_file() for d in lines)
    s = run_batch(analyzer, [str(folder)], out, engine=engine, resume=True)
    assert s.resumed == done and s.finished and not work.exists()
    for ext in ("csv", "json"):
        assert (tmp_path / f"o.{ext}").read_bytes() == (tmp_path / f"ref.{ext}").read_bytes(), ext


def test_videos_as_ray_tasks_write_the_folders_of_local_mode(engine, tmp_path):
    videos = ASSETS / "videos"
    names = ("single_face.mp4", "no_face.mp4")
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    sources = [str(videos / n) for n in names] + [str(tmp_path / "broken.mp4")]

    def tasks(out: str) -> list[VideoTask]:
        return [VideoTask(i, s, str(tmp_path / out / Path(s).stem), overrides={"every": 4})
                for i, s in enumerate(sources)]

    local = {o.index: o for o in run_video_tasks(tasks("local"))}
    remote = {o.index: o for o in run_video_tasks(tasks("ray"), engine=engine)}
    assert sorted(remote) == [0, 1, 2]
    assert local[2].error and remote[2].error and "broken.mp4" in remote[2].error
    for i in (0, 1):
        assert remote[i].error is None and remote[i].result.frames == local[i].result.frames > 0
        stem = Path(sources[i]).stem
        for f in ("timeline.csv", "summary.json", "captions.txt"):
            assert (tmp_path / "ray" / stem / f).read_bytes() == (tmp_path / "local" / stem / f).read_bytes(), f


def test_cli_ray_batch_killed_and_resumed_matches_local(tmp_path):
    """The real command: ``openfer analyze --engine ray`` starts its own cluster; SIGKILL the driver
    mid-batch, ``--resume`` finishes it with the outputs of a local run. (Runs after the module's
    cluster fixture is torn down or beside it: the driver starts a separate local cluster.)"""
    folder = photos(tmp_path, 16)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    common = [str(folder), "--csv", "o.csv", "--json", "o.json", "--threads", "1", "--quiet"]

    def run(cwd: Path, *extra: str) -> subprocess.Popen:
        cwd.mkdir(exist_ok=True)
        return subprocess.Popen([sys.executable, "-m", "openfer.cli", "analyze", *common, *extra], cwd=cwd,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    ref = run(tmp_path / "ref")
    assert ref.wait(timeout=300) == 3, ref.stderr.read().decode()  # broken.jpg: exit 3 after the rest
    p = run(tmp_path / "killed", "--engine", "ray", "--workers", "1")
    rows = tmp_path / "killed" / "o.json.openfer-work" / "rows.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and p.poll() is None and (not rows.exists() or rows.read_bytes().count(b"\n") < 3):
        time.sleep(0.05)
    assert p.poll() is None, p.stderr.read().decode()
    os.killpg(p.pid, signal.SIGKILL)  # the driver and the local cluster it started, as a job scheduler kills a job
    p.wait(timeout=30)
    done = rows.read_bytes().count(b"\n")
    assert 3 <= done < 17, "the kill should land mid-batch"
    p = run(tmp_path / "killed", "--engine", "ray", "--resume")
    assert p.wait(timeout=300) == 3
    err = p.stderr.read().decode()
    assert f"17 image(s) ({done} from the unfinished run)" in err, err
    for name in ("o.csv", "o.json"):
        assert (tmp_path / "killed" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
