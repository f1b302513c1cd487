"""The shared MLP and the variant registry."""

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

    net = MLP([20, 8, 6, 3], unit_dropout=factory, include_input=True)
    assert seen == [(0, 20), (1, 8), (2, 6)]
    assert len(net.linears) == 3 and len(net.unit_modules) == 3
    assert net(torch.rand(5, 20)).shape == (5, 3)
    seen.clear()
    net = MLP([20, 8, 6, 3], unit_dropout=factory, include_input=False)
    assert seen == [(1, 8), (2, 6)]
    assert isinstance(net.unit_modules[0], nn.Identity)


def test_layer_activations_are_sigmoid_outputs() -> None:
    torch.manual_seed(0)
    net = MLP([5, 4, 2])
    x = torch.rand(3, 5)
    acts = net.layer_activations(x)
    assert torch.equal(acts[0], x)
    assert torch.allclose(acts[1], torch.sigmoid(net.linears[0](x)))


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
