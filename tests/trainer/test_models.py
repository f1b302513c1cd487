"""The shared networks (MLP, LeNet-5-like CNN) and the variant registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainer.dropout import registry
from trainer.dropout.base import VariantSpec
from trainer.models import MLP, parse_sizes


def test_mlp_slots_cover_input_and_hidden_layers_only() -> None:
    seen: list[tuple[int, int]] = []

    def factory(layer: int, n: int) -> nn.Module:
        seen.append((layer, n))
        return nn.Dropout(0.5)

    net = MLP([20, 8, 6, 3], gates=factory, include_input=True)
    assert seen == [(0, 20), (1, 8), (2, 6)]
    assert len(net.connections) == 3 and len(net.gates) == 3
    assert net(torch.rand(5, 20)).shape == (5, 3)
    seen.clear()
    net = MLP([20, 8, 6, 3], gates=factory, include_input=False)
    assert seen == [(1, 8), (2, 6)]
    assert isinstance(net.gates[0], nn.Identity)


def test_layer_activations_are_sigmoid_outputs() -> None:
    torch.manual_seed(0)
    net = MLP([5, 4, 2])
    x = torch.rand(3, 5)
    acts = net.layer_activations(x)
    assert torch.equal(acts[0], x)
    assert torch.allclose(acts[1], torch.sigmoid(net.connections[0](x)))


@pytest.mark.parametrize("bad", ["784", "784,,x", "784,0,10", ""])
def test_parse_sizes_rejects_bad_architectures(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_sizes(bad)


def test_registry_knows_ising_and_none_and_names_unknowns() -> None:
    assert {"ising", "none"} <= set(registry.names())
    with pytest.raises(KeyError, match="unknown dropout variant 'nope'"):
        registry.get("nope")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("none")(lambda spec: MLP(spec.sizes))


def test_variant_spec_checks_mode_and_parses_options() -> None:
    with pytest.raises(ValueError, match="mode"):
        VariantSpec(sizes=[4, 2, 2], mode="always")
    spec = VariantSpec(sizes=[4, 2, 2], options={"warm_start": "false", "num_sweeps": "7"})
    assert spec.option("warm_start", True, bool) is False
    assert spec.option("num_sweeps", 10, int) == 7
    assert spec.option("missing", 3, int) == 3
    with pytest.raises(ValueError, match="num_sweeps"):
        VariantSpec(sizes=[4, 2, 2], options={"num_sweeps": "many"}).option("num_sweeps", 10, int)


# --------------------------------------------------------------------------- the CNN
from trainer.dropout.base import paper_parameter_counts  # noqa: E402
from trainer.models import LeNet5, build_network  # noqa: E402


def test_lenet_layers_units_and_shapes() -> None:
    torch.manual_seed(0)
    net = build_network("cnn", [784, 10], gates=lambda layer, n: nn.Dropout(0.5), include_input=True)
    assert isinstance(net, LeNet5)
    assert net.units == [784, 6, 16, 120, 84] and net.num_outputs == 10
    kinds = [type(c).__name__ for c in net.connections]
    assert kinds == ["Conv2d", "Conv2d", "Linear", "Linear", "Linear"]
    outputs = net.layer_outputs(torch.rand(3, 784), gated=False)
    assert [tuple(h.shape[1:]) for h in outputs] == net.layer_shapes
    assert [tuple(s) for s in net.layer_shapes] == [(784,), (6, 28, 28), (16, 10, 10), (120,), (84,)]
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10)  # images or flattened pixels alike
    with pytest.raises(ValueError, match="28x28"):
        build_network("cnn", [100, 10])
    with pytest.raises(ValueError, match="model"):
        build_network("rnn", [784, 10])


@pytest.mark.parametrize("sizes", [[784, 100, 100, 10], [784, 100, 50, 50, 25, 10]])
def test_expected_counts_of_an_mlp_are_the_papers_eq6(sizes: list[int]) -> None:
    keep = [0.6] + [0.5] * (len(sizes) - 2)
    assert MLP(sizes).expected_parameter_counts(keep) == paper_parameter_counts(sizes, keep)


def test_cnn_parameter_terms_charge_each_unit_its_outgoing_weights_and_bias() -> None:
    net = LeNet5()
    terms, unowned = net.parameter_terms()
    # Pixels own nothing (conv 1's kernel is shared); a conv-1 channel owns its 16 x 25 slice
    # of conv 2 and its bias; a conv-2 channel its 120 x 25 block of fc 1 and its bias; ...
    assert terms == [0, 16 * 6 * 25 + 6, 120 * 400 + 16, 84 * 120 + 120, 10 * 84 + 84]
    assert unowned == 6 * 25 + 10
    assert sum(terms) + unowned == sum(p.numel() for p in net.parameters())


def _stats_net() -> LeNet5:
    torch.manual_seed(0)
    return LeNet5(activation="sigmoid", gates=lambda layer, n: nn.Dropout(0.9), include_input=True)


def test_cnn_network_stats_against_a_direct_computation() -> None:
    net = _stats_net().train()  # gates would drop 90 %: the stats must not see them
    x = torch.rand(5, 784)
    stats = net.network_stats(x)
    conv1, conv2, fc1, fc2, fc3 = net.connections
    with torch.no_grad():
        h1 = torch.sigmoid(conv1(x.view(5, 1, 28, 28)))
        h2 = torch.sigmoid(conv2(torch.max_pool2d(h1, 2)))
        h3 = torch.sigmoid(fc1(torch.max_pool2d(h2, 2).flatten(1)))
        h4 = torch.sigmoid(fc2(h3))
    expected = [x, h1.mean((2, 3)), h2.mean((2, 3)), h3, h4]
    for got, want in zip(stats.activations, expected):
        torch.testing.assert_close(got, want)
    assert stats.sizes == [784, 6, 16, 120, 84] and stats.activation == "sigmoid"
    w = stats.weights
    torch.testing.assert_close(w[1], conv2.weight.detach().sum((2, 3)))
    torch.testing.assert_close(w[2], fc1.weight.detach().view(120, 16, 25).sum(2))
    torch.testing.assert_close(w[3], fc2.weight.detach())
    torch.testing.assert_close(w[4], fc3.weight.detach())
    assert [tuple(m.shape) for m in w] == [(6, 784), (16, 6), (120, 16), (84, 120), (10, 84)]
    assert stats.biases[0] is None
    torch.testing.assert_close(stats.biases[1], conv1.bias.detach())
    torch.testing.assert_close(stats.biases[4], fc2.bias.detach())
    assert stats.gate_gradients is None


def test_cnn_effective_weights_map_mean_activations_to_mean_pre_activations() -> None:
    """The convention the energies rely on: the next layer's (spatial-mean) pre-activation is
    bias + W_eff @ this layer's activations, exactly for pixels (any image) and for
    spatially constant channels."""
    net = _stats_net()
    conv1, conv2, fc1 = net.connections[0], net.connections[1], net.connections[2]
    w = net.network_stats(torch.rand(2, 784)).weights
    x = torch.rand(4, 784)
    with torch.no_grad():
        torch.testing.assert_close(conv1(x.view(4, 1, 28, 28)).mean((2, 3)), conv1.bias + x @ w[0].T)
        a = torch.rand(4, 6)
        flat = a[:, :, None, None].expand(4, 6, 14, 14)
        torch.testing.assert_close(conv2(flat).mean((2, 3)), conv2.bias + a @ w[1].T)
        b = torch.rand(4, 16)
        torch.testing.assert_close(fc1(b[:, :, None].expand(4, 16, 25).flatten(1)), fc1.bias + b @ w[2].T)


def test_cnn_gate_gradients_are_per_sample_derivatives() -> None:
    net = _stats_net()
    x, y = torch.rand(3, 784), torch.tensor([1, 4, 7])
    grads = net.network_stats(x, y).gate_gradients
    assert grads is not None and [tuple(g.shape) for g in grads] == [(3, n) for n in net.units]
    layer = 2
    for b in range(3):
        gate = torch.ones(16, requires_grad=True)
        h = torch.sigmoid(net.connections[0](x[b:b + 1].view(1, 1, 28, 28)))
        h = torch.sigmoid(net.connections[1](torch.max_pool2d(h, 2))) * gate[None, :, None, None]
        h = torch.sigmoid(net.connections[2](torch.max_pool2d(h, 2).flatten(1)))
        logits = net.connections[4](torch.sigmoid(net.connections[3](h)))
        (direct,) = torch.autograd.grad(nn.functional.cross_entropy(logits, y[b:b + 1]), gate)
        torch.testing.assert_close(grads[layer][b], direct)


def test_mlp_network_stats_are_its_weights_and_activations() -> None:
    torch.manual_seed(0)
    net = MLP([12, 5, 4, 3])
    x = torch.rand(6, 12)
    stats = net.network_stats(x)
    for got, want in zip(stats.activations, net.layer_activations(x)):
        assert torch.equal(got, want)
    for got, linear in zip(stats.weights, net.connections):
        assert torch.equal(got, linear.weight.detach())
    assert stats.biases[0] is None and torch.equal(stats.biases[2], net.connections[1].bias.detach())
