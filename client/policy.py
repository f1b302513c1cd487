"""Small value objects for how long to wait, how often to poll and when to retry.

They hold no state: the clients ask them for the next delay, so one policy object can be shared
by many clients and threads.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

#: HTTP statuses worth retrying: the per-key job limit (a job may finish meanwhile) and
#: "service unavailable". Every other 4xx/5xx will not change by asking again.
RETRY_STATUSES: frozenset[int] = frozenset({429, 503})


@dataclass(frozen=True)
class Timeouts:
    """Network timeouts in seconds for one HTTP request (not for a whole solve; see ``wait``).

    ``read`` must cover a synchronous solve, so it is generous; ``connect`` is short so a dead
    host is noticed quickly.
    """

    connect: float = 5.0
    read: float = 300.0
    write: float = 60.0
    pool: float = 10.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "pool"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Timeouts.{name} must be positive")


@dataclass(frozen=True)
class PollingPolicy:
    """How to poll an asynchronous job: start fast, back off geometrically to ``max_interval``.

    Attributes:
        initial: first delay after submitting (s).
        factor: multiplier per poll.
        max_interval: the longest delay between two polls (s).
        timeout: give up waiting (``SolveTimeoutError``) after this many seconds; ``None`` waits
            forever. The job itself keeps running on the service.
    """

    initial: float = 0.02
    factor: float = 1.5
    max_interval: float = 2.0
    timeout: float | None = 3600.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.max_interval <= 0:
            raise ValueError("PollingPolicy intervals must be positive")
        if self.factor < 1:
            raise ValueError("PollingPolicy.factor must be >= 1")
        if self.timeout is not None and self.timeout < 0:
            raise ValueError("PollingPolicy.timeout must be >= 0 or None")

    def delay(self, poll: int) -> float:
        """Seconds to sleep before poll number ``poll`` (0-based)."""
        return min(self.max_interval, self.initial * self.factor ** poll)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter for transient failures only.

    Retried: connection errors and timeouts, and the statuses in ``statuses`` (429, 503). A 400,
    401, 404 or 500 is never retried: asking again cannot change the answer. A ``Retry-After``
    header from the server is honoured, capped at ``max_delay``. A connection that breaks after
    a submit was sent may, rarely, leave a job on the service that the retry then duplicates;
    ``list_jobs`` shows it.
    """

    max_attempts: int = 5
    base_delay: float = 0.1
    max_delay: float = 10.0
    statuses: frozenset[int] = field(default=RETRY_STATUSES)
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must be >= 0")

    def should_retry_status(self, status_code: int, attempt: int) -> bool:
        """Whether a reply with ``status_code`` on 0-based ``attempt`` deserves another try."""
        return status_code in self.statuses and attempt + 1 < self.max_attempts

    def should_retry_error(self, attempt: int) -> bool:
        """Whether a connection error on 0-based ``attempt`` deserves another try."""
        return attempt + 1 < self.max_attempts

    def delay(self, attempt: int, retry_after: str | None = None,
              rng: random.Random | None = None) -> float:
        """Seconds to wait after failed 0-based ``attempt``."""
        # Annotated: typeshed types int ** int as Any (a negative exponent gives a float).
        ceiling: float = min(self.max_delay, self.base_delay * 2 ** attempt)
        if retry_after:
            try:
                return min(self.max_delay, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        if not self.jitter:
            return ceiling
        if rng is None:
            return random.uniform(0.0, ceiling)
        return rng.uniform(0.0, ceiling)


NO_RETRY = RetryPolicy(max_attempts=1)
