"""Fixtures for the reliability campaign: real servers (keys on, auth off), a tally of requests
and 5xx answers printed at the end of the run, and the checks every answer must pass."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.conftest import (KEY_A, KEY_B, ServerProcess, free_port, random_terms,  # noqa: F401
                                    redis_server, serve_args, wait_status)

KEY_C = "test-key-c"
#: Small caps so the limits are reachable in a test: 4 MiB bodies, 200,000 terms, 4 jobs a key.
KEYED_ENV = {"SPINOUT_MAX_BODY_BYTES": str(4 * 1024 * 1024), "SPINOUT_MAX_TERMS": "200000",
             "SPINOUT_JOB_LIMIT": "4", "SPINOUT_SYNC_TIME_CAP_SEC": "5", "SPINOUT_LOG_LEVEL": "INFO"}
#: The auth-off server keeps the default terms cap and a body cap above 10^7 short terms.
OPEN_ENV = {"SPINOUT_MAX_BODY_BYTES": str(100 * 1024 * 1024), "SPINOUT_SYNC_TIME_CAP_SEC": "5",
            "SPINOUT_JOB_LIMIT": "8", "SPINOUT_LOG_LEVEL": "WARNING"}


class Tally:
    """Requests sent and answers by status, per campaign part (fuzz, hostile, faults ...)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: dict[str, Counter[int]] = {}
        self.jobs: dict[str, Counter[str]] = {}

    def record(self, part: str, status: int) -> None:
        with self.lock:
            self.statuses.setdefault(part, Counter())[status] += 1

    def jobs_seen(self, part: str, accepted: int, lost: int) -> None:
        with self.lock:
            counter = self.jobs.setdefault(part, Counter())
            counter["accepted"] += accepted
            counter["lost"] += lost

    def summary(self) -> dict[str, Any]:
        parts = {part: {"requests": sum(c.values()), "5xx": sum(n for s, n in c.items() if s >= 500),
                        "statuses": dict(sorted(c.items()))} for part, c in self.statuses.items()}
        return {"http": parts, "jobs": {k: dict(v) for k, v in self.jobs.items()}}


TALLY = Tally()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    summary = TALLY.summary()
    if not summary["http"] and not summary["jobs"]:
        return
    terminalreporter.section("reliability tally")
    for part, row in summary["http"].items():
        terminalreporter.line(f"{part}: {row['requests']} requests, {row['5xx']} answers 5xx, "
                              f"statuses {row['statuses']}")
    for part, row in summary["jobs"].items():
        terminalreporter.line(f"{part}: {row.get('accepted', 0)} jobs accepted, {row.get('lost', 0)} lost")
    out = os.environ.get("SPINOUT_RELIABILITY_TALLY")
    if out:
        Path(out).write_text(json.dumps(summary, indent=1))


def check_answer(r: httpx.Response, part: str, allow: tuple[int, ...] = ()) -> httpx.Response:
    """Count the answer; no 5xx (but those in ``allow``: 503 while a fault is injected), no
    traceback, errors always in the DA envelope."""
    TALLY.record(part, r.status_code)
    assert r.status_code < 500 or r.status_code in allow, \
        f"{r.request.method} {r.request.url} -> {r.status_code} {r.text[:300]}"
    assert "Traceback" not in r.text and 'File "' not in r.text
    if r.status_code >= 400:
        body = r.json()
        assert set(body) == {"error"} and body["error"]["code"] == r.status_code, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return r


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _server(tmp: Path, env: dict[str, str], *keys: str, workers: int = 1) -> ServerProcess:
    port = free_port()
    args = serve_args(port, "--workers", str(workers), "--database", str(tmp / "jobs.sqlite3"))
    for key in keys:
        args += ["--api-key", key]
    return ServerProcess(args, env, tmp / "server.log", port)


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Keys A, B and C, small caps, INFO logs (to look for leaked keys)."""
    proc = _server(tmp_path_factory.mktemp("keyed"), KEYED_ENV, KEY_A, KEY_B, KEY_C).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Authentication off (no keys), default terms cap."""
    proc = _server(tmp_path_factory.mktemp("open"), OPEN_ENV).start()
    yield proc
    proc.stop()


def client_for(server: ServerProcess, key: str | None = KEY_A, timeout: float = 30.0) -> httpx.Client:
    headers = {"X-Api-Key": key} if key else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=timeout)


def small_job(n: int = 6, seed: int = 0, iterations: int = 50) -> dict[str, Any]:
    return {"binary_polynomial": {"terms": random_terms(n, seed=seed)},
            "fujitsuDA2": {"number_iterations": iterations, "number_runs": 16}}


def clean_up(client: httpx.Client, job_ids: list[str], version: str = "v2") -> None:
    """Wait for the jobs to finish and delete them (the per-key limit counts held jobs)."""
    for job_id in job_ids:
        wait_status(client, job_id, {"Done", "Error", "Canceled"}, version)
        assert client.delete(f"/{version}/async/jobs/result/{job_id}").status_code == 200
