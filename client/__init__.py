"""SpinOut's Python client for the DA-compatible solver service.

Light on purpose: httpx, numpy, pydantic and msgpack only (scipy and dimod are used when the
caller has them). ``SolverClient`` blocks, ``AsyncSolverClient`` is its asyncio twin;
``client.sampler.SpinOutSampler`` is the dimod sampler (import it only when dimod is installed).

Modules: ``models`` (the wire models, shared with the service), ``transport`` (the compact
msgpack body), ``problems`` (problem forms -> arrays), ``results`` (``SolveResult``), ``core``
(the I/O-free request/flow logic), ``policy`` (timeouts, polling, retries), ``errors`` (the
exception tree), ``sync_client`` / ``async_client`` (httpx drivers), ``sampler`` (dimod),
``solve_command`` (``spinout solve``).

Example::

    from client import SolverClient
    with SolverClient("http://127.0.0.1:8000", api_key="k") as solver:
        result = solver.solve(Q, "fujitsuDA3", time_limit_sec=2)
        result.best.energy, result.states, result.energies
"""

from __future__ import annotations

from .async_client import AsyncSolverClient
from .core import JobInfo, JobProgress
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    JobFailedError,
    LimitReachedError,
    NotFoundError,
    ProblemError,
    ServerError,
    SolveTimeoutError,
    SpinOutError,
    TransportError,
)
from .models import JobStatus
from .policy import NO_RETRY, PollingPolicy, RetryPolicy, Timeouts
from .problems import CouplingPattern, EncodedProblem, encode_problem
from .results import Solution, SolveResult
from .sync_client import SolverClient

__all__ = [
    "NO_RETRY",
    "APIError",
    "AsyncSolverClient",
    "AuthenticationError",
    "BadRequestError",
    "CouplingPattern",
    "EncodedProblem",
    "JobFailedError",
    "JobInfo",
    "JobProgress",
    "JobStatus",
    "LimitReachedError",
    "NotFoundError",
    "PollingPolicy",
    "ProblemError",
    "RetryPolicy",
    "ServerError",
    "Solution",
    "SolveResult",
    "SolveTimeoutError",
    "SolverClient",
    "SpinOutError",
    "Timeouts",
    "TransportError",
    "encode_problem",
]
