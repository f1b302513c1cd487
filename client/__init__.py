"""SpinOut's Python client for the DA-compatible solver service.

Light on purpose: httpx, numpy, pydantic and msgpack only (scipy and dimod are used when the
caller has them). ``SolverClient`` blocks, ``AsyncSolverClient`` is its asyncio twin;
``client.sampler.SpinOutSampler`` is the dimod sampler (import it only when dimod is installed).

Modules: ``wire`` (the wire formats: ``wire.da`` models, ``wire.compact`` msgpack codec; shared
with the service, importable without httpx), ``problems`` (problem forms -> arrays), ``results``
(``SolveResult``), ``core`` (the I/O-free request/flow logic), ``policy`` (timeouts, polling,
retries), ``errors`` (the exception tree), ``sync_client`` / ``async_client`` (httpx drivers),
``sampler`` (dimod), ``instance_files`` (G-set / Beasley readers), ``solve_command``
(``spinout solve``).

The names below load on first use, so ``import client.wire.da`` (the service reading its own
request types) does not import httpx.

Example::

    from client import SolverClient
    with SolverClient("http://127.0.0.1:8000", api_key="k") as solver:
        result = solver.solve(Q, "fujitsuDA3", time_limit_sec=2)
        result.best.energy, result.states, result.energies
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .async_client import AsyncSolverClient
    from .core import JobInfo, JobProgress
    from .errors import (APIError, AuthenticationError, BadRequestError, JobFailedError,
                         LimitReachedError, NotFoundError, ProblemError, ServerError,
                         SolveTimeoutError, SpinOutError, TransportError)
    from .policy import NO_RETRY, PollingPolicy, RetryPolicy, Timeouts
    from .problems import CouplingPattern, EncodedProblem, encode_problem
    from .results import Solution, SolveResult
    from .sync_client import SolverClient
    from .wire.da import JobStatus

#: public name -> the module that defines it
_EXPORTS = {
    "AsyncSolverClient": "async_client", "JobInfo": "core", "JobProgress": "core",
    **dict.fromkeys(["APIError", "AuthenticationError", "BadRequestError", "JobFailedError",
                     "LimitReachedError", "NotFoundError", "ProblemError", "ServerError",
                     "SolveTimeoutError", "SpinOutError", "TransportError"], "errors"),
    **dict.fromkeys(["NO_RETRY", "PollingPolicy", "RetryPolicy", "Timeouts"], "policy"),
    **dict.fromkeys(["CouplingPattern", "EncodedProblem", "encode_problem"], "problems"),
    "Solution": "results", "SolveResult": "results", "SolverClient": "sync_client",
    "JobStatus": "wire.da",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
