"""Retries against a real loopback HTTP server: 503/429 and broken connections only."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from client import (AsyncSolverClient, BadRequestError, LimitReachedError, RetryPolicy, ServerError,
                    SolverClient, Timeouts, TransportError)

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


def test_503_twice_then_200_is_retried(scripted: tuple[str, Any]) -> None:
    url, app = scripted
    app.reset([503, 503, 200])
    with SolverClient(url, api_key="k1", retry=FAST) as client:
        assert client.healthcheck() is True
    assert len(app.requests) == 3
    assert all(h["x-api-key"] == "k1" for _, _, h in app.requests)


def test_async_client_retries_the_same_way(scripted: tuple[str, Any]) -> None:
    url, app = scripted
    app.reset([503, 429, 200], body={"job_status_list": [
        {"job_id": "a", "job_status": "Done", "start_time": "2026-01-01T00:00:00Z"}]})

    async def go() -> list:
        async with AsyncSolverClient(url, retry=FAST) as client:
            return await client.list_jobs()

    jobs = asyncio.run(go())
    assert [(j.job_id, j.status) for j in jobs] == [("a", "Done")]
    assert len(app.requests) == 3
    assert app.requests[-1][:2] == ("GET", "/v3/async/jobs")


def test_429_retried_until_attempts_run_out(scripted: tuple[str, Any]) -> None:
    url, app = scripted
    app.reset([429])
    with SolverClient(url, retry=FAST) as client, pytest.raises(LimitReachedError, match="scripted 429"):
        client.list_jobs()
    assert len(app.requests) == FAST.max_attempts


@pytest.mark.parametrize("status, cls", [(500, ServerError), (400, BadRequestError), (502, ServerError)])
def test_other_errors_are_not_retried(scripted: tuple[str, Any], status: int, cls: type) -> None:
    url, app = scripted
    app.reset([status, 200])
    with SolverClient(url, retry=FAST) as client, pytest.raises(cls):
        client.status("job-1")
    assert len(app.requests) == 1


def test_connection_refused_becomes_transport_error(dead_url: str) -> None:
    url = dead_url
    start = time.monotonic()
    with SolverClient(url, retry=FAST) as client, pytest.raises(TransportError, match="healthcheck") as info:
        client.healthcheck()
    assert info.value.__cause__ is not None
    assert time.monotonic() - start < 5


def test_keep_alive_reuses_one_connection(scripted: tuple[str, Any]) -> None:
    url, app = scripted
    app.reset([200])
    with SolverClient(url) as client:
        for _ in range(5):
            client.healthcheck()
    assert len(app.peers) == 5
    assert len(set(app.peers)) == 1  # one client socket carried all five requests


def test_read_timeout_is_not_retried_and_says_what_to_do(scripted: tuple[str, Any]) -> None:
    """A slow answer is not a transient failure: re-sending a long synchronous solve repeats it."""
    url, app = scripted
    app.reset([200])
    app.delay = 0.5
    try:
        with SolverClient(url, retry=FAST, timeouts=Timeouts(read=0.1)) as client, \
                pytest.raises(TransportError, match="mode='async'"):
            client.healthcheck()
    finally:
        app.delay = 0.0
    assert len(app.requests) == 1
