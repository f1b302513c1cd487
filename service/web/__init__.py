"""The DA-compatible web service: app factory, routes, auth, settings, errors, observability."""

from .app import create_app

__all__ = ["create_app"]
