"""The client's transports side by side: httpx's default (httpcore + h11) and ``Http1Transport``.

Starts a real ``spinout serve`` on a loopback port and times, for each transport in alternating
rounds, three requests: an empty ``GET /v1/healthcheck``, the trainer's mini-batch solve (984
variables, 88,400 couplings on a registered coupling pattern: 363 KB of float32 values, 10 DA
iterations) and a small DA JSON solve (64 variables, fujitsuDA 1,000 x 16). Reported per request:
median wall time and client CPU (``time.process_time``), and the ratio default / lean.

    python benchmarks/bench_client.py [--requests 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from client import CouplingPattern, SolverClient  # noqa: E402
from tests.servers import ServerProcess, free_port  # noqa: E402

from bench_service import small_terms  # noqa: E402


def trainer_like_problem(seed: int = 0) -> tuple[CouplingPattern, np.ndarray, np.ndarray]:
    """984 candidates (784 + 100 + 100), consecutive layers fully coupled: 88,400 couplings."""
    sizes = [784, 100, 100]
    offsets = np.cumsum([0] + sizes)
    rows, cols = [], []
    for k in range(len(sizes) - 1):
        a = np.arange(sizes[k]) + offsets[k]
        b = np.arange(sizes[k + 1]) + offsets[k + 1]
        rows.append(np.repeat(a, b.size))
        cols.append(np.tile(b, a.size))
    r, c = np.concatenate(rows).astype(np.int32), np.concatenate(cols).astype(np.int32)
    rng = np.random.default_rng(seed)
    n = int(offsets[-1])
    return CouplingPattern(n, r, c), rng.normal(size=r.size).astype(np.float32), rng.normal(size=n)


def measure(call: Callable[[], Any], count: int) -> tuple[float, float]:
    """(median wall ms, mean client CPU ms) over ``count`` calls."""
    walls = []
    cpu0 = time.process_time()
    for _ in range(count):
        t0 = time.perf_counter()
        call()
        walls.append(time.perf_counter() - t0)
    return 1000 * statistics.median(walls), 1000 * (time.process_time() - cpu0) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="requests per kind, round and transport")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="spinout-bench-")) / "server.log"
    server = ServerProcess(["serve", "--host", "127.0.0.1", "--port", str(port)], {}, log, port).start()
    pattern, values, linear = trainer_like_problem()
    state = np.ones(pattern.num_variables, dtype=np.uint8)
    small = {(t["p"][0], t["p"][-1]): t["c"] for t in small_terms()}
    clients = {"httpx default": SolverClient(server.url, lean_http=False),
               "Http1Transport": SolverClient(server.url)}
    kinds: dict[str, Callable[[SolverClient], Any]] = {
        "GET /v1/healthcheck": lambda c: c.healthcheck(),
        "trainer solve (pattern, 363 KB)": lambda c: c.solve(
            pattern.problem(values, linear), "fujitsuDA", transport="compact", expert_mode=True,
            number_iterations=10, number_runs=1, temperature_start=1.0, temperature_decay=0.6,
            offset_increase_rate=0.0, solution_mode="QUICK", guidance_config=state),
        "small DA JSON solve (64 vars)": lambda c: c.solve(small, "fujitsuDA", number_iterations=1000,
                                                           number_runs=16),
    }
    rows: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        for client in clients.values():  # warm-up: connections, the pattern, the kernels
            for kind in kinds.values():
                for _ in range(20):
                    kind(client)
        for r in range(args.rounds):
            order = list(clients.items()) if r % 2 == 0 else list(reversed(clients.items()))
            for name, client in order:
                for kind, call in kinds.items():
                    rows.setdefault((kind, name), []).append(measure(lambda: call(client), args.requests))
    finally:
        for client in clients.values():
            client.close()
        server.stop()
    report: dict[str, Any] = {}
    print(f"{'request':34s} {'transport':15s} {'wall ms':>8s} {'client CPU ms':>14s}")
    for kind in kinds:
        for name in clients:
            runs = rows[(kind, name)]
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            report[f"{kind} | {name}"] = {"wall_ms": wall, "client_cpu_ms": cpu}
            print(f"{kind:34s} {name:15s} {wall:8.3f} {cpu:14.3f}")
        base, lean = report[f"{kind} | httpx default"], report[f"{kind} | Http1Transport"]
        print(f"{'':34s} {'default / lean':15s} {base['wall_ms'] / lean['wall_ms']:7.2f}x "
              f"{base['client_cpu_ms'] / lean['client_cpu_ms']:13.2f}x")
    print(json.dumps(report, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
