"""Small NetworkStats for the Ising energy tests."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from trainer.dropout.network_stats import NetworkStats


def stats_from_means(abars: Sequence[torch.Tensor], weights: Sequence[torch.Tensor],
                     biases: Sequence[torch.Tensor | None]) -> NetworkStats:
    """Stats whose only sample is the batch mean: what the mean-based energies (saliency,
    paper) read, without inventing a batch."""
    return NetworkStats([a.reshape(1, -1) for a in abars], list(weights), list(biases))


def random_stats(sizes: Sequence[int], batch: int = 9, seed: int = 0, activation: str = "sigmoid",
                 gate_gradients: bool = False) -> NetworkStats:
    """A random network's view: inputs in [0, 1], hidden activations in (0, 1) (or >= 0 with
    exact zeros for relu), weights and biases ~ N(0, 4), gate gradients ~ N(0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    acts = [torch.rand(batch, sizes[0], generator=gen)]
    for n in sizes[1:-1]:
        a = torch.rand(batch, n, generator=gen)
        if activation == "relu":
            a = torch.relu(a - 0.3)
        acts.append(a)
    weights = [torch.randn(b, a, generator=gen) * 2 for a, b in zip(sizes[:-1], sizes[1:])]
    biases: list[torch.Tensor | None] = [None] + [torch.randn(n, generator=gen) * 2 for n in sizes[1:-1]]
    grads = [torch.randn(batch, n, generator=gen) for n in sizes[:-1]] if gate_gradients else None
    return NetworkStats(acts, weights, biases, activation=activation, gate_gradients=grads)
