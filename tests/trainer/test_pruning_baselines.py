"""The pruning baselines: exact counts, the right units removed for each criterion, the schedule."""

from __future__ import annotations

import pytest
import torch

from trainer.data import DataSplits
from trainer.dropout import registry
from trainer.dropout.base import VariantSpec
from trainer.harness import train

SIZES = [30, 12, 8, 3]


def build(name: str, **options):
    torch.manual_seed(0)
    spec = VariantSpec(SIZES, include_input=True, options=options, seed=0)
    return registry.get(name)(spec)


def synthetic(n: int = 5000, seed: int = 0) -> DataSplits:
    """The class is the largest of the first 3 features; the other 27 are noise."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, SIZES[0], generator=gen)
    y = x[:, :3].argmax(1)
    a, b = int(0.8 * n), int(0.9 * n)
    return DataSplits("synthetic", x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:])


@pytest.mark.parametrize("name", ["prune-magnitude", "prune-taylor"])
def test_pruning_keeps_exactly_k_per_layer_and_reports_the_pruned_network(name: str) -> None:
    model = build(name, keep_ratio="0.4,0.5,0.75", prune_epoch=1)
    result = train(model, synthetic(1000), epochs=3, batch_size=32, lr=0.01, seed=0)
    masks = model.unit_keep_masks()
    assert [int(m.sum()) for m in masks] == [12, 6, 6]
    assert result.params_exact_basis == "pruned"
    assert result.best_epoch > 1  # never the dense epoch before pruning
    assert result.log["pruning"]["pruned"]


def test_magnitude_keeps_the_units_with_the_largest_outgoing_weights() -> None:
    model = build("prune-magnitude", keep_ratio=0.5)
    with torch.no_grad():
        model.network.connections[1].weight.zero_()
        model.network.connections[1].weight[:, [1, 3, 5, 7, 9, 11]] = 1.0  # h1's units 1, 3, ... feed h2
    model.prune()
    assert model.network.gates[1].mask.nonzero().flatten().tolist() == [1, 3, 5, 7, 9, 11]


def test_taylor_keeps_the_informative_pixels() -> None:
    model = build("prune-taylor", keep_ratio="0.2,1,1", prune_epoch=1)
    train(model, synthetic(), epochs=2, batch_size=32, lr=0.01, seed=0)
    kept = set(model.network.gates[0].mask.nonzero().flatten().tolist())
    # the three pixels that decide the class are among the six kept (of 30)
    assert len(kept) == 6 and {0, 1, 2} <= kept
    assert float(model.network.gates[0].taylor.sum()) > 0


def test_prune_epoch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="prune_epoch"):
        build("prune-magnitude", prune_epoch=0)
