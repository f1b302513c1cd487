"""Round trips against the real service (``spinout serve`` on loopback, see conftest.py)."""

from __future__ import annotations

import asyncio
import itertools
import time

import dimod
import numpy as np
import pytest
import scipy.sparse as sp

from client import (NO_RETRY, AsyncSolverClient, AuthenticationError, BadRequestError, JobFailedError,
                    LimitReachedError, NotFoundError, ProblemError, SolverClient, SolveTimeoutError,
                    encode_problem)

N = 10


@pytest.fixture(scope="module")
def qubo() -> np.ndarray:
    rng = np.random.default_rng(11)
    q = rng.integers(-9, 10, size=(N, N)).astype(np.float64)
    return np.triu(q)


@pytest.fixture(scope="module")
def ground(qubo: np.ndarray) -> float:
    x = np.array(list(itertools.product([0, 1], repeat=N)), dtype=np.float64)
    return float(np.einsum("ki,ij,kj->k", x, qubo, x).min())


def forms(q: np.ndarray) -> dict[str, object]:
    rows, cols = np.nonzero(q)
    as_dict = {(int(i), int(j)): float(q[i, j]) for i, j in zip(rows, cols)}
    return {
        "dense": q,
        "sparse": sp.coo_matrix(q),
        "dict": as_dict,
        "terms": [{"coefficient": c, "polynomials": [i, j]} for (i, j), c in as_dict.items()],
        "bqm": dimod.BinaryQuadraticModel.from_qubo(as_dict),
    }


def check(result, problem, ground: float) -> None:
    enc = encode_problem(problem)
    assert result.states.shape[1] == N
    np.testing.assert_allclose(result.energies, enc.energies(result.states))  # the service scored right
    assert np.all(np.diff(result.energies) >= 0)
    assert result.best.energy == pytest.approx(ground)


@pytest.mark.parametrize("form", ["dense", "sparse", "dict", "terms", "bqm"])
def test_sync_round_trip_each_form(service, qubo, ground, form) -> None:
    problem = forms(qubo)[form]
    with SolverClient(service.url, api_key=service.api_key) as client:
        result = client.solve(problem, "fujitsuDA2", number_iterations=2000, random_seed=1)
    assert result.job_id is None
    assert result.frequencies.sum() >= 1
    check(result, problem, ground)
    if form == "bqm":
        assert result.labels == tuple(problem.variables)


def test_v1_solvers_sync(service, qubo, ground) -> None:
    with SolverClient(service.url, api_key=service.api_key) as client:
        for solver, params in (("fujitsuDA", {"number_iterations": 2000, "number_runs": 16}),
                               ("fujitsuDAPT", {"number_iterations": 500, "number_replicas": 16})):
            check(client.solve(qubo, solver, random_seed=3, **params), qubo, ground)


@pytest.mark.parametrize("form", ["dense", "sparse", "dict", "terms", "bqm"])
def test_async_round_trip_each_form(service, qubo, ground, form) -> None:
    """fujitsuDA3 goes the asynchronous route; the finished job is fetched and removed."""
    problem = forms(qubo)[form]
    with SolverClient(service.url, api_key=service.api_key) as client:
        result = client.solve(problem, "fujitsuDA3", time_limit_sec=5, target_energy=ground)
        check(result, problem, ground)
        assert result.job_id and result.timing["total_elapsed_time"] < 5
        assert result.job_id not in {j.job_id for j in client.list_jobs()}  # consumed
        with pytest.raises(NotFoundError):
            client.status(result.job_id)


def test_async_client_concurrent_solves(service, qubo, ground) -> None:
    problems = forms(qubo)

    async def go():
        async with AsyncSolverClient(service.url, api_key=service.api_key) as client:
            assert await client.healthcheck()
            sync = client.solve(problems["dense"], "fujitsuDA2", number_iterations=2000)
            a = client.solve(problems["dict"], "fujitsuDA3", time_limit_sec=5, target_energy=ground)
            b = client.solve(problems["bqm"], "fujitsuDA2", mode="async", number_iterations=2000)
            return await asyncio.gather(sync, a, b)

    results = asyncio.run(go())
    for result, name in zip(results, ["dense", "dict", "bqm"]):
        check(result, problems[name], ground)
    assert results[0].job_id is None and results[1].job_id and results[2].job_id


def test_submit_wait_keep_and_delete(service, qubo, ground) -> None:
    with SolverClient(service.url, api_key=service.api_key) as client:
        job_id = client.submit(qubo, "fujitsuDA3", time_limit_sec=5, target_energy=ground)
        assert client.status(job_id) in ("Waiting", "Running", "Done")
        assert job_id in {j.job_id for j in client.list_jobs()}
        result = client.wait(job_id)
        check(result, qubo, ground)
        again = client.result(job_id)  # waiting did not remove it
        assert again is not None and again.best.energy == result.best.energy
        assert client.delete(job_id) == "Deleted"
        with pytest.raises(NotFoundError) as info:
            client.result(job_id)
        assert info.value.job_id == job_id


def test_delete_and_cancel_leave_a_running_job(service, qubo) -> None:
    """With one worker: a 2 s job runs, a second waits. DELETE leaves the running one alone,
    cancel turns the waiting one to Canceled."""
    with SolverClient(service.url, api_key=service.api_key) as client:
        running = client.submit(qubo, "fujitsuDA3", time_limit_sec=2)
        waiting = client.submit(qubo, "fujitsuDA3", time_limit_sec=2)
        deadline = time.monotonic() + 10
        while client.status(running) == "Waiting" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.status(running) == "Running"
        assert client.status(waiting) == "Waiting"
        assert client.delete(running) == "Running"  # not removed
        assert client.cancel(waiting) == "Canceled"
        assert client.status(waiting) == "Canceled"
        with pytest.raises(JobFailedError, match="canceled") as info:
            client.wait(waiting)
        assert info.value.job_id == waiting
        assert client.cancel(running) in ("Running", "Done")  # only a Waiting job can be cancelled
        assert client.wait(running, delete=True).status == "Deleted"
        client.delete(waiting)
        assert not {running, waiting} & {j.job_id for j in client.list_jobs()}


def test_timeout_says_how_to_resume(service, qubo) -> None:
    with SolverClient(service.url, api_key=service.api_key) as client:
        with pytest.raises(SolveTimeoutError) as info:
            client.solve(qubo, "fujitsuDA3", time_limit_sec=2, timeout=0.3)
        job_id = info.value.job_id
        assert job_id and f"client.wait({job_id!r})" in str(info.value)
        result = client.wait(job_id, timeout=30, delete=True)
        assert result.job_id == job_id and len(result) >= 1


def test_authentication_errors(service, qubo) -> None:
    with SolverClient(service.url, api_key="not-a-key") as client, pytest.raises(AuthenticationError) as info:
        client.list_jobs()
    assert info.value.status_code == 401 and info.value.server_message
    with SolverClient(service.url) as client, pytest.raises(BadRequestError):
        client.list_jobs()  # no key at all: the DA answers 400


def test_jobs_belong_to_their_key(service, qubo) -> None:
    with SolverClient(service.url, api_key=service.api_key) as owner, \
            SolverClient(service.url, api_key=service.other_key) as other:
        job_id = owner.submit(qubo, "fujitsuDA3", time_limit_sec=1)
        with pytest.raises(NotFoundError):
            other.status(job_id)
        assert job_id not in {j.job_id for j in other.list_jobs()}
        owner.wait(job_id, delete=True)


def test_server_side_bad_request_carries_message(service, qubo) -> None:
    with SolverClient(service.url, api_key=service.api_key) as client:
        with pytest.raises(BadRequestError) as info:  # two problem forms in one body
            client.solve(qubo, "fujitsuDA2", extra={"qubo_matrix": {"qubo": [{"qubo_row": [1.0]}]}})
        assert info.value.status_code == 400 and info.value.server_message
        with pytest.raises(NotFoundError):
            client.status("no-such-job")
        with pytest.raises(ProblemError):  # refused before sending: 1,025 bits on a v1 solver
            client.solve({(0, 1024): 1.0}, "fujitsuDA")


def test_job_limit_is_limit_reached(service, qubo) -> None:
    with SolverClient(service.url, api_key=service.limit_key, retry=NO_RETRY) as client:
        jobs = [client.submit(qubo, "fujitsuDA3", time_limit_sec=1) for _ in range(service.job_limit)]
        with pytest.raises(LimitReachedError) as info:
            client.submit(qubo, "fujitsuDA3", time_limit_sec=1)
        assert info.value.status_code == 429
        for job_id in jobs:
            client.cancel(job_id)
            client.wait(job_id, delete=True) if client.status(job_id) != "Canceled" else client.delete(job_id)
        assert client.list_jobs() == []


@pytest.fixture(scope="module")
def big_qubo() -> np.ndarray:
    """150 variables, dense: ~11,000 terms, past the compact transport's threshold."""
    rng = np.random.default_rng(5)
    return np.triu(rng.integers(-20, 21, size=(150, 150)).astype(np.float64))


def test_compact_transport_same_answer_as_json(service, big_qubo) -> None:
    with SolverClient(service.url, api_key=service.api_key) as client:
        compact = client.solve(big_qubo, "fujitsuDA2", number_iterations=3000, random_seed=9)
        as_json = client.solve(big_qubo, "fujitsuDA2", number_iterations=3000, random_seed=9,
                               transport="json")
    assert compact.raw.get("transport") == "compact" and "transport" not in as_json.raw
    np.testing.assert_allclose(compact.energies, encode_problem(big_qubo).energies(compact.states))
    np.testing.assert_array_equal(compact.states, as_json.states)  # same seed, same problem
    np.testing.assert_allclose(compact.energies, as_json.energies)


@pytest.mark.parametrize("transport", ["compact", "json"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_guidance_array_starts_the_search(service, transport: str, mode: str) -> None:
    # Every bit costs +1 when set: from the guidance state, one cold DA iteration with no offset
    # can only clear one set bit, so the answer is the guidance with exactly one 1 turned to 0.
    n = 40
    guidance = np.random.default_rng(3).integers(0, 2, n).astype(np.uint8)
    with SolverClient(service.url, api_key=service.api_key) as client:
        result = client.solve(np.eye(n), "fujitsuDA2", mode=mode, transport=transport, guidance_config=guidance,
                              expert_mode=True, number_iterations=1, temperature_start=1e-6,
                              offset_increase_rate=0.0, random_seed=4)
        changed = np.flatnonzero(result.best.state != guidance)
        assert changed.size == 1 and guidance[changed[0]] == 1
        with pytest.raises(ProblemError, match="guidance_config"):
            client.solve(np.eye(n), "fujitsuDA2", guidance_config=np.full(n, 2))
        with pytest.raises(ProblemError, match="40 variables"):
            client.solve(np.eye(n), "fujitsuDA2", guidance_config=guidance[:-1])


def test_compact_guidance_state_is_checked_by_the_service(service) -> None:
    import httpx

    from client.wire.compact import CONTENT_TYPE, CompactProblem, encode_request

    problem = CompactProblem.from_arrays([0], [1], [1.0], num_variables=3)
    for bad in (np.array([1, 0], np.uint8), np.array([1, 2, 0], np.uint8)):
        body = encode_request(problem, "fujitsuDA2", {}, guidance_state=bad)
        r = httpx.post(f"{service.url}/spinout/v1/solve", content=body,
                       headers={"Content-Type": CONTENT_TYPE, "X-Api-Key": service.api_key})
        assert r.status_code == 400 and "guidance_state" in r.json()["error"]["message"]


def test_compact_transport_async_job(service, big_qubo) -> None:
    async def go():
        async with AsyncSolverClient(service.url, api_key=service.api_key) as client:
            return await client.solve(big_qubo, "fujitsuDA3", time_limit_sec=1, transport="compact")

    result = asyncio.run(go())
    assert result.job_id and result.states.shape[1] == 150
    np.testing.assert_allclose(result.energies, encode_problem(big_qubo).energies(result.states))


def test_async_client_job_methods(service, qubo, ground) -> None:
    async def go() -> None:
        async with AsyncSolverClient(service.url, api_key=service.api_key) as client:
            first = await client.submit(qubo, "fujitsuDA3", time_limit_sec=2)
            second = await client.submit(qubo, "fujitsuDA3", time_limit_sec=1)
            assert {first, second} <= {j.job_id for j in await client.list_jobs()}
            assert await client.status(second) == "Waiting"  # one worker, busy with the first
            assert await client.result(second) is None
            assert await client.cancel(second) == "Canceled"
            assert await client.delete(second) == "Deleted"
            assert await client.delete(first) in ("Waiting", "Running")  # left alone
            with pytest.raises(SolveTimeoutError) as info:
                await client.wait(first, timeout=0.1)
            result = await client.wait(info.value.job_id, timeout=30)
            check(result, qubo, ground)
            assert (await client.result(first)).best.energy == result.best.energy
            assert await client.delete(first) == "Deleted"
            with pytest.raises(NotFoundError):
                await client.status(first)

    asyncio.run(go())


def test_one_client_shared_by_threads(service, qubo, ground) -> None:
    """httpx's pool is thread-safe: one SolverClient can serve a thread pool."""
    from concurrent.futures import ThreadPoolExecutor
    with SolverClient(service.url, api_key=service.api_key, max_connections=4) as client, \
            ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda seed: client.solve(qubo, "fujitsuDA2", number_iterations=2000,
                                                          random_seed=seed), range(8)))
    for result in results:
        check(result, qubo, ground)


def test_da_prefix_in_base_url(service, qubo, ground) -> None:
    """The service also serves every route under /da, as the DA does: a base URL with a path works."""
    with SolverClient(service.url + "/da/", api_key=service.api_key) as client:
        assert client.healthcheck()
        check(client.solve(qubo, "fujitsuDA3", time_limit_sec=5, target_energy=ground), qubo, ground)


def test_coupling_pattern_is_resent_after_a_restart(tmp_path) -> None:
    """Problems on one CouplingPattern: the first request carries rows and cols, later ones only
    values; a restarted service (empty pattern cache) answers 409 and the client resends."""
    import httpx

    from client import CouplingPattern
    from tests.servers import ServerProcess, free_port

    n = 80
    rng = np.random.default_rng(8)
    rows, cols = np.triu_indices(n, 1)
    keep = rng.random(rows.size) < 0.25
    pattern = CouplingPattern(n, rows[keep], cols[keep])
    port = free_port()
    proc = ServerProcess(["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                          "--database", str(tmp_path / "jobs.sqlite3")],
                         {"SPINOUT_API_KEYS": None, "SPINOUT_REDIS_URL": None}, tmp_path / "log", port)

    def conflicts() -> float:
        text = httpx.get(f"{proc.url}/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("spinout_http_requests_total") and 'status="409"' in line)

    def solve_and_check(client: SolverClient, seed: int) -> None:
        problem = pattern.problem(rng.normal(size=len(pattern)), linear=rng.normal(size=n))
        result = client.solve(problem, "fujitsuDA2", transport="compact", number_iterations=500,
                              random_seed=seed)
        np.testing.assert_allclose(result.energies, problem.energies(result.states))

    proc.start(timeout=120)
    try:
        with SolverClient(proc.url) as client:
            solve_and_check(client, 1)  # rows and cols go out
            solve_and_check(client, 2)  # values only
            assert pattern.key in client._patterns and conflicts() == 0
            proc.stop()
            proc.start(timeout=120)
            solve_and_check(client, 3)  # 409, then resent with rows and cols
            assert conflicts() == 1
            solve_and_check(client, 4)
            assert conflicts() == 1
    finally:
        proc.stop()
