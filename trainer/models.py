"""Multi-layer perceptrons with a per-unit dropout slot on the input and every hidden layer.

Every dropout variant shares this one network so that results differ only by the method: a
variant plugs in either per-unit modules (``unit_dropout``, e.g. Bernoulli or Ising masks) or its
own linear layers (``linear_factory``, e.g. DropConnect or Sparse Variational Dropout).

Layer numbering follows the Ising-Dropout paper: layer 0 is the input ``x``, layers 1..N the
hidden layers h1..hN, and the output layer is never masked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "selu": nn.SELU,
    "identity": nn.Identity,
}

LinearFactory = Callable[[int, int], nn.Module]
UnitDropoutFactory = Callable[[int, int], nn.Module | None]


def parse_sizes(text: str | Sequence[int]) -> list[int]:
    """``"784,100,100,10"`` -> ``[784, 100, 100, 10]``, with a clear error on bad input.

    Raises:
        ValueError: fewer than two layers, or a size that is not a positive integer.
    """
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            sizes = [int(p) for p in parts]
        except ValueError as exc:
            raise ValueError(f"architecture must be comma-separated integers, got {text!r}") from exc
    else:
        sizes = [int(s) for s in text]
    if len(sizes) < 2:
        raise ValueError(f"architecture needs at least an input and an output size, got {sizes}")
    if any(s < 1 for s in sizes):
        raise ValueError(f"every layer size must be >= 1, got {sizes}")
    return sizes


class MLP(nn.Module):
    """Fully connected network ``sizes[0] -> ... -> sizes[-1]`` returning logits.

    Args:
        sizes: layer sizes, input first, output last (e.g. ``[784, 100, 100, 10]``).
        activation: hidden-unit non-linearity: "sigmoid" (the paper), "relu", "selu", "identity".
        linear_factory: builds each linear-like layer from (in_features, out_features).
        unit_dropout: ``(layer_index, num_units) -> module or None``; called for the input layer
            (index 0, only when ``include_input``) and every hidden layer (1..N). The module
            receives that layer's activations (batch, num_units) and returns the same shape.
        include_input: whether the input layer gets a dropout slot.

    Attributes:
        linears: the linear-like layers in order (``linears[l]`` maps layer l to layer l+1).
        unit_modules: one entry per candidate layer 0..N (index 0 = input); ``nn.Identity`` where
            the factory returned None or the input is excluded.

    Example:
        >>> net = MLP([784, 100, 10], unit_dropout=lambda l, n: nn.Dropout(0.5) if l else None)
        >>> net(torch.zeros(2, 784)).shape
        torch.Size([2, 10])
    """

    def __init__(self, sizes: Sequence[int], activation: str = "sigmoid",
                 linear_factory: LinearFactory = nn.Linear,
                 unit_dropout: UnitDropoutFactory | None = None,
                 include_input: bool = False) -> None:
        super().__init__()
        self.sizes = parse_sizes(sizes)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.activation_name = activation
        self.include_input = bool(include_input)
        self.linears = nn.ModuleList(linear_factory(a, b) for a, b in zip(self.sizes[:-1], self.sizes[1:]))
        self.activations = nn.ModuleList(ACTIVATIONS[activation]() for _ in self.sizes[1:-1])
        modules: list[nn.Module] = []
        for layer in range(len(self.sizes) - 1):
            module = None
            if unit_dropout is not None and (layer > 0 or self.include_input):
                module = unit_dropout(layer, self.sizes[layer])
            modules.append(nn.Identity() if module is None else module)
        self.unit_modules = nn.ModuleList(modules)
        if activation == "selu":
            self.reset_lecun_normal()

    @property
    def num_hidden(self) -> int:
        return len(self.sizes) - 2

    def reset_lecun_normal(self) -> None:
        """LeCun-normal weights and zero biases, the initialisation SELU networks need."""
        for linear in self.linears:
            weight = getattr(linear, "weight", None)
            if isinstance(weight, torch.Tensor):
                nn.init.normal_(weight, 0.0, 1.0 / math.sqrt(weight.shape[1]))
            bias = getattr(linear, "bias", None)
            if isinstance(bias, torch.Tensor):
                nn.init.zeros_(bias)

    def layer_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unmasked activations of layers 0..N (input and hidden), for methods that inspect them.

        Uses the current weights without any dropout module, so it reads the network as
        ``W*`` holds it; runs under ``no_grad``.
        """
        acts = [x]
        with torch.no_grad():
            h = x
            for linear, act in zip(self.linears[:-1], self.activations):
                h = act(linear(h))
                acts.append(h)
        return acts

    def forward_gated(self, x: torch.Tensor, gates: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """Logits with multiplicative gates on the units in place of the dropout modules.

        ``gates[l]`` multiplies the units of layer l (0 = input .. N = last hidden), shape
        (batch, n_l) or (n_l,); None leaves the layer ungated. Gates of ones that require grad
        give each sample's derivative of its loss with respect to each unit's gate
        (``trainer.dropout.network_stats.per_sample_gate_gradients``).
        """
        if len(gates) != len(self.sizes) - 1:
            raise ValueError(f"need one gate (or None) per layer 0..{len(self.sizes) - 2}, got {len(gates)}")
        h = x.flatten(1)
        for layer, linear in enumerate(self.linears):
            gate = gates[layer]
            if gate is not None:
                h = h * gate
            h = linear(h)
            if layer < len(self.activations):
                h = self.activations[layer](h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for layer, linear in enumerate(self.linears):
            h = self.unit_modules[layer](h)
            h = linear(h)
            if layer < len(self.activations):
                h = self.activations[layer](h)
        return h

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, activation={self.activation_name}, include_input={self.include_input}"
