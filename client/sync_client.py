"""``SolverClient``: the blocking client, one keep-alive httpx connection pool per instance."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from . import core
from .base import DEFAULT, ClientBase
from .wire.da import JobStatus
from .results import SolveResult

_T = TypeVar("_T")


class SolverClient(ClientBase):
    """Talks to a SpinOut (or Digital Annealer) service.

    Example::

        with SolverClient("http://127.0.0.1:8000", api_key="k") as client:
            result = client.solve(Q, "fujitsuDA3", time_limit_sec=1)
            print(result.best.energy, result.best.state)

    See ``ClientBase`` for the constructor's arguments; ``http_client`` injects a ready
    ``httpx.Client`` (its base URL, headers and timeouts are then the caller's business).
    """

    def __init__(self, base_url: str, *, http_client: httpx.Client | None = None,
                 **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._owns_http = http_client is None
        if http_client is None:
            http_client = httpx.Client(**self._httpx_options())
        self._http = http_client

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> SolverClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the driver -----------------------------------------------------------------------------
    def _send(self, call: core.Call) -> core.Reply:
        """Send one call through the core's retry loop."""
        steps = core.exchange(call, self.retry)
        outcome: core.Reply | core.Failure | None = None
        while True:
            try:
                step = steps.send(outcome)
            except StopIteration as stop:
                reply: core.Reply = stop.value  # the retry loop's return value
                return reply
            if isinstance(step, core.Sleep):
                time.sleep(step.seconds)
                outcome = None
            else:
                outcome = self._attempt(step.call)

    def _attempt(self, call: core.Call) -> core.Reply | core.Failure:
        content, headers = call.body()
        try:
            response = self._http.request(call.method, call.path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            return self._failure(call, exc)
        return core.Reply(response.status_code, response.content, response.headers)

    def _drive(self, flow: core.Flow[_T]) -> _T:
        try:
            step = next(flow)
            while True:
                if isinstance(step, core.Sleep):
                    time.sleep(step.seconds)
                    step = flow.send(None)
                else:
                    step = flow.send(self._send(step))
        except StopIteration as stop:
            result: _T = stop.value  # the flow's return value
            return result
        finally:
            flow.close()

    # -- API --------------------------------------------------------------------------------------
    def healthcheck(self) -> bool:
        """True when ``GET /v1/healthcheck`` answers 200."""
        self._send(core.Call("GET", "/v1/healthcheck"))
        return True

    def solve(self, problem: Any, solver: str | BaseModel = "fujitsuDA3", *, mode: str = "auto",
              timeout: float | None = DEFAULT, keep_job: bool = False, num_variables: int | None = None,
              transport: str = "auto",
              extra: Mapping[str, Any] | None = None, on_status: core.StatusCallback | None = None,
              **params: Any) -> SolveResult:
        """Solve and wait for the answer.

        Args:
            problem: a numpy/scipy QUBO matrix, ``{(i, j): c}``, DA terms, a dimod BQM, ...
            solver: the DA solver block: fujitsuDA, fujitsuDAPT, fujitsuDAMixedMode (synchronous
                v1), fujitsuDA2, fujitsuDA2PT, fujitsuDA2MixedMode (v2), fujitsuDA3 (asynchronous);
                or a typed block, e.g. ``client.wire.da.FujitsuDA3(time_limit_sec=5)``.
            mode: "auto" (synchronous where the generation allows it), "sync" or "async".
            timeout: seconds to wait for an asynchronous job (default: the polling policy's).
            keep_job: leave the finished job on the service (default: removed once fetched).
            num_variables: states come back this wide (default: inferred from the problem).
            extra: more top-level request fields (e.g. ``penalty_binary_polynomial``).
            transport: "auto" (DA JSON for small problems, the compact msgpack body from
                ``core.COMPACT_MIN_TERMS`` terms on), "json" or "compact".
            on_status: called with a ``JobProgress`` at each poll of an asynchronous job.
            **params: the solver block's parameters, e.g. ``time_limit_sec=5, num_run=16``;
                ``guidance_config`` may be a 0/1 array of the full starting state.

        Raises:
            ProblemError, BadRequestError, AuthenticationError, LimitReachedError, ServerError,
            TransportError, JobFailedError, SolveTimeoutError (carries the job id to resume).
        """
        plan = self._plan(problem, solver, params, mode=mode, num_variables=num_variables, extra=extra,
                          transport=transport)
        result: SolveResult = self._drive(core.solve_flow(
            plan, self._polling(timeout), time.monotonic, keep_job=keep_job,
            on_submit=self._remember(plan), on_status=on_status))
        self._delivered(plan)
        if result.job_id:
            self._forget(result.job_id, result.status)
        return result

    def submit(self, problem: Any, solver: str | BaseModel = "fujitsuDA3", *, num_variables: int | None = None,
               extra: Mapping[str, Any] | None = None, transport: str = "auto", **params: Any) -> str:
        """Submit an asynchronous job and return its id at once."""
        plan = self._plan(problem, solver, params, mode="async", num_variables=num_variables,
                          extra=extra, transport=transport)
        job_id = core.parse_job_id((self._drive(core.send_flow(plan))).decoded())
        self._delivered(plan)
        self._remember(plan)(job_id, plan.version)
        return job_id

    def status(self, job_id: str, *, version: str | None = None) -> JobStatus | str:
        """The job's DA status: Waiting, Running, Done, Error or Canceled."""
        return core.status_of(self._send(self._status_call(job_id, version)).decoded())

    def result(self, job_id: str, *, version: str | None = None) -> SolveResult | None:
        """The job's result if it is Done, None while Waiting/Running (the job is kept).

        Raises:
            JobFailedError: the job ended in Error or was Canceled.
        """
        return self._result_of(job_id, self._send(self._status_call(job_id, version)).decoded(), version)

    def wait(self, job_id: str, *, timeout: float | None = DEFAULT, delete: bool = False,
             version: str | None = None, on_status: core.StatusCallback | None = None) -> SolveResult:
        """Poll until the job finishes and return its result (``delete``: remove it as well)."""
        result = self._drive(self._wait_flow(job_id, timeout=timeout, delete=delete, version=version,
                                             on_status=on_status, clock=time.monotonic))
        self._forget(job_id, result.status)
        return result

    def cancel(self, job_id: str, *, version: str | None = None) -> JobStatus | str:
        """Ask to cancel; a Waiting job becomes Canceled. Returns the job's status after the call."""
        return core.status_of(self._send(self._cancel_call(job_id, version)).decoded())

    def delete(self, job_id: str, *, version: str | None = None) -> JobStatus | str:
        """Remove a finished job ("Deleted"); an unfinished one is left alone and its status
        returned."""
        status = core.status_of(self._send(self._delete_call(job_id, version)).decoded())
        self._forget(job_id, status)
        return status

    def list_jobs(self, *, version: str | None = None) -> list[core.JobInfo]:
        """The jobs of this API key."""
        return core.parse_job_list(self._send(self._list_call(version)).json())
