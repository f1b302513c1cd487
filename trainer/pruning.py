"""Structured pruning figures: the physically smaller network that 0/1 unit masks describe.

Given a keep mask per candidate layer (0 = the unit or channel goes), :func:`prune_network`
builds the network without those units: rows and columns of ``nn.Linear`` weights, output and
input channels of ``nn.Conv2d`` kernels, and across a flatten the block of columns a channel
feeds. It computes what the masked network computes in eval mode:

- a removed unit whose output is a constant ``c`` (a gate's ``fill``, such as MI-Dropout's mean
  activation, or a unit left without incoming weights, which outputs ``f(bias)``) is folded into
  the next layer's bias, ``bias += W[:, j] c`` (for a channel, its kernel summed: exact when the
  next layer has no padding, which is checked);
- gates with a per-unit ``mask`` (the masks being applied) disappear; other gates (stateless in
  eval, e.g. DropAlan's expected output) are kept, as are the activations;
- an MLP's removed inputs are not read (the pruned network selects the kept pixels); a CNN's
  pixels share conv 1's kernel, so none can be removed: their mask (and fill) stays a fixed
  input transform, removing no parameter or multiply-accumulate.

The counts are *structured*: a remaining weight counts even if it is zero. Unstructured weight
sparsity (SparseVD's pruned weights, DropConnect's training-time rate) is reported apart by
:func:`weight_sparsity`. FLOPs are multiply-accumulates (MACs) of one sample's forward pass
through the connections (pooling, activations and biases not counted).

Example:
    >>> from trainer.models import MLP
    >>> net = MLP([4, 3, 2])
    >>> structured_counts(net, [torch.ones(4), torch.tensor([1.0, 0.0, 1.0])])
    {'params_full': 23, 'params_pruned': 16, 'macs_full': 18, 'macs_pruned': 12}
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .dropout.base import gated_network, is_deterministic
from .models import MLP, GatedNetwork, LeNet5, unit_broadcast

#: Inference timing defaults: a batch of this many samples, the median of this many passes.
TIMING_BATCH = 1000
TIMING_REPEATS = 7


def _check_masks(network: GatedNetwork, keep_masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    if len(keep_masks) != len(network.units):
        raise ValueError(f"need one keep mask per candidate layer 0..N ({len(network.units)}), got {len(keep_masks)}")
    masks = [m.detach().float().cpu().reshape(-1) for m in keep_masks]
    for layer, (m, n) in enumerate(zip(masks, network.units)):
        if m.numel() != n:
            raise ValueError(f"layer {layer}'s mask has {m.numel()} entries for {n} units")
    if not is_deterministic(masks):
        raise ValueError("structured pruning needs 0/1 keep masks; fractional ones are expected keep rates")
    return masks


def _kept(network: GatedNetwork, masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Per layer 0..N+1, the bool of units the pruned network keeps (all outputs; all pixels of a
    network whose input units share weights)."""
    kept = [m > 0.5 for m in masks] + [torch.ones(network.num_outputs, dtype=torch.bool)]
    if network.unit_view(0, network.connections[0].weight) is None:
        kept[0] = torch.ones(network.units[0], dtype=torch.bool)
    return kept


def _positions(network: GatedNetwork, layer: int) -> int:
    """Output positions of connection ``layer`` (its target layer's spatial size; 1 for features)."""
    if layer + 1 >= len(network.layer_shapes):
        return 1
    return math.prod(network.layer_shapes[layer + 1][1:])


def _connection_costs(network: GatedNetwork, kept: Sequence[torch.Tensor] | None) -> tuple[int, int]:
    params = macs = 0
    for layer, connection in enumerate(network.connections):
        weight = connection.weight
        view = network.unit_view(layer, weight)
        if kept is None:
            weights, outputs = weight.numel(), weight.shape[0]
        else:
            targets = int(kept[layer + 1].sum())
            if view is None:
                weights = targets * weight[0].numel()
            else:
                weights = targets * int(kept[layer].sum()) * view.shape[2]
            outputs = targets
        bias = getattr(connection, "bias", None)
        params += int(weights) + (0 if bias is None else int(outputs))
        macs += int(weights) * _positions(network, layer)
    return params, macs


def structured_counts(network: GatedNetwork, keep_masks: Sequence[torch.Tensor]) -> dict[str, int]:
    """Parameters (weights and biases) and MACs per sample of the full and the pruned network.

    Counted from the shapes alone, so a layer may keep no unit (the pruned network is then a
    constant, which :func:`prune_network` refuses to build).

    Raises:
        ValueError: masks of the wrong number or size, or fractional ones.
    """
    masks = _check_masks(network, keep_masks)
    params_full, macs_full = _connection_costs(network, None)
    params_pruned, macs_pruned = _connection_costs(network, _kept(network, masks))
    return {"params_full": params_full, "params_pruned": params_pruned,
            "macs_full": macs_full, "macs_pruned": macs_pruned}


class PrunedNetwork(nn.Module):
    """A physically pruned network behind the input transform it needs.

    Attributes:
        network: the smaller :class:`GatedNetwork` (plain Linear / Conv2d layers).
        input_index: the kept input features an MLP reads (None: all).
        input_mask, input_fill: a CNN's fixed pixel mask and the value of removed pixels (None:
            no pixel removed).
    """

    input_index: torch.Tensor | None
    input_mask: torch.Tensor | None
    input_fill: torch.Tensor | None

    def __init__(self, network: GatedNetwork, input_index: torch.Tensor | None = None,
                 input_mask: torch.Tensor | None = None, input_fill: torch.Tensor | None = None) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("input_index", input_index)
        self.register_buffer("input_mask", input_mask)
        self.register_buffer("input_fill", input_fill)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        if self.input_index is not None:
            h = h.index_select(1, self.input_index)
        if self.input_mask is not None:
            h = h * self.input_mask + self.input_fill * (1.0 - self.input_mask)
        return self.network(h)


def _constant_outputs(network: GatedNetwork, layer: int, removed: torch.Tensor) -> torch.Tensor:
    """What each removed unit of ``layer`` outputs in the masked network (0 where nothing): its
    gate's ``fill``; for a unit without incoming weights behind a mask-free gate, ``f(bias)``."""
    gate = network.gates[layer]
    n = network.units[layer]
    fill = getattr(gate, "fill", None)
    if isinstance(fill, torch.Tensor):
        return torch.where(removed, fill.detach().float().cpu(), torch.zeros(n))
    if hasattr(gate, "mask") or layer == 0:
        return torch.zeros(n)
    upstream = network.connections[layer - 1]
    bias = getattr(upstream, "bias", None)
    if bias is None:
        return torch.zeros(n)
    no_input = (upstream.weight.detach().reshape(n, -1) == 0).all(dim=1)
    with torch.no_grad():
        constant = network.activations[layer - 1](bias.detach().float().cpu())
        shape = (1, n, *network.layer_shapes[layer][1:])
        constant = network.gates[layer](constant.view(1, n, *([1] * (len(shape) - 2))).expand(shape))
        constant = constant.reshape(1, n, -1)[0, :, 0]
    return torch.where(removed & no_input, constant, torch.zeros(n))


def _folded_bias(network: GatedNetwork, layer: int, constants: torch.Tensor) -> torch.Tensor | None:
    """The change in connection ``layer``'s output, per target unit, from the removed units'
    constant outputs (None when all are 0)."""
    if not bool((constants != 0).any()):
        return None
    connection = network.connections[layer]
    shape = (1, *network.layer_shapes[layer])
    was_training = connection.training
    connection.eval()
    with torch.no_grad():
        source = unit_broadcast(constants, torch.empty(shape)).expand(shape).contiguous()
        delta = connection(network.route(layer, source)) - connection(network.route(layer, torch.zeros(shape)))
    connection.train(was_training)
    per_position = delta.reshape(delta.shape[1], -1)
    value = per_position[:, 0]
    if not torch.allclose(per_position, value[:, None].expand_as(per_position), rtol=1e-5, atol=1e-6):
        raise ValueError(f"removed units of layer {layer} output constants that connection {layer} "
                         "does not turn into a constant (padding): they cannot be folded into its bias")
    return value


def _pruned_shell(network: GatedNetwork, kept: Sequence[torch.Tensor]) -> GatedNetwork:
    counts = [int(k.sum()) for k in kept]
    for layer, count in enumerate(counts[1:-1], start=1):
        if count == 0:
            raise ValueError(f"layer {layer} keeps no unit: the pruned network would be a constant")
    if isinstance(network, MLP):
        return MLP(counts, network.activation_name)
    if isinstance(network, LeNet5):
        return LeNet5(counts[1:3], counts[3:5], network.num_outputs, network.activation_name)
    raise ValueError(f"no pruned form known for {type(network).__name__}")


def prune_network(network: GatedNetwork, keep_masks: Sequence[torch.Tensor]) -> PrunedNetwork:
    """The physically smaller network computing what ``network`` computes in eval mode with the
    units of mask 0 removed (see the module docstring for what is folded and kept).

    Args:
        network: an :class:`trainer.models.MLP` or :class:`trainer.models.LeNet5` (any gates and
            connections exposing ``weight`` and ``bias``).
        keep_masks: one 0/1 tensor per candidate layer 0..N.

    Returns:
        A :class:`PrunedNetwork` in eval mode.

    Raises:
        ValueError: bad masks, a hidden layer that keeps no unit, or constants that cannot be
            folded.
    """
    masks = _check_masks(network, keep_masks)
    kept = _kept(network, masks)
    with torch.random.fork_rng():  # building the shell draws initial weights: keep the caller's stream
        shell = _pruned_shell(network, kept)
    with torch.no_grad():
        for layer, (old, new) in enumerate(zip(network.connections, shell.connections)):
            weight = old.weight.detach()
            targets, sources = kept[layer + 1], kept[layer]
            view = network.unit_view(layer, weight)
            chosen = weight[targets] if view is None else view[targets][:, sources]
            new.weight.copy_(chosen.reshape(new.weight.shape))
            # a gate's inverted-dropout factor on its kept units (UnitMask's rescale)
            new.weight.mul_(float(getattr(network.gates[layer], "inference_scale", 1.0)))
            old_bias = getattr(old, "bias", None)
            if old_bias is None:
                new.bias.zero_()
            else:
                new.bias.copy_(old_bias.detach()[targets])
            if view is not None:
                removed = masks[layer] < 0.5
                delta = _folded_bias(network, layer, _constant_outputs(network, layer, removed))
                if delta is not None:
                    new.bias.add_(delta[targets])
    for layer in range(len(shell.gates)):
        gate = network.gates[layer]
        if not hasattr(gate, "mask") and layer > 0:
            shell.gates[layer] = copy.deepcopy(gate)
    for index, activation in enumerate(network.activations):
        shell.activations[index] = copy.deepcopy(activation)
    input_index = input_mask = input_fill = None
    if network.unit_view(0, network.connections[0].weight) is None:
        if bool((masks[0] < 0.5).any()):
            input_mask = masks[0].clone()
            fill = getattr(network.gates[0], "fill", None)
            input_fill = fill.detach().float().cpu().clone() if isinstance(fill, torch.Tensor) else torch.zeros_like(input_mask)
    elif not bool(kept[0].all()):
        input_index = kept[0].nonzero().squeeze(1)
    return PrunedNetwork(shell, input_index, input_mask, input_fill).eval()


def count_parameters(network: GatedNetwork) -> int:
    """Weights and biases of the connections at inference (a SparseVD layer counts its means)."""
    total = 0
    for connection in network.connections:
        bias = getattr(connection, "bias", None)
        total += int(connection.weight.numel()) + (0 if bias is None else int(bias.numel()))
    return total


@torch.no_grad()
def inference_seconds(module: nn.Module, sample_shape: Sequence[int], batch: int = TIMING_BATCH,
                      repeats: int = TIMING_REPEATS, threads: int = 1, seed: int = 0) -> float:
    """Median wall seconds of one eval forward pass over ``batch`` random samples.

    Torch runs on ``threads`` threads for the measurement (restored after); one untimed pass
    warms up first.
    """
    if batch < 1 or repeats < 1 or threads < 1:
        raise ValueError(f"need batch, repeats and threads >= 1, got {batch}, {repeats}, {threads}")
    x = torch.rand((batch, *sample_shape), generator=torch.Generator().manual_seed(seed))
    was_training = module.training
    previous_threads = torch.get_num_threads()
    module.eval()
    torch.set_num_threads(threads)
    try:
        module(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            module(x)
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous_threads)
        module.train(was_training)
    return statistics.median(times)


def weight_sparsity(model: nn.Module) -> dict[str, Any] | None:
    """Unstructured sparsity, apart from units: the exactly-zero inference weights and, for
    methods that drop weights while training (DropConnect), their training-time rates.

    Returns None for a method with neither (every weight non-zero, none dropped in training).
    """
    network = gated_network(model)
    if network is None:
        return None
    weights = [c.weight.detach() for c in network.connections]
    total = sum(int(w.numel()) for w in weights)
    zero = sum(int((w == 0).sum()) for w in weights)
    rates = getattr(model, "train_weight_drop_rates", None)
    train_rates = rates() if callable(rates) else None
    if zero == 0 and not train_rates:
        return None
    report: dict[str, Any] = {"weights": total, "zero_weights": zero, "zero_pct": 100.0 * zero / total,
                              "zero_pct_per_connection": [100.0 * int((w == 0).sum()) / w.numel() for w in weights]}
    if train_rates:
        dropped = sum(r * int(w.numel()) for r, w in zip(train_rates, weights))
        report["train_drop_pct"] = 100.0 * dropped / total
        report["train_drop_rate_per_connection"] = train_rates
    return report


def pruning_report(model: nn.Module, test_x: torch.Tensor | None = None, test_y: torch.Tensor | None = None, *,
                   batch: int = TIMING_BATCH, repeats: int = TIMING_REPEATS, threads: int = 1) -> dict[str, Any] | None:
    """Structured pruning figures of a trained model whose keep masks are 0/1, else None.

    Returns:
        ``units`` and ``units_kept`` per layer, ``params_full`` / ``params_pruned`` /
        ``params_removed_pct``, ``macs_full`` / ``macs_pruned`` / ``macs_removed_pct`` (per
        sample), and, when the pruned network can be built, ``inference_ms_full`` /
        ``inference_ms_pruned`` (median of ``repeats`` eval passes over ``batch`` samples on
        ``threads`` torch threads; ``repeats=0`` skips the timing) with their ``speedup`` and, given test data, the pruned
        network's ``pruned_test_accuracy`` (it differs from the run's accuracy when the masks
        were applied in training only). ``error`` says why the network could not be built.
    """
    network = gated_network(model)
    describe = getattr(model, "unit_keep_masks", None)
    if network is None or not callable(describe):
        return None
    masks = [m.detach().float().cpu() for m in describe()]
    if not is_deterministic(masks):
        return None
    counts = structured_counts(network, masks)
    report: dict[str, Any] = {
        "basis": "structured",
        "units": list(network.units),
        "units_kept": [int(m.sum()) for m in masks],
        **counts,
        "params_removed_pct": 100.0 * (1 - counts["params_pruned"] / counts["params_full"]),
        "macs_removed_pct": 100.0 * (1 - counts["macs_pruned"] / counts["macs_full"]),
    }
    try:
        pruned = prune_network(network, masks)
    except ValueError as exc:
        report["error"] = str(exc)
        return report
    if repeats > 0:
        sample = (network.units[0],)
        full_s = inference_seconds(model, sample, batch, repeats, threads)
        pruned_s = inference_seconds(pruned, sample, batch, repeats, threads)
        report.update({"inference_ms_full": 1000 * full_s, "inference_ms_pruned": 1000 * pruned_s,
                       "speedup": full_s / pruned_s if pruned_s > 0 else None,
                       "timing": {"batch": batch, "repeats": repeats, "threads": threads, "statistic": "median"}})
    if test_x is not None and test_y is not None and test_x.shape[0]:
        with torch.no_grad():
            correct = sum(int((pruned(test_x[i:i + 10_000]).argmax(1) == test_y[i:i + 10_000]).sum())
                          for i in range(0, test_x.shape[0], 10_000))
        report["pruned_test_accuracy"] = 100.0 * correct / test_x.shape[0]
    return report
