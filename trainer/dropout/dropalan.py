"""DropAlan (Casallas 2018): the drop probability of a unit depends on its own pre-activation.

The layer has no activation function; instead each unit with pre-activation ``z`` is dropped
during training with probability ``p(z)`` — zero for ``z >= 0`` and large for negative ``z`` —
so the noise itself plays the role of a (stochastic, ReLU-like) non-linearity:

- alpha: ``p(z) = 0.8`` for ``z < -1``, ``-0.8 z`` for ``-1 <= z < 0``, 0 for ``z >= 0``;
- beta: ``p(z) = 1 + 0.2 / z`` for ``z < -1`` (clipped at ``max_rate`` = 0.95), 0.8 for
  ``-1 <= z < 0``, 0 for ``z >= 0``;
- scaled: survivors divided by their keep probability ``1 - p(z)``, as inverted dropout does.

Numerical safety, where the reference code (TensorFlow) divides ``0.2 / z`` everywhere and
relies on clipping ``inf``: here the division only ever sees ``z < -1`` (``torch.where`` on a
safe denominator, so neither the value nor any gradient can be ``inf``/``NaN``), the rate is
clipped at ``max_rate < 1`` so a scaled survivor is amplified at most ``1 / (1 - max_rate)``
times, and the probability is computed without gradient (the Bernoulli draw has none anyway).

Inference (``inference=``):

- "expected" (default): the mean output of the training-time layer, ``z (1 - p(z))`` unscaled
  and ``z`` scaled — the weight-scaling rule every dropout uses (inverted dropout's identity *is*
  its mean). For the scaled variants this is the identity, exactly the paper's inference.
- "identity": the reference code's inference for every variant. For the *unscaled* variants it
  is a train/test mismatch: on MNIST 784-100-100-10 (5 epochs, Adam 1e-3) unscaled beta reached
  97.2 % training accuracy but its validation accuracy fell from 83 % to 65 % under "identity",
  while "expected" gave 97.2 % test accuracy.
- "mode": the most probable mask ``1[p(z) < 0.5]`` (for beta exactly a ReLU).

Placement (``placement=``). The paper's networks are CNNs whose convolutions carry ReLUs; DropAlan
replaces only the activation of the dense layer in front of the classifier. The MLP twin of that
design, the default "last", keeps the network's activation (``--activation``, sigmoid) on every
hidden layer but the last, and puts DropAlan without activation on the last one. "all" puts it on
every hidden layer and leaves no activation anywhere: then the scaled variants are linear in
expectation and the network learns (nearly) a linear classifier — about 91-92 % on MNIST whatever
the inference rule — whereas the unscaled ones learn a stochastic ReLU-like non-linearity.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..models import unit_mean
from .base import VariantModel, VariantSpec, build_network
from .registry import register

KINDS = ("alpha", "beta")
INFERENCE_MODES = ("identity", "expected", "mode")
PLACEMENTS = ("last", "all")


def _check(kind: str, max_rate: float, inference: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"DropAlan kind must be one of {KINDS}, got {kind!r}")
    if not 0.8 <= float(max_rate) < 1.0:
        raise ValueError(f"DropAlan max_rate must be in [0.8, 1), got {max_rate}")
    if inference not in INFERENCE_MODES:
        raise ValueError(f"DropAlan inference must be one of {INFERENCE_MODES}, got {inference!r}")


def drop_probability(z: torch.Tensor, kind: str = "beta", max_rate: float = 0.95) -> torch.Tensor:
    """The DropAlan drop probability ``p(z)`` element-wise (no gradient), in ``[0, max_rate]``.

    Args:
        z: pre-activations.
        kind: "alpha" or "beta" (see the module docstring).
        max_rate: upper clip of the beta branch (the reference code's 0.95); must be < 1 so a
            unit always has a chance to survive.

    Raises:
        ValueError: unknown ``kind`` or ``max_rate`` outside [0.8, 1).
    """
    _check(kind, max_rate, "identity")
    with torch.no_grad():
        if kind == "alpha":
            return (-0.8 * z).clamp(0.0, 0.8)
        very_negative = z < -1.0
        safe_z = torch.where(very_negative, z, torch.full_like(z, -1.0))
        tail = (1.0 + 0.2 / safe_z).clamp(max=float(max_rate))
        middle = torch.full_like(z, 0.8)
        rate = torch.where(very_negative, tail, middle)
        return torch.where(z < 0.0, rate, torch.zeros_like(z))


def dropalan(z: torch.Tensor, kind: str = "beta", scaled: bool = False, training: bool = True,
             max_rate: float = 0.95, inference: str = "expected",
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Drop each unit of ``z`` with probability ``p(z)`` (training) or apply ``inference``.

    Args:
        z: pre-activations of any shape.
        kind: "alpha" or "beta".
        scaled: divide survivors by ``1 - p(z)`` (the "scaled beta" of the paper).
        training: sample masks when True; otherwise ``inference`` decides.
        max_rate: clip of the beta rate, < 1.
        inference: "identity" (the reference code), "expected" (the mean output ``z (1 - p(z))``, or ``z``
            when scaled) or "mode" (keep where ``p(z) < 0.5``).
        generator: optional source of randomness.

    Returns:
        A tensor shaped like ``z``.
    """
    _check(kind, max_rate, inference)
    rate = drop_probability(z, kind, max_rate)
    if not training:
        if inference == "identity":
            return z
        if inference == "expected":
            return z if scaled else z * (1.0 - rate)
        return z * (rate < 0.5).to(z.dtype)
    keep_prob = 1.0 - rate
    mask = torch.bernoulli(keep_prob, generator=generator)
    if scaled:
        mask = mask / keep_prob  # keep_prob >= 1 - max_rate > 0
    return z * mask


class DropAlan(nn.Module):
    """Module twin of :func:`dropalan`, placed on a layer's pre-activations.

    Example:
        >>> layer = DropAlan("beta", scaled=True)
        >>> layer.eval()(torch.tensor([-2.0, 0.0, 3.0]))  # scaled: the mean output is z
        tensor([-2.,  0.,  3.])
        >>> DropAlan("beta").eval()(torch.tensor([-2.0, 0.0, 3.0]))  # unscaled: z (1 - p(z))
        tensor([-0.2000,  0.0000,  3.0000])
    """

    def __init__(self, kind: str = "beta", scaled: bool = False, max_rate: float = 0.95,
                 inference: str = "expected") -> None:
        super().__init__()
        _check(kind, max_rate, inference)
        self.kind = kind
        self.scaled = bool(scaled)
        self.max_rate = float(max_rate)
        self.inference = inference
        self.last_rate: torch.Tensor | None = None  # mean p(z) per unit over the last training batch

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.last_rate = unit_mean(drop_probability(z, self.kind, self.max_rate)).mean(0).detach().cpu()
        return dropalan(z, self.kind, self.scaled, self.training, self.max_rate, self.inference)

    def unit_keep_mask(self, num_units: int) -> torch.Tensor:
        """Expected keep fraction ``1 - p(z)`` of each unit over the last training batch seen."""
        return torch.ones(num_units) if self.last_rate is None else 1.0 - self.last_rate

    def extra_repr(self) -> str:
        return (f"kind={self.kind}, scaled={self.scaled}, max_rate={self.max_rate}, "
                f"inference={self.inference}")


class DropAlanNetwork(VariantModel):
    """A network whose last hidden layer (``placement="last"``) or every hidden layer (``"all"``)
    carries :class:`DropAlan` on its pre-activations instead of an activation function.

    Layers without DropAlan keep ``activation``. The input is never a DropAlan candidate (pixels
    are >= 0, so ``p`` would be 0 there); ``include_input`` is accepted and ignored.

    Example:
        >>> net = DropAlanNetwork(VariantSpec([784, 100, 100, 10]), "beta", scaled=True).network
        >>> [type(a).__name__ for a in net.activations], [type(m).__name__ for m in net.gates]
        (['Sigmoid', 'Identity'], ['Identity', 'Identity', 'DropAlan'])
    """

    def __init__(self, spec: VariantSpec, kind: str = "beta", scaled: bool = False,
                 max_rate: float = 0.95, inference: str = "expected", placement: str = "last") -> None:
        _check(kind, max_rate, inference)
        if placement not in PLACEMENTS:
            raise ValueError(f"DropAlan placement must be one of {PLACEMENTS}, got {placement!r}")
        network = build_network(spec, include_input=False)
        last = network.num_hidden
        # Hidden layer l's gate sits at index l, its activation at l - 1; DropAlan layers have none.
        for layer in range(1, last + 1):
            if placement == "all" or layer == last:
                network.gates[layer] = DropAlan(kind, scaled, max_rate, inference)
                network.activations[layer - 1] = nn.Identity()
        super().__init__(network)
        self.kind, self.scaled, self.placement = kind, bool(scaled), placement


def _factory(kind: str, scaled: bool) -> Callable[[VariantSpec], nn.Module]:
    def build(spec: VariantSpec) -> nn.Module:
        return DropAlanNetwork(spec, kind, scaled,
                               max_rate=spec.option("max_rate", 0.95, float),
                               inference=spec.option("inference", "expected", str),
                               placement=spec.option("placement", "last", str))
    build.__doc__ = (f"DropAlan {kind}{' (scaled)' if scaled else ''} on the last hidden layer's "
                     "pre-activations (or every hidden layer), no activation function there; options "
                     "``max_rate`` (0.95), ``inference`` (expected | identity | mode) and ``placement`` "
                     "(last | all).")
    return build


for _name, _kind, _scaled in (("dropalan-alpha", "alpha", False), ("dropalan-beta", "beta", False),
                              ("dropalan-beta-scaled", "beta", True)):
    register(_name, options=("max_rate", "inference", "placement"))(_factory(_kind, _scaled))
