"""``spinout anneal FILE``: solve a G-set, Beasley or .npy QUBO in-process and print the result."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="G-set graph (G11.txt), Beasley file (bqp50.txt or "
                        "bqp50.txt:3 for its 3rd instance) or a square .npy QUBO matrix")
    parser.add_argument("--time-limit", type=float, default=1.0, help="seconds (default 1)")
    parser.add_argument("--replicas", type=int, default=16,
                        help="replicas per tempering ladder (default 16; the anneal strategy runs 4)")
    parser.add_argument("--strategy", choices=("auto", "tempering", "anneal"), default="auto",
                        help="tempering, annealing paced by the clock (holding the cold end on sparse "
                             "graphs, restarting on denser ones), or auto: anneals from 4,096 variables on "
                             "(default)")
    parser.add_argument("--hold-cold", choices=("auto", "on", "off"), default="auto",
                        help="the anneal strategy: hold the cold end after the first anneal (on) or "
                             "restart (off); auto: hold on graphs of mean degree <= 6 (default)")
    parser.add_argument("--window-moves", choices=("auto", "on", "off"), default="auto",
                        help="the anneal strategy's cold hold: exact moves of whole blocks of a 2D "
                             "lattice; auto: on where the couplings lie on one (default)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def main(args: argparse.Namespace) -> int:
    from service.engine import BinaryQuadraticProblem, solve_time_limited
    from service.engine.loaders import load_instance

    path = Path(args.file.rpartition(":")[0] if args.file.rpartition(":")[2].isdigit() else args.file)
    if not path.exists():
        print(f"spinout anneal: no such file: {path}", file=sys.stderr)
        return 2
    try:
        if path.suffix == ".npy":
            problem = BinaryQuadraticProblem.from_qubo_matrix(np.load(path))
            instance = None
        else:
            instance = load_instance(args.file)
            problem = instance.problem
        result = solve_time_limited(problem, time_limit=args.time_limit, num_runs=args.replicas,
                                    seed=args.seed, strategy=args.strategy, hold_cold=args.hold_cold,
                                    window_moves=args.window_moves,
                                    target_energy=None if instance is None else instance.target_energy)
    except ValueError as exc:
        print(f"spinout anneal: {exc}", file=sys.stderr)
        return 2
    summary = {"file": str(args.file), "num_variables": problem.num_variables,
               "best_energy": result.best_energy, "seconds": round(result.timing["total"], 4),
               "stop_reason": result.stop_reason, "strategy": result.info["strategy"]}
    for key in ("hold_cold", "window_moves"):
        if key in result.info:
            summary[key] = result.info[key]
    if instance is not None:
        summary.update(objective=instance.objective(result.best_energy), best_known=instance.best_known)
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:>14}: {value}")
    return 0
