"""100,000 variables through the v4 route: parse, build, first progress, peak memory.

A random 3-regular graph with +-1 weights (seed 2026, ~150,000 couplings, 5 MB of DA JSON) as a
fujitsuDA3 job to ``POST /v4/async/qubo/solve`` on a ``spinout serve`` started here (one solver
thread). Prints, medians over ``--repeats`` jobs: the time to the job's acceptance (the body
parsed and validated, the job stored), the server's solve time and the time of the first
reported progress entry (from the solve's start), and the server's peak resident memory
(VmHWM) after all jobs; beside them the in-process parse and build of the same body.

    python benchmarks/bench_100k.py [--seconds 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.jobs.parsing import parse_da_request  # noqa: E402
from service.jobs.solvers import build_problem  # noqa: E402
from tests.servers import standalone_server  # noqa: E402
from tests.service.engine.test_large_problems import N, regular_graph_body  # noqa: E402


def resident_peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="time_limit_sec of each job")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    body = json.loads(regular_graph_body(N))
    body["fujitsuDA3"] = {"time_limit_sec": args.seconds, "num_run": 16, "random_seed": 1}
    raw = json.dumps(body).encode()
    parse_s, build_s = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        job = parse_da_request(raw, "v4", 2_000_000)
        t1 = time.perf_counter()
        build_problem(job.problem, job.pattern)
        parse_s.append(t1 - t)
        build_s.append(time.perf_counter() - t1)
    print(f"{N:,} variables, {len(body['binary_polynomial']['terms']):,} couplings, "
          f"{len(raw) / 1e6:.1f} MB of DA JSON; in-process parse {statistics.median(parse_s):.2f} s, "
          f"build {statistics.median(build_s) * 1000:.0f} ms (medians of {args.repeats})")
    accepted, solve, first = [], [], []
    with standalone_server() as server, httpx.Client(base_url=server.url, timeout=600) as http:
        for _ in range(args.repeats):
            t = time.perf_counter()
            r = http.post("/v4/async/qubo/solve", content=raw, headers={"Content-Type": "application/json"})
            accepted.append(time.perf_counter() - t)
            job_id = r.json()["job_id"]
            while True:
                reply = http.get(f"/v4/async/jobs/result/{job_id}").json()
                if reply["status"] not in ("Waiting", "Running"):
                    break
                time.sleep(0.5)
            assert reply["status"] == "Done", reply
            solution = reply["qubo_solution"]
            solve.append(float(solution["timing"]["solve_time"]) / 1000)
            first.append(solution["progress"][0]["time"])
            http.delete(f"/v4/async/jobs/result/{job_id}")
        assert server.proc is not None
        peak = resident_peak_mib(server.proc.pid)
    print(f"v4 route: accepted after {statistics.median(accepted):.2f} s (body sent, parsed, "
          f"stored), first progress entry {statistics.median(first):.2f} s into the solve, "
          f"solve {statistics.median(solve):.1f} s; server peak resident {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
