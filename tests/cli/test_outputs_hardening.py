"""Outputs under hostile names, failing disks and missing extras (issue 10, defects 2, 6, 7, 8)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import PHOTOS

from openfer.cli import EXIT_DEPENDENCY, EXIT_INPUT, EXIT_OK, EXIT_OUTPUT, main
from openfer.errors import InputError, MissingDependencyError, OutputError
from openfer.io.tables import write_csv, write_json
from openfer.io.text import printable, utf8_safe

FACE = PHOTOS / "single_face.jpg"


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(("error", "missing dependency"))]


def test_names_are_escaped_for_text_outputs():
    raw = os.fsdecode(b"bad\xffname.jpg")  # how Python sees a non-UTF-8 file name
    assert utf8_safe(raw) == "bad\\xffname.jpg"
    assert printable("two\nlines\t\x1b[31m.jpg") == "two\\nlines\\t\\x1b[31m.jpg"
    assert printable("été.jpg") == "été.jpg"  # valid text is left alone
    assert utf8_safe("lone\ud800.jpg").encode("utf-8")  # any lone surrogate becomes writable text


def test_non_utf8_file_name_reaches_csv_parquet_and_json(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    bad = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/bad\xffname.jpg"))
    shutil.copy(FACE, bad)
    out = tmp_path / "out"
    rc = main(["analyze", str(bad), "--csv", str(out / "r.csv"), "--parquet", str(out / "r.parquet"),
               "--json", str(out / "r.json")])
    assert rc == EXIT_OK
    printed = capsys.readouterr().out
    assert "bad\\xffname.jpg" in printed
    with open(out / "r.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and rows[0]["source"].endswith("bad\\xffname.jpg")
    assert pd.read_parquet(out / "r.parquet")["source"][0].endswith("bad\\xffname.jpg")
    doc = json.loads((out / "r.json").read_text())  # JSON keeps the exact name
    assert doc["images"][0]["source"] == str(bad)


def test_newline_in_a_bad_file_name_stays_one_error_line(tmp_path, capsys):
    bad = tmp_path / "two\nlines.jpg"
    bad.write_bytes(b"not an image at all")
    shutil.copy(FACE, tmp_path / "good.jpg")
    rc = main(["analyze", str(bad), str(tmp_path / "good.jpg"), "-q"])
    err = capsys.readouterr().err
    assert rc == EXIT_INPUT
    assert [e for e in _errors(err)] == [f"error: {tmp_path}/two\\nlines.jpg: not a supported image "
                                         "(unrecognised content; expected JPEG, PNG, GIF, BMP, WebP or TIFF)"]
    assert "2 image(s), 1 face(s), 0 without a face, 1 failed" in err


def test_ascii_terminal_prints_unicode_names_escaped(tmp_path):
    name = tmp_path / "été.jpg"
    shutil.copy(FACE, name)
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    p = subprocess.run([sys.executable, "-m", "openfer.cli", "analyze", str(name)], capture_output=True,
                       env=env, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    assert b"\\xe9t\\xe9.jpg" in p.stdout and b"Traceback" not in p.stderr


def test_failed_annotation_write_does_not_stop_the_batch_and_is_redone_on_resume(tmp_path, capsys):
    ann = tmp_path / "ann"
    (ann / "a_annotated.jpg").mkdir(parents=True)  # this one image cannot be written
    shutil.copy(FACE, tmp_path / "a.jpg")
    shutil.copy(FACE, tmp_path / "b.jpg")
    args = ["analyze", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"), "--annotate", str(ann),
            "--json", str(tmp_path / "r.json"), "-q"]
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == EXIT_OUTPUT
    assert _errors(err) == [f"error: cannot write {ann / 'a_annotated.jpg'}: it is a folder"]
    assert (ann / "b_annotated.jpg").is_file()
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [len(i["faces"]) for i in doc["images"]] == [1, 1]
    assert "2 image(s), 2 face(s), 0 without a face, 0 failed, 1 output(s) not written" in err
    # the batch is kept as unfinished: fixed and resumed, only the failed image is analysed again
    assert main(args) == EXIT_INPUT and "--resume" in capsys.readouterr().err
    (ann / "a_annotated.jpg").rmdir()
    assert main([*args, "--resume"]) == EXIT_OK
    assert "2 image(s) (1 from the unfinished run)" in capsys.readouterr().err
    assert (ann / "a_annotated.jpg").is_file() and not (tmp_path / "r.json.openfer-work").exists()


def test_annotation_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "ann").write_text("a file where the annotation folder should be")
    rc = main(["analyze", str(FACE), "--annotate", str(tmp_path / "ann"), "-q"])
    err = capsys.readouterr().err
    assert rc == EXIT_INPUT and "image(s)" not in err
    assert _errors(err) == [f"error: {tmp_path / 'ann'}: the annotation folder exists and is not a folder"]


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs: a real ENOSPC (needs root and mount rights, else skipped)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if p.returncode:
        pytest.skip(f"cannot mount a tmpfs: {p.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_full_disk_names_the_file_and_leaves_no_partial_file(full_disk, tmp_path, capsys):
    records = [{"source": "x" * 1000, "face": i} for i in range(200)]  # ~200 KB > 64 KiB
    with pytest.raises(OutputError, match=r"cannot write .*big\.csv: No space left on device"):
        write_csv(records, full_disk / "big.csv")
    assert list(full_disk.iterdir()) == []  # the temp file is gone
    shutil.copy(FACE, tmp_path / "a.jpg")
    rc = main(["analyze", str(tmp_path / "a.jpg"), "--annotate", str(full_disk / "ann"), "--csv",
               str(full_disk / "r.csv"), "--json", str(tmp_path / "r.json"), "-q", "--landmarks"])
    err = capsys.readouterr().err
    assert rc == EXIT_OUTPUT
    assert any("No space left on device" in e and str(full_disk) in e for e in _errors(err))
    assert json.loads((tmp_path / "r.json").read_text())["images"][0]["faces"]  # the other disk's output


def test_write_json_into_a_folder_path_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="it is a folder"):
        write_json({}, tmp_path)


def test_missing_extra_is_its_own_error_and_exit_code(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now fails as if not installed
    rc = main(["analyze", str(FACE), "--parquet", str(tmp_path / "r.parquet"), "-q"])
    err = capsys.readouterr().err
    assert rc == EXIT_DEPENDENCY
    assert _errors(err) == ["missing dependency: Parquet output needs pyarrow: pip install 'openfer[tables]'"]
    assert "image(s)" not in err  # refused before any analysis
    monkeypatch.setitem(sys.modules, "pandas", None)
    from openfer.io.tables import records_to_dataframe

    with pytest.raises(MissingDependencyError) as info:
        records_to_dataframe([])
    assert isinstance(info.value, ImportError) and not isinstance(info.value, InputError)
    assert info.value.extra == "tables"


def test_missing_matplotlib_for_video_plots_exits_5(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    frames = tmp_path / "frames"
    frames.mkdir()
    shutil.copy(FACE, frames / "f0.jpg")
    rc = main(["video", str(frames), "--out", str(tmp_path / "v"), "--plots", "-q"])
    err = capsys.readouterr().err
    assert rc == EXIT_DEPENDENCY
    assert _errors(err) == ["missing dependency: plots needs matplotlib: pip install 'openfer[plots]'"]


def test_max_pixels_applies_to_arrays_and_is_raised_from_the_cli(analyzer, tmp_path, capsys):
    from openfer.pipeline import Analyzer

    small = Analyzer(max_pixels=200 * 200)
    with pytest.raises(InputError, match=r"image: array is 300x250 = 0\.075 MP, over the 0\.04 MP limit"):
        small.analyze(np.zeros((250, 300, 3), np.uint8))
    assert small.analyze(np.zeros((200, 200, 3), np.uint8)).faces is not None
    with pytest.raises(InputError, match=r"AnalyzerOptions.max_pixels: expected an integer >= 1, got 0"):
        Analyzer(max_pixels=0)
    rc = main(["analyze", str(FACE), "--max-pixels", "10000", "-q"])
    err = capsys.readouterr().err
    assert rc == EXIT_INPUT and "over the 0.01 MP limit (max_pixels=10000)" in err
    assert main(["analyze", str(FACE), "--max-pixels", "200000000", "-q"]) == EXIT_OK
