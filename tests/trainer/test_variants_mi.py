"""Mutual-Information Dropout: the estimators, and the threshold search on a validation split."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from trainer.dropout import registry
from trainer.dropout.base import HarnessContext, VariantSpec
from trainer.dropout.mutual_information import (MutualInformationDropout, FilledUnitMask, histogram_mutual_information,
                                                knn_mutual_information, mutual_information)

N = 6000
LOG10 = math.log(10.0)


def _units(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns: independent noise, a label copy, a noisy label copy, 'label < 5', a constant."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (N,), generator=gen)
    independent = torch.randn(N, generator=gen)
    copy = y.double()
    noisy_copy = y.double() + 0.05 * torch.randn(N, generator=gen, dtype=torch.float64)
    half = (y < 5).double() + 0.01 * torch.randn(N, generator=gen, dtype=torch.float64)
    constant = torch.full((N,), 0.3, dtype=torch.float64)
    return torch.stack([independent.double(), copy, noisy_copy, half, constant], dim=1), y


@pytest.mark.parametrize("estimator", ["histogram", "knn"])
def test_mi_near_zero_for_independent_unit_and_high_for_label_copy(estimator: str):
    acts, y = _units()
    mi = mutual_information(acts, y, estimator)
    assert mi.shape == (5,)
    assert float(mi[0]) < 0.02               # independent of the label
    assert float(mi[1]) > 0.95 * LOG10       # H(y) = log 10 for a uniform 10-class label
    assert float(mi[2]) > 0.95 * LOG10
    assert abs(float(mi[3]) - math.log(2.0)) < 0.05  # one bit: which half the label is in
    assert float(mi[4]) < 1e-3               # a constant carries nothing
    assert float(mi.min()) >= 0.0


def test_estimators_agree_on_a_partly_informative_unit():
    gen = torch.Generator().manual_seed(7)
    y = torch.randint(0, 10, (N,), generator=gen)
    acts = (y.double() + 3.0 * torch.randn(N, generator=gen, dtype=torch.float64)).unsqueeze(1)
    hist = float(histogram_mutual_information(acts, y, bins=20)[0])
    knn = float(knn_mutual_information(acts, y, k=3)[0])
    assert 0.1 < knn < 1.0
    assert abs(hist - knn) < 0.05


def test_estimators_check_their_inputs():
    with pytest.raises(ValueError, match="labels"):
        histogram_mutual_information(torch.zeros(4, 2), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="bins"):
        histogram_mutual_information(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), bins=1)
    with pytest.raises(ValueError, match="estimator"):
        mutual_information(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), "kde")


def _informative_net() -> tuple[MutualInformationDropout, SimpleNamespace]:
    """A 20-3-4-3 net whose hidden units 0 and 1 carry the label and unit 2 is pure noise."""
    gen = torch.Generator().manual_seed(1)
    n = 3000

    def split(m):
        y = torch.randint(0, 3, (m,), generator=gen)
        x = torch.randn(m, 20, generator=gen) * 0.1
        x[:, 0] += (y == 0).float() * 3
        x[:, 1] += (y == 1).float() * 3
        x[:, 2] = torch.randn(m, generator=gen) * 3  # uninformative input
        return x, y

    (tx, ty), (vx, vy) = split(n), split(1000)
    data = SimpleNamespace(train_x=tx, train_y=ty, val_x=vx, val_y=vy)
    net = MutualInformationDropout(VariantSpec([20, 3, 4, 3]), samples=2000, tolerance=1.0, retrain_epochs=0)
    with torch.no_grad():
        first = torch.zeros(3, 20)
        first[0, 0], first[1, 1], first[2, 2] = 4.0, 4.0, 4.0
        net.network.connections[0].weight.copy_(first)
        net.network.connections[0].bias.fill_(-2.0)
        second = torch.zeros(4, 3)
        second[0, 0], second[1, 1], second[2, 2], second[3, 2] = 6.0, 6.0, 0.1, 0.1
        net.network.connections[1].weight.copy_(second)
        net.network.connections[1].bias.fill_(-3.0)
        third = torch.zeros(3, 4)
        third[0, 0], third[1, 1], third[2, :2] = 8.0, 8.0, -8.0
        net.network.connections[2].weight.copy_(third)
        net.network.connections[2].bias.copy_(torch.tensor([-4.0, -4.0, 4.0]))
    return net, data


def test_threshold_search_masks_the_uninformative_units_and_logs_mi():
    net, data = _informative_net()

    def evaluate(x, y):
        net.eval()
        with torch.no_grad():
            return 100.0 * float((net(x).argmax(1) == y).float().mean())

    fitted = []
    context = HarnessContext(data=data, optimizer=None, epoch=4, evaluate=evaluate,
                             fit=lambda e: fitted.append(e) or e, timings={})
    unmasked = evaluate(data.val_x, data.val_y)
    assert unmasked > 95.0
    net.finish_training(context)
    masks = net.unit_keep_masks()
    assert masks[0].tolist() == [1.0] * 20  # input not a candidate
    assert masks[1].tolist() == [1.0, 1.0, 0.0]  # the noise unit goes
    assert masks[2].tolist() == [1.0, 1.0, 0.0, 0.0]  # so do the units fed by it
    assert evaluate(data.val_x, data.val_y) >= unmasked - 1.0
    log = context.log["mutual_information"]
    assert log["layers"] == [1, 2] and log["units_kept"] == [2, 2]
    assert log["mean_mi_after"][0] > log["mean_mi_before"][0]  # only informative units remain
    assert fitted == []  # retrain_epochs=0


def test_variant_options():
    net = registry.get("mi")(VariantSpec([784, 20, 10], include_input=True,
                                         options={"estimator": "knn", "k": "5", "retrain_epochs": "2"}))
    assert isinstance(net, MutualInformationDropout)
    assert net.estimator == "knn" and net.k == 5 and net.retrain_epochs == 2
    assert isinstance(net.network.gates[0], FilledUnitMask) and isinstance(net.network.gates[1], FilledUnitMask)
    with pytest.raises(ValueError, match="estimator"):
        registry.get("mi")(VariantSpec([784, 20, 10], options={"estimator": "kde"}))


def test_a_dropped_unit_outputs_its_constant_fill():
    layer = FilledUnitMask(3)
    layer.mask.copy_(torch.tensor([1.0, 0.0, 1.0]))
    layer.fill.copy_(torch.tensor([9.0, 0.7, 9.0]))
    h = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    torch.testing.assert_close(layer(h), torch.tensor([[0.1, 0.7, 0.3], [0.4, 0.7, 0.6]]))
    assert "kept=2" in repr(layer)


def test_mi_on_the_cnn_masks_whole_channels_after_training() -> None:
    """MI-Dropout on the CNN: channel MI from spatial means, masks and fills per channel."""
    from trainer.data import DataSplits
    from trainer.harness import train

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(600, 784, generator=gen)
    y = (x[:, :392].mean(1) > x[:, 392:].mean(1)).long()
    data = DataSplits("halves", x[:400], y[:400], x[400:500], y[400:500], x[500:], y[500:])
    torch.manual_seed(0)
    model = registry.get("mi")(VariantSpec([784, 2], model="cnn",
                                           options={"samples": "300", "retrain_epochs": "0", "tolerance": "5"}))
    result = train(model, data, epochs=1, lr=0.01, seed=0, max_steps_per_epoch=5)
    log = result.log["mutual_information"]
    assert log["layers"] == [1, 2, 3, 4] and len(log["mean_mi_before"]) == 4
    masks = model.unit_keep_masks()
    assert [int(m.numel()) for m in masks] == [784, 6, 16, 120, 84] and masks[0].sum() == 784
    gate = model.network.gates[2]
    assert bool((gate.mask == 0).any())
    with torch.no_grad():
        h = model.network.layer_outputs(x[:3])[2]
    for channel in range(16):
        if gate.mask[channel] == 0:  # a dropped channel outputs its fill everywhere
            assert torch.allclose(h[:, channel], gate.fill[channel].expand_as(h[:, channel]))
