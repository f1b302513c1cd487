"""The plain baseline: the same MLP with no dropout at all (``--dropout none``)."""

from __future__ import annotations

import torch
from torch import nn

from ..models import MLP
from .base import VariantSpec
from .registry import register


class PlainMLP(MLP):
    """An MLP whose every unit is always kept."""

    def unit_keep_masks(self) -> list[torch.Tensor]:
        return [torch.ones(n) for n in self.sizes[:-1]]


@register("none")
def build(spec: VariantSpec) -> nn.Module:
    """No dropout; ``p``, ``mode`` and ``include_input`` have no effect."""
    return PlainMLP(spec.sizes, spec.activation)
