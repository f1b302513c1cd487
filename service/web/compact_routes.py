"""SpinOut's compact routes: the same solves with a msgpack body of numpy arrays.

``POST /spinout/v1/solve`` answers synchronously with a msgpack reply; ``POST
/spinout/v1/async/solve`` returns ``{"job_id"}`` (the job is also visible to the DA job routes);
``GET /spinout/v1/async/jobs/result/{job_id}`` returns the msgpack reply (``status`` Waiting /
Running / Done / Error / Canceled). Format: client.transport. The size limit is the solver
block's generation's (1,024 / 8,192 / 100,000 bits).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from client.models import BLOCK_GENERATION, SOLVER_BLOCKS, ErrorEnvelope, JobStatus, JobSubmitted
from client.transport import CONTENT_TYPE, CompactReply, CompactRequest, encode_reply
from service.jobs.parsing import (ProblemError, expand_one_hot_groups, parse_compact_request,
                                  register_pattern)

from .dependencies import AppSettings, Jobs, Owner, ParseSlots, Patterns, RequestBody
from .routes import check_content_type, json_response

__all__ = ["build_compact_router"]

_BODY = {"requestBody": {"required": True, "description": "msgpack map, see client.transport: "
                         "format, solver, parameters, num_variables, constant, linear, rows, cols, "
                         "values (arrays as {dtype, shape, data}); optional pattern_key: rows and "
                         "cols may then be nil once the service has seen them (409 if it has not)",
                         "content": {CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}}}}
_REPLY: dict[int | str, dict[str, Any]] = {200: {"description": "msgpack reply (client.transport.decode_reply): status, packed states, "
                "energies, frequencies, timing", "content": {CONTENT_TYPE: {"schema": {
                    "type": "string", "format": "binary"}}}},
          **{code: {"model": ErrorEnvelope} for code in (400, 401, 404, 409, 413, 415, 429, 503)}}


COMPACT_INLINE_BYTES = 16 * 1024 * 1024


def _msgpack(reply: CompactReply) -> Response:
    return Response(encode_reply(reply), media_type=CONTENT_TYPE)


async def _parse(request: Request, body: bytes, settings: AppSettings, patterns: Patterns,
                 slots: ParseSlots) -> CompactRequest:
    check_content_type(request, (CONTENT_TYPE, "application/msgpack", "application/octet-stream"))
    if not body:
        raise ProblemError("the request body is empty")
    # Decoding is zero-copy (np.frombuffer) plus vectorised checks: ~2 ms for 90,000 couplings,
    # cheaper inline than a thread hop; only very large bodies go to a worker thread.
    if len(body) > COMPACT_INLINE_BYTES:
        async with slots:
            req = await run_in_threadpool(parse_compact_request, body, patterns=patterns,
                                          expand_one_hot=False)
    else:
        req = parse_compact_request(body, patterns=patterns, expand_one_hot=False)
    if req.problem.pattern_key is not None and req.problem.pattern is None:
        await run_in_threadpool(register_pattern, req, patterns)  # once per pattern
    expand_one_hot_groups(req)  # after registering: the penalties take the problem off its pattern
    if req.solver not in SOLVER_BLOCKS:
        raise ProblemError(f"unknown solver {req.solver!r}")
    gen = BLOCK_GENERATION[req.solver]
    if req.problem.num_variables > gen.max_bits:
        raise ProblemError(f"the problem has {req.problem.num_variables} variables; {req.solver} "
                           f"accepts at most {gen.max_bits:,}")
    terms = req.problem.rows.size
    if terms > settings.max_terms:
        raise ProblemError(f"the problem has {terms:,} couplings; the limit is "
                           f"{settings.max_terms:,}")
    if req.api_version is None:
        req.api_version = gen.versions[0]
    return req


def build_compact_router() -> APIRouter:
    router = APIRouter(prefix="/spinout/v1", tags=["SpinOut compact transport"])

    @router.post("/solve", summary="Solve synchronously, msgpack in and out", responses=_REPLY,
                 openapi_extra=_BODY)
    async def solve(request: Request, owner: Owner, body: RequestBody, jobs: Jobs,
                    settings: AppSettings, patterns: Patterns, slots: ParseSlots) -> Response:
        req = await _parse(request, body, settings, patterns, slots)
        jobs.check_sync(req, "/spinout/v1/async/solve")
        try:
            reply = await jobs.solve_now(req)
        except ValueError as exc:
            raise ProblemError(str(exc)) from None
        return _msgpack(reply)

    @router.post("/async/solve", summary="Submit a job, msgpack in", openapi_extra=_BODY,
                 responses={200: {"model": JobSubmitted}, **_REPLY})
    async def submit(request: Request, owner: Owner, body: RequestBody, jobs: Jobs,
                     settings: AppSettings, patterns: Patterns, slots: ParseSlots) -> Response:
        req = await _parse(request, body, settings, patterns, slots)
        job_id = jobs.submit(owner, req, req.api_version or "v2", kind="compact")
        return json_response({"job_id": job_id})

    @router.get("/async/jobs/result/{job_id}", summary="A job's msgpack reply", responses=_REPLY)
    async def result(job_id: str, owner: Owner, jobs: Jobs) -> Response:
        record = jobs.get(owner, job_id)
        if record.status == JobStatus.DONE.value:
            reply: Any = await run_in_threadpool(jobs.reply, record)
            if reply is not None:
                return _msgpack(reply)
        return _msgpack(CompactReply(status=record.status, job_id=job_id, message=record.message))

    return router
