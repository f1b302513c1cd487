"""The training loop every dropout variant shares: Adam, optional hooks, early stopping, metrics.

The harness knows no variant by name; it detects the optional hooks documented in
``trainer.dropout.base`` on the model and calls them. It times the plain forward/backward/update
work apart from the hooks, and adds the method's own breakdown (``timing_breakdown()``), so that
"how much does Ising-Dropout cost per step" is read from one place.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .data import DataSplits
from .dropout.base import HarnessContext, gated_network, is_deterministic, paper_parameter_counts
from .pruning import structured_counts

EVAL_CHUNK = 10_000


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    train_accuracy: float
    val_accuracy: float
    seconds: float
    drop_rate_per_layer: list[float]


@dataclass
class RunResult:
    """Metrics of one training run; percentages are in 0..100.

    ``params_*`` follow the paper's eq. 6 accounting (:func:`paper_parameter_counts`, for any
    gated network :meth:`trainer.models.GatedNetwork.expected_parameter_counts`: each unit owns
    its outgoing weights and its bias) unless the method reports its own
    ``parameter_counts()``. ``params_*_exact`` count the weights and biases a pruned network
    would really keep when the method's keep masks are 0/1 (:func:`trainer.pruning.structured_counts`,
    units physically removed) or when it counts its pruned weights itself: ``params_exact_basis``
    is then "pruned". Random methods report
    keep *fractions*, which prune nothing; for them the fields repeat eq. 6 with the expected
    drop rates (what the paper's tables show) and the basis is "eq6-expected". ``selection``
    says whose weights were evaluated: "best" (best validation accuracy), "best-selectable"
    (best among the epochs the model's ``selectable`` hook allowed) or "last" (no epoch was
    selectable).
    """

    test_accuracy: float
    test_nll: float
    best_val_accuracy: float
    best_epoch: int
    epochs_run: int
    steps: int
    drop_rate_per_layer: list[float]
    params_total: int
    params_remaining: float
    params_removed_pct: float
    compression_ratio: float
    params_total_exact: int
    params_removed_pct_exact: float
    params_exact_basis: str | None
    seconds: float
    timings: dict[str, float]
    history: list[EpochRecord] = field(default_factory=list)
    log: dict[str, Any] = field(default_factory=dict)
    selection: str = "best"

    @property
    def seconds_per_step(self) -> dict[str, float]:
        """Mean seconds per training step of each timing key."""
        steps = max(self.steps, 1)
        return {k: v / steps for k, v in self.timings.items()}


def _hook(model: nn.Module, name: str) -> Callable[..., Any] | None:
    fn = getattr(model, name, None)
    return fn if callable(fn) else None


def _takes_labels(hook: Callable[..., Any]) -> bool:
    """Whether a ``before_step`` hook accepts the labels as a third argument (the contract's
    optional ``batch_y``); hooks written for ``(batch_x, step)`` keep working."""
    try:
        inspect.signature(hook).bind(None, None, None)
    except TypeError:
        return False
    except ValueError:  # no signature to inspect (a builtin): call it the old way
        return False
    return True


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy in % with the model in eval mode (restores the previous mode)."""
    return evaluate_with_nll(model, x, y)[0]


@torch.no_grad()
def evaluate_with_nll(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy in %, mean negative log-likelihood in nats) with the model in eval mode."""
    if x.shape[0] == 0:
        return float("nan"), float("nan")
    was_training = model.training
    model.eval()
    correct, nll = 0, 0.0
    for start in range(0, x.shape[0], EVAL_CHUNK):
        logits = model(x[start:start + EVAL_CHUNK])
        target = y[start:start + EVAL_CHUNK]
        correct += int((logits.argmax(1) == target).sum())
        nll += float(F.cross_entropy(logits, target, reduction="sum"))
    model.train(was_training)
    return 100.0 * correct / x.shape[0], nll / x.shape[0]


def keep_masks(model: nn.Module) -> list[torch.Tensor] | None:
    fn = _hook(model, "unit_keep_masks")
    if fn is None:
        return None
    return [m.detach().float().cpu() for m in fn()]


def drop_rates(masks: list[torch.Tensor] | None) -> list[float]:
    if masks is None:
        return []
    return [100.0 * (1.0 - float(m.mean())) if m.numel() else 0.0 for m in masks]


#: Learning-rate schedules of :func:`train`.
LR_DECAYS = ("none", "linear")


class Trainer:
    """Holds the model, data, optimizer and timing of one run; :func:`train` drives it.

    Args:
        model: any ``nn.Module`` mapping flattened images to logits (optionally with hooks).
        data: the splits.
        batch_size, lr, seed: mini-batch size, Adam learning rate, shuffling seed.
        progress: show a tqdm bar per epoch (on stderr).
        max_steps_per_epoch: cut each epoch short (benchmarks, smoke tests).

    Denormal floats are flushed to zero on the calling thread (``torch.set_flush_denormal``):
    the Adam momentum of a unit a mask keeps dropped for hundreds of steps decays below 1e-38,
    and arithmetic on such numbers is many times slower (a third of the first moments of an
    Ising-Dropout run were denormal, and its optimizer steps measurably slower); values that
    small change no update.
    """

    def __init__(self, model: nn.Module, data: DataSplits, *, batch_size: int = 32, lr: float = 0.01,
                 seed: int = 0, progress: bool = False, max_steps_per_epoch: int | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"learning rate must be a positive number, got {lr}")
        torch.set_flush_denormal(True)
        self.model = model
        self.data = data
        self.batch_size = batch_size
        self.lr = lr
        self.progress = progress
        self.max_steps_per_epoch = max_steps_per_epoch
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.loss_fn = nn.CrossEntropyLoss()
        self.generator = torch.Generator().manual_seed(seed)
        self.timings: dict[str, float] = {"forward_backward": 0.0, "hooks": 0.0, "evaluation": 0.0}
        self.steps = 0
        self.epochs_done = 0
        self.history: list[EpochRecord] = []
        self.log: dict[str, Any] = {}
        self._regularizer = _hook(model, "regularization_loss")
        self._before = _hook(model, "before_step")
        self._before_takes_labels = self._before is not None and _takes_labels(self._before)
        self._after = _hook(model, "after_step")

    # ------------------------------------------------------------------ one epoch
    def run_epoch(self) -> tuple[float, float]:
        """One shuffled pass; returns (mean loss, training accuracy % on the masked batches)."""
        model = self.model
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        num_batches = math.ceil(self.data.train_x.shape[0] / self.batch_size)
        if self.max_steps_per_epoch is not None:
            num_batches = min(num_batches, self.max_steps_per_epoch)
        bar = None
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(total=num_batches, desc=f"epoch {self.epochs_done + 1}", leave=False,
                       unit="batch", dynamic_ncols=True)
        for i, (bx, by) in enumerate(self.data.batches(self.batch_size, self.generator)):
            if i >= num_batches:
                break
            t0 = time.perf_counter()
            if self._before is not None:
                if self._before_takes_labels:
                    self._before(bx, self.steps, by)
                else:
                    self._before(bx, self.steps)
            t1 = time.perf_counter()
            logits = model(bx)
            loss = self.loss_fn(logits, by)
            if self._regularizer is not None:
                loss = loss + self._regularizer()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            t2 = time.perf_counter()
            if self._after is not None:
                self._after(bx, self.steps)
            t3 = time.perf_counter()
            self.timings["forward_backward"] += t2 - t1
            self.timings["hooks"] += (t1 - t0) + (t3 - t2)
            self.steps += 1
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"the loss became {loss_value} at step {self.steps}; "
                                         "lower the learning rate or check the method's options")
            total_loss += loss_value * by.shape[0]
            correct += int((logits.detach().argmax(1) == by).sum())
            seen += by.shape[0]
            if bar is not None:
                bar.update(1)
                if i % 20 == 0:
                    postfix = {"loss": f"{total_loss / seen:.3f}", "acc": f"{100.0 * correct / seen:.1f}"}
                    extra = self.method_timings()
                    if "solve" in extra:
                        postfix["solve_ms"] = f"{1000 * extra['solve'] / max(self.steps, 1):.2f}"
                    bar.set_postfix(postfix)
        if bar is not None:
            bar.close()
        self.epochs_done += 1
        return total_loss / max(seen, 1), 100.0 * correct / max(seen, 1)

    def method_timings(self) -> dict[str, float]:
        fn = _hook(self.model, "timing_breakdown")
        return dict(fn()) if fn is not None else {}

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> float:
        t0 = time.perf_counter()
        acc = evaluate(self.model, x, y)
        self.timings["evaluation"] += time.perf_counter() - t0
        return acc

    def context(self) -> HarnessContext:
        return HarnessContext(data=self.data, optimizer=self.optimizer, epoch=self.epochs_done,
                              evaluate=self.evaluate, fit=self.fit, timings=self.timings, log=self.log)

    def fit(self, epochs: int) -> int:
        """Train ``epochs`` more epochs without early stopping (used by hooks such as MI retraining)."""
        for _ in range(epochs):
            loss, train_acc = self.run_epoch()
            val_acc = self.evaluate(self.data.val_x, self.data.val_y)
            self.history.append(EpochRecord(self.epochs_done, loss, train_acc, val_acc, 0.0,
                                            drop_rates(keep_masks(self.model))))
        return epochs


def train(model: nn.Module, data: DataSplits, *, epochs: int, batch_size: int = 32, lr: float = 0.01,
          seed: int = 0, patience: int | None = None, progress: bool = False,
          max_steps_per_epoch: int | None = None, lr_decay: str = "none",
          on_epoch: Callable[[EpochRecord], None] | None = None) -> RunResult:
    """Train ``model`` with Adam and early stopping on the validation split; return its metrics.

    The weights (and mask buffers) of the epoch with the best validation accuracy are restored
    before ``finish_training`` and the test evaluation. With ``patience`` set, training stops
    after that many epochs without a better validation accuracy. A model with a
    ``selectable(epoch)`` hook restricts both to the epochs it allows (e.g. SparseVD: after the
    KL warm-up); if it allows none, the last epoch's weights are kept.

    Args:
        model: the network built by a variant factory.
        data: train / validation / test splits.
        epochs: the maximum number of epochs.
        batch_size, lr, seed: mini-batch size, Adam learning rate, shuffling seed.
        patience: epochs without improvement before stopping (None: run all epochs).
        progress: tqdm bar per epoch on stderr.
        max_steps_per_epoch: cut epochs short (benchmarks, smoke tests).
        lr_decay: "none" (constant ``lr``) or "linear" (from ``lr`` down to ``lr / epochs`` in the
            last epoch, the schedule Sparse Variational Dropout was published with).
        on_epoch: called with each epoch's record (the CLI prints a line).

    Returns:
        A :class:`RunResult`.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1, got {patience}")
    if lr_decay not in LR_DECAYS:
        raise ValueError(f"lr_decay must be one of {LR_DECAYS}, got {lr_decay!r}")
    start = time.perf_counter()
    trainer = Trainer(model, data, batch_size=batch_size, lr=lr, seed=seed, progress=progress,
                      max_steps_per_epoch=max_steps_per_epoch)
    epoch_hook = _hook(model, "on_epoch_end")
    selectable = _hook(model, "selectable")
    best_val, best_epoch, best_state, stale = -math.inf, 0, None, 0
    for epoch in range(epochs):
        if lr_decay == "linear":
            for group in trainer.optimizer.param_groups:
                group["lr"] = lr * (1.0 - epoch / epochs)
        t0 = time.perf_counter()
        loss, train_acc = trainer.run_epoch()
        val_acc = trainer.evaluate(data.val_x, data.val_y) if data.val_x.shape[0] else train_acc
        if epoch_hook is not None:
            th = time.perf_counter()
            epoch_hook(trainer.epochs_done, trainer.context())
            trainer.timings["hooks"] += time.perf_counter() - th
        record = EpochRecord(trainer.epochs_done, loss, train_acc, val_acc, time.perf_counter() - t0,
                             drop_rates(keep_masks(model)))
        trainer.history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if selectable is not None and not selectable(trainer.epochs_done):
            continue
        if val_acc > best_val:
            best_val, best_epoch, stale = val_acc, trainer.epochs_done, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if patience is not None and stale >= patience:
                break
    if best_state is None:  # no selectable epoch: keep the last one as it is
        selection = "last"
        best_epoch = trainer.epochs_done
        best_val = trainer.history[-1].val_accuracy if trainer.history else math.nan
    else:
        selection = "best" if selectable is None else "best-selectable"
        model.load_state_dict(best_state)
        restore = _hook(model, "on_state_restored")
        if restore is not None:
            restore()
    finish = _hook(model, "finish_training")
    if finish is not None:
        th = time.perf_counter()
        finish(trainer.context())
        trainer.timings["hooks"] += time.perf_counter() - th
    t0 = time.perf_counter()
    test_acc, test_nll = evaluate_with_nll(model, data.test_x, data.test_y)
    trainer.timings["evaluation"] += time.perf_counter() - t0
    result = summarize(model, trainer, test_acc, best_val, best_epoch, time.perf_counter() - start, test_nll)
    result.selection = selection
    return result


def summarize(model: nn.Module, trainer: Trainer, test_acc: float, best_val: float, best_epoch: int,
              seconds: float, test_nll: float = math.nan) -> RunResult:
    """Collect the metrics of a finished run."""
    network = gated_network(model)
    sizes = list(getattr(model, "sizes", []))
    masks = keep_masks(model)
    rates = drop_rates(masks)
    counts_hook = _hook(model, "parameter_counts")
    total, remaining = 0, 0.0
    keep = [float(m.mean()) for m in masks] if masks else None
    if counts_hook is not None:
        total, rem = counts_hook()
        total, remaining = int(total), float(rem)
    elif network is not None:
        total, remaining = network.expected_parameter_counts(keep)
    elif len(sizes) >= 3:
        total, remaining = paper_parameter_counts(sizes, keep)
    total_exact, removed_exact_pct, basis = 0, 0.0, None
    if counts_hook is not None and total:
        total_exact, removed_exact_pct, basis = total, 100.0 * (1 - remaining / total), "pruned"
    elif masks and network is not None and is_deterministic(masks):
        counts = structured_counts(network, masks)
        total_exact = counts["params_full"]
        removed_exact_pct, basis = 100.0 * (1 - counts["params_pruned"] / total_exact), "pruned"
    elif masks and network is not None:
        total_exact, rem_expected = network.expected_parameter_counts(keep)
        removed_exact_pct, basis = 100.0 * (1 - rem_expected / total_exact), "eq6-expected"
    removed_pct = 100.0 * (1.0 - remaining / total) if total else 0.0
    ratio = total / remaining if remaining > 0 else math.inf
    timings = dict(trainer.timings)
    timings.update(trainer.method_timings())
    return RunResult(test_accuracy=test_acc, test_nll=test_nll, best_val_accuracy=best_val, best_epoch=best_epoch,
                     epochs_run=trainer.epochs_done, steps=trainer.steps, drop_rate_per_layer=rates,
                     params_total=total, params_remaining=remaining, params_removed_pct=removed_pct,
                     compression_ratio=ratio, params_total_exact=total_exact,
                     params_removed_pct_exact=removed_exact_pct, params_exact_basis=basis, seconds=seconds, timings=timings,
                     history=trainer.history, log=trainer.log)
