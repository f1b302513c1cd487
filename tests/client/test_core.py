"""The I/O-free core: routes, parameter checks, reply parsing, error mapping, the wait flow."""

from __future__ import annotations

import json

import msgpack
import numpy as np
import pytest

from client import (AuthenticationError, BadRequestError, JobFailedError, LimitReachedError,
                    NotFoundError, PollingPolicy, ProblemError, RetryPolicy, ServerError,
                    SolveTimeoutError, SpinOutError)
from client import core
from client.errors import APIError


@pytest.mark.parametrize("solver, mode, path", [
    ("fujitsuDA", "sync", "/v1/qubo/solve"),
    ("fujitsuDAPT", "sync", "/v1/qubo/solve"),
    ("fujitsuDA2", "sync", "/v2/qubo/solve"),
    ("fujitsuDA2PT", "sync", "/v2/qubo/solve"),
    ("fujitsuDA3", "async", "/v3/async/qubo/solve"),
])
def test_auto_route_by_generation(solver: str, mode: str, path: str) -> None:
    plan = core.plan_solve({(0, 1): -1.0}, solver)
    assert (plan.mode, plan.call.path) == (mode, path)
    assert plan.call.payload()[solver] == {}


def test_forced_routes_and_missing_ones() -> None:
    assert core.plan_solve({(0, 1): 1.0}, "fujitsuDA2", mode="async").call.path == "/v2/async/qubo/solve"
    with pytest.raises(ProblemError, match="no asynchronous route"):
        core.plan_solve({(0, 1): 1.0}, "fujitsuDA", mode="async")
    with pytest.raises(ProblemError, match="no synchronous route"):
        core.plan_solve({(0, 1): 1.0}, "fujitsuDA3", mode="sync")


def test_size_limit_and_higher_order_per_generation() -> None:
    with pytest.raises(ProblemError, match="at most 1,024"):
        core.plan_solve({(0, 1024): 1.0}, "fujitsuDA")
    core.plan_solve({(0, 1024): 1.0}, "fujitsuDA2")
    with pytest.raises(ProblemError, match="linear and quadratic"):
        core.plan_solve([{"c": 1, "p": [0, 1, 2]}], "fujitsuDA2")
    body = core.plan_solve([{"c": 1, "p": [0, 1, 2]}], "fujitsuDA3").call.payload()
    assert {"coefficient": 1.0, "polynomials": [0, 1, 2]} in body["binary_polynomial"]["terms"]


def test_parameters_checked_with_the_shared_models() -> None:
    body = core.plan_solve({(0, 1): 1.0}, "fujitsuDA3", {"time_limit_sec": 2, "random_seed": 5}).call.payload()
    assert body["fujitsuDA3"] == {"time_limit_sec": 2, "random_seed": 5}
    with pytest.raises(ProblemError, match="number_runs"):
        core.plan_solve({(0, 1): 1.0}, "fujitsuDA2", {"number_runs": 8})
    with pytest.raises(ProblemError, match="has no parameter.*time_limit"):
        core.plan_solve({(0, 1): 1.0}, "fujitsuDA2", {"time_limit": 1})
    with pytest.raises(ProblemError, match="unknown solver"):
        core.plan_solve({(0, 1): 1.0}, "fujitsuDA9")


def test_json_body_is_compact_json() -> None:
    content, headers = core.plan_solve({(0, 1): 1.0}, "fujitsuDA").call.body()
    assert headers["Content-Type"] == "application/json"
    assert json.loads(content)["binary_polynomial"]["terms"] == [{"coefficient": 1.0, "polynomials": [0, 1]}]


V3_REPLY = {"status": "Done", "qubo_solution": {
    "result_status": True,
    "solutions": [
        {"energy": -1.0, "frequency": 3, "penalty_energy": 0.0, "configuration": {"0": True, "1": False}},
        {"energy": -4.0, "frequency": 1, "penalty_energy": 0.5, "configuration": {"1": True, "2": True}},
    ],
    "timing": {"solve_time": "1500", "total_elapsed_time": "1620", "detailed": {"anneal_time": "1400"}},
    "progress": [{"energy": -1.0, "penalty_energy": 0.0, "time": 0.1}, {"energy": -4.0, "penalty_energy": 0, "time": 0.9}],
}}


def test_result_parsing_v3_sorted_with_seconds() -> None:
    result = core.result_from_job_reply(V3_REPLY, "j1", num_variables=4)
    assert result is not None
    np.testing.assert_array_equal(result.states, [[0, 1, 1, 0], [1, 0, 0, 0]])
    assert result.best.energy == -4.0 and result.best.frequency == 1
    np.testing.assert_allclose(result.penalty_energies, [0.5, 0.0])
    assert result.timing == {"solve_time": 1.5, "total_elapsed_time": 1.62, "anneal_time": 1.4}
    assert result.progress == [(0.1, -1.0), (0.9, -4.0)]
    assert result.job_id == "j1"
    sampleset = result.to_sampleset()
    assert sampleset.first.energy == -4.0
    assert list(sampleset.record.num_occurrences) == [1, 3]


def test_result_parsing_v1_integer_millis() -> None:
    reply = {"status": "Done", "qubo_solution": {"solutions": [
        {"energy": 2, "frequency": 1, "configuration": {"0": True}}],
        "timing": {"cpu_time": 10, "queue_time": 0, "solve_time": 12, "total_elapsed_time": 13,
                   "detailed": {"anneal_time": 9}}}}
    plan = core.plan_solve({(0, 1): 1.0}, "fujitsuDA")
    result = core.parse_sync_reply(reply, plan)
    assert result.states.shape == (1, 2)
    assert result.timing["cpu_time"] == pytest.approx(0.010)
    assert result.job_id is None


@pytest.mark.parametrize("body, message", [
    ({"status": "Error", "message": "boom"}, "boom"),
    ({"status": "Canceled"}, "canceled"),
    ({"status": "Deleted"}, "deleted"),
])
def test_failed_jobs_raise(body: dict, message: str) -> None:
    with pytest.raises(JobFailedError, match=message) as info:
        core.result_from_job_reply(body, "j9")
    assert info.value.job_id == "j9"
    assert core.result_from_job_reply({"status": "Running"}, "j9") is None


@pytest.mark.parametrize("status, cls", [
    (400, BadRequestError), (413, BadRequestError), (422, BadRequestError), (401, AuthenticationError),
    (404, NotFoundError), (429, LimitReachedError), (500, ServerError), (503, ServerError),
])
def test_error_envelope_mapping(status: int, cls: type) -> None:
    envelope = {"error": {"code": status, "title": "Some Title", "message": "the reason"}}
    with pytest.raises(cls) as info:
        core.raise_for_reply(core.Reply(status, json.dumps(envelope).encode()), "job-7")
    err = info.value
    assert isinstance(err, APIError) and isinstance(err, SpinOutError)
    assert (err.status_code, err.server_message, err.title, err.job_id) == (status, "the reason", "Some Title", "job-7")
    assert "the reason" in str(err) and "job-7" in str(err)


def test_non_json_error_body_keeps_text() -> None:
    with pytest.raises(ServerError, match="Bad Gateway text"):
        core.raise_for_reply(core.Reply(502, b"Bad Gateway text"))
    core.raise_for_reply(core.Reply(200, b"{}"))  # no error


def drive(flow, replies, clock):
    """Run a flow against scripted replies (the pure core needs no server for this)."""
    sent, step = [], next(flow)
    try:
        while True:
            if isinstance(step, core.Sleep):
                clock.now += step.seconds
                sent.append(("sleep", step.seconds))
                step = flow.send(None)
            else:
                sent.append((step.method, step.path))
                step = flow.send(core.Reply(200, json.dumps(replies.pop(0)).encode()))
    except StopIteration as stop:
        return stop.value, sent


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_solve_flow_submits_polls_with_backoff_and_consumes() -> None:
    plan = core.plan_solve({(0, 1): -1.0}, "fujitsuDA3")
    clock = FakeClock()
    seen: list[str] = []
    flow = core.solve_flow(plan, PollingPolicy(initial=0.1, factor=2, max_interval=0.3), clock,
                           on_status=lambda p: seen.append(p.status))
    result, sent = drive(flow, [{"job_id": "abc"}, {"status": "Waiting"}, {"status": "Running"},
                                {"status": "Running"}, {**V3_REPLY, "status": "Deleted"}], clock)
    assert sent[0] == ("POST", "/v3/async/qubo/solve")
    assert [s for s in sent if s[0] == "sleep"] == [("sleep", 0.1), ("sleep", 0.2), ("sleep", 0.3)]
    assert {s for s in sent if s[0] not in ("sleep", "POST")} == {("DELETE", "/v3/async/jobs/result/abc")}
    assert seen == ["Waiting", "Running", "Running"]
    assert result.job_id == "abc" and result.best.energy == -4.0


def test_wait_flow_times_out_with_resume_hint() -> None:
    clock = FakeClock()
    flow = core.wait_flow("xyz", "v3", PollingPolicy(initial=1.0, factor=1, timeout=2.5), clock)
    with pytest.raises(SolveTimeoutError) as info:
        drive(flow, [{"status": "Running"}] * 10, clock)
    err = info.value
    assert err.job_id == "xyz" and err.last_status == "Running"
    assert "client.wait('xyz')" in str(err)
    assert clock.now == pytest.approx(2.5)  # the last sleep is cut to the deadline


def test_retry_policy_backoff() -> None:
    policy = RetryPolicy(max_attempts=4, base_delay=0.1, max_delay=0.25, jitter=False)
    assert [policy.delay(a) for a in range(4)] == [0.1, 0.2, 0.25, 0.25]
    assert policy.should_retry_status(503, 0) and policy.should_retry_status(429, 2)
    assert not policy.should_retry_status(503, 3)
    assert not any(policy.should_retry_status(s, 0) for s in (400, 401, 404, 500, 502))
    assert policy.delay(0, retry_after="0.2") == 0.2
    jittered = RetryPolicy(base_delay=1.0)
    assert all(0 <= jittered.delay(2) <= 4.0 for _ in range(50))


def test_compact_transport_chosen_by_size() -> None:
    from client.wire import compact as wire
    rng = np.random.default_rng(0)
    q = np.triu(rng.normal(size=(120, 120)))  # ~7,000 terms
    plan = core.plan_solve(q, "fujitsuDA2", {"number_iterations": 10}, mode="sync")
    assert plan.transport == "compact" and plan.call.path == core.COMPACT_SYNC_PATH
    content, headers = plan.call.body()
    assert headers["Content-Type"] == wire.CONTENT_TYPE
    request = wire.decode_request(content)
    assert (request.solver, request.parameters, request.api_version) == ("fujitsuDA2", {"number_iterations": 10}, "v2")
    x = rng.integers(0, 2, size=(5, 120))
    p = request.problem
    energies = p.constant + x @ p.linear + (x[:, p.rows] * x[:, p.cols]) @ p.values
    np.testing.assert_allclose(energies, np.einsum("ki,ij,kj->k", x, q, x))
    small = core.plan_solve(q[:10, :10], "fujitsuDA2")
    assert small.transport == "json"
    assert core.plan_solve(q[:10, :10], "fujitsuDA3", transport="compact").call.path == core.COMPACT_ASYNC_PATH
    assert core.plan_solve(q, "fujitsuDA2", transport="json").transport == "json"
    with pytest.raises(ProblemError, match="transport='json'"):
        core.plan_solve([{"c": 1, "p": [0, 1, 2]}], "fujitsuDA3", transport="compact")


def test_compact_reply_parsed_to_arrays() -> None:
    from client.wire import compact as wire
    states = np.array([[1, 0, 1], [0, 0, 1]], dtype=np.uint8)
    body = wire.encode_reply(wire.CompactReply(status="Done", states=states, energies=np.array([-2.0, -1.0]),
                                               frequencies=np.array([3, 1]), timing={"solve": 0.5, "total": 0.6},
                                               job_id="c1"))
    reply = core.Reply(200, body, {"content-type": wire.CONTENT_TYPE})
    result = core.result_from_job_reply(reply.decoded(), "c1", num_variables=4)
    assert result is not None and result.states.shape == (2, 4)
    np.testing.assert_array_equal(result.states[:, :3], states)
    assert result.timing["solve_time"] == 0.5 and result.best.frequency == 3
    empty = {"format": wire.REPLY_FORMAT, "status": "Running", "num_variables": 0,
             "states": wire.encode_array(np.zeros((0, 0), np.uint8)), "energies": wire.encode_array(np.zeros(0)),
             "frequencies": wire.encode_array(np.zeros(0, np.int64))}
    running = core.Reply(200, msgpack.packb(empty), {"content-type": wire.CONTENT_TYPE})
    assert core.result_from_job_reply(running.decoded(), "c1") is None
    assert core.status_of(running.decoded()) == "Running"


def test_import_stays_light() -> None:
    """``import client`` pulls in none of the service's heavy dependencies (nor scipy/dimod)."""
    import subprocess
    import sys
    code = ("import sys, client, client.core, client.solve_command; "
            "heavy = {'torch', 'numba', 'fastapi', 'scipy', 'dimod', 'service', 'uvicorn', 'starlette'}; "
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_extra_fields_and_timing_of_a_large_json_body() -> None:
    import time
    penalty = {"terms": [{"coefficient": 1.0, "polynomials": [0, 1]}]}
    body = core.plan_solve({(0, 1): 1.0}, "fujitsuDA3", extra={"penalty_binary_polynomial": penalty}).call.payload()
    assert body["penalty_binary_polynomial"] == penalty and "binary_polynomial" in body
    q = np.triu(np.random.default_rng(1).normal(size=(400, 400)))
    start = time.perf_counter()
    plan = core.plan_solve(q, "fujitsuDA2", transport="json")
    elapsed = time.perf_counter() - start
    assert len(plan.call.payload()["binary_polynomial"]["terms"]) == 400 * 401 // 2
    assert elapsed < 2.0  # ~80,000 terms; building dicts + json.dumps took ~4x longer


def test_typed_block_as_solver() -> None:
    from client.wire.da import FujitsuDA2PT, FujitsuDA3
    plan = core.plan_solve({(0, 1): 1.0}, FujitsuDA3(time_limit_sec=3, num_run=8), {"num_run": 4})
    assert plan.solver == "fujitsuDA3" and plan.call.payload()["fujitsuDA3"] == {"time_limit_sec": 3, "num_run": 4}
    assert core.plan_solve({(0, 1): 1.0}, FujitsuDA2PT()).call.path == "/v2/qubo/solve"
    with pytest.raises(ProblemError, match="block name"):
        core.plan_solve({(0, 1): 1.0}, 42)


def test_pattern_problem_goes_lean_once_known_with_a_full_fallback() -> None:
    from client import CouplingPattern, ProblemError

    pattern = CouplingPattern(4, [1, 0, 2], [0, 2, 3])  # (1, 0) is stored as (0, 1)
    problem = pattern.problem(np.array([1.0, -2.0, 0.5], np.float32), linear=[0.0, 1.0, 0.0, -1.0])
    first = core.plan_solve(problem, "fujitsuDA2", transport="compact")
    assert first.fallback is None and first.pattern_key == pattern.key
    full = first.call.payload().problem
    np.testing.assert_array_equal(full.rows, [0, 0, 2])
    assert full.values.dtype == np.float32 and full.pattern_key == pattern.key
    lean = core.plan_solve(problem, "fujitsuDA2", transport="compact", known_patterns={pattern.key})
    assert lean.call.payload().problem.rows is None and lean.call.passthrough == (409,)
    assert lean.fallback is not None and lean.fallback().content == first.call.content
    flow = core.send_flow(lean)
    assert next(flow) is lean.call
    retry = flow.send(core.Reply(409, b'{"error": {"code": 409, "message": "unknown"}}'))
    assert retry.content == first.call.content and retry.passthrough == ()
    with pytest.raises(StopIteration) as done:
        flow.send(core.Reply(200, b"{}"))
    assert done.value.value.status_code == 200
    with pytest.raises(ProblemError, match="values"):
        pattern.problem([1.0, 2.0])
    with pytest.raises(ProblemError, match="i != j"):
        CouplingPattern(3, [1], [1])


# ------------------------------------------------------------------------ the one retry loop
def _envelope(code: int) -> bytes:
    return json.dumps({"error": {"code": code, "title": "t", "message": f"m{code}"}}).encode()


def test_exchange_retries_transient_failures_then_returns_the_reply() -> None:
    call = core.Call("GET", "/v1/healthcheck")
    steps = core.exchange(call, RetryPolicy(max_attempts=3, jitter=False, base_delay=0.1))
    assert next(steps) == core.Attempt(call)
    failure = core.Failure(SpinOutError("refused"), ConnectionError("x"), retryable=True)
    assert steps.send(failure) == core.Sleep(0.1)
    assert steps.send(None) == core.Attempt(call)
    ok = core.Reply(200, b"{}", {})
    with pytest.raises(StopIteration) as stop:
        steps.send(ok)
    assert stop.value.value is ok


def test_exchange_raises_a_failure_that_a_retry_cannot_help() -> None:
    call = core.Call("POST", "/v2/qubo/solve")
    steps = core.exchange(call, RetryPolicy(max_attempts=5))
    next(steps)
    cause = TimeoutError("read")
    with pytest.raises(SpinOutError, match="slow") as info:
        steps.send(core.Failure(SpinOutError("slow"), cause, retryable=False))
    assert info.value.__cause__ is cause


def test_exchange_honours_retry_after_and_gives_up_after_max_attempts() -> None:
    call = core.Call("GET", "/v2/async/jobs")
    steps = core.exchange(call, RetryPolicy(max_attempts=2, jitter=False))
    next(steps)
    busy = core.Reply(503, _envelope(503), {"Retry-After": "0.5"})
    assert steps.send(busy) == core.Sleep(0.5)
    assert steps.send(None) == core.Attempt(call)
    with pytest.raises(ServerError):
        steps.send(busy)  # the second 503 was the last attempt


def test_exchange_passes_through_the_statuses_a_call_accepts() -> None:
    call = core.Call("GET", "/v2/async/jobs/result/x", passthrough=(404,))
    steps = core.exchange(call, RetryPolicy())
    next(steps)
    missing = core.Reply(404, _envelope(404), {})
    with pytest.raises(StopIteration) as stop:
        steps.send(missing)
    assert stop.value.value is missing
