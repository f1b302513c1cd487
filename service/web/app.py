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
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import FastAPI, params
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from client.wire.da import CancelRequest, SolveRequest
from service.jobs.manager import JobManager
from service.jobs.patterns import PatternCache
from service.jobs.pool import EmbeddedRunner, default_workers
from service.jobs.records import JobStore
from service.jobs.solvers import warm_up

from .body_parsing import BodyParsers
from .compact_routes import add_compact_routes
from .errors import install_error_handlers
from .dependencies import ASYNC_VERSIONS, SYNC_VERSIONS, ServiceState
from .observability import Metrics, RequestContextMiddleware
from .routes import add_da_routes
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


def _paths_per_version(paths: dict[str, Any]) -> dict[str, Any]:
    """The document as DA users read it: one path per version (``/v3/async/qubo/solve``, ...)
    where the app registers one route with a ``{version}`` segment."""
    out: dict[str, Any] = {}
    for path, operations in paths.items():
        if "/{version}/" not in path:
            out[path] = operations
            continue
        versions = SYNC_VERSIONS if "/{version}/qubo/" in path else ASYNC_VERSIONS
        for version in versions:
            concrete: dict[str, Any] = {}
            for method, operation in operations.items():
                operation = dict(operation)
                operation["parameters"] = [p for p in operation.get("parameters", [])
                                           if p.get("name") != "version" or p.get("in") != "path"]
                operation["operationId"] = f"{operation.get('operationId', method)}_{version}"
                operation["tags"] = [f"{version} {tag}" for tag in operation.get("tags", [])]
                concrete[method] = operation
            out[path.replace("{version}", version)] = concrete
    return out


def create_app(settings: Settings | None = None, *,
               dependencies: Sequence[params.Depends] = ()) -> FastAPI:
    """A ready-to-serve app (``uvicorn --factory service.web.app:create_app``).

    ``dependencies`` apply to every route (FastAPI's app-level dependencies: a deployment's own
    checks, e.g. an IP allow-list)."""
    settings = settings or get_settings()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store, runner = _build_backend(settings, metrics)
        state.jobs = JobManager(store, runner, job_limit=settings.job_limit,
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

    parsers = BodyParsers(settings.max_terms, settings.max_parallel_parses,
                          PatternCache(int(settings.pattern_cache_mb * 1024 * 1024)),
                          scan_terms=settings.term_scan)
    state = ServiceState(settings, parsers, [k.encode() for k in settings.keys])
    app = FastAPI(title="SpinOut solver service",
                  description="A Digital Annealer Web API compatible QUBO solver, plus a compact "
                              "msgpack transport for large problems.",
                  version="0.1.0", lifespan=lifespan, dependencies=list(dependencies))
    app.state.service = state
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    install_error_handlers(app)
    # The compact routes first: FastAPI tries routes in order, and the trainer's many small
    # compact solves then match at once.
    add_compact_routes(app.router)
    add_da_routes(app.router)
    if settings.normalized_prefix:
        add_da_routes(app.router, settings.normalized_prefix)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        schema["paths"] = _paths_per_version(schema.get("paths", {}))
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
