"""Constrained DA3 jobs checked by enumeration on v3, v3c and v4 of a real server: random small
problems with an equality penalty, one-hot groups (one-way or two-way), 1-3 linear inequalities,
fixed and guidance configs together. The best feasible solution must be the exhaustive optimum,
and every solution's penalty_energy the penalty polynomial plus lambda x max(0, lhs)."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import numpy as np
import pytest

from tests.service.conftest import FINISHED, KEY_A, ServerProcess, wait_status
from .test_conformance import _evaluate, _terms, reference_optimum

VERSIONS = ("v3", "v3c", "v4")


def random_constrained_body(seed: int) -> dict[str, Any]:
    """Integer data, so a violated constraint costs at least 1 x its weight; weights above the
    objective's range make every optimum of the penalised energy feasible."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(9, 13))
    terms = [{"c": int(rng.integers(-6, 5)), "p": [i]} for i in range(n)]
    terms += [{"c": int(rng.integers(-4, 5)), "p": [i, j]}
              for i, j in itertools.combinations(range(n), 2) if rng.random() < 0.35]
    weight = 1 + sum(abs(t["c"]) for t in terms)
    block: dict[str, Any] = {"time_limit_sec": 1, "random_seed": seed, "penalty_coef": weight}
    if seed % 2:
        block["one_way_one_hot_groups"] = {"numbers": [3]}
        grouped = 3
    else:
        block["two_way_one_hot_groups"] = {"numbers": [4]}  # a 2 x 2 permutation block
        grouped = 4
    free = list(range(grouped, n))
    # equality: x_a + x_b = 1 as (x_a + x_b - 1)^2 = -x_a - x_b + 2 x_a x_b + 1
    a, b = (int(v) for v in rng.choice(free, size=2, replace=False))
    penalty = [{"c": -1, "p": [a]}, {"c": -1, "p": [b]}, {"c": 2, "p": [a, b]}, {"c": 1, "p": []}]
    inequalities = []
    for _ in range(int(rng.integers(1, 4))):
        members = rng.choice(n, size=int(rng.integers(3, n)), replace=False)
        coeffs = rng.integers(1, 6, size=members.size)
        capacity = int(coeffs.sum() // 2)
        inequalities.append({"terms": [{"c": int(c), "p": [int(i)]} for c, i in zip(coeffs, members)]
                             + [{"c": -capacity}], "lambda": weight})
    fixed_var = int(rng.choice([v for v in free if v not in (a, b)]))
    block["fixed_config"] = {str(fixed_var): False}
    block["guidance_config"] = {str(i): bool(rng.integers(0, 2)) for i in range(n)}
    return {"fujitsuDA3": block, "binary_polynomial": {"terms": terms},
            "penalty_binary_polynomial": {"terms": penalty}, "inequalities": inequalities}


def expected_penalty(body: dict[str, Any], configuration: dict[str, bool]) -> float:
    n = len(configuration)
    x = np.array([[int(configuration[str(i)]) for i in range(n)]], dtype=float)
    total = float(_evaluate(_terms(body["penalty_binary_polynomial"]), x)[0])
    for q in body["inequalities"]:
        total += q["lambda"] * max(0.0, float(_evaluate(_terms(q), x)[0]))
    return total


SEEDS = list(range(8))


def test_random_constrained_jobs_reach_the_exhaustive_optimum(quick_job_server: ServerProcess) -> None:
    bodies = {seed: random_constrained_body(seed) for seed in SEEDS}
    jobs = []
    with httpx.Client(base_url=quick_job_server.url, headers={"X-Api-Key": KEY_A}, timeout=60.0) as http:
        for seed, body in bodies.items():
            for version in VERSIONS:
                r = http.post(f"/da/{version}/async/qubo/solve", json=body)
                assert r.status_code == 200, r.text
                jobs.append((seed, version, r.json()["job_id"]))
        for seed, version, job_id in jobs:
            body = bodies[seed]
            reply = wait_status(http, job_id, FINISHED, version, timeout=120, prefix="/da")
            assert reply["status"] == "Done", reply
            solutions = reply["qubo_solution"]["solutions"]
            optimum, _ = reference_optimum(body)
            feasible = [s for s in solutions if s["penalty_energy"] <= 1e-9]
            assert feasible and feasible[0]["energy"] == pytest.approx(optimum), (seed, version)
            assert solutions[0] is feasible[0]  # feasible solutions come first
            for s in solutions:
                assert s["penalty_energy"] == pytest.approx(expected_penalty(body, s["configuration"]))
            fixed = body["fujitsuDA3"]["fixed_config"]
            assert all(s["configuration"][k] == v for s in solutions for k, v in fixed.items())
            progress = reply["qubo_solution"]["progress"]
            assert progress[-1]["penalty_energy"] == pytest.approx(0.0)
            assert progress[-1]["energy"] == pytest.approx(optimum)


def test_the_random_problems_bind() -> None:
    """Each generated problem's constraints change its optimum (else the test proves nothing)."""
    for seed in SEEDS:
        body = random_constrained_body(seed)
        free = {**body, "penalty_binary_polynomial": None, "inequalities": [],
                "fujitsuDA3": {"time_limit_sec": 1}}
        assert reference_optimum(body)[0] > reference_optimum(free)[0]
