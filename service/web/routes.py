"""The DA Web API routes: thin; parsing in service.jobs.parsing, lifecycle in JobManager.

Registered once per path version (v1 ... v4) so the OpenAPI document lists every route, and
included twice by the app: under the configured prefix (default /da) and without it.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from client.models import (CancelRequest, ErrorEnvelope, JobResult, JobStatus, JobStatusList,
                           JobSubmitted, SyncSolveResponse)
from service.jobs.parsing import ProblemError, parse_da_request
from service.jobs.solvers import qubo_solution_dict

from .auth import authenticate
from .errors import ApiError

__all__ = ["build_da_router", "check_content_type", "json_response", "read_body"]

SYNC_VERSIONS = ("v1", "v2")
ASYNC_VERSIONS = ("v2", "v3", "v3c", "v4")
#: Bodies above this are parsed on a worker thread, keeping the event loop responsive.
INLINE_PARSE_BYTES = 256 * 1024

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 401, 404, 413, 415, 429, 503)}
_SOLVE_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/SolveRequest"}}}}}


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json")


async def read_body(request: Request) -> bytes:
    """The body, refusing more than the configured cap with a 413 as soon as it is exceeded."""
    limit = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    # "Connection: close" makes uvicorn drop the connection after the 413 instead of reading
    # (and discarding) the rest of an oversized upload.
    close = {"Connection": "close"}
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the request body is {int(declared):,} bytes; the limit is {limit:,}", close)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the request body exceeds the limit of {limit:,} bytes", close)
        chunks.append(chunk)
    return b"".join(chunks)


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


async def parse_body(request: Request, version: str) -> Any:
    check_content_type(request, ("application/json",))
    body = await read_body(request)
    if not body:
        raise ProblemError("the request body is empty; send a DA solve request as JSON")
    max_terms = request.app.state.settings.max_terms
    if len(body) > INLINE_PARSE_BYTES:
        async with request.app.state.parse_slots:  # bounds the memory of concurrent big parses
            return await run_in_threadpool(parse_da_request, body, version, max_terms)
    return parse_da_request(body, version, max_terms)


def build_da_router() -> APIRouter:
    router = APIRouter()

    @router.get("/v1/healthcheck", tags=["health"], summary="Liveness: 200 {} when serving")
    async def healthcheck() -> Response:
        return json_response({})

    for version in SYNC_VERSIONS:
        router.add_api_route(f"/{version}/qubo/solve", _sync_endpoint(version), methods=["POST"],
                             tags=[f"{version} synchronous"], summary=f"Solve synchronously ({version})",
                             responses={200: {"model": SyncSolveResponse}, **_ERRORS},
                             openapi_extra=_SOLVE_BODY, name=f"{version}_solve")

    for version in ASYNC_VERSIONS:
        tag = f"{version} asynchronous"

        submit = _submit_endpoint(version)

        async def list_jobs(request: Request, owner: str = Depends(authenticate)) -> Response:
            records = request.app.state.jobs.list(owner)
            return json_response({"job_status_list": [
                {"job_id": r.job_id, "job_status": r.status, "start_time": _iso(r.created_at)}
                for r in records]})

        async def get_result(job_id: str, request: Request, owner: str = Depends(authenticate)) -> Response:
            manager = request.app.state.jobs
            record = manager.get(owner, job_id)
            return json_response(await _body(manager, record))

        async def delete_result(job_id: str, request: Request,
                                owner: str = Depends(authenticate)) -> Response:
            manager = request.app.state.jobs
            record = manager.get(owner, job_id)
            if record.status in (JobStatus.WAITING.value, JobStatus.RUNNING.value):
                return json_response({"status": record.status})
            body = await _body(manager, record, JobStatus.DELETED.value)
            _, removed = manager.delete(owner, job_id)
            if not removed:  # finished a moment ago by another request: report what is there
                return json_response({"status": manager.get(owner, job_id).status})
            return json_response(body)

        async def cancel(payload: CancelRequest, request: Request,
                         owner: str = Depends(authenticate)) -> Response:
            status = request.app.state.jobs.cancel(owner, payload.job_id)
            return json_response({"status": status})

        base = f"/{version}/async"
        router.add_api_route(f"{base}/qubo/solve", submit, methods=["POST"], tags=[tag],
                             summary=f"Submit a job ({version})", name=f"{version}_submit",
                             responses={200: {"model": JobSubmitted}, **_ERRORS}, openapi_extra=_SOLVE_BODY)
        router.add_api_route(f"{base}/jobs", list_jobs, methods=["GET"], tags=[tag], name=f"{version}_jobs",
                             summary="This key's jobs", responses={200: {"model": JobStatusList}, **_ERRORS})
        router.add_api_route(f"{base}/jobs/result/{{job_id}}", get_result, methods=["GET"], tags=[tag],
                             name=f"{version}_result", summary="A job's status, or its result when done",
                             responses={200: {"model": JobResult}, **_ERRORS})
        router.add_api_route(f"{base}/jobs/result/{{job_id}}", delete_result, methods=["DELETE"],
                             tags=[tag], name=f"{version}_delete",
                             summary="Remove a finished job (returns it with status Deleted); an "
                                     "unfinished job is left alone and its status returned",
                             responses={200: {"model": JobResult}, **_ERRORS})
        router.add_api_route(f"{base}/jobs/cancel", cancel, methods=["POST"], tags=[tag],
                             name=f"{version}_cancel", summary="Cancel a Waiting job",
                             responses={200: {"model": JobResult}, **_ERRORS})
    return router


def _sync_endpoint(version: str) -> Any:
    async_route = "/v2/async/qubo/solve" + (" with a fujitsuDA2 block" if version == "v1" else "")

    async def solve_sync(request: Request, owner: str = Depends(authenticate)) -> Response:
        manager = request.app.state.jobs
        parsed = await parse_body(request, version)
        manager.check_sync(parsed, async_route)
        try:
            reply = await manager.solve_now(parsed)
        except ValueError as exc:
            raise ProblemError(str(exc)) from None
        solution = qubo_solution_dict(reply, version, total_seconds=reply.timing.get("total"))
        return json_response({"qubo_solution": solution, "status": JobStatus.DONE.value})

    return solve_sync


def _submit_endpoint(version: str) -> Any:
    async def submit(request: Request, owner: str = Depends(authenticate)) -> Response:
        parsed = await parse_body(request, version)
        job_id = request.app.state.jobs.submit(owner, parsed, version)
        return json_response({"job_id": job_id})

    return submit


async def _body(manager: Any, record: Any, status: str | None = None) -> dict[str, Any]:
    if record.status == JobStatus.DONE.value:
        return await run_in_threadpool(manager.result_body, record, status)
    return manager.result_body(record, status)


def _iso(epoch: float) -> str:
    from datetime import datetime, timezone

    # Seconds and a Z: clients parse it with strptime("%Y-%m-%dT%H:%M:%SZ").
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
