"""Standard (inverted Bernoulli) dropout, Srivastava et al. 2014: ``--dropout dropout``.

Each unit is dropped with probability ``p`` while training and survivors are scaled by
``1 / (1 - p)``, so inference is the identity. On a ``(batch, n)`` layer this is ``nn.Dropout``
exactly; on ``(batch, C, H, W)`` whole channels are dropped per sample (``nn.Dropout2d``'s
rule), so a channel is the unit, as in the keep masks. The Ising-Dropout paper's baselines use
``p = 0.5`` on the hidden layers, and on the input layer too with ``include_input``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import VariantModel, VariantSpec, build_network
from .registry import register

DEFAULT_P = 0.5


def unit_dropout(h: torch.Tensor, p: float = 0.5, training: bool = True) -> torch.Tensor:
    """Inverted dropout of the units along dim 1: features of (batch, n), channels of (batch, C, ...).

    Raises:
        ValueError: ``p`` outside [0, 1).
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout p must be in [0, 1), got {p}")
    if h.dim() <= 2:
        return F.dropout(h, p, training)
    keep = F.dropout(h.new_ones(*h.shape[:2], *([1] * (h.dim() - 2))), p, training)
    return h * keep


class UnitDropout(nn.Dropout):
    """``nn.Dropout`` that drops whole channels of a (batch, C, H, W) input (module twin of
    :func:`unit_dropout`); identity in ``eval()``.

    Example:
        >>> UnitDropout(0.5)(torch.ones(2, 3, 4, 4)).flatten(2).std(2).max().item()
        0.0
    """

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return unit_dropout(h, self.p, self.training)

    def unit_keep_mask(self, num_units: int) -> torch.Tensor:
        return torch.full((num_units,), 1.0 - self.p)


def _check_rate(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"dropout {name} must be in [0, 1), got {value}")
    return value


@register("dropout", options=("p_input",))
def build(spec: VariantSpec) -> nn.Module:
    """``p`` (default 0.5) on hidden layers and, with ``include_input``, on the input
    (option ``p_input`` overrides the input's rate; default the same ``p``). ``mode`` has no
    effect: random masks are never applied at inference."""
    p = _check_rate("p", DEFAULT_P if spec.p is None else spec.p)
    p_input = _check_rate("p_input", spec.option("p_input", p, float))
    return VariantModel(build_network(spec, gates=lambda layer, n: UnitDropout(p_input if layer == 0 else p)))
