"""Name -> factory registry of dropout variants; feeds the CLI and the reproduction grid.

Each registration declares the variant's options (the keys it reads from
``VariantSpec.options``), so a misspelt ``--option`` is an error naming the valid keys instead
of being silently ignored. :func:`get` returns the factory wrapped with that check.

Example:
    >>> from trainer.dropout.registry import register, get, known_options
    >>> @register("my-method", options=("width",))
    ... def build(spec):
    ...     from trainer.models import MLP
    ...     return MLP(spec.sizes, spec.activation)
    >>> get("my-method").__wrapped__ is build
    True
    >>> sorted(known_options("my-method"))
    ['width']
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from torch import nn

from .base import VariantSpec

Factory = Callable[[VariantSpec], nn.Module]

_FACTORIES: dict[str, Factory] = {}
_CHECKED: dict[str, Factory] = {}
_OPTIONS: dict[str, frozenset[str]] = {}


def register(name: str, options: Iterable[str] = ()) -> Callable[[Factory], Factory]:
    """Decorator registering ``factory`` under ``name``; a second registration is an error.

    Args:
        name: the ``--dropout`` name.
        options: every key the factory reads from ``spec.options``; any other key is rejected
            by :func:`check_options` (default: the variant takes no options).
    """
    if not name or name != name.strip():
        raise ValueError(f"invalid variant name {name!r}")
    known = frozenset(options)

    def decorate(factory: Factory) -> Factory:
        existing = _FACTORIES.get(name)
        if existing is not None and existing is not factory:
            raise ValueError(f"dropout variant {name!r} is already registered")

        @functools.wraps(factory)
        def checked(spec: VariantSpec) -> nn.Module:
            check_options(name, spec.options)
            return factory(spec)

        _FACTORIES[name] = factory
        _CHECKED[name] = checked
        _OPTIONS[name] = known
        return factory

    return decorate


def get(name: str) -> Factory:
    """The factory for ``name``, rejecting unknown options (:func:`check_options`) before it builds.

    Raises:
        KeyError: an unknown name (the message lists the known ones).
    """
    try:
        return _CHECKED[name]
    except KeyError:
        raise KeyError(f"unknown dropout variant {name!r}; known: {', '.join(names())}") from None


def known_options(name: str) -> frozenset[str]:
    """The option keys variant ``name`` accepts. Raises ``KeyError`` like :func:`get`."""
    get(name)
    return _OPTIONS[name]


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the unknown keys of ``options`` and the valid ones for ``name``."""
    known = known_options(name)
    unknown = sorted(set(options) - known)
    if unknown:
        valid = f"valid: {', '.join(sorted(known))}" if known else f"variant {name!r} takes no options"
        raise ValueError(f"unknown {name} option(s) {', '.join(unknown)}; {valid}")


def names() -> list[str]:
    """Registered names, sorted."""
    return sorted(_FACTORIES)


def build(spec: VariantSpec, name: str) -> nn.Module:
    """Shortcut: ``get(name)(spec)``."""
    return get(name)(spec)
