"""The job lifecycle as the routes see it: submit, list, fetch, delete, cancel, per owner.

Domain errors (``JobNotFoundError``, ``JobLimitError``, ``InvalidRequestError``) are raised here and
mapped to HTTP in one place (service.web.errors). A job of another key is reported as not found,
never as forbidden, so ids cannot be probed.
"""

from __future__ import annotations

import time
from typing import Any

from client.wire.da import FINISHED_STATUSES, JobStatus
from client.wire.compact import CompactReply, decode_reply

from .parsing import InvalidRequestError
from .solve_job import SolveJob
from .records import JobLimitError, JobRecord, JobStore
from .solvers import SolveOptions, estimate_seconds, qubo_solution_dict, solve_request

__all__ = ["JobManager", "JobNotFoundError", "JobLimitError", "SyncSolveTimeout"]


class JobNotFoundError(LookupError):
    """No job with this id for this key (HTTP 404)."""


class SyncSolveTimeout(TimeoutError):
    """A synchronous solve did not finish within the request timeout (HTTP 504)."""


#: A sync solve whose anneal is estimated below this, on a problem that is quick to set up, runs
#: on the event loop: a worker thread would add two thread switches and GIL hand-offs, more than
#: such a solve costs (the trainer's warm-started mini-batch solves, ~1 ms in all).
INLINE_SOLVE_SECONDS = 2e-4
#: Quick to set up: on a registered coupling pattern (one gather, ~0.2 ms for 88,000 couplings)
#: or small; a general build of 90,000 couplings takes ~5 ms, too long to hold the event loop.
INLINE_SOLVE_MAX_COUPLINGS = 250_000
INLINE_SOLVE_MAX_COUPLINGS_UNPATTERNED = 10_000


def _is_tiny(request: SolveJob) -> bool:
    p = request.problem
    limit = (INLINE_SOLVE_MAX_COUPLINGS if request.pattern is not None
             else INLINE_SOLVE_MAX_COUPLINGS_UNPATTERNED)
    return (estimate_seconds(request) < INLINE_SOLVE_SECONDS and p.values.size <= limit
            and request.penalty is None)


class JobManager:
    def __init__(self, store: JobStore, runner: Any, *, job_limit: int, max_iterations: int,
                 max_time_limit_sec: float, sync_time_cap_sec: float, metrics: Any = None,
                 request_timeout_sec: float | None = None) -> None:
        self.request_timeout_sec = request_timeout_sec
        self.store = store
        self.runner = runner
        self.job_limit = job_limit
        self.max_iterations = max_iterations
        self.max_time_limit_sec = max_time_limit_sec
        self.sync_time_cap_sec = sync_time_cap_sec
        self.metrics = metrics

    # ------------------------------------------------------------------ checks
    def check_limits(self, request: SolveJob) -> None:
        p = request.parameters
        if int(p.get("number_iterations", 0)) > self.max_iterations:
            raise InvalidRequestError(f"{request.solver}.number_iterations: {p['number_iterations']} exceeds "
                               f"this server's cap of {self.max_iterations}")
        if float(p.get("time_limit_sec", 0)) > self.max_time_limit_sec:
            raise InvalidRequestError(f"{request.solver}.time_limit_sec: {p['time_limit_sec']} exceeds this "
                               f"server's cap of {self.max_time_limit_sec:g} s")

    def check_sync(self, request: SolveJob, async_route: str) -> None:
        """Refuse a synchronous solve whose estimated time exceeds the sync cap."""
        self.check_limits(request)
        estimate = estimate_seconds(request)
        if estimate > self.sync_time_cap_sec:
            raise InvalidRequestError(
                f"this solve would take about {estimate:.0f} s, over the synchronous cap of "
                f"{self.sync_time_cap_sec:g} s; submit it to the asynchronous route {async_route} "
                "(or lower number_iterations / number_runs)")

    # ------------------------------------------------------------------ sync
    async def solve_now(self, request: SolveJob) -> CompactReply:
        start = time.perf_counter()
        try:
            if _is_tiny(request):
                reply = solve_request(request, SolveOptions(time_limit=self.sync_time_cap_sec,
                                                            max_iterations=self.max_iterations))
            else:
                reply = await self.runner.solve_now(request, self.sync_time_cap_sec,
                                                    self.request_timeout_sec)
        except TimeoutError:
            raise SyncSolveTimeout(self.request_timeout_sec) from None
        reply.timing.setdefault("queue", 0.0)
        reply.timing["total"] = time.perf_counter() - start
        if self.metrics is not None:
            self.metrics.job_finished(request.api_version or "compact", JobStatus.DONE,
                                      reply.timing.get("solve", 0.0))
        return reply

    # ------------------------------------------------------------------ async
    def submit(self, owner: str, request: SolveJob, version: str, kind: str = "da") -> str:
        self.check_limits(request)
        record = JobRecord.create(owner, version, kind)
        request.api_version = version
        self.store.create(record, request.to_payload(), self.job_limit)
        self.runner.enqueue(record.job_id)
        if self.metrics is not None:
            self.metrics.job_submitted(version)
        return record.job_id

    def list(self, owner: str) -> list[JobRecord]:
        return self.store.list_owned(owner)

    def get(self, owner: str, job_id: str) -> JobRecord:
        record = self.store.get(job_id)
        if record is None or record.owner != owner:
            raise JobNotFoundError(job_id)
        return record

    def reply(self, record: JobRecord) -> CompactReply | None:
        raw = self.store.result(record.job_id)
        return None if raw is None else decode_reply(raw)

    def result_body(self, record: JobRecord, status: JobStatus | None = None) -> dict[str, Any]:
        """The DA body of GET/DELETE on a job."""
        body: dict[str, Any] = {"status": status or record.status}
        if record.status == JobStatus.DONE:
            reply = self.reply(record)
            if reply is not None:
                body["qubo_solution"] = qubo_solution_dict(
                    reply, record.version, queue_seconds=reply.timing.get("queue", 0.0),
                    total_seconds=reply.timing.get("total"))
        elif record.status == JobStatus.ERROR:
            body["message"] = record.message or "the job failed"
        return body

    def delete(self, owner: str, job_id: str) -> tuple[JobRecord, bool]:
        """(record, removed): a finished job is removed; an unfinished one is left alone."""
        record = self.get(owner, job_id)
        if record.status not in FINISHED_STATUSES:
            return record, False
        return record, self.store.delete(job_id)

    def cancel(self, owner: str, job_id: str) -> JobStatus:
        self.get(owner, job_id)
        status = self.store.cancel(job_id)
        if status is None:
            raise JobNotFoundError(job_id)
        return status
