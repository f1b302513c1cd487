"""Mask solvers with k-hot groups (exact per-layer kept counts) and in Boltzmann mode, embedded
and against a real solver service on loopback (``python -m service serve``)."""

from __future__ import annotations

import numpy as np
import pytest

from service.engine import BinaryQuadraticProblem, KHotGroups, Sampling
from trainer.dropout.ising_solver import AnnealBudget, EmbeddedSolver, RemoteSolver

from tests.trainer.conftest import SERVICE_KEY

#: Two "layers" of 20 and 25 units keeping 12 and 5, after 5 free variables; 10 free after them.
GROUPS = KHotGroups.consecutive([20, 25], [12, 5], start=5)


def sparse_problem(seed: int, n: int = 60) -> BinaryQuadraticProblem:
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(n, 1)
    keep = rng.random(i.size) < 0.2
    return BinaryQuadraticProblem.from_arrays(i[keep], j[keep], rng.normal(size=int(keep.sum())),
                                              linear=rng.normal(size=n) - 0.5, num_variables=n)


BUDGETS = {
    "anneal-sweep": AnnealBudget(num_runs=2, num_sweeps=50, full_sweeps=200, moves="sweep"),
    "anneal-trial": AnnealBudget(num_runs=2, num_sweeps=300, full_sweeps=600, moves="trial"),
    "boltzmann-sweep": AnnealBudget(num_sweeps=30, moves="sweep", sample_temperature=0.5),
    "boltzmann-trial": AnnealBudget(num_sweeps=60, moves="trial", sample_temperature=0.5),
}


@pytest.mark.parametrize("name", list(BUDGETS))
def test_embedded_and_remote_masks_hold_the_groups(service_url: str, name: str) -> None:
    budget = BUDGETS[name]
    remote = RemoteSolver(service_url, budget, api_key=SERVICE_KEY)
    embedded = EmbeddedSolver(budget)
    try:
        for seed in range(3):
            problem = sparse_problem(seed)
            ones = np.ones(problem.num_variables, dtype=np.uint8)  # breaks both groups
            for full in (True, False):
                for solver in (embedded, remote):
                    state, timing = solver.solve(problem, ones, seed=seed, full=full,
                                                 groups=GROUPS)
                    assert state.shape == (problem.num_variables,)
                    assert GROUPS.satisfied(state), (solver.name, seed, full)
                    assert timing["solve"] >= 0.0
    finally:
        remote.close()


def test_remote_and_embedded_reach_the_same_energies_with_groups(service_url: str) -> None:
    """Same problem, same groups, same (trial) dynamics: the remote solver's masks are as good
    as the embedded ones, and far below a random mask that holds the groups."""
    budget = AnnealBudget(num_runs=4, num_sweeps=400, moves="trial", temperature=None)
    remote = RemoteSolver(service_url, budget, api_key=SERVICE_KEY)
    rng = np.random.default_rng(0)
    try:
        for seed in range(3):
            problem = sparse_problem(10 + seed)
            ones = np.ones(problem.num_variables, dtype=np.uint8)
            far, _ = remote.solve(problem, ones, seed=seed, groups=GROUPS)
            near, _ = EmbeddedSolver(budget).solve(problem, ones, seed=seed, groups=GROUPS)
            random_mask = GROUPS.repair(rng.integers(0, 2, problem.num_variables), rng)
            assert problem.energy(far) == pytest.approx(problem.energy(near), rel=0.05, abs=0.2)
            assert problem.energy(far) < problem.energy(random_mask) - 1.0
    finally:
        remote.close()


def test_boltzmann_mode_samples_rather_than_minimises() -> None:
    """At a high sample temperature the kept units vary from solve to solve (a regulariser's
    masks); at a low one they settle. Either way every mask keeps each group's count."""
    problem = sparse_problem(4)
    ones = np.ones(problem.num_variables, dtype=np.uint8)
    spread = {}
    for temperature in (0.05, 5.0):
        solver = EmbeddedSolver(AnnealBudget(num_sweeps=40, sample_temperature=temperature))
        masks = np.array([solver.solve(problem, ones, seed=s, groups=GROUPS)[0]
                          for s in range(40)])
        assert all(GROUPS.satisfied(m) for m in masks)
        keep = masks.mean(axis=0)[GROUPS.members]
        spread[temperature] = float(np.mean((keep > 0.1) & (keep < 0.9)))
    assert spread[5.0] > 0.5 > spread[0.05]


def test_boltzmann_budget_checks_and_schedule() -> None:
    problem = sparse_problem(1)
    ones = np.ones(problem.num_variables, dtype=np.uint8)
    budget = AnnealBudget(num_sweeps=7, full_sweeps=70, sample_temperature=0.5)
    schedule = budget.schedule(problem, ones)
    assert isinstance(schedule, Sampling) and schedule.sweeps == 7 and schedule.runs == 1
    assert schedule.temperature == pytest.approx(0.5 * budget.field_scale(problem, ones))
    assert budget.schedule(problem, ones, full=True).sweeps == 70
    with pytest.raises(ValueError, match="sample_temperature"):
        AnnealBudget(sample_temperature=0.0)
    with pytest.raises(ValueError, match="one chain"):
        AnnealBudget(num_runs=4, sample_temperature=1.0)


def test_remote_refuses_groups_the_wire_cannot_carry(service_url: str) -> None:
    scattered = KHotGroups.from_lists([[1, 5, 9]], [1])
    remote = RemoteSolver(service_url, AnnealBudget(num_runs=2), api_key=SERVICE_KEY)
    try:
        with pytest.raises(ValueError, match="consecutive variables"):
            remote.solve(sparse_problem(0), np.ones(60, dtype=np.uint8), seed=0,
                         groups=scattered)
    finally:
        remote.close()
