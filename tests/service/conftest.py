"""Fixtures for the service tests: real uvicorn servers (``python -m service serve``) on loopback
ports, a real redis-server, httpx clients, and small DA problems."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
KEY_A, KEY_B = "test-key-a", "test-key-b"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A ``spinout serve``/``spinout worker`` subprocess we can stop politely or kill -9."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, port: int | None = None) -> None:
        self.args, self.env, self.log, self.port = args, env, log, port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> ServerProcess:
        full_env = {**os.environ, **self.env}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "service", *self.args], cwd=REPO,
                                         env=full_env, stdout=out, stderr=subprocess.STDOUT)
        if wait and self.port is not None:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/v1/healthcheck", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {timeout} s: {self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill9()


def serve_args(port: int, *extra: str) -> list[str]:
    return ["serve", "--host", "127.0.0.1", "--port", str(port), *extra]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The shared embedded server: two keys, 2 solver threads, small caps to test the limits."""
    tmp = tmp_path_factory.mktemp("server")
    port = free_port()
    env = {"SPINOUT_MAX_BODY_BYTES": str(2 * 1024 * 1024), "SPINOUT_SYNC_TIME_CAP_SEC": "20",
           "SPINOUT_LOG_LEVEL": "WARNING", "SPINOUT_MAX_TERMS": "1000000"}
    proc = ServerProcess(serve_args(port, "--api-key", KEY_A, "--api-key", KEY_B, "--workers", "2",
                                    "--database", str(tmp / "jobs.sqlite3")), env, tmp / "server.log", port)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture()
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"X-Api-Key": KEY_A}, timeout=60.0) as c:
        yield c


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    tmp = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    conn = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            conn.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    conn.close()
    yield f"redis://127.0.0.1:{port}/0"
    proc.kill()
    proc.wait(timeout=10)


# ------------------------------------------------------------------------------ problems
def random_terms(n: int, density: float = 0.3, seed: int = 0, constant: float = 0.0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    terms: list[dict[str, Any]] = []
    for i in range(n):
        terms.append({"c": float(rng.normal()), "p": [i]})
        for j in range(i + 1, n):
            if rng.random() < density:
                terms.append({"c": float(rng.normal()), "p": [i, j]})
    if constant:
        terms.append({"c": constant})
    return terms


def brute_force_min(terms: list[dict[str, Any]], n: int) -> float:
    states = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(float)
    energy = np.zeros(len(states))
    for t in terms:
        idx = t.get("p", t.get("polynomials", []))
        c = t.get("c", t.get("coefficient"))
        energy += c * (np.prod(states[:, idx], axis=1) if idx else 1.0)
    return float(energy.min())


def config_energy(terms: list[dict[str, Any]], configuration: dict[str, bool]) -> float:
    x = {int(k): int(v) for k, v in configuration.items()}
    total = 0.0
    for t in terms:
        idx = t.get("p", t.get("polynomials", []))
        c = t.get("c", t.get("coefficient"))
        total += c * (np.prod([x[i] for i in idx]) if idx else 1.0)
    return float(total)


def wait_status(client: httpx.Client, job_id: str, statuses: set[str], version: str = "v2",
                timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/{version}/async/jobs/result/{job_id}")
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in statuses:
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach {statuses} in {timeout} s (last {body})")
