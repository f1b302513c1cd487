"""What an Ising energy may read about a network on one mini-batch, whatever its layers are.

The energies (``ising_energy``) never look at modules: a model (an MLP, whose units are neurons,
or a CNN, whose units are channels) describes itself as :class:`NetworkStats`, so one energy
serves every architecture. Layer numbering follows the paper: layer 0 is the input, layers 1..N
the hidden layers; the output layer is never a candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class NetworkStats:
    """One mini-batch's view of the network's units, layer by layer (0 = input .. N = last hidden).

    Attributes:
        activations: ``activations[l]`` is (batch, n_l): each sample's output of layer l's units
            after the non-linearity (for channels, the mean over spatial positions), read with the
            current weights and no masks.
        weights: ``weights[l]`` is (n_{l+1}, n_l), the effective connection from unit i of layer l
            to unit j of layer l + 1 (for convolutions, the kernel summed over its spatial
            positions; across a flatten, summed over the positions a channel feeds); the last
            entry maps layer N to the output.
        biases: ``biases[l]`` is (n_l,) for hidden layers, None for the input.
        activation: the hidden non-linearity's name ("sigmoid", "relu", ...), so an energy can
            say what "saturated" means.
        gate_gradients: ``gate_gradients[l]`` is (batch, n_l): each sample's derivative of its
            loss with respect to a multiplicative gate on each unit of layer l (all gates at 1);
            None unless the energy asked for it (it costs a backward pass).
    """

    activations: list[torch.Tensor]
    weights: list[torch.Tensor]
    biases: list[torch.Tensor | None]
    activation: str = "sigmoid"
    gate_gradients: list[torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.activations) or len(self.biases) != len(self.activations):
            raise ValueError("activations, weights and biases need one entry per layer 0..N")
        for layer, (a, w) in enumerate(zip(self.activations, self.weights)):
            if a.dim() != 2 or w.dim() != 2 or w.shape[1] != a.shape[1]:
                raise ValueError(f"layer {layer}: activations (batch, n_l) and weights (n_l+1, n_l) "
                                 f"disagree: {tuple(a.shape)} vs {tuple(w.shape)}")

    @property
    def sizes(self) -> list[int]:
        """Units per layer 0..N."""
        return [int(a.shape[1]) for a in self.activations]

    def mean_activations(self) -> list[torch.Tensor]:
        """The batch means a-bar of every layer (what the paper's energy reads)."""
        return [a.mean(0) for a in self.activations]


#: ``forward_gated(x, gates) -> logits``: a network run with one multiplicative gate (or None)
#: per layer 0..N, as ``MLP.forward_gated``.
GatedForward = Callable[[torch.Tensor, Sequence[torch.Tensor | None]], torch.Tensor]


def per_sample_gate_gradients(forward_gated: GatedForward, x: torch.Tensor, y: torch.Tensor,
                              sizes: Sequence[int]) -> list[torch.Tensor]:
    """Every sample's derivative of its own cross-entropy with respect to every unit's gate.

    Each layer's units are multiplied by a (batch, n_l) tensor of ones that requires grad. The
    gate of unit u for sample b only reaches sample b's loss, so one backward pass of the summed
    per-sample losses gives d loss_b / d gate_bu exactly for every b and u at once (no per-sample
    loop, no vmap). The parameters' ``.grad`` are left untouched.

    Args:
        forward_gated: the network with gates, e.g. ``mlp.forward_gated``.
        x: (batch, ...) inputs; y: (batch,) class labels.
        sizes: units per gated layer 0..N.

    Returns:
        ``grads[l]`` of shape (batch, sizes[l]).
    """
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{x.shape[0]} samples but {y.shape[0]} labels")
    batch = x.shape[0]
    gates = [torch.ones(batch, int(n), dtype=x.dtype, device=x.device, requires_grad=True)
             for n in sizes]
    with torch.enable_grad():
        logits = forward_gated(x, list(gates))
        loss = nn.functional.cross_entropy(logits, y, reduction="sum")
        grads = torch.autograd.grad(loss, gates)
    return [g.detach() for g in grads]


def mlp_network_stats(mlp: Any, x: torch.Tensor, y: torch.Tensor | None = None,
                      gate_gradients: bool = False) -> NetworkStats:
    """The :class:`NetworkStats` of a ``trainer.models.MLP`` on one mini-batch (units = neurons).

    Activations are read without masks (``layer_activations``: the network as W* holds it);
    weights and biases are the linear layers' own, detached.

    Args:
        mlp: an ``MLP`` (``linears``, ``layer_activations``, ``forward_gated``, ``sizes``).
        x: the mini-batch; y: its labels (needed for ``gate_gradients``).
        gate_gradients: also compute the per-sample gate gradients (one more forward and
            backward pass).

    Raises:
        ValueError: ``gate_gradients`` without labels.
    """
    flat = x.flatten(1)
    activations = [a.detach() for a in mlp.layer_activations(flat)]
    weights = [lin.weight.detach() for lin in mlp.linears]
    biases: list[torch.Tensor | None] = [None] + [
        None if lin.bias is None else lin.bias.detach() for lin in mlp.linears[:-1]]
    grads = None
    if gate_gradients:
        if y is None:
            raise ValueError("gate gradients need the mini-batch's labels")
        grads = per_sample_gate_gradients(mlp.forward_gated, flat, y, mlp.sizes[:-1])
    return NetworkStats(activations, weights, biases, activation=str(mlp.activation_name),
                        gate_gradients=grads)
