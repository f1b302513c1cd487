"""The DA Web API routes: thin; parsing in service.jobs.parsing, lifecycle in JobManager.

Each route is registered once for all its path versions (``/{version}/...``: v1 and v2 for the
synchronous solve, v2 ... v4 for the job routes; the OpenAPI document lists every version's
path); the app registers the routes on its own router twice: under the configured prefix
(default /da) and without it.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from client.wire.da import (PENDING_STATUSES, CancelRequest, ErrorEnvelope, JobResult, JobStatus,
                            JobStatusList, JobSubmitted, SyncSolveResponse)
from service.jobs.manager import JobManager
from service.jobs.parsing import InvalidRequestError
from service.jobs.records import JobRecord
from service.jobs.solvers import qubo_solution_dict

from .dependencies import (JobSolveRequest, Jobs, Owner, SyncSolveRequest, async_version,
                           sync_version)

__all__ = ["add_da_routes", "json_response"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 401, 404, 413, 415, 429, 503)}
_SOLVE_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/SolveRequest"}}}}}


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json")


def add_da_routes(router: APIRouter, prefix: str = "") -> APIRouter:
    """Register the DA routes on ``router`` under ``prefix`` (the app registers them on its own
    router, bare and under the configured prefix: an included router costs every request a
    second route match)."""

    @router.get(prefix + "/v1/healthcheck", tags=["health"], summary="Liveness: 200 {} when serving")
    async def healthcheck() -> Response:
        return json_response({})

    @router.post(prefix + "/{version}/qubo/solve", tags=["synchronous"], name="solve",
                 dependencies=[Depends(sync_version)],
                 summary="Solve synchronously (v1, v2)", openapi_extra=_SOLVE_BODY,
                 responses={200: {"model": SyncSolveResponse}, **_ERRORS})
    async def solve_sync(owner: Owner, parsed: SyncSolveRequest, jobs: Jobs) -> Response:
        version = str(parsed.api_version)  # the path's, checked by the body's dependency
        async_route = "/v2/async/qubo/solve" + (" with a fujitsuDA2 block" if version == "v1" else "")
        jobs.check_sync(parsed, async_route)
        try:
            reply = await jobs.solve_now(parsed)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        solution = qubo_solution_dict(reply, version, total_seconds=reply.timing.get("total"))
        return json_response({"qubo_solution": solution, "status": JobStatus.DONE.value})

    tag = "asynchronous"
    known = [Depends(async_version)]  # first: an unknown version is a 404 before the key

    @router.post(prefix + "/{version}/async/qubo/solve", tags=[tag], name="submit", dependencies=known,
                 summary="Submit a job (v2, v3, v3c, v4)", openapi_extra=_SOLVE_BODY,
                 responses={200: {"model": JobSubmitted}, **_ERRORS})
    async def submit(owner: Owner, parsed: JobSolveRequest, jobs: Jobs) -> Response:
        version = str(parsed.api_version)  # the path's, checked by the body's dependency
        return json_response({"job_id": jobs.submit(owner, parsed, version)})

    @router.get(prefix + "/{version}/async/jobs", tags=[tag], name="jobs", dependencies=known,
                summary="This key's jobs",
                responses={200: {"model": JobStatusList}, **_ERRORS})
    async def list_jobs(owner: Owner, jobs: Jobs) -> Response:
        return json_response({"job_status_list": [
            {"job_id": r.job_id, "job_status": r.status, "start_time": _iso(r.created_at)}
            for r in jobs.list(owner)]})

    @router.get(prefix + "/{version}/async/jobs/result/{job_id}", tags=[tag], name="result",
                dependencies=known,
                summary="A job's status, or its result when done",
                responses={200: {"model": JobResult}, **_ERRORS})
    async def get_result(job_id: str, owner: Owner, jobs: Jobs) -> Response:
        return json_response(await _body(jobs, jobs.get(owner, job_id)))

    @router.delete(prefix + "/{version}/async/jobs/result/{job_id}", tags=[tag], name="delete",
                   dependencies=known,
                   summary="Remove a finished job (returns it with status Deleted); an "
                           "unfinished job is left alone and its status returned",
                   responses={200: {"model": JobResult}, **_ERRORS})
    async def delete_result(job_id: str, owner: Owner, jobs: Jobs) -> Response:
        record = jobs.get(owner, job_id)
        if record.status in PENDING_STATUSES:
            return json_response({"status": record.status})
        body = await _body(jobs, record, JobStatus.DELETED)
        _, removed = jobs.delete(owner, job_id)
        if not removed:  # finished a moment ago by another request: report what is there
            return json_response({"status": jobs.get(owner, job_id).status})
        return json_response(body)

    @router.post(prefix + "/{version}/async/jobs/cancel", tags=[tag], name="cancel",
                 dependencies=known,
                 summary="Cancel a Waiting job", responses={200: {"model": JobResult}, **_ERRORS})
    async def cancel(payload: CancelRequest, owner: Owner, jobs: Jobs) -> Response:
        return json_response({"status": jobs.cancel(owner, payload.job_id)})

    return router


async def _body(manager: JobManager, record: JobRecord,
                status: JobStatus | None = None) -> dict[str, Any]:
    if record.status == JobStatus.DONE:
        return await run_in_threadpool(manager.result_body, record, status)
    return manager.result_body(record, status)


def _iso(epoch: float) -> str:
    from datetime import datetime, timezone

    # Seconds and a Z: clients parse it with strptime("%Y-%m-%dT%H:%M:%SZ").
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
