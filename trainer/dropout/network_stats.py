"""What an Ising energy may read about a network on one mini-batch, whatever its layers are.

The energies (``ising_energy``) never look at modules: a model (an MLP, whose units are neurons,
or a CNN, whose units are channels) describes itself as :class:`NetworkStats`, so one energy
serves every architecture. Layer numbering follows the paper: layer 0 is the input, layers 1..N
the hidden layers; the output layer is never a candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
