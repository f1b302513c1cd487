"""The Ising energies: each builder against a slow, obvious loop over units and connections on a
tiny network, and each energy's defining properties."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest
import torch

from trainer.dropout.ising_energy import (
    EnergyOptions,
    IsingLayout,
    QuboBuilder,
    saturation_cost,
)
from trainer.dropout.network_stats import NetworkStats

from tests.trainer.ising_stats import random_stats, stats_from_means

MU, SIGMA2 = 0.5, 0.01


# ---------------------------------------------------------------- slow references
def _offsets(sizes, include_input):
    layers = list(range(0 if include_input else 1, len(sizes) - 1))
    offsets, pos = {}, 0
    for layer in layers:
        offsets[layer] = pos
        pos += sizes[layer]
    return layers, offsets, pos


def _g(abar_i: float, w: float) -> float:
    hhat = 1.0 / (1.0 + math.exp(-abar_i * w))
    return 1.0 - math.exp(-(hhat - MU) ** 2 / (2 * SIGMA2))


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _means(stats: NetworkStats) -> list[list[float]]:
    return [[sum(float(a[b, u]) for b in range(a.shape[0])) / a.shape[0] for u in range(a.shape[1])]
            for a in stats.activations]


def _pairs(layers):
    return [(l - 1, l) for l in layers if l - 1 in layers]


def reference_paper_qubo(sizes, include_input, stats):
    """eq. 5 literally: J_uv = -sgn(w) G(hhat), h_u = -b_u."""
    layers, off, n = _offsets(sizes, include_input)
    abar = _means(stats)
    J, h = np.zeros((n, n)), np.zeros(n)
    for src, dst in _pairs(layers):
        for i in range(sizes[src]):
            for j in range(sizes[dst]):
                wij = float(stats.weights[src][j, i])
                u, v = off[src] + i, off[dst] + j
                J[u, v] = J[v, u] = -_sign(wij) * _g(abar[src][i], wij)
    for layer in layers:
        b = stats.biases[layer]
        if b is not None:
            for j in range(sizes[layer]):
                h[off[layer] + j] = -float(b[j])
    return h, J, 0.0


def reference_saliency(sizes, include_input, stats, cost, stickiness, previous=None,
                       keep_ratio=None, strength=10.0):
    layers, off, n = _offsets(sizes, include_input)
    abar = _means(stats)
    J, h, constant = np.zeros((n, n)), np.zeros(n), 0.0
    for src, dst in _pairs(layers):
        g = {(i, j): _g(abar[src][i], float(stats.weights[src][j, i]))
             for i in range(sizes[src]) for j in range(sizes[dst])}
        mean = max(sum(g.values()) / len(g), 1e-12)
        for (i, j), value in g.items():
            J[off[src] + i, off[dst] + j] = J[off[dst] + j, off[src] + i] = -value / mean
    field = -J.sum(axis=1)
    for layer in layers:
        units = range(off[layer], off[layer] + sizes[layer])
        mean_field = sum(field[u] for u in units) / sizes[layer]
        scale = mean_field if mean_field > 1e-12 else 1.0
        for u in units:
            h[u] += cost * scale
        if keep_ratio is not None:
            lam = strength * max(max(field[u] for u in units), scale) / sizes[layer]
            k = keep_ratio * sizes[layer]
            for u in units:
                h[u] += lam * (1 - 2 * k)
                for v in units:
                    if u != v:
                        J[u, v] += 2 * lam
            constant += lam * k * k
        if previous is not None:
            for u in units:
                h[u] -= stickiness * scale * (2 * float(previous[u]) - 1)
    return h, J, constant


def _non_saturation(a, activation, is_input, u):
    batch = a.shape[0]
    if is_input or activation == "identity":
        return 1.0
    if activation == "sigmoid":
        return sum(4 * float(a[b, u]) * (1 - float(a[b, u])) for b in range(batch)) / batch
    return sum(1 for b in range(batch) if float(a[b, u]) > 0) / batch


def relevance_and_redundancy(stats, layer):
    """Per unit: non-saturation x outgoing weight norm x spread; per pair |correlation|."""
    a = stats.activations[layer]
    batch, n = a.shape
    mean = [sum(float(a[b, u]) for b in range(batch)) / batch for u in range(n)]
    spread = [math.sqrt(sum((float(a[b, u]) - mean[u]) ** 2 for b in range(batch)) / batch)
              for u in range(n)]
    w = stats.weights[layer]
    relevance = [_non_saturation(a, stats.activation, layer == 0, u)
                 * math.sqrt(sum(float(w[j, u]) ** 2 for j in range(w.shape[0]))) * spread[u]
                 for u in range(n)]
    corr = np.zeros((n, n))
    for u in range(n):
        for v in range(n):
            if u != v and spread[u] * spread[v] > 1e-24:
                cov = sum((float(a[b, u]) - mean[u]) * (float(a[b, v]) - mean[v]) for b in range(batch)) / batch
                corr[u, v] = min(abs(cov / (spread[u] * spread[v])), 1.0)
    return np.array(relevance), corr


def reference_relevance_redundancy(sizes, include_input, stats, alpha, keep_ratio,
                                   raw=None):
    """h_u = -(1 - alpha) r_u / mean r, J_uv = alpha |corr_uv| / (mean |corr| (K - 1)) inside
    each layer; ``raw[layer]`` replaces (relevance, |corr|) (to check the moving average)."""
    layers, off, n = _offsets(sizes, include_input)
    J, h = np.zeros((n, n)), np.zeros(n)
    for layer in layers:
        r, c = raw[layer] if raw else relevance_and_redundancy(stats, layer)
        n_l = sizes[layer]
        k = max(1, round(keep_ratio * n_l))
        mean_c = c.sum() / (n_l * (n_l - 1))
        for u in range(n_l):
            h[off[layer] + u] = -(1 - alpha) * r[u] / r.mean()
            for v in range(n_l):
                if u != v:
                    J[off[layer] + u, off[layer] + v] = alpha * c[u, v] / (mean_c * (k - 1))
    return h, J, 0.0


def reference_paper_repaired(sizes, include_input, stats, bias_weight=1.0):
    """J = |w| (sgn(w) G - median of the block) / mean |.| of the block; h = -bias_weight x
    (the layer's mean coupling row sum) x (b - median b) / mean |b - median b|."""
    layers, off, n = _offsets(sizes, include_input)
    abar = _means(stats)
    J, h = np.zeros((n, n)), np.zeros(n)
    for src, dst in _pairs(layers):
        w = stats.weights[src]
        signed = {(i, j): _sign(float(w[j, i])) * _g(abar[src][i], float(w[j, i]))
                  for i in range(sizes[src]) for j in range(sizes[dst])}
        med = statistics.median(signed.values())
        scaled = {k: abs(float(w[k[1], k[0]])) * (v - med) for k, v in signed.items()}
        norm = sum(abs(v) for v in scaled.values()) / len(scaled)
        for (i, j), value in scaled.items():
            J[off[src] + i, off[dst] + j] = J[off[dst] + j, off[src] + i] = value / norm
    reach = np.abs(J).sum(axis=1)
    for layer in layers:
        b = stats.biases[layer]
        if b is None:
            continue
        values = [float(x) for x in b]
        med = statistics.median(values)
        spread = sum(abs(x - med) for x in values) / len(values)
        mean_reach = sum(reach[off[layer] + u] for u in range(sizes[layer])) / sizes[layer]
        for u, x in enumerate(values):
            h[off[layer] + u] = -bias_weight * mean_reach * (x - med) / spread
    return h, J, 0.0


def reference_loss_change(sizes, include_input, stats, saturation_weight, state):
    """The loss-aware energy of one state straight from its definition: with D the dropped
    units, -sum_D G_u + 1/2 sum_{u,v in D} F_uv, minus the non-saturation field."""
    layers, off, n = _offsets(sizes, include_input)
    g = [[float(stats.gate_gradients[l][b, u]) for l in layers for u in range(sizes[l])]
         for b in range(stats.gate_gradients[0].shape[0])]
    batch = len(g)
    G = [sum(g[b][u] for b in range(batch)) / batch for u in range(n)]
    F = [[sum(g[b][u] * g[b][v] for b in range(batch)) / batch for v in range(n)] for u in range(n)]
    dropped = [u for u in range(n) if state[u] == 0]
    energy = -sum(G[u] for u in dropped) + 0.5 * sum(F[u][v] for u in dropped for v in dropped)
    for layer in layers:
        units = range(off[layer], off[layer] + sizes[layer])
        loss_field = [G[u] - 0.5 * F[u][u] - sum(F[u][v] for v in range(n) if v != u) for u in units]
        scale = sum(abs(x) for x in loss_field) / sizes[layer]
        for k, u in enumerate(units):
            nu = _non_saturation(stats.activations[layer], stats.activation, layer == 0, k)
            energy -= saturation_weight * scale * nu * state[u]
    return energy


def _dense(problem):
    j = problem.couplings
    return np.asarray(j.toarray() if problem.is_sparse else j)


def _all_states(n):
    return ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1).astype(np.uint8)


# ---------------------------------------------------------------- builders against references
@pytest.mark.parametrize("include_input", [True, False])
@pytest.mark.parametrize("sizes", [[6, 5, 4, 3], [7, 4, 3, 3, 2]])
def test_paper_qubo_matches_the_slow_reference(sizes: list[int], include_input: bool) -> None:
    stats = random_stats(sizes, seed=1)
    problem, groups = QuboBuilder(IsingLayout(sizes, include_input), EnergyOptions(energy="paper")).build(stats)
    h_ref, j_ref, _ = reference_paper_qubo(sizes, include_input, stats)
    assert groups is None
    assert problem.num_variables == sum(sizes[0 if include_input else 1:-1])
    np.testing.assert_allclose(problem.linear, h_ref, atol=1e-12)
    np.testing.assert_allclose(_dense(problem), j_ref, atol=1e-9)
    # energy of a few states: E(s) = -sum gamma s s - sum b s
    states = np.random.default_rng(0).integers(0, 2, size=(5, problem.num_variables))
    expected = states @ h_ref + 0.5 * np.einsum("ki,ij,kj->k", states, j_ref, states)
    np.testing.assert_allclose(problem.energies(states), expected, atol=1e-9)


@pytest.mark.parametrize("keep_ratio", [None, 0.5])
@pytest.mark.parametrize("include_input", [True, False])
def test_saliency_matches_the_slow_reference(include_input: bool, keep_ratio: float | None) -> None:
    sizes = [6, 5, 4, 3]
    stats = random_stats(sizes, seed=2)
    layout = IsingLayout(sizes, include_input)
    previous = np.random.default_rng(1).integers(0, 2, layout.num_variables).astype(np.uint8)
    options = EnergyOptions(energy="saliency", cost=0.4, stickiness=0.1, keep_ratio=keep_ratio)
    problem, groups = QuboBuilder(layout, options).build(stats, previous)
    h_ref, j_ref, c_ref = reference_saliency(sizes, include_input, stats, 0.4, 0.1, previous, keep_ratio)
    assert groups is None  # saliency's kept fraction is a penalty unless exact_k is asked for
    np.testing.assert_allclose(problem.linear, h_ref, atol=1e-9)
    np.testing.assert_allclose(_dense(problem), j_ref, atol=1e-9)
    assert problem.constant == pytest.approx(c_ref)


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
@pytest.mark.parametrize("include_input", [True, False])
def test_relevance_redundancy_matches_the_slow_reference(include_input: bool, activation: str) -> None:
    sizes = [6, 5, 4, 3]
    stats = random_stats(sizes, seed=3, activation=activation)
    options = EnergyOptions(energy="relevance-redundancy", keep_ratio=0.6, alpha=0.3, stickiness=0.0)
    problem, groups = QuboBuilder(IsingLayout(sizes, include_input), options).build(stats)
    h_ref, j_ref, _ = reference_relevance_redundancy(sizes, include_input, stats, 0.3, 0.6)
    np.testing.assert_allclose(problem.linear, h_ref, atol=1e-9)
    np.testing.assert_allclose(_dense(problem), j_ref, atol=1e-9)
    assert problem.constant == 0.0  # exact K: no cardinality penalty in the energy
    assert groups is not None
    assert groups.counts.tolist() == [max(1, round(0.6 * n)) for n in sizes[0 if include_input else 1:-1]]


def test_relevance_redundancy_averages_its_statistics_over_mini_batches() -> None:
    sizes = [5, 4, 3]
    first, second = random_stats(sizes, seed=4), random_stats(sizes, seed=5)
    options = EnergyOptions(energy="relevance-redundancy", keep_ratio=0.5, stickiness=0.0,
                            activation_ema=0.75)
    builder = QuboBuilder(IsingLayout(sizes, True), options)
    builder.build(first)
    problem, _ = builder.build(second)
    raw = {}
    for layer in (0, 1):
        r1, c1 = relevance_and_redundancy(first, layer)
        r2, c2 = relevance_and_redundancy(second, layer)
        raw[layer] = (0.75 * r1 + 0.25 * r2, 0.75 * c1 + 0.25 * c2)
    h_ref, j_ref, _ = reference_relevance_redundancy(sizes, True, second, 0.5, 0.5, raw=raw)
    np.testing.assert_allclose(problem.linear, h_ref, atol=1e-9)
    np.testing.assert_allclose(_dense(problem), j_ref, atol=1e-9)


@pytest.mark.parametrize("include_input", [True, False])
def test_paper_repaired_matches_the_slow_reference(include_input: bool) -> None:
    sizes = [6, 5, 4, 3]
    stats = random_stats(sizes, seed=6)
    options = EnergyOptions(energy="paper-repaired", stickiness=0.0)
    problem, groups = QuboBuilder(IsingLayout(sizes, include_input), options).build(stats)
    h_ref, j_ref, _ = reference_paper_repaired(sizes, include_input, stats)
    np.testing.assert_allclose(problem.linear, h_ref, atol=1e-9)
    np.testing.assert_allclose(_dense(problem), j_ref, atol=1e-9)
    assert groups is not None and problem.constant == 0.0
    j = _dense(problem)
    assert (j > 0).any() and (j < 0).any()  # centred: both signs in every block


@pytest.mark.parametrize("include_input", [True, False])
def test_loss_aware_energy_is_the_second_order_loss_change(include_input: bool) -> None:
    sizes = [4, 3, 3, 2]
    stats = random_stats(sizes, seed=7, gate_gradients=True)
    options = EnergyOptions(energy="loss-aware", saturation_weight=0.3, stickiness=0.0)
    builder = QuboBuilder(IsingLayout(sizes, include_input), options)
    assert builder.needs_gate_gradients
    problem, groups = builder.build(stats)
    assert not problem.is_sparse and groups is not None
    states = _all_states(problem.num_variables)
    expected = [reference_loss_change(sizes, include_input, stats, 0.3, s) for s in states]
    np.testing.assert_allclose(problem.energies(states), expected, atol=1e-9)
    # couplings across layers, of both signs
    j = _dense(problem)
    first = sizes[0] if include_input else sizes[1]
    assert np.abs(j[:first, first:]).sum() > 0
    assert (j > 0).any() and (j < 0).any()


def test_loss_aware_needs_gate_gradients() -> None:
    builder = QuboBuilder(IsingLayout([4, 3, 2], True), EnergyOptions(energy="loss-aware"))
    with pytest.raises(ValueError, match="gate gradients"):
        builder.build(random_stats([4, 3, 2]))


def test_stickiness_rewards_the_previous_state_on_the_layer_scale() -> None:
    sizes = [5, 4, 3]
    stats = random_stats(sizes, seed=8)
    layout = IsingLayout(sizes, True)
    previous = np.random.default_rng(2).integers(0, 2, layout.num_variables).astype(np.uint8)
    plain = QuboBuilder(layout, EnergyOptions(energy="relevance-redundancy", stickiness=0.0)).build(stats)
    sticky = QuboBuilder(layout, EnergyOptions(energy="relevance-redundancy", stickiness=0.2)).build(
        stats, previous)
    delta = sticky.problem.linear - plain.problem.linear
    for layer in layout.layers:
        sl = layout.slice(layer)
        scale = float((np.abs(plain.problem.linear[sl]) + np.abs(_dense(plain.problem)[sl]).sum(1)).mean())
        np.testing.assert_allclose(delta[sl], -0.2 * scale * (2.0 * previous[sl] - 1.0), atol=1e-12)


# ---------------------------------------------------------------- properties
def test_paper_candidate_count_fits_the_digital_annealer() -> None:
    for sizes, n in (([784, 100, 100, 10], 984), ([784, 100, 50, 50, 10], 984),
                     ([784, 100, 50, 50, 25, 10], 1009)):
        assert IsingLayout(sizes, True).num_variables == n


def test_saturation_cost_is_zero_in_the_middle_and_near_one_when_saturated() -> None:
    g = saturation_cost(torch.tensor([0.0, 1.0, 1.0]), torch.tensor([[5.0, 0.0, 10.0]]))
    assert g[0, 0] == 0.0 and g[1, 0] == 0.0
    assert float(g[2, 0]) > 0.99


def test_saliency_drops_silent_units_and_keeps_strong_ones() -> None:
    sizes = [6, 4, 2]
    gen = torch.Generator().manual_seed(1)
    weights = [torch.randn(b, a, generator=gen) * 2 for a, b in zip(sizes[:-1], sizes[1:])]
    abars = [torch.rand(n, generator=gen) for n in sizes[:-1]]
    abars[0][:2] = 0.0            # two silent input units: no signal through their connections
    biases = [None] + [torch.randn(n, generator=gen) for n in sizes[1:-1]]
    problem, _ = QuboBuilder(IsingLayout(sizes, True), EnergyOptions()).build(
        stats_from_means(abars, weights, biases))
    states = _all_states(problem.num_variables)
    best = states[int(np.argmin(problem.energies(states)))]
    assert best[0] == 0 and best[1] == 0
    assert best[2:].sum() >= 4


def test_cardinality_penalty_pins_the_kept_count_without_exact_k() -> None:
    sizes = [10, 6, 2]
    stats = random_stats(sizes, seed=2)
    problem, groups = QuboBuilder(IsingLayout(sizes, True), EnergyOptions(keep_ratio=0.5, cost=0.0)).build(stats)
    assert groups is None
    states = _all_states(problem.num_variables)
    best = states[int(np.argmin(problem.energies(states)))]
    assert best[:10].sum() == 5 and best[10:].sum() == 3


@pytest.mark.parametrize("energy", ["relevance-redundancy", "paper-repaired", "loss-aware"])
def test_new_energies_hold_the_kept_count_by_penalty_when_exact_k_is_off(energy: str) -> None:
    sizes = [5, 4, 3]
    stats = random_stats(sizes, seed=9, gate_gradients=True)
    options = EnergyOptions(energy=energy, exact_k=False, keep_ratio=0.6, cardinality_strength=20.0)
    problem, groups = QuboBuilder(IsingLayout(sizes, True), options).build(stats)
    assert groups is None
    states = _all_states(problem.num_variables)
    best = states[int(np.argmin(problem.energies(states)))]
    assert best[:5].sum() == 3 and best[5:].sum() == round(0.6 * 4)


def test_relevance_redundancy_couples_only_inside_layers_and_positively() -> None:
    sizes = [8, 6, 5, 3]
    problem, _ = QuboBuilder(IsingLayout(sizes, True), EnergyOptions(energy="relevance-redundancy")).build(
        random_stats(sizes, seed=10))
    j = _dense(problem)
    layer_of = IsingLayout(sizes, True).layer_of()
    assert (j >= 0).all() and (j > 0).sum() > 0
    assert not j[layer_of[:, None] != layer_of[None, :]].any()


def test_exact_k_counts_follow_the_keep_ratios_per_layer() -> None:
    sizes = [10, 8, 6, 3]
    builder = QuboBuilder(IsingLayout(sizes, True), EnergyOptions(energy="paper-repaired",
                                                                 keep_ratio=[0.5, 0.25, 1.0]))
    assert builder.counts == [5, 2, 6]
    assert builder.groups is not None and builder.groups.counts.tolist() == [5, 2, 6]
    default = QuboBuilder(IsingLayout(sizes, True), EnergyOptions(energy="loss-aware"))
    assert default.counts == [7, round(0.7 * 8), round(0.7 * 6)]
    # exact K on request for the literal energy too (same rates, the paper's couplings)
    assert QuboBuilder(IsingLayout(sizes, True), EnergyOptions(energy="paper", exact_k=True)).groups is not None


def test_stats_that_do_not_match_the_layout_are_rejected() -> None:
    builder = QuboBuilder(IsingLayout([5, 4, 3], True), EnergyOptions(energy="saliency"))
    with pytest.raises(ValueError, match="do not match"):
        builder.build(random_stats([5, 3, 3]))


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="ising energy"):
        EnergyOptions(energy="magic")
    with pytest.raises(ValueError, match="ising energy"):
        EnergyOptions(energy="importance")  # renamed: saliency
    with pytest.raises(ValueError, match="keep_ratio"):
        EnergyOptions(keep_ratio=1.5)
    with pytest.raises(ValueError, match="alpha"):
        EnergyOptions(energy="relevance-redundancy", alpha=2.0)
    with pytest.raises(ValueError, match="activation_ema"):
        EnergyOptions(activation_ema=1.0)
    with pytest.raises(ValueError, match="no hidden layer"):
        IsingLayout([4, 2], include_input=False)


def test_every_energy_is_finite_on_a_batch_with_dead_units() -> None:
    """Constant activations (zero spread, undefined correlation) and all-zero gradients."""
    sizes = [6, 4, 3]
    stats = random_stats(sizes, seed=11, gate_gradients=True)
    stats.activations[0][:, :3] = 0.0
    stats.activations[1][:, 0] = 0.5
    assert stats.gate_gradients is not None
    stats.gate_gradients[0][:, 1] = 0.0
    for energy, exact in itertools.product(("saliency", "paper", "relevance-redundancy",
                                             "paper-repaired", "loss-aware"), (True, False)):
        problem, _ = QuboBuilder(IsingLayout(sizes, True), EnergyOptions(energy=energy, exact_k=exact,
                                                                        keep_ratio=0.5)).build(stats)
        assert np.isfinite(problem.linear).all() and np.isfinite(_dense(problem)).all()
