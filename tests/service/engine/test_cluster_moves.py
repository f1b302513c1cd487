"""Isoenergetic cluster moves between tempering ensembles: the move's invariants (each pair's
summed energy, exact fields, fixed bits), the automatic choice by structure, and solves that
use them."""

from __future__ import annotations

import numpy as np
import pytest

from service.engine import BinaryQuadraticProblem, solve_time_limited
from service.engine.constraints import LinearInequalities
from service.engine import solver
from service.engine.solver import Replicas, TemperingLadder

from .lattices import ground_energy, torus


def test_a_move_keeps_each_pairs_summed_energy_and_exact_fields() -> None:
    problem = torus(12, 12, seed=3, field=0.5)
    reps = Replicas(problem, 2 * 6, seed=1)
    orders = np.tile(np.arange(6), (2, 1))
    rng = np.random.default_rng(0)
    for _ in range(20):
        orders[1] = rng.permutation(6)
        before_states, before = reps.states.copy(), reps.energies.copy()
        reps.cluster_moves(orders, 0, np.uint64(rng.integers(1, 2**63)))
        for k in range(6):
            a, b = orders[0, k], 6 + orders[1, k]
            assert reps.energies[a] + reps.energies[b] == pytest.approx(before[a] + before[b], abs=1e-9)
            # the sites that changed changed in both replicas, and only where the two differed
            changed = before_states[a] != reps.states[a]
            np.testing.assert_array_equal(changed, before_states[b] != reps.states[b])
            assert not (changed & (before_states[a] == before_states[b])).any()
        fields, energies = reps.exact(reps.states)
        np.testing.assert_allclose(reps.energies, energies, atol=1e-9)
        np.testing.assert_allclose(reps.fields, fields, atol=1e-9)
        assert np.all(reps.best_energies <= reps.energies + 1e-12)
    assert (reps.states != Replicas(problem, 12, seed=1).states).any()  # moves did happen


def test_a_cluster_is_one_connected_domain_of_differing_sites() -> None:
    """On a 1 x 12 ring two replicas that differ on sites 2-4 and 8-9 exchange exactly one of
    the two domains per move."""
    problem = torus(1, 12, seed=5)
    reps = Replicas(problem, 2, seed=0, initial=np.zeros((2, 12), dtype=np.uint8))
    reps.states[1, [2, 3, 4, 8, 9]] = 1
    reps.resync()
    domains = set()
    for seed in range(1, 40):
        trial = Replicas(problem, 2, seed=0, initial=reps.states.copy())
        trial.cluster_moves(np.zeros((2, 1), dtype=np.int64), 0, np.uint64(seed))
        domains.add(tuple(np.flatnonzero(trial.states[0])))
    assert domains == {(2, 3, 4), (8, 9)}


def test_fixed_bits_never_move() -> None:
    problem = torus(8, 8, seed=2)
    fixed = {i: bool(i % 2) for i in range(0, 64, 5)}
    reps = Replicas(problem, 8, seed=4, fixed=fixed)
    orders = np.tile(np.arange(4), (2, 1))
    for k in range(30):
        reps.cluster_moves(orders, 0, np.uint64(k + 1))
    for i, value in fixed.items():
        assert (reps.states[:, i] == value).all()


def test_the_automatic_choice_follows_the_structure() -> None:
    grid = solve_time_limited(torus(10, 10, seed=1), time_limit=0.2, seed=1)
    assert grid.info["cluster_moves"] is True
    dense = solve_time_limited(torus(10, 10, seed=1, storage="dense"), time_limit=0.2, seed=1)
    assert dense.info["cluster_moves"] is False
    rng = np.random.default_rng(0)
    crowded = np.triu(rng.choice([-1.0, 0.0, 1.0], size=(100, 100), p=[0.1, 0.8, 0.1]), 1)
    random_graph = BinaryQuadraticProblem.from_ising(np.zeros(100), crowded, storage="sparse")
    assert solve_time_limited(random_graph, time_limit=0.2, seed=1).info["cluster_moves"] is False
    assert solve_time_limited(random_graph, time_limit=0.2, seed=1, cluster_moves="on").info["cluster_moves"]
    assert solve_time_limited(torus(10, 10, seed=1), time_limit=0.2, seed=1,
                              cluster_moves="off").info["cluster_moves"] is False


def test_moves_the_energy_cannot_follow_are_refused() -> None:
    problem = torus(6, 6, seed=1)
    # x0 + x1 - 1 <= 0
    cons = LinearInequalities.from_arrays([0, 0], [0, 1], [1.0, 1.0], [-1.0], [1.0], num_variables=36)
    with pytest.raises(ValueError, match="cluster"):
        solve_time_limited(problem, time_limit=0.1, constraints=cons, cluster_moves="on")
    with pytest.raises(ValueError, match="cluster_moves"):
        solve_time_limited(problem, time_limit=0.1, cluster_moves="sometimes")
    with pytest.raises(ValueError, match="two ensembles"):
        TemperingLadder(Replicas(problem, 4, seed=1), np.linspace(0.1, 1.0, 4), 1, False, 0.0, False,
                        cluster_moves=True)


def test_a_solve_with_cluster_moves_finds_the_exact_ground_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 4 x 5 torus with fields: every one of its 2^20 states enumerated. Cluster moves every
    8 rounds (a graph this small would otherwise get them every few thousand)."""
    monkeypatch.setattr(solver, "CLUSTER_WORK", 0)
    problem = torus(4, 5, seed=11, field=0.3)
    best = ground_energy(problem)
    # no target: the solve runs its whole second, cluster moves included
    result = solve_time_limited(problem, time_limit=1.0, seed=2, cluster_moves="on")
    assert result.info["cluster_moves"] is True and result.info["cluster_move_rounds"] > 0
    assert result.best_energy == pytest.approx(best, abs=1e-9)
