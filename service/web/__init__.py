"""The DA-compatible web service: app factory, routes, auth, settings, errors, observability.

``create_app`` is loaded on first use, so ``service.web.settings`` can be read without the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
