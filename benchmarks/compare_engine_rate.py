"""Two checkouts of SpinOut side by side: the engine's flip rate on unconstrained problems.

    python benchmarks/compare_engine_rate.py --before /path/to/other/checkout [--rounds 8] [--seconds 2]

Each round runs, in a fresh process per checkout (order alternating), serial time-limited solves
of SK1024 (dense) and G1 (sparse) with sweeps and with parallel trials, as bench_engine's rate
section does, and reports single-flip attempts per second: medians over rounds and the ratio
after / before. The same seed gives the same best energies when the kernels' random stream is the
same, which is printed too. A checkout needs its numba cache warm (``python -m service.warmup``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = r'''
import json, sys
sys.path.insert(0, ".")
import numpy as np
from service.engine import BinaryQuadraticProblem, solve_time_limited
from service.engine.loaders import load_instance
from service.engine.solver import ENSEMBLES_PER_GROUP
rng = np.random.default_rng(7)
n = 1024
j = np.triu(rng.choice([-1.0, 1.0], size=(n, n)), 1)
sk = BinaryQuadraticProblem.from_ising(np.zeros(n), j, storage="dense")
g1 = load_instance(sys.argv[2]).problem
out = {}
for name, p in (("SK1024", sk), ("G1", g1)):
    for moves in ("sweep", "trial"):
        solve_time_limited(p, time_limit=0.2, moves=moves, seed=1, parallel=False)
        r = solve_time_limited(p, time_limit=float(sys.argv[1]), moves=moves, seed=2026,
                               parallel=False)
        out[f"{name} {moves}"] = (r.info["rounds_done"] * 16 * ENSEMBLES_PER_GROUP * p.num_variables
                                  / r.timing["anneal"] / 1e6, r.best_energy)
print(json.dumps(out))
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout")
    parser.add_argument("--after", type=Path, default=ROOT)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    g1 = str(ROOT / ".." / "shared" / "data" / "gset" / "G1.txt")
    trees = [("before", args.before), ("after", args.after)]
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for r in range(args.rounds):
        for label, tree in (trees if r % 2 == 0 else trees[::-1]):
            done = subprocess.run([sys.executable, "-c", PROBE, str(args.seconds), g1], cwd=tree,
                                  capture_output=True, text=True, check=True)
            runs[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"serial time-limited solves, {args.seconds:g} s each, {args.rounds} alternating rounds; "
          "M single-flip attempts/s (median), ratio after / before; best energies")
    for key in runs["before"][0]:
        before = statistics.median(x[key][0] for x in runs["before"])
        after = statistics.median(x[key][0] for x in runs["after"])
        bests = sorted({x[key][1] for side in runs.values() for x in side})
        print(f"{key:14s} before {before:8.1f}  after {after:8.1f}  ratio {after / before:.3f}  "
              f"best {bests}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
