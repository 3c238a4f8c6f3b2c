"""One run at a time on a lake: `LakeLock`, an exclusive lock for the length of a run.

A run that finds the lake busy raises `LakeBusy` naming the run that holds it.
"""
from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import socket
import time
import typing
from pathlib import Path

from .errors import LakeBusy

log = logging.getLogger(__name__)


LOCK_FILE = Path("_locks") / "run.lock"


class LakeLock:
    """An exclusive lock on a lake for the length of one run.

    `fcntl.flock` on `<lake>/_locks/run.lock`: the kernel drops the lock when its
    process ends, however it ends (SIGKILL included), so a crashed run never blocks
    the next one. The file holds the holder's pid, host, start time and command, to
    name it to a run that finds the lake busy; a run that takes the lock over from a
    holder that ended without releasing it says so. On file systems without
    `flock` (some FUSE and object-store mounts) the run goes ahead unlocked with a
    warning: there the scheduler must keep runs apart (Databricks:
    `max_concurrent_runs: 1`).
    """

    def __init__(self, root: str | Path, command: str = "", progress: typing.Callable[[str], None] = log.info):
        self.root = Path(root).resolve()
        self.path = self.root / LOCK_FILE
        self.command = command
        self.progress = progress
        self._fd: int | None = None
        self.acquired = False  # True also where the file system has no locks to take

    def holder(self) -> dict | None:
        """The recorded holder ({pid, host, started_utc, command}), or None if none is recorded."""
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        try:
            holder = json.loads(text) if text else None
        except ValueError:
            return None
        return holder if isinstance(holder, dict) else None

    def acquire(self, wait_seconds: float = 0.0, poll_seconds: float = 0.5) -> "LakeLock":
        """Take the lock, waiting up to `wait_seconds`; LakeBusy when another run keeps it."""
        import fcntl
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + max(0.0, wait_seconds)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LakeBusy(self._busy_message(wait_seconds)) from None
                    time.sleep(poll_seconds)
                except OSError as exc:
                    if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
                        raise
                    log.warning("lake %s: this file system does not support locks (%s); the run goes "
                                "ahead unlocked", self.root, exc.strerror)
                    os.close(fd)
                    self.acquired = True
                    return self
            stale = self.holder()
            if stale:
                self.progress(f"lake lock: taking over from {_describe_holder(stale)}, which ended "
                              "without releasing it")
            record = {"pid": os.getpid(), "host": socket.gethostname(),
                      "started_utc": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
                      "command": self.command}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.acquired = True
        return self

    def _busy_message(self, waited: float) -> str:
        holder = self.holder()
        who = _describe_holder(holder) if holder else "another run"
        after = f" after waiting {waited:g}s" if waited > 0 else ""
        return (f"lake {self.root} is in use by {who}{after}; wait for it to finish "
                "(or pass --wait-lock SECONDS)")

    def release(self) -> None:
        self.acquired = False
        if self._fd is None:
            return
        import fcntl
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # an empty file: released cleanly
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> "LakeLock":
        return self if self.acquired else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _describe_holder(holder: dict) -> str:
    parts = [f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"]
    if holder.get("started_utc"):
        parts.append(f"since {holder['started_utc']}")
    if holder.get("command"):
        parts.append(f"({holder['command']})")
    return " ".join(parts)
