"""Request bodies -> ``SolveJob`` under the service's limits, for the routes to inject.

Small bodies are parsed on the event loop (a thread hop costs more than they do); large ones on
a worker thread, at most ``max_parallel_parses`` at once, which bounds their memory.
"""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from client.wire.da import BLOCK_GENERATION, SOLVER_BLOCKS
from client.wire.compact import CONTENT_TYPE
from service.jobs.parsing import (InvalidRequestError, expand_one_hot_groups, parse_compact_request,
                                  parse_da_request, register_pattern)
from service.jobs.patterns import PatternCache
from service.jobs.solve_job import SolveJob

from .errors import ApiError

__all__ = ["BodyParsers", "check_content_type"]

#: DA JSON bodies above this are parsed on a worker thread, keeping the event loop responsive.
INLINE_DA_BYTES = 256 * 1024
#: Compact decoding is zero-copy (np.frombuffer) plus vectorised checks: ~2 ms for 90,000
#: couplings, cheaper inline than a thread hop; only very large bodies go to a worker thread.
INLINE_COMPACT_BYTES = 16 * 1024 * 1024
COMPACT_TYPES = (CONTENT_TYPE, "application/msgpack", "application/octet-stream")


def check_content_type(request: Request, accepted: tuple[str, ...]) -> None:
    """415 for a body declared as something else. A missing Content-Type is accepted (plain
    clients send none); refusing text/plain and forms keeps browsers from posting jobs
    cross-site as CORS "simple requests" when authentication is off."""
    declared = request.headers.get("content-type")
    if declared is None:
        return
    media = declared.split(";", 1)[0].strip().lower()
    if media not in accepted and not (media.startswith("application/") and media.endswith("+json")
                                      and "application/json" in accepted):
        raise ApiError(415, f"unsupported Content-Type {media[:100]!r}; send {accepted[0]}")


class BodyParsers:
    """The DA JSON and compact parsers with the service's term limit and pattern cache;
    ``scan_terms`` is the ``term_scan`` setting (see ``parse_da_request``)."""

    def __init__(self, max_terms: int, max_parallel: int, patterns: PatternCache,
                 scan_terms: bool = True) -> None:
        self.max_terms = max_terms
        self.scan_terms = scan_terms
        self.patterns = patterns
        self._slots = asyncio.Semaphore(max_parallel)

    async def da(self, request: Request, body: bytes, version: str) -> SolveJob:
        """A DA JSON solve body for path ``version``; InvalidRequestError / 415 on bad input."""
        check_content_type(request, ("application/json",))
        if not body:
            raise InvalidRequestError("the request body is empty; send a DA solve request as JSON")
        if len(body) > INLINE_DA_BYTES:
            async with self._slots:
                return await run_in_threadpool(parse_da_request, body, version, self.max_terms,
                                               scan_terms=self.scan_terms)
        return parse_da_request(body, version, self.max_terms, scan_terms=self.scan_terms)

    async def compact(self, request: Request, body: bytes) -> SolveJob:
        """A compact msgpack body, its pattern resolved or registered, its one-hot groups
        expanded and its size checked against its solver's generation."""
        check_content_type(request, COMPACT_TYPES)
        if not body:
            raise InvalidRequestError("the request body is empty")
        if len(body) > INLINE_COMPACT_BYTES:
            async with self._slots:
                req = await run_in_threadpool(parse_compact_request, body, patterns=self.patterns,
                                              expand_one_hot=False)
        else:
            req = parse_compact_request(body, patterns=self.patterns, expand_one_hot=False)
        if req.problem.pattern_key is not None and req.pattern is None:
            await run_in_threadpool(register_pattern, req, self.patterns)  # once per pattern
        expand_one_hot_groups(req)  # after registering: the penalties take it off its pattern
        if req.solver not in SOLVER_BLOCKS:
            raise InvalidRequestError(f"unknown solver {req.solver!r}")
        gen = BLOCK_GENERATION[req.solver]
        if req.problem.num_variables > gen.max_bits:
            raise InvalidRequestError(f"the problem has {req.problem.num_variables} variables; "
                               f"{req.solver} accepts at most {gen.max_bits:,}")
        terms = req.problem.rows.size
        if terms > self.max_terms:
            raise InvalidRequestError(f"the problem has {terms:,} couplings; the limit is "
                               f"{self.max_terms:,}")
        if req.api_version is None:
            req.api_version = gen.versions[0]
        return req
