"""Where the engine's best answers lie, and whether anything better lies next to them.

    python benchmarks/probe_landscape.py --instance G63                   # 20 solves of 1.5 s, 500 free bits
    python benchmarks/probe_landscape.py --instance path/to/graph.txt --solves 10 --free 300

For an instance where the engine stalls below the best known, three questions in one run:

1. How reliably do short solves (``solve_time_limited``, seeds 1..N) end at the stall value?
2. How many distinct regions do those states form? States at the best energy seen are grouped
   by Hamming distance (threshold: an eighth of the variables; a state and its complement count as
   one where the energy is symmetric under flipping every bit, as Max-Cut's is).
3. Is the stall value the optimum near each region? HiGHS (``pip install -e '.[bench]'``) solves
   the QUBO exactly over a neighbourhood of the region's first state: the bits that vary inside
   the region plus the loosest other bits (smallest |energy change| of a single flip), up to
   ``--free`` bits, every other bit fixed. Products are linearised (y <= x_i, y <= x_j for a
   negative coupling, y >= x_i + x_j - 1 for a positive one). A proven optimum equal to the stall
   value means no better state differs from the region in those bits alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.engine import BinaryQuadraticProblem, solve_time_limited  # noqa: E402
from service.engine.loaders import load_instance  # noqa: E402

from benchmarks.gset_rudy import gset_graph  # noqa: E402


def flip_symmetric(problem: BinaryQuadraticProblem, seed: int = 0) -> bool:
    """Whether E(x) = E(1 - x), tested on a few random states."""
    x = np.random.default_rng(seed).integers(0, 2, size=(4, problem.num_variables), dtype=np.uint8)
    return bool(np.allclose(problem.energies(x), problem.energies(1 - x)))


def regions(states: np.ndarray, threshold: int) -> list[np.ndarray]:
    """Groups of states within ``threshold`` bits of a group's first state (greedy, in order)."""
    left = list(range(len(states)))
    groups = []
    while left:
        first = states[left[0]]
        near = [k for k in left if np.count_nonzero(states[k] != first) <= threshold]
        groups.append(states[near])
        taken = set(near)
        left = [k for k in left if k not in taken]
    return groups


def exact_neighbourhood(problem: BinaryQuadraticProblem, reference: np.ndarray, free: np.ndarray,
                        time_limit: float) -> tuple[float, float, float]:
    """The lowest energy over the ``free`` bits (bool mask) with the others as in ``reference``:
    (best energy found, proven lower bound, seconds)."""
    import highspy

    free_idx = np.flatnonzero(free)
    m = free_idx.size
    base = reference.astype(np.uint8).copy()
    base[free_idx] = 0
    constant = float(problem.energy(base))
    # A free bit's coefficient: its linear term plus the couplings to the fixed bits that are set.
    linear = problem.local_fields(base)[free_idx]
    couplings = sp.triu(sp.csr_array(problem.couplings)[free_idx][:, free_idx], k=1).tocoo()
    pairs = couplings.data.size
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("mip_rel_gap", 0.0)
    inf = highspy.kHighsInf
    h.addVars(m + pairs, np.zeros(m + pairs), np.ones(m + pairs))
    h.changeColsIntegrality(m, np.arange(m, dtype=np.int32),
                            np.array([highspy.HighsVarType.kInteger] * m))
    h.changeColsCost(m + pairs, np.arange(m + pairs, dtype=np.int32),
                     np.concatenate([linear, couplings.data]))
    for k, (i, j, c) in enumerate(zip(couplings.row, couplings.col, couplings.data)):
        y = m + k
        if c > 0:    # minimising pushes y down: y >= x_i + x_j - 1
            h.addRow(-1.0, inf, 3, np.array([y, i, j], dtype=np.int32), np.array([1.0, -1.0, -1.0]))
        else:        # minimising pushes y up: y <= x_i and y <= x_j
            h.addRow(-inf, 0.0, 2, np.array([y, i], dtype=np.int32), np.array([1.0, -1.0]))
            h.addRow(-inf, 0.0, 2, np.array([y, j], dtype=np.int32), np.array([1.0, -1.0]))
    t0 = time.perf_counter()
    h.run()
    seconds = time.perf_counter() - t0
    values = np.asarray(h.getSolution().col_value)
    if values.size < m:
        raise SystemExit(f"HiGHS found no solution over {m} free bits in {time_limit:g} s")
    state = base.copy()
    state[free_idx] = np.round(values[:m]).astype(np.uint8)
    energy = float(problem.energy(state))
    info = h.getInfo()
    # The linearisation is exact at integer x: the MIP's objective is the state's energy.
    assert abs(energy - (constant + info.objective_function_value)) < 1e-6 * max(1.0, abs(energy))
    return energy, constant + float(info.mip_dual_bound), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance", required=True,
                        help="a G-set name (G63, as the benchmarks take it) or an instance spec as "
                             "load_instance takes it")
    parser.add_argument("--solves", type=int, default=20, help="short solves, seeds 1..N")
    parser.add_argument("--time-limit", type=float, default=1.5, help="seconds per solve")
    parser.add_argument("--free", type=int, default=500, help="bits freed around each region")
    parser.add_argument("--mip-limit", type=float, default=300.0, help="seconds per exact solve")
    args = parser.parse_args()
    name = args.instance
    try:
        inst = load_instance(name) if any(c in name for c in "/.") else gset_graph(name)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"cannot load instance {name!r}: {exc}") from None
    problem = inst.problem
    n = problem.num_variables
    symmetric = flip_symmetric(problem)

    bests, pool = [], []
    for seed in range(1, args.solves + 1):
        r = solve_time_limited(problem, time_limit=args.time_limit, seed=seed, num_outputs=8)
        bests.append(r.best_energy)
        pool += [(e, s) for e, s in zip(r.energies, r.states)]
    top = min(bests)
    states = np.array([s ^ s[0] if symmetric else s for e, s in pool if e <= top + 1e-9], dtype=np.uint8)
    states = np.unique(states, axis=0)
    counts = Counter(inst.objective(e) for e in bests)
    print(f"{inst.name}: {n} variables, best known {inst.best_known}; {args.solves} solves of "
          f"{args.time_limit:g} s end at " + ", ".join(f"{v:g} x{c}" for v, c in sorted(counts.items())))
    groups = regions(states, n // 8)
    print(f"{len(states)} distinct states at {inst.objective(top):g} form {len(groups)} region(s) "
          f"(within {n // 8} bits): sizes {[len(g) for g in groups]}")
    for k, group in enumerate(groups):
        reference = group[0]
        varying = group.min(axis=0) != group.max(axis=0)
        # The loosest of the shared bits (smallest |single-flip change|) join the varying ones.
        order = np.argsort(np.abs(problem.local_fields(reference)), kind="stable")
        free = varying.copy()
        free[order[~varying[order]][:max(0, args.free - np.count_nonzero(varying))]] = True
        energy, bound, seconds = exact_neighbourhood(problem, reference, free, args.mip_limit)
        proven = bound >= energy - 1e-6
        print(f"region {k}: {np.count_nonzero(varying)} bits vary, {np.count_nonzero(free)} free; "
              f"exact best {inst.objective(energy):g}"
              + (" (proven optimal)" if proven else f" (bound {inst.objective(bound):g}, time limit)")
              + f" in {seconds:.1f} s; stall value {inst.objective(top):g}")
    print(f"median solve best {statistics.median(inst.objective(e) for e in bests):g}")


if __name__ == "__main__":
    main()
