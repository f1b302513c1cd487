"""Domain errors -> HTTP, in one place, always answered with the DA error envelope.

``{"error": {"code", "title", "message"}}``. A job store that cannot answer (disk full,
Redis down) is a 503 with Retry-After, not a 500. FastAPI's own 422 for a malformed body becomes a
400 (the DA's code for bad input); an unexpected exception is a logged 500 without internals.
"""

from __future__ import annotations

import logging
import sqlite3

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from client.wire.da import error_title
from client.wire.compact import CompactFormatError
from service.jobs.manager import JobNotFoundError, SyncSolveTimeout
from service.jobs.parsing import InvalidRequestError
from service.jobs.patterns import UnknownPatternError
from service.jobs.records import JobLimitError

__all__ = ["ApiError", "error_response", "install_error_handlers"]

log = logging.getLogger("spinout.web")


class ApiError(Exception):
    """An HTTP error with the DA envelope."""

    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.headers = code, message, headers


def error_response(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"code": code, "title": error_title(code), "message": message}}
    return Response(orjson.dumps(body), status_code=code, media_type="application/json", headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> Response:
        return error_response(exc.code, exc.message, exc.headers)

    @app.exception_handler(InvalidRequestError)
    async def _problem(request: Request, exc: InvalidRequestError) -> Response:
        return error_response(400, str(exc))

    @app.exception_handler(CompactFormatError)
    async def _transport(request: Request, exc: CompactFormatError) -> Response:
        return error_response(400, str(exc))

    @app.exception_handler(UnknownPatternError)
    async def _pattern(request: Request, exc: UnknownPatternError) -> Response:
        return error_response(409, str(exc.args[0]))

    @app.exception_handler(JobNotFoundError)
    async def _missing(request: Request, exc: JobNotFoundError) -> Response:
        return error_response(404, f"job {exc.args[0]} was not found")

    @app.exception_handler(SyncSolveTimeout)
    async def _timeout(request: Request, exc: SyncSolveTimeout) -> Response:
        return error_response(504, f"the solve did not finish within the request timeout of "
                                   f"{exc.args[0]:g} s; use the asynchronous routes for long solves")

    @app.exception_handler(JobLimitError)
    async def _limit(request: Request, exc: JobLimitError) -> Response:
        return error_response(429, "Exceed limit of number of request.")

    @app.exception_handler(sqlite3.Error)
    async def _sqlite(request: Request, exc: sqlite3.Error) -> Response:
        log.warning("job store error", extra={"error": f"{exc.__class__.__name__}: {exc}"})
        return error_response(503, f"the job store cannot take this request now ({exc}); "
                                   "reads still work, retry later", {"Retry-After": "10"})

    @app.exception_handler(RedisError)
    async def _redis(request: Request, exc: RedisError) -> Response:
        log.warning("job store error", extra={"error": f"{exc.__class__.__name__}: {exc}"})
        return error_response(503, "the job store (Redis) is unavailable; retry later",
                              {"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
            parts.append(f"{loc or 'body'}: {err.get('msg')}")
        return error_response(400, "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}"
        return error_response(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal server error; the request id in the logs has details")
