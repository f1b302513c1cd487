"""Running one stored job: claim, solve, record; shared by the thread pool and the Redis worker.

Retries only for transient failures: a problem the engine refuses (ValueError) fails once with
its message kept; a job interrupted by a stopping server or a dead worker goes back to Waiting
and is re-run, up to ``max_attempts`` runs, then becomes Error with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from client.wire.da import JobStatus
from client.wire.compact import encode_reply

from .records import JobStore
from .solve_job import SolveJob
from .solvers import SolveOptions, solve_request

__all__ = ["execute_job", "recover_unfinished", "interrupted_message"]

log = logging.getLogger("spinout.jobs")


def interrupted_message(attempts: int) -> str:
    return (f"the job was interrupted {attempts} time(s) (server or worker stopped while it ran); "
            "not retried again")


def execute_job(store: JobStore, job_id: str, *, stop: threading.Event | None = None,
                time_limit: float | None = None, max_iterations: int | None = None,
                max_attempts: int = 3, metrics: Any = None) -> JobStatus | None:
    """Claim and run one job; returns its final status (None if it was not Waiting)."""
    record = store.claim(job_id, max_attempts)
    if record is None:
        return None
    if record.attempts > max_attempts:
        store.finish(job_id, JobStatus.ERROR, None, interrupted_message(record.attempts - 1))
        return JobStatus.ERROR
    payload = store.payload(job_id)
    started = time.time()
    try:
        if payload is None:
            raise ValueError("the job's problem was not found in the store")
        request = SolveJob.from_payload(payload)
        reply = solve_request(request, SolveOptions(time_limit=time_limit, cancel=stop,
                                                    max_iterations=max_iterations))
    except ValueError as exc:
        store.finish(job_id, JobStatus.ERROR, None, str(exc))
        log.info("job failed", extra={"job_id": job_id, "reason": str(exc)})
        if metrics is not None:
            metrics.job_finished(record.version, JobStatus.ERROR, time.time() - started)
        return JobStatus.ERROR
    except Exception as exc:  # a bug must not leave the job Running forever
        log.exception("job crashed", extra={"job_id": job_id})
        store.finish(job_id, JobStatus.ERROR, None, f"internal error: {exc.__class__.__name__}: {exc}")
        if metrics is not None:
            metrics.job_finished(record.version, JobStatus.ERROR, time.time() - started)
        return JobStatus.ERROR
    if reply.stop_reason == "cancelled" and stop is not None and stop.is_set():
        # The server is stopping: hand the job back so the next start re-runs it.
        store.requeue(job_id)
        return JobStatus.WAITING
    finished = time.time()
    reply.timing["queue"] = max(started - record.created_at, 0.0)
    reply.timing["total"] = finished - record.created_at
    reply.job_id = job_id
    store.finish(job_id, JobStatus.DONE, encode_reply(reply), None)
    if metrics is not None:
        metrics.job_finished(record.version, JobStatus.DONE, finished - started)
    return JobStatus.DONE


def recover_unfinished(store: JobStore, max_attempts: int) -> list[str]:
    """After a restart: Running jobs (interrupted) go back to Waiting or, past ``max_attempts``,
    to Error; returns the Waiting job ids to queue, oldest first."""
    waiting = []
    for record in store.unfinished():
        if record.status == JobStatus.RUNNING:
            if record.attempts >= max_attempts:
                store.finish(record.job_id, JobStatus.ERROR, None,
                             interrupted_message(record.attempts))
                continue
            store.requeue(record.job_id)
            log.warning("re-running interrupted job", extra={"job_id": record.job_id})
        waiting.append(record.job_id)
    return waiting
