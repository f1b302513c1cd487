"""A short path to the endpoints that small jobs hit, around FastAPI's router and middleware.

On the way to an endpoint FastAPI spends ~0.15 ms of CPU per request before the endpoint runs and
after it returns (six middlewares, route matching over ~100 routes, dependency injection); for
the trainer's mini-batch solves and the DA's small synchronous jobs that is a fifth of the
server's work. The fast lane serves the routes with a fixed path whose endpoint takes only the
``Request`` and the caller's ``owner`` (``Depends(authenticate)``): it calls the very endpoint
function FastAPI registered (so the code, the OpenAPI document and the errors are the same),
authenticates with the same dependency and maps exceptions with the app's own exception
handlers. Everything else (path parameters, request models, HEAD) takes the full stack.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from .auth import authenticate

__all__ = ["FastLane"]

Endpoint = Callable[..., Awaitable[Response]]


def _fast_signature(route: APIRoute) -> tuple[bool, bool] | None:
    """(takes request, takes owner) when the endpoint takes nothing else, declares no other
    dependency (a router's included) and returns a ``Response`` itself (nothing for FastAPI to
    serialise); None otherwise."""
    signature = inspect.signature(route.endpoint)
    if signature.return_annotation not in (Response, "Response"):
        return None
    takes_request = takes_owner = False
    for name, param in signature.parameters.items():
        if name == "request" and param.annotation in (Request, "Request"):
            takes_request = True
        elif name == "owner" and getattr(param.default, "dependency", None) is authenticate:
            takes_owner = True
        else:
            return None
    if len(route.dependant.dependencies) != int(takes_owner):
        return None
    return takes_request, takes_owner


@dataclass(frozen=True)
class _Served:
    """One fast route: what ``scope["route"]`` shows (its ``path`` template) and how to call it."""

    path: str
    endpoint: Endpoint
    takes_request: bool
    takes_owner: bool


class FastLane:
    """ASGI app: (method, path) of an eligible route -> its endpoint, else the full ``stack``.

    Args:
        stack: the app's full middleware stack.
        app: the FastAPI app (its state and exception handlers).
        routers: (prefix, routes) of every route list the app serves: its own and each included
            router's (FastAPI may keep included routers unexpanded in ``app.routes``).
    """

    def __init__(self, stack: Any, app: FastAPI, routers: Iterable[tuple[str, Iterable[Any]]]) -> None:
        self.stack = stack
        self.app = app
        self.routes: dict[tuple[str, str], _Served] = {}
        for prefix, routes in routers:
            for route in routes:
                if not isinstance(route, APIRoute) or route.param_convertors:
                    continue
                signature = _fast_signature(route)
                if signature is None:
                    continue
                served = _Served(prefix + route.path, route.endpoint, *signature)
                for method in route.methods or ():
                    # HEAD answers without a body: left to the full stack, which knows that.
                    if method != "HEAD":
                        self.routes.setdefault((method, served.path), served)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            entry = self.routes.get((scope["method"], scope["path"]))
            if entry is not None:
                await self._serve(entry, scope, receive, send)
                return
        await self.stack(scope, receive, send)

    async def _serve(self, served: _Served, scope: dict, receive: Any, send: Any) -> None:
        scope["app"] = self.app
        scope["route"] = served  # the metrics label requests by route template
        request = Request(scope, receive)
        try:
            kwargs: dict[str, Any] = {}
            if served.takes_request:
                kwargs["request"] = request
            if served.takes_owner:
                kwargs["owner"] = await authenticate(request)
            response = await served.endpoint(**kwargs)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Callable[..., Awaitable[Response]] | None:
        """The app's exception handler for ``exc`` (the closest class in its MRO)."""
        handlers = self.app.exception_handlers
        for cls in type(exc).__mro__:
            if cls in handlers:
                return handlers[cls]  # type: ignore[return-value]
        return None
