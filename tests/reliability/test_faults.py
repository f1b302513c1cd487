"""Faults: kill -9 of the embedded server in a submission burst, a full disk under the SQLite
job store, kill -9 of a worker mid-job and a Redis restart in the scale-out. Afterwards every
accepted job (job_id returned) is Done, or Error with a reason: none lost, none stuck.

The longer versions (more bursts, more jobs) are ``benchmarks/fault_service.py``."""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.conftest import (TALLY, check_answer, free_port, random_terms, serve_args,
                                        small_job)
from tests.service.conftest import ServerProcess

FINAL = {"Done", "Error", "Canceled"}


def account(url: str, ids: list[str], timeout: float = 120.0, version: str = "v2",
            headers: dict[str, str] | None = None) -> tuple[dict[str, int], list[str]]:
    """Wait until every job is final; (status counts, lost ids). An Error must carry a reason."""
    counts: dict[str, int] = {}
    lost: list[str] = []
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=30, headers=headers or {}) as c:
        for job_id in ids:
            while True:
                r = c.get(f"/{version}/async/jobs/result/{job_id}")
                if r.status_code == 404:
                    lost.append(job_id)
                    break
                assert r.status_code == 200, r.text
                body = r.json()
                if body["status"] in FINAL:
                    if body["status"] == "Error":
                        assert body.get("message"), body
                    counts[body["status"]] = counts.get(body["status"], 0) + 1
                    break
                assert time.monotonic() < deadline, f"job {job_id} still {body['status']}"
                time.sleep(0.05)
    return counts, lost


def burst(url: str, stop: threading.Event, accepted: list[str], refused: dict[int, int],
          make: Callable[[int], dict[str, Any]], path: str = "/v2/async/qubo/solve",
          headers: dict[str, str] | None = None) -> None:
    """Submit until ``stop``; keep the ids of accepted jobs. Connection errors are expected."""
    k = 0
    with httpx.Client(base_url=url, timeout=10, headers=headers or {}) as c:
        while not stop.is_set():
            k += 1
            try:
                r = c.post(path, json=make(k))
            except httpx.HTTPError:
                time.sleep(0.02)
                continue
            if r.status_code == 200:
                accepted.append(r.json()["job_id"])
            else:
                check_answer(r, "faults", allow=(503,))
                refused[r.status_code] = refused.get(r.status_code, 0) + 1


def run_burst(url: str, seconds: float, threads: int, make: Callable[[int], dict[str, Any]],
              during: Callable[[], None] | None = None, **kw: Any) -> tuple[list[str], dict[int, int]]:
    accepted: list[str] = []
    refused: dict[int, int] = {}
    stop = threading.Event()
    workers = [threading.Thread(target=burst, args=(url, stop, accepted, refused, make), kwargs=kw)
               for _ in range(threads)]
    for t in workers:
        t.start()
    time.sleep(seconds)
    if during is not None:
        during()
    stop.set()
    for t in workers:
        t.join(timeout=30)
    return accepted, refused


def test_kill9_in_a_submission_burst_loses_no_accepted_job(tmp_path: Path) -> None:
    port = free_port()
    args = serve_args(port, "--workers", "1", "--database", str(tmp_path / "jobs.sqlite3"),
                      "--job-limit", "1000000")
    env = {"SPINOUT_LOG_LEVEL": "WARNING"}
    first = ServerProcess(args, env, tmp_path / "first.log", port).start()
    try:
        accepted, _ = run_burst(first.url, 2.0, 4, lambda k: small_job(8, seed=k, iterations=3000),
                                during=first.kill9)
    finally:
        first.kill9()
    assert len(accepted) > 20
    second = ServerProcess(args, env, tmp_path / "second.log", port).start()
    try:
        counts, lost = account(second.url, accepted)
    finally:
        second.stop()
    TALLY.jobs_seen("kill -9 embedded server", len(accepted), len(lost))
    assert not lost and counts.get("Done") == len(accepted), (counts, lost[:5])


@pytest.fixture()
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs for the job store (needs root); grown later with ``remount``."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (not root?): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_refuses_submissions_clearly_and_keeps_serving_reads(tiny_disk: Path, tmp_path: Path) -> None:
    port = free_port()
    args = serve_args(port, "--workers", "1", "--database", str(tiny_disk / "jobs.sqlite3"),
                      "--job-limit", "1000000")
    server = ServerProcess(args, {"SPINOUT_LOG_LEVEL": "WARNING"}, tmp_path / "server.log", port).start()
    big = {"binary_polynomial": {"terms": random_terms(120, density=0.5)},
           "fujitsuDA2": {"number_iterations": 10, "number_runs": 16}}
    accepted: list[str] = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            first = check_answer(c.post("/v2/async/qubo/solve", json=small_job(5)), "faults").json()["job_id"]
            accepted.append(first)
            refused = None
            for _ in range(200):
                r = check_answer(c.post("/v2/async/qubo/solve", json=big), "faults", allow=(503,))
                if r.status_code == 503:
                    refused = r
                    break
                assert r.status_code == 200, r.text
                accepted.append(r.json()["job_id"])
            assert refused is not None, "the 1 MiB disk never filled"
            message = refused.json()["error"]["message"]
            assert "full" in message and "retry" in message, message
            assert refused.headers.get("retry-after")
            # reads keep working on a full disk
            assert check_answer(c.get("/v1/healthcheck"), "faults").status_code == 200
            listed = check_answer(c.get("/v2/async/jobs"), "faults").json()["job_status_list"]
            assert {j["job_id"] for j in listed} >= set(accepted)
            assert check_answer(c.get(f"/v2/async/jobs/result/{first}"), "faults").status_code == 200
            sync = check_answer(c.post("/v2/qubo/solve", json=small_job(5)), "faults")
            assert sync.status_code == 200  # sync solves need no store
    finally:
        server.kill9()
    # room again: a restart finishes every accepted job (none lost to the full disk)
    subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_disk)], check=True)
    again = ServerProcess(args, {"SPINOUT_LOG_LEVEL": "WARNING"}, tmp_path / "again.log", port).start()
    try:
        counts, lost = account(again.url, accepted)
    finally:
        again.stop()
    TALLY.jobs_seen("full disk (SQLite on a 1 MiB tmpfs)", len(accepted), len(lost))
    assert not lost and sum(counts.values()) == len(accepted), counts


# ----------------------------------------------------------------------------- scale-out
class RedisProcess:
    """A persistent redis-server (AOF, fsync always) we can kill -9 and restart on its data."""

    def __init__(self, directory: Path) -> None:
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.dir = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        assert self.binary is not None
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                                      "--dir", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        conn = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                conn.ping()
                break
            except redis.exceptions.BusyLoadingError:
                time.sleep(0.05)
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        conn.close()
        return self

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture()
def redis_aof(tmp_path: Path) -> Iterator[RedisProcess]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    proc = RedisProcess(tmp_path).start()
    yield proc
    proc.kill9()


@pytest.mark.redis
@pytest.mark.slow
def test_worker_kill9_and_redis_restart_lose_no_accepted_job(redis_aof: RedisProcess, tmp_path: Path) -> None:
    import redis

    env = {"SPINOUT_LOG_LEVEL": "WARNING", "SPINOUT_LEASE_SECONDS": "1.5", "SPINOUT_JOB_LIMIT": "1000000"}
    port = free_port()
    api = ServerProcess(serve_args(port, "--redis", redis_aof.url, "--workers", "1"), env,
                        tmp_path / "api.log", port)
    workers = [ServerProcess(["worker", "--redis", redis_aof.url, "--name", f"w{k}-{port}"], env,
                             tmp_path / f"worker{k}.log") for k in range(2)]
    for w in workers:
        w.start(wait=False)
    api.start()
    conn = redis.Redis.from_url(redis_aof.url)
    long_job = {"binary_polynomial": {"terms": random_terms(10)}, "fujitsuDA3": {"time_limit_sec": 2, "num_run": 2}}
    try:
        with httpx.Client(base_url=api.url, timeout=30) as c:
            long_ids = [check_answer(c.post("/v3/async/qubo/solve", json=long_job), "faults").json()["job_id"]
                        for _ in range(3)]
            holder = None
            deadline = time.monotonic() + 60
            while holder is None:
                assert time.monotonic() < deadline, "no job started"
                holder = next((conn.get(f"spinout:lease:{j}") for j in long_ids
                               if conn.get(f"spinout:lease:{j}")), None)
                time.sleep(0.05)

        def kill_worker_then_restart_redis() -> None:
            victim = next(w for w in workers if w.proc is not None and w.proc.pid == int(holder))
            victim.kill9()  # mid-job
            time.sleep(0.5)
            redis_aof.kill9()  # and Redis itself, while submissions go on
            time.sleep(1.0)
            redis_aof.start()
            victim.start(wait=False)
            time.sleep(1.0)

        accepted, refused = run_burst(api.url, 1.5, 2, lambda k: small_job(6, seed=k, iterations=500),
                                      during=kill_worker_then_restart_redis)
        counts_long, lost_long = account(api.url, long_ids, version="v3", timeout=120)
        counts, lost = account(api.url, accepted, timeout=120)
        attempts = [int(conn.hget(f"spinout:job:{j}", "attempts") or 0) for j in long_ids]
        time.sleep(1.0)
        # the killed worker, restarted under its old name, is serving again (not refused by rq
        # because its dead self is still registered)
        restarted = [w.log.read_text() for w in workers if w.proc is not None and w.proc.poll() is None]
        assert len(restarted) == 2, [w.log.read_text()[-500:] for w in workers]
    finally:
        conn.close()
        api.stop()
        for w in workers:
            w.stop()
    total = len(accepted) + len(long_ids)
    TALLY.jobs_seen("kill -9 worker + Redis restart", total, len(lost) + len(lost_long))
    assert not lost and not lost_long, (lost[:3], lost_long)
    assert counts_long.get("Done") == len(long_ids), counts_long
    assert max(attempts) >= 2, attempts  # the killed worker's job ran again elsewhere
    assert counts.get("Done") == len(accepted), (counts, refused)
    assert set(refused) <= {503}, refused


@pytest.mark.redis
def test_waiting_job_whose_queue_entry_was_lost_is_run(redis_aof: RedisProcess, tmp_path: Path) -> None:
    """A worker took the job off rq's queue and died (or lost Redis) before claiming it: the
    record says Waiting and enqueued, rq's queue no longer has it. The monitor enqueues it again."""
    import redis

    from client.wire.compact import CompactProblem, encode_request
    from service.jobs.records import JobRecord
    from service.jobs.redis_store import RedisJobStore

    env = {"SPINOUT_LOG_LEVEL": "WARNING"}
    port = free_port()
    api = ServerProcess(serve_args(port, "--redis", redis_aof.url, "--workers", "1"), env, tmp_path / "api.log", port)
    worker = ServerProcess(["worker", "--redis", redis_aof.url], env, tmp_path / "worker.log")
    worker.start(wait=False)
    api.start()
    conn = redis.Redis.from_url(redis_aof.url)
    try:
        record = JobRecord.create("anonymous", "v2")
        record.created_at -= 30
        RedisJobStore(conn).create(record, encode_request(
            CompactProblem.from_arrays([0], [1], [1.0], linear=[-1, -1]), "fujitsuDA2",
            {"number_iterations": 10, "number_runs": 16, "solution_mode": "COMPLETE"}), limit=None)
        conn.hset(f"spinout:job:{record.job_id}", mapping={"enqueued_at": time.time() - 30, "rq_id": "dropped0"})
        counts, lost = account(api.url, [record.job_id], timeout=60)
        assert counts == {"Done": 1} and not lost
        assert "queue entry was lost" in (api.log.read_text() + worker.log.read_text())
    finally:
        conn.close()
        api.stop()
        worker.stop()
