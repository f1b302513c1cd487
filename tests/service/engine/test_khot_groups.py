"""k-hot groups as the engine's native swap move, and fixed-temperature Boltzmann sampling.

Oracles: exhaustive enumeration of the feasible set (small problems), a slow Python replay of the
grouped sweep with the kernels' own random numbers, and exp(-E / T) / Z over the feasible set.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from service.engine import (Annealing, BinaryQuadraticProblem, EmbeddedSampler, KHotGroups,
                            LinearInequalities, Replicas, Sampling, Schedule, Tempering,
                            TimeLimited)
from tests.service.engine.test_kernels import ReferenceRng, accept


def random_problem(n: int, seed: int, storage: str) -> BinaryQuadraticProblem:
    rng = np.random.default_rng(seed)
    q = np.triu(rng.normal(size=(n, n)))
    q[rng.random(size=(n, n)) < 0.3] = 0.0  # some structure missing, so CSR rows differ in length
    return BinaryQuadraticProblem.from_qubo_matrix(q, storage=storage)


def all_states(n: int) -> np.ndarray:
    return np.array(list(itertools.product((0, 1), repeat=n)), dtype=np.uint8)


def feasible_states(groups: KHotGroups, n: int) -> np.ndarray:
    states = all_states(n)
    return states[[groups.satisfied(s) for s in states]]


#: Every schedule the sampler takes, small enough for a 12-bit problem.
SCHEDULES: list[Schedule] = [
    Annealing(runs=8, steps=400, moves="trial"),
    Annealing(runs=8, steps=200, moves="sweep"),
    # The trainer's fast path (_cool): explicit schedule, QUICK, no offset.
    Annealing(runs=4, steps=100, temperature_start=2.0, temperature_decay=0.05,
              temperature_interval=1, offset_increase_rate=0.0, moves="sweep", keep="QUICK"),
    Annealing(runs=4, steps=200, temperature_start=2.0, temperature_decay=0.05,
              temperature_interval=1, offset_increase_rate=0.0, moves="trial", keep="QUICK"),
    Tempering(replicas=6, sweeps=200, moves="sweep"),
    Tempering(replicas=6, sweeps=300, moves="trial"),
    TimeLimited(seconds=0.3, runs=6, moves="sweep"),
    Sampling(runs=32, sweeps=20, temperature=0.5, moves="sweep"),
    Sampling(runs=32, sweeps=20, temperature=0.5, moves="trial"),
]
GROUPS = KHotGroups.from_lists([[0, 3, 5, 6], [1, 2, 9], [10, 11]], [2, 1, 1])  # 4, 7, 8 free


@pytest.mark.parametrize("storage", ["dense", "sparse"])
@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: f"{type(s).__name__}-{s.moves}")
def test_every_returned_state_satisfies_every_group(schedule: Schedule, storage: str) -> None:
    for seed in range(3):
        problem = random_problem(12, seed, storage)
        initial = np.ones(12, dtype=np.uint8)  # breaks every group: repaired before annealing
        result = EmbeddedSampler(parallel=False).sample(problem, schedule, seed=seed,
                                                        initial=initial, groups=GROUPS)
        assert len(result) >= 1
        assert all(GROUPS.satisfied(state) for state in result.states)
        # The problem's own energies, no penalty.
        np.testing.assert_allclose(result.energies, problem.energies(result.states), atol=1e-9)


@pytest.mark.parametrize("storage", ["dense", "sparse"])
@pytest.mark.parametrize("schedule", SCHEDULES[:7], ids=lambda s: f"{type(s).__name__}-{s.moves}")
def test_best_is_the_exhaustive_optimum_over_the_feasible_set(schedule: Schedule,
                                                               storage: str) -> None:
    groups = KHotGroups.consecutive([5, 4, 3], [2, 3, 1], start=1)  # 0, 13, 14 free
    feasible = feasible_states(groups, 15)
    for seed in range(3):
        problem = random_problem(15, 10 + seed, storage)
        energies = problem.energies(feasible)
        # The unconstrained optimum breaks a group, else the test would prove nothing.
        assert problem.energies(all_states(15)).min() < energies.min() - 1e-9
        result = EmbeddedSampler(parallel=False).sample(problem, schedule, seed=seed,
                                                        groups=groups)
        assert result.best_energy == pytest.approx(float(energies.min()), abs=1e-9)


@pytest.mark.parametrize("moves", ["sweep", "trial"])
def test_without_groups_the_free_path_is_unchanged(moves: str) -> None:
    """groups=None and a KHotGroups without groups run the same kernels: same seed, same states."""
    problem = random_problem(40, 3, "sparse")
    none = KHotGroups.from_lists([], [])
    for schedule in (Annealing(runs=3, steps=300, moves=moves),
                     Tempering(replicas=4, sweeps=100, moves=moves)):
        a = EmbeddedSampler(parallel=False).sample(problem, schedule, seed=5)
        b = EmbeddedSampler(parallel=False).sample(problem, schedule, seed=5, groups=none)
        np.testing.assert_array_equal(a.states, b.states)
        np.testing.assert_array_equal(a.energies, b.energies)


def reference_grouped_sweep(q_sym: np.ndarray, h: np.ndarray, x: np.ndarray, beta: float,
                            group_of: np.ndarray, groups: KHotGroups, rng: ReferenceRng) -> None:
    """The grouped sweep in plain Python: a flip per free bit, for a grouped bit a swap with a
    uniformly drawn member of its group (nothing when both hold the same bit)."""
    rng.new_sweep()
    for i in range(x.size):
        g = group_of[i]
        if g < 0:
            field = h[i] + q_sym[i] @ x
            if accept(field if x[i] == 0 else -field, beta, rng):
                x[i] ^= 1
            continue
        lo, hi = groups.indptr[g], groups.indptr[g + 1]
        j = groups.members[lo + int(rng.uniform() * (hi - lo))]
        if x[j] == x[i]:
            continue
        y = x.copy()
        y[i] ^= 1
        y[j] ^= 1
        d = (h @ y + 0.5 * y @ q_sym @ y) - (h @ x + 0.5 * x @ q_sym @ x)
        if accept(d, beta, rng):
            x[:] = y


@pytest.mark.parametrize("storage", ["dense", "sparse"])
def test_grouped_sweeps_replay_the_reference(storage: str) -> None:
    rng = np.random.default_rng(1)
    q = rng.integers(-4, 5, size=(16, 16)).astype(float)  # integers: float32 fields exact
    problem = BinaryQuadraticProblem.from_qubo_matrix(q, storage=storage)
    groups = KHotGroups.from_lists([[0, 2, 4, 6, 8], [1, 3, 5], [15, 14, 13, 12]], [2, 1, 3])
    reps = Replicas(problem, 3, seed=4, parallel=False, groups=groups)
    assert all(groups.satisfied(s) for s in reps.states)  # random starts repaired
    start = reps.states.copy()
    rng_start = [int(v) for v in reps.rng]
    schedule = np.array([0.05, 0.2, 0.5, 1.0, 2.0, 4.0])
    reps.anneal(schedule, trial=False, offset_rate=0.0, gibbs=False)
    q_sym = problem.couplings.toarray() if problem.is_sparse else np.asarray(problem.couplings)
    group_of = groups.group_of(16)
    for r in range(3):
        x = start[r].copy()
        ref = ReferenceRng(rng_start[r])
        for beta in schedule:
            reference_grouped_sweep(q_sym, problem.linear, x, beta, group_of, groups, ref)
        np.testing.assert_array_equal(reps.states[r], x)
        assert int(reps.rng[r]) == ref.s
        assert reps.energies[r] == pytest.approx(problem.energy(x), abs=1e-4)
        assert reps.best_energies[r] == pytest.approx(problem.energy(reps.best_states[r]), abs=1e-4)


@pytest.mark.parametrize("grouped", [True, False])
def test_sampling_draws_the_boltzmann_distribution(grouped: bool) -> None:
    """Final states of fixed-temperature chains against exp(-E / T) / Z over the feasible set.

    With N draws over K states, Hoeffding's bound on each of the 2^K events A and a union bound
    give P(TV > eps) <= 2^(K + 1) exp(-2 N eps^2): for K <= 18 and N = 20,000, eps = 0.03 is
    exceeded with probability < 1e-6 by sampling noise alone (a chain that has not mixed, or a
    wrong acceptance rule, lands far above it)."""
    n = 7
    groups = KHotGroups.consecutive([3, 3], [1, 2]) if grouped else None  # bit 6 free
    rng = np.random.default_rng(3)
    problem = BinaryQuadraticProblem.from_qubo_matrix(np.triu(rng.normal(scale=0.8, size=(n, n))))
    temperature, draws = 1.0, 20_000
    states = all_states(n) if groups is None else feasible_states(groups, n)
    weights = np.exp(-problem.energies(states) / temperature)
    expected = weights / weights.sum()
    initial = np.zeros(n, dtype=np.uint8)
    initial[[0, 3, 4]] = 1  # one fixed start for every chain: the distribution comes from mixing
    result = EmbeddedSampler(parallel=False).sample(
        problem, Sampling(runs=draws, sweeps=30, temperature=temperature), initial=initial,
        seed=11, groups=groups)
    assert result.frequencies.sum() == draws
    index = {bytes(s): k for k, s in enumerate(states)}
    observed = np.zeros(len(states))
    for state, count in zip(result.states, result.frequencies):
        observed[index[bytes(state)]] += count  # KeyError: a state outside the feasible set
    tv = 0.5 * np.abs(observed / draws - expected).sum()
    assert len(states) <= 18 or groups is None
    bound = math.sqrt(((len(states) + 1) * math.log(2) + math.log(1e6)) / (2 * draws))
    assert tv < bound, (tv, bound)


def test_sampling_returns_final_states_not_the_best() -> None:
    """Hot chains end spread over the states: their mean energy lies well above the optimum that
    a best-seen record would report."""
    problem = random_problem(10, 4, "dense")
    result = EmbeddedSampler(parallel=False).sample(problem, Sampling(runs=400, sweeps=10,
                                                                      temperature=50.0), seed=2)
    mean = float(result.energies @ result.frequencies) / 400
    assert len(result) > 50
    assert mean > problem.energies(all_states(10)).min() + 1.0


def test_bad_combinations_are_clear_errors() -> None:
    problem = random_problem(8, 0, "dense")
    groups = KHotGroups.consecutive([4], [2])
    sampler = EmbeddedSampler(parallel=False)
    with pytest.raises(ValueError, match="fixed inside a k-hot group"):
        sampler.sample(problem, Annealing(runs=2, steps=10), fixed={1: True}, groups=groups)
    inequalities = LinearInequalities.from_arrays([0], [5], [1.0], [-1.0], [1.0], 8)
    with pytest.raises(ValueError, match="inequality constraints"):
        sampler.sample(problem, Annealing(runs=2, steps=10), constraints=inequalities,
                       groups=groups)
    with pytest.raises(ValueError, match="outside the problem"):
        sampler.sample(problem, Annealing(runs=2, steps=10),
                       groups=KHotGroups.consecutive([3, 6], [1, 1]))
    with pytest.raises(ValueError, match="temperature"):
        Sampling(temperature=0.0)
    # Fixed bits outside the groups are fine.
    result = sampler.sample(problem, Annealing(runs=2, steps=50), fixed={6: True}, groups=groups,
                            seed=0)
    assert all(groups.satisfied(s) and s[6] == 1 for s in result.states)
