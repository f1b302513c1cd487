"""Dropout variants, one module each, registered by name on import.

Importing this package fills the registry: ``from trainer.dropout import registry;
registry.names()``.
"""

from __future__ import annotations

import importlib

from . import ising, none, pruning, registry
from .base import HarnessContext, VariantSpec

# Variants written in a parallel work stream (issue 6). Until each module lands, its import is
# skipped; once all exist this tolerance can go. Only ImportError for the module itself is
# swallowed, so a bug inside an existing module still surfaces.
_SIBLING_VARIANTS = ("standard", "gaussian", "alpha", "dropconnect", "dropneuron",
                     "mutual_information", "dropalan", "sparsevd")
for _name in _SIBLING_VARIANTS:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"{__name__}.{_name}":
            raise

__all__ = ["HarnessContext", "VariantSpec", "ising", "none", "pruning", "registry"]
