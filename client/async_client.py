"""``AsyncSolverClient``: the asyncio twin of ``SolverClient``, over ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
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


class AsyncSolverClient(ClientBase):
    """Talks to a SpinOut (or Digital Annealer) service from asyncio code.

    Example::

        async with AsyncSolverClient("http://127.0.0.1:8000") as client:
            results = await asyncio.gather(*(client.solve(q, time_limit_sec=1) for q in batch))

    Same methods and arguments as ``SolverClient``, as coroutines.
    """

    def __init__(self, base_url: str, *, http_client: httpx.AsyncClient | None = None, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(**self._httpx_options())

    # -- lifecycle ------------------------------------------------------------------------------
    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncSolverClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the driver -----------------------------------------------------------------------------
    async def _send(self, call: core.Call) -> core.Reply:
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
                await asyncio.sleep(step.seconds)
                outcome = None
            else:
                outcome = await self._attempt(step.call)

    async def _attempt(self, call: core.Call) -> core.Reply | core.Failure:
        content, headers = call.body()
        try:
            response = await self._http.request(call.method, call.path, content=content,
                                                headers=headers)
        except httpx.HTTPError as exc:
            return self._failure(call, exc)
        return core.Reply(response.status_code, response.content, response.headers)

    async def _drive(self, flow: core.Flow[_T]) -> _T:
        try:
            step = next(flow)
            while True:
                if isinstance(step, core.Sleep):
                    await asyncio.sleep(step.seconds)
                    step = flow.send(None)
                else:
                    step = flow.send(await self._send(step))
        except StopIteration as stop:
            result: _T = stop.value  # the flow's return value
            return result
        finally:
            flow.close()

    # -- API --------------------------------------------------------------------------------------
    async def healthcheck(self) -> bool:
        """True when ``GET /v1/healthcheck`` answers 200."""
        await self._send(core.Call("GET", "/v1/healthcheck"))
        return True

    async def solve(self, problem: Any, solver: str | BaseModel = "fujitsuDA3", *, mode: str = "auto",
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
        result: SolveResult = await self._drive(core.solve_flow(
            plan, self._polling(timeout), time.monotonic, keep_job=keep_job,
            on_submit=self._remember(plan), on_status=on_status))
        self._delivered(plan)
        if result.job_id:
            self._forget(result.job_id, result.status)
        return result

    async def submit(self, problem: Any, solver: str | BaseModel = "fujitsuDA3", *, num_variables: int | None = None,
                     extra: Mapping[str, Any] | None = None, transport: str = "auto", **params: Any) -> str:
        """Submit an asynchronous job and return its id at once."""
        plan = self._plan(problem, solver, params, mode="async", num_variables=num_variables,
                          extra=extra, transport=transport)
        job_id = core.parse_job_id((await self._drive(core.send_flow(plan))).decoded())
        self._delivered(plan)
        self._remember(plan)(job_id, plan.version)
        return job_id

    async def status(self, job_id: str, *, version: str | None = None) -> JobStatus | str:
        """The job's DA status: Waiting, Running, Done, Error or Canceled."""
        return core.status_of((await self._send(self._status_call(job_id, version))).decoded())

    async def result(self, job_id: str, *, version: str | None = None) -> SolveResult | None:
        """The job's result if it is Done, None while Waiting/Running (the job is kept).

        Raises:
            JobFailedError: the job ended in Error or was Canceled.
        """
        return self._result_of(job_id, (await self._send(self._status_call(job_id, version))).decoded(), version)

    async def wait(self, job_id: str, *, timeout: float | None = DEFAULT, delete: bool = False,
             version: str | None = None, on_status: core.StatusCallback | None = None) -> SolveResult:
        """Poll until the job finishes and return its result (``delete``: remove it as well)."""
        result = await self._drive(self._wait_flow(job_id, timeout=timeout, delete=delete, version=version,
                                             on_status=on_status, clock=time.monotonic))
        self._forget(job_id, result.status)
        return result

    async def cancel(self, job_id: str, *, version: str | None = None) -> JobStatus | str:
        """Ask to cancel; a Waiting job becomes Canceled. Returns the job's status after the call."""
        return core.status_of((await self._send(self._cancel_call(job_id, version))).decoded())

    async def delete(self, job_id: str, *, version: str | None = None) -> JobStatus | str:
        """Remove a finished job ("Deleted"); an unfinished one is left alone and its status
        returned."""
        status = core.status_of((await self._send(self._delete_call(job_id, version))).decoded())
        self._forget(job_id, status)
        return status

    async def list_jobs(self, *, version: str | None = None) -> list[core.JobInfo]:
        """The jobs of this API key."""
        return core.parse_job_list((await self._send(self._list_call(version))).json())
