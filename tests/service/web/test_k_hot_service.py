"""The ``k_hot_groups`` and ``final_states`` extensions on a real uvicorn server: DA JSON (sync
v1/v2, async DA3 beside one-hot groups) and the compact transport (``client.SolverClient``)."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import numpy as np
import pytest

from client import SolverClient
from client.errors import BadRequestError
from client.wire.da import FujitsuDA2, KHotGroupsSpec
from tests.service.conftest import (FINISHED, KEY_A, ServerProcess, config_energy, random_terms,
                                    wait_status)
from .test_service_api import assert_envelope, body

GROUPS = {"numbers": [4, 3, 2], "counts": [2, 1, 1]}  # variables 0..8; 9, 10, 11 free


def group_weights(configuration: dict[str, bool], firsts: list[int], sizes: list[int]) -> list[int]:
    return [sum(configuration[str(i)] for i in range(f, f + s)) for f, s in zip(firsts, sizes)]


def feasible_optimum(terms: list[dict[str, Any]], n: int, firsts: list[int], sizes: list[int],
                     counts: list[int]) -> float:
    best = np.inf
    for bits in itertools.product((False, True), repeat=n):
        config = {str(i): b for i, b in enumerate(bits)}
        if group_weights(config, firsts, sizes) == counts:
            best = min(best, config_energy(terms, config))
    return float(best)


def full_terms(n: int, seed: int) -> list[dict[str, Any]]:
    """Random terms that name every variable (the problem's size is its largest index + 1)."""
    return random_terms(n, seed=seed) + [{"c": 0.5, "p": [n - 1]}]


@pytest.mark.parametrize("route, solver, params", [
    ("/v2/qubo/solve", "fujitsuDA2", {"number_iterations": 400, "number_runs": 16}),
    ("/v1/qubo/solve", "fujitsuDA", {"number_iterations": 400, "number_runs": 8}),
    ("/v2/qubo/solve", "fujitsuDA2PT", {"number_iterations": 300, "number_replicas": 26}),
])
def test_sync_jobs_return_only_states_holding_the_groups(client: httpx.Client, route: str,
                                                         solver: str, params: dict[str, Any]) -> None:
    terms = full_terms(12, seed=4)
    r = client.post(route, json=body(terms, solver, {**params, "random_seed": 1,
                                                     "k_hot_groups": GROUPS}))
    assert r.status_code == 200, r.text
    solutions = r.json()["qubo_solution"]["solutions"]
    assert solutions
    for s in solutions:
        assert group_weights(s["configuration"], [0, 4, 7], [4, 3, 2]) == [2, 1, 1]
        assert s["energy"] == pytest.approx(config_energy(terms, s["configuration"]))
    optimum = feasible_optimum(terms, 12, [0, 4, 7], [4, 3, 2], [2, 1, 1])
    assert solutions[0]["energy"] == pytest.approx(optimum)


def test_da3_job_with_one_hot_and_k_hot_groups(client: httpx.Client) -> None:
    """k-hot groups start after the one-hot groups (here variables 3..8) without ``start``."""
    terms = full_terms(11, seed=7)
    block = {"time_limit_sec": 1, "random_seed": 2, "one_way_one_hot_groups": {"numbers": [3]},
             "k_hot_groups": {"numbers": [4, 2], "counts": [3, 1]}}
    r = client.post("/v3/async/qubo/solve", json=body(terms, "fujitsuDA3", block))
    assert r.status_code == 200, r.text
    reply = wait_status(client, r.json()["job_id"], FINISHED, "v3")
    assert reply["status"] == "Done", reply
    solutions = reply["qubo_solution"]["solutions"]
    feasible = [s for s in solutions if s["penalty_energy"] <= 1e-9]
    assert feasible
    for s in solutions:
        assert group_weights(s["configuration"], [3, 7], [4, 2]) == [3, 1]
    one_hot = [s for s in feasible if group_weights(s["configuration"], [0], [3]) == [1]]
    assert one_hot and one_hot[0]["energy"] == pytest.approx(
        feasible_optimum(terms, 11, [0, 3, 7], [3, 4, 2], [1, 3, 1]))


def test_final_states_are_samples_that_hold_the_groups(client: httpx.Client) -> None:
    terms = full_terms(12, seed=5)
    block = {"expert_mode": True, "number_runs": 64, "number_iterations": 50,
             "temperature_start": 5.0, "final_states": True, "random_seed": 3,
             "k_hot_groups": GROUPS}
    r = client.post("/v2/qubo/solve", json=body(terms, "fujitsuDA2", block))
    assert r.status_code == 200, r.text
    solutions = r.json()["qubo_solution"]["solutions"]
    assert sum(s["frequency"] for s in solutions) == 64  # one final state per run
    assert len(solutions) > 5  # hot runs end spread out, not all on the best state seen
    for s in solutions:
        assert group_weights(s["configuration"], [0, 4, 7], [4, 3, 2]) == [2, 1, 1]


@pytest.mark.parametrize("groups, extra, message", [
    ({"numbers": [4, 9], "counts": [1, 1]}, {}, "problem has 12 variables"),
    ({"numbers": [4], "counts": [5]}, {}, "do not fit a group of 4"),
    ({"numbers": [4, 3], "counts": [1]}, {}, "2 group sizes (numbers) but 1 counts"),
    ({"numbers": [0], "counts": [0]}, {}, "sizes must be >= 1"),
    ({"numbers": [3, 3], "counts": [1, 1], "start": [0, 2]}, {}, "without overlapping"),
    ({"numbers": [4], "counts": [2]}, {"fixed_config": {"1": True}}, "inside k_hot_groups"),
    ({"numbers": [4], "counts": [2], "start": 1},
     {"one_way_one_hot_groups": {"numbers": [3]}}, "inside the one-hot groups"),
])
def test_bad_groups_are_refused_with_400(client: httpx.Client, groups: dict[str, Any],
                                         extra: dict[str, Any], message: str) -> None:
    terms = full_terms(12, seed=1)
    block = {"time_limit_sec": 1, "k_hot_groups": groups, **extra}
    assert_envelope(client.post("/v3/async/qubo/solve", json=body(terms, "fujitsuDA3", block)),
                    400, message)


def test_groups_with_inequalities_and_bad_final_states_are_400(client: httpx.Client) -> None:
    terms = full_terms(12, seed=1)
    inequality = [{"terms": [{"c": 1, "p": [10]}, {"c": -1}], "lambda": 2}]
    r = client.post("/v3/async/qubo/solve", json={
        **body(terms, "fujitsuDA3", {"time_limit_sec": 1, "k_hot_groups": GROUPS}),
        "inequalities": inequality})
    assert_envelope(r, 400, "cannot be combined with inequalities")
    r = client.post("/v2/qubo/solve", json=body(terms, "fujitsuDA2", {
        "final_states": True, "expert_mode": True, "temperature_start": 1.0,
        "temperature_decay": 0.1}))
    assert_envelope(r, 400, "fixed temperature")
    r = client.post("/v2/qubo/solve", json=body(terms, "fujitsuDA2MixedMode", {
        "final_states": True, "temperature_start": 1.0}))
    assert_envelope(r, 400, "expert_mode")


def test_compact_transport_carries_the_groups(server: ServerProcess) -> None:
    """The typed extension through ``SolverClient`` on the compact (msgpack) body; a bad group
    comes back as the client's BadRequestError with the server's message."""
    rng = np.random.default_rng(2)
    q = np.triu(rng.normal(size=(30, 30)))
    spec = KHotGroupsSpec(numbers=[10, 10], counts=[3, 7], start=[5, 18])
    with SolverClient(server.url, api_key=KEY_A) as solver_client:
        result = solver_client.solve(q, FujitsuDA2(number_iterations=300, number_runs=16,
                                                   random_seed=1, k_hot_groups=spec),
                                     transport="compact")
        states = np.asarray(result.states)
        assert states.shape[1] == 30
        assert np.all(states[:, 5:15].sum(axis=1) == 3) and np.all(states[:, 18:28].sum(axis=1) == 7)
        energies = [float(x @ q @ x) for x in states.astype(float)]
        np.testing.assert_allclose(result.energies, energies, atol=1e-6)
        with pytest.raises(BadRequestError, match="problem has 30 variables"):
            solver_client.solve(q, "fujitsuDA2", transport="compact", number_runs=16,
                                k_hot_groups={"numbers": [31], "counts": [1]})
