"""Longer fault runs against the solver service (issue 7): repeated kill -9 of the embedded
server in submission bursts, repeated kill -9 of workers mid-job and Redis restarts in the
scale-out. After each run every accepted job (job_id returned) must be Done, or Error with a
reason; the script prints jobs accepted and jobs lost per scenario and exits non-zero on a loss.

Bounded: ``--cycles`` fault cycles of ``--burst`` seconds each per scenario. Loopback only; the
script starts and stops its own servers, workers and redis-server (AOF, fsync always).

    python benchmarks/fault_service.py [--cycles 5] [--burst 3] [--scenarios embedded redis]
                                       [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from tests.reliability.conftest import small_job  # noqa: E402
from tests.reliability.test_faults import RedisProcess, account, run_burst  # noqa: E402
from tests.service.conftest import ServerProcess, free_port, random_terms, serve_args  # noqa: E402


def embedded(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """kill -9 the server ``cycles`` times, each in the middle of a burst of 4 submitters."""
    port = free_port()
    cmd = serve_args(port, "--workers", "1", "--database", str(tmp / "jobs.sqlite3"), "--job-limit", "10000000")
    env = {"SPINOUT_LOG_LEVEL": "WARNING"}
    accepted: list[str] = []
    rng = random.Random(args.seed)
    for cycle in range(args.cycles):
        server = ServerProcess(cmd, env, tmp / f"server{cycle}.log", port).start()
        try:
            ids, _ = run_burst(server.url, args.burst * rng.uniform(0.5, 1.0), 4,
                               lambda k: small_job(8, seed=k, iterations=3000), during=server.kill9)
        finally:
            server.kill9()
        accepted += ids
        print(f"  embedded cycle {cycle}: {len(ids)} accepted, then kill -9", flush=True)
    final = ServerProcess(cmd, env, tmp / "final.log", port).start()
    try:
        counts, lost = account(final.url, accepted, timeout=600)
    finally:
        final.stop()
    return {"accepted": len(accepted), "lost": len(lost), "final": counts}


def scale_out(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Each cycle: long jobs start, the worker holding one is killed -9 mid-job, Redis is
    killed -9 and restarted on its AOF while submissions go on, the worker comes back."""
    store = RedisProcess(tmp).start()
    env = {"SPINOUT_LOG_LEVEL": "WARNING", "SPINOUT_LEASE_SECONDS": "1.5", "SPINOUT_JOB_LIMIT": "10000000"}
    port = free_port()
    api = ServerProcess(serve_args(port, "--redis", store.url, "--workers", "1"), env, tmp / "api.log", port)
    workers = [ServerProcess(["worker", "--redis", store.url, "--name", f"w{k}-{port}"], env,
                             tmp / f"worker{k}.log") for k in range(2)]
    for w in workers:
        w.start(wait=False)
    api.start()
    accepted: list[str] = []
    long_ids: list[str] = []
    refused_total: dict[int, int] = {}
    long_job = {"binary_polynomial": {"terms": random_terms(10)}, "fujitsuDA3": {"time_limit_sec": 2, "num_run": 2}}
    import httpx

    try:
        for cycle in range(args.cycles):
            conn = redis.Redis.from_url(store.url)
            drain = time.monotonic() + 300  # let the last burst's backlog drain: the long jobs
            while conn.scard("spinout:unfinished") > 0 and time.monotonic() < drain:  # must run
                time.sleep(0.2)
            conn.close()
            with httpx.Client(base_url=api.url, timeout=30) as c:
                ids = [c.post("/v3/async/qubo/solve", json=long_job).json()["job_id"] for _ in range(2)]
            long_ids += ids
            conn = redis.Redis.from_url(store.url)
            holder = None
            deadline = time.monotonic() + 60
            while holder is None and time.monotonic() < deadline:
                holder = next((conn.get(f"spinout:lease:{j}") for j in ids if conn.get(f"spinout:lease:{j}")), None)
                time.sleep(0.05)
            conn.close()

            def fault() -> None:
                victim = next((w for w in workers if w.proc is not None and holder is not None
                               and w.proc.pid == int(holder)), None)
                if victim is not None:
                    victim.kill9()
                time.sleep(0.5)
                store.kill9()
                time.sleep(1.0)
                store.start()
                if victim is not None:
                    victim.start(wait=False)

            ids, refused = run_burst(api.url, args.burst, 2, lambda k: small_job(6, seed=k, iterations=500),
                                     during=fault)
            accepted += ids
            for code, n in refused.items():
                refused_total[code] = refused_total.get(code, 0) + n
            killed = f"worker pid {int(holder)} killed -9 mid-job" if holder else \
                "no long job started within 60 s (backlog), no worker killed"
            print(f"  scale-out cycle {cycle}: {len(ids)} + 2 long accepted; {killed}; Redis killed -9 and "
                  f"restarted; refused {refused}", flush=True)
        counts_long, lost_long = account(api.url, long_ids, timeout=600, version="v3")
        counts, lost = account(api.url, accepted, timeout=600)
    finally:
        api.stop()
        for w in workers:
            w.stop()
        store.kill9()
    return {"accepted": len(accepted) + len(long_ids), "lost": len(lost) + len(lost_long),
            "final": {"short": counts, "long": counts_long}, "refused_during_faults": refused_total}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=["embedded", "redis"], choices=["embedded", "redis"])
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--burst", type=float, default=3.0, help="seconds of submissions per cycle")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.2f}; seed {args.seed}; {args.cycles} cycles x {args.burst:g} s",
          flush=True)
    out: dict[str, Any] = {}
    runners = {"embedded": embedded, "redis": scale_out}
    for name in args.scenarios:
        with tempfile.TemporaryDirectory(prefix=f"spinout-fault-{name}-") as tmp:
            out[name] = runners[name](args, Path(tmp))
        print(f"{name}: {out[name]['accepted']} jobs accepted, {out[name]['lost']} lost; final {out[name]['final']}",
              flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0 if all(r["lost"] == 0 for r in out.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
