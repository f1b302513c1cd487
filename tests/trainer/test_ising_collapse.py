"""The finding behind the default formulation: on a trained network the paper's literal energy
(eq. 5) prefers dropping most hidden units, the default energy does not."""

from __future__ import annotations

import numpy as np
import torch

from service.engine import anneal_da
from trainer.dropout import registry
from trainer.dropout.base import VariantSpec
from trainer.dropout.ising_energy import EnergyOptions, IsingLayout, QuboBuilder
from trainer.harness import train


def test_literal_energy_drops_the_hidden_layer_and_the_default_keeps_it(mnist_small) -> None:
    torch.manual_seed(0)
    net = registry.get("none")(VariantSpec(sizes=[784, 100, 100, 10]))
    train(net, mnist_small, epochs=1, seed=0)
    batch = mnist_small.train_x[:32]
    stats = net.network.network_stats(batch)
    layout = IsingLayout(net.sizes, include_input=True)
    ones = np.ones(layout.num_variables, dtype=np.uint8)
    kept = {}
    for energy in ("paper", "saliency"):
        problem = QuboBuilder(layout, EnergyOptions(energy=energy)).build(stats).problem
        state = anneal_da(problem, num_runs=4, num_iterations=200, moves="sweep", seed=0,
                          initial=ones, parallel=False).best_state
        assert problem.energy(state) <= problem.energy(ones)
        kept[energy] = float(state[layout.slice(1)].mean())
        if energy == "paper":
            # at all ones, dropping is favoured for most h1 units (positive local field)
            assert float((problem.local_fields(ones)[layout.slice(1)] > 0).mean()) > 0.6
    assert kept["paper"] < 0.6
    assert kept["saliency"] > 0.85
