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
