"""Conformance of the DA Web API on a real uvicorn server (see conftest.server)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import numpy as np
import pytest

from client.wire.compact import (CONTENT_TYPE, CompactProblem, decode_reply, encode_request)
from tests.service.conftest import (KEY_A, KEY_B, ServerProcess, brute_force_min, config_energy,
                                    random_terms, wait_status)

SMALL_DA = {"number_iterations": 300, "number_runs": 8, "random_seed": 3}
SMALL_DA2 = {"number_iterations": 300, "number_runs": 16, "random_seed": 3}


def body(terms: list[dict[str, Any]], solver: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"binary_polynomial": {"terms": terms}, solver: params if params is not None else {}}


def assert_envelope(r: httpx.Response, code: int, contains: str = "") -> None:
    assert r.status_code == code, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["title"] and isinstance(err["message"], str)
    assert contains.lower() in err["message"].lower(), err["message"]


# ------------------------------------------------------------------------------ health, auth
@pytest.mark.parametrize("prefix", ["", "/da"])
def test_healthcheck(server: ServerProcess, prefix: str) -> None:
    r = httpx.get(f"{server.url}{prefix}/v1/healthcheck")
    assert r.status_code == 200 and r.json() == {}


def test_auth_headers(server: ServerProcess) -> None:
    url = f"{server.url}/v2/async/jobs"
    assert_envelope(httpx.get(url), 400, "missing")
    assert_envelope(httpx.get(url, headers={"X-Api-Key": KEY_A, "X-Access-Token": KEY_A}), 400, "not both")
    assert_envelope(httpx.get(url, headers={"X-Api-Key": "wrong"}), 401, "Access denied due to invalid header")
    assert_envelope(httpx.get(url, headers={"X-Api-Key": KEY_A + "x"}), 401)
    for name in ("x-api-key", "X-API-KEY", "X-Access-Token", "X-DA-Access-Key"):
        assert httpx.get(url, headers={name: KEY_A}).status_code == 200, name


def test_jobs_belong_to_their_key(client: httpx.Client, server: ServerProcess) -> None:
    job_id = client.post("/v2/async/qubo/solve", json=body(random_terms(6), "fujitsuDA2", SMALL_DA2)).json()["job_id"]
    other = httpx.Client(base_url=server.url, headers={"X-Api-Key": KEY_B})
    assert_envelope(other.get(f"/v2/async/jobs/result/{job_id}"), 404, job_id)
    assert job_id not in [j["job_id"] for j in other.get("/v2/async/jobs").json()["job_status_list"]]
    assert_envelope(other.delete(f"/v2/async/jobs/result/{job_id}"), 404)
    wait_status(client, job_id, {"Done"})
    assert client.delete(f"/v2/async/jobs/result/{job_id}").json()["status"] == "Deleted"
    other.close()


# ------------------------------------------------------------------------------ sync solves
@pytest.mark.parametrize("prefix", ["", "/da"])
def test_v1_sync_solve_is_optimal_sorted_and_includes_constant(client: httpx.Client, prefix: str) -> None:
    n = 10
    terms = random_terms(n, seed=5, constant=7.5)
    r = client.post(f"{prefix}/v1/qubo/solve", json=body(terms, "fujitsuDA", {**SMALL_DA, "number_iterations": 2000}))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "Done"
    sol = out["qubo_solution"]
    assert sol["result_status"] is True
    energies = [s["energy"] for s in sol["solutions"]]
    assert energies == sorted(energies)
    assert sum(s["frequency"] for s in sol["solutions"]) == SMALL_DA["number_runs"]
    best = sol["solutions"][0]
    assert set(best["configuration"]) == {str(i) for i in range(n)}
    assert best["energy"] == pytest.approx(config_energy(terms, best["configuration"]))
    assert best["energy"] == pytest.approx(brute_force_min(terms, n))
    timing = sol["timing"]
    for key in ("cpu_time", "queue_time", "solve_time", "total_elapsed_time"):
        assert isinstance(timing[key], int)
    assert isinstance(timing["detailed"]["anneal_time"], int)


def test_quick_returns_only_the_best(client: httpx.Client) -> None:
    terms = random_terms(12, seed=2)
    complete = client.post("/v2/qubo/solve", json=body(terms, "fujitsuDA2", {**SMALL_DA2, "number_iterations": 30})).json()
    quick = client.post("/v2/qubo/solve", json=body(terms, "fujitsuDA2", {
        **SMALL_DA2, "number_iterations": 30, "solution_mode": "QUICK"})).json()
    assert len(quick["qubo_solution"]["solutions"]) == 1
    assert len(complete["qubo_solution"]["solutions"]) >= 1
    best_complete = complete["qubo_solution"]["solutions"][0]["energy"]
    assert quick["qubo_solution"]["solutions"][0]["energy"] == pytest.approx(best_complete)


def test_term_spellings_constants_and_diagonal(client: httpx.Client) -> None:
    terms = [{"coefficient": -2.0, "polynomials": [0]},          # long spelling
             {"c": -1.0, "p": [1, 1], "coefficient": 99, "polynomials": [0, 1]},  # c/p win; x1*x1 = x1
             {"c": 3.0, "p": [0, 1]},
             {"coefficient": 4.0},                                 # constant, no polynomials
             {"c": 1.5, "p": []}]                                  # constant, empty list
    r = client.post("/v2/qubo/solve", json=body(terms, "fujitsuDA2", SMALL_DA2))
    best = r.json()["qubo_solution"]["solutions"][0]
    # E(x0, x1) = -2 x0 - x1 + 3 x0 x1 + 5.5: minimum -2 + 5.5 at (1, 0)
    assert best["energy"] == pytest.approx(3.5)
    assert best["configuration"] == {"0": True, "1": False}


def test_qubo_matrix(client: httpx.Client) -> None:
    q = [[-1.0, 2.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 0.5]]  # x^T Q x
    r = client.post("/v2/qubo/solve", json={"qubo_matrix": {"qubo": [{"qubo_row": row} for row in q]},
                                              "fujitsuDA2": SMALL_DA2})
    assert r.status_code == 200, r.text
    best = r.json()["qubo_solution"]["solutions"][0]
    assert best["energy"] == pytest.approx(-1.0)
    assert best["configuration"]["2"] is False


@pytest.mark.parametrize("version, solver", [("v1", "fujitsuDAPT"), ("v1", "fujitsuDAMixedMode"),
                                             ("v2", "fujitsuDA2PT"), ("v2", "fujitsuDA2MixedMode")])
def test_empty_parameter_blocks_use_defaults(client: httpx.Client, version: str, solver: str) -> None:
    terms = random_terms(4, seed=1)
    r = client.post(f"/{version}/qubo/solve", json=body(terms, solver, {}))
    assert r.status_code == 200, r.text
    assert r.json()["qubo_solution"]["solutions"][0]["energy"] == pytest.approx(brute_force_min(terms, 4))


def test_random_seed_reproduces(client: httpx.Client) -> None:
    terms = random_terms(16, seed=9)
    params = {"number_iterations": 50, "number_runs": 16, "random_seed": 42}
    a = client.post("/v2/qubo/solve", json=body(terms, "fujitsuDA2", params)).json()["qubo_solution"]["solutions"]
    b = client.post("/v2/qubo/solve", json=body(terms, "fujitsuDA2", params)).json()["qubo_solution"]["solutions"]
    assert a == b


def test_sync_cap_points_to_async_route(client: httpx.Client) -> None:
    r = client.post("/v2/qubo/solve", json=body(random_terms(50), "fujitsuDA2", {
        "number_iterations": 2_000_000_000, "number_runs": 128}))
    assert_envelope(r, 400, "/v2/async/qubo/solve")


# ------------------------------------------------------------------------------ bad input: 4xx, never 5xx
BAD_BODIES: list[tuple[str, str, Any, str]] = [
    ("v1", "1,025 bits on v1", body([{"c": 1.0, "p": [1024]}], "fujitsuDA"), "1,024"),
    ("v1", "DA3 block on v1", body([{"c": 1.0, "p": [0]}], "fujitsuDA3"), "does not belong"),
    ("v1", "DA2 block on v1", body([{"c": 1.0, "p": [0]}], "fujitsuDA2"), "does not belong"),
    ("v2", "DA block on v2", body([{"c": 1.0, "p": [0]}], "fujitsuDA"), "does not belong"),
    ("v2", "negative index", body([{"c": 1.0, "p": [-1]}], "fujitsuDA2"), "non-negative"),
    ("v2", "float index", body([{"c": 1.0, "p": [1.5]}], "fujitsuDA2"), "integers"),
    ("v2", "string index", body([{"c": 1.0, "p": ["a"]}], "fujitsuDA2"), "integers"),
    ("v2", "string coefficient", body([{"c": "x", "p": [0]}], "fujitsuDA2"), "number"),
    ("v2", "missing coefficient", body([{"p": [0]}], "fujitsuDA2"), "coefficient"),
    ("v2", "degree 3", body([{"c": 1.0, "p": [0, 1, 2]}], "fujitsuDA2"), "v3, v3c and v4 only"),
    ("v2", "terms not a list", {"binary_polynomial": {"terms": 5}, "fujitsuDA2": {}}, "list"),
    ("v2", "no solver", {"binary_polynomial": {"terms": [{"c": 1, "p": [0]}]}}, "no solver"),
    ("v2", "two solvers", {**body([{"c": 1, "p": [0]}], "fujitsuDA2"), "fujitsuDA2PT": {}}, "several"),
    ("v2", "no problem", {"fujitsuDA2": {}}, "exactly one"),
    ("v2", "out-of-range runs", body([{"c": 1, "p": [0]}], "fujitsuDA2", {"number_runs": 5}), "number_runs"),
    ("v2", "bad solution_mode", body([{"c": 1, "p": [0]}], "fujitsuDA2", {"solution_mode": "FAST"}), "solution_mode"),
    ("v2", "bad guidance key", body([{"c": 1, "p": [0]}], "fujitsuDA2", {"guidance_config": {"x": True}}), "guidance"),
    ("v2", "guidance beyond the problem", body([{"c": 1, "p": [0, 1]}], "fujitsuDA2", {"guidance_config": {"5": True}}), "outside"),
    ("v2", "only constants", body([{"c": 1.0}], "fujitsuDA2"), "no variables"),
    ("v2", "non-square matrix", {"qubo_matrix": {"qubo": [{"qubo_row": [1, 2]}]}, "fujitsuDA2": {}}, "square"),
    ("v2", "body is a list", [1, 2], "object"),
    ("v3", "DA3 time limit too large", body([{"c": 1, "p": [0]}], "fujitsuDA3", {"time_limit_sec": 4000}), "time_limit_sec"),
    ("v3", "degree 3 in the penalty", {**body([{"c": 1.0, "p": [0]}], "fujitsuDA3"),
                                         "penalty_binary_polynomial": {"terms": [{"c": 1.0, "p": [0, 1, 2]}]}},
     "binary_polynomial only"),
    ("v3", "inequalities", {**body([{"c": 1.0, "p": [0]}], "fujitsuDA3"), "inequalities": [{"terms": [{"c": 1.0, "p": [0, 1]}], "lambda": 1}]}, "inequalities[0].terms[0] is not first-order"),
]


@pytest.mark.parametrize("version, label, payload, message", BAD_BODIES, ids=[b[1] for b in BAD_BODIES])
def test_bad_input_is_400_with_message(client: httpx.Client, version: str, label: str, payload: Any,
                                       message: str) -> None:
    route = f"/{version}/qubo/solve" if version in ("v1",) else f"/{version}/async/qubo/solve"
    assert_envelope(client.post(route, json=payload), 400, message)


@pytest.mark.parametrize("raw", [b"", b"{", b"nul", b"\xff\xfe", b'{"binary_polynomial": NaN}',
                                 b'{"binary_polynomial": {"terms": [{"c": 1e999, "p": [0]}]}, "fujitsuDA2": {}}'])
def test_garbage_is_400(client: httpx.Client, raw: bytes) -> None:
    r = client.post("/v2/qubo/solve", content=raw, headers={"Content-Type": "application/json"})
    assert_envelope(r, 400)


def test_body_over_limit_is_413(client: httpx.Client) -> None:
    big = b'{"binary_polynomial": {"terms": [' + b'{"c": 1.0, "p": [0, 1]},' * 120_000 + b'{"c": 1}]}, "fujitsuDA2": {}}'
    assert_envelope(client.post("/v2/async/qubo/solve", content=big), 413, "limit")


def test_a_version_a_route_does_not_serve_is_404_before_authentication(server: ServerProcess) -> None:
    """One route serves an operation's versions; any other version is an unknown path."""
    for method, path in (("GET", "/v1/async/jobs"), ("POST", "/v3/qubo/solve"),
                         ("POST", "/da/v9/async/qubo/solve"), ("DELETE", "/v1/async/jobs/result/x"),
                         ("POST", "/v4/qubo/solve")):
        assert_envelope(httpx.request(method, f"{server.url}{path}", content=b"{}"), 404, "no route")


def test_unknown_route_and_job(client: httpx.Client) -> None:
    assert_envelope(client.get("/v2/async/jobs/result/does-not-exist"), 404, "does-not-exist")
    assert_envelope(client.delete("/v3/async/jobs/result/does-not-exist"), 404)
    assert_envelope(client.post("/v4/async/jobs/cancel", json={"job_id": "nope"}), 404)
    assert_envelope(client.get("/v9/nothing"), 404)
    assert_envelope(client.post("/v2/async/jobs/cancel", json={}), 400, "job_id")


# ------------------------------------------------------------------------------ async jobs
@pytest.mark.parametrize("version", ["v2", "v3", "v3c", "v4"])
def test_async_lifecycle(client: httpx.Client, version: str) -> None:
    terms = random_terms(8, seed=4, constant=-2.0)
    if version == "v2":
        payload = body(terms, "fujitsuDA2", SMALL_DA2)
    else:
        payload = body(terms, "fujitsuDA3", {"time_limit_sec": 1, "num_output_solution": 3, "random_seed": 1})
    r = client.post(f"/da/{version}/async/qubo/solve", json=payload)
    assert r.status_code == 200, r.text
    job_id = r.json()["job_id"]
    listed = {j["job_id"]: j for j in client.get(f"/{version}/async/jobs").json()["job_status_list"]}
    assert listed[job_id]["job_status"] in ("Waiting", "Running", "Done")
    assert "T" in listed[job_id]["start_time"]
    done = wait_status(client, job_id, {"Done"}, version)
    sol = done["qubo_solution"]
    assert sol["solutions"][0]["energy"] == pytest.approx(brute_force_min(terms, 8))
    if version == "v2":
        assert isinstance(sol["timing"]["solve_time"], int)
    else:
        assert isinstance(sol["timing"]["solve_time"], str) and isinstance(sol["timing"]["total_elapsed_time"], str)
        assert int(sol["timing"]["solve_time"]) >= 900
        assert sol["progress"] and {"energy", "penalty_energy", "time"} <= set(sol["progress"][0])
        assert all("penalty_energy" in s for s in sol["solutions"])
        assert len(sol["solutions"]) <= 3
    deleted = client.delete(f"/{version}/async/jobs/result/{job_id}")
    assert deleted.status_code == 200 and deleted.json()["status"] == "Deleted"
    assert deleted.json()["qubo_solution"]["solutions"] == sol["solutions"]
    assert_envelope(client.get(f"/{version}/async/jobs/result/{job_id}"), 404)


def test_penalty_polynomial_reports_penalty_energy(client: httpx.Client) -> None:
    # minimise -x0 - x1 subject to the penalty (x0 + x1 - 1)^2 = -x0 - x1 + 2 x0 x1 + 1
    payload = {"binary_polynomial": {"terms": [{"c": -1, "p": [0]}, {"c": -1, "p": [1]}]},
               "penalty_binary_polynomial": {"terms": [{"c": -1, "p": [0]}, {"c": -1, "p": [1]},
                                                       {"c": 2, "p": [0, 1]}, {"c": 1}]},
               "fujitsuDA3": {"time_limit_sec": 1, "penalty_coef": 10}}
    job_id = client.post("/v3/async/qubo/solve", json=payload).json()["job_id"]
    sol = wait_status(client, job_id, {"Done"}, "v3")["qubo_solution"]
    best = sol["solutions"][0]
    assert best["penalty_energy"] == 0.0 and best["energy"] == -1.0
    client.delete(f"/v3/async/jobs/result/{job_id}")


def _long_job(seconds: int = 3) -> dict[str, Any]:
    return body(random_terms(20, seed=8), "fujitsuDA3", {"time_limit_sec": seconds, "num_run": 4})


def test_delete_running_job_keeps_it_and_cancel_waiting_job(client: httpx.Client) -> None:
    # Two solver threads: two long jobs run, the third waits.
    ids = [client.post("/v3/async/qubo/solve", json=_long_job()).json()["job_id"] for _ in range(3)]
    running = wait_status(client, ids[0], {"Running"}, "v3")
    assert running == {"status": "Running"}
    r = client.delete(f"/v3/async/jobs/result/{ids[0]}")
    assert r.status_code == 200 and r.json() == {"status": "Running"}
    assert client.get(f"/v3/async/jobs/result/{ids[0]}").json()["status"] in ("Running", "Done")
    waiting = client.get(f"/v3/async/jobs/result/{ids[2]}").json()
    assert waiting == {"status": "Waiting"}
    assert client.delete(f"/v3/async/jobs/result/{ids[2]}").json() == {"status": "Waiting"}
    assert client.post("/v3/async/jobs/cancel", json={"job_id": ids[2]}).json() == {"status": "Canceled"}
    assert client.get(f"/v3/async/jobs/result/{ids[2]}").json()["status"] == "Canceled"
    # cancel of a running or finished job only reports its status
    assert client.post("/v3/async/jobs/cancel", json={"job_id": ids[0]}).json()["status"] in ("Running", "Done")
    for job_id in ids[:2]:
        wait_status(client, job_id, {"Done"}, "v3")
        assert client.post("/v3/async/jobs/cancel", json={"job_id": job_id}).json() == {"status": "Done"}
    time.sleep(0.3)
    assert client.get(f"/v3/async/jobs/result/{ids[2]}").json()["status"] == "Canceled"
    for job_id in ids:
        assert client.delete(f"/v3/async/jobs/result/{job_id}").json()["status"] == "Deleted"


def test_job_limit_429(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, headers={"X-Api-Key": KEY_B}, timeout=30) as c:
        payload = body(random_terms(4), "fujitsuDA2", {"number_iterations": 10, "number_runs": 16})
        ids = [c.post("/v2/async/qubo/solve", json=payload).json()["job_id"] for _ in range(16)]
        r = c.post("/v2/async/qubo/solve", json=payload)
        assert_envelope(r, 429, "Exceed limit of number of request.")
        # another key is unaffected
        with httpx.Client(base_url=server.url, headers={"X-Api-Key": KEY_A}) as a:
            other = a.post("/v2/async/qubo/solve", json=payload)
            assert other.status_code == 200
            wait_status(a, other.json()["job_id"], {"Done"})
            a.delete(f"/v2/async/jobs/result/{other.json()['job_id']}")
        for job_id in ids:
            wait_status(c, job_id, {"Done"})
        assert c.delete(f"/v2/async/jobs/result/{ids[0]}").json()["status"] == "Deleted"
        again = c.post("/v2/async/qubo/solve", json=payload)
        assert again.status_code == 200
        ids = ids[1:] + [again.json()["job_id"]]
        for job_id in ids:
            wait_status(c, job_id, {"Done"})
            c.delete(f"/v2/async/jobs/result/{job_id}")


# ------------------------------------------------------------------------------ compact transport
def test_compact_sync_solve_matches_engine_energies(client: httpx.Client) -> None:
    from service.engine import BinaryQuadraticProblem

    rng = np.random.default_rng(0)
    n = 40
    i, j = np.triu_indices(n, 1)
    keep = rng.random(i.size) < 0.3
    problem = CompactProblem.from_arrays(i[keep], j[keep], rng.normal(size=keep.sum()),
                                         linear=rng.normal(size=n), constant=1.25)
    payload = encode_request(problem, "fujitsuDA2", {"number_iterations": 200, "number_runs": 16, "random_seed": 0})
    r = client.post("/spinout/v1/solve", content=payload, headers={"Content-Type": CONTENT_TYPE})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == CONTENT_TYPE
    reply = decode_reply(r.content)
    assert reply.status == "Done" and reply.states.shape[1] == n
    engine = BinaryQuadraticProblem.from_arrays(problem.rows, problem.cols, problem.values,
                                                linear=problem.linear, constant=1.25, num_variables=n)
    np.testing.assert_allclose(reply.energies, engine.energies(reply.states))
    assert np.all(np.diff(reply.energies) >= 0)


def test_compact_async_and_errors(client: httpx.Client) -> None:
    problem = CompactProblem.from_arrays([0, 1], [1, 2], [1.0, -1.0], linear=[-1.0, 0.0, 0.5])
    payload = encode_request(problem, "fujitsuDA3", {"time_limit_sec": 1})
    job_id = client.post("/spinout/v1/async/solve", content=payload).json()["job_id"]
    wait_status(client, job_id, {"Done"}, "v3")
    reply = decode_reply(client.get(f"/spinout/v1/async/jobs/result/{job_id}").content)
    assert reply.status == "Done" and reply.energies[0] == pytest.approx(-1.0)
    assert client.delete(f"/v3/async/jobs/result/{job_id}").json()["status"] == "Deleted"
    assert_envelope(client.post("/spinout/v1/solve", content=b"\x93garbage"), 400)
    bad = encode_request(CompactProblem.from_arrays([0], [5], [1.0], num_variables=3), "fujitsuDA2")
    assert_envelope(client.post("/spinout/v1/solve", content=bad), 400, "indices")
    nan = encode_request(CompactProblem.from_arrays([0], [1], [float("nan")]), "fujitsuDA2")
    assert_envelope(client.post("/spinout/v1/solve", content=nan), 400, "finite")


def test_one_hot_job_on_a_pattern_registers_it(client: httpx.Client) -> None:
    """DA3's one-hot penalties take the problem off its pattern, but the pattern is still kept:
    the next job naming it goes without rows and cols (no 409 and resend every time)."""
    from client.wire.compact import pattern_key

    n = 12
    rows, cols = np.triu_indices(n, 1)
    key = pattern_key(n, rows, cols)
    rng = np.random.default_rng(8)
    params = {"time_limit_sec": 1, "num_run": 2, "num_group": 1, "num_output_solution": 1,
              "one_way_one_hot_groups": {"numbers": [4, 4]}}
    headers = {"Content-Type": CONTENT_TYPE}
    ids = []
    for with_pattern in (True, False):
        problem = CompactProblem(n, rows, cols, rng.normal(size=rows.size), rng.normal(size=n), 0.0, key)
        body = encode_request(problem, "fujitsuDA3", params, with_pattern=with_pattern)
        r = client.post("/spinout/v1/async/solve", content=body, headers=headers)
        assert r.status_code == 200, r.text
        ids.append(r.json()["job_id"])
    for job_id in ids:
        deadline = time.monotonic() + 60
        while True:
            reply = decode_reply(client.get(f"/spinout/v1/async/jobs/result/{job_id}").content)
            if reply.status not in ("Waiting", "Running") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert reply.status == "Done", reply.message
        state = reply.states[0]
        assert state[:4].sum() == 1 and state[4:8].sum() == 1  # one bit in each one-hot group


def test_compact_pattern_is_sent_once(client: httpx.Client) -> None:
    from client.wire.compact import pattern_key

    n = 60
    rng = np.random.default_rng(4)
    rows, cols = np.triu_indices(n, 1)
    keep = rng.random(rows.size) < 0.2
    rows, cols = rows[keep], cols[keep]
    key = pattern_key(n, rows, cols)
    params = {"number_iterations": 300, "number_runs": 16, "random_seed": 3}
    headers = {"Content-Type": CONTENT_TYPE}

    def post(values: np.ndarray, with_pattern: bool, problem_key: str = key) -> httpx.Response:
        problem = CompactProblem(n, rows, cols, values, rng.normal(size=n), 0.5, problem_key)
        body = encode_request(problem, "fujitsuDA2", params, with_pattern=with_pattern)
        return client.post("/spinout/v1/solve", content=body, headers=headers)

    unknown = pattern_key(n, rows[:-1], cols[:-1])
    r = post(rng.normal(size=rows.size)[:-1], False, unknown)
    assert_envelope(r, 409, "resend the request with rows and cols")
    first = post(rng.normal(size=rows.size), True)
    assert first.status_code == 200, first.text
    values = rng.normal(size=rows.size)
    linear = rng.normal(size=n)
    lean = CompactProblem(n, rows, cols, values, linear, 0.5, key)
    body = encode_request(lean, "fujitsuDA2", params, with_pattern=False)
    assert len(encode_request(lean, "fujitsuDA2", params)) - len(body) >= 8 * rows.size  # no int32 rows, cols
    r = client.post("/spinout/v1/solve", content=body, headers=headers)
    assert r.status_code == 200, r.text
    reply = decode_reply(r.content)
    from service.engine import BinaryQuadraticProblem
    engine = BinaryQuadraticProblem.from_arrays(rows, cols, values, linear=linear, constant=0.5,
                                                num_variables=n)
    np.testing.assert_allclose(reply.energies, engine.energies(reply.states))
    # the same request with rows and cols gives the same answer (same seed, same problem)
    again = decode_reply(client.post("/spinout/v1/solve", content=encode_request(
        lean, "fujitsuDA2", params), headers=headers).content)
    np.testing.assert_array_equal(again.states, reply.states)
    assert_envelope(post(values[:-1], False), 400, "values")
    assert_envelope(post(values, True, pattern_key(n, cols, rows)), 400, "does not match")


# ------------------------------------------------------------------------------ observability
def test_metrics_request_id_and_openapi(client: httpx.Client, server: ServerProcess) -> None:
    r = client.get("/v1/healthcheck", headers={"X-Request-ID": "abc123"})
    assert r.headers["x-request-id"] == "abc123"
    assert len(client.get("/v1/healthcheck").headers["x-request-id"]) >= 16
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "spinout_http_requests_total" in metrics and "spinout_http_request_duration_seconds" in metrics
    assert 'spinout_jobs{status="Waiting"}' in metrics and 'spinout_jobs{status="Running"}' in metrics
    spec = httpx.get(f"{server.url}/openapi.json").json()
    for path in ("/v1/qubo/solve", "/v2/qubo/solve", "/da/v1/qubo/solve", "/v1/healthcheck",
                 "/spinout/v1/solve", "/spinout/v1/async/solve", "/metrics"):
        assert path in spec["paths"], path
    for version in ("v2", "v3", "v3c", "v4"):
        for path in ("qubo/solve", "jobs", "jobs/result/{job_id}", "jobs/cancel"):
            assert f"/{version}/async/{path}" in spec["paths"]
    schemas = spec["components"]["schemas"]
    for name in ("SolveRequest", "FujitsuDA", "FujitsuDAPT", "FujitsuDA2PT", "FujitsuDA3", "ErrorEnvelope"):
        assert name in schemas, name
    assert httpx.get(f"{server.url}/docs").status_code == 200


def test_job_the_engine_refuses_ends_in_error_with_reason(client: httpx.Client) -> None:
    payload = body([{"c": 1.0, "p": [0, 1]}, {"c": -1.0, "p": [1]}], "fujitsuDA3",
                   {"time_limit_sec": 1, "fixed_config": {"0": True, "1": False}})
    job_id = client.post("/v4/async/qubo/solve", json=payload).json()["job_id"]
    result = wait_status(client, job_id, {"Done", "Error"}, "v4")
    assert result["status"] == "Error" and "fixed" in result["message"]
    deleted = client.delete(f"/v4/async/jobs/result/{job_id}").json()
    assert deleted["status"] == "Deleted" and deleted["message"] == result["message"]


def test_higher_order_terms_on_v3(client: httpx.Client) -> None:
    """Degree 3 and 4 terms (v3+): reduced with auxiliaries, reported on the original variables
    with the exact polynomial energy."""
    terms = random_terms(7, density=0.3, seed=11) + [
        {"c": -3.0, "p": [0, 1, 2]}, {"c": 2.5, "p": [1, 2, 3, 4]}, {"c": -4.0, "p": [2, 4, 6]},
        {"c": 1.5, "p": [5, 5, 6, 0]}, {"c": 0.75}]
    payload = body(terms, "fujitsuDA3", {"time_limit_sec": 1, "num_output_solution": 4, "random_seed": 2})
    job_id = client.post("/v3/async/qubo/solve", json=payload).json()["job_id"]
    sol = wait_status(client, job_id, {"Done", "Error"}, "v3")
    assert sol["status"] == "Done", sol
    solutions = sol["qubo_solution"]["solutions"]
    for s in solutions:
        assert set(s["configuration"]) == {str(i) for i in range(7)}
        assert s["energy"] == pytest.approx(config_energy(terms, s["configuration"]))
    assert solutions[0]["energy"] == pytest.approx(brute_force_min(terms, 7))
    assert [s["energy"] for s in solutions] == sorted(s["energy"] for s in solutions)
    client.delete(f"/v3/async/jobs/result/{job_id}")


def test_one_hot_groups_are_enforced(client: httpx.Client) -> None:
    """DA3 one-hot groups hold in the answer although the objective alone prefers all zeros or
    all ones: a one-way group of 3, then a 3 x 3 two-way group (a permutation)."""
    n = 12
    terms = [{"c": 1.0, "p": [i]} for i in range(3)]                 # prefers x0..x2 = 0
    terms += [{"c": -1.0, "p": [i]} for i in range(3, n)]            # prefers x3..x11 = 1
    terms += [{"c": -0.5, "p": [3, 4]}, {"c": 0.25, "p": [0, 5]}]
    params = {"time_limit_sec": 1, "one_way_one_hot_groups": {"numbers": [3]},
              "two_way_one_hot_groups": {"numbers": [9]}, "random_seed": 4}
    job_id = client.post("/v3/async/qubo/solve", json=body(terms, "fujitsuDA3", params)).json()["job_id"]
    best = wait_status(client, job_id, {"Done"}, "v3")["qubo_solution"]["solutions"][0]
    x = np.array([best["configuration"][str(i)] for i in range(n)], dtype=int)
    assert x[:3].sum() == 1
    block = x[3:].reshape(3, 3)
    assert block.sum(axis=0).tolist() == [1, 1, 1] and block.sum(axis=1).tolist() == [1, 1, 1]
    assert best["energy"] == pytest.approx(config_energy(terms, best["configuration"]))
    client.delete(f"/v3/async/jobs/result/{job_id}")
    too_many = body(terms, "fujitsuDA3", {"one_way_one_hot_groups": {"numbers": [20]}})
    assert_envelope(client.post("/v3/async/qubo/solve", json=too_many), 400, "one-hot")
