"""The MLP's NetworkStats and its per-sample gate gradients: a batch gives each sample exactly
the derivative that sample alone gives, and the training gradients stay untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainer.dropout.network_stats import NetworkStats
from trainer.models import MLP


def _net(activation: str = "sigmoid") -> MLP:
    torch.manual_seed(0)
    return MLP([6, 5, 4, 3], activation, include_input=True, gates=lambda layer, n: nn.Dropout(0.5))


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_gate_gradients_of_a_batch_are_each_samples_own(activation: str) -> None:
    net = _net(activation)
    x, y = torch.rand(7, 6), torch.randint(0, 3, (7,))
    grads = net.gate_gradients(x, y)
    assert [tuple(g.shape) for g in grads] == [(7, 6), (7, 5), (7, 4)]
    for b in range(7):
        alone = net.gate_gradients(x[b:b + 1], y[b:b + 1])
        for layer in range(3):
            torch.testing.assert_close(grads[layer][b], alone[layer][0], rtol=1e-5, atol=1e-7)
    assert all(p.grad is None for p in net.parameters())  # training's gradients untouched


def test_gate_gradient_of_a_unit_is_its_activation_times_the_loss_gradient() -> None:
    """d loss_b / d g_bu = a_bu * d loss_b / d a_bu for the last hidden layer (a direct check)."""
    net = _net()
    x, y = torch.rand(5, 6), torch.randint(0, 3, (5,))
    grads = net.gate_gradients(x, y)
    h = net.layer_activations(x)[-1].clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(net.connections[-1](h), y, reduction="sum")
    (dh,) = torch.autograd.grad(loss, h)
    torch.testing.assert_close(grads[-1], h.detach() * dh, rtol=1e-5, atol=1e-7)


def test_mlp_network_stats_reads_the_unmasked_network() -> None:
    net = _net()
    x, y = torch.rand(8, 6), torch.randint(0, 3, (8,))
    stats = net.network_stats(x)
    assert stats.sizes == [6, 5, 4] and stats.activation == "sigmoid"
    for a, e in zip(stats.activations, net.layer_activations(x)):
        torch.testing.assert_close(a, e)
    torch.testing.assert_close(stats.weights[1], net.connections[1].weight.detach())
    assert stats.biases[0] is None and torch.equal(stats.biases[2], net.connections[1].bias.detach())
    assert stats.gate_gradients is None
    with_grads = net.network_stats(x, y)
    assert with_grads.gate_gradients is not None
    assert [tuple(g.shape) for g in with_grads.gate_gradients] == [(8, 6), (8, 5), (8, 4)]


def test_network_stats_refuse_mismatched_layers() -> None:
    with pytest.raises(ValueError, match="disagree"):
        NetworkStats([torch.rand(4, 5)], [torch.rand(3, 6)], [None])
    with pytest.raises(ValueError, match="one entry per layer"):
        NetworkStats([torch.rand(4, 5)], [torch.rand(3, 5), torch.rand(2, 3)], [None])
