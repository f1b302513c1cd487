"""The client's exception tree: every failure a caller can see is a ``SpinOutError``.

::

    SpinOutError
    ├── ProblemError            the problem given to the client cannot be encoded (also a ValueError)
    ├── TransportError          no HTTP answer: connection refused/reset, read timeout (after retries)
    ├── SolveTimeoutError       a job did not finish within the wait; carries ``job_id`` to resume
    ├── JobFailedError          the service ran the job and reports "Error" (or it was cancelled)
    └── APIError                the service answered with an HTTP error (the DA error envelope)
        ├── BadRequestError     400, 413, 422: the request is wrong and retrying will not help
        ├── AuthenticationError 401, 403: missing, conflicting or unknown API key
        ├── NotFoundError       404: unknown route or job id (or a job of another key)
        ├── LimitReachedError   429: the per-key job limit; retried, raised when retries run out
        └── ServerError         5xx: the service failed; 503 is retried first

``APIError`` keeps the status code, the envelope's title and message, and the job id when the
request concerned one, so a log line says what the server said.
"""

from __future__ import annotations

from typing import Any


class SpinOutError(Exception):
    """Root of every error raised by the SpinOut client."""

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.job_id = job_id


class ProblemError(SpinOutError, ValueError):
    """The problem (matrix, dict, terms, BQM) or a parameter cannot be turned into a request."""


class TransportError(SpinOutError):
    """No usable HTTP answer: the connection failed or timed out, after the retries allowed."""


class SolveTimeoutError(SpinOutError):
    """The job was still unfinished when the wait ran out. The job keeps running on the service.

    Resume with ``client.wait(err.job_id)`` (or ``client.result(err.job_id)`` to look once), or
    give it up with ``client.cancel(err.job_id)`` / ``client.delete(err.job_id)``.
    """

    def __init__(self, job_id: str, waited: float, last_status: str) -> None:
        super().__init__(
            f"job {job_id} was still {last_status} after waiting {waited:.1f} s; it keeps running on "
            f"the service: resume with client.wait({job_id!r}) or give it up with "
            f"client.cancel({job_id!r})",
            job_id=job_id,
        )
        self.waited = waited
        self.last_status = last_status


class JobFailedError(SpinOutError):
    """The service finished the job without a solution: status "Error" (with its message) or
    "Canceled"."""

    def __init__(self, message: str, *, job_id: str | None, status: str) -> None:
        super().__init__(message, job_id=job_id)
        self.status = status


class APIError(SpinOutError):
    """The service answered with an HTTP error status."""

    def __init__(self, status_code: int, message: str, *, title: str = "", job_id: str | None = None,
                 body: Any = None) -> None:
        text = f"HTTP {status_code}" + (f" {title}" if title else "") + f": {message}"
        if job_id:
            text += f" (job {job_id})"
        super().__init__(text, job_id=job_id)
        self.status_code = status_code
        self.title = title
        self.server_message = message
        self.body = body


class BadRequestError(APIError):
    """400/413/422: the request is malformed or out of range; the message names the field."""


class AuthenticationError(APIError):
    """401/403: the API key is missing, duplicated or not accepted."""


class NotFoundError(APIError):
    """404: no such route or job (jobs are visible only to the key that created them)."""


class LimitReachedError(APIError):
    """429: this key already holds the service's maximum number of jobs; delete finished ones."""


class ServerError(APIError):
    """5xx: the service failed (503: overloaded or shutting down)."""


def error_class_for(status_code: int) -> type[APIError]:
    """The exception class for an HTTP error status."""
    if status_code in (401, 403):
        return AuthenticationError
    if status_code == 404:
        return NotFoundError
    if status_code == 429:
        return LimitReachedError
    if status_code >= 500:
        return ServerError
    if 400 <= status_code < 500:
        return BadRequestError
    return APIError
