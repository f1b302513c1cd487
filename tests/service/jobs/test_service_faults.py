"""Jobs are never lost: kill -9 the embedded server with jobs waiting and running, restart it on
the same SQLite file, and every job is accounted for (finished or re-run, none stuck Running)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from client.wire.da import JobStatus
from client.wire.compact import CompactProblem, encode_request
from service.jobs.lifecycle import recover_unfinished
from service.jobs.records import JobRecord
from service.jobs.sqlite_store import SqliteJobStore
from tests.service.conftest import ServerProcess, free_port, random_terms, serve_args, wait_status


def _job(seconds: int) -> dict:
    return {"binary_polynomial": {"terms": random_terms(12, seed=1)},
            "fujitsuDA3": {"time_limit_sec": seconds, "num_run": 4}}


def test_kill9_with_waiting_and_running_jobs_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "jobs.sqlite3"
    args = serve_args(port, "--workers", "1", "--database", str(db))
    env = {"SPINOUT_LOG_LEVEL": "WARNING"}
    first = ServerProcess(args, env, tmp_path / "first.log", port).start()
    try:
        with httpx.Client(base_url=first.url, timeout=30) as c:
            quick = c.post("/v2/async/qubo/solve", json={
                "binary_polynomial": {"terms": random_terms(6)},
                "fujitsuDA2": {"number_iterations": 50, "number_runs": 16}}).json()["job_id"]
            wait_status(c, quick, {"Done"})
            done_before = c.get(f"/v2/async/jobs/result/{quick}").json()
            ids = [c.post("/v3/async/qubo/solve", json=_job(2)).json()["job_id"] for _ in range(4)]
            wait_status(c, ids[0], {"Running"}, "v3")
            statuses = [c.get(f"/v3/async/jobs/result/{i}").json()["status"] for i in ids]
            assert statuses[0] == "Running" and statuses[1:] == ["Waiting"] * 3
    finally:
        first.kill9()

    second = ServerProcess(args, env, tmp_path / "second.log", port).start()
    try:
        with httpx.Client(base_url=second.url, timeout=30) as c:
            listed = {j["job_id"]: j["job_status"] for j in c.get("/v3/async/jobs").json()["job_status_list"]}
            assert set(listed) == {quick, *ids}
            assert c.get(f"/v2/async/jobs/result/{quick}").json() == done_before
            for job_id in ids:
                result = wait_status(c, job_id, {"Done", "Error"}, "v3", timeout=60)
                assert result["status"] == "Done", result
                assert result["qubo_solution"]["solutions"]
    finally:
        second.stop()


def test_graceful_stop_hands_running_job_back(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "jobs.sqlite3"
    args = serve_args(port, "--workers", "1", "--database", str(db))
    first = ServerProcess(args, {"SPINOUT_LOG_LEVEL": "WARNING"}, tmp_path / "a.log", port).start()
    with httpx.Client(base_url=first.url, timeout=30) as c:
        job_id = c.post("/v3/async/qubo/solve", json=_job(30)).json()["job_id"]
        wait_status(c, job_id, {"Running"}, "v3")
    started = time.monotonic()
    first.stop()  # SIGTERM: the solve is cancelled, the job goes back to Waiting
    assert time.monotonic() - started < 15
    store = SqliteJobStore(db)
    record = store.get(job_id)
    store.close()
    assert record is not None and record.status == JobStatus.WAITING.value


def test_interrupted_too_often_becomes_error(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "s.sqlite3")
    payload = encode_request(CompactProblem.from_arrays([0], [1], [1.0]), "fujitsuDA2")
    record = JobRecord.create("owner", "v2")
    store.create(record, payload, limit=16)
    for _ in range(3):  # three runs, each interrupted by a crash
        assert store.claim(record.job_id, 3) is not None
        if _ < 2:
            assert recover_unfinished(store, 3) == [record.job_id]
    assert recover_unfinished(store, 3) == []
    final = store.get(record.job_id)
    assert final is not None and final.status == "Error" and "interrupted 3 time" in (final.message or "")
    store.close()


def test_store_transitions_are_compare_and_set(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "s.sqlite3")
    record = JobRecord.create("o", "v2")
    store.create(record, b"x", limit=1)
    with pytest.raises(Exception, match="o"):
        store.create(JobRecord.create("o", "v2"), b"y", limit=1)
    assert store.delete(record.job_id) is False  # unfinished: not removed
    assert store.cancel(record.job_id) == "Canceled"
    assert store.claim(record.job_id, 3) is None
    assert store.finish(record.job_id, "Done", b"r", None) is False
    assert store.delete(record.job_id) is True and store.get(record.job_id) is None
    store.close()


def test_second_server_on_the_same_database_is_refused(tmp_path: Path) -> None:
    """Two embedded servers on one job database stole each other's work: the second re-ran the
    first's running job as "interrupted", and once it stopped the job stayed Waiting. One
    server owns a database: a second refuses to start and names the holder, and the first
    server's job finishes."""
    db = tmp_path / "jobs.sqlite3"
    env = {"SPINOUT_LOG_LEVEL": "WARNING"}
    first_port, second_port = free_port(), free_port()
    first = ServerProcess(serve_args(first_port, "--workers", "1", "--database", str(db)), env,
                          tmp_path / "first.log", first_port).start()
    try:
        with httpx.Client(base_url=first.url, timeout=30) as c:
            job_id = c.post("/v3/async/qubo/solve", json=_job(3)).json()["job_id"]
            wait_status(c, job_id, {"Running"}, "v3")
            second = ServerProcess(serve_args(second_port, "--workers", "1", "--database", str(db)),
                                   env, tmp_path / "second.log", second_port).start(wait=False)
            assert second.proc is not None
            code = second.proc.wait(timeout=60)
            log = (tmp_path / "second.log").read_text()
            assert code != 0, log
            assert str(db) in log and f"pid {first.proc.pid}" in log, log
            result = wait_status(c, job_id, {"Done", "Error"}, "v3", timeout=30)
            assert result["status"] == "Done", result
    finally:
        first.stop()
    # the database is free again once its owner stopped
    third = ServerProcess(serve_args(second_port, "--workers", "1", "--database", str(db)), env,
                          tmp_path / "third.log", second_port).start()
    third.stop()
