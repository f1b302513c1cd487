"""Solvers: exact ground states, reproducibility, interruption, DA semantics."""

from __future__ import annotations

import itertools
import threading
import time

import numba
import numpy as np
import pytest

from service.engine import (BinaryQuadraticProblem, CoolingMode, KHotGroups, TemperatureSchedule,
                            anneal_da, parallel_tempering, solve_time_limited)
from service.engine.kernels import quantile
from service.engine.solver import ANNEAL_MIN_VARIABLES, FIRST_ANNEAL_SHARE, next_anneal_length
from service.engine.precision import BIAS_MAX, COUPLER_MAX, to_hardware_precision


def brute_force(p: BinaryQuadraticProblem) -> tuple[float, np.ndarray]:
    x = np.array(list(itertools.product([0, 1], repeat=p.num_variables)), dtype=np.uint8)
    e = p.energies(x)
    return float(e.min()), x[e <= e.min() + 1e-9]


def random_qubo(n: int, seed: int, density: float = 1.0) -> BinaryQuadraticProblem:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, n)) * (rng.random((n, n)) < density)
    return BinaryQuadraticProblem.from_qubo_matrix(q, constant=rng.normal())


def random_ising(n: int, seed: int) -> BinaryQuadraticProblem:
    rng = np.random.default_rng(seed)
    j = np.triu(rng.choice([-1.0, 1.0], size=(n, n)), 1)
    return BinaryQuadraticProblem.from_ising(rng.normal(scale=0.3, size=n), j, offset=2.0)


SOLVERS = {
    "da-trial": lambda p, s: anneal_da(p, num_runs=16, num_iterations=3000, seed=s),
    "da-sweep": lambda p, s: anneal_da(p, num_runs=8, num_iterations=300, moves="sweep", seed=s),
    "pt": lambda p, s: parallel_tempering(p, num_replicas=12, num_sweeps=400, seed=s),
    "pt-trial": lambda p, s: parallel_tempering(p, num_replicas=12, num_sweeps=3000, moves="trial", seed=s),
    "da3": lambda p, s: solve_time_limited(p, time_limit=0.5, seed=s),
    "da3-anneal": lambda p, s: solve_time_limited(p, time_limit=0.5, seed=s, strategy="anneal"),
}


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("form, n, seed", [("qubo", 12, 1), ("qubo", 18, 2), ("ising", 16, 3),
                                           ("sparse-qubo", 20, 4)])
def test_exact_ground_state_by_brute_force(solver: str, form: str, n: int, seed: int) -> None:
    if form == "ising":
        p = random_ising(n, seed)
    else:
        p = random_qubo(n, seed, density=0.2 if form == "sparse-qubo" else 1.0)
    exact, ground = brute_force(p)
    result = SOLVERS[solver](p, seed)
    assert result.best_energy == pytest.approx(exact, abs=1e-9)
    assert any(np.array_equal(result.best_state, g) for g in ground)
    # Energies are exact recomputations, sorted; states distinct; frequencies positive.
    np.testing.assert_allclose(result.energies, p.energies(result.states))
    assert np.all(np.diff(result.energies) >= 0)
    assert len({s.tobytes() for s in result.states}) == len(result)
    assert np.all(result.frequencies >= 1)


def test_complete_merges_runs_and_quick_returns_one() -> None:
    p = random_qubo(10, 5)
    complete = anneal_da(p, num_runs=20, num_iterations=2000, seed=1)
    assert complete.frequencies.sum() == 20
    quick = anneal_da(p, num_runs=20, num_iterations=2000, seed=1, solution_mode="QUICK")
    assert len(quick) == 1 and quick.best_energy == complete.best_energy


def test_same_seed_same_result_and_thread_count_does_not_matter() -> None:
    p = random_qubo(40, 6)
    a = parallel_tempering(p, num_replicas=8, num_sweeps=200, seed=42)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        b = parallel_tempering(p, num_replicas=8, num_sweeps=200, seed=42)
    finally:
        numba.set_num_threads(before)
    c = parallel_tempering(p, num_replicas=8, num_sweeps=200, seed=42, parallel=False)
    for other in (b, c):
        np.testing.assert_array_equal(a.states, other.states)
        np.testing.assert_array_equal(a.frequencies, other.frequencies)


def test_different_seeds_give_independent_runs() -> None:
    p = random_qubo(60, 7)
    a = anneal_da(p, num_runs=4, num_iterations=5, seed=1, solution_mode="COMPLETE")
    b = anneal_da(p, num_runs=4, num_iterations=5, seed=2, solution_mode="COMPLETE")
    # After 5 single-flip iterations from random starts, runs still differ almost everywhere.
    assert not np.array_equal(a.states, b.states)
    assert len(a) == 4  # four runs from independent random starts end in distinct states


def test_time_limit_and_cancel_return_best_so_far() -> None:
    p = random_qubo(200, 8)
    start = time.perf_counter()
    r = anneal_da(p, num_runs=4, num_iterations=10**9, time_limit=0.3, seed=0)
    assert time.perf_counter() - start < 2.0
    assert r.stop_reason == "time_limit" and np.isfinite(r.best_energy)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    start = time.perf_counter()
    r = parallel_tempering(p, num_replicas=8, num_sweeps=10**9, cancel=cancel, seed=0)
    assert time.perf_counter() - start < 2.0
    assert r.stop_reason == "cancelled" and r.energies[0] == pytest.approx(p.energy(r.best_state))


def test_target_energy_stops_early_and_progress_improves() -> None:
    p = random_qubo(14, 9)
    exact, _ = brute_force(p)
    r = solve_time_limited(p, time_limit=30, target_energy=exact, seed=1)
    assert r.stop_reason == "target_energy" and r.timing["total"] < 10
    energies = [e for _, e in r.progress]
    times = [t for t, _ in r.progress]
    assert energies[-1] == pytest.approx(exact)
    assert all(np.diff(energies) < 0) and all(np.diff(times) >= 0)


def test_time_limited_outputs_distinct_states_per_group_and_respects_fixed() -> None:
    p = random_qubo(30, 10)
    r = solve_time_limited(p, time_limit=0.4, num_groups=2, num_outputs=3,
                           fixed={0: True, 5: False}, seed=3)
    assert 1 <= len(r) <= 6
    assert np.all(r.states[:, 0] == 1) and np.all(r.states[:, 5] == 0)
    reduced, free = p.fix_variables({0: True, 5: False})
    assert reduced.num_variables == 28 and len(free) == 28


def test_time_limited_strategy_follows_the_size_and_anneals_restart_to_the_deadline() -> None:
    small = random_qubo(30, 12, density=0.2)
    assert solve_time_limited(small, time_limit=0.1, seed=1).info["strategy"] == "tempering"
    # Disjoint 8-variable blocks of integer weights (gaps >= 1): the ground-state energy is the
    # sum of the blocks' own, found by enumeration.
    rng = np.random.default_rng(12)
    count = ANNEAL_MIN_VARIABLES // 8
    weights = np.triu(rng.integers(-3, 4, size=(count, 8, 8)).astype(float))
    states = np.array(list(itertools.product([0, 1], repeat=8)), dtype=float)
    ground = sum(float(np.einsum("si,ij,sj->s", states, w, states).min()) for w in weights)
    b, i, j = np.nonzero(weights * (1 - np.eye(8)))
    large = BinaryQuadraticProblem.from_arrays(8 * b + i, 8 * b + j, weights[b, i, j],
                                               linear=np.einsum("bii->bi", weights).ravel(),
                                               num_variables=ANNEAL_MIN_VARIABLES)
    r = solve_time_limited(large, time_limit=30.0, target_energy=ground, seed=1)
    assert r.info["strategy"] == "anneal" and r.info["cluster_moves"] is False
    assert r.stop_reason == "target_energy" and r.best_energy == pytest.approx(ground)
    assert solve_time_limited(large, time_limit=0.2, seed=1, cluster_moves="on").info["strategy"] == "tempering"
    # Mean degree ~6 (blocks of 8): the anneal held the cold end after its first pass.
    assert r.info["hold_cold"] is True
    # Denser (mean degree ~10): the clock paces the restarts (their count depends on the
    # machine's load); the last one runs to the deadline.
    forced = solve_time_limited(random_qubo(30, 13, density=0.2), time_limit=1.0, seed=2, strategy="anneal")
    assert forced.info["hold_cold"] is False
    assert 2 <= forced.info["anneals"] <= 4 and forced.stop_reason == "time_limit"
    assert forced.timing["total"] == pytest.approx(1.0, abs=0.25)
    # A ring (degree 2): one anneal, then the cold end held to the deadline.
    ring = BinaryQuadraticProblem.from_arrays(np.arange(64), (np.arange(64) + 1) % 64,
                                              np.random.default_rng(3).choice([-1.0, 1.0], 64),
                                              num_variables=64)
    held = solve_time_limited(ring, time_limit=1.0, seed=2, strategy="anneal")
    assert held.info["hold_cold"] is True and held.info["anneals"] == 1
    assert held.stop_reason == "time_limit" and held.timing["total"] == pytest.approx(1.0, abs=0.25)


def test_anneal_lengths_double_from_a_sixteenth_and_the_last_takes_the_rest() -> None:
    def lengths(budget: float, late: float = 0.0) -> list[float]:
        # Every anneal ends `late` after its planned length, as on a busy machine.
        elapsed, length, out = 0.0, FIRST_ANNEAL_SHARE * budget, []
        while elapsed < budget:
            length = next_anneal_length(length, budget - elapsed)
            out.append(length)
            elapsed += length + late
            length *= 2
        return out

    assert lengths(16.0) == [1.0, 2.0, 4.0, 9.0]
    assert lengths(16.0, late=1.0) == [1.0, 2.0, 11.0]
    assert lengths(1.0) == pytest.approx([1 / 16, 1 / 8, 1 / 4, 9 / 16])


def test_anneal_strategy_keeps_fixed_bits_groups_and_target_energy() -> None:
    p = random_qubo(16, 15)
    exact, _ = brute_force(p)
    r = solve_time_limited(p, time_limit=30, target_energy=exact, seed=1, strategy="anneal")
    assert r.stop_reason == "target_energy" and r.best_energy == pytest.approx(exact)
    assert r.timing["total"] < 10
    groups = KHotGroups.from_lists([[0, 1, 2, 3, 4, 5], [6, 7, 8, 9]], [2, 1])
    g = solve_time_limited(p, time_limit=0.3, num_groups=2, num_outputs=3, seed=3, strategy="anneal",
                           groups=groups, fixed={12: True})
    assert 1 <= len(g) <= 6
    assert all(groups.satisfied(s) for s in g.states) and np.all(g.states[:, 12] == 1)

    p = random_qubo(30, 11)
    guide = {i: bool(i % 2) for i in range(30)}
    # One iteration at ~zero temperature from the guided state moves at most one bit.
    r = anneal_da(p, num_runs=3, num_iterations=1, initial=guide, temperature_start=1e-9,
                  temperature_decay=0.0, seed=0)
    target = np.array([i % 2 for i in range(30)])
    assert np.all(np.abs(r.states.astype(int) - target).sum(axis=1) <= 1)


def test_temperature_schedule_modes() -> None:
    exp = TemperatureSchedule(10.0, 0.1, interval=2, mode=CoolingMode.EXPONENTIAL)
    np.testing.assert_allclose(1 / exp.betas(5), [10, 10, 9, 9, 8.1])
    inv = TemperatureSchedule(10.0, 0.01, interval=1, mode="INVERSE")
    np.testing.assert_allclose(1 / inv.betas(2), [10, 10 * (1 - 0.1)])
    root = TemperatureSchedule(2.0, 0.1, interval=1, mode="INVERSE_ROOT")
    np.testing.assert_allclose(1 / root.betas(2), [2, 2 * (1 - 0.4)])
    with pytest.raises(ValueError, match="temperature_decay"):
        TemperatureSchedule(1.0, 1.5)


@pytest.mark.parametrize("size", [1, 2, 7, 100, 1001])
def test_quantile_matches_numpy(size: int) -> None:
    rng = np.random.default_rng(size)
    values = rng.normal(size=size)
    values[: size // 3] = values[0]  # ties
    for q in (0.0, 0.05, 0.5, 0.93, 1.0):
        assert quantile(values, q) == pytest.approx(float(np.quantile(values, q)), rel=1e-12, abs=1e-15)


def test_gibbs_noise_model_solves() -> None:
    p = random_qubo(12, 12)
    exact, _ = brute_force(p)
    r = anneal_da(p, num_runs=16, num_iterations=4000, noise_model="GIBBS", seed=2)
    assert r.best_energy == pytest.approx(exact)


def test_hardware_precision_rounds_and_energies_stay_in_original_units() -> None:
    p = random_qubo(16, 13)
    scaled, scale = to_hardware_precision(p)
    assert np.abs(scaled.couplings).max() <= COUPLER_MAX and np.abs(scaled.linear).max() <= BIAS_MAX
    assert np.all(scaled.couplings == np.round(scaled.couplings))
    result = anneal_da(scaled, num_runs=16, num_iterations=3000, seed=1).rescored(p)
    exact, _ = brute_force(p)
    np.testing.assert_allclose(result.energies, p.energies(result.states))
    assert result.best_energy == pytest.approx(exact)


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_one_variable_and_all_zero_problems_solve(solver: str) -> None:
    one = BinaryQuadraticProblem.from_dict({(0, 0): -2.0}, constant=1.0)
    assert SOLVERS[solver](one, 0).best_energy == -1.0
    zeros = BinaryQuadraticProblem.from_qubo_matrix(np.zeros((6, 6)), constant=0.5)
    assert SOLVERS[solver](zeros, 0).best_energy == 0.5


def test_bad_solver_arguments_raise_value_error() -> None:
    p = random_qubo(5, 14)
    with pytest.raises(ValueError, match="number_iterations"):
        anneal_da(p, num_iterations=0)
    with pytest.raises(ValueError, match="noise_model"):
        anneal_da(p, noise_model="HOT")
    with pytest.raises(ValueError, match="replicas"):
        parallel_tempering(p, num_replicas=0)
    with pytest.raises(ValueError, match="time limit"):
        solve_time_limited(p, time_limit=float("nan"))
    with pytest.raises(ValueError, match="guidance_config"):
        anneal_da(p, initial={9: True})
    with pytest.raises(ValueError, match="every variable is fixed"):
        anneal_da(p, fixed={i: True for i in range(5)})
    with pytest.raises(ValueError, match="moves"):
        parallel_tempering(p, moves="teleport")
    with pytest.raises(ValueError, match="strategy"):
        solve_time_limited(p, time_limit=0.1, strategy="guess")
    with pytest.raises(ValueError, match="tempering"):
        solve_time_limited(p, time_limit=0.1, strategy="anneal", cluster_moves="on")


@pytest.mark.parametrize("rows, width", [(2, 5), (16, 64), (40, 3), (64, 130), (65, 9), (300, 17)])
def test_distinct_states_merges_like_a_sort_of_the_rows(rows: int, width: int) -> None:
    """Both paths (a numba sort for few rows, np.unique beyond) give the rows in bytewise order of
    their packed bits, each with the sum of its counts."""
    from service.engine.result import distinct_states

    rng = np.random.default_rng(rows)
    states = rng.integers(0, 2, (rows, width), dtype=np.uint8)
    states[rows // 2:] = states[: rows - rows // 2]  # plenty of repeats
    counts = rng.integers(1, 5, rows)
    packed = [bytes(np.packbits(s)) for s in states]
    expected = {}
    for key, state, count in zip(packed, states, counts):
        expected.setdefault(key, [state, 0])[1] += int(count)
    keys = sorted(expected)
    uniq, merged = distinct_states(states, counts)
    np.testing.assert_array_equal(uniq, np.array([expected[k][0] for k in keys]))
    assert merged.tolist() == [expected[k][1] for k in keys]
    assert merged.dtype == np.int64
