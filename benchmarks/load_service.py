"""Bounded load generator for the solver service (issue 7): throughput, p50/p99 latency, errors
and server memory growth at 1, 16 and 64 concurrent clients, against the embedded default and
against the Redis scale-out (``spinout serve --redis`` + 2 ``spinout worker``).

Every level stops by itself: after ``--requests`` requests or ``--seconds`` seconds, whichever
comes first. Loopback only; the script starts and stops its own servers (and redis-server).

Each client loops over a fixed mix (seeded): 50 % small synchronous solves (16 variables,
fujitsuDA2, 200 iterations x 16 runs), 25 % asynchronous jobs (submit, poll until Done, DELETE,
each call counted), 25 % reads (job list, healthcheck). Clients share 4 API keys (64 clients =
16 per key = the per-key job limit), so a 429 is possible and is the only error allowed.

Memory: the server's RSS (API and workers) after a warm-up, and after the last level; growth
is (end - after warm-up) / after warm-up.

    python benchmarks/load_service.py [--modes embedded redis] [--clients 1 16 64]
                                      [--seconds 20] [--requests 20000] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.service.conftest import ServerProcess, free_port, random_terms, serve_args  # noqa: E402

KEYS = [f"load-key-{k}" for k in range(4)]
SEED = 7


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Level:
    """One load level's measurements."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.exceptions: dict[str, int] = {}
        self.jobs_done = 0

    def record(self, status: int, seconds: float) -> None:
        self.latencies.append(seconds)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    @property
    def requests(self) -> int:
        return len(self.latencies)

    def errors(self) -> int:
        bad = sum(n for s, n in self.statuses.items() if s >= 400 and s != 429)
        return bad + sum(self.exceptions.values())


async def call(client: httpx.AsyncClient, level: Level, method: str, path: str, **kw: Any) -> httpx.Response | None:
    start = time.perf_counter()
    try:
        r = await client.request(method, path, **kw)
    except httpx.HTTPError as exc:
        name = exc.__class__.__name__
        level.exceptions[name] = level.exceptions.get(name, 0) + 1
        return None
    level.record(r.status_code, time.perf_counter() - start)
    return r


async def client_loop(url: str, key: str, seed: int, level: Level, deadline: float, budget: list[int]) -> None:
    rng = random.Random(seed)
    sync_body = {"binary_polynomial": {"terms": random_terms(16, density=0.3, seed=seed % 50)},
                 "fujitsuDA2": {"number_iterations": 200, "number_runs": 16}}
    async with httpx.AsyncClient(base_url=url, headers={"X-Api-Key": key}, timeout=60) as c:
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            pick = rng.random()
            if pick < 0.5:
                await call(c, level, "POST", "/v2/qubo/solve", json=sync_body)
            elif pick < 0.75:
                r = await call(c, level, "POST", "/v2/async/qubo/solve", json=sync_body)
                if r is None or r.status_code != 200:
                    continue
                job_id = r.json()["job_id"]
                while time.monotonic() < deadline + 60:
                    budget[0] -= 1
                    r = await call(c, level, "DELETE", f"/v2/async/jobs/result/{job_id}")
                    if r is None or r.status_code != 200 or r.json()["status"] in ("Deleted", "Error"):
                        level.jobs_done += 1
                        break
                    await asyncio.sleep(0.02)
            elif pick < 0.875:
                await call(c, level, "GET", "/v2/async/jobs")
            else:
                await call(c, level, "GET", "/v1/healthcheck")


async def run_level(url: str, clients: int, seconds: float, requests: int) -> tuple[Level, float]:
    level = Level()
    budget = [requests]
    start = time.monotonic()
    deadline = start + seconds
    await asyncio.gather(*(client_loop(url, KEYS[k % len(KEYS)], SEED * 1000 + k, level, deadline, budget)
                           for k in range(clients)))
    return level, time.monotonic() - start


def summarize(level: Level, wall: float) -> dict[str, Any]:
    lat = sorted(level.latencies)
    q = (lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000) if lat else (lambda p: float("nan"))
    return {"requests": level.requests, "seconds": round(wall, 2),
            "throughput_rps": round(level.requests / wall, 1), "p50_ms": round(q(0.50), 2),
            "p99_ms": round(q(0.99), 2), "max_ms": round(lat[-1] * 1000, 2) if lat else None,
            "mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else None,
            "statuses": dict(sorted(level.statuses.items())), "exceptions": level.exceptions,
            "errors_other_than_429": level.errors(), "async_jobs_completed": level.jobs_done}


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "yes", "--dir", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    conn = redis.Redis(port=port)
    for _ in range(200):
        try:
            conn.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    conn.close()
    return proc, f"redis://127.0.0.1:{port}/0"


def run_mode(mode: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    env = {"SPINOUT_LOG_LEVEL": "WARNING", "SPINOUT_API_KEYS": ",".join(KEYS)}
    port = free_port()
    redis_proc = None
    workers: list[ServerProcess] = []
    if mode == "redis":
        redis_proc, url = start_redis(tmp)
        api = ServerProcess(serve_args(port, "--redis", url), env, tmp / "api.log", port)
        workers = [ServerProcess(["worker", "--redis", url, "--name", f"load-{k}-{port}"], env,
                                 tmp / f"worker{k}.log") for k in range(2)]
        for w in workers:
            w.start(wait=False)
    else:
        api = ServerProcess(serve_args(port, "--database", str(tmp / "jobs.sqlite3")), env, tmp / "api.log", port)
    api.start()
    procs = {"api": api, **{f"worker{k}": w for k, w in enumerate(workers)}}
    try:
        warm, _ = asyncio.run(run_level(api.url, 4, min(5.0, args.seconds), 400))  # allocations settle
        rss_start = {name: rss_mib(p.proc.pid) for name, p in procs.items() if p.proc}
        levels = {}
        for clients in args.clients:
            level, wall = asyncio.run(run_level(api.url, clients, args.seconds, args.requests))
            levels[clients] = summarize(level, wall)
            levels[clients]["rss_mib"] = {name: round(rss_mib(p.proc.pid), 1) for name, p in procs.items() if p.proc}
            print(f"  {mode:8s} {clients:3d} clients: {levels[clients]['throughput_rps']:7.1f} req/s  "
                  f"p50 {levels[clients]['p50_ms']:7.2f} ms  p99 {levels[clients]['p99_ms']:8.2f} ms  "
                  f"errors {levels[clients]['errors_other_than_429']}  429s {level.statuses.get(429, 0)}  "
                  f"RSS {levels[clients]['rss_mib']}", flush=True)
        rss_end = {name: rss_mib(p.proc.pid) for name, p in procs.items() if p.proc}
        alive = all(p.proc is not None and p.proc.poll() is None for p in procs.values())
    finally:
        api.stop()
        for w in workers:
            w.stop()
        if redis_proc is not None:
            redis_proc.kill()
            redis_proc.wait(timeout=10)
    growth = {name: round(100 * (rss_end[name] - rss_start[name]) / rss_start[name], 2) for name in rss_start}
    return {"levels": levels, "rss_after_warmup_mib": {k: round(v, 1) for k, v in rss_start.items()},
            "rss_end_mib": {k: round(v, 1) for k, v in rss_end.items()}, "rss_growth_pct": growth,
            "servers_alive_at_end": alive, "warmup_requests": warm.requests}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", nargs="+", default=["embedded", "redis"], choices=["embedded", "redis"])
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=20.0, help="per level (upper bound)")
    parser.add_argument("--requests", type=int, default=20_000, help="per level (upper bound)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}; seed {SEED}; "
          f"server workers: default (one per core); levels {args.clients} x <= {args.seconds:g} s "
          f"/ <= {args.requests} requests", flush=True)
    out: dict[str, Any] = {}
    for mode in args.modes:
        with tempfile.TemporaryDirectory(prefix=f"spinout-load-{mode}-") as tmp:
            out[mode] = run_mode(mode, args, Path(tmp))
        print(f"  {mode}: RSS after warm-up {out[mode]['rss_after_warmup_mib']} MiB, end "
              f"{out[mode]['rss_end_mib']} MiB, growth {out[mode]['rss_growth_pct']} %", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    ok = all(level["errors_other_than_429"] == 0 for m in out.values() for level in m["levels"].values())
    ok &= all(g < 10 for m in out.values() for g in m["rss_growth_pct"].values())
    print("PASS" if ok else "FAIL: errors other than 429, or memory growth >= 10 %")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
