"""The MLP's NetworkStats and the per-sample gate gradients, against torch.autograd sample by sample."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainer.dropout.network_stats import mlp_network_stats, per_sample_gate_gradients
from trainer.models import MLP


def _net(activation: str = "sigmoid") -> MLP:
    torch.manual_seed(0)
    return MLP([6, 5, 4, 3], activation, include_input=True,
               unit_dropout=lambda layer, n: nn.Dropout(0.5))


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_gate_gradients_equal_one_backward_per_sample(activation: str) -> None:
    net = _net(activation)
    x, y = torch.rand(7, 6), torch.randint(0, 3, (7,))
    grads = per_sample_gate_gradients(net.forward_gated, x, y, [6, 5, 4])
    assert [tuple(g.shape) for g in grads] == [(7, 6), (7, 5), (7, 4)]
    for b in range(7):
        gates = [torch.ones(1, n, requires_grad=True) for n in (6, 5, 4)]
        loss = nn.functional.cross_entropy(net.forward_gated(x[b:b + 1], gates), y[b:b + 1])
        reference = torch.autograd.grad(loss, gates)
        for layer in range(3):
            torch.testing.assert_close(grads[layer][b], reference[layer][0], rtol=1e-5, atol=1e-7)
    assert all(p.grad is None for p in net.parameters())  # training's gradients untouched


def test_mean_gate_gradient_is_the_gradient_of_the_mean_loss() -> None:
    net = _net()
    x, y = torch.rand(5, 6), torch.randint(0, 3, (5,))
    grads = per_sample_gate_gradients(net.forward_gated, x, y, [6, 5, 4])
    shared = [torch.ones(n, requires_grad=True) for n in (6, 5, 4)]
    loss = nn.functional.cross_entropy(net.forward_gated(x, shared), y)
    for g, s in zip(grads, torch.autograd.grad(loss, shared)):
        torch.testing.assert_close(g.mean(0), s, rtol=1e-5, atol=1e-7)


def test_gated_forward_with_ones_is_the_unmasked_network() -> None:
    net = _net()
    net.eval()  # the dropout modules off: forward is the plain network
    x = torch.rand(4, 6)
    torch.testing.assert_close(net.forward_gated(x, [None, torch.ones(5), None]), net(x))
    closed = net.forward_gated(x, [None, torch.tensor([1.0, 0, 1, 1, 1]), None])
    assert not torch.allclose(closed, net(x))
    with pytest.raises(ValueError, match="one gate"):
        net.forward_gated(x, [None])


def test_mlp_network_stats_reads_the_unmasked_network() -> None:
    net = _net()
    x, y = torch.rand(8, 6), torch.randint(0, 3, (8,))
    stats = mlp_network_stats(net, x)
    assert stats.sizes == [6, 5, 4] and stats.activation == "sigmoid"
    expected = net.layer_activations(x)
    for a, e in zip(stats.activations, expected):
        torch.testing.assert_close(a, e)
    assert stats.weights[1] is not None and torch.equal(stats.weights[1], net.linears[1].weight)
    assert stats.biases[0] is None and torch.equal(stats.biases[2], net.linears[1].bias)
    assert stats.gate_gradients is None
    with_grads = mlp_network_stats(net, x, y, gate_gradients=True)
    assert with_grads.gate_gradients is not None
    assert [tuple(g.shape) for g in with_grads.gate_gradients] == [(8, 6), (8, 5), (8, 4)]
    with pytest.raises(ValueError, match="labels"):
        mlp_network_stats(net, x, gate_gradients=True)
