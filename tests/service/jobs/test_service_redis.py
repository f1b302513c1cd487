"""Scale-out on a real redis-server: `spinout serve --redis` plus `spinout worker --redis`
processes; a worker killed with -9 mid-job loses nothing, another worker completes the job."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.service.conftest import KEY_A, ServerProcess, free_port, random_terms, serve_args, wait_status

pytestmark = pytest.mark.redis

ENV = {"SPINOUT_LOG_LEVEL": "WARNING", "SPINOUT_LEASE_SECONDS": "1.5", "SPINOUT_JOB_LIMIT": "4"}


@pytest.fixture(scope="module")
def cluster(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, list[ServerProcess]]]:
    import redis

    redis.Redis.from_url(redis_server).flushdb()
    tmp_path = tmp_path_factory.mktemp("cluster")
    port = free_port()
    api = ServerProcess(serve_args(port, "--redis", redis_server, "--api-key", KEY_A, "--workers", "1"),
                        ENV, tmp_path / "api.log", port)
    workers = [ServerProcess(["worker", "--redis", redis_server, "--name", f"w{k}-{port}"], ENV,
                             tmp_path / f"worker{k}.log") for k in range(2)]
    for w in workers:
        w.start(wait=False)
    api.start()
    yield api, workers
    api.stop()
    for w in workers:
        w.stop()


def test_jobs_flow_through_workers(cluster: tuple[ServerProcess, list[ServerProcess]]) -> None:
    api, _ = cluster
    with httpx.Client(base_url=api.url, headers={"X-Api-Key": KEY_A}, timeout=30) as c:
        payload = {"binary_polynomial": {"terms": random_terms(8, constant=1.0)},
                   "fujitsuDA2": {"number_iterations": 100, "number_runs": 16}}
        ids = [c.post("/v2/async/qubo/solve", json=payload).json()["job_id"] for _ in range(4)]
        r = c.post("/v2/async/qubo/solve", json=payload)
        assert r.status_code == 429 and r.json()["error"]["message"] == "Exceed limit of number of request."
        for job_id in ids:
            assert wait_status(c, job_id, {"Done"}, timeout=60)["qubo_solution"]["solutions"]
        listed = [j["job_id"] for j in c.get("/v2/async/jobs").json()["job_status_list"]]
        assert sorted(listed) == sorted(ids)
        for job_id in ids:
            assert c.delete(f"/v2/async/jobs/result/{job_id}").json()["status"] == "Deleted"
        # sync solves still run in the API process
        sync = c.post("/v2/qubo/solve", json=payload)
        assert sync.status_code == 200 and sync.json()["status"] == "Done"


def test_worker_killed_mid_job_is_completed_by_another(cluster: tuple[ServerProcess, list[ServerProcess]],
                                                       redis_server: str) -> None:
    import redis

    api, workers = cluster
    conn = redis.Redis.from_url(redis_server)
    with httpx.Client(base_url=api.url, headers={"X-Api-Key": KEY_A}, timeout=30) as c:
        payload = {"binary_polynomial": {"terms": random_terms(10)},
                   "fujitsuDA3": {"time_limit_sec": 3, "num_run": 4}}
        job_id = c.post("/v3/async/qubo/solve", json=payload).json()["job_id"]
        wait_status(c, job_id, {"Running"}, "v3", timeout=60)
        deadline = time.monotonic() + 10
        holder = None
        while holder is None and time.monotonic() < deadline:
            holder = conn.get(f"spinout:lease:{job_id}")
            time.sleep(0.05)
        assert holder is not None
        pid = int(holder)
        pids = {w.proc.pid: w for w in workers if w.proc is not None}
        assert pid in pids, "the lease names one of our worker processes"
        os.kill(pid, signal.SIGKILL)
        pids[pid].proc.wait(timeout=10)  # type: ignore[union-attr]
        result = wait_status(c, job_id, {"Done", "Error"}, "v3", timeout=60)
        assert result["status"] == "Done", result
        attempts = int(conn.hget(f"spinout:job:{job_id}", "attempts") or 0)
        assert attempts == 2
        survivor = conn.get(f"spinout:lease:{job_id}")
        assert survivor is None
        c.delete(f"/v3/async/jobs/result/{job_id}")


def test_job_stored_but_never_enqueued_is_picked_up(cluster: tuple[ServerProcess, list[ServerProcess]],
                                                     redis_server: str) -> None:
    """The API died between storing a job and enqueueing it: the monitor enqueues it."""
    import redis

    from client.wire.compact import CompactProblem, encode_request
    from service.jobs.records import JobRecord, owner_of
    from service.jobs.redis_store import RedisJobStore

    api, _ = cluster
    store = RedisJobStore(redis.Redis.from_url(redis_server))
    record = JobRecord.create(owner_of(KEY_A), "v2")
    record.created_at -= 30
    store.create(record, encode_request(CompactProblem.from_arrays([0], [1], [1.0], linear=[-1, -1]),
                                        "fujitsuDA2", {"number_iterations": 10, "number_runs": 16,
                                                       "solution_mode": "COMPLETE"}), limit=None)
    with httpx.Client(base_url=api.url, headers={"X-Api-Key": KEY_A}, timeout=30) as c:
        done = wait_status(c, record.job_id, {"Done", "Error"}, timeout=60)
        assert done["status"] == "Done", done
        assert done["qubo_solution"]["solutions"][0]["energy"] == -1.0
        c.delete(f"/v2/async/jobs/result/{record.job_id}")
