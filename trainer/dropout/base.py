"""The contract between the training harness and a dropout variant.

A variant is a factory registered by name (see ``registry``) that turns a :class:`VariantSpec`
into a :class:`VariantModel`: the network ``spec.model`` names (an MLP or the LeNet-5-like CNN,
``trainer.models``) built with the variant's per-layer modules, plus the variant's network-level
hooks. The variant's modules gate any layer's units or channels (dim 1, as torch's dropout
modules do) and, for weight-level methods, replace the network's Linear/Conv2d layers; no
variant subclasses an architecture. The harness knows no variant by name: it calls ``forward``
for the loss and then looks for these OPTIONAL hooks on the model (plain methods; define only
the ones the method needs):

``regularization_loss() -> Tensor``
    a non-negative scalar added to the cross-entropy each step (SparseVD's KL, DropNeuron's
    group norms).
``before_step(batch_x, step[, batch_y]) -> None``
    called before the forward pass of every training mini-batch (Ising-Dropout solves its
    masks here, never inside ``forward``). A hook that takes a third argument also receives
    the mini-batch's labels (the loss-aware Ising energy needs them for per-sample gate
    gradients); one written as ``(batch_x, step)`` is called without them.
``after_step(batch_x, step) -> None``
    called after ``optimizer.step()`` (Ising-Dropout restores the weights of dropped units: the
    paper's W* bookkeeping).
``on_epoch_end(epoch, context) -> None``
    once per epoch after validation, with a :class:`HarnessContext`.
``on_state_restored() -> None``
    after the harness reloads the best epoch's ``state_dict`` (buffers such as masks included),
    for methods that keep derived state outside the buffers.
``selectable(epoch) -> bool``
    whether the weights after ``epoch`` completed epochs may be chosen by best-epoch restoration
    and count towards early stopping. Methods whose compression builds up during training use
    it so that restoration cannot throw the compression away: SparseVD allows only epochs after
    its KL warm-up (``epoch > kl_warmup_end``); DropNeuron, whose group regularisers prune more
    the longer they act, allows none unless its ``select_from`` option says from which epoch on,
    so by default its last epoch is kept. Non-selectable epochs neither set the best weights nor
    advance the patience counter; when no epoch is selectable the last epoch's weights are used.
    Without the hook every epoch is selectable.
``finish_training(context) -> None``
    once after the last epoch and after the best weights are restored (pruning, MI retraining);
    ``context.fit(epochs)`` trains further on the same data.
``unit_keep_masks() -> list[Tensor]``
    for layers 0..N (input, hidden), a float tensor per layer with each unit's kept fraction
    (1 = kept, 0 = dropped; values in between for random methods). Drives the reported drop
    rate per layer and the compression. Only 0/1 masks describe a network that can really be
    pruned (``trainer.pruning`` builds it); for fractional ones the harness reports eq. 6 with
    the expected drop rates, as the paper does. :class:`VariantModel` reads them from the gates.
``parameter_counts() -> tuple[int, int]``
    (total, remaining) when the method counts compression its own way (pruned weights).
``timing_breakdown() -> dict[str, float]``
    cumulative seconds of the method's own work, e.g. ``{"ising_build": .., "transport": ..,
    "solve": ..}``; the harness reports them beside forward/backward.

Example, a variant that drops a fixed half of every hidden layer's units or channels::

    from torch import nn
    from trainer.dropout.base import VariantModel, VariantSpec, build_network
    from trainer.dropout.registry import register
    from trainer.models import unit_broadcast

    class FixedHalf(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.register_buffer("mask", (torch.arange(n) % 2).float())
        def forward(self, h):                      # (batch, n) or (batch, n, H, W)
            return h * unit_broadcast(self.mask, h)
        def unit_keep_mask(self, n):               # read by VariantModel.unit_keep_masks
            return self.mask

    @register("half", options=())   # the keys it reads from spec.options, none here
    def build(spec: VariantSpec) -> nn.Module:
        return VariantModel(build_network(spec, gates=lambda layer, n: FixedHalf(n) if layer else None))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..models import MODELS, Connections, GatedNetwork, GateFactory
from ..models import build_network as _build_model

MODES = ("train", "train+infer")


@dataclass
class VariantSpec:
    """Everything a variant factory may need; ``options`` holds method-specific settings.

    Attributes:
        sizes: the MLP's layer sizes, input first (``[784, 100, 100, 10]``); the CNN reads the
            input (784 pixels) and the output size only.
        include_input: whether the input layer is a dropout candidate.
        p: the drop probability / strength for methods that take one (None = method default).
        mode: "train" (masks only while training) or "train+infer" (also at test time).
        activation: hidden non-linearity ("sigmoid" as in the paper).
        seed: seed for the method's own randomness.
        options: method-specific extras, e.g. ``{"lambda_in": 1e-4, "estimator": "knn"}``; values
            arrive as strings from ``--option key=value`` unless a dedicated flag typed them. Each
            variant declares the keys it accepts when it registers; others are rejected.
        num_train: the training-set size when known before training (methods whose loss scales
            with it, such as SparseVD's KL term, need it from the first step).
        model: the network, one of ``trainer.models.MODELS``: "mlp" or "cnn" (LeNet-5-like).
    """

    sizes: list[int]
    include_input: bool = False
    p: float | None = None
    mode: str = "train"
    activation: str = "sigmoid"
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    num_train: int | None = None
    model: str = "mlp"

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.p is not None and not 0.0 <= float(self.p) < 1.0:
            raise ValueError(f"p must be in [0, 1), got {self.p}")
        if self.num_train is not None and int(self.num_train) < 1:
            raise ValueError(f"num_train must be >= 1, got {self.num_train}")

    def option(self, name: str, default: Any, cast: Callable[[Any], Any] | None = None) -> Any:
        """Read an option with a default, converting strings with ``cast`` (bool-aware)."""
        if name not in self.options or self.options[name] is None:
            return default
        value = self.options[name]
        cast = cast or (type(default) if default is not None else None)
        if cast is bool and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(f"option {name} must be a boolean, got {value!r}")
            return lowered in ("1", "true", "yes", "on")
        if cast is None:
            return value
        try:
            return cast(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"option {name}={value!r} is not a valid {getattr(cast, '__name__', cast)}") from exc


def build_network(spec: VariantSpec, gates: GateFactory | None = None,
                  connections: Connections | None = None, activation: str | None = None,
                  include_input: bool | None = None) -> GatedNetwork:
    """The network ``spec.model`` names, built with a variant's ``gates`` and ``connections``
    (``activation`` and ``include_input`` override the spec's)."""
    return _build_model(spec.model, spec.sizes, spec.activation if activation is None else activation,
                        connections, gates, spec.include_input if include_input is None else include_input)


class VariantModel(nn.Module):
    """What a variant factory returns: a gated network plus the variant's network-level hooks.

    The base class is the whole model of a variant that needs no hook beyond the keep masks its
    gates describe (dropout, Gaussian, alpha, none); other variants subclass it and add the
    hooks above. ``forward`` is the network's.

    Attributes:
        network: the :class:`trainer.models.GatedNetwork` (``network.gates``,
            ``network.connections``, ``network.activations``).
    """

    def __init__(self, network: GatedNetwork) -> None:
        super().__init__()
        self.network = network

    @property
    def sizes(self) -> list[int]:
        """Units per candidate layer, then the output size."""
        return self.network.sizes

    @property
    def activation_name(self) -> str:
        return self.network.activation_name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def unit_keep_masks(self) -> list[torch.Tensor]:
        return self.network.unit_keep_masks()


def gated_network(model: nn.Module) -> GatedNetwork | None:
    """The :class:`GatedNetwork` inside ``model`` (a :class:`VariantModel` or a bare network)."""
    if isinstance(model, GatedNetwork):
        return model
    network = getattr(model, "network", None)
    return network if isinstance(network, GatedNetwork) else None


@dataclass
class HarnessContext:
    """What the per-epoch and end-of-training hooks can see and do.

    Attributes:
        data: the :class:`trainer.data.DataSplits` in use.
        optimizer: the harness's optimizer (hooks may add parameter groups or reset state).
        epoch: epochs completed so far.
        evaluate: ``evaluate(x, y) -> accuracy`` with the model in eval mode.
        fit: ``fit(epochs)`` trains the model for more epochs with the same settings (no early
            stopping), returning the epochs run; MI-Dropout retrains with it.
        timings: the harness's cumulative timing dict; hooks may add their own keys.
        log: free-form per-run notes the method wants in the final JSON (e.g. MI before/after).
    """

    data: Any
    optimizer: torch.optim.Optimizer
    epoch: int
    evaluate: Callable[[torch.Tensor, torch.Tensor], float]
    fit: Callable[[int], int]
    timings: dict[str, float]
    log: dict[str, Any] = field(default_factory=dict)


def paper_parameter_terms(sizes: Sequence[int]) -> list[int]:
    """The terms of the paper's eq. 6, one per layer 0..N, each charged to the layer on its left.

    ``P = |x||h1| + sum_i |h_i|(|h_{i+1}| + 1) + |h_N|(|y| + 1) + |y|``: term 0 is ``|x||h1|``,
    term l (hidden) is ``|h_l|(|h_{l+1}| + 1)``; the final ``|y|`` belongs to no candidate layer.
    """
    sizes = list(sizes)
    if len(sizes) < 3:
        raise ValueError("eq. 6 needs at least one hidden layer")
    terms = [sizes[0] * sizes[1]]
    terms += [sizes[l] * (sizes[l + 1] + 1) for l in range(1, len(sizes) - 1)]
    return terms


def paper_parameter_counts(sizes: Sequence[int], keep_fractions: Sequence[float] | None = None
                           ) -> tuple[int, float]:
    """(total P of eq. 6, parameters remaining) when layer l keeps ``keep_fractions[l]`` of its units.

    The paper's "Total" column charges each dropped unit of layer l its share of term l of
    eq. 6 (its outgoing weights plus the next layer's bias share). With drop rates
    (38.60, 32.18, 25.15) % on (784, 100, 100, 10) this gives the paper's 37.71 % removed.

    Example:
        >>> paper_parameter_counts([784, 100, 100, 10])
        (89610, 89610.0)
    """
    terms = paper_parameter_terms(sizes)
    total = sum(terms) + int(sizes[-1])
    if keep_fractions is None:
        return total, float(total)
    if len(keep_fractions) != len(terms):
        raise ValueError(f"need {len(terms)} keep fractions (layers 0..N), got {len(keep_fractions)}")
    removed = sum((1.0 - float(k)) * t for k, t in zip(keep_fractions, terms))
    return total, float(total) - removed


def is_deterministic(keep_masks: Sequence[torch.Tensor]) -> bool:
    """True when every mask entry is exactly 0 or 1 (units kept or removed for good)."""
    return all(bool(((m == 0) | (m == 1)).all()) for m in keep_masks)
