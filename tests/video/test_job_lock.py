"""A video job holds its output folder's lock, and every unusable state file has one way out.

Regressions of issue 10, defect 3: a second job into a folder in use fails at once and leaves the
first job's folder as it was (still resumable, its result intact); a garbage or truncated
``progress.json``, a listed part that is missing, a resume with other settings give one line naming
the file and ``--overwrite``; ``overwrite=True`` recovers, deleting openfer's files only; an input
among the outputs is refused.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import sys

import pytest
from conftest import held_elsewhere
from video_assets import SINGLE_FACE, video_analyzer

from openfer.errors import InputError
from openfer.io.lock import LOCK_FILE, FolderInUseError
from openfer.video import analyze_video_to_dir
from openfer.video.job import ANNOTATED_FILE, PLOTS_DIR, SUMMARY_FILE
from openfer.video.timeline import PROGRESS_FILE, TIMELINE_FILE


class Killed(Exception):
    pass


def kill_at(n):
    def on_frame(done, expected):
        if done == n:
            raise Killed

    return on_frame




def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def video():
    return video_analyzer(every=8)  # 9 of the clip's 72 frames


@pytest.fixture(scope="module")
def full(video, tmp_path_factory):
    """An uninterrupted run: the bytes every recovered run must reproduce."""
    out = tmp_path_factory.mktemp("full")
    analyze_video_to_dir(video, SINGLE_FACE, out, chunk_frames=2)
    return (out / TIMELINE_FILE).read_bytes()


def unfinished(video, out):
    with pytest.raises(Killed):
        analyze_video_to_dir(video, SINGLE_FACE, out, chunk_frames=2, on_frame=kill_at(5))
    assert not json.loads((out / PROGRESS_FILE).read_text())["complete"]
    assert not (out / LOCK_FILE).exists()  # released by the exception


def test_a_second_job_into_a_folder_in_use_fails_and_the_run_stays_resumable(video, full, tmp_path):
    out = tmp_path / "run"
    unfinished(video, out)
    before = snapshot(out)
    with held_elsewhere(out) as pid:  # the first job, still running
        for resume in (True, False):
            with pytest.raises(FolderInUseError) as err:
                analyze_video_to_dir(video, SINGLE_FACE, out, chunk_frames=2, resume=resume)
            assert str(err.value).startswith(f"{out}: in use by openfer pid {pid} on ")
            assert str(err.value).endswith(f"(lock {out / LOCK_FILE})") and "\n" not in str(err.value)
        assert {k: v for k, v in snapshot(out).items() if k != LOCK_FILE} == before  # nothing touched
    res = analyze_video_to_dir(video, SINGLE_FACE, out, chunk_frames=2, resume=True)
    assert res.resumed and res.frames_before == 4 and res.frames == 9
    assert (out / TIMELINE_FILE).read_bytes() == full
    assert not (out / LOCK_FILE).exists() and not list(out.glob("part-*"))


def test_a_second_job_leaves_a_finished_run_intact(video, full, tmp_path):
    analyze_video_to_dir(video, SINGLE_FACE, tmp_path, chunk_frames=2)
    before = snapshot(tmp_path)
    with held_elsewhere(tmp_path):
        with pytest.raises(FolderInUseError):
            analyze_video_to_dir(video, SINGLE_FACE, tmp_path, overwrite=True)
    assert snapshot(tmp_path) == before and before[TIMELINE_FILE] == full
    assert analyze_video_to_dir(video, SINGLE_FACE, tmp_path, resume=True).already_complete


def test_a_lock_left_by_a_killed_job_is_taken_over_with_a_warning(video, full, tmp_path, caplog):
    unfinished(video, tmp_path)
    code = "import os, sys\nfrom openfer.io.lock import FolderLock\nFolderLock(sys.argv[1]).acquire()\nos._exit(9)"
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    pid = json.loads((tmp_path / LOCK_FILE).read_text())["pid"]
    with caplog.at_level(logging.WARNING, logger="openfer"):
        res = analyze_video_to_dir(video, SINGLE_FACE, tmp_path, chunk_frames=2, resume=True)
    assert res.resumed and (tmp_path / TIMELINE_FILE).read_bytes() == full
    (msg,) = [r.getMessage() for r in caplog.records]
    assert msg.startswith(f"{tmp_path}: taking over the stale lock of openfer pid {pid} on {socket.gethostname()} ")
    assert msg.endswith(f" (no longer running; lock {tmp_path / LOCK_FILE})")


@pytest.mark.parametrize(
    "garbage",
    [b"", b"{\"format\": 1, \"complete\": fal", b"\xff\xfe garbage", b"[1, 2]", b'{"format": 1, "complete": false}'],
    ids=["empty", "truncated", "binary", "not-a-dict", "missing-fields"],
)
def test_an_unreadable_progress_file_names_itself_and_overwrite_recovers(video, full, tmp_path, garbage):
    (tmp_path / PROGRESS_FILE).write_bytes(garbage)
    for resume in (False, True):
        with pytest.raises(InputError) as err:
            analyze_video_to_dir(video, SINGLE_FACE, tmp_path, resume=resume)
        msg = str(err.value)
        assert msg.startswith(f"{tmp_path / PROGRESS_FILE}: ") and "\n" not in msg
        assert msg.endswith("pass --overwrite (overwrite=True) to discard the earlier run and start again")
    assert not (tmp_path / LOCK_FILE).exists()
    res = analyze_video_to_dir(video, SINGLE_FACE, tmp_path, chunk_frames=2, overwrite=True)
    assert not res.resumed and res.frames == 9 and (tmp_path / TIMELINE_FILE).read_bytes() == full


def test_the_issue_s_corrupted_folder_part_missing_is_named_and_overwrite_recovers(video, full, tmp_path):
    unfinished(video, tmp_path)
    (tmp_path / "part-00001.csv").unlink()  # what the second, unlocked run used to leave
    with pytest.raises(InputError) as err:
        analyze_video_to_dir(video, SINGLE_FACE, tmp_path, resume=True)
    assert str(err.value) == (
        f"{tmp_path / 'part-00001.csv'}: part 1 of 2 listed in {PROGRESS_FILE} cannot be read "
        "(No such file or directory); pass --overwrite (overwrite=True) to discard the earlier run and start again"
    )
    with pytest.raises(InputError) as err:
        analyze_video_to_dir(video, SINGLE_FACE, tmp_path)
    assert str(err.value) == (
        f"{tmp_path}: holds an unfinished run (4 frames done); pass --resume (resume=True) to continue it, "
        "--overwrite (overwrite=True) to discard it, or use another output folder"
    )
    analyze_video_to_dir(video, SINGLE_FACE, tmp_path, chunk_frames=2, overwrite=True)
    assert (tmp_path / TIMELINE_FILE).read_bytes() == full


def test_a_resume_with_other_settings_or_a_lost_timeline_points_to_overwrite(video, tmp_path):
    unfinished(video, tmp_path)
    with pytest.raises(InputError, match=r"holds a run with other settings \(video_options\); .* or pass --overwrite"):
        analyze_video_to_dir(video_analyzer(every=4), SINGLE_FACE, tmp_path, resume=True)
    analyze_video_to_dir(video, SINGLE_FACE, tmp_path, resume=True)
    (tmp_path / TIMELINE_FILE).write_text("garbage\n")
    with pytest.raises(InputError, match=r"timeline.csv: the finished timeline listed in progress.json has other"):
        analyze_video_to_dir(video, SINGLE_FACE, tmp_path, resume=True)
    with pytest.raises(InputError, match="resume and overwrite exclude each other"):
        analyze_video_to_dir(video, SINGLE_FACE, tmp_path, resume=True, overwrite=True)


def test_overwrite_deletes_openfer_s_files_only(video, full, tmp_path):
    mine = {"notes.txt": b"keep", "part-1.csv": b"not a part name", f"{PLOTS_DIR}/mine.png": b"png",
            "sub/timeline.csv": b"elsewhere", ".summary.tmp": b"not a temp name"}
    stale = ["part-00007.csv", ".part-00002.abcd_123.tmp", ".summary.k2j4h5g6.tmp", ".annotated.x1y2z3w4.mp4",
             f"{PLOTS_DIR}/track-9.png", ANNOTATED_FILE, "timeline.parquet", "captions.txt"]
    for name, data in mine.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(data)
    for name in stale:
        (tmp_path / name).write_bytes(b"stale")
    (tmp_path / PROGRESS_FILE).write_text("garbage")
    res = analyze_video_to_dir(video, SINGLE_FACE, tmp_path, chunk_frames=2, overwrite=True)
    assert res.timeline.read_bytes() == full
    files = snapshot(tmp_path)
    assert {k: files[k] for k in mine} == mine
    assert [n for n in stale if files.get(n) == b"stale"] == []  # deleted (captions.txt: rewritten)
    assert set(files) == set(mine) | {TIMELINE_FILE, PROGRESS_FILE, SUMMARY_FILE, "captions.txt"}


def test_an_input_among_the_outputs_is_refused(video, tmp_path):
    for name in (ANNOTATED_FILE, "part-00001.csv", PLOTS_DIR, f"{PLOTS_DIR}/track-1.png"):
        src = tmp_path / name
        src.parent.mkdir(exist_ok=True)
        if name == PLOTS_DIR:
            src.mkdir(exist_ok=True)
        else:
            shutil.copyfile(SINGLE_FACE, src)
        with pytest.raises(InputError) as err:
            analyze_video_to_dir(video, src, tmp_path, annotate_video=True, overwrite=True)
        assert str(err.value) == (
            f"{src}: the input is one of the outputs openfer writes in {tmp_path}; move it or use another output folder"
        )
        if src.is_file():
            assert src.read_bytes() == SINGLE_FACE.read_bytes()
    link = tmp_path / "link.mp4"  # through a symlink too
    link.symlink_to(tmp_path / ANNOTATED_FILE)
    with pytest.raises(InputError, match="is one of the outputs"):
        analyze_video_to_dir(video, link, tmp_path / ".")
    clip = tmp_path / "clip.mp4"  # another name in the folder is no output: analysed, and kept by overwrite
    shutil.copyfile(SINGLE_FACE, clip)
    assert analyze_video_to_dir(video, clip, tmp_path, overwrite=True).frames == 9
    assert clip.read_bytes() == SINGLE_FACE.read_bytes()
    assert not (tmp_path / ANNOTATED_FILE).exists() and not (tmp_path / PLOTS_DIR).exists()  # openfer's names
