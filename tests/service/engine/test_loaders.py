"""Real instances: file formats, and best-known values reached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.engine import solve_time_limited
from service.engine.loaders import load_beasley, load_gset, load_instance

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def test_gset_energy_is_minus_the_cut() -> None:
    inst = load_gset(DATA / "gset" / "G11.txt")
    assert inst.problem.num_variables == 800 and inst.best_known == 564
    raw = np.loadtxt(DATA / "gset" / "G11.txt", skiprows=1)
    i, j, w = raw[:, 0].astype(int) - 1, raw[:, 1].astype(int) - 1, raw[:, 2]
    x = np.random.default_rng(0).integers(0, 2, size=(5, 800)).astype(np.uint8)
    cuts = [(w * (s[i] != s[j])).sum() for s in x]
    np.testing.assert_allclose(-inst.problem.energies(x), cuts)


def test_beasley_energy_is_minus_the_objective() -> None:
    inst = load_beasley(DATA / "beasley" / "bqp50.txt", 3)
    assert inst.name == "bqp50.3" and inst.best_known == 4626
    # Rebuild the symmetric Q by hand from the third block of the file.
    nums = (DATA / "beasley" / "bqp50.txt").read_text().split()
    pos = 1
    for _ in range(2):
        pos += 2 + 3 * int(nums[pos + 1])
    n, nnz = int(nums[pos]), int(nums[pos + 1])
    q = np.zeros((n, n))
    for k in range(nnz):
        a, b, v = (int(nums[pos + 2 + 3 * k]) - 1, int(nums[pos + 3 + 3 * k]) - 1,
                   float(nums[pos + 4 + 3 * k]))
        q[a, b] = v
        q[b, a] = v
    x = np.random.default_rng(1).integers(0, 2, size=(4, n)).astype(float)
    np.testing.assert_allclose(-inst.problem.energies(x), np.einsum("ki,ij,kj->k", x, q, x))


def test_loader_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_instance(tmp_path / "G99.txt")
    bad = tmp_path / "G0.txt"
    bad.write_text("4 3\n1 2 1\n")
    with pytest.raises(ValueError, match="promises 3 edges"):
        load_gset(bad)
    with pytest.raises(ValueError, match="instances 1..10"):
        load_beasley(DATA / "beasley" / "bqp50.txt", 11)


@pytest.mark.parametrize("family, count", [("bqp50", 10), ("bqp100", 10)])
def test_beasley_best_known_reached(family: str, count: int) -> None:
    for k in range(1, count + 1):
        inst = load_instance(f"{DATA / 'beasley' / family}.txt:{k}")
        r = solve_time_limited(inst.problem, time_limit=5, target_energy=inst.target_energy,
                               seed=k)
        assert inst.objective(r.best_energy) == inst.best_known, inst.name


@pytest.mark.slow
def test_beasley_bqp250_best_known_reached() -> None:
    for k in range(1, 11):
        inst = load_instance(f"{DATA / 'beasley' / 'bqp250'}.txt:{k}")
        r = solve_time_limited(inst.problem, time_limit=10, target_energy=inst.target_energy,
                               seed=k)
        assert inst.objective(r.best_energy) == inst.best_known, inst.name


@pytest.mark.parametrize("name", ["G11", "G14"])
def test_gset_within_half_a_percent_on_a_small_budget(name: str) -> None:
    inst = load_instance(DATA / "gset" / f"{name}.txt")
    r = solve_time_limited(inst.problem, time_limit=3, target_energy=inst.target_energy, seed=0)
    assert inst.objective(r.best_energy) >= 0.995 * inst.best_known
