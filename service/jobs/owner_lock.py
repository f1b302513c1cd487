"""One embedded server per job database.

Two servers on one SQLite file each treat the other's running jobs as interrupted by a crash:
the second re-runs them, and when it stops they are left Waiting with nobody to run them. So a
server owns its database through an exclusive ``flock`` on ``<database>.owner`` for as long as
it runs; the kernel drops the lock when the process dies (kill -9 included), so a crash never
leaves a stale owner. The file names the holder for the refusal message. Servers that share
jobs use Redis (``--redis``), whose workers hold leases instead.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import IO

__all__ = ["DatabaseInUseError", "OwnerLock"]


class DatabaseInUseError(RuntimeError):
    """Another live server owns the job database."""


class OwnerLock:
    """The exclusive claim of one process on a job database (``acquire`` / ``release``)."""

    def __init__(self, database: str | Path) -> None:
        self.database = str(database)
        self.path = Path(f"{database}.owner")
        self._file: IO[str] | None = None

    def acquire(self) -> OwnerLock:
        """Take the lock or raise DatabaseInUseError naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _describe(handle.read())
            handle.close()
            raise DatabaseInUseError(
                f"the job database {self.database} is in use by another SpinOut server "
                f"({holder}); give this server a --database of its own, or share jobs between "
                "servers with --redis") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def check_free(self) -> None:
        """Raise DatabaseInUseError if another process holds the lock (takes nothing)."""
        self.acquire().release()


def _describe(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on {info['host']}, since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
