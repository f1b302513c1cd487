"""Scale-out on Redis with rq: the API enqueues, ``spinout worker`` processes run the jobs.

Why rq: a small, well-kept, Redis-only queue whose jobs are plain Python calls; it brings
worker registration, graceful shutdown and failure bookkeeping without a broker to run besides
Redis (which also holds the job store). See docs/service.md.

Dead workers: rq cannot notice one fast enough, so SpinOut keeps its own leases. A
``SimpleWorker`` runs the job on its main thread and sends no heartbeat meanwhile, so rq gives
the job's execution a TTL of the job timeout + 60 s (here the job time limit + 180 s: over an
hour by default), and ``StartedJobRegistry.cleanup`` (run by a worker's maintenance, every
10 minutes) only then reports the job abandoned. Instead each running job holds a short lease
(``lease:{id}``, a few seconds, renewed by a thread of the worker). A monitor thread, run by
the API and by every worker, scans unfinished jobs: a Running job whose lease lapsed is put back
to Waiting and re-enqueued (another worker takes it), or marked Error after ``max_attempts``
runs. The transitions are compare-and-set scripts, so several monitors never double-enqueue.

Only rq's public API is used: the queue's contents through ``Queue.get_job_ids``, and a dead
worker's leftover registration is retired with its own ``register_death``.

Workers are rq ``SimpleWorker``s (no fork per job): the compiled kernels stay loaded, and a
kill -9 of the worker really stops its job.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from client.wire.da import JobStatus

from .lifecycle import execute_job, interrupted_message
from .records import JobRecord, JobStore
from .redis_store import RedisJobStore, job_key, lease_key

if TYPE_CHECKING:
    from rq import SimpleWorker

__all__ = ["QUEUE_NAME", "RedisMonitor", "RedisRunner", "WorkerConfig", "run_job", "run_worker"]

log = logging.getLogger("spinout.jobs")

QUEUE_NAME = "spinout"


@dataclass
class WorkerConfig:
    """What a worker needs to run jobs (set by ``spinout worker`` from its settings)."""

    job_time_limit: float | None = 3600.0
    max_iterations: int | None = None
    max_attempts: int = 3
    lease_seconds: float = 5.0


_config = WorkerConfig()
_stop = threading.Event()


def configure_worker(config: WorkerConfig) -> None:
    global _config
    _config = config


#: A Waiting job not marked enqueued after this long is enqueued by the monitor.
ORPHAN_SECONDS = 10.0


def mark_enqueued(connection: Redis, job_id: str, rq_id: str | None = None) -> None:
    """Record that the job is in rq's queue, and as which rq job (only while the record exists)."""
    connection.eval("if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], "
                    "'enqueued_at', ARGV[1]) if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], "
                    "'rq_id', ARGV[2]) end end return 0", 1, job_key(job_id), time.time(),
                    rq_id or "")


def _enqueue(connection: Redis, job_id: str, timeout: float | None, rq_id: str | None = None) -> str:
    """Put ``run_job(job_id)`` on rq's queue as rq job ``rq_id`` (new if None); its rq id."""
    from rq import Callback, Queue

    queue = Queue(QUEUE_NAME, connection=connection)
    job = queue.enqueue("service.jobs.redis_queue.run_job", job_id,
                        job_timeout=int(timeout + 120) if timeout else -1, result_ttl=0,
                        failure_ttl=86400, on_failure=Callback(on_rq_failure),
                        job_id=rq_id or uuid.uuid4().hex)
    return str(job.id)


#: Compare-and-set of a Waiting job's rq id: only one monitor re-enqueues a dropped job.
#: ARGV: the Waiting status, the expected rq id, the new rq id, the time.
_SWAP_RQ_ID = """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'rq_id') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'rq_id', ARGV[3], 'enqueued_at', ARGV[4])
return 1
"""


def on_rq_failure(job: Any, connection: Redis, exc_type: type, exc: BaseException, tb: Any) -> None:
    """rq could not run ``run_job`` (an exception outside the solve, a timeout): the job becomes
    Error with the reason instead of waiting forever. Abandoned jobs (dead worker) are left to
    the lease monitor, which may already have handed them to another worker."""
    from rq.exceptions import AbandonedJobError

    if isinstance(exc, AbandonedJobError) or not job.args:
        return
    RedisJobStore(connection).fail_unfinished(str(job.args[0]), f"the worker failed: {exc_type.__name__}: {exc}")


class _Lease:
    """Holds ``lease:{id}`` while a job runs, renewing it from a thread."""

    def __init__(self, connection: Redis, job_id: str, seconds: float) -> None:
        self.connection, self.key, self.seconds = connection, lease_key(job_id), seconds
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._renew, name="spinout-lease", daemon=True)

    def __enter__(self) -> _Lease:
        self.connection.set(self.key, os.getpid(), px=int(self.seconds * 1000))
        self.thread.start()
        return self

    def _renew(self) -> None:
        while not self.done.wait(self.seconds / 3):
            try:
                self.connection.set(self.key, os.getpid(), px=int(self.seconds * 1000))
            except Exception:  # Redis hiccup: the next renewal retries
                log.warning("lease renewal failed", extra={"key": self.key})

    def __exit__(self, *exc: Any) -> None:
        self.done.set()
        self.thread.join(timeout=2)
        self.connection.delete(self.key)


def run_job(job_id: str) -> str | None:
    """The rq job function: run one stored job under a lease."""
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        raise RuntimeError("run_job must run inside an rq worker")
    connection = job.connection
    store = RedisJobStore(connection)
    with _Lease(connection, job_id, _config.lease_seconds):
        status = execute_job(store, job_id, stop=_stop, time_limit=_config.job_time_limit,
                             max_iterations=_config.max_iterations, max_attempts=_config.max_attempts)
    return None if status is None else status.value


class RedisMonitor(threading.Thread):
    """Finds jobs whose worker died (lease lapsed) and re-enqueues them or marks them Error."""

    def __init__(self, connection: Redis, *, interval: float = 1.0, lease_seconds: float = 5.0,
                 max_attempts: int = 3, job_time_limit: float | None = None) -> None:
        super().__init__(name="spinout-monitor", daemon=True)
        from rq import Queue

        self.connection = connection
        self.store: JobStore = RedisJobStore(connection)
        self.queue = Queue(QUEUE_NAME, connection=connection)
        self.interval, self.lease_seconds = interval, lease_seconds
        self.max_attempts, self.job_time_limit = max_attempts, job_time_limit
        self.done = threading.Event()
        self._suspects: dict[str, float] = {}  # rq ids seen missing from the queue, since when
        self._swap_rq_id = connection.register_script(_SWAP_RQ_ID)

    def run(self) -> None:
        while not self.done.wait(self.interval):
            try:
                self.check()
            except Exception:
                log.exception("monitor pass failed")

    def check(self) -> None:
        now = time.time()
        queued: set[str] | None = None
        for record in self.store.unfinished():
            if record.status == JobStatus.WAITING:
                self._enqueue_orphan(record, now)
                if queued is None and now - record.created_at >= ORPHAN_SECONDS:
                    queued = set(self.queue.get_job_ids())
                if queued is not None:
                    self._recover_dropped(record, now, queued)
                continue
            if record.status != JobStatus.RUNNING:
                continue
            if self.connection.exists(lease_key(record.job_id)):
                continue
            if now - (record.started_at or now) < self.lease_seconds:
                continue  # just claimed; the lease may not be visible yet
            if record.attempts >= self.max_attempts:
                if self.store.finish(record.job_id, JobStatus.ERROR, None,
                                     interrupted_message(record.attempts)):
                    log.warning("job abandoned too often; marked Error", extra={"job_id": record.job_id})
            elif self.store.requeue(record.job_id):
                log.warning("worker lost; re-enqueueing job", extra={"job_id": record.job_id})
                rq_id = _enqueue(self.connection, record.job_id, self.job_time_limit)
                mark_enqueued(self.connection, record.job_id, rq_id)

    def _enqueue_orphan(self, record: JobRecord, now: float) -> None:
        """A Waiting job never marked enqueued (the API died between storing and enqueueing it)
        is enqueued here; a duplicate run is impossible, the claim is compare-and-set."""
        if now - record.created_at < ORPHAN_SECONDS:
            return
        key = job_key(record.job_id)
        if self.connection.hget(key, "enqueued_at") is None and \
                self.connection.hsetnx(key, "enqueued_at", now):
            log.warning("enqueueing a job that was stored but never queued", extra={"job_id": record.job_id})
            rq_id = _enqueue(self.connection, record.job_id, self.job_time_limit)
            mark_enqueued(self.connection, record.job_id, rq_id)

    def _recover_dropped(self, record: JobRecord, now: float, queued: set[str]) -> None:
        """A Waiting job whose rq job is no longer queued was taken by a worker that died or
        lost Redis before it claimed the job (a worker claims within milliseconds of taking
        it): seen so on two passes, it is enqueued again (the claim is compare-and-set, so an
        old rq job that still turns up cannot run it twice)."""
        key = job_key(record.job_id)
        enqueued_at, rq_id = (_text(v) for v in self.connection.hmget(key, ["enqueued_at", "rq_id"]))
        if not rq_id or not enqueued_at or now - float(enqueued_at) < ORPHAN_SECONDS:
            return
        if rq_id in queued:
            self._suspects.pop(rq_id, None)
            return
        first_seen = self._suspects.setdefault(rq_id, now)
        if now - first_seen < max(2 * self.interval, 2.0):
            return
        del self._suspects[rq_id]
        new_id = uuid.uuid4().hex
        if self._swap_rq_id(keys=[key], args=[JobStatus.WAITING.value, rq_id, new_id, now]):
            log.warning("re-enqueueing a Waiting job whose queue entry was lost",
                        extra={"job_id": record.job_id})
            _enqueue(self.connection, record.job_id, self.job_time_limit, new_id)

    def stop(self) -> None:
        self.done.set()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value) if value is not None else ""


class RedisRunner:
    """The API side of the scale-out: store in Redis, jobs to rq, sync solves in-process."""

    def __init__(self, url: str, *, job_time_limit: float | None, max_attempts: int,
                 lease_seconds: float, sync_workers: int, max_iterations: int | None) -> None:
        from .pool import EmbeddedRunner

        self.connection = Redis.from_url(url)
        self.store = RedisJobStore(self.connection)
        self.job_time_limit = job_time_limit
        self.monitor = RedisMonitor(self.connection, lease_seconds=lease_seconds,
                                    max_attempts=max_attempts, job_time_limit=job_time_limit)
        # Synchronous solves stay in the API process (they are short by the sync cap).
        self._sync = EmbeddedRunner(self.store, sync_workers, job_time_limit=job_time_limit,
                                    max_iterations=max_iterations, max_attempts=max_attempts)

    def start(self) -> None:
        self.connection.ping()
        self.monitor.start()

    def enqueue(self, job_id: str) -> None:
        rq_id = _enqueue(self.connection, job_id, self.job_time_limit)
        mark_enqueued(self.connection, job_id, rq_id)

    async def solve_now(self, request: Any, time_limit: float | None, timeout: float | None = None) -> Any:
        return await self._sync.solve_now(request, time_limit, timeout)

    def shutdown(self) -> None:
        self.monitor.stop()
        self._sync.shutdown()
        self.connection.close()


def _retire_dead_namesake(worker: SimpleWorker) -> None:
    """A worker restarted under its old ``--name`` after a kill -9 finds its dead self still
    registered in Redis (rq keeps the key for minutes) and rq refuses to start. If that
    registration is from this host and its process is gone, it is stale: rq records its death
    (``register_death``), after which the name is free."""
    import socket

    from rq import SimpleWorker

    old = SimpleWorker.find_by_key(worker.key, connection=worker.connection)
    if old is None or old.death_date is not None:
        return  # free, or already retired (a clean stop): rq accepts the name
    if old.hostname != socket.gethostname() or not old.pid:
        return  # another machine's worker: rq's own refusal (a clear message) stands
    if old.pid != os.getpid():  # our own earlier registration (lost Redis) is stale too
        try:
            os.kill(old.pid, 0)
            return  # alive: a real name clash
        except ProcessLookupError:
            pass
        except PermissionError:
            return
    log.warning("retiring the stale registration of a dead worker with this name",
                extra={"worker": worker.name, "dead_pid": old.pid})
    old.register_death()


def run_worker(url: str, config: WorkerConfig, *, name: str | None = None, burst: bool = False,
               monitor_interval: float = 1.0) -> int:
    """Serve jobs from Redis until stopped (SIGTERM/SIGINT: finish the current job, then exit)."""
    from rq import Queue, SimpleWorker

    from .solvers import warm_up

    configure_worker(config)
    warm_up()
    connection = Redis.from_url(url)
    connection.ping()
    monitor = RedisMonitor(connection, interval=monitor_interval, lease_seconds=config.lease_seconds,
                           max_attempts=config.max_attempts, job_time_limit=config.job_time_limit)
    monitor.start()
    try:
        while True:
            worker = SimpleWorker([Queue(QUEUE_NAME, connection=connection)], connection=connection,
                                  name=name)
            _retire_dead_namesake(worker)
            try:
                worker.work(burst=burst, with_scheduler=False, logging_level="WARNING")
                return 0
            except (RedisConnectionError, RedisTimeoutError) as exc:
                # rq retries a lost connection while it waits for a job, but not while it
                # finishes one: it quits. Wait for Redis (bounded) and serve again; the job it
                # was finishing is re-run by the lease monitor if its record was not written.
                log.warning("lost Redis while finishing a job; reconnecting", extra={"error": str(exc)})
                _wait_for_redis(connection, RECONNECT_SECONDS)
                name = name or worker.name
    finally:
        monitor.stop()
        _stop.set()


#: How long a worker that lost Redis mid-job waits for it before giving up (exit 1).
RECONNECT_SECONDS = 300.0


def _wait_for_redis(connection: Redis, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    delay = 0.5
    while True:
        try:
            connection.ping()
            return
        except (RedisConnectionError, RedisTimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
