"""Defining properties of the random-noise variants: dropout, Gaussian, alpha, DropConnect."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainer.dropout import registry
from trainer.dropout.alpha import UnitAlphaDropout
from trainer.dropout.base import VariantSpec
from trainer.dropout.dropconnect import DropConnect, DropConnectLinear, dropconnect_linear
from trainer.dropout.gaussian import GaussianDropout, gaussian_dropout
from trainer.dropout.standard import UnitDropout

N = 400_000


# --------------------------------------------------------------------------- standard dropout
@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_inverted_dropout_preserves_the_mean(p: float):
    torch.manual_seed(0)
    x = torch.full((N,), 3.0)
    out = F.dropout(x, p, training=True)
    assert abs(float((out == 0).float().mean()) - p) < 0.005
    assert abs(float(out.mean()) - 3.0) < 0.02 * 3.0 / math.sqrt(1 - p)
    torch.testing.assert_close(out[out != 0], torch.full_like(out[out != 0], 3.0 / (1 - p)))


def test_dropout_variant_layers_and_rates():
    net = registry.get("dropout")(VariantSpec([784, 50, 20, 10], include_input=True))
    assert all(isinstance(m, UnitDropout) for m in net.network.gates)
    assert [m.p for m in net.network.gates] == [0.5, 0.5, 0.5]
    hidden_only = registry.get("dropout")(VariantSpec([784, 50, 20, 10], p=0.3))
    assert isinstance(hidden_only.network.gates[0], nn.Identity)
    assert [float(m.mean()) for m in hidden_only.unit_keep_masks()] == pytest.approx([1.0, 0.7, 0.7])
    x = torch.rand(8, 784)
    hidden_only.eval()
    layers = hidden_only.network.connections
    plain = layers[2](torch.sigmoid(layers[1](torch.sigmoid(layers[0](x)))))
    torch.testing.assert_close(hidden_only(x), plain)  # identity at inference


def test_dropout_rejects_bad_rate():
    with pytest.raises(ValueError, match="p"):
        registry.get("dropout")(VariantSpec([4, 3, 2], p=0.5, options={"p_input": "1.0"}))


# --------------------------------------------------------------------------- Gaussian dropout
@pytest.mark.parametrize("p", [0.1, 0.5, 0.75])
def test_gaussian_dropout_mean_one_variance_p_over_1_minus_p(p: float):
    gen = torch.Generator().manual_seed(1)
    out = gaussian_dropout(torch.ones(N, dtype=torch.float64), p, training=True, generator=gen)
    var = p / (1 - p)
    assert abs(float(out.mean()) - 1.0) < 5 * math.sqrt(var / N)
    assert abs(float(out.var()) - var) < 0.02 * var


def test_gaussian_dropout_identity_in_eval_and_checks_p():
    layer = GaussianDropout(0.5).eval()
    x = torch.randn(5, 7)
    assert torch.equal(layer(x), x)
    assert "p=0.5" in repr(layer)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        GaussianDropout(1.0)
    with pytest.raises(ValueError):
        GaussianDropout(-0.1)


# --------------------------------------------------------------------------- alpha dropout
def test_alpha_variant_is_a_selu_net_with_lecun_normal_init():
    torch.manual_seed(0)
    net = registry.get("alpha")(VariantSpec([784, 400, 400, 10], activation="sigmoid"))
    assert all(isinstance(a, nn.SELU) for a in net.network.activations)
    assert all(isinstance(m, UnitAlphaDropout) for m in net.network.gates[1:])
    for linear in net.network.connections:
        std = float(linear.weight.detach().std())
        assert abs(std - 1.0 / math.sqrt(linear.in_features)) < 0.05 / math.sqrt(linear.in_features)
        assert float(linear.bias.detach().abs().max()) == 0.0


def test_alpha_dropout_keeps_the_self_normalised_moments():
    """Standardised inputs stay at mean 0 / variance 1 through SELU layers *with* alpha dropout."""
    torch.manual_seed(0)
    net = registry.get("alpha")(VariantSpec([256, 256, 256, 256, 10], p=0.1, include_input=True)).network.train()
    x = torch.randn(4096, 256)
    with torch.no_grad():
        h = x
        for layer in range(3):
            h = net.activations[layer](net.connections[layer](net.gates[layer](h)))
        h = net.gates[3](h)
    assert abs(float(h.mean())) < 0.1
    assert abs(float(h.var()) - 1.0) < 0.15


# --------------------------------------------------------------------------- DropConnect
def test_dropconnect_drops_weights_at_rate_p_and_keeps_the_mean():
    gen = torch.Generator().manual_seed(2)
    weight = torch.randn(50, 40)
    eye = torch.eye(40)
    p = 0.3
    samples = torch.stack([dropconnect_linear(eye, weight, None, p, True, gen) for _ in range(500)])
    # Row i of the output for the unit input e_i is column i of the masked, rescaled weight.
    masked = samples.transpose(1, 2)  # (draws, out, in)
    assert abs(float((masked == 0).float().mean()) - p) < 0.01
    torch.testing.assert_close(masked[masked != 0], (weight / (1 - p)).expand_as(masked)[masked != 0])
    torch.testing.assert_close(masked.mean(0), weight, atol=0.25, rtol=0.05)


def test_dropconnect_layer_uses_full_weights_at_inference():
    layer = DropConnectLinear(6, 4, p=0.5).eval()
    x = torch.randn(3, 6)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))
    assert "p=0.5" in repr(layer)
    with pytest.raises(ValueError):
        DropConnectLinear(6, 4, p=1.5)


def test_dropconnect_first_layer_only_with_include_input():
    assert DropConnect(VariantSpec([10, 8, 4], include_input=False)).network.connections[0].p == 0.0
    assert DropConnect(VariantSpec([10, 8, 4], include_input=True)).network.connections[0].p == 0.5
    assert DropConnect(VariantSpec([10, 8, 4])).network.connections[1].p == 0.5


def test_dropconnect_moment_matching_inference_matches_the_masked_network_average():
    """Wan et al.'s Gaussian moment matching approximates the average over weight masks."""
    torch.manual_seed(0)
    net = registry.get("dropconnect")(VariantSpec([200, 6, 3], include_input=True, p=0.5,
                                                  options={"inference": "moment", "num_samples": "4096"}))
    with torch.no_grad():
        for linear in net.network.connections:
            linear.weight.mul_(4.0)  # pre-activations in the sigmoid's curved range
    x = torch.rand(4, 200)
    with torch.no_grad():
        net.train()
        sampled = torch.stack([net(x) for _ in range(3000)]).mean(0)
        net.eval()
        moment = net(x)
        plain = net.network(x)  # the default inference: full weights
    torch.testing.assert_close(moment, sampled, atol=0.05, rtol=0)
    assert float((plain - sampled).abs().max()) > 2 * float((moment - sampled).abs().max())
    torch.testing.assert_close(net(x), moment)  # deterministic
    with pytest.raises(ValueError, match="inference"):
        DropConnect(VariantSpec([4, 3, 2]), inference="sample")
