"""One training step of a model with Ising-Dropout's per-step hooks, as the harness drives it."""

from __future__ import annotations

import torch
from torch import nn


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               step: int, after: bool = True) -> None:
    """``before_step`` (masks solved between steps), a cross-entropy step, then ``after_step``
    (the W* bookkeeping) unless ``after`` is False."""
    model.before_step(x, step)
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if after:
        model.after_step(x, step)
