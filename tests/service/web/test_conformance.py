"""DA client conformance: the request shapes public DA client libraries send, replayed against a
real ``spinout serve`` on every route of their versions (with and without the /da prefix).

The corpus (tests/service/conformance/*.json) records shapes, not code. Valid shapes must be
accepted, finish, answer the optimum (found here by enumeration, independently of the service's
parser) and parse with reply models as strict as the strictest public client's; invalid shapes
must answer 400 with a message naming the field.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr

from client.wire.da import JobResult, SyncSolveResponse

from tests.service.conftest import KEY_A, ServerProcess

CORPUS = Path(__file__).parent / "conformance"
VALID = json.loads((CORPUS / "valid.json").read_text())["cases"]
INVALID = json.loads((CORPUS / "invalid.json").read_text())["cases"]
PREFIXES = ("/da", "")


# ------------------------------------------------------------- replies as strict clients read them
class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow")


class StrictProgress(_Strict):
    energy: float
    penalty_energy: float
    time: float


class StrictSolution(_Strict):
    energy: float
    penalty_energy: float
    frequency: StrictInt
    configuration: dict[str, StrictBool]


class StrictTimingV3(_Strict):
    solve_time: StrictStr
    total_elapsed_time: StrictStr


class StrictTimingV12(_Strict):
    cpu_time: StrictInt
    queue_time: StrictInt
    solve_time: StrictInt
    total_elapsed_time: StrictInt


class StrictSolutionsV3(_Strict):
    progress: list[StrictProgress]
    result_status: StrictBool
    solutions: list[StrictSolution]
    timing: StrictTimingV3


class StrictReplyV3(_Strict):
    qubo_solution: StrictSolutionsV3
    status: Literal["Done", "Deleted"]


# ------------------------------------------------------------------------ the reference optimum
def _terms(poly: Any) -> list[tuple[float, list[int]]]:
    out = []
    for term in (poly or {}).get("terms") or []:
        c = term["c"] if "c" in term else term["coefficient"]
        p = term["p"] if "p" in term else term.get("polynomials") or []
        out.append((float(c), [int(i) for i in p]))
    return out


def _evaluate(terms: list[tuple[float, list[int]]], states: np.ndarray) -> np.ndarray:
    total = np.zeros(len(states))
    for c, idx in terms:
        total += c * (np.prod(states[:, idx], axis=1) if idx else 1.0)
    return total


def reference_optimum(body: dict[str, Any]) -> tuple[float, int]:
    """(lowest energy over the feasible states, number of variables), by enumeration."""
    block_key = next(k for k in body if k.startswith("fujitsuDA"))
    block = body[block_key] or {}
    objective = _terms(body.get("binary_polynomial"))
    penalty = _terms(body.get("penalty_binary_polynomial"))
    inequalities = [(_terms(q), float(q.get("lambda", 1))) for q in body.get("inequalities") or []]
    matrix = None
    if body.get("qubo_matrix") is not None:
        matrix = np.array([row["qubo_row"] for row in body["qubo_matrix"]["qubo"]], dtype=float)
        n = matrix.shape[0]
    else:
        indices = [i for t in (objective + penalty + [x for q, _ in inequalities for x in q])
                   for i in t[1]]
        n = max(indices) + 1
    states = np.array(list(itertools.product([0, 1], repeat=n)), dtype=float)
    energy = (np.einsum("ki,ij,kj->k", states, matrix, states) if matrix is not None
              else _evaluate(objective, states))
    feasible = np.abs(_evaluate(penalty, states)) < 1e-9
    for q, _ in inequalities:
        feasible &= _evaluate(q, states) <= 1e-9
    start = 0
    for size in ((block.get("one_way_one_hot_groups") or {}).get("numbers") or []):
        feasible &= states[:, start:start + size].sum(axis=1) == 1
        start += size
    for size in ((block.get("two_way_one_hot_groups") or {}).get("numbers") or []):
        k = int(round(size ** 0.5))
        grid = states[:, start:start + size].reshape(-1, k, k)
        feasible &= np.all(grid.sum(axis=1) == 1, axis=1) & np.all(grid.sum(axis=2) == 1, axis=1)
        start += size
    for idx, value in (block.get("fixed_config") or {}).items():
        feasible &= states[:, int(idx)] == int(value)
    return float(energy[feasible].min()), n


def _routes(case: dict[str, Any]) -> list[tuple[str, str]]:
    return [(version, prefix) for version in case["versions"] for prefix in PREFIXES]


def _headers(case: dict[str, Any]) -> dict[str, str]:
    return {case.get("auth_header", "X-Api-Key"): KEY_A, "Content-Type": "application/json",
            **case.get("headers", {})}


def _check_solutions(case: dict[str, Any], qubo_solution: dict[str, Any], version: str) -> None:
    expected, n = reference_optimum(case["body"])
    best = qubo_solution["solutions"][0]
    where = f"{case['name']} on /{version}"
    assert best["energy"] == pytest.approx(expected, abs=1e-9), where
    assert set(best["configuration"]) >= {str(i) for i in range(n)}, where
    if version not in ("v1", "v2"):
        assert best["penalty_energy"] == pytest.approx(0.0, abs=1e-9), where
        energies = [s["energy"] for s in qubo_solution["solutions"] if s["penalty_energy"] <= 1e-9]
        assert energies == sorted(energies), where


def test_valid_async_shapes_run_on_every_route(quick_job_server: ServerProcess) -> None:
    cases = [c for c in VALID if c["kind"] == "async"]
    submitted: list[tuple[dict[str, Any], str, str, str]] = []
    with httpx.Client(base_url=quick_job_server.url, timeout=60.0) as http:
        for case in cases:
            for version, prefix in _routes(case):
                r = http.post(f"{prefix}/{version}/async/qubo/solve", headers=_headers(case),
                              content=json.dumps(case["body"]))
                assert r.status_code == 200, f"{case['name']} on {prefix}/{version}: {r.text}"
                submitted.append((case, version, prefix, r.json()["job_id"]))
        assert len(submitted) == sum(len(_routes(c)) for c in cases)
        deadline = time.monotonic() + 180
        for case, version, prefix, job_id in submitted:
            poll = {k: v.format(job_id=job_id) for k, v in case.get("poll_headers", {}).items()}
            headers = {**_headers(case), **poll}
            url = f"{prefix}/{version}/async/jobs/result/{job_id}"
            while True:
                body = http.get(url, headers=headers).json()
                if body["status"] not in ("Waiting", "Running"):
                    break
                assert time.monotonic() < deadline, f"{case['name']} did not finish"
                time.sleep(0.05)
            assert body["status"] == "Done", f"{case['name']} on {prefix}/{version}: {body}"
            JobResult.model_validate(body)
            if version != "v2":
                StrictReplyV3.model_validate(body)
            _check_solutions(case, body["qubo_solution"], version)
            deleted = http.delete(url, headers=headers).json()
            assert deleted["status"] == "Deleted"
            if version != "v2":
                StrictReplyV3.model_validate(deleted)


def test_valid_sync_shapes_answer_on_every_route(quick_job_server: ServerProcess) -> None:
    with httpx.Client(base_url=quick_job_server.url, timeout=60.0) as http:
        for case in (c for c in VALID if c["kind"] == "sync"):
            for version, prefix in _routes(case):
                r = http.post(f"{prefix}/{version}/qubo/solve", headers=_headers(case),
                              content=json.dumps(case["body"]))
                assert r.status_code == 200, f"{case['name']} on {prefix}/{version}: {r.text}"
                body = r.json()
                SyncSolveResponse.model_validate(body)
                StrictTimingV12.model_validate(body["qubo_solution"]["timing"])
                _check_solutions(case, body["qubo_solution"], version)


@pytest.mark.parametrize("case", INVALID, ids=[c["name"] for c in INVALID])
def test_invalid_shapes_are_refused_naming_the_field(quick_job_server: ServerProcess,
                                                     case: dict[str, Any]) -> None:
    with httpx.Client(base_url=quick_job_server.url, timeout=30.0) as http:
        for version, prefix in _routes(case):
            r = http.post(f"{prefix}/{version}/async/qubo/solve", headers=_headers(case),
                          content=json.dumps(case["body"]))
            assert r.status_code == 400, f"{case['name']} on {prefix}/{version}: {r.status_code} {r.text}"
            error = r.json()["error"]
            assert error["code"] == 400 and case["field"] in error["message"], error


def test_job_list_start_time_is_seconds_and_z(quick_job_server: ServerProcess) -> None:
    """A published client parses start_time with strptime('%Y-%m-%dT%H:%M:%SZ')."""
    case = VALID[0]
    with httpx.Client(base_url=quick_job_server.url, timeout=30.0) as http:
        r = http.post("/da/v4/async/qubo/solve", headers=_headers(case), content=json.dumps(case["body"]))
        job_id = r.json()["job_id"]
        listing = http.get("/da/v4/async/jobs", headers=_headers(case)).json()["job_status_list"]
        entry = next(e for e in listing if e["job_id"] == job_id)
        parsed = datetime.strptime(entry["start_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        assert abs(parsed.timestamp() - time.time()) < 600


def test_reference_optimum_respects_every_constraint_kind() -> None:
    """The oracle itself: a hand-checkable case of each constraint kind."""
    body = {"fujitsuDA3": {"fixed_config": {"0": True}, "one_way_one_hot_groups": {"numbers": [2]}},
            "binary_polynomial": {"terms": [{"c": -1.0, "p": [0]}, {"c": -1.0, "p": [1]},
                                            {"c": -5.0, "p": [2]}, {"c": -3.0, "p": [3]}]},
            "inequalities": [{"terms": [{"c": 1.0, "p": [2]}, {"c": 1.0, "p": [3]}, {"c": -1.0}]}]}
    # x0 fixed 1 -> x1 = 0 by the group; x2 + x3 <= 1 -> x2 = 1: -1 - 5
    assert reference_optimum(body) == (-6.0, 4)
