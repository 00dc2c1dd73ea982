"""Exclusive locks on what a process writes: a run directory, a dataset file being made.

A lock is ``flock(LOCK_EX)`` on a lock file. The kernel drops it when the last descriptor of
the file closes, so a holder that dies (SIGKILL included) never leaves a stale lock. The
holder writes who it is into the file (pid, host, command, start time) so that the process
it refuses can name it in one line.

Within one process a lock may be taken again while held (nested: the suite holds a cell's
run lock around stage sharing and training, and training takes it again); the descriptor is
closed when the outermost holder releases it. flock locks belong to the open file, so without
this a process would refuse itself.

On release the lock file is unlinked (while still locked). A process that opened the old file
just before may then win the lock on an unlinked inode, so after winning, the path is
checked to still name the locked inode, else it retries: two holders are never possible.
A killed holder leaves the file with its stale description; the next holder overwrites it.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import logging
import os
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LockError", "ExclusiveLock", "lock_file_for", "output_lock"]

log = logging.getLogger(__name__)


class LockError(RuntimeError):
    """Another process holds the lock (a RuntimeError: the CLI prints it as one line)."""


@dataclass
class _Held:
    fd: int
    count: int


_HELD: dict[str, _Held] = {}   # realpath of the lock file -> its descriptor in this process
_GUARD = threading.Lock()


def lock_file_for(output: str | os.PathLike) -> Path:
    """The sidecar lock file of an output file: ``d.h5`` -> ``d.h5.lock``."""
    output = Path(output)
    return output.with_name(output.name + ".lock")


def _holder_text() -> str:
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "python"
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "command": command.replace("\n", " "), "started": started}) + "\n"


def describe_holder(fd: int) -> str:
    """The holder recorded in an open lock file, as words ("pid 12 on host, since ...: cmd")."""
    try:
        raw = os.pread(fd, 4096, 0).decode("utf-8", errors="replace")
        info = json.loads(raw)
        return (f"pid {info['pid']} on {info['host']}, since {info['started']}: "
                f"{info['command']}")
    except (OSError, ValueError, KeyError, TypeError):
        # the holder is between taking the lock and writing its description
        return "a process that has not described itself yet"


class ExclusiveLock:
    """Take the lock at ``path`` (created if missing) or raise LockError naming its holder.

    what: what the lock protects, as the error's subject ("run directory runs/a");
    hint: the end of the error (what to do instead); wait: block until it is free instead.
    Release with :meth:`release` (or use as a context manager); a lock never released is
    held until the process exits.
    """

    def __init__(self, path: str | os.PathLike, what: str, *, hint: str = "",
                 wait: bool = False) -> None:
        self.path = Path(path)
        self.key = os.path.realpath(self.path)
        self._released = False
        with _GUARD:
            held = _HELD.get(self.key)
            if held is not None:
                held.count += 1
                return
            _HELD[self.key] = _Held(self._acquire(what, hint, wait), 1)

    def _acquire(self, what: str, hint: str, wait: bool) -> int:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = describe_holder(fd)
                    if not wait:
                        raise LockError(f"{what} is in use by {holder}"
                                        + (f"; {hint}" if hint else "")) from None
                    log.info("%s is in use by %s; waiting", what, holder)
                    fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if not same:          # won an inode its last holder had unlinked: retry
                    os.close(fd)
                    continue
                os.ftruncate(fd, 0)
                os.pwrite(fd, _holder_text().encode("utf-8"), 0)
                return fd
            except BaseException:
                os.close(fd)
                raise

    def release(self) -> None:
        """Let go (once; later calls do nothing). The outermost release unlocks the file."""
        if self._released:
            return
        self._released = True
        with _GUARD:
            held = _HELD.get(self.key)
            if held is None:
                return
            held.count -= 1
            if held.count > 0:
                return
            del _HELD[self.key]
            try:
                self.path.unlink(missing_ok=True)   # still locked: nobody else holds this inode
            finally:
                os.close(held.fd)

    def __enter__(self) -> ExclusiveLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def output_lock(output: str | os.PathLike, *, wait: bool = False) -> ExclusiveLock:
    """The lock of a file being made (a dataset and its card): its sidecar ``OUTPUT.lock``.
    wait: block until another maker is done instead of raising LockError."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    return ExclusiveLock(lock_file_for(output), f"output {output}", wait=wait,
                         hint="wait for it to finish or choose another output file")
