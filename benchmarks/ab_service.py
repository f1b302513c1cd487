"""Two checkouts' services side by side under wrk: small synchronous jobs' jobs/s and latency.

Starts ``spinout serve`` from this checkout ("after") and from ``--before DIR`` (another checkout,
its kernels warmed there), one at a time under load: for each connection count, rounds alternate
before/after (``--rounds`` each), so drift of the shared machine hits both alike. The load is wrk
(one thread, C, so it takes little of the two cores the server needs) with a Lua script that
POSTs the same small DA job as ``bench_service.py`` (64 variables, ~20 % dense, fujitsuDA,
1,000 iterations x 16 runs) to ``/v1/qubo/solve`` with an API key. Prints medians over rounds and
the after/before ratios; ``--json`` writes every round.

    python benchmarks/ab_service.py --before /tmp/before [--connections 1 8 32 64]
                                    [--seconds 8] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_service import small_terms  # noqa: E402
from tests.servers import ServerProcess, free_port  # noqa: E402

KEY = "ab-key"
LUA = """
local f = assert(io.open(os.getenv("AB_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Api-Key"] = "%s"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "duration_us": %%d, "socket_errors": %%d, "status_errors": %%d, ' ..
    '"p50_us": %%d, "p99_us": %%d}\\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50),
    latency:percentile(99)))
end
""" % KEY


def start(tree: Path, workdir: Path) -> ServerProcess:
    port = free_port()
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--api-key", KEY,
            "--database", str(workdir / "jobs.sqlite3")]
    # PYTHONPATH first: the tree's own packages, whatever the editable install points at.
    env = {"PYTHONPATH": str(tree), "SPINOUT_API_KEYS": None, "SPINOUT_REDIS_URL": None}
    proc = ServerProcess(args, env, workdir / "server.log", port, cwd=tree)
    return proc.start(timeout=300)


def wrk_round(url: str, connections: int, seconds: float, script: Path, body: Path) -> dict[str, Any]:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s",
                          "-s", str(script), f"{url}/v1/qubo/solve"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "AB_BODY_FILE": str(body)})
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["jobs_per_s"] = figures["requests"] / (figures["duration_us"] / 1e6)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--seconds", type=float, default=8.0, help="per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per tree and level")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("ab_service: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    trees = {"before": args.before.resolve(), "after": REPO}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"wrk -t1, {args.seconds:g} s rounds, {args.rounds} per tree and level, alternating")
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "job.json"
        body.write_text(json.dumps({"binary_polynomial": {"terms": small_terms()},
                                    "fujitsuDA": {"number_iterations": 1000, "number_runs": 16,
                                                  "random_seed": 1}}))
        script = Path(tmp) / "post.lua"
        script.write_text(LUA)
        servers = {}
        try:
            for name, tree in trees.items():
                workdir = Path(tmp) / name
                workdir.mkdir()
                servers[name] = start(tree, workdir)
            for connections in args.connections:
                for name in trees:  # a short warm round each, not recorded
                    wrk_round(servers[name].url, connections, 2, script, body)
                for k in range(args.rounds):
                    for name in (("before", "after") if k % 2 == 0 else ("after", "before")):
                        figures = wrk_round(servers[name].url, connections, args.seconds, script, body)
                        rounds.append({"tree": name, "connections": connections, **figures})
        finally:
            for server in servers.values():
                server.stop()
    print(f"{'conns':>5} {'jobs/s before':>14} {'after':>8} {'ratio':>6} {'p99 ms before':>14} "
          f"{'after':>8} {'ratio':>6} {'errors':>6}")
    summary = []
    for connections in args.connections:
        def median(tree: str, key: str) -> float:
            return statistics.median(r[key] for r in rounds
                                     if r["tree"] == tree and r["connections"] == connections)
        row = {"connections": connections,
               **{f"{key}_{tree}": median(tree, key) for tree in trees
                  for key in ("jobs_per_s", "p99_us")},
               "errors": sum(r["socket_errors"] + r["status_errors"] for r in rounds
                             if r["connections"] == connections)}
        row["jobs_ratio"] = row["jobs_per_s_after"] / row["jobs_per_s_before"]
        row["p99_ratio"] = row["p99_us_after"] / row["p99_us_before"]
        summary.append(row)
        print(f"{connections:>5} {row['jobs_per_s_before']:>14.1f} {row['jobs_per_s_after']:>8.1f} "
              f"{row['jobs_ratio']:>6.3f} {row['p99_us_before'] / 1e3:>14.2f} "
              f"{row['p99_us_after'] / 1e3:>8.2f} {row['p99_ratio']:>6.3f} {row['errors']:>6}")
    if args.json:
        args.json.write_text(json.dumps({"rounds": rounds, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
