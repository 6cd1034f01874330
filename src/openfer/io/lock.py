"""An output folder's lock, so that two long jobs never write into the same folder at once.

:class:`FolderLock` holds ``DIR/.openfer.lock`` for as long as a job runs in ``DIR``: a small JSON
file naming the holder (pid, host, start time, command), created with ``O_CREAT | O_EXCL`` and held
with an OS advisory lock (``fcntl.flock``) on it for the job's lifetime. A second job gets a
one-line :class:`FolderInUseError` naming the holder; the lock is released (the file removed) when
the ``with`` block ends, by an exception or ``KeyboardInterrupt`` too.

A run killed without cleanup (SIGKILL, power loss) leaves the file behind, but the OS drops its
flock; the next job finds the flock free, takes the lock over and logs a one-line warning naming
the old holder. The flock decides, whatever the file says: a lock whose flock is free is stale,
also one written on another host; one whose flock is held is in use. Without flock (not POSIX, or a
file system that refuses it) only a lock of a pid that is not running on this host is stale, any
other (another host's included, as it cannot be checked) counts as held; two jobs taking over the
same stale lock at the same instant are then not excluded. On NFS, Linux maps flock to NFS locks,
so it holds across hosts; a mount without locking (``nolock``) makes another host's lock look free.
An empty or garbled lock file (its job may be writing it) is looked at again for about 0.1 s: then
it is stale if its flock is free, in use (holder unknown) if not. A SIGTERM, like SIGKILL, leaves a
stale lock: the library installs no signal handlers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

from ..errors import InputError, OpenFerError, OutputError
from .text import printable

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("openfer")

LOCK_FILE = ".openfer.lock"
_FORMAT = 1
_ATTEMPTS = 50  # races with another job's create or release, then retried
_WAIT = 0.01  # s between attempts while a job may still be writing its lock file
_UNREADABLE = 10  # attempts that find the same lock file empty or garbled before it counts as stale


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) a folder's lock: ``started`` is timezone-aware local time."""

    pid: int
    host: str
    started: datetime
    command: str = ""

    def describe(self) -> str:
        """``openfer pid 1234 on host since 2026-12-02 00:31:05`` (one line)."""
        since = self.started.astimezone()  # in this machine's time zone
        return f"openfer pid {self.pid} on {printable(self.host)} since {since:%Y-%m-%d %H:%M:%S}"

    def to_json(self) -> dict:
        return {
            "format": _FORMAT,
            "pid": self.pid,
            "host": self.host,
            "started": self.started.isoformat(timespec="seconds"),
            "command": self.command,
        }

    @classmethod
    def from_json(cls, d: object) -> LockHolder | None:
        """The holder a lock file names, ``None`` if it names none (empty, garbage, other format)."""
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            return None
        pid, host, started, command = d.get("pid"), d.get("host"), d.get("started"), d.get("command", "")
        if not (isinstance(pid, int) and isinstance(host, str) and isinstance(started, str)):
            return None
        try:
            when = datetime.fromisoformat(started)
        except ValueError:
            return None
        return cls(pid, host, when, command if isinstance(command, str) else "")

    @classmethod
    def current(cls, command: str | None = None) -> LockHolder:
        """This process, now; ``command`` defaults to the process's command line."""
        if command is None:
            command = shlex.join(sys.argv)
        now = datetime.now().astimezone().replace(microsecond=0)
        return cls(os.getpid(), socket.gethostname(), now, command)


class FolderInUseError(InputError):
    """A folder's lock is held by another job: ``holder`` (``None`` when its lock file is unreadable)."""

    def __init__(self, folder: Path, path: Path, holder: LockHolder | None) -> None:
        who = holder.describe() if holder is not None else "another process (its lock file is unreadable)"
        super().__init__(f"{folder}: in use by {who} (lock {path})")
        self.folder, self.path, self.holder = folder, path, holder


class FolderLock:
    """Exclusive use of ``folder`` (created if missing) while the ``with`` block runs (module doc).

    ``command``: what the lock file says this job is (default: the process's command line).
    ``name``: the lock file's name in the folder. After :meth:`acquire`, ``holder`` is this job and
    ``took_over`` the stale holder it replaced (``None`` if none; a stale lock with an unreadable
    file counts as none). Raises :class:`FolderInUseError` if another live job holds the folder.
    """

    def __init__(
        self, folder: str | os.PathLike[str], *, command: str | None = None, name: str = LOCK_FILE
    ) -> None:
        self.folder = Path(folder)
        self.path = self.folder / name
        self.command = command
        self.holder: LockHolder | None = None
        self.took_over: LockHolder | None = None
        self._fd: int | None = None
        self._pid = 0
        self._last: LockHolder | None = None
        self._unreadable: tuple[tuple[int, int] | None, int] = (None, 0)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> FolderLock:
        """Take the lock (a stale one is taken over with a warning); returns ``self``."""
        if self._fd is not None:
            raise OpenFerError(f"{self.path}: already held by this FolderLock")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(self.folder, f"cannot create the folder ({e.strerror})") from None
        me = LockHolder.current(self.command)
        self._last, self._unreadable = None, (None, 0)
        for _ in range(_ATTEMPTS):
            fd, created = self._open()
            if fd is None:
                continue
            try:
                outcome = self._claim(fd, created, me)
            except BaseException:
                os.close(fd)
                raise
            if outcome == "claimed":
                return self
            os.close(fd)  # before waiting, so that its job can flock it meanwhile
            if outcome == "wait":
                time.sleep(_WAIT)
        raise FolderInUseError(self.folder, self.path, self._last)

    def _open(self) -> tuple[int | None, bool]:
        """The lock file's descriptor (``None``: it vanished, try again) and whether it was created."""
        flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            pass
        except OSError as e:
            raise OutputError(self.path, e.strerror or str(e)) from None
        try:
            return os.open(self.path, flags), False
        except FileNotFoundError:  # released meanwhile
            return None, False
        except OSError as e:
            raise OutputError(self.path, e.strerror or str(e)) from None

    def _claim(self, fd: int, created: bool, me: LockHolder) -> str:
        """Make ``fd`` this job's lock: ``"claimed"``, else ``"retry"`` (a race was lost) or
        ``"wait"`` (its job may still be writing it); raises if held."""
        free = _try_flock(fd)
        for _ in range(_UNREADABLE if created else 0):  # a job looking at the new file flocks it briefly
            if free is not False:
                break
            time.sleep(_WAIT)
            free = _try_flock(fd)
        old = None if created else _read_holder(fd)
        self._last = old
        if not created and old is None:  # its job may have created it and not yet flocked and written it
            st = os.fstat(fd)
            seen, times = self._unreadable
            times = times + 1 if seen == (st.st_dev, st.st_ino) else 1
            self._unreadable = (st.st_dev, st.st_ino), times
            if times < _UNREADABLE:
                return "wait"
        if not created and not _stale(free, old):
            raise FolderInUseError(self.folder, self.path, old)
        if free is False or not _at_path(fd, self.path):  # another job flocked it first, or released it
            return "retry"
        try:
            _write_holder(fd, me)
        except OSError as e:
            raise OutputError(self.path, e.strerror or str(e)) from None
        self._fd, self._pid, self.holder = fd, os.getpid(), me
        if not created:
            self.took_over = old
            if old is not None:
                log.warning("%s: taking over the stale lock of %s (no longer running; lock %s)", self.folder,
                            old.describe(), self.path)
            else:
                log.warning("%s: taking over a stale, unreadable lock (%s)", self.folder, self.path)
        return "claimed"

    def release(self) -> None:
        """Remove the lock file and drop the flock (a no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._pid == os.getpid() and _at_path(fd, self.path):  # not in a forked child
                with contextlib.suppress(OSError):
                    self.path.unlink()
        finally:
            os.close(fd)

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _try_flock(fd: int) -> bool | None:
    """Exclusive non-blocking flock: ``True`` taken, ``False`` held by another, ``None`` unsupported."""
    if fcntl is None:  # pragma: no cover - not POSIX
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP, EINVAL: a file system without flock
        return None
    return True


def _stale(free: bool | None, old: LockHolder | None) -> bool:
    """Whether an existing lock may be taken over: its flock is free or, without flock, its pid is
    gone from this host."""
    if free is not None:
        return free
    return old is not None and old.host == socket.gethostname() and not _pid_alive(old.pid)


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":  # pragma: no cover - cannot check: assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's process
        return True
    return True


def _at_path(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file at ``path`` (not released and replaced meanwhile)."""
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_holder(fd: int) -> LockHolder | None:
    try:
        data = os.pread(fd, 1 << 16, 0)
        return LockHolder.from_json(json.loads(data))
    except (OSError, ValueError):
        return None


def _write_holder(fd: int, holder: LockHolder) -> None:
    data = (json.dumps(holder.to_json()) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


__all__ = ["LOCK_FILE", "FolderInUseError", "FolderLock", "LockHolder"]
