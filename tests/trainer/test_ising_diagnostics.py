"""Per-solve diagnostics: hardness ratio, frustrated triangles, realised drop rates."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp

from service.engine import BinaryQuadraticProblem
from trainer.dropout.ising_diagnostics import (
    drop_rates,
    frustrated_fractions,
    hardness_ratios,
    solve_diagnostics,
    summarize_diagnostics,
)
from trainer.dropout.ising_energy import EnergyOptions, IsingLayout, QuboBuilder

from tests.trainer.ising_stats import random_stats


def _two_triangles(sparse: bool) -> tuple[BinaryQuadraticProblem, IsingLayout]:
    """Layer 0: couplings (+, -, -), frustrated (spin product negative); layer 1: (+, +, -),
    not frustrated; nothing across."""
    layout = IsingLayout([3, 3, 1], include_input=True)
    j = np.zeros((6, 6))
    for (u, v), value in {(0, 1): 1.0, (1, 2): -2.0, (0, 2): -1.0,
                          (3, 4): 1.0, (4, 5): 0.5, (3, 5): -1.0}.items():
        j[u, v] = j[v, u] = value
    h = np.array([1.0, -1.0, 0.0, 2.0, 2.0, 2.0])
    couplings = sp.csr_array(j) if sparse else j
    return BinaryQuadraticProblem(linear=h, couplings=couplings), layout


def test_frustrated_triangles_by_the_sign_of_the_coupling_product() -> None:
    for sparse in (True, False):
        problem, layout = _two_triangles(sparse)
        out = frustrated_fractions(problem, layout, np.random.default_rng(0), samples=200)
        assert out["within"] == {0: 1.0, 1: 0.0}
        assert out["triangles_within"][0] > 20 and out["triangles_within"][1] > 20
        assert math.isnan(out["across"]) and out["triangles_across"] == 0


def test_hardness_is_coupling_strength_over_field_spread() -> None:
    problem, layout = _two_triangles(sparse=True)
    ratios = hardness_ratios(problem, layout)
    # layer 0: row sums |J| = 2, 3, 3 (mean 8/3); |h - median 0| = 1, 1, 0 (mean 2/3)
    assert ratios[0] == 4.0
    # layer 1: fields all equal: couplings alone decide
    assert ratios[1] == math.inf


def test_drop_rates_and_a_json_ready_record() -> None:
    problem, layout = _two_triangles(sparse=False)
    state = np.array([1, 0, 0, 1, 1, 1], dtype=np.uint8)
    assert drop_rates(state, layout) == {0: pytest.approx(2 / 3), 1: 0.0}
    record = solve_diagnostics(problem, layout, state, np.random.default_rng(1), samples=100)
    assert record["energy"] == problem.energy(state)
    assert record["hardness"] == {"h0": 4.0, "h1": None}
    assert record["frustrated_across"] is None
    json.dumps(record, allow_nan=False)
    record["solve"] = 1
    summary = summarize_diagnostics([record, dict(record, solve=2)])
    assert "solve" not in summary
    assert summary["solves"] == 2 and summary["drop_rate"]["h0"] == pytest.approx(2 / 3) and summary["hardness"]["h1"] is None


def test_relevance_redundancy_is_frustrated_and_saliency_is_not() -> None:
    sizes = [10, 8, 6, 3]
    layout = IsingLayout(sizes, True)
    stats = random_stats(sizes, seed=3)
    rng = np.random.default_rng(2)
    rr, _ = QuboBuilder(layout, EnergyOptions(energy="relevance-redundancy")).build(stats)
    out = frustrated_fractions(rr, layout, rng)
    assert all(out["within"][layer] == 1.0 for layer in layout.layers)  # all couplings positive
    assert all(ratio > 0 for ratio in hardness_ratios(rr, layout).values())
    saliency, _ = QuboBuilder(layout, EnergyOptions(energy="saliency", keep_ratio=0.5)).build(stats)
    out = frustrated_fractions(saliency, layout, rng)
    # the cardinality penalty's positive layer blocks form the only triangles inside a layer;
    # across layers two negative saliency couplings and one positive penalty: frustrated too,
    # which is why frustration alone does not make saliency hard (the penalty is uniform)
    assert out["triangles_across"] > 0
    assert out["across"] == 1.0


def test_loss_aware_couples_across_layers_with_frustration() -> None:
    sizes = [10, 8, 6, 3]
    layout = IsingLayout(sizes, True)
    problem, _ = QuboBuilder(layout, EnergyOptions(energy="loss-aware")).build(
        random_stats(sizes, seed=4, gate_gradients=True))
    out = frustrated_fractions(problem, layout, np.random.default_rng(3))
    assert out["triangles_across"] > 100
    assert 0.0 < out["across"] <= 1.0
