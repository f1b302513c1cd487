"""The Ising couplings (eqs. 1-5): vectorised construction against a slow loop, and the default's
defining properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.dropout.ising_energy import (
    EnergyOptions,
    IsingLayout,
    QuboBuilder,
    reference_paper_qubo,
    saturation_cost,
)


def tiny_network(sizes: list[int], seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    weights = [torch.randn(b, a, generator=gen) * 2 for a, b in zip(sizes[:-1], sizes[1:])]
    abars = [torch.rand(n, generator=gen) for n in sizes[:-1]]
    biases = [None] + [torch.randn(n, generator=gen) for n in sizes[1:-1]]
    return abars, weights, biases


@pytest.mark.parametrize("include_input", [True, False])
@pytest.mark.parametrize("sizes", [[6, 5, 4, 3], [7, 4, 3, 3, 2]])
def test_paper_qubo_matches_the_slow_reference(sizes: list[int], include_input: bool) -> None:
    abars, weights, biases = tiny_network(sizes)
    layout = IsingLayout(sizes, include_input)
    problem = QuboBuilder(layout, EnergyOptions(energy="paper")).build(abars, weights, biases)
    h_ref, j_ref = reference_paper_qubo(sizes, include_input, abars, weights, biases)
    assert problem.num_variables == sum(sizes[0 if include_input else 1:-1])
    np.testing.assert_allclose(problem.linear, h_ref, atol=1e-12)
    np.testing.assert_allclose(problem.couplings.toarray(), j_ref, atol=1e-6)
    # energy of a few states: E(s) = -sum gamma s s - sum b s
    rng = np.random.default_rng(0)
    states = rng.integers(0, 2, size=(5, problem.num_variables))
    expected = states @ h_ref + 0.5 * np.einsum("ki,ij,kj->k", states, j_ref, states)
    np.testing.assert_allclose(problem.energies(states), expected, atol=1e-6)


def test_paper_candidate_count_fits_the_digital_annealer() -> None:
    for sizes, n in (([784, 100, 100, 10], 984), ([784, 100, 50, 50, 10], 984),
                     ([784, 100, 50, 50, 25, 10], 1009)):
        assert IsingLayout(sizes, True).num_variables == n


def test_saturation_cost_is_zero_in_the_middle_and_near_one_when_saturated() -> None:
    g = saturation_cost(torch.tensor([0.0, 1.0, 1.0]), torch.tensor([[5.0, 0.0, 10.0]]))
    assert g[0, 0] == 0.0 and g[1, 0] == 0.0
    assert float(g[2, 0]) > 0.99


def test_importance_energy_drops_silent_units_and_keeps_strong_ones() -> None:
    sizes = [6, 4, 2]
    abars, weights, biases = tiny_network(sizes, seed=1)
    abars[0][:2] = 0.0            # two silent input units: no signal through their connections
    layout = IsingLayout(sizes, True)
    problem = QuboBuilder(layout, EnergyOptions()).build(abars, weights, biases)
    # brute force the ground state
    n = problem.num_variables
    states = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1).astype(np.uint8)
    best = states[int(np.argmin(problem.energies(states)))]
    assert best[0] == 0 and best[1] == 0
    assert best[2:].sum() >= 4


def test_cardinality_term_pins_the_kept_count() -> None:
    sizes = [10, 6, 2]
    abars, weights, biases = tiny_network(sizes, seed=2)
    layout = IsingLayout(sizes, True)
    problem = QuboBuilder(layout, EnergyOptions(keep_ratio=0.5, cost=0.0)).build(abars, weights, biases)
    n = problem.num_variables
    states = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1).astype(np.uint8)
    best = states[int(np.argmin(problem.energies(states)))]
    assert best[:10].sum() == 5 and best[10:].sum() == 3


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="ising energy"):
        EnergyOptions(energy="magic")
    with pytest.raises(ValueError, match="keep_ratio"):
        EnergyOptions(keep_ratio=1.5)
    with pytest.raises(ValueError, match="no hidden layer"):
        IsingLayout([4, 2], include_input=False)
