"""The cheap mask solvers an annealer has to beat: random, top-K, greedy, roof duality (QPBO) and a
10-sweep anneal, all at exactly the per-layer counts the annealer gets.

Every solver here answers the ``MaskSolver`` protocol of ``ising_solver`` plus the ``groups``
keyword (``KHotGroups``: each layer keeps exactly K_l units). A variable in no group is free
(single flips). Without groups every variable is free.

============ ==============================================================================
name          what it returns
============ ==============================================================================
``random``    K_l units of each group uniformly at random; free variables kept with p = 1/2
``topk``      the K_l units of lowest linear coefficient h_i (the energy's own field alone);
              free variables kept when h_i < 0
``greedy``    local descent on the full energy: inside a group each kept unit swapped with its
              best dropped partner, free variables flipped, until no swap or flip lowers the
              energy; started from top-K and from the previous state (the solver's
              ``initial``; the empty state when that misses the counts), both brought to the
              counts by best marginal moves, the lower of the two kept
``qpbo``      roof duality: the persistent labels of the QPBO max-flow on the 2n-node graph,
              unlabelled variables and the counts filled greedily, then ``greedy``'s descent
``anneal10``  the embedded engine's own hot-to-cold schedule over 10 sweeps from top-K
============ ==============================================================================

E(s) = s.h + sum_{u<v} J_uv s_u s_v + c throughout (``BinaryQuadraticProblem``); the local field
f_i = h_i + sum_j J_ij s_j gives a flip's change (1 - 2 s_i) f_i and a swap's change
f_j - f_i - J_ij (unit i out, j in).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from numba import njit
from scipy.sparse import csgraph

from service.engine import BinaryQuadraticProblem, KHotGroups

from .ising_solver import AnnealBudget, EmbeddedSolver, MaskSolver

#: The names ``make_solver`` accepts for the solvers of this module.
CHEAP_SOLVERS = ("random", "topk", "greedy", "qpbo", "anneal10")

#: max-flow capacities are int32 in scipy: the largest total capacity the scaling aims at.
_CAPACITY_BUDGET = float(2**30)


# ---------------------------------------------------------------------------------- problem views
def csr_arrays(problem: BinaryQuadraticProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, indices, data) of the symmetric couplings as int64 / int64 / float64 CSR."""
    csr = sp.csr_array(problem.couplings)
    csr.sum_duplicates()
    return (csr.indptr.astype(np.int64), csr.indices.astype(np.int64),
            csr.data.astype(np.float64))


def group_arrays(groups: KHotGroups | None, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                              np.ndarray]:
    """(group_of, indptr, members, counts); no groups gives empty arrays and every variable free."""
    if groups is None:
        return (np.full(n, -1, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int64),
                np.zeros(0, np.int64))
    return groups.group_of(n), groups.indptr, groups.members, groups.counts


# ---------------------------------------------------------------------------------- kernels
@njit(cache=True, nogil=True)
def fields_at(h: np.ndarray, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
              state: np.ndarray) -> np.ndarray:
    """f_i = h_i + sum_j J_ij s_j."""
    f = h.copy()
    for i in range(h.size):
        if state[i]:
            for p in range(indptr[i], indptr[i + 1]):
                f[indices[p]] += data[p]
    return f


@njit(cache=True, nogil=True)
def _flip(i: int, state: np.ndarray, f: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
          data: np.ndarray) -> None:
    sign = -1.0 if state[i] else 1.0
    state[i] = 1 - state[i]
    for p in range(indptr[i], indptr[i + 1]):
        f[indices[p]] += sign * data[p]


@njit(cache=True, nogil=True)
def fill_counts(state: np.ndarray, h: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
                data: np.ndarray, gptr: np.ndarray, members: np.ndarray, counts: np.ndarray) -> None:
    """Bring every group to its count in place, one best-marginal move at a time: while a group
    holds too many ones, switch off the one whose removal lowers the energy most (largest f_i);
    too few, switch on the zero of lowest f_j."""
    f = fields_at(h, indptr, indices, data, state)
    for g in range(counts.size):
        ones = 0
        for p in range(gptr[g], gptr[g + 1]):
            ones += state[members[p]]
        while ones != counts[g]:
            best, best_val = -1, np.inf
            for p in range(gptr[g], gptr[g + 1]):
                i = members[p]
                if ones > counts[g] and state[i] == 1:
                    val = -f[i]
                elif ones < counts[g] and state[i] == 0:
                    val = f[i]
                else:
                    continue
                if val < best_val:
                    best, best_val = i, val
            _flip(best, state, f, indptr, indices, data)
            ones += 1 if state[best] else -1


@njit(cache=True, nogil=True)
def descend(state: np.ndarray, h: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
            data: np.ndarray, group_of: np.ndarray, gptr: np.ndarray, members: np.ndarray,
            tolerance: float, max_passes: int) -> int:
    """Local descent in place, in passes: every free variable flips if that lowers the energy;
    every kept unit i of a group is swapped with its best dropped partner j if that lowers the
    energy by more than ``tolerance``. Stops after a pass without a move, which is therefore an
    exact check: the state is a local minimum under swaps inside groups and free flips. Returns
    the number of moves made.

    A pass is O(n log n + nnz): for unit i, the best partner is the lower of (a) its dropped
    neighbours j, exactly f_j - f_i - J_ij, and (b) the dropped unit of lowest f_j that is not
    its neighbour, found by walking the group's dropped units in field order (sorted once per
    pass) past the marked neighbours and the units swapped in since.
    """
    n = h.size
    f = fields_at(h, indptr, indices, data, state)
    mark = np.full(n, -1, np.int64)
    moves = 0
    for _ in range(max_passes):
        moved = 0
        for i in range(n):
            if group_of[i] < 0:
                delta = -f[i] if state[i] else f[i]
                if delta < -tolerance:
                    _flip(i, state, f, indptr, indices, data)
                    moved += 1
        for g in range(gptr.size - 1):
            size = gptr[g + 1] - gptr[g]
            zeros = np.empty(size, np.int64)
            nz = 0
            for p in range(gptr[g], gptr[g + 1]):
                if state[members[p]] == 0:
                    zeros[nz] = members[p]
                    nz += 1
            if nz == 0 or nz == size:
                continue
            zeros = zeros[:nz]
            zeros = zeros[np.argsort(f[zeros])]
            for p in range(gptr[g], gptr[g + 1]):
                i = members[p]
                if state[i] == 0:
                    continue
                best_delta, best_j = -tolerance, -1
                for q in range(indptr[i], indptr[i + 1]):
                    j = indices[q]
                    mark[j] = i
                    if group_of[j] == g and state[j] == 0:
                        delta = f[j] - f[i] - data[q]
                        if delta < best_delta:
                            best_delta, best_j = delta, j
                for k in range(nz):
                    j = zeros[k]
                    if state[j] == 0 and mark[j] != i:
                        delta = f[j] - f[i]
                        if delta < best_delta:
                            best_delta, best_j = delta, j
                        break
                for q in range(indptr[i], indptr[i + 1]):
                    mark[indices[q]] = -1
                if best_j >= 0:
                    _flip(i, state, f, indptr, indices, data)
                    _flip(best_j, state, f, indptr, indices, data)
                    moved += 1
        moves += moved
        if moved == 0:
            break
    return moves


# ---------------------------------------------------------------------------------- the pieces
def topk_state(problem: BinaryQuadraticProblem, groups: KHotGroups | None) -> np.ndarray:
    """Each group's K lowest h (ties to the lower index); free variables kept when h < 0."""
    h = np.asarray(problem.linear, dtype=np.float64)
    state = (h < 0).astype(np.uint8)
    if groups is not None:
        for g in range(groups.num_groups):
            idx = groups.members[groups.indptr[g]:groups.indptr[g + 1]]
            state[idx] = 0
            k = int(groups.counts[g])
            if k:
                state[idx[np.argsort(h[idx], kind="stable")[:k]]] = 1
    return state


def random_state(n: int, groups: KHotGroups | None, rng: np.random.Generator) -> np.ndarray:
    """K of each group uniformly at random; free variables 0/1 with probability 1/2."""
    state = rng.integers(0, 2, n).astype(np.uint8)
    if groups is not None:
        for g in range(groups.num_groups):
            idx = groups.members[groups.indptr[g]:groups.indptr[g + 1]]
            state[idx] = 0
            state[rng.choice(idx, int(groups.counts[g]), replace=False)] = 1
    return state


def _tolerance(problem: BinaryQuadraticProblem, data: np.ndarray) -> float:
    scale = max(float(np.abs(problem.linear).max(initial=0.0)), float(np.abs(data).max(initial=0.0)))
    return 1e-9 * scale if scale > 0 else 0.0


def greedy_descent(problem: BinaryQuadraticProblem, start: np.ndarray, groups: KHotGroups | None,
                   max_passes: int | None = None) -> np.ndarray:
    """``start`` brought to the groups' counts (best marginal moves), then :func:`descend`'s
    swaps/flips until none lowers the energy: a local minimum under swaps inside groups and
    flips of free variables."""
    n = problem.num_variables
    indptr, indices, data = csr_arrays(problem)
    group_of, gptr, members, counts = group_arrays(groups, n)
    state = np.array(start, dtype=np.uint8).reshape(-1).copy()
    h = np.asarray(problem.linear, dtype=np.float64)
    fill_counts(state, h, indptr, indices, data, gptr, members, counts)
    descend(state, h, indptr, indices, data, group_of, gptr, members, _tolerance(problem, data),
            max_passes if max_passes is not None else 10 * n + 100)
    return state


def roof_duality(problem: BinaryQuadraticProblem) -> np.ndarray:
    """Persistent labels of the unconstrained QUBO by roof duality (QPBO): int8 per variable,
    0 or 1 where the label is persistent (some global minimum of E takes it; every minimum when
    the minimum is unique), -1 where roof duality leaves the variable open.

    The doubled function over x and its complement copy xbar, E'(x, xbar) = (E(x) + E(1 - xbar))/2
    with each positive coupling split across the copies, J x_i x_j -> J/2 x_i (1 - xbar_j) +
    J/2 (1 - xbar_i) x_j, is submodular; one s-t minimum cut on its 2n + 2 nodes minimises it
    (Boros & Hammer; Kolmogorov & Rother 2007). x_i is labelled where the cut puts x_i and
    xbar_i on opposite sides. Capacities are scaled to integers for scipy's max-flow (Dinic).
    """
    n = problem.num_variables
    h = np.asarray(problem.linear, dtype=np.float64)
    rows, cols, vals = problem.to_triplets()
    # The doubled submodular QUBO over 2n variables z (0..n-1 = x, n..2n-1 = xbar):
    # linear a, quadratic b (all <= 0) on pairs (u, v).
    a = np.concatenate([h / 2.0, -h / 2.0])
    neg = vals <= 0
    pos = ~neg
    # J <= 0: J/2 x_i x_j + J/2 (1 - xbar_i)(1 - xbar_j)
    r_n, c_n, v_n = rows[neg], cols[neg], vals[neg]
    np.add.at(a, n + r_n, -v_n / 2.0)
    np.add.at(a, n + c_n, -v_n / 2.0)
    # J > 0: J/2 x_i - J/2 x_i xbar_j + J/2 x_j - J/2 xbar_i x_j
    r_p, c_p, v_p = rows[pos], cols[pos], vals[pos]
    np.add.at(a, r_p, v_p / 2.0)
    np.add.at(a, c_p, v_p / 2.0)
    pair_u = np.concatenate([r_n, n + r_n, r_p, n + r_p])
    pair_v = np.concatenate([c_n, n + c_n, n + c_p, c_p])
    pair_b = np.concatenate([v_n / 2.0, v_n / 2.0, -v_p / 2.0, -v_p / 2.0])
    # b z_u z_v (b < 0) = b z_u + (-b) z_u (1 - z_v): z_v = 1 <=> node on the sink side, so
    # (-b) is paid when u is on the sink side and v on the source side: an edge v -> u.
    np.add.at(a, pair_u, pair_b)
    source, sink = 2 * n, 2 * n + 1
    e_from = [pair_v, np.full(2 * n, source), np.arange(2 * n)]
    e_to = [pair_u, np.arange(2 * n), np.full(2 * n, sink)]
    e_cap = [-pair_b, np.maximum(a, 0.0), np.maximum(-a, 0.0)]
    frm, to, cap = np.concatenate(e_from), np.concatenate(e_to), np.concatenate(e_cap)
    keep = cap > 0
    frm, to, cap = frm[keep], to[keep], cap[keep]
    total = float(cap.sum())
    scale = _CAPACITY_BUDGET / total if total > 0 else 1.0
    icap = np.rint(cap * scale).astype(np.int64)
    size = 2 * n + 2
    # Both directions present (reverse capacity 0) so the residual graph reads off C - F.
    graph = sp.csr_array((np.concatenate([icap, np.zeros_like(icap)]),
                          (np.concatenate([frm, to]), np.concatenate([to, frm]))), shape=(size, size))
    graph.sum_duplicates()
    graph = sp.csr_array(graph.astype(np.int32))
    flow = csgraph.maximum_flow(graph, source, sink, method="dinic").flow
    residual = sp.csr_array(graph - sp.csr_array(flow))
    residual.data[residual.data < 0] = 0
    residual.eliminate_zeros()
    reach = csgraph.breadth_first_order(residual, source, directed=True, return_predecessors=False)
    on_source = np.zeros(size, dtype=bool)
    on_source[reach] = True
    z = (~on_source[:2 * n]).astype(np.int8)  # 1 = sink side
    x, xbar = z[:n], z[n:]
    return np.where(x != xbar, x, -1).astype(np.int8)


# ---------------------------------------------------------------------------------- solvers
class _CheapSolver:
    """Shared shape of the cheap solvers: timing dict, no resources to close."""

    name = "cheap"

    def solve(self, problem: BinaryQuadraticProblem, initial: np.ndarray, seed: int, full: bool = False,
              structure: Any = None, groups: KHotGroups | None = None
              ) -> tuple[np.ndarray, dict[str, float]]:
        if groups is not None:
            groups.check(problem.num_variables)
        t0 = time.perf_counter()
        state = self._solve(problem, np.asarray(initial, dtype=np.uint8), seed, groups)
        return state, {"solve": time.perf_counter() - t0, "transport": 0.0}

    def _solve(self, problem: BinaryQuadraticProblem, initial: np.ndarray, seed: int,
               groups: KHotGroups | None) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass


class RandomSolver(_CheapSolver):
    """Uniform exact-K masks: the control any energy must beat."""

    name = "random"

    def _solve(self, problem, initial, seed, groups):  # type: ignore[no-untyped-def]
        return random_state(problem.num_variables, groups, np.random.default_rng(seed))


class TopKSolver(_CheapSolver):
    """Top-K by the energy's own linear field: what the couplings add is ignored."""

    name = "topk"

    def _solve(self, problem, initial, seed, groups):  # type: ignore[no-untyped-def]
        return topk_state(problem, groups)


class GreedySolver(_CheapSolver):
    """Local descent on the full energy from top-K and from the previous state (the lower kept):
    the same warm start the annealer gets."""

    name = "greedy"

    def _solve(self, problem, initial, seed, groups):  # type: ignore[no-untyped-def]
        n = problem.num_variables
        warm = initial if groups is None or groups.satisfied(initial) else np.zeros(n, np.uint8)
        starts = [topk_state(problem, groups), warm]
        states = [greedy_descent(problem, s, groups) for s in starts]
        energies = problem.energies(np.stack(states))
        return states[int(np.argmin(energies))]


class QPBOSolver(_CheapSolver):
    """Roof duality's persistent labels, the rest (and the counts) filled greedily, then the
    greedy descent. ``last_labelled`` keeps the fraction roof duality labelled."""

    name = "qpbo"

    def __init__(self) -> None:
        self.last_labelled = float("nan")

    def _solve(self, problem, initial, seed, groups):  # type: ignore[no-untyped-def]
        labels = roof_duality(problem)
        self.last_labelled = float(np.mean(labels >= 0))
        start = np.where(labels >= 0, labels, 0).astype(np.uint8)
        open_vars = labels < 0
        if open_vars.any():  # open variables: the sign of their field with the labels set
            fields = problem.local_fields(start)
            start[open_vars] = (fields[open_vars] < 0).astype(np.uint8)
        return greedy_descent(problem, start, groups)


class Anneal10Solver:
    """The embedded engine, 10 sweeps of its own hot-to-cold schedule, from top-K (the counts
    held by the engine's k-hot moves where it has them, see :func:`solve_in_groups`)."""

    name = "anneal10"

    def __init__(self, num_sweeps: int = 10) -> None:
        self.inner = EmbeddedSolver(AnnealBudget(num_runs=1, num_sweeps=num_sweeps,
                                                 full_sweeps=num_sweeps, temperature=None,
                                                 warm_start=False))

    def solve(self, problem: BinaryQuadraticProblem, initial: np.ndarray, seed: int, full: bool = False,
              structure: Any = None, groups: KHotGroups | None = None
              ) -> tuple[np.ndarray, dict[str, float]]:
        start = topk_state(problem, groups)
        return solve_in_groups(self.inner, problem, start, seed, full=True, structure=structure,
                               groups=groups)

    def close(self) -> None:
        self.inner.close()


def cheap_solver(name: str) -> MaskSolver:
    """A fresh solver of this module by name (:data:`CHEAP_SOLVERS`)."""
    factories = {"random": RandomSolver, "topk": TopKSolver, "greedy": GreedySolver,
                 "qpbo": QPBOSolver, "anneal10": Anneal10Solver}
    if name not in factories:
        raise ValueError(f"unknown cheap solver {name!r}; known: {', '.join(CHEAP_SOLVERS)}")
    return factories[name]()  # type: ignore[return-value]


# ---------------------------------------------------------------------------------- groups adapter
def solve_in_groups(solver: MaskSolver, problem: BinaryQuadraticProblem, initial: np.ndarray, seed: int,
                    full: bool = False, structure: Any = None, groups: KHotGroups | None = None
                    ) -> tuple[np.ndarray, dict[str, float]]:
    """``solver.solve`` with the groups, from a start brought to the counts by best marginal moves
    (a solver left to repair it would do so at random)."""
    start = np.array(initial, dtype=np.uint8).reshape(-1)
    if groups is not None and not groups.satisfied(start):
        start = repair_counts(problem, start, groups)
    return solver.solve(problem, start, seed=seed, full=full, structure=structure, groups=groups)


def repair_counts(problem: BinaryQuadraticProblem, state: np.ndarray, groups: KHotGroups) -> np.ndarray:
    """A copy of ``state`` with every group at its count, by best marginal single moves."""
    indptr, indices, data = csr_arrays(problem)
    out = np.array(state, dtype=np.uint8).reshape(-1).copy()
    fill_counts(out, np.asarray(problem.linear, dtype=np.float64), indptr, indices, data,
                groups.indptr, groups.members, groups.counts)
    return out
