"""The scale-out mode's job store: the same JobStore interface on Redis, transitions in Lua.

Keys (prefix ``spinout:``): ``job:{id}`` a hash (record fields, ``payload``, ``result``);
``owner:{digest}`` a set of the owner's job ids (the per-key limit, atomic in the create script);
``unfinished`` the ids Waiting or Running (what the monitor scans); ``lease:{id}`` a short-lived
key a worker renews while it runs the job: when it lapses the worker is presumed dead.
The scripts take the statuses they compare and set as arguments (the enum's values).
"""

from __future__ import annotations

import time
from typing import Any

from redis import Redis

from client.wire.da import FINISHED_STATUSES, PENDING_STATUSES, JobStatus

from .records import JobLimitError, JobRecord

PREFIX = "spinout:"
UNFINISHED_KEY = PREFIX + "unfinished"

_CREATE = """
if tonumber(ARGV[1]) >= 0 and redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
"""

# KEYS: job hash, unfinished set. ARGV: expected statuses (comma list), mode, job id, field/value pairs.
_TRANSITION = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return false end
local ok = false
for s in string.gmatch(ARGV[1], '[^,]+') do if s == st then ok = true end end
if not ok then return st end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[2] == 'finish' then
  redis.call('SREM', KEYS[2], ARGV[3])
  redis.call('HDEL', KEYS[1], 'payload')
elseif ARGV[2] == 'claim' then
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
end
return 'OK'
"""

_DELETE = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 0 end
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == st then
    redis.call('DEL', KEYS[1])
    redis.call('SREM', KEYS[2], ARGV[2])
    return 1
  end
end
return 0
"""

_FIELDS = ("owner", "status", "version", "created_at", "started_at", "finished_at", "attempts",
           "message", "kind")


def job_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def _owner_key(owner: str) -> str:
    return f"{PREFIX}owner:{owner}"


def lease_key(job_id: str) -> str:
    return f"{PREFIX}lease:{job_id}"


def _text(value: Any) -> str | None:
    return None if value is None else value.decode() if isinstance(value, bytes) else str(value)


def _status_list(statuses: tuple[JobStatus, ...]) -> str:
    """The scripts' comma list of expected statuses."""
    return ",".join(s.value for s in statuses)


class RedisJobStore:
    """JobStore on a Redis connection (``decode_responses`` must be off: payloads are bytes)."""

    def __init__(self, connection: Redis) -> None:
        self.redis = connection
        self._create = connection.register_script(_CREATE)
        self._transition = connection.register_script(_TRANSITION)
        self._delete = connection.register_script(_DELETE)

    @classmethod
    def from_url(cls, url: str) -> RedisJobStore:
        return cls(Redis.from_url(url))

    def create(self, record: JobRecord, payload: bytes, limit: int | None) -> None:
        pairs: list[Any] = []
        for name in _FIELDS:
            value = getattr(record, name)
            if value is not None:
                pairs += [name, value.value if isinstance(value, JobStatus) else value]
        pairs += ["payload", payload]
        ok = self._create(keys=[_owner_key(record.owner), job_key(record.job_id), UNFINISHED_KEY],
                          args=[-1 if limit is None else limit, record.job_id, *pairs])
        if not ok:
            raise JobLimitError(record.owner)

    def get(self, job_id: str) -> JobRecord | None:
        values = self.redis.hmget(job_key(job_id), _FIELDS)
        if values[1] is None:
            return None
        d = dict(zip(_FIELDS, (_text(v) for v in values)))
        return JobRecord(job_id=job_id, owner=d["owner"] or "", status=JobStatus(d["status"]),
                         version=d["version"] or "", created_at=float(d["created_at"] or 0),
                         started_at=None if d["started_at"] is None else float(d["started_at"]),
                         finished_at=None if d["finished_at"] is None else float(d["finished_at"]),
                         attempts=int(d["attempts"] or 0), message=d["message"], kind=d["kind"] or "da")

    def payload(self, job_id: str) -> bytes | None:
        value = self.redis.hget(job_key(job_id), "payload")
        return value if isinstance(value, bytes) else None

    def result(self, job_id: str) -> bytes | None:
        value = self.redis.hget(job_key(job_id), "result")
        return value if isinstance(value, bytes) else None

    def list_owned(self, owner: str) -> list[JobRecord]:
        ids = sorted(_text(i) or "" for i in self.redis.smembers(_owner_key(owner)))
        records = [r for r in (self.get(i) for i in ids) if r is not None]
        return sorted(records, key=lambda r: r.created_at)

    def _move(self, job_id: str, expected: tuple[JobStatus, ...], mode: str, status: JobStatus,
              **fields: Any) -> bytes | None:
        """b"OK" when moved; the job's status when it is not in ``expected``; None when gone."""
        pairs: list[Any] = ["status", JobStatus(status).value]
        for name, value in fields.items():
            if value is not None:
                pairs += [name, value]
        out: bytes | None = self._transition(keys=[job_key(job_id), UNFINISHED_KEY],
                                             args=[_status_list(expected), mode, job_id, *pairs])
        return out

    def claim(self, job_id: str, max_attempts: int) -> JobRecord | None:
        ok = self._move(job_id, (JobStatus.WAITING,), "claim", JobStatus.RUNNING, started_at=time.time())
        return self.get(job_id) if ok == b"OK" else None

    def finish(self, job_id: str, status: JobStatus, result: bytes | None, message: str | None) -> bool:
        return self._move(job_id, (JobStatus.RUNNING,), "finish", status, result=result,
                          message=message, finished_at=time.time()) == b"OK"

    def fail_unfinished(self, job_id: str, message: str) -> bool:
        return self._move(job_id, PENDING_STATUSES, "finish", JobStatus.ERROR, message=message,
                          finished_at=time.time()) == b"OK"

    def cancel(self, job_id: str) -> JobStatus | None:
        out = self._move(job_id, (JobStatus.WAITING,), "finish", JobStatus.CANCELED,
                         finished_at=time.time())
        if out is None:
            return None
        return JobStatus.CANCELED if out == b"OK" else JobStatus(_text(out))

    def requeue(self, job_id: str) -> bool:
        return self._move(job_id, (JobStatus.RUNNING,), "requeue", JobStatus.WAITING) == b"OK"

    def delete(self, job_id: str) -> bool:
        owner = _text(self.redis.hget(job_key(job_id), "owner")) or ""
        return bool(self._delete(keys=[job_key(job_id), _owner_key(owner)],
                                 args=[_status_list(FINISHED_STATUSES), job_id]))

    def unfinished(self) -> list[JobRecord]:
        ids = [_text(i) or "" for i in self.redis.smembers(UNFINISHED_KEY)]
        records = [r for r in (self.get(i) for i in ids) if r is not None]
        return sorted(records, key=lambda r: r.created_at)

    def counts(self) -> dict[JobStatus, int]:
        """Waiting and Running only: finished jobs are not indexed by status."""
        out = dict.fromkeys(PENDING_STATUSES, 0)
        for record in self.unfinished():
            out[record.status] = out.get(record.status, 0) + 1
        return out

    def expire(self, older_than: float) -> int:
        removed = 0
        for key in self.redis.scan_iter(match=f"{PREFIX}job:*", count=500):
            job_id = _text(key)[len(PREFIX) + 4:]  # type: ignore[index]
            rec = self.get(job_id)
            if rec and rec.status in FINISHED_STATUSES and (rec.finished_at or 0) < older_than:
                removed += int(self.delete(job_id))
        return removed

    def close(self) -> None:
        self.redis.close()
