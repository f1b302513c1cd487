"""DropNeuron: group norms on a hand-built matrix, pruning, and counting removed neurons/weights."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from trainer.dropout import registry
from trainer.dropout.base import VariantSpec
from trainer.dropout.dropneuron import (DropNeuron, ThresholdPruning, dead_units, group_regularizer,
                                        incoming_group_norm, network_parameter_counts, outgoing_group_norm,
                                        prune_and_remove_units)
from trainer.models import MLP

# nn.Linear layout [out, in]: rows are a unit's incoming weights, columns an input's outgoing ones.
W = torch.tensor([[3.0, 4.0, 0.0],
                  [0.0, 0.0, 0.0],
                  [1.0, 0.0, 2.0]])


def test_group_norms_on_a_hand_built_matrix():
    assert float(incoming_group_norm(W)) == pytest.approx(5.0 + 0.0 + math.sqrt(5.0))
    assert float(outgoing_group_norm(W)) == pytest.approx(math.sqrt(10.0) + 4.0 + 2.0)
    reg = group_regularizer([W, W.T], lambda_in=0.1, lambda_out=0.01, l1=0.001)
    li, lo = 5.0 + math.sqrt(5.0), math.sqrt(10.0) + 6.0
    assert float(reg) == pytest.approx(0.1 * (li + lo) + 0.01 * (lo + li) + 0.001 * 2 * 10.0)


def test_group_norm_gradient_pushes_whole_groups():
    w = W.clone().requires_grad_(True)
    incoming_group_norm(w).backward()
    # d/dw ||row|| = row / ||row||: each row's gradient is its unit direction (zero row: zero).
    torch.testing.assert_close(w.grad[0], torch.tensor([0.6, 0.8, 0.0]))
    assert torch.isfinite(w.grad).all()


def test_threshold_pruning_is_a_torch_pruning_method():
    layer = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.009, 0.01], [0.0, 0.02, -0.011], [1e-4, 0, 0]]))
    ThresholdPruning.apply(layer, "weight", threshold=0.01)
    assert prune.is_pruned(layer)
    assert layer.weight_mask.tolist() == [[1, 0, 1], [0, 1, 1], [0, 0, 0]]


def _net(first: torch.Tensor, second: torch.Tensor) -> DropNeuron:
    net = DropNeuron(VariantSpec([first.shape[1], first.shape[0], second.shape[0]]), threshold=0.01)
    with torch.no_grad():
        net.network.connections[0].weight.copy_(first)
        net.network.connections[1].weight.copy_(second)
        net.network.connections[0].bias.copy_(torch.tensor([0.5, -1.0, 2.0, 0.25]))
        net.network.connections[1].bias.copy_(torch.tensor([0.1, -0.2]))
    return net


def test_pruning_counts_removed_neurons_and_weights():
    # 3 inputs -> 4 hidden -> 2 outputs.
    first = torch.tensor([[1.0, 0.005, 2.0],     # h0: one small weight pruned
                          [0.002, 0.0, 0.003],   # h1: all incoming tiny -> constant unit, folded
                          [0.5, 0.001, -0.7],    # h2: no outgoing below -> dead, incoming removed
                          [0.3, 0.0, 0.2]])      # h3: kept
    second = torch.tensor([[1.0, 0.7, 0.004, -1.0],
                           [0.5, -0.3, -0.006, 2.0]])
    net = _net(first, second)
    x = torch.rand(16, 3)
    x[:, 1] = 0.0  # input 1 only ever meets pruned weights, so outputs must not change
    with torch.no_grad():
        ref_first = torch.where(first.abs() < 0.01, torch.zeros_like(first), first)
        ref_second = torch.where(second.abs() < 0.01, torch.zeros_like(second), second)
        expected = torch.sigmoid(x @ ref_first.T + net.network.connections[0].bias) @ ref_second.T + net.network.connections[1].bias
    net.eval()
    net.prune()
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected)  # folding keeps the function exact

    dead = dead_units([l.weight for l in net.network.connections])
    assert dead[0].tolist() == [False, True, False]       # input 1: all outgoing weights pruned
    assert dead[1].tolist() == [False, True, True, False]  # h1 folded away, h2 has no outlet
    assert [int(d.sum()) for d in dead] == [1, 2]
    assert net.unit_keep_masks()[1].tolist() == [1.0, 0.0, 0.0, 1.0]
    # Weights left: h0 <- x0, x2; h3 <- x0, x2; y <- h0, h3 (2 x 2): 8, plus biases of h0, h3, y0, y1.
    assert [int(torch.count_nonzero(l.weight)) for l in net.network.connections] == [4, 4]
    total = 3 * 4 + 4 + 4 * 2 + 2
    assert net.parameter_counts() == (total, 8 + 4)
    assert net.network.connections[0].bias.detach().tolist()[1:3] == [0.0, 0.0]


def test_counting_follows_stranded_units_to_a_fixed_point():
    # 2 -> 2 -> 2 -> 1; the second hidden layer's unit 1 has no outlet, which strands the first
    # hidden layer's unit 1 (its only outgoing weight led there).
    w0 = torch.ones(2, 2)
    w1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    w2 = torch.tensor([[1.0, 0.0]])
    dead = dead_units([w0, w1, w2])
    assert [d.tolist() for d in dead] == [[False, False], [False, True], [False, True]]
    # Live: w0 row 0 (2 weights), w1[0, 0], w2[0, 0]; biases of h1_0, h2_0 and the output.
    assert network_parameter_counts(MLP([2, 2, 2, 1]), [w0, w1, w2]) == (15, 4 + 3)


def test_variant_options_and_regularisation_loss():
    spec = VariantSpec([784, 30, 10], options={"lambda_in": "0.001", "lambda_out": "0.002", "l1": "0"})
    net = registry.get("dropneuron")(spec)
    expected = sum(0.001 * incoming_group_norm(l.weight) + 0.002 * outgoing_group_norm(l.weight) for l in net.network.connections)
    torch.testing.assert_close(net.regularization_loss(), expected)
    assert "lambda_in=0.001" in repr(net)
    with pytest.raises(ValueError, match="lambda_out"):
        DropNeuron(VariantSpec([4, 3, 2]), lambda_out=-1.0)
    with pytest.raises(ValueError, match="lambda_in"):
        registry.get("dropneuron")(VariantSpec([4, 3, 2], options={"lambda_in": "abc"}))


def test_prune_and_remove_units_leaves_masks_attached():
    net = _net(torch.full((4, 3), 0.5), torch.full((2, 4), 0.5))
    prune_and_remove_units(net.network)
    assert all(prune.is_pruned(l) for l in net.network.connections)
