"""What ``SolverClient`` and ``AsyncSolverClient`` share: settings, headers, the calls for each
operation and the memory of which route each submitted job lives on. Still no I/O here."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import httpx

from . import core, errors
from .policy import PollingPolicy, RetryPolicy, Timeouts
from .results import SolveResult

#: Retried without question: the request never reached the application, or the connection broke
#: before an answer. A read timeout is not retried: a slow synchronous solve would only repeat.
RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ReadError,
    httpx.WriteError, httpx.RemoteProtocolError,
)
USER_AGENT = "spinout-client/0.1"


class ClientBase:
    """Settings and bookkeeping common to both clients.

    Args:
        base_url: the service root, e.g. ``http://127.0.0.1:8000`` (or ``.../da`` for the DA prefix).
        api_key: sent as ``X-Api-Key``; None for a service without authentication.
        timeouts: per-request network timeouts (``Timeouts``) or one number of seconds for all.
        polling: how to poll asynchronous jobs (``PollingPolicy``).
        retry: transient-failure retries (``RetryPolicy``); ``policy.NO_RETRY`` to switch off.
        max_connections: size of the keep-alive pool.
        job_version: the API version for job routes of jobs this client did not submit itself.
        headers: extra headers sent on every request.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None,
                 timeouts: Timeouts | float | None = None, polling: PollingPolicy | None = None,
                 retry: RetryPolicy | None = None, max_connections: int = 10,
                 job_version: str = "v3", headers: Mapping[str, str] | None = None) -> None:
        if not base_url or "://" not in base_url:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        if timeouts is None:
            timeouts = Timeouts()
        elif isinstance(timeouts, (int, float)):
            timeouts = Timeouts(connect=timeouts, read=timeouts, write=timeouts, pool=timeouts)
        self.timeouts = timeouts
        self.polling = polling or PollingPolicy()
        self.retry = retry or RetryPolicy()
        self.job_version = job_version
        self._max_connections = max_connections
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        if api_key:
            self._headers["X-Api-Key"] = api_key
        # job id -> (version, num_variables, labels) for jobs submitted through this client
        self._jobs: dict[str, tuple[str, int | None, tuple[Hashable, ...] | None]] = {}
        # coupling patterns the service accepted from this client: later problems on one of them
        # go without rows and cols (``problems.CouplingPattern``)
        self._patterns: set[str] = set()

    # -- httpx settings ------------------------------------------------------------------------
    def _httpx_options(self) -> dict[str, Any]:
        t = self.timeouts
        return {
            "base_url": self.base_url,
            "headers": self._headers,
            "timeout": httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
            "limits": httpx.Limits(max_connections=self._max_connections,
                                   max_keepalive_connections=self._max_connections,
                                   # below the server's 30 s, so the server never closes first
                                   keepalive_expiry=20.0),
        }

    def _failure(self, call: core.Call, exc: httpx.HTTPError) -> core.Failure:
        """An httpx error as the core's ``Failure``: mapped, and retryable when transient."""
        return core.Failure(self._transport_error(call, exc), exc,
                            isinstance(exc, RETRYABLE_EXCEPTIONS))

    def _transport_error(self, call: core.Call, exc: Exception) -> errors.TransportError:
        detail = str(exc) or type(exc).__name__
        message = f"{call.method} {self.base_url}{call.path} failed: {detail}"
        if isinstance(exc, httpx.ReadTimeout):
            message += (f" (no answer within Timeouts.read={self.timeouts.read:g} s; for long solves "
                        "raise it or use mode='async', which polls instead of holding the request)")
        return errors.TransportError(message, job_id=call.job_id)

    # -- plans and flows -----------------------------------------------------------------------
    def _polling(self, timeout: float | None | object) -> PollingPolicy:
        if timeout is _DEFAULT:
            return self.polling
        return dataclasses.replace(self.polling, timeout=timeout)  # type: ignore[arg-type]

    def _plan(self, problem: Any, solver: Any, params: Mapping[str, Any], **kwargs: Any) -> core.SolvePlan:
        return core.plan_solve(problem, solver, params, known_patterns=self._patterns, **kwargs)

    def _delivered(self, plan: core.SolvePlan) -> None:
        """The service answered the plan's request: it holds the problem's pattern now."""
        if plan.pattern_key is not None:
            self._patterns.add(plan.pattern_key)

    def _remember(self, plan: core.SolvePlan) -> Callable[[str, str], None]:
        def note(job_id: str, version: str) -> None:
            self._jobs[job_id] = (version, plan.num_variables, plan.labels)
        return note

    def _job(self, job_id: str, version: str | None) -> tuple[str, int | None, tuple[Hashable, ...] | None]:
        if not isinstance(job_id, str) or not job_id or "/" in job_id:
            raise errors.ProblemError(f"not a job id: {job_id!r}")
        known = self._jobs.get(job_id)
        if known is not None:
            return (version or known[0], known[1], known[2])
        return (version or self.job_version, None, None)

    def _status_call(self, job_id: str, version: str | None) -> core.Call:
        ver, _, _ = self._job(job_id, version)
        return core.Call("GET", core.result_path(ver, job_id), job_id=job_id)

    def _delete_call(self, job_id: str, version: str | None) -> core.Call:
        ver, _, _ = self._job(job_id, version)
        return core.Call("DELETE", core.result_path(ver, job_id), job_id=job_id)

    def _cancel_call(self, job_id: str, version: str | None) -> core.Call:
        ver, _, _ = self._job(job_id, version)
        return core.Call("POST", f"/{ver}/async/jobs/cancel", json={"job_id": job_id}, job_id=job_id)

    def _list_call(self, version: str | None) -> core.Call:
        return core.Call("GET", f"/{version or self.job_version}/async/jobs")

    def _result_of(self, job_id: str, body: Any, version: str | None) -> SolveResult | None:
        _, n, labels = self._job(job_id, version)
        return core.result_from_job_reply(body, job_id, num_variables=n, labels=labels)

    def _wait_flow(self, job_id: str, *, timeout: float | None | object, delete: bool,
                   version: str | None, on_status: core.StatusCallback | None,
                   clock: Callable[[], float]) -> core.Flow[SolveResult]:
        ver, n, labels = self._job(job_id, version)
        return core.wait_flow(job_id, ver, self._polling(timeout), clock, consume=delete,
                              num_variables=n, labels=labels, on_status=on_status)

    def _forget(self, job_id: str, status: str) -> None:
        if status == "Deleted":
            self._jobs.pop(job_id, None)


class _Default:
    def __repr__(self) -> str:
        return "<policy default>"


#: "use the client's PollingPolicy.timeout" (None means wait forever, so it cannot be the marker)
_DEFAULT: Any = _Default()
DEFAULT = _DEFAULT
