"""DropAlan: the empirical drop frequency at chosen pre-activations matches the formula."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.dropout import registry
from trainer.dropout.base import VariantSpec
from trainer.dropout.dropalan import DropAlan, DropAlanNetwork, drop_probability, dropalan

DRAWS = 100_000
Z = [-50.0, -3.0, -1.5, -1.0, -0.5, -0.25, -1e-6, 0.0, 0.5, 4.0]


def alpha_formula(z: float) -> float:
    if z < -1:
        return 0.8
    if z < 0:
        return -0.8 * z
    return 0.0


def beta_formula(z: float) -> float:
    if z < -1:
        return min(1.0 + 0.2 / z, 0.95)
    if z < 0:
        return 0.8
    return 0.0


@pytest.mark.parametrize("kind, formula", [("alpha", alpha_formula), ("beta", beta_formula)])
def test_drop_probability_matches_the_formula(kind, formula):
    z = torch.tensor(Z, dtype=torch.float64)
    expected = torch.tensor([formula(v) for v in Z], dtype=torch.float64)
    torch.testing.assert_close(drop_probability(z, kind), expected)


@pytest.mark.parametrize("kind, formula", [("alpha", alpha_formula), ("beta", beta_formula)])
def test_empirical_drop_frequency_matches_the_formula(kind, formula):
    gen = torch.Generator().manual_seed(3)
    for value in Z:
        if value == 0.0:
            continue  # zero stays zero whether dropped or not
        z = torch.full((DRAWS,), value, dtype=torch.float64)
        out = dropalan(z, kind, training=True, generator=gen)
        dropped = float((out == 0).double().mean())
        p = formula(value)
        assert abs(dropped - p) < 5 * math.sqrt(max(p * (1 - p), 1e-4) / DRAWS) + 1e-9, (kind, value)
        survivors = out[out != 0]
        torch.testing.assert_close(survivors, torch.full_like(survivors, value))  # unscaled


def test_scaled_beta_divides_survivors_by_the_keep_probability_and_keeps_the_mean():
    gen = torch.Generator().manual_seed(4)
    for value in (-3.0, -0.5, 2.0):
        p = beta_formula(value)
        z = torch.full((DRAWS,), value, dtype=torch.float64)
        out = dropalan(z, "beta", scaled=True, training=True, generator=gen)
        survivors = out[out != 0]
        torch.testing.assert_close(survivors, torch.full_like(survivors, value / (1 - p)))
        sd = abs(value) * math.sqrt(p / (1 - p) / DRAWS)
        assert abs(float(out.mean()) - value) < 5 * sd + 1e-12


def test_beta_is_clipped_and_numerically_safe():
    z = torch.tensor([-1e30, -1e6, -4.0, -1.0, -1e-30, 0.0, -0.0, 1e-30, 1e30], requires_grad=True)
    p = drop_probability(z, "beta")
    assert float(p.max()) == pytest.approx(0.95)
    assert torch.isfinite(p).all()
    out = dropalan(z, "beta", scaled=True, training=True, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(z.grad).all()
    # Survivors of scaled beta are amplified at most 1 / (1 - 0.95) = 20 times.
    gen = torch.Generator().manual_seed(5)
    big = dropalan(torch.full((10_000,), -1e3), "beta", scaled=True, training=True, generator=gen)
    assert float(big.abs().max()) <= 20 * 1e3 * (1 + 1e-5)


@pytest.mark.parametrize("kind, scaled", [("alpha", False), ("beta", False), ("beta", True)])
def test_expected_inference_is_the_mean_training_output(kind: str, scaled: bool):
    z = torch.linspace(-3, 3, 25, dtype=torch.float64)
    gen = torch.Generator().manual_seed(6)
    n = 20_000
    draws = torch.stack([dropalan(z, kind, scaled, training=True, generator=gen) for _ in range(n)])
    layer = DropAlan(kind, scaled).eval()  # inference="expected" is the default
    expected = layer(z)
    p = drop_probability(z, kind)
    sd = z.abs() * torch.sqrt((p / (1 - p) if scaled else p * (1 - p)) / n)
    assert bool(((draws.mean(0) - expected).abs() <= 5 * sd + 1e-12).all())
    if scaled:
        torch.testing.assert_close(expected, z)  # scaled: the paper's identity


def test_other_inference_rules_and_checks():
    z = torch.linspace(-3, 3, 13)
    assert torch.equal(DropAlan("alpha", inference="identity").eval()(z), z)
    mode = DropAlan("beta", inference="mode").eval()
    torch.testing.assert_close(mode(z), torch.relu(z))  # beta's most probable mask is a ReLU
    with pytest.raises(ValueError, match="kind"):
        DropAlan("gamma")
    with pytest.raises(ValueError, match="max_rate"):
        DropAlan("beta", max_rate=1.0)
    with pytest.raises(ValueError, match="inference"):
        DropAlan("beta", inference="sample")
    assert "kind=beta" in repr(mode) and "scaled=False" in repr(mode)


def test_registered_variants_put_dropalan_on_the_last_hidden_layer_by_default():
    for name, kind, scaled in (("dropalan-alpha", "alpha", False), ("dropalan-beta", "beta", False),
                               ("dropalan-beta-scaled", "beta", True)):
        net = registry.get(name)(VariantSpec([784, 30, 20, 10], include_input=True))
        assert isinstance(net, DropAlanNetwork)
        net = net.network
        # The paper's design: earlier layers keep their activation (its ReLU convolutions),
        # the dense layer before the classifier has DropAlan and no activation.
        assert isinstance(net.activations[0], torch.nn.Sigmoid)
        assert isinstance(net.activations[1], torch.nn.Identity)
        assert isinstance(net.gates[0], torch.nn.Identity)  # pixels >= 0: never dropped
        assert isinstance(net.gates[1], torch.nn.Identity)
        assert (net.gates[2].kind, net.gates[2].scaled) == (kind, scaled)


def test_placement_all_removes_every_activation():
    spec = VariantSpec([784, 30, 20, 10], options={"placement": "all"})
    net = registry.get("dropalan-beta-scaled")(spec).network
    assert all(isinstance(a, torch.nn.Identity) for a in net.activations)
    assert [m.kind for m in net.gates[1:]] == ["beta", "beta"]
    with pytest.raises(ValueError, match="placement"):
        registry.get("dropalan-beta")(VariantSpec([784, 30, 10], options={"placement": "first"}))
