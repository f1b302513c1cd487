"""Prometheus metrics, a request id per request, and JSON log lines.

A pure ASGI middleware (cheaper than BaseHTTPMiddleware on the small-job hot path) takes the
caller's ``X-Request-ID`` or makes one, returns it on the response, keeps it in a context variable
so every log line of the request carries it, times the request and counts it by route template.
The access line of a request answered below 400 is DEBUG (the metrics count every request; at
hundreds of small jobs a second a line each cost ~10 % of the event loop's time), 4xx and 5xx are
INFO. A made-up request id is this process's random prefix and a counter: unique without a
``getrandom`` call per request. Each app owns its own CollectorRegistry, so several apps in one
process (tests) do not clash.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import secrets
import time
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from client.wire.da import FINISHED_STATUSES, PENDING_STATUSES, JobStatus
from service.jobs.records import JobStore

__all__ = ["Metrics", "RequestContextMiddleware", "JsonFormatter", "configure_logging", "request_id"]

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
log = logging.getLogger("spinout.access")


class Metrics:
    """The service's instruments on a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("spinout_http_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("spinout_http_request_duration_seconds", "HTTP request latency",
                                 ["route"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                          1, 2.5, 5, 10, 30, 60))
        self.submitted = Counter("spinout_jobs_submitted_total", "async jobs accepted", ["version"],
                                 registry=self.registry)
        self.finished = Counter("spinout_jobs_finished_total", "solves finished", ["version", "status"],
                                registry=self.registry)
        self.solve_seconds = Histogram("spinout_solve_seconds", "solver wall time", ["version"],
                                       registry=self.registry,
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 10, 60, 600, 3600))

    def watch_store(self, store: JobStore) -> None:
        """Export ``spinout_jobs{status}`` (queue depth and more), read from the store at scrape."""
        self.registry.register(_StoreCollector(store))

    def job_submitted(self, version: str) -> None:
        self.submitted.labels(version).inc()

    def job_finished(self, version: str, status: JobStatus, seconds: float) -> None:
        self.finished.labels(version, status.value).inc()
        self.solve_seconds.labels(version).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _StoreCollector:
    def __init__(self, store: JobStore) -> None:
        self.store = store

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("spinout_jobs", "stored jobs by status", labels=["status"])
        try:
            counts = self.store.counts()
        except Exception:  # a closed or unreachable store must not break the scrape
            counts = {}
        for status in (*PENDING_STATUSES, *FINISHED_STATUSES):
            if status in counts or status in PENDING_STATUSES:
                family.add_metric([status.value], counts.get(status, 0))
        yield family

    def describe(self) -> list[Any]:
        return []


class RequestContextMiddleware:
    """Request id, access log line and HTTP metrics for every request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(8)
        # The metrics' children by label values: ``labels()`` looks them up under a lock.
        self._counts: dict[tuple[str, str, str], Any] = {}
        self._latencies: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                rid = value.decode("latin-1")[:64]
                break
        rid = rid or f"{self._id_prefix}-{next(self._ids):x}"
        token = request_id.set(rid)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            key = (scope["method"], template, str(status))
            counter = self._counts.get(key)
            if counter is None:
                counter = self._counts[key] = self.metrics.requests.labels(*key)
            counter.inc()
            latency = self._latencies.get(template)
            if latency is None:
                latency = self._latencies[template] = self.metrics.latency.labels(template)
            latency.observe(elapsed)
            level = logging.DEBUG if status < 400 else logging.INFO
            if log.isEnabledFor(level):
                log.log(level, "request", extra={"method": scope["method"], "path": scope["path"],
                                                 "status": status, "ms": round(elapsed * 1000, 2)})
            request_id.reset(token)


_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname,
                               "logger": record.name, "msg": record.getMessage(),
                               "request_id": request_id.get()}
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        # orjson: the access log writes one line per request (~5x faster than json.dumps)
        return orjson.dumps(out, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("spinout")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
