"""Best-epoch restoration and early stopping honour the optional ``selectable(epoch)`` hook.

A model whose validation accuracy collapses from epoch 3 on (a buffer in its state, so the
restored weights carry it) tells which epoch's state the harness really restored.
"""

from __future__ import annotations

from collections.abc import Callable

import math

import pytest
import torch

from trainer.data import DataSplits
from trainer.dropout import registry
from trainer.dropout.base import VariantSpec
from trainer.harness import train
from trainer.models import MLP


def _separable(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=gen)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).long()


@pytest.fixture(scope="module")
def easy_data() -> DataSplits:
    (tx, ty), (vx, vy), (sx, sy) = _separable(1200, 0), _separable(400, 1), _separable(400, 2)
    return DataSplits("separable", tx, ty, vx, vy, sx, sy)


STEPS_PER_EPOCH = math.ceil(1200 / 32)


class CollapsingMLP(MLP):
    """Learns normally, but from its third epoch on (``tag``, the epoch in progress, kept in its
    state) its inference answers class 0 for everything: validation of epochs 3+ is at chance."""

    def __init__(self, selectable: Callable[[int], bool] | None = None) -> None:
        torch.manual_seed(0)
        super().__init__([6, 16, 2], "relu")
        self.register_buffer("tag", torch.zeros((), dtype=torch.long))
        if selectable is not None:
            self.selectable = selectable

    def after_step(self, batch_x: torch.Tensor, step: int) -> None:
        self.tag.fill_(step // STEPS_PER_EPOCH + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        if not self.training and int(self.tag) >= 3:
            return torch.tensor([1.0, 0.0]).expand_as(logits).clone()
        return logits


def _chance(data: DataSplits) -> float:
    return 100.0 * float((data.test_y == 0).float().mean())


def test_without_the_hook_the_best_validation_epoch_is_restored(easy_data: DataSplits) -> None:
    result = train(CollapsingMLP(), easy_data, epochs=4, lr=0.01, seed=0)
    assert result.best_epoch <= 2 and result.selection == "best"
    assert result.test_accuracy > 90.0


def test_only_selectable_epochs_are_restored_even_when_worse(easy_data: DataSplits) -> None:
    result = train(CollapsingMLP(lambda epoch: epoch >= 3), easy_data, epochs=4, lr=0.01, seed=0)
    assert result.best_epoch >= 3 and result.selection == "best-selectable"
    assert max(r.val_accuracy for r in result.history[:2]) > 90.0  # the better epochs existed
    assert result.test_accuracy == pytest.approx(_chance(easy_data))


def test_no_selectable_epoch_keeps_the_last_one(easy_data: DataSplits) -> None:
    result = train(CollapsingMLP(lambda epoch: False), easy_data, epochs=3, lr=0.01, seed=0)
    assert result.selection == "last" and result.best_epoch == 3 == result.epochs_run
    assert result.best_val_accuracy == result.history[-1].val_accuracy
    assert result.test_accuracy == pytest.approx(_chance(easy_data))


def test_patience_counts_only_selectable_epochs(easy_data: DataSplits) -> None:
    plain = train(CollapsingMLP(), easy_data, epochs=8, lr=0.01, seed=0, patience=1)
    assert plain.epochs_run <= 3
    # epochs 1-2 are not selectable; 3 is the first candidate, 4 (equal, at chance) the first stale one
    gated = train(CollapsingMLP(lambda epoch: epoch >= 3), easy_data, epochs=8, lr=0.01, seed=0, patience=1)
    assert gated.epochs_run == 4 and gated.best_epoch == 3


def test_sparsevd_selects_only_epochs_after_the_kl_warm_up(mnist_small) -> None:
    torch.manual_seed(0)
    spec = VariantSpec([784, 32, 10], options={"kl_warmup_end": "1"}, num_train=3000)
    model = registry.get("sparsevd")(spec)
    assert [model.selectable(e) for e in (1, 2, 3)] == [False, True, True]
    result = train(model, mnist_small, epochs=3, lr=0.01, seed=0, max_steps_per_epoch=30)
    assert result.best_epoch >= 2 and result.selection == "best-selectable"

    torch.manual_seed(0)
    model = registry.get("sparsevd")(VariantSpec([784, 32, 10], num_train=3000))  # warm-up to epoch 5
    result = train(model, mnist_small, epochs=2, lr=0.01, seed=0, max_steps_per_epoch=30)
    assert result.selection == "last" and result.best_epoch == 2


def test_dropneuron_keeps_its_last_epoch_unless_told_otherwise() -> None:
    default = registry.get("dropneuron")(VariantSpec([6, 4, 2]))
    assert not any(default.selectable(e) for e in range(1, 50))
    late = registry.get("dropneuron")(VariantSpec([6, 4, 2], options={"select_from": "3"}))
    assert [late.selectable(e) for e in (1, 2, 3, 4)] == [False, False, True, True]
    with pytest.raises(ValueError, match="select_from"):
        registry.get("dropneuron")(VariantSpec([6, 4, 2], options={"select_from": "0"}))


def test_sparsevd_takes_the_training_set_size_from_the_spec() -> None:
    spec = VariantSpec([6, 4, 2], options={"kl_warmup_end": "0"}, num_train=250)
    model = registry.get("sparsevd")(spec)
    assert model.num_train == 250
    assert float(model.regularization_loss().detach()) > 0.0  # the KL acts from the very first step
    override = registry.get("sparsevd")(VariantSpec([6, 4, 2], options={"num_train": "99"}, num_train=250))
    assert override.num_train == 99
    late = registry.get("sparsevd")(VariantSpec([6, 4, 2], options={"kl_warmup_end": "0"}))
    assert float(late.regularization_loss().detach()) == 0.0  # N unknown until the first epoch ends


class LearningRateProbe(MLP):
    """Records the optimizer's learning rate seen at the end of every epoch."""

    def __init__(self) -> None:
        super().__init__([6, 4, 2])
        self.seen: list[float] = []

    def on_epoch_end(self, epoch: int, context: object) -> None:
        self.seen.append(context.optimizer.param_groups[0]["lr"])  # type: ignore[attr-defined]


@pytest.mark.parametrize(("decay", "expected"), [("none", [0.01] * 4),
                                                  ("linear", [0.01, 0.0075, 0.005, 0.0025])])
def test_linear_lr_decay_lowers_the_rate_each_epoch(easy_data: DataSplits, decay: str,
                                                    expected: list[float]) -> None:
    model = LearningRateProbe()
    result = train(model, easy_data, epochs=4, lr=0.01, lr_decay=decay)
    assert model.seen == pytest.approx(expected)
    assert result.test_accuracy > 80


def test_unknown_lr_decay_is_refused(easy_data: DataSplits) -> None:
    with pytest.raises(ValueError, match="lr_decay"):
        train(MLP([6, 2]), easy_data, epochs=1, lr_decay="cosine")


def test_test_nll_is_the_mean_cross_entropy_of_the_evaluated_weights() -> None:
    from torch.nn import functional as F

    from trainer.harness import evaluate_with_nll

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(50, 4), torch.randint(0, 3, (50,))
    accuracy, nll = evaluate_with_nll(model, x, y)
    with torch.no_grad():
        logits = model(x)
    assert abs(nll - float(F.cross_entropy(logits, y))) < 1e-6
    assert accuracy == 100.0 * int((logits.argmax(1) == y).sum()) / 50
