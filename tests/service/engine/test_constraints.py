"""Linear inequality constraints in the engine: the model, the kernels' incremental left-hand
sides and penalties, and solves that reach the constrained optimum found by enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from service.engine import (BinaryQuadraticProblem, LinearInequalities, Replicas, anneal_da,
                            parallel_tempering, solve_time_limited)
from service.engine import kernels


def knapsack_like(n: int, seed: int) -> tuple[BinaryQuadraticProblem, LinearInequalities]:
    """A random QUBO with two capacity constraints tight enough to bind, weights exact."""
    rng = np.random.default_rng(seed)
    q = np.triu(rng.integers(-4, 3, size=(n, n)).astype(float))
    problem = BinaryQuadraticProblem.from_qubo_matrix(q)
    a = rng.integers(1, 6, size=(2, n)).astype(float)
    capacity = np.floor(a.sum(axis=1) / 3)
    c, v = np.nonzero(a)
    weight = 1.0 + np.abs(q).sum()  # above any objective gain per unit of violation
    return problem, LinearInequalities.from_arrays(c, v, a[c, v], -capacity, [weight, weight], n)


def constrained_optimum(problem: BinaryQuadraticProblem, constraints: LinearInequalities) -> float:
    states = np.array(list(itertools.product([0, 1], repeat=problem.num_variables)), dtype=np.uint8)
    energies = problem.energies(states)
    return float(energies[~constraints.violated(states)].min())


def test_model_computes_lhs_penalty_and_violation() -> None:
    # x0 + 2 x1 - 2 <= 0 (weight 3);  -x2 + 0.5 <= 0 (weight 1)
    cons = LinearInequalities.from_arrays([0, 0, 1], [0, 1, 2], [1.0, 2.0, -1.0], [-2.0, 0.5],
                                          [3.0, 1.0], 3)
    states = np.array([[0, 0, 1], [1, 1, 1], [1, 1, 0]], dtype=np.uint8)
    np.testing.assert_allclose(cons.lhs(states), [[-2.0, -0.5], [1.0, -0.5], [1.0, 0.5]])
    np.testing.assert_allclose(cons.penalty(states), [0.0, 3.0, 3.5])
    assert cons.violated(states).tolist() == [False, True, True]
    assert cons.violated(np.array([0, 0, 1])) is np.False_ or not cons.violated(np.array([0, 0, 1]))


@pytest.mark.parametrize("bad, message", [
    (dict(weights=[0.0]), "positive"),
    (dict(variable=[5]), "variable indices"),
    (dict(constraint=[1]), "constraint indices"),
    (dict(coefficient=[np.nan]), "finite"),
    (dict(offsets=[np.inf]), "finite"),
])
def test_model_refuses_bad_input(bad: dict, message: str) -> None:
    args = dict(constraint=[0], variable=[0], coefficient=[1.0], offsets=[-1.0], weights=[1.0])
    args.update(bad)
    with pytest.raises(ValueError, match=message):
        LinearInequalities.from_arrays(**args, num_variables=3)


@pytest.mark.parametrize("gibbs", [False, True])
def test_penalised_keys_equal_plain_keys_of_the_shifted_field(gibbs: bool) -> None:
    """The penalised key loop sees dE_i + pen_i: the same keys as the plain loop on a field
    shifted by (1 - 2 x_i) pen_i."""
    rng = np.random.default_rng(3)
    n = 37
    f = rng.normal(size=n).astype(np.float32)
    x = rng.integers(0, 2, size=n).astype(np.uint8)
    pen = rng.exponential(size=n)
    fixed = np.zeros(n, dtype=np.uint8)
    shifted = (f + (1 - 2 * x.astype(np.float32)) * pen.astype(np.float32)).astype(np.float32)
    a, b = np.empty(n, np.int32), np.empty(n, np.int32)
    for seed in range(50):
        sa = kernels._trial_keys_penalised(np.uint32(seed), f, x, pen, fixed, 0.7, 0.1, gibbs, a)
        sb = kernels._trial_keys(np.uint32(seed), shifted, x, fixed, 0.7, 0.1, gibbs, b)
        # the same sums in another float32 order: keys a few ulps apart at most
        assert abs(int(sa) - int(sb)) <= 64
        np.testing.assert_array_less(np.abs(a.astype(np.int64) - b.astype(np.int64)), 65)


@pytest.mark.parametrize("storage", ["dense", "sparse"])
@pytest.mark.parametrize("trial", [False, True])
def test_incremental_lhs_and_energies_match_recomputation(storage: str, trial: bool) -> None:
    problem, cons = knapsack_like(40, seed=1)
    problem = problem.with_storage(storage)
    reps = Replicas(problem, 6, seed=2, parallel=False, constraints=cons)
    betas = np.geomspace(0.05, 3.0, 400)
    reps.anneal(betas, trial, 0.5, False)
    count = cons.num_constraints
    np.testing.assert_allclose(reps.lhs[:, :count], cons.lhs(reps.states), atol=1e-9)
    np.testing.assert_array_equal(reps.lhs[:, count], (cons.lhs(reps.states) > 1e-9).sum(axis=1))
    # each best is feasible when its replica ever saw a feasible state: flagged so
    best_ok = ~cons.violated(reps.best_states)
    np.testing.assert_array_equal(reps.lhs[:, count + 1] > 0.5, best_ok)
    exact = problem.energies(reps.states) + cons.penalty(reps.states)
    np.testing.assert_allclose(reps.energies, exact, rtol=1e-5, atol=1e-4)
    best_exact = problem.energies(reps.best_states) + cons.penalty(reps.best_states)
    np.testing.assert_allclose(reps.best_energies, best_exact, rtol=1e-5, atol=1e-4)


def test_fixed_bits_hold_under_constraints() -> None:
    problem, cons = knapsack_like(20, seed=4)
    reps = Replicas(problem, 4, seed=0, parallel=False, fixed={0: True, 5: False}, constraints=cons)
    reps.anneal(np.full(200, 0.3), False, 0.0, False)
    assert np.all(reps.states[:, 0] == 1) and np.all(reps.states[:, 5] == 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_solvers_reach_the_constrained_optimum(seed: int) -> None:
    problem, cons = knapsack_like(14, seed=seed)
    best = constrained_optimum(problem, cons)
    unconstrained = float(problem.energies(np.array(list(itertools.product([0, 1], repeat=14)),
                                                    dtype=np.uint8)).min())
    results = [
        anneal_da(problem, num_runs=8, num_iterations=3000, seed=seed, parallel=False, constraints=cons),
        parallel_tempering(problem, num_replicas=8, num_sweeps=1000, seed=seed, parallel=False,
                           constraints=cons),
        solve_time_limited(problem, time_limit=0.5, seed=seed, parallel=False, constraints=cons),
        solve_time_limited(problem, time_limit=0.5, seed=seed, parallel=False, moves="trial",
                           constraints=cons),
    ]
    for result in results:
        assert result.best_energy == pytest.approx(best)
        assert not cons.violated(result.best_state)
        # energies are penalised energies: feasible ones equal the problem's own
        np.testing.assert_allclose(result.energies,
                                   problem.energies(result.states) + cons.penalty(result.states))
    assert best > unconstrained  # the constraints bind: the plain optimum is infeasible


def test_progress_split_by_energy_parts() -> None:
    problem, cons = knapsack_like(14, seed=0)

    def parts(state: np.ndarray) -> tuple[float, float]:
        return float(problem.energy(state)), float(cons.penalty(state))

    result = solve_time_limited(problem, time_limit=0.3, seed=0, parallel=False, constraints=cons,
                                energy_parts=parts)
    assert result.progress and all(len(entry) == 3 for entry in result.progress)
    totals = [e + p for _, e, p in result.progress]
    assert totals == sorted(totals, reverse=True)
    assert result.progress[-1][2] == 0.0 and result.progress[-1][1] == pytest.approx(result.best_energy)


def test_feasible_states_come_first_even_when_lambda_is_too_small() -> None:
    """lambda below the objective's gain: the penalised optimum breaks the constraint, but the
    time-limited solver still returns the best feasible states it saw, ahead of the rest."""
    values = np.array([10.0, 9.0, 8.0, 1.0])
    problem = BinaryQuadraticProblem.from_arrays([], [], [], linear=-values, num_variables=4)
    # x0 + x1 + x2 + x3 <= 1, weight 1 (far below the 8-10 gained per extra item)
    cons = LinearInequalities.from_arrays([0] * 4, range(4), [1.0] * 4, [-1.0], [1.0], 4)
    result = solve_time_limited(problem, time_limit=0.2, seed=0, parallel=False, constraints=cons)
    penalised_best = float((problem.energies(np.ones((1, 4))) + cons.penalty(np.ones((1, 4))))[0])
    assert penalised_best < -10.0  # taking everything is the penalised optimum
    assert not cons.violated(result.best_state)
    assert result.best_energy == -10.0
    flags = cons.violated(result.states)
    assert np.all(np.diff(flags.astype(int)) >= 0)  # feasible first
