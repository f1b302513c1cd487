"""The app factory: settings -> store, runner, job manager, routes, errors, observability.

Embedded mode (default): a SQLite store and an in-process thread pool. Scale-out mode
(``redis_url`` set): the Redis store, rq workers elsewhere; sync solves still run here.
The store and the runner start in the lifespan, so a restart re-queues unfinished jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from client.models import CancelRequest, SolveRequest
from service.jobs.manager import JobManager
from service.jobs.patterns import PatternCache
from service.jobs.pool import EmbeddedRunner, default_workers
from service.jobs.records import JobStore
from service.jobs.solvers import warm_up

from .compact_routes import build_compact_router
from .errors import install_error_handlers
from .fast_lane import FastLane
from .observability import Metrics, RequestContextMiddleware
from .routes import build_da_router
from .settings import Settings, get_settings

__all__ = ["create_app"]

log = logging.getLogger("spinout.web")


def _build_backend(settings: Settings, metrics: Metrics) -> tuple[JobStore, Any]:
    workers = settings.workers or default_workers()
    runner: Any
    if settings.redis_url:
        from service.jobs.redis_queue import RedisRunner

        runner = RedisRunner(settings.redis_url, job_time_limit=settings.job_time_limit_sec,
                             max_attempts=settings.max_attempts, lease_seconds=settings.lease_seconds,
                             sync_workers=workers, max_iterations=settings.max_iterations)
        return runner.store, runner
    from service.jobs.sqlite_store import SqliteJobStore

    store = SqliteJobStore(settings.database, owner=True)
    runner = EmbeddedRunner(store, workers, job_time_limit=settings.job_time_limit_sec,
                            max_iterations=settings.max_iterations, max_attempts=settings.max_attempts,
                            metrics=metrics)
    return store, runner


async def _expire_loop(store: JobStore, retention: float) -> None:
    while True:
        try:
            removed = await run_in_threadpool(store.expire, time.time() - retention)
            if removed:
                log.info("expired finished jobs", extra={"removed": removed})
        except Exception:
            log.exception("expiry pass failed")
        await asyncio.sleep(60)


#: How long a thread may hold the GIL while another waits (Python's default: 5 ms). Solver
#: threads take it back after every kernel call; with 5 ms they queued behind the event loop's
#: parsing, and small sync jobs lost ~15 % of their throughput (A/B, 6 alternating rounds).
GIL_SWITCH_INTERVAL_SEC = 0.0005


def tune_interpreter() -> None:
    """Process-wide settings for serving many short requests next to solver threads."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SEC)
    # The app's ~150,000 long-lived objects (FastAPI, pydantic, numba) leave the cyclic
    # collector's scans; a full collection over them takes ~70 ms, a latency spike per request
    # that happens to trigger it.
    gc.collect()
    gc.freeze()


class ServiceApp(FastAPI):
    """FastAPI with the request context (ids, access log, metrics) outermost and the fast lane
    for small jobs' routes inside it, ahead of FastAPI's own middleware and router."""

    def include_router(self, router: Any, *args: Any, **kwargs: Any) -> None:
        super().include_router(router, *args, **kwargs)
        self.__dict__.setdefault("included_routers", []).append((kwargs.get("prefix", ""), router))

    def build_middleware_stack(self) -> Any:
        routers = [("", self.routes)] + [(prefix, router.routes) for prefix, router
                                         in self.__dict__.get("included_routers", [])]
        return RequestContextMiddleware(FastLane(super().build_middleware_stack(), self, routers),
                                        metrics=self.state.metrics)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A ready-to-serve app (``uvicorn --factory service.web.app:create_app``)."""
    settings = settings or get_settings()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store, runner = _build_backend(settings, metrics)
        app.state.jobs = JobManager(store, runner, job_limit=settings.job_limit,
                                    max_iterations=settings.max_iterations,
                                    max_time_limit_sec=settings.max_time_limit_sec,
                                    sync_time_cap_sec=settings.sync_time_cap_sec, metrics=metrics,
                                    request_timeout_sec=settings.request_timeout_sec)
        metrics.watch_store(store)
        seconds = await run_in_threadpool(warm_up)
        tune_interpreter()
        runner.start()
        expiry = asyncio.create_task(_expire_loop(store, settings.result_retention_sec))
        log.info("service ready", extra={"mode": "redis" if settings.redis_url else "embedded",
                                         "auth": bool(settings.keys),
                                         "warmup_s": round(seconds, 2)})
        try:
            yield
        finally:
            expiry.cancel()
            await run_in_threadpool(runner.shutdown)
            store.close()

    app = ServiceApp(title="SpinOut solver service",
                     description="A Digital Annealer Web API compatible QUBO solver, plus a compact "
                                 "msgpack transport for large problems.",
                     version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.api_keys = [k.encode() for k in settings.keys]
    app.state.parse_slots = asyncio.Semaphore(settings.max_parallel_parses)
    app.state.patterns = PatternCache(int(settings.pattern_cache_mb * 1024 * 1024))
    app.state.metrics = metrics
    install_error_handlers(app)
    # The compact routes first: FastAPI tries routes in order, and the trainer's many small
    # compact solves then match at once instead of after ~90 DA routes (~15 % of their parsing).
    app.include_router(build_compact_router())
    da = build_da_router()
    app.include_router(da)
    prefix = settings.normalized_prefix
    if prefix:
        app.include_router(da, prefix=prefix)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (SolveRequest, CancelRequest):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in model_schema.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components[model.__name__] = model_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
