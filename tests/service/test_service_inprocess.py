"""The app in-process (settings passed to the factory): authentication off when no keys are set,
and the limits read from the settings."""

from __future__ import annotations

from pathlib import Path

import asyncio

import httpx

from service.web.app import create_app
from service.web.settings import Settings, get_settings
from tests.service.conftest import random_terms


def test_no_keys_means_auth_off_and_settings_apply(tmp_path: Path) -> None:
    settings = Settings(database=str(tmp_path / "jobs.sqlite3"), api_keys="", workers=1, job_limit=1,
                        prefix="/custom")
    app = create_app(settings)

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://spinout") as client:
                payload = {"binary_polynomial": {"terms": random_terms(5)},
                           "fujitsuDA2": {"number_iterations": 20, "number_runs": 16}}
                r = await client.post("/custom/v2/qubo/solve", json=payload)
                assert r.json()["status"] == "Done"
                assert (await client.post("/v2/async/qubo/solve", json=payload)).status_code == 200
                second = await client.post("/v2/async/qubo/solve", json=payload)
                assert second.status_code == 429  # job_limit=1
                assert (await client.get("/da/v1/healthcheck")).status_code == 404  # prefix is /custom

    asyncio.run(scenario())


def test_sync_request_timeout_is_504(tmp_path: Path) -> None:
    settings = Settings(database=str(tmp_path / "jobs.sqlite3"), workers=1, request_timeout_sec=0.3)
    app = create_app(settings)

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://spinout") as client:
                payload = {"binary_polynomial": {"terms": random_terms(30)},
                           "fujitsuDA2": {"number_iterations": 1_000_000, "number_runs": 16}}
                r = await client.post("/v2/qubo/solve", json=payload)
                assert r.status_code == 504, r.text
                assert "asynchronous" in r.json()["error"]["message"]
                # the cancelled solve freed its thread: a small solve goes through at once
                small = {"binary_polynomial": {"terms": random_terms(5)},
                         "fujitsuDA2": {"number_iterations": 10, "number_runs": 16}}
                assert (await client.post("/v2/qubo/solve", json=small)).status_code == 200

    asyncio.run(scenario())


def test_settings_from_environment(monkeypatch: object) -> None:
    import pytest

    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("SPINOUT_API_KEYS", " a, b ,")
        mp.setenv("SPINOUT_JOB_LIMIT", "7")
        get_settings.cache_clear()
        s = get_settings()
        assert s.keys == ["a", "b"] and s.job_limit == 7 and s.normalized_prefix == "/da"
    finally:
        mp.undo()
        get_settings.cache_clear()


def test_fast_lane_answers_as_the_full_stack(tmp_path: Path) -> None:
    """The small-job routes skip FastAPI's router and middleware; every answer, errors included,
    must be the one the full stack gives."""
    import json

    import numpy as np

    from client.transport import CONTENT_TYPE, CompactProblem, encode_request, pattern_key

    settings = Settings(database=str(tmp_path / "jobs.sqlite3"), api_keys="k1", workers=1)
    app = create_app(settings)
    lane = app.build_middleware_stack().app
    full_calls = []
    full_stack = lane.stack

    async def counting_stack(scope: dict, receive: object, send: object) -> None:
        full_calls.append(scope["path"])
        await full_stack(scope, receive, send)

    lane.stack = counting_stack

    async def whole_stack(scope: dict, receive: object, send: object) -> None:
        scope["app"] = app  # as Starlette.__call__ sets it before the middleware stack
        await full_stack(scope, receive, send)
    for route in ("/v1/qubo/solve", "/v2/qubo/solve", "/da/v2/qubo/solve", "/spinout/v1/solve",
                  "/v3/async/qubo/solve"):
        assert ("POST", route) in lane.routes
    rows, cols = np.array([0, 1], np.int32), np.array([1, 2], np.int32)
    lean = CompactProblem(3, rows, cols, np.array([1.0, -2.0]), np.zeros(3), 0.0,
                          pattern_key(3, rows, cols))
    good = {"binary_polynomial": {"terms": random_terms(6)},
            "fujitsuDA2": {"number_iterations": 20, "number_runs": 16, "random_seed": 3}}
    key = {"X-Api-Key": "k1"}
    requests = [
        ("POST", "/v2/qubo/solve", json.dumps(good).encode(), {**key, "content-type": "application/json"}),
        ("POST", "/v2/qubo/solve", json.dumps(good).encode(), {"X-Api-Key": "wrong"}),
        ("POST", "/v2/qubo/solve", json.dumps(good).encode(), {}),
        ("POST", "/v1/qubo/solve", b"", key),
        ("POST", "/v1/qubo/solve", b"terms", {**key, "content-type": "text/plain"}),
        ("POST", "/v1/qubo/solve", b"{not json", {**key, "content-type": "application/json"}),
        ("POST", "/spinout/v1/solve", encode_request(lean, "fujitsuDA2", with_pattern=False),
         {**key, "content-type": CONTENT_TYPE}),
        ("GET", "/v1/healthcheck", b"", {}),
        ("GET", "/v3/async/jobs", b"", key),
    ]

    async def scenario() -> list[list[tuple[int, object]]]:
        answers: list[list[tuple[int, object]]] = []
        async with app.router.lifespan_context(app):
            for asgi in (lane, whole_stack):
                transport = httpx.ASGITransport(app=asgi)
                async with httpx.AsyncClient(transport=transport, base_url="http://spinout") as client:
                    got = []
                    for method, path, body, headers in requests:
                        r = await client.request(method, path, content=body, headers=headers)
                        payload = r.json() if r.headers.get("content-type", "").startswith("application/json") else r.content
                        if isinstance(payload, dict) and "qubo_solution" in payload:
                            payload["qubo_solution"].pop("timing", None)
                        got.append((r.status_code, payload))
                answers.append(got)
        return answers

    via_lane, via_stack = asyncio.run(scenario())
    assert full_calls == []  # the lane answered every one of them itself
    assert [s for s, _ in via_lane] == [200, 401, 400, 400, 415, 400, 409, 200, 200]
    assert via_lane == via_stack


def test_fast_lane_takes_only_endpoints_it_can_call_as_fastapi_would() -> None:
    from fastapi import Depends, FastAPI, Request
    from starlette.responses import Response

    from service.web.auth import authenticate
    from service.web.fast_lane import FastLane

    app = FastAPI()

    def extra() -> int:
        return 1

    @app.post("/plain")
    async def plain(request: Request, owner: str = Depends(authenticate)) -> Response:
        return Response(b"")

    @app.post("/more")
    async def more(request: Request, owner: str = Depends(authenticate), x: int = Depends(extra)) -> Response:
        return Response(b"")

    @app.get("/model")
    async def model() -> dict:  # FastAPI serialises this one
        return {}

    @app.get("/item/{item}")
    async def item(item: str) -> Response:
        return Response(item.encode())

    @app.post("/guarded", dependencies=[Depends(extra)])
    async def guarded(request: Request) -> Response:
        return Response(b"")

    lane = FastLane(None, app, [("", app.routes)])
    assert set(lane.routes) == {("POST", "/plain")}
