"""Benchmark of the solver service (issue 3): throughput, latency, parsing and HTTP overhead.

Starts a real ``spinout serve`` (embedded mode, default workers) on a loopback port and measures:

1. small synchronous jobs (64 variables, ~20 % dense, fujitsuDA, 1,000 iterations x 16 runs) at
   1, 8 and 32 concurrent clients: jobs/s, p50 and p99 latency, next to the in-process solve time;
2. parse-and-validate time of a dense 1,024-variable DA JSON request (in-process);
3. end-to-end time of a ~1,000-variable, ~90,000-coupling layered problem over HTTP, with the
   compact transport and with DA JSON, against the in-process engine with the same budget; the
   overhead is the median end-to-end time minus the median in-process time.

Compilation is kept out of the timed parts (the server warms up before it reports healthy; the
in-process reference is warmed first). Prints the machine, seeds and thread count.

    python benchmarks/bench_service.py [--seconds 5] [--clients 1 8 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from client.wire.compact import CONTENT_TYPE, CompactProblem, decode_reply, encode_request  # noqa: E402
from service.jobs.parsing import parse_da_request  # noqa: E402
from service.jobs.solvers import solve_request  # noqa: E402
from tests.servers import ServerProcess, free_port  # noqa: E402

SEED = 0


def small_terms(n: int = 64, density: float = 0.2, seed: int = SEED) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(n, 1)
    keep = rng.random(i.size) < density
    terms = [{"c": float(c), "p": [int(a), int(b)]} for a, b, c in zip(i[keep], j[keep], rng.normal(size=keep.sum()))]
    terms += [{"c": float(c), "p": [k]} for k, c in enumerate(rng.normal(size=n))]
    return terms


def layered_problem(layers: int = 10, width: int = 100, seed: int = SEED) -> CompactProblem:
    """``layers`` x ``width`` variables, adjacent layers fully coupled (9 x 100 x 100 = 90,000)."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for layer in range(layers - 1):
        a = np.arange(layer * width, (layer + 1) * width)
        b = a + width
        rows.append(np.repeat(a, width))
        cols.append(np.tile(b, width))
    r, c = np.concatenate(rows), np.concatenate(cols)
    return CompactProblem.from_arrays(r, c, rng.normal(size=r.size), linear=rng.normal(size=layers * width))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _httpx_clients(url: str, body: bytes, clients: int, stop: float,
                         latencies: list[float]) -> int:
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        async def one_client() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = await client.post("/v1/qubo/solve", content=body, headers={"Content-Type": "application/json"})
                errors += r.status_code != 200
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(one_client() for _ in range(clients)))
    return errors


async def _lean_clients(url: str, body: bytes, clients: int, stop: float, latencies: list[float]) -> int:
    """Keep-alive HTTP/1.1 over raw asyncio streams: a load generator that takes a small share
    of the two cores it shares with the server (as wrk or hey would), so the figure is the
    server's. Each response is read whole (headers, then Content-Length bytes) and its status
    checked."""
    host, port = url.removeprefix("http://").split(":")
    request = (f"POST /v1/qubo/solve HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    errors = 0

    async def one_client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                errors += not head.startswith(b"HTTP/1.1 200")
                latencies.append(time.perf_counter() - t0)
        finally:
            writer.close()

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return errors


async def run_clients(url: str, body: bytes, clients: int, seconds: float, *, lean: bool = False,
                      server_pid: int | None = None) -> dict[str, float]:
    latencies: list[float] = []
    server_cpu = process_cpu_seconds(server_pid) if server_pid else 0.0
    client_cpu = time.process_time()
    start = time.perf_counter()
    runner = _lean_clients if lean else _httpx_clients
    errors = await runner(url, body, clients, start + seconds, latencies)
    elapsed = time.perf_counter() - start
    jobs = max(len(latencies), 1)
    row = {"clients": clients, "load_generator": "lean" if lean else "httpx", "jobs": len(latencies),
           "jobs_per_s": len(latencies) / elapsed, "p50_ms": 1000 * percentile(latencies, 50),
           "p99_ms": 1000 * percentile(latencies, 99), "errors": errors,
           "client_cpu_ms_per_job": 1000 * (time.process_time() - client_cpu) / jobs}
    if server_pid:
        row["server_cpu_ms_per_job"] = 1000 * (process_cpu_seconds(server_pid) - server_cpu) / jobs
    return row


def time_layered(url: str, problem: CompactProblem, iterations: int, repeats: int) -> dict[str, Any]:
    """Median end-to-end times of one layered solve: in-process, compact HTTP (full, and values
    only on a registered coupling pattern), DA JSON HTTP."""
    from client.wire.compact import pattern_key
    from service.jobs.solve_job import SolveJob

    params = {"number_iterations": iterations, "number_runs": 16, "random_seed": SEED}
    compact = encode_request(problem, "fujitsuDA2", params)
    da_json = orjson.dumps({"binary_polynomial": {"terms": [
        {"c": float(c), "p": [int(a), int(b)]} for a, b, c in zip(problem.rows, problem.cols, problem.values)]
        + [{"c": float(c), "p": [k]} for k, c in enumerate(problem.linear)]}, "fujitsuDA2": params})
    in_req = SolveJob(problem, "fujitsuDA2", parse_da_request(da_json, "v2").parameters)
    solve_request(in_req)
    on_pattern = CompactProblem(problem.num_variables, problem.rows, problem.cols,
                                problem.values.astype(np.float32), problem.linear, problem.constant,
                                pattern_key(problem.num_variables, problem.rows, problem.cols))
    lean = encode_request(on_pattern, "fujitsuDA2", params, with_pattern=False)
    t_in, t_compact, t_json, server_solve, t_lean, lean_solve = [], [], [], [], [], []
    # httpx's own transport, as ``SolverClient`` sends.
    with httpx.Client(base_url=url, timeout=120) as client:
        client.post("/spinout/v1/solve", content=compact, headers={"Content-Type": CONTENT_TYPE})
        client.post("/spinout/v1/solve", content=encode_request(on_pattern, "fujitsuDA2", params),
                    headers={"Content-Type": CONTENT_TYPE}).raise_for_status()  # registers it
        for _ in range(repeats):
            t0 = time.perf_counter()
            r = client.post("/spinout/v1/solve", content=lean, headers={"Content-Type": CONTENT_TYPE})
            lean_solve.append(decode_reply(r.content).timing["solve"])
            t_lean.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            solve_request(in_req)
            t_in.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            r = client.post("/spinout/v1/solve", content=compact, headers={"Content-Type": CONTENT_TYPE})
            reply = decode_reply(r.content)
            t_compact.append(time.perf_counter() - t0)
            server_solve.append(reply.timing["solve"])
            t0 = time.perf_counter()
            r = client.post("/v2/qubo/solve", content=da_json, headers={"Content-Type": "application/json"})
            r.json()
            t_json.append(time.perf_counter() - t0)
    med = statistics.median
    row = {"iterations": iterations, "num_variables": problem.num_variables,
           "couplings": int(problem.values.size), "compact_bytes": len(compact), "json_bytes": len(da_json),
           "inprocess_ms": 1000 * med(t_in), "compact_ms": 1000 * med(t_compact), "json_ms": 1000 * med(t_json),
           "compact_overhead_ms": 1000 * (med(t_compact) - med(t_in)),
           "compact_overhead_min_ms": 1000 * (min(t_compact) - min(t_in)),
           "compact_beyond_server_solve_ms": 1000 * med(np.subtract(t_compact, server_solve)),
           "json_overhead_ms": 1000 * (med(t_json) - med(t_in)),
           "pattern_bytes": len(lean), "pattern_ms": 1000 * med(t_lean),
           "pattern_beyond_server_solve_ms": 1000 * med(np.subtract(t_lean, lean_solve))}
    print(f"layered {row['num_variables']} vars, {row['couplings']:,} couplings, fujitsuDA2 {iterations} "
          f"iterations x 16 runs (compact {len(compact) / 1e6:.2f} MB, DA JSON {len(da_json) / 1e6:.2f} MB), "
          f"median of {repeats}:")
    print(f"  in-process {row['inprocess_ms']:.1f} ms | compact HTTP {row['compact_ms']:.1f} ms "
          f"(+{row['compact_overhead_ms']:.1f} ms median, +{row['compact_overhead_min_ms']:.1f} ms best-of; "
          f"+{row['compact_beyond_server_solve_ms']:.1f} ms beyond the server's own solve time) | "
          f"DA JSON HTTP {row['json_ms']:.1f} ms (+{row['json_overhead_ms']:.1f} ms)")
    print(f"  compact on a registered pattern (float32 values only, {len(lean) / 1e6:.2f} MB): "
          f"{row['pattern_ms']:.1f} ms (+{row['pattern_beyond_server_solve_ms']:.1f} ms beyond the "
          "server's own solve time, which builds the problem by one gather)")
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per concurrency level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=7, help="runs of the large-problem timings")
    parser.add_argument("--layered-iterations", type=int, nargs="+", default=[1, 200],
                        help="fujitsuDA2 budgets of the layered problem (1 isolates the overhead)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    import numba

    print(f"machine: {platform.node()} {platform.machine()} {platform.processor() or ''}, "
          f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), python {platform.python_version()}, "
          f"numba threads {numba.config.NUMBA_NUM_THREADS}, seed {SEED}")
    results: dict[str, Any] = {"seed": SEED, "cpus": len(os.sched_getaffinity(0))}

    # 2. parse + validate a dense 1,024-variable DA JSON body (in-process)
    rng = np.random.default_rng(SEED)
    i, j = np.triu_indices(1024)
    dense = orjson.dumps({"binary_polynomial": {"terms": [
        {"coefficient": float(c), "polynomials": [int(a), int(b)]}
        for a, b, c in zip(i, j, np.round(rng.normal(size=i.size), 6))]}, "fujitsuDA2": {}})
    parse_da_request(dense, "v2")
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        parse_da_request(dense, "v2")
        times.append(time.perf_counter() - t0)
    results["parse_dense_1024"] = {"bytes": len(dense), "terms": int(i.size), "median_s": statistics.median(times)}
    print(f"parse+validate dense 1,024 DA JSON ({len(dense) / 1e6:.1f} MB, {i.size:,} terms): "
          f"median {statistics.median(times) * 1000:.0f} ms (of {len(times)})")
    del dense

    tmp = Path(tempfile.mkdtemp(prefix="spinout-bench-"))
    port = free_port()
    server = ServerProcess(["serve", "--port", str(port)],
                           {"SPINOUT_LOG_LEVEL": "WARNING", "SPINOUT_API_KEYS": "",
                            "SPINOUT_DATABASE": str(tmp / "jobs.sqlite3")}, tmp / "server.log", port)
    url = server.url
    try:
        server.start()

        # 1. small synchronous jobs
        params = {"number_iterations": 1000, "number_runs": 16, "random_seed": SEED}
        small = orjson.dumps({"binary_polynomial": {"terms": small_terms()}, "fujitsuDA": params})
        req = parse_da_request(small, "v1")
        solve_request(req)
        inproc = []
        for _ in range(20):
            t0 = time.perf_counter()
            solve_request(req)
            inproc.append(time.perf_counter() - t0)
        results["small_inprocess_ms"] = 1000 * statistics.median(inproc)
        print(f"small job (64 vars, 20 % dense, fujitsuDA 1,000 x 16) in-process, one thread: "
              f"median {results['small_inprocess_ms']:.1f} ms")
        asyncio.run(run_clients(url, small, 2, 1.0))  # warm connections and threads
        results["small_sync"] = []
        pid = server.proc.pid if server.proc is not None else None
        for lean in (True, False):
            print(f"  load generator: {'lean asyncio streams' if lean else 'httpx.AsyncClient'}")
            for clients in args.clients:
                row = asyncio.run(run_clients(url, small, clients, args.seconds, lean=lean, server_pid=pid))
                results["small_sync"].append(row)
                print(f"  {clients:>3} clients: {row['jobs_per_s']:7.1f} jobs/s  p50 {row['p50_ms']:7.1f} ms  "
                      f"p99 {row['p99_ms']:7.1f} ms  errors {row['errors']}  CPU per job: server "
                      f"{row.get('server_cpu_ms_per_job', float('nan')):.2f} ms, load generator "
                      f"{row['client_cpu_ms_per_job']:.2f} ms")

        # 3. ~1,000 variables, ~90,000 couplings: HTTP (compact, DA JSON) vs in-process
        problem = layered_problem()
        results["layered"] = []
        for iterations in args.layered_iterations:
            results["layered"].append(time_layered(url, problem, iterations, args.repeats))
    finally:
        server.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
