"""Structured pruning: the physically smaller network, its counts and its timing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainer.dropout import registry
from trainer.dropout.base import VariantSpec
from trainer.dropout.mutual_information import FilledUnitMask
from trainer.models import MLP, LeNet5, build_network
from trainer.pruning import (count_parameters, inference_seconds, prune_network, pruning_report, structured_counts,
                             weight_sparsity)


def _random_masks(units: list[int], seed: int, include_input: bool = True) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    masks = []
    for layer, n in enumerate(units):
        mask = (torch.rand(n, generator=gen) < 0.6).float()
        mask[0] = 1.0  # never an empty layer
        masks.append(mask if (layer or include_input) else torch.ones(n))
    return masks


def test_counts_of_a_tiny_cnn_by_hand() -> None:
    net = LeNet5(channels=(2, 3), hidden=(4, 5), num_classes=2)
    masks = [torch.ones(784), torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0, 0.0]),
             torch.tensor([1.0, 0.0, 1.0, 1.0]), torch.ones(5)]
    counts = structured_counts(net, masks)
    # Full: conv 1 (2 x 1 x 5 x 5 + 2), conv 2 (3 x 2 x 25 + 3), fc 1 (4 x 3 x 25 + 4), fc 2, fc 3.
    assert counts["params_full"] == (50 + 2) + (150 + 3) + (300 + 4) + (20 + 5) + (10 + 2)
    assert counts["params_full"] == sum(p.numel() for p in net.parameters())
    # MACs: every kernel weight once per output position (28 x 28 after conv 1, 10 x 10 after conv 2).
    assert counts["macs_full"] == 50 * 784 + 150 * 100 + 300 + 20 + 10
    # Kept: conv 1 -> 1 channel, conv 2 -> 2 channels (of 1 input), fc 1 -> 3 units (of 2 x 25), ...
    assert counts["params_pruned"] == (25 + 1) + (2 * 1 * 25 + 2) + (3 * 2 * 25 + 3) + (3 * 5 + 5) + (5 * 2 + 2)
    assert counts["macs_pruned"] == 25 * 784 + 50 * 100 + 150 + 15 + 10
    pruned = prune_network(net, masks)
    assert count_parameters(pruned.network) == counts["params_pruned"]
    assert pruned.network.units == [784, 1, 2, 3, 5]


def test_removed_pixels_of_a_cnn_save_nothing_but_of_an_mlp_do() -> None:
    pixels = torch.ones(784)
    pixels[:400] = 0.0
    cnn, mlp = LeNet5(), MLP([784, 20, 10])
    cnn_counts = structured_counts(cnn, [pixels] + [torch.ones(n) for n in cnn.units[1:]])
    assert cnn_counts["params_pruned"] == cnn_counts["params_full"]
    mlp_counts = structured_counts(mlp, [pixels, torch.ones(20)])
    assert mlp_counts["params_full"] - mlp_counts["params_pruned"] == 400 * 20


def test_fractional_or_misshapen_masks_are_refused() -> None:
    net = MLP([4, 3, 2])
    with pytest.raises(ValueError, match="0/1"):
        structured_counts(net, [torch.ones(4), torch.full((3,), 0.5)])
    with pytest.raises(ValueError, match="one keep mask"):
        structured_counts(net, [torch.ones(4)])
    with pytest.raises(ValueError, match="entries"):
        structured_counts(net, [torch.ones(4), torch.ones(2)])
    with pytest.raises(ValueError, match="keeps no unit"):
        prune_network(net, [torch.ones(4), torch.zeros(3)])


@pytest.mark.parametrize("model", ["mlp", "cnn"])
@pytest.mark.parametrize("seed,rescale", [(0, "false"), (1, "false"), (2, "true")])
def test_pruned_network_equals_the_masked_one_ising_train_and_infer(model: str, seed: int,
                                                                     rescale: str) -> None:
    """Also with inverted scaling (kept units x n / kept), which pruning folds into the weights."""
    torch.manual_seed(seed)
    variant = registry.get("ising")(VariantSpec([784, 30, 20, 10], include_input=True, mode="train+infer",
                                                model=model, seed=seed, options={"rescale": rescale}))
    masks = _random_masks(variant.network.units, seed)
    variant.set_state(torch.cat(masks).numpy())
    variant.eval()
    pruned = prune_network(variant.network, variant.unit_keep_masks())
    x = torch.rand(16, 784)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), variant(x), rtol=1e-5, atol=1e-5)
    kept = [int(m.sum()) for m in masks]
    assert pruned.network.units[1:] == kept[1:]
    assert pruned.network.units[0] == (kept[0] if model == "mlp" else 784)
    variant.close()


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_pruned_network_folds_the_constant_of_filled_units(model: str) -> None:
    """MI-Dropout's removed units output their mean: the pruned network adds it to the next bias."""
    torch.manual_seed(0)
    net = build_network(model, [784, 30, 20, 10], gates=lambda layer, n: FilledUnitMask(n), include_input=True)
    masks = _random_masks(net.units, 3)
    gen = torch.Generator().manual_seed(4)
    for gate, mask in zip(net.gates, masks):
        gate.mask.copy_(mask)
        gate.fill.copy_(torch.rand(mask.numel(), generator=gen))
    net.eval()
    pruned = prune_network(net, net.unit_keep_masks())
    x = torch.rand(16, 784)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), net(x), rtol=1e-5, atol=1e-5)
        zero_fills = build_network(model, [784, 30, 20, 10], include_input=True)
        zero_fills.load_state_dict({k: v for k, v in net.state_dict().items() if "gates" not in k})
        assert not torch.allclose(prune_network(zero_fills, masks)(x), pruned(x))  # the fills mattered


def test_sparsevd_units_without_inputs_are_folded_and_the_network_kept_exact() -> None:
    torch.manual_seed(0)
    model = registry.get("sparsevd")(VariantSpec([784, 10], model="cnn"))
    with torch.no_grad():
        model.network.connections[1].log_sigma2[3].fill_(8.0)   # conv-2 channel 3: no kernel left
        model.network.connections[3].log_sigma2[:, 7].fill_(8.0)  # fc-1 unit 7: no outlet
    masks = model.unit_keep_masks()
    assert masks[2][3] == 0 and masks[3][7] == 0 and int(masks[2].sum()) == 15
    model.eval()
    pruned = prune_network(model.network, masks)
    x = torch.rand(8, 784)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), model(x), rtol=1e-5, atol=1e-5)
    sparsity = weight_sparsity(model)
    pruned_weights = sum(int((c.log_alpha >= c.threshold).sum()) for c in model.network.connections)
    assert sparsity is not None and sparsity["zero_weights"] == pruned_weights >= 6 * 25 + 84
    assert "train_drop_pct" not in sparsity


def test_dropneuron_on_the_cnn_prunes_channels_and_stays_exact() -> None:
    torch.manual_seed(0)
    model = registry.get("dropneuron")(VariantSpec([784, 10], model="cnn", options={"threshold": "0.01"}))
    with torch.no_grad():
        model.network.connections[1].weight[:, 2].fill_(0.001)  # conv-1 channel 2: no outlet
        model.network.connections[2].weight[5].fill_(0.0)       # fc-1 unit 5: no inlet, a constant
    x = torch.rand(8, 784)
    model.eval()
    with torch.no_grad():
        before = model(x)
    model.prune()
    masks = model.unit_keep_masks()
    assert masks[1][2] == 0 and masks[3][5] == 0
    with torch.no_grad():
        after = model(x)
        pruned = prune_network(model.network, masks)
        torch.testing.assert_close(pruned(x), after, rtol=1e-5, atol=1e-5)
    assert float((before - after).abs().max()) < 0.05  # only weights below the threshold went
    total, remaining = model.parameter_counts()
    assert remaining < total


def test_dropneuron_groups_are_channels_on_the_cnn() -> None:
    torch.manual_seed(0)
    model = registry.get("dropneuron")(VariantSpec([784, 10], model="cnn",
                                                   options={"lambda_in": "1", "lambda_out": "0", "l1": "0"}))
    expected = sum(c.weight.detach().flatten(1).norm(dim=1).sum() for c in model.network.connections)
    torch.testing.assert_close(model.regularization_loss().detach(), expected)
    model = registry.get("dropneuron")(VariantSpec([784, 10], model="cnn",
                                                   options={"lambda_in": "0", "lambda_out": "1", "l1": "0"}))
    conv2, fc1 = model.network.connections[1].weight.detach(), model.network.connections[2].weight.detach()
    out_groups = (conv2.transpose(0, 1).flatten(1).norm(dim=1).sum()                      # conv-1 channels
                  + fc1.view(120, 16, 25).transpose(0, 1).flatten(1).norm(dim=1).sum()  # conv-2 channels
                  + sum(c.weight.detach().norm(dim=0).sum() for c in model.network.connections[3:]))
    torch.testing.assert_close(model.regularization_loss().detach(), out_groups)  # no pixel groups


def test_dropconnect_reports_its_training_time_weight_drop_apart() -> None:
    model = registry.get("dropconnect")(VariantSpec([784, 10], model="cnn", p=0.3))
    sparsity = weight_sparsity(model)
    assert sparsity is not None and sparsity["zero_weights"] == 0
    first = model.network.connections[0].weight.numel()
    assert sparsity["train_drop_pct"] == pytest.approx(30.0 * (1 - first / sparsity["weights"]))
    assert weight_sparsity(registry.get("none")(VariantSpec([784, 10], model="cnn"))) is None


def test_pruning_report_times_both_networks_and_skips_random_masks() -> None:
    torch.manual_seed(0)
    variant = registry.get("ising")(VariantSpec([784, 30, 20, 10], mode="train+infer"))
    masks = _random_masks(variant.network.units, 5, include_input=False)
    variant.set_state(torch.cat(masks[1:]).numpy())
    x, y = torch.rand(50, 784), torch.randint(0, 10, (50,))
    report = pruning_report(variant, x, y, batch=64, repeats=3)
    assert report is not None and report["units_kept"] == [784] + [int(m.sum()) for m in masks[1:]]
    assert report["params_pruned"] < report["params_full"] and report["macs_pruned"] < report["macs_full"]
    assert report["inference_ms_full"] > 0 and report["inference_ms_pruned"] > 0
    variant.eval()
    with torch.no_grad():
        accuracy = 100.0 * float((variant(x).argmax(1) == y).float().mean())
    assert report["pruned_test_accuracy"] == pytest.approx(accuracy)
    assert pruning_report(registry.get("dropout")(VariantSpec([784, 30, 10]))) is None
    variant.close()


def test_inference_seconds_restores_threads_and_mode() -> None:
    net = nn.Linear(8, 2).train()
    threads = torch.get_num_threads()
    seconds = inference_seconds(net, (8,), batch=16, repeats=3, threads=1)
    assert seconds > 0 and net.training and torch.get_num_threads() == threads
    with pytest.raises(ValueError, match="repeats"):
        inference_seconds(net, (8,), repeats=0)
