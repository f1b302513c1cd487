"""Standard (inverted Bernoulli) dropout, Srivastava et al. 2014: ``--dropout dropout``.

Each unit is dropped with probability ``p`` while training and survivors are scaled by
``1 / (1 - p)``, so inference is the identity (``nn.Dropout``; its functional twin is
``torch.nn.functional.dropout``). The Ising-Dropout paper's baselines use ``p = 0.5`` on the
hidden layers, and on the input layer too with ``include_input``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models import MLP
from .base import VariantSpec
from .registry import register

DEFAULT_P = 0.5


class DropoutMLP(MLP):
    """An MLP with ``nn.Dropout`` on every candidate layer; each unit is kept ``1 - p`` of the time.

    The kept fractions feed the paper's drop-rate columns (its dropout rows count ``p`` of the
    units as dropped, e.g. 50 % and 6.26 % of parameters for 784-100-100-10).
    """

    def __init__(self, sizes: list[int], p: float = DEFAULT_P, activation: str = "sigmoid",
                 include_input: bool = False, p_input: float | None = None) -> None:
        p = float(p)
        p_input = p if p_input is None else float(p_input)
        for name, value in (("p", p), ("p_input", p_input)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"dropout {name} must be in [0, 1), got {value}")
        super().__init__(sizes, activation, include_input=include_input,
                         unit_dropout=lambda layer, n: nn.Dropout(p_input if layer == 0 else p))
        self.p = p
        self.p_input = p_input

    def unit_keep_masks(self) -> list[torch.Tensor]:
        return [torch.full((n,), 1.0 - module.p) if isinstance(module, nn.Dropout) else torch.ones(n)
                for module, n in zip(self.unit_modules, self.sizes)]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}, p_input={self.p_input}"


@register("dropout", options=("p_input",))
def build(spec: VariantSpec) -> nn.Module:
    """``p`` (default 0.5) on hidden layers and, with ``include_input``, on the input
    (option ``p_input`` overrides the input's rate; default the same ``p``). ``mode`` has no
    effect: random masks are never applied at inference."""
    p = DEFAULT_P if spec.p is None else float(spec.p)
    return DropoutMLP(spec.sizes, p, spec.activation, spec.include_input,
                      p_input=spec.option("p_input", None, float))
