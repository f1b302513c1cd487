"""Exact per-layer kept counts: the k-hot groups reach the solvers and every returned state
holds them."""

from __future__ import annotations

import numpy as np
import pytest

from service.engine import BinaryQuadraticProblem, KHotGroups
from trainer.dropout.ising_energy import EnergyOptions, IsingLayout, QuboBuilder
from trainer.dropout.ising_solver import AnnealBudget, EmbeddedSolver
from trainer.dropout.mask_solvers import repair_counts

from tests.trainer.ising_stats import random_stats


@pytest.mark.parametrize("energy", ["relevance-redundancy", "paper-repaired", "loss-aware", "saliency"])
def test_embedded_solver_returns_states_with_the_counts(energy: str) -> None:
    sizes = [12, 8, 6, 3]
    options = EnergyOptions(energy=energy, exact_k=True, keep_ratio=[0.5, 0.75, 0.5])
    problem, groups = QuboBuilder(IsingLayout(sizes, True), options).build(
        random_stats(sizes, seed=1, gate_gradients=True))
    assert groups is not None
    solver = EmbeddedSolver(AnnealBudget(num_sweeps=20, warm_start=False, temperature=None))
    for initial in (np.ones(problem.num_variables, np.uint8), np.zeros(problem.num_variables, np.uint8)):
        state, _ = solver.solve(problem, initial, seed=3, full=True, groups=groups)
        assert [int(state[:12].sum()), int(state[12:20].sum()), int(state[20:].sum())] == [6, 6, 3]


def test_repair_counts_keeps_the_lowest_fields_of_a_linear_problem() -> None:
    h = np.array([3.0, -1.0, 2.0, 0.5, -2.0, 1.0, 0.0])
    problem = BinaryQuadraticProblem(linear=h, couplings=np.zeros((7, 7)))
    groups = KHotGroups.consecutive([4, 3], [2, 1])
    from_ones = repair_counts(problem, np.ones(7, np.uint8), groups)
    assert from_ones.tolist() == [0, 1, 0, 1, 1, 0, 0]
    from_zeros = repair_counts(problem, np.zeros(7, np.uint8), groups)
    assert from_zeros.tolist() == from_ones.tolist()


def test_repair_counts_flips_greedily_on_the_coupled_energy() -> None:
    rng = np.random.default_rng(0)
    n = 8
    j = np.triu(rng.normal(size=(n, n)), 1)
    problem = BinaryQuadraticProblem(linear=rng.normal(size=n), couplings=j + j.T)
    groups = KHotGroups.consecutive([n], [6])
    repaired = repair_counts(problem, np.ones(n, np.uint8), groups)
    # each of the two removals is the best single removal at that point
    x = np.ones(n, np.uint8)
    for _ in range(2):
        candidates = []
        for u in np.flatnonzero(x):
            y = x.copy()
            y[u] = 0
            candidates.append((problem.energy(y), u))
        x[min(candidates)[1]] = 0
    assert repaired.tolist() == x.tolist()
    untouched = repair_counts(problem, repaired, groups)
    assert untouched.tolist() == repaired.tolist()
