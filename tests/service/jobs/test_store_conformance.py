"""The JobStore contract, run unchanged against both stores: SQLite (a file under tmp_path) and
Redis (a db of the throwaway redis-server, emptied around each test).

A store is opened through a factory, so a test can open a second store object on the same file
or the same Redis: what a restarted server sees.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from client.wire.da import JobStatus
from service.jobs.lifecycle import interrupted_message, recover_unfinished
from client.wire.da import FINISHED_STATUSES
from service.jobs.records import JobLimitError, JobRecord, JobStore

OpenStore = Callable[[], JobStore]

#: The Redis db this suite owns on the test redis-server (the cluster tests use db 0).
REDIS_DB = 3


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    opened: list[JobStore] = []
    if request.param == "sqlite":
        def make() -> JobStore:
            from service.jobs.sqlite_store import SqliteJobStore

            opened.append(SqliteJobStore(tmp_path / "jobs.sqlite3"))
            return opened[-1]
    else:
        import redis

        from service.jobs.redis_store import RedisJobStore

        url = request.getfixturevalue("redis_server").rsplit("/", 1)[0] + f"/{REDIS_DB}"
        redis.Redis.from_url(url).flushdb()

        def make() -> JobStore:
            opened.append(RedisJobStore(redis.Redis.from_url(url)))
            return opened[-1]
    yield make
    for store in opened:
        store.close()
    if request.param == "redis":
        redis.Redis.from_url(url).flushdb()


@pytest.fixture()
def store(open_store: OpenStore) -> JobStore:
    return open_store()


_clock = [1_700_000_000.0]


def _add(store: JobStore, owner: str = "owner-a", *, payload: bytes = b"problem",
         limit: int | None = None, version: str = "v2", kind: str = "da") -> JobRecord:
    """A Waiting job, each created one second after the previous (list order is creation order)."""
    record = JobRecord.create(owner, version, kind)
    _clock[0] += 1.0
    record.created_at = _clock[0]
    store.create(record, payload, limit)
    return record


def _running(store: JobStore, owner: str = "owner-a") -> JobRecord:
    record = _add(store, owner)
    claimed = store.claim(record.job_id, 3)
    assert claimed is not None
    return claimed


# ----------------------------------------------------------------------------- round trip
def test_create_get_payload_result_round_trip(store: JobStore) -> None:
    record = _add(store, "owner-x", payload=b"\x00\x01binary\xff", version="v3", kind="compact")
    got = store.get(record.job_id)
    assert got == record
    assert got.status is JobStatus.WAITING and got.attempts == 0
    assert got.started_at is None and got.finished_at is None and got.message is None
    assert store.payload(record.job_id) == b"\x00\x01binary\xff"
    assert store.result(record.job_id) is None

    claimed = store.claim(record.job_id, 3)
    assert claimed is not None and claimed.status is JobStatus.RUNNING and claimed.attempts == 1
    assert claimed.started_at is not None and abs(claimed.started_at - time.time()) < 60
    assert store.finish(record.job_id, JobStatus.DONE, b"\x00reply\xff", None) is True
    done = store.get(record.job_id)
    assert done is not None and done.status is JobStatus.DONE and done.finished_at is not None
    assert (done.owner, done.version, done.kind, done.created_at) == ("owner-x", "v3", "compact",
                                                                       record.created_at)
    assert store.result(record.job_id) == b"\x00reply\xff"
    assert store.payload(record.job_id) is None  # a finished job keeps no problem


def test_unknown_job(store: JobStore) -> None:
    assert store.get("nope") is None
    assert store.payload("nope") is None and store.result("nope") is None
    assert store.claim("nope", 3) is None
    assert store.finish("nope", JobStatus.DONE, b"r", None) is False
    assert store.fail_unfinished("nope", "gone") is False
    assert store.cancel("nope") is None
    assert store.requeue("nope") is False
    assert store.delete("nope") is False
    assert store.get("nope") is None  # no transition created it


def test_error_keeps_its_message(store: JobStore) -> None:
    record = _running(store)
    assert store.finish(record.job_id, JobStatus.ERROR, None, "the problem is empty") is True
    failed = store.get(record.job_id)
    assert failed is not None and failed.status is JobStatus.ERROR
    assert failed.message == "the problem is empty" and store.result(record.job_id) is None


# ----------------------------------------------------------------------------- compare-and-set
def test_claim_only_a_waiting_job(store: JobStore) -> None:
    record = _running(store)
    assert store.claim(record.job_id, 3) is None  # already Running
    assert store.finish(record.job_id, JobStatus.DONE, b"r", None) is True
    assert store.claim(record.job_id, 3) is None  # finished: never claimed again
    assert store.finish(record.job_id, JobStatus.ERROR, None, "late") is False
    final = store.get(record.job_id)
    assert final is not None and final.status is JobStatus.DONE and final.attempts == 1
    assert final.message is None and store.result(record.job_id) == b"r"


def test_finish_needs_a_running_job(store: JobStore) -> None:
    record = _add(store)
    assert store.finish(record.job_id, JobStatus.DONE, b"r", None) is False  # still Waiting
    got = store.get(record.job_id)
    assert got is not None and got.status is JobStatus.WAITING and store.result(record.job_id) is None


def test_cancel_wins_only_over_a_waiting_job(store: JobStore) -> None:
    waiting = _add(store)
    assert store.cancel(waiting.job_id) is JobStatus.CANCELED
    assert store.cancel(waiting.job_id) is JobStatus.CANCELED  # idempotent
    assert store.claim(waiting.job_id, 3) is None
    assert store.finish(waiting.job_id, JobStatus.DONE, b"r", None) is False
    canceled = store.get(waiting.job_id)
    assert canceled is not None and canceled.status is JobStatus.CANCELED
    assert canceled.finished_at is not None and store.payload(waiting.job_id) is None

    running = _running(store)
    assert store.cancel(running.job_id) is JobStatus.RUNNING  # reports, changes nothing
    assert store.finish(running.job_id, JobStatus.DONE, b"r", None) is True
    assert store.cancel(running.job_id) is JobStatus.DONE


def test_requeue_hands_a_running_job_back(store: JobStore) -> None:
    record = _running(store)
    assert store.requeue(record.job_id) is True
    back = store.get(record.job_id)
    assert back is not None and back.status is JobStatus.WAITING and back.attempts == 1
    assert store.payload(record.job_id) == b"problem"  # still runnable
    assert store.requeue(record.job_id) is False  # not Running
    again = store.claim(record.job_id, 3)
    assert again is not None and again.attempts == 2
    assert store.finish(record.job_id, JobStatus.DONE, b"r", None) is True
    assert store.requeue(record.job_id) is False  # finished: stays finished
    final = store.get(record.job_id)
    assert final is not None and final.status is JobStatus.DONE


def test_fail_unfinished_gives_up_on_waiting_or_running_only(store: JobStore) -> None:
    waiting, running, done = _add(store), _running(store), _running(store)
    assert store.finish(done.job_id, JobStatus.DONE, b"r", None) is True
    assert store.fail_unfinished(waiting.job_id, "worker failed") is True
    assert store.fail_unfinished(running.job_id, "worker failed") is True
    assert store.fail_unfinished(done.job_id, "worker failed") is False
    for job_id in (waiting.job_id, running.job_id):
        got = store.get(job_id)
        assert got is not None and got.status is JobStatus.ERROR and got.message == "worker failed"
        assert got.finished_at is not None and store.payload(job_id) is None
        assert store.claim(job_id, 3) is None
    kept = store.get(done.job_id)
    assert kept is not None and kept.status is JobStatus.DONE and kept.message is None
    assert store.unfinished() == []


def _race(n: int, action: Callable[[int], object]) -> list[object]:
    """Run ``action(k)`` for k < n on n threads released together; their results in k order."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(k: int) -> None:
        barrier.wait()
        try:
            results[k] = action(k)
        except Exception as exc:  # noqa: BLE001 - the caller inspects it
            results[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_racing_claims_have_one_winner(open_store: OpenStore) -> None:
    stores = [open_store() for _ in range(4)]  # as several workers, each with its own store
    for _ in range(5):
        record = _add(stores[0])
        results = _race(8, lambda k: stores[k % 4].claim(record.job_id, 3))
        winners = [r for r in results if isinstance(r, JobRecord)]
        assert len(winners) == 1 and results.count(None) == 7, results
        got = stores[0].get(record.job_id)
        assert got is not None and got.attempts == 1


def test_cancel_racing_a_claim_has_one_winner(open_store: OpenStore) -> None:
    stores = [open_store(), open_store()]
    for _ in range(10):
        record = _add(stores[0])
        claimed, canceled = _race(2, lambda k: stores[0].claim(record.job_id, 3) if k == 0
                                  else stores[1].cancel(record.job_id))
        got = stores[0].get(record.job_id)
        assert got is not None
        if isinstance(claimed, JobRecord):
            assert canceled is JobStatus.RUNNING and got.status is JobStatus.RUNNING
        else:
            assert claimed is None and canceled is JobStatus.CANCELED and got.status is JobStatus.CANCELED


# ----------------------------------------------------------------------------- limit and owners
def test_job_limit_is_per_owner_and_counts_finished_jobs(store: JobStore) -> None:
    first, second = _add(store, limit=2), _add(store, limit=2)
    with pytest.raises(JobLimitError):
        _add(store, limit=2)
    _add(store, "owner-b", limit=2)  # another owner has a limit of its own
    assert store.claim(first.job_id, 3) is not None
    assert store.finish(first.job_id, JobStatus.DONE, b"r", None) is True
    with pytest.raises(JobLimitError):  # a finished job still counts until it is deleted
        _add(store, limit=2)
    assert store.delete(first.job_id) is True
    third = _add(store, limit=2)
    assert [r.job_id for r in store.list_owned("owner-a")] == [second.job_id, third.job_id]
    _add(store, limit=None)  # no limit
    assert len(store.list_owned("owner-a")) == 3


def test_a_refused_create_stores_nothing(store: JobStore) -> None:
    _add(store, limit=1)
    record = JobRecord.create("owner-a", "v2")
    with pytest.raises(JobLimitError):
        store.create(record, b"problem", 1)
    assert store.get(record.job_id) is None and store.payload(record.job_id) is None
    assert [r.status for r in store.unfinished()] == [JobStatus.WAITING]


def test_racing_creates_respect_the_limit(open_store: OpenStore) -> None:
    stores = [open_store() for _ in range(4)]
    results = _race(12, lambda k: _add(stores[k % 4], limit=5))
    created = [r for r in results if isinstance(r, JobRecord)]
    refused = [r for r in results if isinstance(r, JobLimitError)]
    assert len(created) == 5 and len(refused) == 7, results
    assert {r.job_id for r in stores[0].list_owned("owner-a")} == {r.job_id for r in created}


def test_list_owned_isolates_owners(store: JobStore) -> None:
    a1, b1, a2 = _add(store, "owner-a"), _add(store, "owner-b"), _add(store, "owner-a")
    assert [r.job_id for r in store.list_owned("owner-a")] == [a1.job_id, a2.job_id]  # oldest first
    assert [r.job_id for r in store.list_owned("owner-b")] == [b1.job_id]
    assert store.list_owned("owner-c") == []
    assert all(r.owner == "owner-a" for r in store.list_owned("owner-a"))
    assert store.claim(a1.job_id, 3) is not None
    assert store.finish(a1.job_id, JobStatus.DONE, b"r", None) is True
    assert store.delete(a1.job_id) is True
    assert [r.job_id for r in store.list_owned("owner-a")] == [a2.job_id]
    assert [r.job_id for r in store.list_owned("owner-b")] == [b1.job_id]


# ----------------------------------------------------------------------------- delete and expiry
def test_delete_removes_only_finished_jobs(store: JobStore) -> None:
    waiting, running = _add(store), _running(store)
    assert store.delete(waiting.job_id) is False and store.delete(running.job_id) is False
    assert store.get(waiting.job_id) is not None and store.get(running.job_id) is not None
    assert store.payload(waiting.job_id) == b"problem"
    for status in FINISHED_STATUSES:
        record = _running(store) if status is not JobStatus.CANCELED else _add(store)
        if status is JobStatus.CANCELED:
            assert store.cancel(record.job_id) is JobStatus.CANCELED
        else:
            assert store.finish(record.job_id, status, b"r", None) is True
        assert store.delete(record.job_id) is True
        assert store.get(record.job_id) is None and store.result(record.job_id) is None
        assert store.delete(record.job_id) is False
    assert {r.job_id for r in store.list_owned("owner-a")} == {waiting.job_id, running.job_id}


def test_expire_removes_only_old_finished_jobs(store: JobStore) -> None:
    old_done, old_error, old_canceled = _running(store), _running(store), _add(store)
    old_waiting, old_running = _add(store), _running(store)
    assert store.finish(old_done.job_id, JobStatus.DONE, b"r", None) is True
    assert store.finish(old_error.job_id, JobStatus.ERROR, None, "bad") is True
    assert store.cancel(old_canceled.job_id) is JobStatus.CANCELED
    time.sleep(0.02)
    cutoff = time.time()
    time.sleep(0.02)
    recent = _running(store)
    assert store.finish(recent.job_id, JobStatus.DONE, b"r", None) is True

    assert store.expire(cutoff) == 3
    for gone in (old_done, old_error, old_canceled):
        assert store.get(gone.job_id) is None
    for kept in (old_waiting, old_running, recent):
        assert store.get(kept.job_id) is not None
    assert {r.job_id for r in store.list_owned("owner-a")} == {old_waiting.job_id, old_running.job_id,
                                                                recent.job_id}
    assert store.expire(cutoff) == 0
    with pytest.raises(JobLimitError):  # expired jobs free their owner's slots; 3 remain
        _add(store, limit=3)
    _add(store, limit=4)


# ----------------------------------------------------------------------------- restart and metrics
def test_unfinished_lists_waiting_and_running_oldest_first(store: JobStore) -> None:
    waiting, running, done, canceled = _add(store), _running(store), _running(store), _add(store, "owner-b")
    assert store.finish(done.job_id, JobStatus.DONE, b"r", None) is True
    assert store.cancel(canceled.job_id) is JobStatus.CANCELED
    later = _add(store, "owner-b")
    unfinished = store.unfinished()
    assert [r.job_id for r in unfinished] == [waiting.job_id, running.job_id, later.job_id]
    assert [r.status for r in unfinished] == [JobStatus.WAITING, JobStatus.RUNNING, JobStatus.WAITING]


def test_counts(store: JobStore) -> None:
    empty = store.counts()
    assert empty[JobStatus.WAITING] == 0 and empty[JobStatus.RUNNING] == 0
    for _ in range(2):
        _add(store)
    _running(store)
    done, failed, canceled = _running(store), _running(store), _add(store)
    assert store.finish(done.job_id, JobStatus.DONE, b"r", None) is True
    assert store.finish(failed.job_id, JobStatus.ERROR, None, "bad") is True
    assert store.cancel(canceled.job_id) is JobStatus.CANCELED
    counts = store.counts()
    assert counts[JobStatus.WAITING] == 2 and counts[JobStatus.RUNNING] == 1
    truth = {JobStatus.WAITING: 2, JobStatus.RUNNING: 1, JobStatus.DONE: 1, JobStatus.ERROR: 1,
             JobStatus.CANCELED: 1}
    # finished statuses are optional (Redis does not index them); reported, they are right
    assert {status: truth[status] for status in counts} == counts


def test_a_reopened_store_recovers_interrupted_jobs(open_store: OpenStore) -> None:
    before = open_store()
    interrupted = _running(before)                  # its worker died on the first run
    worn_out = _running(before)                     # ... and this one on its third
    for _ in range(2):
        assert before.requeue(worn_out.job_id) is True
        assert before.claim(worn_out.job_id, 3) is not None
    waiting = _add(before)
    done = _running(before)
    assert before.finish(done.job_id, JobStatus.DONE, b"r", None) is True

    after = open_store()  # what a restarted server opens
    assert [r.job_id for r in after.unfinished()] == [interrupted.job_id, worn_out.job_id, waiting.job_id]
    assert recover_unfinished(after, max_attempts=3) == [interrupted.job_id, waiting.job_id]

    requeued = after.get(interrupted.job_id)
    assert requeued is not None and requeued.status is JobStatus.WAITING and requeued.attempts == 1
    assert after.payload(interrupted.job_id) == b"problem"
    failed = after.get(worn_out.job_id)
    assert failed is not None and failed.status is JobStatus.ERROR
    assert failed.message == interrupted_message(3)
    assert after.get(done.job_id) == before.get(done.job_id)
    assert after.result(done.job_id) == b"r"
    assert [r.job_id for r in after.unfinished()] == [interrupted.job_id, waiting.job_id]
    assert recover_unfinished(open_store(), max_attempts=3) == [interrupted.job_id, waiting.job_id]
