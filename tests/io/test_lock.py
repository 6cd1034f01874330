"""openfer.io.lock: one job per output folder, across processes; stale locks taken over; released on
any exit from the ``with`` block."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import subprocess
import sys
from datetime import datetime

import pytest
from conftest import held_elsewhere

from openfer.errors import InputError, OutputError
from openfer.io import lock as lock_module
from openfer.io.lock import LOCK_FILE, FolderInUseError, FolderLock, LockHolder


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    return int(proc.stdout)


def write_lock(folder, pid, host=None):
    holder = LockHolder(pid, host or socket.gethostname(), datetime(2026, 12, 2, 0, 31, 5).astimezone())
    (folder / LOCK_FILE).write_text(json.dumps(holder.to_json()))
    return holder


def test_a_second_process_gets_one_line_naming_the_holder_until_it_releases(tmp_path):
    out = tmp_path / "out"
    with held_elsewhere(out) as pid:
        with pytest.raises(FolderInUseError) as err:
            FolderLock(out).acquire()
        msg = str(err.value)
        assert msg.startswith(f"{out}: in use by openfer pid {pid} on {socket.gethostname()} since ")
        assert msg.endswith(f" (lock {out / LOCK_FILE})") and "\n" not in msg
        assert isinstance(err.value, InputError) and err.value.holder.pid == pid
        assert err.value.holder.command == "holder test"
        assert json.loads((out / LOCK_FILE).read_text())["pid"] == pid  # the holder's file untouched
    assert not (out / LOCK_FILE).exists()  # released with its with block
    with FolderLock(out) as lk:
        assert lk.held and lk.took_over is None and lk.holder.pid == os.getpid()
    assert not lk.held and os.listdir(out) == []


def test_a_second_lock_in_the_same_process_is_refused(tmp_path):
    with FolderLock(tmp_path):
        with pytest.raises(FolderInUseError, match=f"openfer pid {os.getpid()} "):
            FolderLock(tmp_path).acquire()


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_warning(tmp_path, caplog):
    code = "import os, sys\nfrom openfer.io.lock import FolderLock\nFolderLock(sys.argv[1]).acquire()\nos._exit(0)"
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    assert proc.returncode == 0 and (tmp_path / LOCK_FILE).exists()
    old = LockHolder.from_json(json.loads((tmp_path / LOCK_FILE).read_text()))
    with caplog.at_level(logging.WARNING, logger="openfer"), FolderLock(tmp_path) as lk:
        assert lk.took_over == old and lk.holder.pid == os.getpid()
    (record,) = caplog.records
    assert record.getMessage() == (
        f"{tmp_path}: taking over the stale lock of {old.describe()} (no longer running; lock {tmp_path / LOCK_FILE})"
    )
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_stale_lock_of_a_dead_pid_and_an_unreadable_one_are_taken_over(tmp_path, caplog):
    old = write_lock(tmp_path, dead_pid(), host="other\nhost")  # the flock is free: stale, any host
    with caplog.at_level(logging.WARNING, logger="openfer"), FolderLock(tmp_path) as lk:
        assert lk.took_over == old
    assert "since 2026-12-02 00:31:05" in caplog.records[0].getMessage()
    assert "other\\nhost" in caplog.records[0].getMessage()  # still one line
    (tmp_path / LOCK_FILE).write_bytes(b"\x00garbage")
    with FolderLock(tmp_path) as lk:
        assert lk.took_over is None
    assert "a stale, unreadable lock" in caplog.records[1].getMessage()


def test_without_flock_only_a_dead_pid_on_this_host_is_stale(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "_try_flock", lambda fd: None)  # a file system without flock
    gone = write_lock(tmp_path, dead_pid())
    with FolderLock(tmp_path) as lk:
        assert lk.took_over == gone
    alive = write_lock(tmp_path, os.getppid())
    with pytest.raises(FolderInUseError) as err:
        FolderLock(tmp_path).acquire()
    assert err.value.holder == alive
    remote = write_lock(tmp_path, dead_pid(), host="elsewhere")  # cannot be checked: held
    with pytest.raises(FolderInUseError, match=" on elsewhere since "):
        FolderLock(tmp_path).acquire()
    assert LockHolder.from_json(json.loads((tmp_path / LOCK_FILE).read_text())) == remote


def test_an_unreadable_lock_whose_flock_is_held_counts_as_held(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "_WAIT", 0.001)
    code = (
        "import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\nos.write(fd, b'{')\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\nsys.stdin.readline()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / LOCK_FILE)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "held\n"
        with pytest.raises(FolderInUseError, match=r"in use by another process \(its lock file is unreadable\)"):
            FolderLock(tmp_path).acquire()
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_the_lock_is_released_when_the_block_raises(tmp_path, exc):
    with pytest.raises(exc), FolderLock(tmp_path):
        assert (tmp_path / LOCK_FILE).exists()
        raise exc
    assert not (tmp_path / LOCK_FILE).exists()
    with held_elsewhere(tmp_path):  # and another process can take it at once
        pass


def _contend(folder, barrier, results):
    barrier.wait()
    try:
        with FolderLock(folder):
            results.put("held")
            barrier.wait()  # keep it until every contender has tried
    except FolderInUseError:
        results.put("refused")
        barrier.wait()


def test_of_contenders_starting_together_exactly_one_holds_the_folder(tmp_path):
    n = 4
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(tmp_path, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    got = sorted(results.get(timeout=60) for _ in range(n))
    for p in procs:
        p.join(timeout=60)
    assert got == ["held"] + ["refused"] * (n - 1)
    assert not (tmp_path / LOCK_FILE).exists()


def test_misuse(tmp_path):
    lk = FolderLock(tmp_path / "new" / "folder").acquire()  # the folder is created
    with pytest.raises(Exception, match="already held by this FolderLock"):
        lk.acquire()
    lk.release()
    lk.release()  # a no-op once released
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match=f"cannot write {tmp_path / 'file'}: cannot create the folder"):
        FolderLock(tmp_path / "file").acquire()
