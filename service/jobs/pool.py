"""The embedded mode's solver workers: threads in this process, one per core by default (and
one more for synchronous solves).

The engine's serial kernels release the GIL, so N threads keep N cores busy. Two executors:
async jobs queue on one, synchronous solves run on the other, so a backlog of long async jobs
never delays a short synchronous request (the sync cap keeps those short).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from client.wire.compact import CompactReply

from .lifecycle import execute_job, recover_unfinished
from .records import JobStore
from .solve_job import SolveJob
from .solvers import SolveOptions, solve_request

__all__ = ["EmbeddedRunner", "default_workers"]

log = logging.getLogger("spinout.jobs")


#: Threads for synchronous solves beyond one per solver worker. Session 4 measured one more as
#: best (3 threads: 294 jobs/s, p99 131 ms; 2: 267 / 140; 4: 280 / 155 at 32 clients of small
#: jobs on 2 cores) while a small job spent ~2 ms in Python under the GIL; with that down to
#: ~1 ms and the trial kernel 2x faster, one per worker wins (interleaved A/B, 2 vs 3 threads:
#: 32 clients 372 vs 367 jobs/s, p99 118 vs 133 ms; 8 clients 315 vs 300, p99 41 vs 47).
SYNC_EXTRA_THREADS = 0


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class EmbeddedRunner:
    """Runs stored jobs and sync solves on thread pools; recovers the store at start."""

    def __init__(self, store: JobStore, workers: int, *, job_time_limit: float | None,
                 max_iterations: int | None, max_attempts: int, metrics: Any = None) -> None:
        self.store = store
        self.stop = threading.Event()
        self.jobs = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spinout-job")
        self.sync = ThreadPoolExecutor(max_workers=workers + SYNC_EXTRA_THREADS,
                                       thread_name_prefix="spinout-sync")
        self.job_time_limit = job_time_limit
        self.max_iterations = max_iterations
        self.max_attempts = max_attempts
        self.metrics = metrics

    def start(self) -> None:
        for job_id in recover_unfinished(self.store, self.max_attempts):
            self.enqueue(job_id)

    def enqueue(self, job_id: str) -> None:
        self.jobs.submit(self._run, job_id)

    def _run(self, job_id: str) -> None:
        if self.stop.is_set():
            return
        try:
            execute_job(self.store, job_id, stop=self.stop, time_limit=self.job_time_limit,
                        max_iterations=self.max_iterations, max_attempts=self.max_attempts,
                        metrics=self.metrics)
        except Exception:  # the store failed; the job stays Waiting/Running for the next start
            log.exception("job runner failed", extra={"job_id": job_id})

    async def solve_now(self, request: SolveJob, time_limit: float | None,
                        timeout: float | None = None) -> CompactReply:
        """A synchronous solve on the sync pool, awaited without blocking the event loop.

        Raises TimeoutError after ``timeout`` seconds (waiting for a thread included); the solve
        is then cancelled so that its thread is freed.
        """
        abandoned = threading.Event()
        options = SolveOptions(time_limit=time_limit, max_iterations=self.max_iterations,
                               cancel=lambda: self.stop.is_set() or abandoned.is_set())
        future: Future[CompactReply] = self.sync.submit(solve_request, request, options)
        try:
            async with asyncio.timeout(timeout):  # no extra task, unlike wait_for on 3.11
                return await asyncio.wrap_future(future)
        except (TimeoutError, asyncio.CancelledError):
            abandoned.set()
            future.cancel()
            raise

    def shutdown(self) -> None:
        """Stop: running solves are cancelled and handed back (Waiting) for the next start."""
        self.stop.set()
        self.jobs.shutdown(wait=True, cancel_futures=True)
        self.sync.shutdown(wait=True, cancel_futures=True)
