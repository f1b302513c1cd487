"""Structured pruning baselines at the Ising study's per-layer counts: ``--dropout prune-magnitude``
and ``--dropout prune-taylor``.

Both remove whole units (input pixels with ``include_input``, hidden units or channels) so that
each candidate layer keeps exactly K_l = round(keep_ratio_l x n_l) units, the counts the Ising arms
keep, on any ``GatedNetwork`` (MLP or CNN).

Schedule (one shot, then fine-tuning, inside the run's epoch budget): the network trains dense for
``prune_epoch`` epochs (default 1); at the end of that epoch each layer keeps its K_l best-scored
units, the rest are masked for good (in training and at inference), and the remaining epochs
fine-tune the pruned network. Best-epoch selection considers only epochs after the pruning
(``selectable``), so the reported network is always the pruned one.

Scores, per unit i of layer l:

``magnitude``
    the L1 norm of its outgoing weights, sum_j |W_l[j, i]| (for a channel, over every kernel
    position it feeds; for pixels under a convolution, which share their kernel, the magnitude
    of the effective weight), read at the pruning point.
``taylor`` (Molchanov et al., ICLR 2017)
    the first-order Taylor estimate of the loss change when the unit is removed,
    (1/B) sum_b |(1/M) sum_m a_bim dL/da_bim| (their eq. 8: M positions of a channel, 1 for a dense
    unit, averaged over the examples), accumulated over the mini-batches of the epoch before pruning (the
    gradients come from the training step's own backward pass, no extra pass).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models import unit_broadcast, unit_mean
from .base import VariantModel, VariantSpec, build_network
from .registry import register

CRITERIA = ("magnitude", "taylor")
OPTIONS = ("keep_ratio", "prune_epoch")
DEFAULT_KEEP_RATIO = 0.5


class PruneGate(nn.Module):
    """A unit's 0/1 mask (a buffer), applied in training and inference; while ``collect`` is on it
    accumulates the Taylor score mean_b |a_bi dL/da_bi| of its units from the backward pass."""

    def __init__(self, num_units: int) -> None:
        super().__init__()
        self.register_buffer("mask", torch.ones(num_units))
        self.register_buffer("taylor", torch.zeros(num_units))
        self.collect = False

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = h * unit_broadcast(self.mask, h)
        if self.collect and self.training:
            if not out.requires_grad:  # the input layer: nothing upstream needs a gradient
                out = out.detach().requires_grad_(True)
            values = out.detach()

            def accumulate(grad: torch.Tensor) -> None:
                self.taylor += unit_mean(values * grad).abs().mean(0)

            out.register_hook(accumulate)
        return out

    def unit_keep_mask(self, num_units: int) -> torch.Tensor:
        return self.mask.detach().clone()

    def extra_repr(self) -> str:
        return f"units={self.mask.numel()}, kept={int(self.mask.sum())}"


def _ratios(value: Any, count: int) -> list[float]:
    if value is None:
        value = DEFAULT_KEEP_RATIO
    parts = [float(v) for v in str(value).split(",") if v.strip()] if not isinstance(value, (int, float)) \
        else [float(value)]
    if not parts or any(not 0.0 < r <= 1.0 for r in parts):
        raise ValueError(f"keep_ratio values must be in (0, 1], got {value!r}")
    return [parts[min(i, len(parts) - 1)] for i in range(count)]


class PrunedNetwork(VariantModel):
    """A network whose candidate layers are pruned once to exactly K_l units.

    Args:
        spec: sizes, include_input, activation; options ``keep_ratio`` (default 0.5) and
            ``prune_epoch`` (>= 1, default 1).
        criterion: "magnitude" or "taylor".
    """

    def __init__(self, spec: VariantSpec, criterion: str) -> None:
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
        super().__init__(build_network(spec, gates=lambda layer, n: PruneGate(n)))
        self.criterion = criterion
        self.layers = [l for l in range(len(self.sizes) - 1) if l > 0 or self.network.include_input]
        ratios = _ratios(spec.options.get("keep_ratio"), len(self.layers))
        self.counts = {l: min(self.sizes[l], max(1, int(round(r * self.sizes[l]))))
                       for l, r in zip(self.layers, ratios)}
        self.prune_epoch = spec.option("prune_epoch", 1, int)
        if self.prune_epoch < 1:
            raise ValueError(f"prune_epoch must be >= 1, got {self.prune_epoch}")
        self.pruned = False
        self._set_collect(criterion == "taylor" and self.prune_epoch == 1)

    def gates(self) -> dict[int, PruneGate]:
        return {l: self.network.gates[l] for l in self.layers}  # type: ignore[misc]

    def _set_collect(self, on: bool) -> None:
        for gate in self.gates().values():
            gate.collect = on

    def scores(self) -> dict[int, torch.Tensor]:
        """Each candidate layer's unit scores under the criterion (higher = more important)."""
        with torch.no_grad():
            if self.criterion == "magnitude":
                return {l: self._outgoing_l1(l) for l in self.layers}
            return {l: gate.taylor.clone() for l, gate in self.gates().items()}

    def _outgoing_l1(self, layer: int) -> torch.Tensor:
        network = self.network
        view = network.unit_view(layer, network.connections[layer].weight.detach())
        if view is None:  # pixels sharing a kernel: their effective weights
            return network.effective_weight(layer).abs().sum(0)
        return view.abs().sum(dim=(0, 2))

    def prune(self) -> None:
        """Keep each layer's K_l best-scored units (ties to the lower index), mask the rest."""
        for layer, score in self.scores().items():
            order = torch.sort(score, descending=True, stable=True).indices
            mask = torch.zeros_like(score)
            mask[order[:self.counts[layer]]] = 1.0
            self.network.gates[layer].mask.copy_(mask)
        self.pruned = True
        self._set_collect(False)

    def on_epoch_end(self, epoch: int, context: Any) -> None:
        if epoch == self.prune_epoch - 1 and self.criterion == "taylor":
            self._set_collect(True)  # the epoch before pruning accumulates the scores
        if epoch == self.prune_epoch and not self.pruned:
            self.prune()

    def selectable(self, epoch: int) -> bool:
        return epoch > self.prune_epoch

    def on_state_restored(self) -> None:
        self.pruned = bool(any((g.mask < 1).any() for g in self.gates().values()))

    def finish_training(self, context: Any) -> None:
        context.log["pruning"] = {"criterion": self.criterion, "prune_epoch": self.prune_epoch,
                                  "pruned": self.pruned,
                                  "counts": [self.counts[l] for l in self.layers]}

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, criterion={self.criterion}, prune_epoch={self.prune_epoch}, "
                f"counts={[self.counts[l] for l in self.layers]}")


@register("prune-magnitude", options=OPTIONS)
def build_magnitude(spec: VariantSpec) -> nn.Module:
    """Units ranked by the L1 norm of their outgoing weights, pruned once at ``prune_epoch``."""
    return PrunedNetwork(spec, "magnitude")


@register("prune-taylor", options=OPTIONS)
def build_taylor(spec: VariantSpec) -> nn.Module:
    """Units ranked by Molchanov et al.'s Taylor criterion, pruned once at ``prune_epoch``."""
    return PrunedNetwork(spec, "taylor")
