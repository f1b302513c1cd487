"""Cluster moves off against on (the automatic choice), same seeds, on the G-set's toroidal grids.

    python benchmarks/ab_cluster_moves.py                       # G11 5 s x 10 seeds, the large grids 10 s x 3
    python benchmarks/ab_cluster_moves.py --instances G32 --seconds 10 --seeds 5

Each run is ``solve_time_limited`` stopping at the best-known cut; printed per instance and
setting: the median best cut at the limit, how many runs reached the best known and the median
time they took (inf: not in half the runs), and the ratio of those medians (off / on).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.engine import solve_time_limited  # noqa: E402
from service.engine.loaders import load_instance  # noqa: E402

DATA = ROOT / ".." / "shared" / "data" / "gset"
SEED = 2026
#: instance -> (seconds, seeds) by default
DEFAULTS = {"G11": (5.0, 10), "G32": (10.0, 3), "G48": (10.0, 3), "G57": (10.0, 3), "G72": (10.0, 3),
            "G77": (10.0, 3)}


def median_time(times: list[float]) -> float:
    return statistics.median(times) if sum(math.isfinite(t) for t in times) > len(times) // 2 else math.inf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", default=",".join(DEFAULTS))
    parser.add_argument("--seconds", type=float, help="time limit of every run (default: per instance)")
    parser.add_argument("--seeds", type=int, help="runs per instance and setting (default: per instance)")
    args = parser.parse_args()
    for name in args.instances.split(","):
        seconds, seeds = DEFAULTS.get(name, (10.0, 3))
        seconds, seeds = args.seconds or seconds, args.seeds or seeds
        inst = load_instance(DATA / f"{name}.txt")
        known = inst.best_known
        summary = {}
        for choice in ("off", "auto"):
            cuts, times = [], []
            for k in range(seeds):
                r = solve_time_limited(inst.problem, time_limit=seconds, target_energy=inst.target_energy,
                                       seed=SEED + k, cluster_moves=choice,
                                       # cluster moves are a tempering feature; from 4,096 variables
                                       # on "auto" would anneal instead
                                       strategy="tempering")
                cut = inst.objective(r.best_energy)
                cuts.append(cut)
                times.append(r.progress[-1][0] if cut >= known else math.inf)
            summary[choice] = median_time(times)
            print(f"{name:<5} {inst.problem.num_variables:>6} nodes  cluster moves {choice:<4} "
                  f"(used: {r.info['cluster_moves']!s:<5})  median cut {statistics.median(cuts):g} of {known:g}, "
                  f"{sum(math.isfinite(t) for t in times)}/{seeds} reached it, median time "
                  f"{summary[choice]:.3f} s", flush=True)
        if math.isfinite(summary["auto"]) and summary["auto"] > 0:
            print(f"{name:<5} time to the best known, off / on: {summary['off'] / summary['auto']:.1f}x")


if __name__ == "__main__":
    main()
