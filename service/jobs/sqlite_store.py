"""The embedded mode's job store: one SQLite file, WAL journal, one connection behind a lock.

WAL with ``synchronous=NORMAL`` survives a killed process (kill -9) without losing committed
transactions; only a power loss can drop the last ones. Every transition is one UPDATE with the
expected status in its WHERE clause, so it is atomic.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from .owner_lock import OwnerLock
from .records import FINISHED, JobLimitError, JobRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    version TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'da',
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    message TEXT,
    payload BLOB,
    result BLOB
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(owner);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
"""
_COLUMNS = "job_id, owner, status, version, created_at, started_at, finished_at, attempts, message, kind"


def _record(row: tuple) -> JobRecord:
    return JobRecord(*row)


class SqliteJobStore:
    """JobStore on a SQLite file (``":memory:"`` for a throwaway store).

    ``owner=True`` (a server's store) claims the file for this process (``OwnerLock``):
    DatabaseInUseError if another live server holds it.
    """

    def __init__(self, path: str | Path, owner: bool = False) -> None:
        self._owner: OwnerLock | None = None
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            if owner:
                self._owner = OwnerLock(path).acquire()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                     timeout=30.0)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)

    def _one(self, sql: str, args: tuple) -> tuple | None:
        with self._lock:
            return self._conn.execute(sql, args).fetchone()

    def _update(self, sql: str, args: tuple) -> int:
        with self._lock:
            return self._conn.execute(sql, args).rowcount

    def create(self, record: JobRecord, payload: bytes, limit: int | None) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if limit is not None:
                    (held,) = self._conn.execute("SELECT COUNT(*) FROM jobs WHERE owner = ?",
                                                 (record.owner,)).fetchone()
                    if held >= limit:
                        raise JobLimitError(record.owner)
                self._conn.execute(
                    f"INSERT INTO jobs ({_COLUMNS}, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (record.job_id, record.owner, record.status, record.version, record.created_at,
                     record.started_at, record.finished_at, record.attempts, record.message,
                     record.kind, payload))
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:  # SQLite may have rolled back already (disk full)
                    self._conn.execute("ROLLBACK")
                raise

    def get(self, job_id: str) -> JobRecord | None:
        row = self._one(f"SELECT {_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,))
        return None if row is None else _record(row)

    def payload(self, job_id: str) -> bytes | None:
        row = self._one("SELECT payload FROM jobs WHERE job_id = ?", (job_id,))
        return None if row is None else row[0]

    def result(self, job_id: str) -> bytes | None:
        row = self._one("SELECT result FROM jobs WHERE job_id = ?", (job_id,))
        return None if row is None else row[0]

    def list_owned(self, owner: str) -> list[JobRecord]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE owner = ? ORDER BY created_at",
                                      (owner,)).fetchall()
        return [_record(r) for r in rows]

    def claim(self, job_id: str, max_attempts: int) -> JobRecord | None:
        n = self._update("UPDATE jobs SET status = 'Running', started_at = ?, attempts = attempts + 1 "
                         "WHERE job_id = ? AND status = 'Waiting'", (time.time(), job_id))
        return self.get(job_id) if n else None

    def finish(self, job_id: str, status: str, result: bytes | None, message: str | None) -> bool:
        return bool(self._update(
            "UPDATE jobs SET status = ?, result = ?, message = ?, finished_at = ?, payload = NULL "
            "WHERE job_id = ? AND status = 'Running'", (status, result, message, time.time(), job_id)))

    def fail_unfinished(self, job_id: str, message: str) -> bool:
        """Waiting/Running -> Error (gave up on it)."""
        return bool(self._update(
            "UPDATE jobs SET status = 'Error', message = ?, finished_at = ?, payload = NULL "
            "WHERE job_id = ? AND status IN ('Waiting', 'Running')", (message, time.time(), job_id)))

    def cancel(self, job_id: str) -> str | None:
        self._update("UPDATE jobs SET status = 'Canceled', finished_at = ?, payload = NULL "
                     "WHERE job_id = ? AND status = 'Waiting'", (time.time(), job_id))
        row = self._one("SELECT status FROM jobs WHERE job_id = ?", (job_id,))
        return None if row is None else row[0]

    def requeue(self, job_id: str) -> bool:
        return bool(self._update("UPDATE jobs SET status = 'Waiting' WHERE job_id = ? AND status = 'Running'",
                                 (job_id,)))

    def delete(self, job_id: str) -> bool:
        marks = ",".join("?" * len(FINISHED))
        return bool(self._update(f"DELETE FROM jobs WHERE job_id = ? AND status IN ({marks})",
                                 (job_id, *FINISHED)))

    def unfinished(self) -> list[JobRecord]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE status IN ('Waiting', 'Running') "
                                      "ORDER BY created_at").fetchall()
        return [_record(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {status: int(n) for status, n in rows}

    def expire(self, older_than: float) -> int:
        marks = ",".join("?" * len(FINISHED))
        return self._update(f"DELETE FROM jobs WHERE finished_at < ? AND status IN ({marks})",
                            (older_than, *FINISHED))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        if self._owner is not None:
            self._owner.release()
