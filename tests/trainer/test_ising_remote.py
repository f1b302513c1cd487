"""Ising-Dropout against a real solver service on loopback (``python -m service serve``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.dropout import registry
from trainer.dropout.base import VariantSpec
from trainer.dropout.ising_energy import EnergyOptions, IsingLayout, QuboBuilder
from trainer.dropout.ising_solver import AnnealBudget, EmbeddedSolver, RemoteSolver
from trainer.harness import train

from tests.trainer.conftest import SERVICE_KEY
from tests.trainer.ising_stats import random_stats, stats_from_means


def test_remote_solver_agrees_with_the_embedded_engine(service_url: str) -> None:
    gen = torch.Generator().manual_seed(0)
    sizes = [30, 12, 8, 3]
    weights = [torch.randn(b, a, generator=gen) for a, b in zip(sizes[:-1], sizes[1:])]
    abars = [torch.rand(n, generator=gen) for n in sizes[:-1]]
    abars[0][:10] = 0.0
    biases = [None] + [torch.randn(n, generator=gen) for n in sizes[1:-1]]
    problem = QuboBuilder(IsingLayout(sizes, True), EnergyOptions()).build(
        stats_from_means(abars, weights, biases)).problem
    budget = AnnealBudget(num_runs=4, num_sweeps=300, moves="trial", temperature=None, warm_start=False)
    ones = np.ones(problem.num_variables, dtype=np.uint8)
    remote = RemoteSolver(service_url, budget, api_key=SERVICE_KEY)
    try:
        state, timing = remote.solve(problem, ones, seed=1)
    finally:
        remote.close()
    local, _ = EmbeddedSolver(budget).solve(problem, ones, seed=1)
    assert state.shape == (problem.num_variables,)
    assert timing["transport"] > 0
    assert problem.energy(state) == pytest.approx(problem.energy(local), rel=0.05, abs=1e-6)
    assert not state[:10].any()   # silent inputs dropped by both


def test_remote_solver_returns_the_exact_counts(service_url: str) -> None:
    sizes = [20, 10, 8, 3]
    builder = QuboBuilder(IsingLayout(sizes, True), EnergyOptions(energy="relevance-redundancy",
                                                                 keep_ratio=0.5))
    problem, groups = builder.build(random_stats(sizes, seed=4))
    assert groups is not None
    budget = AnnealBudget(num_runs=2, num_sweeps=50, moves="trial", temperature=None, warm_start=False)
    remote = RemoteSolver(service_url, budget, api_key=SERVICE_KEY)
    try:
        state, _ = remote.solve(problem, np.ones(problem.num_variables, dtype=np.uint8), seed=5,
                                groups=groups)
    finally:
        remote.close()
    assert groups.satisfied(state)
    assert [int(state[:20].sum()), int(state[20:30].sum()), int(state[30:].sum())] == [10, 5, 4]


def _layered_problem(sizes: list[int], seed: int):  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(seed)
    weights = [torch.randn(b, a, generator=gen) for a, b in zip(sizes[:-1], sizes[1:])]
    abars = [torch.rand(n, generator=gen) for n in sizes[:-1]]
    biases = [None] + [torch.randn(n, generator=gen) for n in sizes[1:-1]]
    builder = QuboBuilder(IsingLayout(sizes, True), EnergyOptions())
    return builder, builder.build(stats_from_means(abars, weights, biases)).problem


def test_remote_solver_follows_a_change_of_structure(service_url: str) -> None:
    """The coupling pattern is sent again when the CSR structure changes, with or without a
    structure token; a token seen before skips the comparison and reuses the pattern."""
    budget = AnnealBudget(num_runs=4, num_sweeps=300, moves="trial", temperature=None, warm_start=False)
    builder_a, a = _layered_problem([30, 12, 8, 3], 1)
    builder_b, b = _layered_problem([20, 16, 3], 2)
    remote = RemoteSolver(service_url, budget, api_key=SERVICE_KEY)
    try:
        for problem, token in ((a, builder_a), (b, None), (a, None), (b, builder_b), (b, builder_b)):
            state, _ = remote.solve(problem, np.ones(problem.num_variables, dtype=np.uint8), seed=3,
                                    structure=token)
            local, _ = EmbeddedSolver(budget).solve(problem, np.ones(problem.num_variables, np.uint8), seed=3)
            assert state.shape == (problem.num_variables,)
            assert problem.energy(state) == pytest.approx(problem.energy(local), rel=0.05, abs=1e-6)
            sent = remote.sampler._pattern
            assert sent is not None and sent.pattern.num_variables == problem.num_variables
    finally:
        remote.close()


def test_training_against_the_service_learns(service_url: str, mnist_small) -> None:
    torch.manual_seed(0)
    spec = VariantSpec(sizes=[784, 32, 10], include_input=True, mode="train+infer", seed=0,
                       options={"solver": service_url, "api_key": SERVICE_KEY, "solve_every": 16,
                                "num_sweeps": 50})
    model = registry.get("ising")(spec)
    result = train(model, mnist_small, epochs=1, batch_size=32, lr=0.01, seed=0)
    assert result.test_accuracy > 60.0
    assert model.num_solves >= 5
    assert result.timings["transport"] > 0
    assert 0.0 < result.drop_rate_per_layer[0] < 100.0


@pytest.mark.parametrize("storage", ["sparse", "dense"])
def test_upper_triplets_carry_the_same_energies(storage: str) -> None:
    from service.engine import BinaryQuadraticProblem
    from trainer.dropout.ising_solver import upper_triplets

    rng = np.random.default_rng(3)
    n = 12
    i, j = np.triu_indices(n, 1)
    keep = rng.random(i.size) < 0.5
    problem = BinaryQuadraticProblem.from_arrays(i[keep], j[keep], rng.normal(size=keep.sum()),
                                                 linear=rng.normal(size=n), constant=1.5, storage=storage)
    encoded = upper_triplets(problem)
    assert np.all(encoded.rows < encoded.cols) and encoded.values.size == keep.sum()
    x = rng.integers(0, 2, size=(20, n)).astype(np.uint8)
    mine = (encoded.constant + x @ encoded.linear
            + (encoded.values * x[:, encoded.rows] * x[:, encoded.cols]).sum(axis=1))
    np.testing.assert_allclose(mine, problem.energies(x), rtol=1e-6, atol=1e-6)  # float32 couplings


def test_both_solvers_run_one_schedule_through_a_sampler(service_url: str) -> None:
    """The same Annealing schedule object through the embedded and the remote sampler; a remote
    DA service runs annealing schedules only."""
    from service.engine import Annealing, EmbeddedSampler, Tempering
    from trainer.dropout.ising_solver import RemoteSampler

    _, problem = _layered_problem([30, 12, 8, 3], 4)
    schedule = AnnealBudget(num_runs=4, num_sweeps=300, moves="trial", temperature=None,
                            warm_start=False).schedule(problem, np.ones(problem.num_variables), True)
    assert isinstance(schedule, Annealing) and schedule.steps == 200  # the full anneal's sweeps
    ones = np.ones(problem.num_variables, dtype=np.uint8)
    remote = RemoteSampler(service_url, api_key=SERVICE_KEY)
    try:
        far = remote.sample(problem, schedule, initial=ones, seed=5)
        near = EmbeddedSampler(parallel=False).sample(problem, schedule, initial=ones, seed=5)
        assert far.best_energy == pytest.approx(near.best_energy, rel=0.05, abs=1e-6)
        assert far.timing["total"] >= far.timing["solve"] > 0
        with pytest.raises(TypeError, match="Annealing"):
            remote.sample(problem, Tempering(replicas=4, sweeps=10))
    finally:
        remote.close()
