"""The plain baseline: the same network with no dropout at all (``--dropout none``)."""

from __future__ import annotations

from torch import nn

from .base import VariantModel, VariantSpec, build_network
from .registry import register


@register("none")
def build(spec: VariantSpec) -> nn.Module:
    """No dropout; ``p``, ``mode`` and ``include_input`` have no effect."""
    return VariantModel(build_network(spec, include_input=False))
