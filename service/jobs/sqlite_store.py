"""The embedded mode's job store: one SQLite file, WAL journal, one connection behind a lock.

WAL with ``synchronous=NORMAL`` survives a killed process (kill -9) without losing committed
transactions; only a power loss can drop the last ones. Every transition is one UPDATE with the
expected status in its WHERE clause, so it is atomic. Statuses are bound parameters (the
enum's values), never spelled in the SQL.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from client.wire.da import FINISHED_STATUSES, PENDING_STATUSES, JobStatus

from .owner_lock import OwnerLock
from .records import JobLimitError, JobRecord

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

#: A row as sqlite3 returns it: one SQL value (None, int, float, str or bytes) per column.
_Row = tuple[Any, ...]


def _record(row: _Row) -> JobRecord:
    job_id, owner, status, *rest = row
    return JobRecord(job_id, owner, JobStatus(status), *rest)


def _marks(statuses: tuple[JobStatus, ...]) -> str:
    """``?, ?, ...`` for an ``IN (...)`` over ``statuses`` (bound with ``_values``)."""
    return ", ".join("?" * len(statuses))


def _values(statuses: tuple[JobStatus, ...]) -> tuple[str, ...]:
    return tuple(s.value for s in statuses)


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

    def _one(self, sql: str, args: tuple[object, ...]) -> _Row | None:
        with self._lock:
            row: _Row | None = self._conn.execute(sql, args).fetchone()
            return row

    def _update(self, sql: str, args: tuple[object, ...]) -> int:
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
                    (record.job_id, record.owner, record.status.value, record.version, record.created_at,
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
        n = self._update("UPDATE jobs SET status = ?, started_at = ?, attempts = attempts + 1 "
                         "WHERE job_id = ? AND status = ?",
                         (JobStatus.RUNNING.value, time.time(), job_id, JobStatus.WAITING.value))
        return self.get(job_id) if n else None

    def finish(self, job_id: str, status: JobStatus, result: bytes | None, message: str | None) -> bool:
        return bool(self._update(
            "UPDATE jobs SET status = ?, result = ?, message = ?, finished_at = ?, payload = NULL "
            "WHERE job_id = ? AND status = ?",
            (JobStatus(status).value, result, message, time.time(), job_id, JobStatus.RUNNING.value)))

    def fail_unfinished(self, job_id: str, message: str) -> bool:
        return bool(self._update(
            "UPDATE jobs SET status = ?, message = ?, finished_at = ?, payload = NULL "
            f"WHERE job_id = ? AND status IN ({_marks(PENDING_STATUSES)})",
            (JobStatus.ERROR.value, message, time.time(), job_id, *_values(PENDING_STATUSES))))

    def cancel(self, job_id: str) -> JobStatus | None:
        self._update("UPDATE jobs SET status = ?, finished_at = ?, payload = NULL "
                     "WHERE job_id = ? AND status = ?",
                     (JobStatus.CANCELED.value, time.time(), job_id, JobStatus.WAITING.value))
        row = self._one("SELECT status FROM jobs WHERE job_id = ?", (job_id,))
        return None if row is None else JobStatus(row[0])

    def requeue(self, job_id: str) -> bool:
        return bool(self._update("UPDATE jobs SET status = ? WHERE job_id = ? AND status = ?",
                                 (JobStatus.WAITING.value, job_id, JobStatus.RUNNING.value)))

    def delete(self, job_id: str) -> bool:
        return bool(self._update(f"DELETE FROM jobs WHERE job_id = ? AND status IN ({_marks(FINISHED_STATUSES)})",
                                 (job_id, *_values(FINISHED_STATUSES))))

    def unfinished(self) -> list[JobRecord]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE status IN ({_marks(PENDING_STATUSES)}) "
                                      "ORDER BY created_at", _values(PENDING_STATUSES)).fetchall()
        return [_record(r) for r in rows]

    def counts(self) -> dict[JobStatus, int]:
        with self._lock:
            rows = self._conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        out = dict.fromkeys(PENDING_STATUSES, 0)
        out.update((JobStatus(status), int(n)) for status, n in rows)
        return out

    def expire(self, older_than: float) -> int:
        return self._update(f"DELETE FROM jobs WHERE finished_at < ? AND status IN ({_marks(FINISHED_STATUSES)})",
                            (older_than, *_values(FINISHED_STATUSES)))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        if self._owner is not None:
            self._owner.release()
