"""What the routes need, as FastAPI dependencies with ``Annotated`` aliases.

The app keeps one ``ServiceState`` (built by ``create_app``; the job manager set when the lifespan
starts). Routes never read ``request.app.state`` themselves: they declare ``Jobs``,
``AppSettings``, ``Owner``... so a test or a deployment replaces any of them with
``app.dependency_overrides``. Every dependency is ``async``: FastAPI runs a plain ``def`` one on
its thread pool, a thread hop per request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Path, Request
from starlette.exceptions import HTTPException

from service.jobs.manager import JobManager
from service.jobs.patterns import PatternCache

from .auth import authenticate
from .errors import ApiError
from .observability import Metrics
from .settings import Settings

__all__ = ["ASYNC_VERSIONS", "SYNC_VERSIONS", "AppSettings", "AsyncVersion", "Jobs", "Owner",
           "ParseSlots", "Patterns", "RequestBody", "ServiceState", "SyncVersion", "service_state"]

#: Path versions of the DA API: synchronous solves (v1, v2) and the asynchronous job routes.
SYNC_VERSIONS = ("v1", "v2")
ASYNC_VERSIONS = ("v2", "v3", "v3c", "v4")


@dataclass
class ServiceState:
    """Everything the routes share, built once per app."""

    settings: Settings
    metrics: Metrics
    patterns: PatternCache
    #: Bounds the memory of large bodies parsed at once.
    parse_slots: asyncio.Semaphore
    #: The accepted API keys, encoded once for the constant-time comparison.
    api_keys: list[bytes] = field(default_factory=list)
    #: Set when the lifespan has started the store and the runner.
    jobs: JobManager | None = None


async def service_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(service_state)]


async def app_settings(state: State) -> Settings:
    return state.settings


async def job_manager(state: State) -> JobManager:
    if state.jobs is None:  # a request that raced the start-up
        raise HTTPException(503, "the service is starting", headers={"Retry-After": "1"})
    return state.jobs


async def pattern_cache(state: State) -> PatternCache:
    return state.patterns


async def parse_slots(state: State) -> asyncio.Semaphore:
    return state.parse_slots


def _checked(version: str, accepted: tuple[str, ...]) -> str:
    """One of ``accepted``, else 404 as for any unknown path (a route serves all its versions)."""
    if version not in accepted:
        raise HTTPException(404)
    return version


async def sync_version(
        version: Annotated[str, Path(json_schema_extra={"enum": list(SYNC_VERSIONS)})]) -> str:
    return _checked(version, SYNC_VERSIONS)


async def async_version(
        version: Annotated[str, Path(json_schema_extra={"enum": list(ASYNC_VERSIONS)})]) -> str:
    return _checked(version, ASYNC_VERSIONS)


async def request_body(request: Request, settings: Annotated[Settings, Depends(app_settings)]) -> bytes:
    """The body, refused with a 413 as soon as it exceeds ``max_body_bytes``: at once when the
    declared Content-Length does, else when the bytes read do."""
    limit = settings.max_body_bytes
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


AppSettings = Annotated[Settings, Depends(app_settings)]
#: Declare it after ``Owner``: dependencies resolve in order, so a stranger's body is never read.
RequestBody = Annotated[bytes, Depends(request_body)]
Jobs = Annotated[JobManager, Depends(job_manager)]
Patterns = Annotated[PatternCache, Depends(pattern_cache)]
ParseSlots = Annotated[asyncio.Semaphore, Depends(parse_slots)]
Owner = Annotated[str, Depends(authenticate)]
SyncVersion = Annotated[str, Depends(sync_version)]
AsyncVersion = Annotated[str, Depends(async_version)]
