"""DropNeuron (Pan, Dong & Guo 2016): group-lasso regularisers that remove whole neurons.

Two regularisers, one group per neuron (``W`` is ``nn.Linear``'s ``[out, in]`` weight):

- ``li`` (incoming): ``sum_j ||W[j, :]||_2 = W.norm(dim=1).sum()`` drives all weights *into* a
  unit of the next layer to zero;
- ``lo`` (outgoing): ``sum_i ||W[:, i]||_2 = W.norm(dim=0).sum()`` drives all weights *out of*
  a unit of this layer to zero.

The cost is ``CE + lambda_in * li + lambda_out * lo (+ l1 * |W|_1)`` over every layer (the
reference code writes the per-layer factor as ``0.1 * lambda``; here the factor given *is* the
per-layer coefficient), biases excluded. After training, weights with ``|w| < 0.01`` are pruned
with ``torch.nn.utils.prune``; a neuron is removed when all its incoming or all its outgoing
weights are zero. Removal is carried through until nothing changes: a unit without outgoing
weights loses its incoming weights and bias; a unit without incoming weights is a constant
``f(b)``, folded into the next layer's bias before its outgoing weights go — so the pruned
network computes exactly what the thresholded one did.

On a CNN a group is a channel: ``li`` takes the norm of everything entering a channel (its
kernels), ``lo`` of everything leaving it (its slices of the next kernels, or across the flatten
its block of the first fc layer's columns). The input pixels of a CNN share conv 1's kernel, so
no weight belongs to one pixel: they get no ``lo`` group and are never removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn
from torch.nn.utils import prune

from ..models import GatedNetwork
from .base import HarnessContext, VariantModel, VariantSpec, build_network
from .registry import register

DEFAULT_LAMBDA_IN = 1e-4
DEFAULT_LAMBDA_OUT = 1e-4
DEFAULT_THRESHOLD = 0.01
# With lambda 1e-4 each, MNIST 784-300-100-10, ReLU, Adam 1e-3 decayed linearly over 15 epochs
# (--lr-decay linear): 98.11 % at 10.6x; l1 1e-5 instead: 97.85 % at 6.8x.
DEFAULT_L1 = 2e-5


def incoming_group_norm(weight: torch.Tensor) -> torch.Tensor:
    """``li``: the sum over output units of the L2 norm of their incoming weights (rows)."""
    return weight.norm(dim=1).sum()


def outgoing_group_norm(weight: torch.Tensor) -> torch.Tensor:
    """``lo``: the sum over input units of the L2 norm of their outgoing weights (columns)."""
    return weight.norm(dim=0).sum()


def group_regularizer(weights: Sequence[torch.Tensor], lambda_in: float, lambda_out: float,
                      l1: float = 0.0, unit_views: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
    """``sum_layers lambda_in * li + lambda_out * lo + l1 * |W|_1`` (a non-negative scalar).

    Args:
        weights: each layer's weight, ``[out, in]`` or a kernel ``[out, in, k, k]`` (a row group
            is everything entering one output unit or channel).
        lambda_in, lambda_out, l1: the coefficients.
        unit_views: for kernels and flattens, each weight as ``(n_out, n_in, positions)``
            (:meth:`trainer.models.GatedNetwork.unit_view`): the column group of input unit i
            is ``[:, i, :]``; an entry None has no column groups. None: 2-d weights, columns.
    """
    total = weights[0].new_zeros(())
    for index, w in enumerate(weights):
        if lambda_in:
            total = total + lambda_in * incoming_group_norm(w if w.dim() == 2 else w.flatten(1))
        if lambda_out:
            view = None if unit_views is None else unit_views[index]
            if unit_views is None or (view is not None and view.shape[2] == 1 and w.dim() == 2):
                total = total + lambda_out * outgoing_group_norm(w)
            elif view is not None:
                total = total + lambda_out * view.transpose(0, 1).reshape(view.shape[1], -1).norm(dim=1).sum()
        if l1:
            total = total + l1 * w.abs().sum()
    return total


class ThresholdPruning(prune.BasePruningMethod):
    """Unstructured pruning of every entry with ``|w| < threshold`` (a torch pruning method).

    Example:
        >>> layer = nn.Linear(3, 2)
        >>> _ = ThresholdPruning.apply(layer, "weight", threshold=0.5)
        >>> bool(((layer.weight == 0) | (layer.weight.abs() >= 0.5)).all())
        True
    """

    PRUNING_TYPE = "unstructured"

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        if not threshold >= 0.0:
            raise ValueError(f"pruning threshold must be >= 0, got {threshold}")
        self.threshold = float(threshold)

    def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        return default_mask * (t.abs() >= self.threshold).to(default_mask.dtype)


def _dead_once(weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    dead = []
    for layer, w in enumerate(weights):
        gone = (w == 0).all(dim=0)
        if layer > 0:
            gone = gone | (weights[layer - 1] == 0).all(dim=1)
        dead.append(gone)
    return dead


def live_weights(weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The weights that still matter once removable units are gone, to a fixed point.

    A unit whose outgoing column or (hidden) incoming row is all zero is removed with all its
    weights; that can strand further units, so the rule repeats until nothing changes. (A unit
    with incoming weights but none outgoing is dead; one with outgoing weights but no incoming
    ones is a constant, which a pruned network folds into the next layer's bias.)
    """
    live = [w.detach().clone() for w in weights]
    while True:
        dead = _dead_once(live)
        changed = False
        for layer, gone in enumerate(dead):
            if not bool(gone.any()):
                continue
            if bool((live[layer][:, gone] != 0).any()):
                live[layer][:, gone] = 0
                changed = True
            if layer > 0 and bool((live[layer - 1][gone, :] != 0).any()):
                live[layer - 1][gone, :] = 0
                changed = True
        if not changed:
            return live


def dead_units(weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """For layers 0..N (input and hidden), which units are removable (bool per unit).

    Unit ``i`` of layer ``l`` is dead when its outgoing column ``weights[l][:, i]`` is all zero or,
    for hidden layers, its incoming row ``weights[l - 1][i, :]`` is — after removing every
    other dead unit's weights (:func:`live_weights`).
    """
    return _dead_once(live_weights(weights))


def connectivity(network: GatedNetwork, weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Unit-to-unit ``(n_{l+1}, n_l)`` matrices, non-zero where any weight connects the two units."""
    return [network.effective_weight(layer, w.detach().abs()) for layer, w in enumerate(weights)]


def network_dead_units(network: GatedNetwork, weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """:func:`dead_units` for any gated network (channels of kernels, blocks across a flatten)."""
    return dead_units(connectivity(network, weights))


def network_parameter_counts(network: GatedNetwork, weights: Sequence[torch.Tensor]) -> tuple[int, int]:
    """(all weights and biases, the non-zero weights between live units plus the biases of live
    units and of the output), live units as :func:`network_dead_units` finds them.

    The bias of a hidden unit is charged only while the unit is alive; output biases always.
    """
    biases = [getattr(c, "bias", None) for c in network.connections]
    total = sum(w.numel() + (0 if b is None else b.numel()) for w, b in zip(weights, biases))
    dead = network_dead_units(network, weights)
    remaining = 0
    for layer, w in enumerate(weights):
        live = w.detach().clone()
        view = network.unit_view(layer, live)
        if view is not None:
            view[:, dead[layer], :] = 0
        if layer + 1 < len(dead):
            live.view(live.shape[0], -1)[dead[layer + 1], :] = 0
        remaining += int(torch.count_nonzero(live))
        bias = biases[layer]
        if bias is not None:
            remaining += int((~dead[layer + 1]).sum()) if layer + 1 < len(dead) else bias.numel()
    return total, remaining


def prune_and_remove_units(network: GatedNetwork, threshold: float = DEFAULT_THRESHOLD) -> None:
    """Threshold-prune every connection's weight, then remove dead units until nothing changes.

    Pruning uses :class:`ThresholdPruning` (masks stay attached as ``weight_mask`` buffers, so
    further training cannot revive a pruned weight); removing a unit adds to those masks with
    ``prune.custom_from_mask`` and folds constant units into the next bias. A constant channel
    feeds the next layer ``sum(kernel) x constant``, exact where that layer has no padding (as
    in :class:`trainer.models.LeNet5`).
    """
    connections = list(network.connections)
    for connection in connections:
        ThresholdPruning.apply(connection, "weight", threshold=threshold)
    with torch.no_grad():
        while True:
            changed = False
            for layer in range(1, len(connections)):
                upstream, downstream = connections[layer - 1], connections[layer]
                rows = upstream.weight.view(upstream.weight.shape[0], -1)
                view = network.unit_view(layer, downstream.weight)
                assert view is not None, "only the input layer's units share weights"
                no_in = (rows == 0).all(dim=1)
                no_out = (view == 0).all(dim=2).all(dim=0)
                # A unit with no incoming weights outputs the constant f(bias): fold it forward.
                fold = no_in & ~no_out
                if bool(fold.any()):
                    activation = network.activations[layer - 1]
                    const = activation(upstream.bias[fold]) if upstream.bias is not None else \
                        activation(torch.zeros(int(fold.sum())))
                    if downstream.bias is not None:
                        downstream.bias.add_(view[:, fold, :].sum(2) @ const)
                    mask = torch.ones_like(downstream.weight)
                    mask_view = network.unit_view(layer, mask)
                    assert mask_view is not None
                    mask_view[:, fold, :] = 0.0
                    prune.custom_from_mask(downstream, "weight", mask)
                    changed = True
                # A unit with no outgoing weights is useless: drop its incoming weights and bias.
                strip = no_out & (rows != 0).any(dim=1)
                if bool(strip.any()):
                    mask = torch.ones_like(upstream.weight)
                    mask.view(mask.shape[0], -1)[strip, :] = 0.0
                    prune.custom_from_mask(upstream, "weight", mask)
                    changed = True
                if upstream.bias is not None:
                    upstream.bias[no_out | no_in] = 0.0
            if not changed:
                break


class DropNeuron(VariantModel):
    """A network trained with the li/lo regularisers and threshold-pruned after training.

    Args:
        spec: the network (``model``, ``sizes``, ``activation``); no gates.
        lambda_in: coefficient of ``li`` on every layer.
        lambda_out: coefficient of ``lo`` on every layer.
        l1: L1 coefficient beside the group terms (the paper's MNIST run adds 1e-4; default 2e-5).
        threshold: prune ``|w| <`` this after training (0.01).
        select_from: the first epoch (epochs completed) that best-epoch restoration and early
            stopping may consider; None (default): none, the last epoch is kept, since the group
            norms prune more the longer they act and an early "best" epoch would discard that.
    """

    def __init__(self, spec: VariantSpec, lambda_in: float = DEFAULT_LAMBDA_IN,
                 lambda_out: float = DEFAULT_LAMBDA_OUT, l1: float = DEFAULT_L1,
                 threshold: float = DEFAULT_THRESHOLD, select_from: int | None = None) -> None:
        if select_from is not None and select_from < 1:
            raise ValueError(f"DropNeuron select_from must be >= 1 epoch, got {select_from}")
        for name, value in (("lambda_in", lambda_in), ("lambda_out", lambda_out), ("l1", l1),
                            ("threshold", threshold)):
            if not (value >= 0.0 and value < float("inf")):
                raise ValueError(f"DropNeuron {name} must be a finite number >= 0, got {value}")
        super().__init__(build_network(spec, include_input=False))
        self.lambda_in, self.lambda_out, self.l1 = float(lambda_in), float(lambda_out), float(l1)
        self.threshold = float(threshold)
        self.select_from = select_from
        self.pruned = False

    def weights(self) -> list[torch.Tensor]:
        """Each connection's current weight (the pruned one once pruning is attached)."""
        return [cast(torch.Tensor, connection.weight) for connection in self.network.connections]

    def regularization_loss(self) -> torch.Tensor:
        weights = self.weights()
        views = [self.network.unit_view(layer, w) for layer, w in enumerate(weights)]
        return group_regularizer(weights, self.lambda_in, self.lambda_out, self.l1, views)

    def selectable(self, epoch: int) -> bool:
        """Whether the weights after ``epoch`` completed epochs may be restored as the best ones:
        only from ``select_from`` on (never by default, so the last, sparsest epoch is kept)."""
        return self.select_from is not None and epoch >= self.select_from

    def finish_training(self, context: HarnessContext) -> None:
        """Prune ``|w| < threshold``, remove dead units, and log what went."""
        self.prune()
        total, remaining = self.parameter_counts()
        dead = network_dead_units(self.network, self.weights())
        context.log["dropneuron"] = {
            "threshold": self.threshold,
            "units_removed_per_layer": [int(d.sum()) for d in dead],
            "units_per_layer": [int(d.numel()) for d in dead],
            "weights_kept_per_layer": [int(torch.count_nonzero(w)) for w in self.weights()],
            "weights_per_layer": [int(w.numel()) for w in self.weights()],
            "params_total": total,
            "params_remaining": remaining,
        }

    def prune(self) -> None:
        """Apply threshold pruning and unit removal once (idempotent)."""
        if self.pruned:
            return
        prune_and_remove_units(self.network, self.threshold)
        self.pruned = True

    def unit_keep_masks(self) -> list[torch.Tensor]:
        """Units alive; before pruning, a preview of what pruning at the threshold would leave."""
        weights = [w.detach() for w in self.weights()]
        if not self.pruned:
            weights = [w * (w.abs() >= self.threshold) for w in weights]
        return [(~d).float() for d in network_dead_units(self.network, weights)]

    def parameter_counts(self) -> tuple[int, int]:
        return network_parameter_counts(self.network, [w.detach() for w in self.weights()])

    def extra_repr(self) -> str:
        return (f"lambda_in={self.lambda_in}, lambda_out={self.lambda_out}, "
                f"l1={self.l1}, threshold={self.threshold}, select_from={self.select_from}")


@register("dropneuron", options=("lambda_in", "lambda_out", "l1", "threshold", "select_from"))
def build(spec: VariantSpec) -> nn.Module:
    """Options ``lambda_in``, ``lambda_out`` (1e-4 each), ``l1`` (2e-5), ``threshold`` (0.01),
    ``select_from`` (none: the last epoch is kept rather than the best validation epoch);
    ``p``, ``mode`` and ``include_input`` have no effect (input pixels are removed through
    ``lo`` on the first layer)."""
    return DropNeuron(spec, lambda_in=spec.option("lambda_in", DEFAULT_LAMBDA_IN, float),
                      lambda_out=spec.option("lambda_out", DEFAULT_LAMBDA_OUT, float),
                      l1=spec.option("l1", DEFAULT_L1, float),
                      threshold=spec.option("threshold", DEFAULT_THRESHOLD, float),
                      select_from=spec.option("select_from", None, int))
