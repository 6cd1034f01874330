"""Folders of videos: one job per video, serially or in ``--workers`` processes, the same folders (issue 14)."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import ASSETS

from openfer.cli import EXIT_INPUT, main
from openfer.scale.videos import VideoTask, run_video_tasks

VIDEOS = ASSETS / "videos"
FILES = ("timeline.csv", "summary.json", "captions.txt")


def clips(tmp_path: Path) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("single_face.mp4", "no_face.mp4"):
        shutil.copy(VIDEOS / name, folder / name)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    return folder


def test_two_worker_processes_write_the_same_folders_as_one(tmp_path, capsys):
    folder = clips(tmp_path)
    args = [str(folder), "--every", "3", "--quiet"]
    assert main(["video", *args, "--out", str(tmp_path / "one")]) == EXIT_INPUT  # broken.mp4 fails, the rest run
    assert main(["video", *args, "--out", str(tmp_path / "two"), "--workers", "2"]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert err.count("broken.mp4") == 2, err
    for name in ("single_face", "no_face"):
        for f in FILES:
            one, two = tmp_path / "one" / name / f, tmp_path / "two" / name / f
            assert one.read_bytes() == two.read_bytes(), f"{name}/{f}"
    single = (tmp_path / "one" / "single_face" / "timeline.csv").read_text().splitlines()
    assert len(single) == 1 + 24  # header + every third of 72 frames, one face each


def test_tasks_with_a_bad_option_fail_one_by_one_without_stopping_the_others(tmp_path):
    good = VideoTask(0, str(VIDEOS / "no_face.mp4"), str(tmp_path / "a"), overrides={"every": 5})
    bad = VideoTask(1, str(VIDEOS / "no_face.mp4"), str(tmp_path / "b"), overrides={"every": 0})
    out = list(run_video_tasks([bad, good]))
    assert [o.index for o in out] == [1, 0]
    assert out[0].error and "every" in out[0].error and out[0].result is None
    assert out[1].error is None and out[1].result.frames > 0


def test_a_bad_option_is_one_error_before_any_video(tmp_path, capsys):
    folder = clips(tmp_path)
    assert main(["video", str(folder), "--every", "0", "--out", str(tmp_path / "o")]) == EXIT_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "every" in err[0], err
    assert not (tmp_path / "o").exists()


def test_ray_address_needs_the_ray_engine(tmp_path, capsys):
    assert main(["analyze", str(ASSETS / "photos" / "single_face.jpg"), "--ray-address", "auto"]) == EXIT_INPUT
    assert "--ray-address needs --engine ray" in capsys.readouterr().err
