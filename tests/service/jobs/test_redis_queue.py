"""A worker restarted under its old name after a kill -9: its dead self, still registered with
rq, is retired through rq's own API; a live namesake or another host's is left alone."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from redis import Redis
from rq import Queue, SimpleWorker

from service.jobs.redis_queue import QUEUE_NAME, _retire_dead_namesake

pytestmark = pytest.mark.redis

#: The Redis db this module owns on the test redis-server.
REDIS_DB = 4


@pytest.fixture()
def connection(redis_server: str) -> Iterator[Redis]:
    conn = Redis.from_url(redis_server.rsplit("/", 1)[0] + f"/{REDIS_DB}")
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


def _registered(connection: Redis, pid: int, hostname: str | None = None) -> None:
    """Register a worker named ``w`` as process ``pid`` (what a worker leaves when killed)."""
    old = SimpleWorker([Queue(QUEUE_NAME, connection=connection)], connection=connection, name="w")
    old.pid = pid
    if hostname is not None:
        old.hostname = hostname
    old.register_birth()


def _namesake(connection: Redis) -> SimpleWorker:
    return SimpleWorker([Queue(QUEUE_NAME, connection=connection)], connection=connection, name="w")


def test_a_dead_namesake_is_retired(connection: Redis) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _registered(connection, gone.pid)
    worker = _namesake(connection)
    with pytest.raises(ValueError, match="active worker named"):
        worker.register_birth()
    _retire_dead_namesake(worker)
    worker.register_birth()
    assert [w.name for w in SimpleWorker.all(connection=connection)] == ["w"]


def test_a_live_namesake_or_another_hosts_is_left_alone(connection: Redis) -> None:
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _registered(connection, alive.pid)
        worker = _namesake(connection)
        _retire_dead_namesake(worker)
        with pytest.raises(ValueError, match="active worker named"):
            worker.register_birth()
    finally:
        alive.kill()
        alive.wait()
    connection.flushdb()
    _registered(connection, alive.pid, hostname="another-host")  # gone, but not on this host
    worker = _namesake(connection)
    _retire_dead_namesake(worker)
    with pytest.raises(ValueError, match="active worker named"):
        worker.register_birth()
