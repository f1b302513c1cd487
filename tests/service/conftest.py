"""Fixtures for the service tests: real uvicorn servers (``python -m service serve``) on loopback
ports, a real redis-server, httpx clients, and small DA problems."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.servers import REPO, ServerProcess, free_port  # noqa: F401  (re-exported)

KEY_A, KEY_B = "test-key-a", "test-key-b"


def serve_args(port: int, *extra: str) -> list[str]:
    return ["serve", "--host", "127.0.0.1", "--port", str(port), *extra]


def limited_server(tmp: Path, *flags: str) -> ServerProcess:
    """An embedded server with 2 solver threads and small caps to test the limits (started)."""
    port = free_port()
    env = {"SPINOUT_MAX_BODY_BYTES": str(2 * 1024 * 1024), "SPINOUT_SYNC_TIME_CAP_SEC": "20",
           "SPINOUT_LOG_LEVEL": "WARNING", "SPINOUT_MAX_TERMS": "1000000"}
    proc = ServerProcess(serve_args(port, "--workers", "2", "--database", str(tmp / "jobs.sqlite3"),
                                    *flags), env, tmp / "server.log", port)
    return proc.start()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The shared embedded server: two keys and the limits of ``limited_server``."""
    proc = limited_server(tmp_path_factory.mktemp("server"), "--api-key", KEY_A, "--api-key", KEY_B)
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def quick_job_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that stops every job after 0.5 s (client shapes ask for up to 30 s; the
    problems sent to it are tiny) with no practical per-key job cap, so a corpus runs at once."""
    tmp = tmp_path_factory.mktemp("quick")
    port = free_port()
    env = {"SPINOUT_LOG_LEVEL": "WARNING", "SPINOUT_JOB_TIME_LIMIT_SEC": "0.5"}
    proc = ServerProcess(serve_args(port, "--api-key", KEY_A, "--workers", "2", "--job-limit", "10000",
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


#: The job states a job leaves no more.
FINISHED = {"Done", "Error", "Canceled"}


def wait_status(client: httpx.Client, job_id: str, statuses: set[str], version: str = "v2",
                timeout: float = 60.0, prefix: str = "") -> dict[str, Any]:
    """Poll ``{prefix}/{version}/async/jobs/result/{job_id}`` until the job's status is one of
    ``statuses``; returns that reply."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"{prefix}/{version}/async/jobs/result/{job_id}")
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in statuses:
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach {statuses} in {timeout} s (last {body})")
