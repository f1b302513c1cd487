"""SpinOut's compact routes: the same solves with a msgpack body of numpy arrays.

``POST /spinout/v1/solve`` answers synchronously with a msgpack reply; ``POST
/spinout/v1/async/solve`` returns ``{"job_id"}`` (the job is also visible to the DA job routes);
``GET /spinout/v1/async/jobs/result/{job_id}`` returns the msgpack reply (``status`` Waiting /
Running / Done / Error / Canceled). Format: client.wire.compact. The size limit is the solver
block's generation's (1,024 / 8,192 / 100,000 bits).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from client.wire.da import ErrorEnvelope, JobStatus, JobSubmitted
from client.wire.compact import CONTENT_TYPE, CompactReply, encode_reply
from service.jobs.parsing import InvalidRequestError

from .dependencies import CompactSolveRequest, Jobs, Owner
from .routes import json_response

__all__ = ["add_compact_routes"]

_TAGS: list[str | Enum] = ["SpinOut compact transport"]

_BODY = {"requestBody": {"required": True, "description": "msgpack map, see client.wire.compact: "
                         "format, solver, parameters, num_variables, constant, linear, rows, cols, "
                         "values (arrays as {dtype, shape, data}); optional pattern_key: rows and "
                         "cols may then be nil once the service has seen them (409 if it has not)",
                         "content": {CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}}}}
_REPLY: dict[int | str, dict[str, Any]] = {200: {"description": "msgpack reply (client.wire.compact.decode_reply): status, packed states, "
                "energies, frequencies, timing", "content": {CONTENT_TYPE: {"schema": {
                    "type": "string", "format": "binary"}}}},
          **{code: {"model": ErrorEnvelope} for code in (400, 401, 404, 409, 413, 415, 429, 503)}}


def _msgpack(reply: CompactReply) -> Response:
    return Response(encode_reply(reply), media_type=CONTENT_TYPE)


def add_compact_routes(router: APIRouter) -> APIRouter:
    """Register the compact routes on ``router`` (the app's own, as for the DA routes)."""
    prefix = "/spinout/v1"

    @router.post(prefix + "/solve", tags=_TAGS, responses=_REPLY,
                 summary="Solve synchronously, msgpack in and out",
                 openapi_extra=_BODY)
    async def solve(owner: Owner, req: CompactSolveRequest, jobs: Jobs) -> Response:
        jobs.check_sync(req, "/spinout/v1/async/solve")
        try:
            reply = await jobs.solve_now(req)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        return _msgpack(reply)

    @router.post(prefix + "/async/solve", tags=_TAGS, summary="Submit a job, msgpack in",
                 openapi_extra=_BODY,
                 responses={200: {"model": JobSubmitted}, **_REPLY})
    async def submit(owner: Owner, req: CompactSolveRequest, jobs: Jobs) -> Response:
        job_id = jobs.submit(owner, req, req.api_version or "v2", kind="compact")
        return json_response({"job_id": job_id})

    @router.get(prefix + "/async/jobs/result/{job_id}", tags=_TAGS,
                summary="A job's msgpack reply", responses=_REPLY)
    async def result(job_id: str, owner: Owner, jobs: Jobs) -> Response:
        record = jobs.get(owner, job_id)
        if record.status == JobStatus.DONE.value:
            reply: Any = await run_in_threadpool(jobs.reply, record)
            if reply is not None:
                return _msgpack(reply)
        return _msgpack(CompactReply(status=record.status, job_id=job_id, message=record.message))

    return router
