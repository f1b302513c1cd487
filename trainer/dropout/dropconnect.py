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
sees the intended drop rate. Convolutions get the same treatment (:class:`DropConnectConv2d`:
each kernel weight is dropped, for the whole mini-batch), so the variant runs on the MLP and
the CNN alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import Connections
from .base import VariantModel, VariantSpec, build_network
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


class DropConnectConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` whose kernel weights are masked while training (full weights in ``eval()``).

    Example:
        >>> layer = DropConnectConv2d(6, 16, 5, p=0.5)
        >>> layer(torch.zeros(2, 6, 14, 14)).shape
        torch.Size([2, 16, 10, 10])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, p: float = DEFAULT_P,
                 padding: int = 0) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=padding)
        self.p = _check_rate(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return super().forward(x)
        keep = torch.empty_like(self.weight).bernoulli_(1.0 - self.p)
        return self._conv_forward(x, self.weight * keep / (1.0 - self.p), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


class DropConnectConnections(Connections):
    """DropConnect layers with rate ``p``; the first connection (leaving the input) only with
    ``include_input``, the output layer's too (its weights leave the last hidden layer)."""

    def __init__(self, p: float, include_input: bool) -> None:
        self.p, self.include_input = _check_rate(p), bool(include_input)

    def rate(self, index: int) -> float:
        return self.p if (index > 0 or self.include_input) else 0.0

    def linear(self, index: int, in_features: int, out_features: int) -> nn.Module:
        return DropConnectLinear(in_features, out_features, self.rate(index))

    def conv2d(self, index: int, in_channels: int, out_channels: int, kernel_size: int,
               padding: int) -> nn.Module:
        return DropConnectConv2d(in_channels, out_channels, kernel_size, self.rate(index), padding)


def connection_moments(connection: nn.Module, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, variance) of a DropConnect layer's pre-activations over its weight masks."""
    p = connection.p
    if isinstance(connection, DropConnectConv2d):
        mean = connection._conv_forward(h, connection.weight, connection.bias)
        square = connection._conv_forward(h * h, connection.weight * connection.weight, None)
    else:
        mean = F.linear(h, connection.weight, connection.bias)
        square = F.linear(h * h, connection.weight * connection.weight)
    return mean, p / (1.0 - p) * square


class DropConnect(VariantModel):
    """A network whose connections are :class:`DropConnectLinear` / :class:`DropConnectConv2d`.

    No unit is dropped, so the keep masks are all ones and nothing is removed at inference.
    ``inference="moment"`` replaces the eval forward by Wan et al.'s moment matching.
    """

    def __init__(self, spec: VariantSpec, p: float = DEFAULT_P, inference: str = "mean",
                 num_samples: int = 64) -> None:
        p = _check_rate(p)
        if inference not in INFERENCE_MODES:
            raise ValueError(f"DropConnect inference must be one of {INFERENCE_MODES}, got {inference!r}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        super().__init__(build_network(spec, connections=DropConnectConnections(p, spec.include_input),
                                       include_input=False))
        self.p = p
        self.inference, self.num_samples = inference, int(num_samples)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.inference == "mean":
            return self.network(x)
        return self.moment_matching_forward(x)

    @torch.no_grad()
    def moment_matching_forward(self, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """Wan et al.'s inference: Gaussian pre-activations, activations averaged over draws."""
        net = self.network
        gen = torch.Generator(device=x.device).manual_seed(seed)
        h = net.prepare(x)
        last = len(net.connections) - 1
        for layer, connection in enumerate(net.connections):
            h = net.route(layer, net.gates[layer](h))
            if layer == last:
                return F.linear(h, connection.weight, connection.bias)  # logits: their mean
            if connection.p == 0.0:
                h = net.activations[layer](connection(h))
                continue
            mean, var = connection_moments(connection, h)
            noise = torch.randn((self.num_samples, *mean.shape), generator=gen, dtype=mean.dtype,
                                device=mean.device)
            h = net.activations[layer](mean + var.sqrt() * noise).mean(dim=0)
        return h

    def train_weight_drop_rates(self) -> list[float]:
        """Each connection's weight drop rate while training (0 at inference)."""
        return [float(c.p) for c in self.network.connections]

    def extra_repr(self) -> str:
        return f"p={self.p}, inference={self.inference}, num_samples={self.num_samples}"


@register("dropconnect", options=("inference", "num_samples"))
def build(spec: VariantSpec) -> nn.Module:
    """Weight drop rate ``p`` (default 0.5) on the connections leaving every hidden layer and,
    with ``include_input``, those leaving the input; options ``inference`` (mean | moment) and
    ``num_samples`` (64, for moment matching); ``mode`` has no effect."""
    return DropConnect(spec, DEFAULT_P if spec.p is None else float(spec.p),
                       inference=spec.option("inference", "mean", str),
                       num_samples=spec.option("num_samples", 64, int))
