"""The G-set's random graphs derived from their rudy commands (benchmarks/gset_rudy.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.gset_rudy import RUDY_RANDOM_GRAPHS, GbFlip, gset_graph, rnd_graph
from service.engine import solve_time_limited
from service.engine.loaders import load_gset

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def test_gb_flip_passes_knuths_check() -> None:
    # gb_flip.w's own test: these values on every correct implementation.
    rng = GbFlip(-314159)
    assert rng.next() == 119318998
    for _ in range(133):
        rng.next()
    assert rng.uniform(0x55555555) == 748103812


@pytest.mark.parametrize("name", ["G1", "G2", "G22"])
def test_rnd_graph_reproduces_the_shared_files_byte_for_byte(name: str) -> None:
    nodes, density, seed = RUDY_RANDOM_GRAPHS[name]
    i, j = rnd_graph(nodes, density, seed)
    text = f"{nodes} {i.size} \n" + "".join(f"{a + 1} {b + 1} 1\n" for a, b in zip(i, j))
    assert text == (DATA / "gset" / f"{name}.txt").read_text()


def triplets(inst) -> tuple[np.ndarray, ...]:
    return inst.problem.to_triplets()


def test_gset_graph_takes_the_file_where_it_is_the_published_graph() -> None:
    ours, filed = gset_graph("G22"), load_gset(DATA / "gset" / "G22.txt")
    for a, b in zip(triplets(ours), triplets(filed)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ours.problem.linear, filed.problem.linear)
    assert ours.best_known == filed.best_known == 13359


def test_g23_is_the_graph_of_its_rudy_command_and_reaches_its_best_known() -> None:
    inst = gset_graph("G23")
    i, j = rnd_graph(2000, 1.0, 20002)
    rows, cols, weights = triplets(inst)
    assert set(zip(rows.tolist(), cols.tolist())) == set(zip(np.minimum(i, j).tolist(), np.maximum(i, j).tolist()))
    assert inst.best_known == 13344 and np.all(weights == 2.0)
    # The published best cut, which the shared file's graph (rudy seed 2002) never gave.
    r = solve_time_limited(inst.problem, time_limit=30, target_energy=inst.target_energy, seed=1)
    assert inst.objective(r.best_energy) == inst.best_known
