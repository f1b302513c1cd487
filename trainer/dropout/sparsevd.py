"""Sparse Variational Dropout (Molchanov, Ashukha & Vetrov 2017): learn a drop rate per weight.

Each weight has a Gaussian posterior ``N(theta, alpha theta^2)`` under the log-uniform prior.
With the additive reparameterisation the layer learns ``theta`` and ``log sigma^2`` and derives
``log alpha = log sigma^2 - log(theta^2 + 1e-8)``, clipped to [-8, 8]. Training samples the
pre-activations directly (local reparameterisation: mean ``x theta^T + b``, variance
``x^2 sigma^2^T``), which has far lower gradient variance than sampling weights. The KL term
uses the paper's approximation

    -KL ~= k1 sigmoid(k2 + k3 log alpha) - 0.5 log1p(exp(-log alpha)) - k1

and enters the loss as ``w_t * KL / N`` (the per-example form of ``N * CE + w_t * KL``, since
the harness minimises the mean cross-entropy), the KL weight ``w_t`` warmed up linearly from 0
to 1 between epochs ``kl_warmup_start`` and ``kl_warmup_end``. At inference, weights with
``log alpha >= 3`` (a drop rate ``alpha / (1 + alpha)`` above 95 %) are zeroed; the rest are
used at their mean — so ``eval()`` is not the identity of the training noise but the pruned net.
Convolutions get the same posterior per kernel weight (:class:`Conv2dSVDO`, the reference
code's ``Conv2dSVDO``), so the variant runs on the MLP and the CNN alike.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..models import Connections
from .base import HarnessContext, VariantModel, VariantSpec, build_network
from .dropneuron import network_dead_units, network_parameter_counts
from .registry import register

K1, K2, K3 = 0.63576, 1.87320, 1.48695
LOG_ALPHA_CLIP = 8.0
PRUNE_LOG_ALPHA = 3.0
INIT_LOG_SIGMA2 = -10.0


def neg_kl_approximation(log_alpha: torch.Tensor) -> torch.Tensor:
    """Molchanov et al.'s approximation of ``-KL(q || p)`` per weight (log-uniform prior),
    normalised so it tends to 0 as ``log alpha -> inf``; always <= 0."""
    return K1 * torch.sigmoid(K2 + K3 * log_alpha) - 0.5 * F.softplus(-log_alpha) - K1


def log_alpha_of(theta: torch.Tensor, log_sigma2: torch.Tensor, clip: float = LOG_ALPHA_CLIP) -> torch.Tensor:
    """``clamp(log sigma^2 - log(theta^2 + 1e-8), -clip, clip)``."""
    return (log_sigma2 - torch.log(theta * theta + 1e-8)).clamp(-clip, clip)


def svdo_linear(x: torch.Tensor, theta: torch.Tensor, log_sigma2: torch.Tensor, bias: torch.Tensor | None,
                training: bool = True, threshold: float = PRUNE_LOG_ALPHA, clip: float = LOG_ALPHA_CLIP,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """The SparseVD linear map: a local-reparameterisation sample while training, else the
    pruned mean (weights with ``log alpha >= threshold`` zeroed).

    Args:
        x: (batch, in_features).
        theta, log_sigma2: (out_features, in_features).
        bias: (out_features,) or None.
        training: sample the output when True.
        threshold: the ``log alpha`` from which a weight is pruned at inference.
        clip: the clip of ``log alpha``.
        generator: optional source of the Gaussian noise.
    """
    if training:
        mean = F.linear(x, theta, bias)
        var = F.linear(x * x, torch.exp(log_sigma2))
        noise = torch.randn(mean.shape, dtype=mean.dtype, device=mean.device, generator=generator)
        return mean + torch.sqrt(var + 1e-8) * noise
    keep = (log_alpha_of(theta, log_sigma2, clip) < threshold).to(theta.dtype)
    return F.linear(x, theta * keep, bias)


class _SVDOLayer(nn.Module):
    """What the linear and convolutional SparseVD layers share: ``theta``, ``log sigma^2``, the
    bias, ``log alpha``, the pruned inference weight and the KL."""

    theta: nn.Parameter
    log_sigma2: nn.Parameter
    bias: nn.Parameter | None

    def _init_parameters(self, shape: tuple[int, ...], fan_in: int, bias: bool, threshold: float, clip: float,
                         init_log_sigma2: float) -> None:
        if min(shape) < 1:
            raise ValueError(f"features must be >= 1, got {shape}")
        if not clip > 0 or not -clip < threshold < clip:
            raise ValueError(f"need clip > 0 and -clip < threshold < clip, got clip={clip}, threshold={threshold}")
        self.threshold, self.clip, self.init_log_sigma2 = float(threshold), float(clip), float(init_log_sigma2)
        self.theta = nn.Parameter(torch.empty(shape))
        self.log_sigma2 = nn.Parameter(torch.full(shape, self.init_log_sigma2))
        self.bias = nn.Parameter(torch.zeros(shape[0])) if bias else None
        nn.init.kaiming_uniform_(self.theta, a=math.sqrt(5))  # nn.Linear's / nn.Conv2d's initialisation
        if self.bias is not None:
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def log_alpha(self) -> torch.Tensor:
        return log_alpha_of(self.theta, self.log_sigma2, self.clip)

    @property
    def weight(self) -> torch.Tensor:
        """The weights used at inference (pruned means), for inspection and counting."""
        with torch.no_grad():
            return self.theta * (self.log_alpha < self.threshold).to(self.theta.dtype)

    def kl(self) -> torch.Tensor:
        """The approximate ``KL(q || p)`` summed over the layer's weights (>= 0)."""
        return -neg_kl_approximation(self.log_alpha).sum()


class LinearSVDO(_SVDOLayer):
    """A linear layer with Sparse Variational Dropout (the reference code's ``LinearSVDO``).

    Example:
        >>> layer = LinearSVDO(784, 300)
        >>> layer(torch.zeros(2, 784)).shape
        torch.Size([2, 300])
        >>> bool(layer.kl() > 0)
        True
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 threshold: float = PRUNE_LOG_ALPHA, clip: float = LOG_ALPHA_CLIP,
                 init_log_sigma2: float = INIT_LOG_SIGMA2) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._init_parameters((out_features, in_features), in_features, bias, threshold, clip, init_log_sigma2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return svdo_linear(x, self.theta, self.log_sigma2, self.bias, self.training, self.threshold, self.clip)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, threshold={self.threshold}, clip={self.clip}, "
                f"init_log_sigma2={self.init_log_sigma2}")


class Conv2dSVDO(_SVDOLayer):
    """A 2-d convolution with Sparse Variational Dropout on every kernel weight.

    Training samples the output with the local reparameterisation (mean ``conv(x, theta)``,
    variance ``conv(x^2, sigma^2)``); inference convolves with the pruned mean.

    Example:
        >>> layer = Conv2dSVDO(1, 6, 5, padding=2)
        >>> layer(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 6, 28, 28])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 bias: bool = True, threshold: float = PRUNE_LOG_ALPHA, clip: float = LOG_ALPHA_CLIP,
                 init_log_sigma2: float = INIT_LOG_SIGMA2) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.padding = int(kernel_size), int(padding)
        shape = (out_channels, in_channels, self.kernel_size, self.kernel_size)
        self._init_parameters(shape, in_channels * self.kernel_size ** 2, bias, threshold, clip, init_log_sigma2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean = F.conv2d(x, self.theta, self.bias, padding=self.padding)
            var = F.conv2d(x * x, torch.exp(self.log_sigma2), padding=self.padding)
            return mean + torch.sqrt(var + 1e-8) * torch.randn_like(mean)
        keep = (self.log_alpha < self.threshold).to(self.theta.dtype)
        return F.conv2d(x, self.theta * keep, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"padding={self.padding}, threshold={self.threshold}, clip={self.clip}")


class SVDOConnections(Connections):
    """Every connection a SparseVD layer with pruning threshold ``threshold``."""

    def __init__(self, threshold: float = PRUNE_LOG_ALPHA) -> None:
        self.threshold = float(threshold)

    def linear(self, index: int, in_features: int, out_features: int) -> nn.Module:
        return LinearSVDO(in_features, out_features, threshold=self.threshold)

    def conv2d(self, index: int, in_channels: int, out_channels: int, kernel_size: int,
               padding: int) -> nn.Module:
        return Conv2dSVDO(in_channels, out_channels, kernel_size, padding, threshold=self.threshold)


def kl_weight(epoch: int, start: float, end: float) -> float:
    """Linear warm-up of the KL weight: 0 before ``start``, 1 from ``end`` (epochs counted from 0)."""
    if end <= start:
        return 1.0 if epoch >= start else 0.0
    return min(1.0, max(0.0, (epoch - start) / (end - start)))


class SparseVD(VariantModel):
    """A network of SparseVD layers (:class:`LinearSVDO`, :class:`Conv2dSVDO`) with the KL
    regulariser and its warm-up.

    Args:
        spec: the network (``model``, ``sizes``, ``activation``); no gates.
        kl_warmup_start, kl_warmup_end: epochs between which the KL weight rises from 0 to 1.
        num_train: training-set size N for the KL scale; learnt from the harness at the end of
            the first epoch when not given (the KL weight of epoch 0 is then taken as 0). The
            CLI passes it (``VariantSpec.num_train``), so the KL can act from the first step.
        threshold: prune ``log alpha >=`` this at inference (3).
    """

    def __init__(self, spec: VariantSpec, kl_warmup_start: float = 0.0,
                 kl_warmup_end: float = 5.0, num_train: int | None = None,
                 threshold: float = PRUNE_LOG_ALPHA) -> None:
        if kl_warmup_start < 0 or kl_warmup_end < 0:
            raise ValueError(f"KL warm-up epochs must be >= 0, got {kl_warmup_start}, {kl_warmup_end}")
        if num_train is not None and num_train < 1:
            raise ValueError(f"num_train must be >= 1, got {num_train}")
        super().__init__(build_network(spec, connections=SVDOConnections(threshold), include_input=False))
        self.kl_warmup_start, self.kl_warmup_end = float(kl_warmup_start), float(kl_warmup_end)
        self.num_train = num_train
        self.kl_scale = kl_weight(0, self.kl_warmup_start, self.kl_warmup_end) if num_train else 0.0

    def layers(self) -> list[_SVDOLayer]:
        """The SparseVD layers, typed."""
        return [cast(_SVDOLayer, layer) for layer in self.network.connections]

    def kl(self) -> torch.Tensor:
        """The approximate KL of the whole network (>= 0)."""
        return torch.stack([layer.kl() for layer in self.layers()]).sum()

    def regularization_loss(self) -> torch.Tensor:
        if self.kl_scale == 0.0 or not self.num_train:
            return torch.zeros(())
        return self.kl_scale * self.kl() / self.num_train

    def on_epoch_end(self, epoch: int, context: HarnessContext) -> None:
        """Learn N from the data and set the KL weight for the next epoch (``epoch`` = epochs done)."""
        if not self.num_train:
            self.num_train = int(context.data.train_x.shape[0])
        self.kl_scale = kl_weight(epoch, self.kl_warmup_start, self.kl_warmup_end)
        context.log["sparsevd_kl_weight"] = self.kl_scale

    def selectable(self, epoch: int) -> bool:
        """Whether the weights after ``epoch`` completed epochs may be chosen as the best ones.

        Only epochs trained with the full KL weight: before that the network is barely sparse,
        yet its validation accuracy is often the run's highest, so best-epoch restoration would
        throw the compression away (seen: 40 epochs, warm-up 5 -> 15, restored epoch 5, 1.02x
        instead of ~17x).
        """
        return epoch > self.kl_warmup_end

    def finish_training(self, context: HarnessContext) -> None:
        total, remaining = self.parameter_counts()
        context.log["sparsevd"] = {
            "weights_kept_per_layer": [int(torch.count_nonzero(l.weight)) for l in self.layers()],
            "weights_per_layer": [l.theta.numel() for l in self.layers()],
            "sparsity_per_layer_pct": [100.0 * (1 - int(torch.count_nonzero(l.weight)) / l.theta.numel())
                                       for l in self.layers()],
            "params_total": total,
            "params_remaining": remaining,
            "compression": total / remaining if remaining else math.inf,
        }

    def unit_keep_masks(self) -> list[torch.Tensor]:
        return [(~d).float() for d in network_dead_units(self.network, [l.weight for l in self.layers()])]

    def parameter_counts(self) -> tuple[int, int]:
        """(all weights and biases, kept weights plus live biases); ``log sigma^2`` is a training
        variable only and not counted."""
        return network_parameter_counts(self.network, [l.weight for l in self.layers()])

    def extra_repr(self) -> str:
        return (f"kl_warmup=({self.kl_warmup_start}, {self.kl_warmup_end}), "
                f"num_train={self.num_train}")


@register("sparsevd", options=("kl_warmup_start", "kl_warmup_end", "num_train", "threshold"))
def build(spec: VariantSpec) -> nn.Module:
    """Options ``kl_warmup_start`` (0), ``kl_warmup_end`` (5 epochs), ``num_train`` (default
    ``spec.num_train``, else learnt from the data after epoch 0), ``threshold`` (3); ``p``,
    ``mode`` and ``include_input`` have no effect (the input's weights are pruned like all
    others). Best-epoch restoration considers only epochs after the warm-up (``selectable``)."""
    return SparseVD(spec, kl_warmup_start=spec.option("kl_warmup_start", 0.0, float),
                    kl_warmup_end=spec.option("kl_warmup_end", 5.0, float),
                    num_train=spec.option("num_train", spec.num_train, int),
                    threshold=spec.option("threshold", PRUNE_LOG_ALPHA, float))
