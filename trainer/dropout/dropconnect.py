"""DropConnect (Wan et al. 2013): drop individual weights rather than whole units.

While training, each weight of the layer is kept with probability ``1 - p`` and the kept ones
are scaled by ``1 / (1 - p)``, so the expected weight matrix is ``W``; biases are never dropped.
Inference uses the full ``W`` by default — the common simplified form. The paper's
moment-matching inference is ``inference="moment"``: each unit's pre-activation is taken as
Gaussian with the mean and variance of the masked sum, ``N(W x + b, p / (1 - p) (W^2)(x^2))``,
and the unit's output is the average of its activation over ``num_samples`` draws (a fixed
seed, so inference stays deterministic); the logits are the mean.

One mask is drawn per mini-batch and shared by its examples (the paper draws one per example);
that is what makes the layer a single matrix product, and across many steps every weight still
sees the intended drop rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import MLP
from .base import VariantSpec
from .registry import register

DEFAULT_P = 0.5
INFERENCE_MODES = ("mean", "moment")


def _check_rate(p: float) -> float:
    p = float(p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"DropConnect rate p must be in [0, 1), got {p}")
    return p


def dropconnect_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                       p: float = 0.5, training: bool = True,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """``F.linear`` with a fresh Bernoulli(1 - p) mask on ``weight``, scaled by ``1 / (1 - p)``.

    Args:
        x: inputs (batch, in_features).
        weight: (out_features, in_features).
        bias: (out_features,) or None; never masked.
        p: weight drop rate in [0, 1).
        training: full ``weight`` when False.
        generator: optional source of randomness.

    Raises:
        ValueError: ``p`` outside [0, 1).
    """
    p = _check_rate(p)
    if not training or p == 0.0:
        return F.linear(x, weight, bias)
    keep = torch.empty_like(weight).bernoulli_(1.0 - p, generator=generator)
    return F.linear(x, weight * keep / (1.0 - p), bias)


class DropConnectLinear(nn.Linear):
    """An ``nn.Linear`` whose weights are masked while training (full weights in ``eval()``).

    Example:
        >>> layer = DropConnectLinear(784, 100, p=0.5)
        >>> layer(torch.zeros(2, 784)).shape
        torch.Size([2, 100])
    """

    def __init__(self, in_features: int, out_features: int, p: float = DEFAULT_P, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.p = _check_rate(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropconnect_linear(x, self.weight, self.bias, self.p, self.training)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


class DropConnectMLP(MLP):
    """An MLP whose linear layers are :class:`DropConnectLinear`; the output layer's weights are
    dropped too, and the first layer's only with ``include_input`` (the input layer's outgoing
    weights are its connections). No unit is dropped, so the keep masks are all ones and
    nothing is removed at inference.
    """

    def __init__(self, sizes: list[int], p: float = DEFAULT_P, activation: str = "sigmoid",
                 include_input: bool = False, inference: str = "mean", num_samples: int = 64) -> None:
        p = _check_rate(p)
        if inference not in INFERENCE_MODES:
            raise ValueError(f"DropConnect inference must be one of {INFERENCE_MODES}, got {inference!r}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        layers = iter(range(len(sizes) - 1))

        def factory(fan_in: int, fan_out: int) -> nn.Module:
            layer = next(layers)
            return DropConnectLinear(fan_in, fan_out, p if (layer > 0 or include_input) else 0.0)

        super().__init__(sizes, activation, linear_factory=factory, include_input=include_input)
        self.p = p
        self.inference, self.num_samples = inference, int(num_samples)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.inference == "mean":
            return super().forward(x)
        return self.moment_matching_forward(x)

    @torch.no_grad()
    def moment_matching_forward(self, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """Wan et al.'s inference: Gaussian pre-activations, activations averaged over draws."""
        gen = torch.Generator(device=x.device).manual_seed(seed)
        h = x.flatten(1)
        for layer, linear in enumerate(self.linears):
            assert isinstance(linear, DropConnectLinear)
            mean = F.linear(h, linear.weight, linear.bias)
            if layer == len(self.activations):
                return mean  # logits: their mean
            if linear.p == 0.0:
                h = self.activations[layer](mean)
                continue
            var = linear.p / (1.0 - linear.p) * F.linear(h * h, linear.weight * linear.weight)
            noise = torch.randn((self.num_samples, *mean.shape), generator=gen, dtype=mean.dtype,
                                device=mean.device)
            h = self.activations[layer](mean + var.sqrt() * noise).mean(dim=0)
        return h

    def unit_keep_masks(self) -> list[torch.Tensor]:
        return [torch.ones(n) for n in self.sizes[:-1]]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}, inference={self.inference}, num_samples={self.num_samples}"


@register("dropconnect", options=("inference", "num_samples"))
def build(spec: VariantSpec) -> nn.Module:
    """Weight drop rate ``p`` (default 0.5) on the connections leaving every hidden layer and,
    with ``include_input``, those leaving the input; options ``inference`` (mean | moment) and
    ``num_samples`` (64, for moment matching); ``mode`` has no effect."""
    return DropConnectMLP(spec.sizes, DEFAULT_P if spec.p is None else float(spec.p),
                          spec.activation, spec.include_input,
                          inference=spec.option("inference", "mean", str),
                          num_samples=spec.option("num_samples", 64, int))
