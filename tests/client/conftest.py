"""Fixtures for the client tests: a scripted loopback HTTP server and the real service.

The scripted server (uvicorn, loopback) answers from a script of status codes, to test what the
real service cannot be asked to do on cue: answer 503 twice, then 200.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ScriptedApp:
    """ASGI app: the n-th request gets ``script[n]`` (the last entry repeats)."""

    def __init__(self) -> None:
        self.script: list[int] = [200]
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.body: dict[str, Any] = {}
        self.delay = 0.0

    def reset(self, script: list[int], body: dict[str, Any] | None = None) -> None:
        self.script = list(script)
        self.requests = []
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
REPO = Path(__file__).resolve().parents[2]
DATA = REPO / ".." / "shared" / "data"


@dataclass(frozen=True)
class Service:
    url: str
    api_key: str
    other_key: str
    limit_key: str
    job_limit: int
    workers: int


def _serve_options() -> set[str]:
    """The long options ``spinout serve`` understands (so the fixture adapts to its CLI)."""
    import argparse
    module = importlib.import_module("service.serve_command")
    parser = argparse.ArgumentParser()
    module.configure(parser)
    return {opt for action in parser._actions for opt in action.option_strings}


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """``spinout serve`` on a loopback port, SQLite store in a temp dir, three API keys, one
    worker and a job limit of 3 per key; stopped (and checked to stop) at the end."""
    if importlib.util.find_spec("service.serve_command") is None:
        pytest.skip("service.serve_command (issue 3) is not built yet")
    options = _serve_options()
    port = free_port()
    workdir = tmp_path_factory.mktemp("service")
    job_limit, workers = 3, 1
    cmd = [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port)]
    for key in (API_KEY, OTHER_KEY, LIMIT_KEY):
        cmd += ["--api-key", key]
    database = workdir / "jobs.sqlite3"
    # The service's settings are SPINOUT_* variables (service/web/settings.py); its flags set the
    # same settings, so pass the flags it has and the variables for the rest.
    env = dict(os.environ, SPINOUT_JOB_LIMIT=str(job_limit), SPINOUT_WORKERS=str(workers),
               SPINOUT_DATABASE=str(database))
    env.pop("SPINOUT_API_KEYS", None)
    env.pop("SPINOUT_REDIS_URL", None)
    for flag, value in (("--workers", workers), ("--job-limit", job_limit), ("--database", database)):
        if flag in options:
            cmd += [flag, str(value)]
    log = (workdir / "service.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # first start may compile the kernels
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"spinout serve exited with {proc.returncode}:\n"
                                   f"{(workdir / 'service.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/v1/healthcheck", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("spinout serve did not answer its healthcheck within 120 s:\n"
                                   f"{(workdir / 'service.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield Service(url, API_KEY, OTHER_KEY, LIMIT_KEY, job_limit, workers)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA.resolve()
