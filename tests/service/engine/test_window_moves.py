"""Exact window moves on 2D lattices: recognising the lattice, the dynamic programme against
brute force, the passes' invariants, the automatic choice and solves that use them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from service.engine import BinaryQuadraticProblem, solve_time_limited
from service.engine.lattice import MAX_WINDOW_LENGTH, Torus, optimise_window, window_pass
from service.engine.solver import Replicas

from .lattices import ground_energy, torus


def window_sites(t: Torus, transposed: bool, r0: int, c0: int, width: int, length: int) -> list[int]:
    if transposed:
        return [((r0 + b) % t.rows) * t.cols + (c0 + a) % t.cols for a in range(width) for b in range(length)]
    return [((r0 + a) % t.rows) * t.cols + (c0 + b) % t.cols for a in range(width) for b in range(length)]


def test_the_lattice_is_recognised_with_its_couplings() -> None:
    problem = torus(5, 7, seed=1, field=0.4)
    t = Torus.detect(problem)
    assert t is not None and (t.rows, t.cols) == (5, 7)
    # Rebuilt from right/down/linear, the QUBO's energy is the problem's on any state.
    rng = np.random.default_rng(0)
    states = rng.integers(0, 2, size=(50, 35)).astype(np.uint8)
    x = states.astype(float)
    right_of = (np.arange(35) // 7) * 7 + (np.arange(35) + 1) % 7
    below = (np.arange(35) + 7) % 35
    rebuilt = (x @ t.linear + (x * x[:, right_of]) @ t.right + (x * x[:, below]) @ t.down
               + problem.constant)
    np.testing.assert_allclose(rebuilt, problem.energies(states), atol=1e-9)


def test_graphs_off_the_lattice_are_not_recognised() -> None:
    assert Torus.detect(torus(6, 6, seed=1, storage="dense")) is None
    grid = torus(6, 6, seed=1)
    # One diagonal coupling takes it off the lattice.
    coo = grid.couplings.tocoo()
    upper = coo.row < coo.col
    rows = np.append(coo.row[upper], 0)
    cols = np.append(coo.col[upper], 7)
    diagonal = BinaryQuadraticProblem.from_arrays(rows, cols, np.append(coo.data[upper], 1.0),
                                                  linear=grid.linear, storage="sparse")
    assert Torus.detect(diagonal) is None
    # The same grid with its sites renumbered at random.
    perm = np.random.default_rng(2).permutation(36)
    shuffled = BinaryQuadraticProblem.from_arrays(perm[coo.row[upper]], perm[coo.col[upper]],
                                                  coo.data[upper], num_variables=36, storage="sparse")
    assert Torus.detect(shuffled) is None
    rng = np.random.default_rng(0)
    crowded = np.triu(rng.choice([-1.0, 0.0, 1.0], size=(100, 100), p=[0.05, 0.9, 0.05]), 1)
    assert Torus.detect(BinaryQuadraticProblem.from_ising(np.zeros(100), crowded, storage="sparse")) is None


@pytest.mark.parametrize("transposed", [False, True])
def test_a_window_move_finds_the_windows_best_configuration(transposed: bool) -> None:
    """Against every one of the window's 2^12 configurations, with the rest of the lattice fixed."""
    problem = torus(6, 7, seed=3, field=0.7)
    t = Torus.detect(problem)
    rng = np.random.default_rng(5)
    values, choices = t.window_scratch(4)
    for trial in range(6):
        state = rng.integers(0, 2, size=42).astype(np.uint8)
        width, length = (3, 4) if trial % 2 else (4, 3)
        r0, c0 = int(rng.integers(0, 6)), int(rng.integers(0, 7))
        sites = window_sites(t, transposed, r0, c0, width, length)
        candidates = np.repeat(state[None, :], 2 ** len(sites), axis=0)
        candidates[:, sites] = np.array(list(itertools.product((0, 1), repeat=len(sites))))
        best = float(problem.energies(candidates).min())
        before = problem.energy(state)
        moved = state.copy()
        change = optimise_window(t.rows, t.cols, t.right, t.down, t.linear, moved, transposed, r0, c0,
                                 width, length, values[0], choices[0])
        assert problem.energy(moved) == pytest.approx(best, abs=1e-9)
        assert change == pytest.approx(best - before, abs=1e-9)
        outside = np.setdiff1d(np.arange(42), sites)
        np.testing.assert_array_equal(moved[outside], state[outside])


def test_a_pass_never_raises_the_energy_and_reports_its_change() -> None:
    assert Torus.detect(torus(3, 9, seed=8)) is None  # sides below MIN_LATTICE_SIDE: single flips only
    problem = torus(4, 9, seed=8, field=0.2)
    t = Torus.detect(problem)
    values, choices = t.window_scratch(3)
    state = np.zeros(36, dtype=np.uint8)
    rng = np.uint64(7)
    energy = problem.energy(state)
    changes = []
    for _ in range(20):
        change, rng = window_pass(t.rows, t.cols, t.right, t.down, t.linear, state, 3, rng, values[0], choices[0])
        assert change <= 1e-9
        assert problem.energy(state) == pytest.approx(energy + change, abs=1e-9)
        energy = problem.energy(state)
        changes.append(change)
    assert changes[0] < 0


def test_a_long_thin_lattice_is_covered_by_bounded_windows() -> None:
    """Along a side longer than MAX_WINDOW_LENGTH a strip takes several windows: the backtrack's
    buffer stays bounded by the longest window, not by the side, and the pass stays exact."""
    problem = torus(4, 3 * MAX_WINDOW_LENGTH, seed=6, field=0.3)
    t = Torus.detect(problem)
    values, choices = t.window_scratch(10)
    assert choices.shape[1] <= 10 * MAX_WINDOW_LENGTH << 10
    state = np.zeros(problem.num_variables, dtype=np.uint8)
    before = problem.energy(state)
    change, _ = window_pass(t.rows, t.cols, t.right, t.down, t.linear, state, 10, np.uint64(3),
                            values[0], choices[0])
    assert change < 0 and problem.energy(state) == pytest.approx(before + change, abs=1e-9)


def test_replicas_keep_exact_fields_and_their_best_after_window_moves() -> None:
    problem = torus(12, 10, seed=4, field=0.5)
    t = Torus.detect(problem)
    for parallel in (True, False):
        reps = Replicas(problem, 3, seed=2, parallel=parallel)
        before = reps.energies.copy()
        reps.window_moves(t, 4)
        assert np.all(reps.energies < before)
        fields, energies = reps.exact(reps.states)
        np.testing.assert_allclose(reps.fields, fields, atol=1e-9)
        np.testing.assert_allclose(reps.energies, energies, atol=1e-9)
        np.testing.assert_allclose(reps.best_energies, reps.energies)
        np.testing.assert_array_equal(reps.best_states, reps.states)


def test_the_automatic_choice_and_its_refusals() -> None:
    big = torus(64, 64, seed=1)  # 4,096 variables: the anneal strategy, holding the cold end
    auto = solve_time_limited(big, time_limit=1.0, seed=1)
    assert auto.info["strategy"] == "anneal" and auto.info["window_moves"] is True
    assert auto.info["window_passes"] > 0
    off = solve_time_limited(big, time_limit=0.3, seed=1, window_moves="off")
    assert off.info["window_moves"] is False and off.info["window_passes"] == 0
    pinned = solve_time_limited(big, time_limit=0.3, seed=1, fixed={0: True})
    assert pinned.info["window_moves"] is False
    with pytest.raises(ValueError, match="fixed bits"):
        solve_time_limited(big, time_limit=0.3, seed=1, fixed={0: True}, window_moves="on")
    with pytest.raises(ValueError, match="anneal strategy"):
        solve_time_limited(big, time_limit=0.3, seed=1, strategy="tempering", window_moves="on")
    with pytest.raises(ValueError, match="cold hold"):
        solve_time_limited(big, time_limit=0.3, seed=1, hold_cold="off", window_moves="on")
    with pytest.raises(ValueError, match="lattice"):
        rng = np.random.default_rng(0)
        crowded = np.triu(rng.choice([-1.0, 0.0, 1.0], size=(100, 100), p=[0.02, 0.96, 0.02]), 1)
        solve_time_limited(BinaryQuadraticProblem.from_ising(np.zeros(100), crowded, storage="sparse"),
                           time_limit=0.3, strategy="anneal", hold_cold="on", window_moves="on")
    with pytest.raises(ValueError, match="window_moves"):
        solve_time_limited(big, time_limit=0.3, window_moves="sometimes")


def test_a_solve_with_window_moves_finds_the_exact_ground_state() -> None:
    """A 4 x 5 torus with fields: every one of its 2^20 states enumerated."""
    problem = torus(4, 5, seed=11, field=0.3)
    best = ground_energy(problem)
    result = solve_time_limited(problem, time_limit=1.0, seed=2, strategy="anneal", hold_cold="on",
                                window_moves="on")
    assert result.info["window_passes"] > 0
    assert result.best_energy == pytest.approx(best, abs=1e-9)
