"""What the routes need, as FastAPI dependencies with ``Annotated`` aliases.

The app keeps one ``ServiceState`` (built by ``create_app``; the job manager set when the lifespan
starts). Routes never read ``request.app.state`` themselves: they declare ``Owner``, ``Jobs``
and the parsed body (``SyncSolveRequest``, ``JobSolveRequest``,
``CompactSolveRequest``: read under the body cap, then parsed), so a test or a deployment
replaces any of them with ``app.dependency_overrides``. Each is flat (no sub-dependencies) and
``async``: FastAPI resolves every dependency of every request anew (~15 us each here), and runs a
plain ``def`` one on its thread pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from starlette.exceptions import HTTPException

from service.jobs.solve_job import SolveJob
from service.jobs.manager import JobManager

from .auth import authenticate
from .body_parsing import BodyParsers
from .errors import ApiError
from .settings import Settings

__all__ = ["ASYNC_VERSIONS", "SYNC_VERSIONS", "AsyncVersionPath",
           "CompactSolveRequest", "JobSolveRequest", "Jobs", "Owner", "ServiceState",
           "SyncSolveRequest", "SyncVersionPath", "async_version", "checked_version", "read_body",
           "sync_version"]

#: Path versions of the DA API: synchronous solves (v1, v2) and the asynchronous job routes.
SYNC_VERSIONS = ("v1", "v2")
ASYNC_VERSIONS = ("v2", "v3", "v3c", "v4")


@dataclass
class ServiceState:
    """Everything the routes share, built once per app (``app.state.service``)."""

    settings: Settings
    parsers: BodyParsers
    #: The accepted API keys, encoded once for the constant-time comparison.
    api_keys: list[bytes]
    #: Set when the lifespan has started the store and the runner.
    jobs: JobManager | None = None


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


async def job_manager(request: Request) -> JobManager:
    jobs = _state(request).jobs
    if jobs is None:  # a request that raced the start-up
        raise HTTPException(503, "the service is starting", headers={"Retry-After": "1"})
    return jobs


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with a 413 as soon as it exceeds ``limit``: at once when the declared
    Content-Length does, else when the bytes read do."""
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


async def sync_version(version: SyncVersionPath) -> str:
    """The ``{version}`` of a synchronous route; a route-level dependency, so an unknown version
    is a 404 before authentication, as for any unknown path."""
    return checked_version(version, SYNC_VERSIONS)


async def async_version(version: AsyncVersionPath) -> str:
    """The ``{version}`` of a job route (see ``sync_version``)."""
    return checked_version(version, ASYNC_VERSIONS)


async def sync_solve_request(request: Request, version: SyncVersionPath) -> SolveJob:
    """The body of ``POST /{version}/qubo/solve`` (the version checked by ``sync_version``),
    read under the body cap and parsed."""
    state = _state(request)
    body = await read_body(request, state.settings.max_body_bytes)
    return await state.parsers.da(request, body, version)


async def job_solve_request(request: Request, version: AsyncVersionPath) -> SolveJob:
    """The body of ``POST /{version}/async/qubo/solve`` (the version checked by
    ``async_version``), read under the body cap and parsed."""
    state = _state(request)
    body = await read_body(request, state.settings.max_body_bytes)
    return await state.parsers.da(request, body, version)


async def compact_solve_request(request: Request) -> SolveJob:
    """A compact msgpack body, read under the body cap and parsed."""
    state = _state(request)
    body = await read_body(request, state.settings.max_body_bytes)
    return await state.parsers.compact(request, body)


def checked_version(version: str, accepted: tuple[str, ...]) -> str:
    """One of ``accepted``, else 404 as for any unknown path (a route serves all its versions)."""
    if version not in accepted:
        raise HTTPException(404)
    return version


SyncVersionPath = Annotated[str, Path(json_schema_extra={"enum": list(SYNC_VERSIONS)})]
AsyncVersionPath = Annotated[str, Path(json_schema_extra={"enum": list(ASYNC_VERSIONS)})]
Jobs = Annotated[JobManager, Depends(job_manager)]
Owner = Annotated[str, Depends(authenticate)]
# Declare these after ``Owner``: dependencies resolve in order, so a stranger's body is never read.
SyncSolveRequest = Annotated[SolveJob, Depends(sync_solve_request)]
JobSolveRequest = Annotated[SolveJob, Depends(job_solve_request)]
CompactSolveRequest = Annotated[SolveJob, Depends(compact_solve_request)]
