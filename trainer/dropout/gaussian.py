"""Gaussian (multiplicative) dropout: activations times xi ~ N(1, p / (1 - p)) while training.

The noise variance p / (1 - p) is that of inverted Bernoulli dropout with drop rate p, so the
two regularise alike at the same ``p`` (Srivastava et al. 2014, section 10); the mean is one,
so inference is the identity. On a (batch, C, H, W) layer one factor multiplies a whole
channel (per sample), the channel being the unit. torch has no built-in for it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import VariantModel, VariantSpec, build_network
from .registry import register

DEFAULT_P = 0.5


def _check_rate(p: float) -> float:
    p = float(p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"Gaussian dropout rate p must be in [0, 1), got {p}")
    return p


def gaussian_dropout(x: torch.Tensor, p: float = 0.5, training: bool = True,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Multiply each unit of ``x`` by fresh N(1, p / (1 - p)) noise when ``training``.

    Args:
        x: activations (batch, n) or (batch, C, ...): one factor per feature or per channel.
        p: the equivalent Bernoulli drop rate, in [0, 1).
        training: identity when False.
        generator: optional source of randomness (the global one otherwise).

    Returns:
        A tensor shaped like ``x``; gradients flow through the noise as a constant factor.

    Raises:
        ValueError: ``p`` outside [0, 1).
    """
    p = _check_rate(p)
    if not training or p == 0.0:
        return x
    std = math.sqrt(p / (1.0 - p))
    shape = x.shape if x.dim() <= 2 else (*x.shape[:2], *([1] * (x.dim() - 2)))
    noise = torch.randn(shape, dtype=x.dtype, device=x.device, generator=generator)
    return x * (1.0 + std * noise)


class GaussianDropout(nn.Module):
    """Module twin of :func:`gaussian_dropout`; identity in ``eval()``.

    Example:
        >>> layer = GaussianDropout(0.5)
        >>> layer(torch.ones(4, 3)).shape
        torch.Size([4, 3])
    """

    def __init__(self, p: float = DEFAULT_P) -> None:
        super().__init__()
        self.p = _check_rate(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gaussian_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, variance={self.p / (1.0 - self.p):.4g}"


@register("gaussian")
def build(spec: VariantSpec) -> nn.Module:
    """Multiplicative N(1, p / (1 - p)) noise, ``p`` defaulting to 0.5 (variance 1), on the
    hidden layers and, with ``include_input``, the input; ``mode`` has no effect."""
    p = _check_rate(DEFAULT_P if spec.p is None else spec.p)
    return VariantModel(build_network(spec, gates=lambda layer, n: GaussianDropout(p)))
