"""What a maintainer adds the standard FastAPI way applies to every route of the service.

Each case is served by uvicorn on loopback and asked once on every route (DA sync and async
routes with and without the prefix, the compact routes, health and metrics): an app-level
dependency, a router-level dependency, ``dependency_overrides[authenticate]``,
``TrustedHostMiddleware`` and FastAPI's ``max_body_size``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import Depends, FastAPI, HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from client.wire.compact import CONTENT_TYPE, CompactProblem, encode_request
from service.web.app import create_app
from service.web.auth import authenticate
from fastapi import APIRouter

from service.web.routes import add_da_routes
from service.web.settings import Settings
from tests.servers import free_port
from tests.service.conftest import random_terms

KEY = "guarantee-key"
DA_JOB = json.dumps({"binary_polynomial": {"terms": random_terms(6, seed=5)},
                     "fujitsuDA3": {"time_limit_sec": 1, "random_seed": 1}}).encode()
DA2_SYNC = json.dumps({"binary_polynomial": {"terms": random_terms(6, seed=5)},
                       "fujitsuDA2": {"number_iterations": 20, "number_runs": 16}}).encode()
_rows, _cols = np.array([0, 1], np.int32), np.array([1, 2], np.int32)
COMPACT = encode_request(CompactProblem(3, _rows, _cols, np.array([1.0, -2.0]), np.zeros(3), 0.0),
                         "fujitsuDA2", {"number_iterations": 20, "number_runs": 16})

#: (method, path, body, content type): every route the service serves.
ROUTES: list[tuple[str, str, bytes, str | None]] = [
    ("GET", "/v1/healthcheck", b"", None),
    ("GET", "/metrics", b"", None),
    ("POST", "/v1/qubo/solve", json.dumps({"binary_polynomial": {"terms": random_terms(6)},
                                           "fujitsuDA": {"number_iterations": 20}}).encode(),
     "application/json"),
    ("POST", "/da/v2/qubo/solve", DA2_SYNC, "application/json"),
    ("POST", "/v3/async/qubo/solve", DA_JOB, "application/json"),
    ("POST", "/da/v4/async/qubo/solve", DA_JOB, "application/json"),
    ("GET", "/v3c/async/jobs", b"", None),
    ("GET", "/da/v2/async/jobs/result/no-such-job", b"", None),
    ("DELETE", "/v4/async/jobs/result/no-such-job", b"", None),
    ("POST", "/v3/async/jobs/cancel", b'{"job_id": "no-such-job"}', "application/json"),
    ("POST", "/spinout/v1/solve", COMPACT, CONTENT_TYPE),
    ("POST", "/spinout/v1/async/solve", COMPACT, CONTENT_TYPE),
    ("GET", "/spinout/v1/async/jobs/result/no-such-job", b"", None),
]
#: What each route answers an authenticated caller when nothing is added.
PLAIN = [200, 200, 200, 200, 200, 200, 200, 404, 404, 404, 200, 200, 404]


@contextlib.contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """uvicorn on a loopback port in this process (the app object stays in the test's hands)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


def statuses(url: str, headers: dict[str, str] | None = None) -> list[int]:
    out = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for method, path, body, content_type in ROUTES:
            h = {"X-Api-Key": KEY, **(headers or {})}
            if content_type:
                h["Content-Type"] = content_type
            out.append(http.request(method, path, content=body or None, headers=h).status_code)
    return out


def settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(database=str(tmp_path / "jobs.sqlite3"), api_keys=KEY, workers=1,
                    **overrides)  # type: ignore[arg-type]


async def deny() -> None:
    raise HTTPException(403, "denied by the added dependency")


def test_nothing_added_every_route_answers(tmp_path: Path) -> None:
    with served(create_app(settings(tmp_path))) as url:
        assert statuses(url) == PLAIN


def test_an_app_level_dependency_applies_to_every_route(tmp_path: Path) -> None:
    with served(create_app(settings(tmp_path), dependencies=[Depends(deny)])) as url:
        assert statuses(url) == [403] * len(ROUTES)


def test_a_router_level_dependency_applies_to_its_routes(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path, prefix="/"))
    app.include_router(add_da_routes(APIRouter()), prefix="/da", dependencies=[Depends(deny)])
    with served(app) as url:
        got = statuses(url)
    for (_, path, _, _), status, plain in zip(ROUTES, got, PLAIN):
        assert status == (403 if path.startswith("/da/") else plain), path


def test_dependency_overrides_replace_authentication(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path))

    async def someone() -> str:
        return "someone"

    app.dependency_overrides[authenticate] = someone
    with served(app) as url:
        # No key, a wrong key: the override decides, on every route.
        assert statuses(url, {"X-Api-Key": "wrong"}) == PLAIN
        app.dependency_overrides.clear()
        assert statuses(url, {"X-Api-Key": "wrong"}) == [200, 200] + [401] * (len(ROUTES) - 2)


def test_trusted_host_middleware_applies_to_every_route(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path))
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["solver.example"])
    with served(app) as url:
        assert statuses(url) == [400] * len(ROUTES)
        assert statuses(url, {"Host": "solver.example"}) == PLAIN


@pytest.mark.parametrize("limit", [512])
def test_fastapi_max_body_size_applies_to_every_route(tmp_path: Path, limit: int) -> None:
    app = create_app(settings(tmp_path))
    app.max_body_size = limit  # read when the middleware stack is built, at the first request
    with served(app) as url:
        got = statuses(url)
    for (method, path, body, _), status, plain in zip(ROUTES, got, PLAIN):
        assert status == (413 if len(body) > limit else plain), (method, path, len(body))
    assert sum(len(body) > limit for _, _, body, _ in ROUTES) >= 4
