"""Alpha dropout (Klambauer et al. 2017) for self-normalising networks: ``--dropout alpha``.

Plain dropout would break SELU's fixed point (zero mean, unit variance); ``nn.AlphaDropout``
sets dropped units to SELU's negative saturation value and applies an affine correction so
mean and variance are kept. It only makes sense with SELU units and LeCun-normal
initialisation, so this variant builds exactly that network (the ``activation`` of the spec is
overridden). Identity at inference. Its functional twin is
``torch.nn.functional.alpha_dropout``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models import MLP
from .base import VariantSpec
from .registry import register

DEFAULT_P = 0.1  # Klambauer et al. recommend 0.05-0.1; larger rates destabilise SELU nets.


class AlphaDropoutMLP(MLP):
    """A SELU MLP (LeCun-normal init) with ``nn.AlphaDropout(p)`` on every candidate layer."""

    def __init__(self, sizes: list[int], p: float = DEFAULT_P, include_input: bool = False) -> None:
        p = float(p)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"alpha dropout p must be in [0, 1), got {p}")
        super().__init__(sizes, "selu", include_input=include_input,
                         unit_dropout=lambda layer, n: nn.AlphaDropout(p))  # LeCun-normal init for SELU
        self.p = p

    def unit_keep_masks(self) -> list[torch.Tensor]:
        return [torch.full((n,), 1.0 - module.p) if isinstance(module, nn.AlphaDropout) else torch.ones(n)
                for module, n in zip(self.unit_modules, self.sizes)]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


@register("alpha")
def build(spec: VariantSpec) -> nn.Module:
    """SELU + LeCun normal + ``nn.AlphaDropout(p)``, ``p`` defaulting to 0.1; the spec's
    ``activation`` is overridden and ``mode`` has no effect."""
    return AlphaDropoutMLP(spec.sizes, DEFAULT_P if spec.p is None else float(spec.p), spec.include_input)
