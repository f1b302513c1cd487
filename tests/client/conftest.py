"""Fixtures for the client tests: a scripted loopback HTTP server and the real service.

The scripted server (uvicorn, loopback) answers from a script of status codes, to test what the
real service cannot be asked to do on cue: answer 503 twice, then 200.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.servers import REPO, ServerProcess, free_port


class ScriptedApp:
    """ASGI app: the n-th request gets ``script[n]`` (the last entry repeats)."""

    def __init__(self) -> None:
        self.script: list[int] = [200]
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.peers: list[tuple[str, int]] = []  # the client socket of each request
        self.body: dict[str, Any] = {}
        self.delay = 0.0

    def reset(self, script: list[int], body: dict[str, Any] | None = None) -> None:
        self.script = list(script)
        self.requests = []
        self.peers = []
        self.body = body or {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while True:  # drain the request body
            message = await receive()
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append((scope["method"], scope["path"], headers))
        self.peers.append(tuple(scope["client"]))
        status = self.script[min(len(self.requests), len(self.script)) - 1]
        if self.delay:
            await asyncio.sleep(self.delay)
        if status < 400:
            payload = self.body
        else:
            payload = {"error": {"code": status, "title": "Scripted", "message": f"scripted {status}"}}
        data = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})


@contextmanager
def scripted_server() -> Iterator[tuple[str, ScriptedApp]]:
    app = ScriptedApp()
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                            ws="none", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the scripted server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[str, ScriptedApp]]:
    """(base URL, app) of a scripted server; call ``app.reset([...])`` in each test."""
    with scripted_server() as running:
        yield running


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


# --------------------------------------------------------------------------- the real service
API_KEY = "client-test-key"
OTHER_KEY = "client-other-key"
LIMIT_KEY = "client-limit-key"
DATA = REPO / ".." / "shared" / "data"


@dataclass(frozen=True)
class Service:
    url: str
    api_key: str
    other_key: str
    limit_key: str
    job_limit: int
    workers: int


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """``spinout serve`` on a loopback port, SQLite store in a temp dir, three API keys, one
    worker and a job limit of 3 per key; stopped (and checked to stop) at the end."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("service")
    job_limit, workers = 3, 1
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--job-limit", str(job_limit), "--database", str(workdir / "jobs.sqlite3")]
    for key in (API_KEY, OTHER_KEY, LIMIT_KEY):
        args += ["--api-key", key]
    # Keys and scale-out come from the flags only, never from the caller's environment.
    env: dict[str, str | None] = {"SPINOUT_API_KEYS": None, "SPINOUT_REDIS_URL": None}
    proc = ServerProcess(args, env, workdir / "service.log", port)
    try:
        proc.start(timeout=120)  # the first start may compile the kernels
        yield Service(proc.url, API_KEY, OTHER_KEY, LIMIT_KEY, job_limit, workers)
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA.resolve()
