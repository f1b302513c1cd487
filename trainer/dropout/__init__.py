"""Dropout variants, one module each, registered by name on import.

Importing this package fills the registry: ``from trainer.dropout import registry;
registry.names()``.
"""

from __future__ import annotations

from . import (alpha, dropalan, dropconnect, dropneuron, gaussian, ising, mutual_information, none,
               pruning_baselines, registry, sparsevd, standard)
from .base import HarnessContext, VariantSpec

__all__ = ["HarnessContext", "VariantSpec", "alpha", "dropalan", "dropconnect", "dropneuron",
           "gaussian", "ising", "mutual_information", "none", "pruning_baselines", "registry",
           "sparsevd", "standard"]
