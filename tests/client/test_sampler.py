"""``SpinOutSampler`` (dimod) against the real service, checked against brute force."""

from __future__ import annotations

import dimod
import pytest

from client.sampler import SpinOutSampler


@pytest.fixture(scope="module")
def ising() -> tuple[dict, dict]:
    """A frustrated 8-spin ring with fields: small enough to enumerate."""
    h = {f"s{i}": (0.5 if i % 3 == 0 else -0.25) for i in range(8)}
    j = {(f"s{i}", f"s{(i + 1) % 8}"): (1.0 if i % 2 else -1.5) for i in range(8)}
    j[("s0", "s4")] = 0.75
    return h, j


def test_sample_ising_reaches_ground_state(service, ising) -> None:
    h, j = ising
    exact = dimod.ExactSolver().sample_ising(h, j)
    with SpinOutSampler(service.url, api_key=service.api_key) as sampler:
        sampleset = sampler.sample_ising(h, j, time_limit=1, num_reads=8, seed=4)
    assert sampleset.vartype is dimod.SPIN
    assert set(sampleset.variables) == set(h)
    assert sampleset.first.energy == pytest.approx(exact.first.energy)
    bqm = dimod.BinaryQuadraticModel.from_ising(h, j)
    for sample, energy in sampleset.data(["sample", "energy"]):
        assert bqm.energy(sample) == pytest.approx(energy)


def test_sample_qubo_on_a_synchronous_solver(service) -> None:
    q = {(0, 0): -1.0, (1, 1): -1.0, (2, 2): -1.0, (0, 1): 2.0, (1, 2): 2.0, (0, 2): 2.0, (3, 3): 1.0}
    exact = dimod.ExactSolver().sample_qubo(q)
    with SpinOutSampler(service.url, solver="fujitsuDA", api_key=service.api_key) as sampler:
        sampleset = sampler.sample_qubo(q, num_reads=16, number_iterations=500)
        assert sampleset.vartype is dimod.BINARY
        assert sampleset.first.energy == pytest.approx(exact.first.energy) == -1.0
        assert sampleset.first.sample[3] == 0
        with pytest.raises(ValueError, match="no time limit"):
            sampler.sample_qubo(q, time_limit=1)


def test_sampler_surface() -> None:
    sampler = SpinOutSampler("http://127.0.0.1:9", solver="fujitsuDA3")
    assert {"time_limit", "num_reads", "seed", "num_run", "time_limit_sec"} <= set(sampler.parameters)
    assert sampler.properties["max_num_variables"] == 100_000
    assert isinstance(sampler, dimod.Sampler)
    sampler.close()
    with pytest.raises(ValueError, match="unknown solver"):
        SpinOutSampler("http://127.0.0.1:9", solver="nope")
