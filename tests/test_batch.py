"""The batch layer behind ``openfer analyze``: every input accounted for, refused outputs, resume
after a real kill with identical outputs (issue 14)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PHOTOS

from openfer.batch import BatchOutputs, plan_batch, run_batch
from openfer.cli import EXIT_INPUT, EXIT_OK, main
from openfer.errors import InputError

FACE = PHOTOS / "single_face.jpg"


def _folder(tmp_path: Path, n: int = 12) -> Path:
    """``n`` real photos (the labelled fixtures, then copies) in one folder."""
    src = sorted((PHOTOS / "labeled").glob("*.jpg")) + [FACE, PHOTOS / "multi_face.jpg"]
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(n):
        shutil.copy(src[i % len(src)], folder / f"img{i:03d}.jpg")
    return folder


def _rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_input_gets_a_row_joinable_to_the_input_list(analyzer, tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    inputs = [str(FACE), str(tmp_path / "missing.jpg"), str(PHOTOS / "no_face_landscape.jpg"),
              str(tmp_path / "bad.jpg"), str(tmp_path / "*.png"), str(PHOTOS / "multi_face.jpg")]
    errors: list[str] = []
    out = BatchOutputs(json=str(tmp_path / "r.json"), csv=str(tmp_path / "r.csv"))
    s = run_batch(analyzer, inputs, out, on_error=errors.append)
    assert (s.images, s.failed, s.no_face) == (6, 3, 1)
    assert len(errors) == 3 and all(len(e.splitlines()) == 1 for e in errors)
    doc = json.loads((tmp_path / "r.json").read_text())
    statuses = [i["status"] for i in doc["images"]]
    assert statuses[0] == "ok" and statuses[2] == "no_face" and statuses[5] == "ok"
    assert statuses[1] == f"error: {tmp_path / 'missing.jpg'}: not found"
    assert statuses[3].startswith(f"error: {tmp_path / 'bad.jpg'}: ")
    assert statuses[4] == f"error: {tmp_path / '*.png'}: pattern matched no images ({', '.join(('jpg', 'jpeg', 'png', 'bmp', 'webp', 'tif', 'tiff', 'gif'))})"
    rows = _rows(tmp_path / "r.csv")
    assert [i["source"] for i in doc["images"]] == list(dict.fromkeys(r["source"] for r in rows)) == inputs
    n_multi = len(doc["images"][5]["faces"])
    assert n_multi > 1 and len(rows) == 1 + 1 + 1 + 1 + 1 + n_multi
    assert [r["status"] for r in rows if r["source"] == inputs[1]] == [statuses[1]]


def test_outputs_are_refused_before_any_work(tmp_path):
    photo = tmp_path / "in.jpg"
    shutil.copy(FACE, photo)
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    cases = [
        (BatchOutputs(json=str(photo)), "the json output is also an input; refusing to overwrite it"),
        (BatchOutputs(json=str(tmp_path / "r"), csv=str(tmp_path / "r")), "given as both the json and the csv output"),
        (BatchOutputs(csv=str(fifo)), "the csv output exists and is not a regular file (a device or FIFO)"),
        (BatchOutputs(json=str(tmp_path)), "the json output exists and is a folder"),
        (BatchOutputs(parquet="-"), "--parquet cannot go to standard output"),
        (BatchOutputs(json="-", csv="-"), "only one of --json and --csv"),
    ]
    for outputs, message in cases:
        with pytest.raises(InputError, match=re.escape(message)):
            plan_batch([str(photo)], outputs)
    # an annotated image that would replace a not-yet-read input
    (tmp_path / "a.jpg").write_bytes(FACE.read_bytes())
    shutil.copy(FACE, tmp_path / "a_annotated.jpg")
    with pytest.raises(InputError, match="an annotated image would replace this input"):
        plan_batch([str(tmp_path)], BatchOutputs(annotate=str(tmp_path)))
    assert main(["analyze", str(photo), "--json", str(photo)]) == EXIT_INPUT
    assert photo.read_bytes() == FACE.read_bytes()  # never touched


def test_json_to_standard_output(tmp_path, capsys):
    assert main(["analyze", str(FACE), "--json", "-"]) == EXIT_OK
    cap = capsys.readouterr()
    doc = json.loads(cap.out)  # nothing but the document on stdout (no table)
    assert doc["images"][0]["status"] == "ok" and len(doc["images"][0]["faces"]) == 1
    assert "1 image(s), 1 face(s)" in cap.err


def test_folder_with_subfolders_says_how_many_images_were_skipped(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    shutil.copy(FACE, tmp_path / "top.jpg")
    shutil.copy(FACE, tmp_path / "sub" / "deep1.jpg")
    shutil.copy(FACE, tmp_path / "sub" / "deep2.jpg")
    assert main(["analyze", str(tmp_path), "-q"]) == EXIT_OK
    assert "note: 2 image(s) in subfolders were skipped: add -r to include them" in capsys.readouterr().err


def test_unfinished_batch_asks_for_resume_or_overwrite(analyzer, tmp_path):
    folder = _folder(tmp_path, 3)
    out = BatchOutputs(csv=str(tmp_path / "r.csv"))
    work = tmp_path / "r.csv.openfer-work"
    work.mkdir()
    (work / "batch.json").write_text("{ not json")
    with pytest.raises(InputError, match=r"an unfinished batch \(0 input\(s\) done\) is in the way; continue it with --resume"):
        run_batch(analyzer, [str(folder)], out)
    with pytest.raises(InputError, match="batch.json: unreadable batch state .*--overwrite"):
        run_batch(analyzer, [str(folder)], out, resume=True)
    s = run_batch(analyzer, [str(folder)], out, overwrite=True)
    assert s.images == 3 and not work.exists() and len(_rows(tmp_path / "r.csv")) >= 3


def _interrupted_batch(analyzer, tmp_path):
    """A 2-image JSON batch killed after its first image: (folder, outputs, work folder)."""
    folder = _folder(tmp_path, 2)
    out = BatchOutputs(json=str(tmp_path / "r.json"))
    with pytest.raises(KeyboardInterrupt):
        run_batch(analyzer, [str(folder)], out, progress=_interrupt_after(1))
    return folder, out, tmp_path / "r.json.openfer-work"


def test_resume_with_other_options_is_refused(analyzer, tmp_path):
    from openfer.pipeline import Analyzer

    folder, out, work = _interrupted_batch(analyzer, tmp_path)
    assert len((work / "rows.jsonl").read_text().splitlines()) == 1
    other = Analyzer(analyzer.options, unknown_threshold=None)
    with pytest.raises(InputError, match="the unfinished batch ran with other options"):
        run_batch(other, [str(folder)], out, resume=True)
    s = run_batch(analyzer, [str(folder)], out, resume=True)
    assert (s.images, s.resumed) == (2, 1) and not work.exists()


def _interrupt_after(n: int):
    def progress(done: int, total: int) -> None:
        if done >= n:
            raise KeyboardInterrupt

    return progress


def test_torn_last_line_is_analysed_again(analyzer, tmp_path):
    folder = _folder(tmp_path, 3)
    out = BatchOutputs(csv=str(tmp_path / "r.csv"))
    with pytest.raises(KeyboardInterrupt):
        run_batch(analyzer, [str(folder)], out, progress=_interrupt_after(2))
    rows = tmp_path / "r.csv.openfer-work" / "rows.jsonl"
    data = rows.read_bytes()
    rows.write_bytes(data[: len(data) - 40])  # the second line cut short, as by a kill mid-write
    s = run_batch(analyzer, [str(folder)], out, resume=True)
    assert (s.images, s.resumed) == (3, 1)


def _run(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "openfer.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, **kw)


def test_killed_batch_resumes_to_identical_outputs(tmp_path):
    pytest.importorskip("pyarrow")
    folder = _folder(tmp_path, 14)
    ref = tmp_path / "ref"
    args = [str(folder), "--csv", "r.csv", "--json", "r.json", "--parquet", "r.parquet", "--threads", "1"]
    p = _run(["analyze", *args], cwd=_mk(ref))
    assert p.wait(timeout=300) == 0, p.stderr.read().decode()
    killed = _mk(tmp_path / "killed")
    p = _run(["analyze", *args], cwd=killed)
    rows = killed / "r.json.openfer-work" / "rows.jsonl"  # the work folder goes beside the first output
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and p.poll() is None and (not rows.exists() or rows.read_bytes().count(b"\n") < 4):
        time.sleep(0.05)
    assert p.poll() is None, p.stderr.read().decode()
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    done = rows.read_bytes().count(b"\n")  # complete lines: a torn last one is analysed again
    assert 4 <= done < 14, "the kill should land mid-batch"
    assert not (killed / "r.csv").exists()
    p = _run(["analyze", *args, "--resume"], cwd=killed)
    assert p.wait(timeout=300) == 0
    err = p.stderr.read().decode()
    assert f"14 image(s) ({done} from the unfinished run)" in err
    for name in ("r.csv", "r.json", "r.parquet"):
        assert (killed / name).read_bytes() == (ref / name).read_bytes(), name
    assert not (killed / "r.json.openfer-work").exists()


def _mk(p: Path) -> Path:
    p.mkdir()
    return p


def test_a_second_batch_into_the_same_outputs_is_refused_while_one_runs(analyzer, tmp_path):
    from openfer.io.lock import FolderLock

    out = BatchOutputs(csv=str(tmp_path / "r.csv"))
    with FolderLock(tmp_path / "r.csv.openfer-work"):  # as a running batch holds it
        with pytest.raises(InputError, match=r"r\.csv\.openfer-work: in use by openfer pid \d+ on .* since "):
            run_batch(analyzer, [str(FACE)], out)
    assert run_batch(analyzer, [str(FACE)], out).finished
    assert not (tmp_path / "r.csv.openfer-work").exists()


def test_two_workers_write_the_same_outputs_as_one_process(tmp_path):
    from openfer.pipeline import Analyzer

    folder = _folder(tmp_path, 6)
    (folder / "broken.jpg").write_bytes(b"GIF89a")
    one = Analyzer(threads=1)
    a = BatchOutputs(csv=str(tmp_path / "a.csv"), json=str(tmp_path / "a.json"))
    b = BatchOutputs(csv=str(tmp_path / "b.csv"), json=str(tmp_path / "b.json"))
    sa = run_batch(one, [str(folder)], a)
    sb = run_batch(one, [str(folder)], b, workers=2)
    assert (sa.images, sa.failed) == (sb.images, sb.failed) == (7, 1)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    with pytest.raises(InputError, match="workers must be an integer >= 1"):
        run_batch(one, [str(folder)], BatchOutputs(), workers=0)


def test_a_decoder_warning_is_kept_in_the_row(analyzer, tmp_path):
    bad = Path(__file__).parent / "assets" / "bad" / "corrupt_mid.jpg"  # libjpeg recovers, with errors
    out = BatchOutputs(csv=str(tmp_path / "r.csv"), json=str(tmp_path / "r.json"))
    s = run_batch(analyzer, [str(bad), str(FACE)], out)
    assert s.failed == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    (warning,) = doc["images"][0]["warnings"]
    assert str(bad) in warning and "corrupt JPEG data" in warning
    assert doc["images"][1]["warnings"] == []
    rows = _rows(tmp_path / "r.csv")
    assert "corrupt JPEG data" in rows[0]["warnings"] and rows[-1]["warnings"] == ""


class _PartitionEngine:
    """What the Ray engine's actors do, here in this process: each group of ``per`` rows written as
    one Parquet partition of the work folder, a reference per input yielded to the driver."""

    def __init__(self, per: int = 3) -> None:
        self.per = per

    def __call__(self, analyzer, items, outputs, work):
        from openfer.batch import RowRef, analyze_item, write_partition

        assert work is not None
        for i in range(0, len(items), self.per):
            done = [analyze_item(analyzer, it, outputs) for it in items[i:i + self.per]]
            name = write_partition(work, [row for row, _ in done])
            for row, unwritten in done:
                yield RowRef(row.index, row.source, row.status, name, len(row.records), row.error), unwritten


def test_rows_in_worker_partitions_give_the_outputs_of_rows_in_the_manifest(analyzer, tmp_path):
    pytest.importorskip("pyarrow")
    folder = _folder(tmp_path, 7)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    inputs = [str(folder), str(tmp_path / "missing.jpg")]

    def outputs(name: str) -> BatchOutputs:
        return BatchOutputs(json=str(tmp_path / f"{name}.json"), csv=str(tmp_path / f"{name}.csv"),
                            parquet=str(tmp_path / f"{name}.parquet"))

    local = run_batch(analyzer, inputs, outputs("local"))
    work = tmp_path / "parts.json.openfer-work"
    with pytest.raises(KeyboardInterrupt):  # stopped half way: the manifest holds references only
        run_batch(analyzer, inputs, outputs("parts"), engine=_PartitionEngine(), progress=_interrupt_after(4))
    lines = [json.loads(line) for line in (work / "rows.jsonl").read_text().splitlines()]
    assert len(lines) >= 4 and all(set(d) == {"index", "source", "status", "part", "faces", "error"} for d in lines)
    assert {d["part"] for d in lines} <= {p.name for p in (work / "parts").glob("part-*.parquet")}
    parts = run_batch(analyzer, inputs, outputs("parts"), engine=_PartitionEngine(), resume=True)
    assert parts.finished and parts.resumed == len(lines) and not work.exists()
    assert (parts.images, parts.faces, parts.failed, parts.no_face) == (local.images, local.faces, local.failed, local.no_face)
    for ext in ("json", "csv", "parquet"):
        assert (tmp_path / f"parts.{ext}").read_bytes() == (tmp_path / f"local.{ext}").read_bytes(), ext


def test_a_lost_partition_stops_the_resume_with_one_line(analyzer, tmp_path):
    pytest.importorskip("pyarrow")
    folder = _folder(tmp_path, 4)
    out = BatchOutputs(csv=str(tmp_path / "r.csv"))
    with pytest.raises(KeyboardInterrupt):
        run_batch(analyzer, [str(folder)], out, engine=_PartitionEngine(2), progress=_interrupt_after(2))
    lost = next((tmp_path / "r.csv.openfer-work" / "parts").glob("part-*.parquet"))
    lost.unlink()
    def no_work(*args):
        raise AssertionError("analysed before the lost partition was reported")

    with pytest.raises(InputError, match=re.escape(lost.name)) as e:
        run_batch(analyzer, [str(folder)], out, engine=no_work, resume=True)
    assert len(str(e.value).splitlines()) == 1 and "--overwrite" in str(e.value)
    assert run_batch(analyzer, [str(folder)], out, engine=_PartitionEngine(2), overwrite=True).finished


def test_resume_of_a_batch_begun_before_an_option_existed(analyzer, tmp_path):
    # a batch begun by an earlier openfer, whose options had no `search_detector` yet: resumed with the
    # option at its default (the earlier behaviour) it goes on; with the option set it is refused
    import dataclasses
    import json

    from openfer.pipeline import Analyzer

    folder, out, work = _interrupted_batch(analyzer, tmp_path)
    head = json.loads((work / "batch.json").read_text())
    assert head["options"]["search_detector"] is None
    del head["options"]["search_detector"]
    (work / "batch.json").write_text(json.dumps(head))
    other = Analyzer(dataclasses.replace(analyzer.options, search_detector="blazeface_short"))
    with pytest.raises(InputError, match="the unfinished batch ran with other options"):
        run_batch(other, [str(folder)], out, resume=True)
    s = run_batch(analyzer, [str(folder)], out, resume=True)
    assert (s.images, s.resumed) == (2, 1) and not work.exists()
