"""Name -> factory registry of dropout variants; feeds the CLI and the reproduction grid.

Example:
    >>> from trainer.dropout.registry import register, get
    >>> @register("my-method")
    ... def build(spec):
    ...     from trainer.models import MLP
    ...     return MLP(spec.sizes, spec.activation)
    >>> get("my-method") is build
    True
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .base import VariantSpec

Factory = Callable[[VariantSpec], nn.Module]

_FACTORIES: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator registering ``factory`` under ``name``; a second registration is an error."""
    if not name or name != name.strip():
        raise ValueError(f"invalid variant name {name!r}")

    def decorate(factory: Factory) -> Factory:
        existing = _FACTORIES.get(name)
        if existing is not None and existing is not factory:
            raise ValueError(f"dropout variant {name!r} is already registered")
        _FACTORIES[name] = factory
        return factory

    return decorate


def get(name: str) -> Factory:
    """The factory for ``name``. Raises ``KeyError`` listing the known names."""
    try:
        return _FACTORIES[name]
    except KeyError:
        raise KeyError(f"unknown dropout variant {name!r}; known: {', '.join(names())}") from None


def names() -> list[str]:
    """Registered names, sorted."""
    return sorted(_FACTORIES)


def build(spec: VariantSpec, name: str) -> nn.Module:
    """Shortcut: ``get(name)(spec)``."""
    return get(name)(spec)
