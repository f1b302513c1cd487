"""Compile (or load from numba's on-disk cache) every kernel signature the solvers use.

Run once at install or image build (``python -m service.engine.warmup``) so that a fresh
process solves its first problem without waiting for the JIT.
"""

from __future__ import annotations

import time

import numpy as np

from . import kernels
from .constraints import LinearInequalities
from .lattice import Torus
from .problem import BinaryQuadraticProblem
from .solver import Replicas, anneal_da, parallel_tempering, solve_time_limited


def main() -> None:
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    dense = BinaryQuadraticProblem.from_qubo_matrix(rng.normal(size=(12, 12)), storage="dense")
    sparse = dense.with_storage("sparse")
    # Inequality constraints compile their own kernels (the unconstrained ones stay free of them).
    constraints = LinearInequalities.from_arrays([0, 0], [0, 1], [1.0, 1.0], [-1.0], [2.0], 12)
    for problem in (dense, sparse):
        for parallel in (True, False):
            for cons in (None, constraints):
                for moves in ("trial", "sweep"):
                    anneal_da(problem, num_runs=2, num_iterations=4, moves=moves, parallel=parallel,
                              seed=0, constraints=cons)
                    parallel_tempering(problem, num_replicas=3, num_sweeps=4, moves=moves,
                                       parallel=parallel, seed=0, constraints=cons)
                    solve_time_limited(problem, time_limit=0.01, num_runs=2, parallel=parallel,
                                       seed=0, moves=moves, constraints=cons)
    # Cluster moves between ensembles (sparse graphs; a short solve may not reach their cadence).
    Replicas(sparse, 4, seed=0).cluster_moves(np.tile(np.arange(2), (2, 1)), 0, np.uint64(1))
    # Window moves on a lattice, on all cores and on one.
    torus_problem = BinaryQuadraticProblem.from_edges(
        [(i, (i // 4) * 4 + (i + 1) % 4, 1.0) for i in range(16)] + [(i, (i + 4) % 16, -1.0) for i in range(16)], storage="sparse")
    torus = Torus.detect(torus_problem)
    assert torus is not None
    for parallel in (True, False):
        Replicas(torus_problem, 2, seed=0, parallel=parallel).window_moves(torus, 2)
    # Coupling-pattern values of either width, read-only as decoded from a request body, into
    # the pattern's read-only index; and the trainer's remote solver: CSR data -> float32 values.
    source = np.zeros(2, dtype=np.int32)
    source.flags.writeable = False
    for values in (np.ones(3, dtype=np.float32), np.ones(3, dtype=np.float64)):
        values.flags.writeable = False
        kernels.gather(values, source, np.empty(2))
    kernels.gather(np.ones(3), np.zeros(2, dtype=np.int32), np.empty(2, dtype=np.float32))
    kernels.quantile(np.ones(3), 0.5)  # the trainer's start temperature
    print(f"spinout kernels ready in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
