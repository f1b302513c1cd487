"""The job record and the store interface both backends (SQLite, Redis) implement.

A job is created Waiting with its payload (the compact msgpack request); a worker claims it
(Waiting -> Running, attempts + 1), then finishes it (Done with the compact reply, or Error with a
message). Every transition is a compare-and-set on the status, so two workers, a restart and a
user's cancel never both win. Owners are stored as a SHA-256 digest of the API key, never the key.
"""

from __future__ import annotations

import functools
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

from client.wire.da import JobStatus

__all__ = ["JobRecord", "JobStore", "JobLimitError", "new_job_id", "owner_of"]



class JobLimitError(Exception):
    """The owner already holds the per-key job limit (HTTP 429)."""


def new_job_id() -> str:
    return uuid.uuid4().hex


@functools.lru_cache(maxsize=1024)
def owner_of(api_key: str | None) -> str:
    """The stored owner of a key: a digest, so the store never holds a usable key (cached: a
    service has a few keys and every request asks)."""
    if api_key is None:
        return "anonymous"
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass
class JobRecord:
    job_id: str
    owner: str
    status: JobStatus
    version: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    message: str | None = None
    kind: str = "da"  # "da" (DA JSON reply) or "compact" (msgpack reply)

    @staticmethod
    def create(owner: str, version: str, kind: str = "da") -> JobRecord:
        return JobRecord(new_job_id(), owner, JobStatus.WAITING, version, time.time(), kind=kind)


class JobStore(Protocol):
    """What the job lifecycle needs from persistence (``SqliteJobStore``, ``RedisJobStore``).

    Both pass the same conformance suite (tests/service/jobs/test_store_conformance.py).
    """

    def create(self, record: JobRecord, payload: bytes, limit: int | None) -> None:
        """Insert; JobLimitError if ``owner`` already holds ``limit`` jobs (atomic)."""

    def get(self, job_id: str) -> JobRecord | None: ...

    def payload(self, job_id: str) -> bytes | None: ...

    def result(self, job_id: str) -> bytes | None: ...

    def list_owned(self, owner: str) -> list[JobRecord]: ...

    def claim(self, job_id: str, max_attempts: int) -> JobRecord | None:
        """Waiting -> Running (attempts + 1); None if the job is not Waiting."""

    def finish(self, job_id: str, status: JobStatus, result: bytes | None, message: str | None) -> bool:
        """Running -> Done/Error; False if it was not Running (``status`` may be given as its
        value, ``"Done"``; an unknown one raises ValueError)."""

    def fail_unfinished(self, job_id: str, message: str) -> bool:
        """Waiting/Running -> Error (gave up on it); False if it was already finished."""

    def cancel(self, job_id: str) -> JobStatus | None:
        """Waiting -> Canceled; returns the status after the call (None: no such job)."""

    def requeue(self, job_id: str) -> bool:
        """Running -> Waiting (a worker died or the server stopped mid-job)."""

    def delete(self, job_id: str) -> bool:
        """Remove a finished job; False (and nothing removed) if it is not finished."""

    def unfinished(self) -> list[JobRecord]: ...

    def counts(self) -> dict[JobStatus, int]:
        """Jobs per status, for the metrics: Waiting and Running always (0 included); a store
        may add the finished statuses it can count cheaply."""

    def expire(self, older_than: float) -> int:
        """Remove finished jobs that finished before ``older_than`` (epoch s)."""

    def close(self) -> None: ...
