"""Alpha dropout (Klambauer et al. 2017) for self-normalising networks: ``--dropout alpha``.

Plain dropout would break SELU's fixed point (zero mean, unit variance); alpha dropout sets
dropped units to SELU's negative saturation value and applies an affine correction so mean and
variance are kept. It only makes sense with SELU units and LeCun-normal initialisation, so this
variant builds exactly that network (the ``activation`` of the spec is overridden). On
``(batch, n)`` layers it is ``nn.AlphaDropout``; on channels ``nn.FeatureAlphaDropout`` (whole
channels). Identity at inference; functional twins ``F.alpha_dropout`` /
``F.feature_alpha_dropout``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import VariantModel, VariantSpec, build_network
from .registry import register

DEFAULT_P = 0.1  # Klambauer et al. recommend 0.05-0.1; larger rates destabilise SELU nets.


class UnitAlphaDropout(nn.AlphaDropout):
    """``nn.AlphaDropout`` on features, ``nn.FeatureAlphaDropout``'s rule on channels.

    Example:
        >>> UnitAlphaDropout(0.1).eval()(torch.ones(2, 3)).tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() <= 2:
            return F.alpha_dropout(h, self.p, self.training)
        return F.feature_alpha_dropout(h, self.p, self.training)

    def unit_keep_mask(self, num_units: int) -> torch.Tensor:
        return torch.full((num_units,), 1.0 - self.p)


@register("alpha")
def build(spec: VariantSpec) -> nn.Module:
    """SELU + LeCun normal + alpha dropout ``p`` (default 0.1); the spec's ``activation`` is
    overridden and ``mode`` has no effect."""
    p = float(DEFAULT_P if spec.p is None else spec.p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"alpha dropout p must be in [0, 1), got {p}")
    return VariantModel(build_network(spec, gates=lambda layer, n: UnitAlphaDropout(p), activation="selu"))
