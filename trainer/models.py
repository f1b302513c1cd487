"""Networks whose units can be gated: an MLP and a LeNet-5-like CNN behind one interface.

A *unit* is what torch's dropout modules gate along dim 1: a feature of a ``(batch, n)`` layer or
a channel of a ``(batch, C, H, W)`` one. Layer numbering follows the Ising-Dropout paper: layer 0
is the input, layers 1..N the hidden layers; the output layer is never gated.

Every network is one chain. For each candidate layer ``l``: the gate ``gates[l]`` (a variant's
module, ``nn.Identity`` where it has none), the route into the next layer (reshape, pooling,
flatten: :meth:`GatedNetwork.route`), the connection ``connections[l]`` (an ``nn.Linear`` or
``nn.Conv2d``, or a weight-level variant's twin of one) and, before the output, the activation
``activations[l]``. So a variant supplies modules, never a subclass per architecture:

- ``gates(layer, num_units) -> nn.Module | None`` for each candidate layer (the input only with
  ``include_input``); the module receives that layer's output, ``(batch, n)`` or
  ``(batch, C, H, W)``, and returns the same shape;
- a :class:`Connections` whose ``linear`` / ``conv2d`` build the weight layers.

A gate may describe itself to the network with ``unit_keep_mask(num_units) -> Tensor`` (each
unit's kept fraction; ones when absent) and, if a dropped unit outputs a constant rather than 0,
a ``fill`` buffer of shape ``(num_units,)`` (the pruned network folds it into the next bias).

Example:
    >>> from torch import nn
    >>> net = build_network("cnn", [784, 10], gates=lambda layer, n: nn.Dropout(0.5) if layer else None)
    >>> net.units, net(torch.zeros(2, 784)).shape
    ([784, 6, 16, 120, 84], torch.Size([2, 10]))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # trainer.dropout imports this module: the stats type is imported when used
    from .dropout.network_stats import NetworkStats

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "selu": nn.SELU,
    "identity": nn.Identity,
}

#: The networks :func:`build_network` knows (the trainer's ``--model``).
MODELS = ("mlp", "cnn")

GateFactory = Callable[[int, int], nn.Module | None]


class Connections:
    """Builds a network's weight layers; weight-level variants (DropConnect, Sparse VD) subclass it.

    ``index`` is the connection's place in the chain: connection ``l`` maps layer ``l`` to
    ``l + 1`` (the last one maps layer N to the output). A returned module must expose the
    weights it uses at inference as ``weight`` (the shape of ``nn.Linear`` / ``nn.Conv2d``'s) and
    its ``bias``, which pruning and the network statistics read.

    Example:
        >>> class NoBias(Connections):
        ...     def linear(self, index, in_features, out_features):
        ...         return nn.Linear(in_features, out_features, bias=False)
    """

    def linear(self, index: int, in_features: int, out_features: int) -> nn.Module:
        return nn.Linear(in_features, out_features)

    def conv2d(self, index: int, in_channels: int, out_channels: int, kernel_size: int,
               padding: int) -> nn.Module:
        return nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)


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


def unit_mean(h: torch.Tensor) -> torch.Tensor:
    """(batch, n, ...) -> (batch, n): a channel's spatial mean, a feature as it is."""
    return h if h.dim() == 2 else h.flatten(2).mean(2)


def unit_broadcast(values: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Per-unit ``values`` (n,) shaped to multiply ``h`` (batch, n, ...) along dim 1."""
    return values.view(1, -1, *([1] * (h.dim() - 2)))


class GatedNetwork(nn.Module):
    """The chain described in the module docstring; :class:`MLP` and :class:`LeNet5` fill it in.

    Attributes:
        units: units of the candidate layers 0..N (input features or pixels, hidden units or
            channels).
        num_outputs: the output layer's size (never gated).
        layer_shapes: each candidate layer's output shape for one sample, e.g. ``(6, 28, 28)``.
        gates, connections, activations: the chain's modules (N + 1, N + 1 and N of them).
        activation_name, include_input: as given.
    """

    units: list[int]
    num_outputs: int
    layer_shapes: list[tuple[int, ...]]

    def _assemble(self, connections: list[nn.Module], activation: str, gates: GateFactory | None,
                  include_input: bool) -> None:
        """Register the connections, then the activations, then the gates (in that order, which
        fixes the order parameters are initialised in and so the results of a seed)."""
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.activation_name = activation
        self.include_input = bool(include_input)
        self.connections = nn.ModuleList(connections)
        self.activations = nn.ModuleList(ACTIVATIONS[activation]() for _ in self.units[1:])
        modules: list[nn.Module] = []
        for layer, n in enumerate(self.units):
            module = None
            if gates is not None and (layer > 0 or self.include_input):
                module = gates(layer, n)
            modules.append(nn.Identity() if module is None else module)
        self.gates = nn.ModuleList(modules)
        if activation == "selu":
            self.reset_lecun_normal()

    # ------------------------------------------------------------------ structure
    @property
    def num_hidden(self) -> int:
        return len(self.units) - 1

    @property
    def sizes(self) -> list[int]:
        """Units per layer 0..N followed by the output size (an MLP's architecture)."""
        return [*self.units, self.num_outputs]

    def route(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """What happens between gate ``layer`` and connection ``layer`` (identity by default)."""
        return h

    def unit_view(self, layer: int, weight: torch.Tensor) -> torch.Tensor | None:
        """Connection ``layer``'s weight as ``(n_{l+1}, n_l, positions)``, a view sharing memory:
        entry ``[j, i, :]`` holds every weight from unit i of layer l to unit j of layer l + 1.
        None when layer l's units share their weights (an image's pixels under a convolution).
        """
        return weight.unsqueeze(2)

    def effective_weight(self, layer: int, weight: torch.Tensor | None = None) -> torch.Tensor:
        """``(n_{l+1}, n_l)``: connection ``layer`` between units, as :class:`NetworkStats` defines
        it (kernels summed over their positions; across a flatten, summed over the positions a
        channel feeds). ``weight`` defaults to the connection's inference weight."""
        weight = self.connections[layer].weight.detach() if weight is None else weight
        view = self.unit_view(layer, weight)
        if view is None:
            raise NotImplementedError(f"{type(self).__name__} must define layer {layer}'s effective weight")
        return view[:, :, 0] if view.shape[2] == 1 else view.sum(2)

    def reset_lecun_normal(self) -> None:
        """LeCun-normal weights and zero biases, the initialisation SELU networks need."""
        for connection in self.connections:
            weight = getattr(connection, "weight", None)
            if isinstance(weight, torch.Tensor):
                nn.init.normal_(weight, 0.0, 1.0 / math.sqrt(weight[0].numel()))
            bias = getattr(connection, "bias", None)
            if isinstance(bias, torch.Tensor):
                nn.init.zeros_(bias)

    # ------------------------------------------------------------------ forward passes
    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The input as layer 0's units: images flattened to (batch, pixels)."""
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.prepare(x)
        for layer, connection in enumerate(self.connections):
            h = self.gates[layer](h)
            h = connection(self.route(layer, h))
            if layer < len(self.activations):
                h = self.activations[layer](h)
        return h

    def layer_outputs(self, x: torch.Tensor, gated: bool = True) -> list[torch.Tensor]:
        """Each candidate layer's output (full shape), after its gate when ``gated`` (as the next
        connection sees it) or with no gate at all (the network as its weights hold it)."""
        outputs = []
        h = self.prepare(x)
        for layer, connection in enumerate(self.connections):
            if gated:
                h = self.gates[layer](h)
            outputs.append(h)
            if layer < len(self.activations):
                h = self.activations[layer](connection(self.route(layer, h)))
        return outputs

    def layer_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Ungated unit activations of layers 0..N, ``(batch, n_l)`` each (channels: spatial
        means), for methods that inspect them; uses the current weights, under ``no_grad``."""
        with torch.no_grad():
            return [unit_mean(h) for h in self.layer_outputs(x, gated=False)]

    def network_stats(self, batch_x: torch.Tensor, batch_y: torch.Tensor | None = None) -> NetworkStats:
        """This mini-batch's :class:`NetworkStats`: ungated activations, effective weights, biases.

        With ``batch_y`` the per-sample gate gradients come too: each sample's derivative of its
        cross-entropy with respect to a multiplicative gate on each unit (all gates at 1, no
        masks), from one backward pass (sample b's loss depends only on its own gates).
        """
        from .dropout.network_stats import NetworkStats

        activations = self.layer_activations(batch_x)
        weights = [self.effective_weight(layer) for layer in range(len(self.connections))]
        biases: list[torch.Tensor | None] = [None] + [
            None if c.bias is None else c.bias.detach() for c in list(self.connections)[:-1]]
        gradients = None if batch_y is None else self.gate_gradients(batch_x, batch_y)
        return NetworkStats(activations, weights, biases, self.activation_name, gradients)

    def gate_gradients(self, batch_x: torch.Tensor, batch_y: torch.Tensor) -> list[torch.Tensor]:
        """Per-sample d loss_b / d g_(b, l, i) for unit gates g at 1 on layers 0..N (no masks)."""
        batch = batch_x.shape[0]
        gate_values = [torch.ones(batch, n, requires_grad=True) for n in self.units]
        h = self.prepare(batch_x)
        for layer, connection in enumerate(self.connections):
            h = h * gate_values[layer].view(batch, -1, *([1] * (h.dim() - 2)))
            h = connection(self.route(layer, h))
            if layer < len(self.activations):
                h = self.activations[layer](h)
        loss = F.cross_entropy(h, batch_y, reduction="sum")
        return [g.detach() for g in torch.autograd.grad(loss, gate_values)]

    # ------------------------------------------------------------------ units, masks, counts
    def unit_keep_masks(self) -> list[torch.Tensor]:
        """Each candidate layer's kept fraction per unit, as its gate describes it (ones if not)."""
        masks = []
        for gate, n in zip(self.gates, self.units):
            describe = getattr(gate, "unit_keep_mask", None)
            masks.append(describe(n).detach().float().cpu() if callable(describe) else torch.ones(n))
        return masks

    def parameter_terms(self) -> tuple[list[int], int]:
        """(parameters each candidate layer's units own, parameters no unit owns).

        A unit owns its outgoing weights and its own bias, the paper's eq. 6 accounting
        (``|h_l|(|h_{l+1}| + 1)`` for an MLP's hidden layer); weights no unit owns alone (a
        convolution over pixels) and the output biases belong to no layer.
        """
        terms, unowned = [], 0
        for layer, connection in enumerate(self.connections):
            weights = int(connection.weight.numel())
            owned = weights if self.unit_view(layer, connection.weight) is not None else 0
            unowned += weights - owned
            bias = getattr(self.connections[layer - 1], "bias", None) if layer > 0 else None
            terms.append(owned + (0 if bias is None else int(bias.numel())))
        last_bias = getattr(self.connections[-1], "bias", None)
        return terms, unowned + (0 if last_bias is None else int(last_bias.numel()))

    def expected_parameter_counts(self, keep_fractions: Sequence[float] | None = None) -> tuple[int, float]:
        """(all parameters, those left) when layer l keeps ``keep_fractions[l]`` of its units; for
        an MLP exactly :func:`trainer.dropout.base.paper_parameter_counts`."""
        terms, unowned = self.parameter_terms()
        total = sum(terms) + unowned
        if keep_fractions is None:
            return total, float(total)
        if len(keep_fractions) != len(terms):
            raise ValueError(f"need {len(terms)} keep fractions (layers 0..N), got {len(keep_fractions)}")
        return total, float(total) - sum((1.0 - float(k)) * t for k, t in zip(keep_fractions, terms))

    def owned_weight_mask(self, layer: int, sources: torch.Tensor | None,
                          targets: torch.Tensor | None) -> torch.Tensor:
        """A 0/1 float mask shaped like connection ``layer``'s weight: 1 on the weights leaving
        the ``sources`` units of layer l or entering the ``targets`` units of layer l + 1 (bool
        or 0/1 per unit, None for none). Shared weights (pixels under a kernel) are never owned."""
        weight = self.connections[layer].weight
        mask = torch.zeros_like(weight, requires_grad=False)
        if sources is not None:
            view = self.unit_view(layer, mask)
            if view is not None:
                view[:, sources.bool(), :] = 1.0
        if targets is not None:
            mask.view(mask.shape[0], -1)[targets.bool(), :] = 1.0
        return mask


class MLP(GatedNetwork):
    """Fully connected network ``sizes[0] -> ... -> sizes[-1]`` returning logits.

    Args:
        sizes: layer sizes, input first, output last (e.g. ``[784, 100, 100, 10]``).
        activation: hidden-unit non-linearity: "sigmoid" (the paper), "relu", "selu", "identity".
        connections: builds the linear layers (default: ``nn.Linear``).
        gates: ``(layer_index, num_units) -> module or None``, called for the input (index 0,
            only with ``include_input``) and every hidden layer (1..N).
        include_input: whether the input layer gets a gate.

    Example:
        >>> net = MLP([784, 100, 10], gates=lambda l, n: nn.Dropout(0.5) if l else None)
        >>> net(torch.zeros(2, 784)).shape
        torch.Size([2, 10])
    """

    def __init__(self, sizes: Sequence[int], activation: str = "sigmoid",
                 connections: Connections | None = None, gates: GateFactory | None = None,
                 include_input: bool = False) -> None:
        super().__init__()
        sizes = parse_sizes(sizes)
        self.units, self.num_outputs = sizes[:-1], sizes[-1]
        self.layer_shapes = [(n,) for n in self.units]
        factory = connections or Connections()
        self._assemble([factory.linear(index, a, b) for index, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))],
                       activation, gates, include_input)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, activation={self.activation_name}, include_input={self.include_input}"


class LeNet5(GatedNetwork):
    """A LeNet-5-like CNN for 28x28 single-channel images, its channels gated like units.

    conv 1->c1 (5x5, padding 2) -> activation -> [gate 1] -> max-pool 2 -> conv c1->c2 (5x5)
    -> activation -> [gate 2] -> max-pool 2 -> flatten (c2 x 5 x 5) -> fc f1 -> fc f2 -> fc out,
    with activations and gates 3, 4 on the two hidden fc layers. Candidate layers: 0 the 784
    input pixels (gated as a (batch, 784) layer before the image is reshaped; only with
    ``include_input``), 1 and 2 the conv channels, 3 and 4 the fc units.

    Args:
        channels: (c1, c2), the conv layers' channels (LeNet-5: 6, 16).
        hidden: (f1, f2), the fc hidden units (120, 84).
        num_classes: outputs.
        activation, connections, gates, include_input: as :class:`MLP`.
    """

    IMAGE_SIDE = 28
    KERNEL = 5

    def __init__(self, channels: Sequence[int] = (6, 16), hidden: Sequence[int] = (120, 84),
                 num_classes: int = 10, activation: str = "sigmoid",
                 connections: Connections | None = None, gates: GateFactory | None = None,
                 include_input: bool = False) -> None:
        super().__init__()
        c1, c2 = (int(c) for c in channels)
        f1, f2 = (int(f) for f in hidden)
        if min(c1, c2, f1, f2, int(num_classes)) < 1:
            raise ValueError(f"every width must be >= 1, got channels={tuple(channels)}, "
                             f"hidden={tuple(hidden)}, num_classes={num_classes}")
        side, k = self.IMAGE_SIDE, self.KERNEL
        self.after_conv2 = (side // 2 - k + 1)  # 10: conv1 keeps 28 (padding 2), pool -> 14, conv2 -> 10
        self.flat_side = self.after_conv2 // 2  # 5
        self.units = [side * side, c1, c2, f1, f2]
        self.num_outputs = int(num_classes)
        self.layer_shapes = [(side * side,), (c1, side, side), (c2, self.after_conv2, self.after_conv2), (f1,), (f2,)]
        factory = connections or Connections()
        flat = c2 * self.flat_side * self.flat_side
        self._assemble([factory.conv2d(0, 1, c1, k, k // 2), factory.conv2d(1, c1, c2, k, 0),
                        factory.linear(2, flat, f1), factory.linear(3, f1, f2),
                        factory.linear(4, f2, self.num_outputs)], activation, gates, include_input)

    def route(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        if layer == 0:
            return h.view(h.shape[0], 1, self.IMAGE_SIDE, self.IMAGE_SIDE)
        if layer == 1:
            return F.max_pool2d(h, 2)
        if layer == 2:
            return F.max_pool2d(h, 2).flatten(1)
        return h

    def unit_view(self, layer: int, weight: torch.Tensor) -> torch.Tensor | None:
        if layer == 0:
            return None  # the pixels share conv 1's kernel: no weight belongs to one pixel
        if layer == 1:
            return weight.flatten(2)
        if layer == 2:
            return weight.view(weight.shape[0], self.units[2], -1)
        return weight.unsqueeze(2)

    def effective_weight(self, layer: int, weight: torch.Tensor | None = None) -> torch.Tensor:
        """As :meth:`GatedNetwork.effective_weight`; from the pixels (layer 0), pixel p's weight
        to channel j is its contribution to the channel's spatial-mean pre-activation: the
        kernel taps that reach p, summed over output positions, divided by their number (so
        ``mean_o z_j = b_j + sum_p W[j, p] x_p``, the rule the other layers follow too)."""
        weight = self.connections[layer].weight.detach() if weight is None else weight
        if layer != 0:
            return super().effective_weight(layer, weight)
        c1, side = weight.shape[0], self.IMAGE_SIDE
        ones = torch.eye(c1, dtype=weight.dtype).view(c1, c1, 1, 1).expand(c1, c1, side, side)
        reach = F.conv_transpose2d(ones, weight, padding=self.KERNEL // 2)  # (c1, 1, side, side)
        return reach.reshape(c1, side * side) / (side * side)

    def extra_repr(self) -> str:
        return (f"units={self.units}, num_outputs={self.num_outputs}, activation={self.activation_name}, "
                f"include_input={self.include_input}")


def build_network(model: str, sizes: Sequence[int], activation: str = "sigmoid",
                  connections: Connections | None = None, gates: GateFactory | None = None,
                  include_input: bool = False) -> GatedNetwork:
    """The network a ``--model`` names, built with a variant's gates and connections.

    Args:
        model: "mlp" (layer ``sizes``) or "cnn" (:class:`LeNet5`; of ``sizes`` it reads the
            input, which must be 784 = 28 x 28 pixels, and the output size).
        sizes, activation, connections, gates, include_input: as :class:`MLP`.

    Raises:
        ValueError: an unknown model, or sizes the CNN cannot take.
    """
    sizes = parse_sizes(sizes)
    if model == "mlp":
        return MLP(sizes, activation, connections, gates, include_input)
    if model == "cnn":
        side = LeNet5.IMAGE_SIDE
        if sizes[0] != side * side:
            raise ValueError(f"the CNN takes {side}x{side} images ({side * side} inputs), got {sizes[0]} inputs")
        return LeNet5(num_classes=sizes[-1], activation=activation, connections=connections, gates=gates,
                      include_input=include_input)
    raise ValueError(f"model must be one of {MODELS}, got {model!r}")
