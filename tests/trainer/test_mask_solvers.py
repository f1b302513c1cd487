"""The cheap mask solvers: exact counts, roof duality against exhaustive search, greedy's local
optimality, and the solver names the Ising variant accepts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from service.engine import BinaryQuadraticProblem, KHotGroups
from trainer.dropout.ising_solver import AnnealBudget, make_solver
from trainer.dropout.mask_solvers import (CHEAP_SOLVERS, cheap_solver, greedy_descent,
                                          roof_duality, solve_in_groups, topk_state)


def random_problem(n: int, seed: int, density: float = 0.6, submodular: bool = False,
                   sparse: bool = True) -> BinaryQuadraticProblem:
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.normal(size=(n, n)) * (rng.random((n, n)) < density), 1)
    if submodular:
        upper = -np.abs(upper)
    j = upper + upper.T
    h = rng.normal(size=n) * 1.5
    return BinaryQuadraticProblem(linear=h, couplings=sp.csr_array(j) if sparse else j, constant=0.3)


def all_states(n: int) -> np.ndarray:
    return np.array(list(itertools.product((0, 1), repeat=n)), dtype=np.uint8)


def exhaustive_minimum(problem: BinaryQuadraticProblem) -> tuple[np.ndarray, float]:
    states = all_states(problem.num_variables)
    energies = problem.energies(states)
    best = int(np.argmin(energies))
    return states[best], float(energies[best])


def test_every_solver_meets_the_counts() -> None:
    groups = KHotGroups.from_lists([[0, 1, 2, 3, 4, 5], [6, 7, 8, 9], [10, 11, 12, 13, 14]], [2, 3, 5])
    for seed in range(3):
        problem = random_problem(17, seed)  # 15 and 16 are free
        for name in CHEAP_SOLVERS + ("embedded",):
            solver = make_solver(name, AnnealBudget())
            state, timing = solve_in_groups(solver, problem, np.ones(17, np.uint8), seed, groups=groups)
            assert state.shape == (17,) and set(np.unique(state)) <= {0, 1}
            assert np.array_equal(groups.weights(state), groups.counts), name
            assert timing["solve"] >= 0
            solver.close()


def test_random_masks_are_uniform_over_exact_k() -> None:
    groups = KHotGroups.consecutive([10], [3])
    problem = random_problem(10, 0)
    solver = cheap_solver("random")
    hits = np.zeros(10)
    for seed in range(600):
        state, _ = solver.solve(problem, np.ones(10, np.uint8), seed, groups=groups)
        assert state.sum() == 3
        hits += state
    # each unit kept 3/10 of the time: 180 of 600, binomial sd ~11
    assert np.all(np.abs(hits - 180) < 60)


def test_topk_keeps_the_lowest_linear_coefficients() -> None:
    problem = random_problem(12, 4)
    groups = KHotGroups.consecutive([7, 5], [3, 2])
    state = topk_state(problem, groups)
    h = problem.linear
    for idx, k in ((np.arange(7), 3), (np.arange(7, 12), 2)):
        kept = idx[state[idx] == 1]
        assert kept.size == k
        assert h[kept].max() <= h[idx[state[idx] == 0]].min()


@pytest.mark.parametrize("seed", range(8))
def test_roof_duality_labels_agree_with_the_exhaustive_optimum(seed: int) -> None:
    n = 6 + seed  # 6..13 variables
    problem = random_problem(n, 100 + seed, density=0.5)
    optimum, _ = exhaustive_minimum(problem)
    labels = roof_duality(problem)
    labelled = labels >= 0
    assert np.array_equal(labels[labelled], optimum[labelled])


def test_roof_duality_labels_something_on_frustrated_problems_and_not_everything() -> None:
    # Over many random frustrated problems QPBO must label a part, but not always all: a solver
    # that always labels everything (or nothing) is wrong.
    fractions = [float(np.mean(roof_duality(random_problem(12, s, density=0.8)) >= 0)) for s in range(20)]
    assert 0.0 < float(np.mean(fractions)) < 1.0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("sparse", [True, False])
def test_qpbo_solves_submodular_problems_exactly(seed: int, sparse: bool) -> None:
    problem = random_problem(12 + seed % 3, 200 + seed, submodular=True, sparse=sparse)
    optimum, best = exhaustive_minimum(problem)
    labels = roof_duality(problem)
    assert np.all(labels >= 0)
    assert np.array_equal(labels, optimum)
    state, _ = cheap_solver("qpbo").solve(problem, np.ones(problem.num_variables, np.uint8), 0)
    assert problem.energy(state) == pytest.approx(best, abs=1e-9)


def _improving_move_exists(problem: BinaryQuadraticProblem, state: np.ndarray, groups: KHotGroups) -> bool:
    e0 = problem.energy(state)
    group_of = groups.group_of(problem.num_variables)
    for i in range(problem.num_variables):
        if group_of[i] < 0:
            other = state.copy()
            other[i] ^= 1
            if problem.energy(other) < e0 - 1e-9:
                return True
    for g in range(groups.num_groups):
        idx = groups.members[groups.indptr[g]:groups.indptr[g + 1]]
        for i in idx[state[idx] == 1]:
            for j in idx[state[idx] == 0]:
                other = state.copy()
                other[i], other[j] = 0, 1
                if problem.energy(other) < e0 - 1e-9:
                    return True
    return False


@pytest.mark.parametrize("seed", range(6))
def test_greedy_is_a_local_minimum_under_swaps(seed: int) -> None:
    problem = random_problem(30, 300 + seed, density=0.4)
    groups = KHotGroups.from_lists([list(range(0, 12)), list(range(12, 26))], [5, 7])  # 26..29 free
    state, _ = cheap_solver("greedy").solve(problem, np.ones(30, np.uint8), seed, groups=groups)
    assert groups.satisfied(state)
    assert not _improving_move_exists(problem, state, groups)
    start = topk_state(problem, groups)
    assert problem.energy(state) <= problem.energy(start) + 1e-12


def test_greedy_descent_from_a_bad_start_reaches_a_local_minimum() -> None:
    problem = random_problem(25, 7, density=0.7)
    groups = KHotGroups.consecutive([10, 15], [4, 9])
    state = greedy_descent(problem, np.ones(25, np.uint8), groups)
    assert groups.satisfied(state)
    assert not _improving_move_exists(problem, state, groups)


def test_qpbo_and_greedy_reach_the_constrained_optimum_on_most_small_problems() -> None:
    # The constrained optimum by enumeration: the cheap solvers are strong on small problems
    # (a weak baseline would make the annealer look good for nothing).
    groups = KHotGroups.consecutive([6, 6], [2, 3])
    states = all_states(12)
    feasible = states[(states[:, :6].sum(1) == 2) & (states[:, 6:].sum(1) == 3)]
    hits = {"greedy": 0, "qpbo": 0, "random": 0}
    for seed in range(15):
        problem = random_problem(12, 500 + seed)
        best = float(problem.energies(feasible).min())
        for name in hits:
            state, _ = cheap_solver(name).solve(problem, np.ones(12, np.uint8), seed, groups=groups)
            hits[name] += problem.energy(state) <= best + 1e-9
    assert hits["greedy"] >= 10 and hits["qpbo"] >= 10
    assert hits["random"] < hits["greedy"]


def test_unknown_solver_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="qpbo"):
        make_solver("qpb", AnnealBudget())
