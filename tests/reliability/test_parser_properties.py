"""Hypothesis against the DA request parser: random term lists (spellings, duplicates, [i, i],
constants), indices, coefficients and nesting. Whatever the parser accepts has exactly the
polynomial's energy; whatever it refuses is a InvalidRequestError (a 400); the same bodies on a real
server answer 200 or 4xx in the envelope."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.jobs.parsing import InvalidRequestError, parse_da_request
from tests.reliability.conftest import check_answer, client_for
from tests.service.conftest import ServerProcess

N = 7
coefficient = st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False, width=32))
indices = st.lists(st.integers(0, N - 1), min_size=0, max_size=2)


@st.composite
def term(draw: Any) -> dict[str, Any]:
    c, p = draw(coefficient), draw(indices)
    spelling = draw(st.sampled_from(["short", "long", "both"]))
    if spelling == "short":
        out: dict[str, Any] = {"c": c}
        if p or draw(st.booleans()):
            out["p"] = p
    elif spelling == "long":
        out = {"coefficient": c}
        if p or draw(st.booleans()):
            out["polynomials"] = p
    else:  # c/p win over coefficient/polynomials
        out = {"coefficient": 12345, "polynomials": [0], "c": c, "p": p}
    return out


def energy(terms: list[dict[str, Any]], x: np.ndarray) -> float:
    total = 0.0
    for t in terms:
        c = t["c"] if "c" in t else t["coefficient"]
        p = t["p"] if "p" in t else t.get("polynomials", [])
        total += float(c) * float(np.prod([x[i] for i in p])) if p else float(c)
    return total


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(terms=st.lists(term(), min_size=1, max_size=25), seed=st.integers(0, 2**16))
def test_accepted_terms_keep_their_energy(terms: list[dict[str, Any]], seed: int) -> None:
    raw = orjson.dumps({"binary_polynomial": {"terms": terms}, "fujitsuDA2": {}})
    try:
        req = parse_da_request(raw, "v2", max_terms=1000)
    except InvalidRequestError as exc:
        assert "no variables" in str(exc)  # only constants: refused with a message
        return
    p = req.problem
    states = np.random.default_rng(seed).integers(0, 2, size=(8, p.num_variables))
    linear = np.zeros(p.num_variables) if p.linear is None else p.linear
    for x in states:
        parsed = p.constant + linear @ x + float(np.sum(p.values * x[p.rows] * x[p.cols]))
        assert abs(parsed - energy(terms, x)) <= 1e-6 * (1 + sum(abs(float(t.get("c", t.get("coefficient", 0))))
                                                               for t in terms))


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=4))
nested = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["c", "p", "terms", "coefficient",
                                                                  "polynomials", "x"]), inner, max_size=4)),
    max_leaves=30)
hostile_index = st.one_of(st.integers(-(2**64), 2**64 + 5), st.floats(allow_nan=False), st.text(max_size=3),
                          st.none(), st.booleans(), nested)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.fixed_dictionaries({"binary_polynomial": st.one_of(
           nested, st.fixed_dictionaries({"terms": st.lists(st.one_of(nested, st.fixed_dictionaries(
               {"c": st.one_of(coefficient, json_leaf)},
               optional={"p": st.lists(hostile_index, max_size=5)})), max_size=8)}))},
           optional={"fujitsuDA3": st.one_of(nested, st.just({})),
                     "penalty_binary_polynomial": nested, "qubo_matrix": nested}),
       version=st.sampled_from(["v1", "v2", "v3", "v4"]))
def test_hostile_structures_only_raise_problem_error(body: dict[str, Any], version: str) -> None:
    try:
        raw = orjson.dumps(body)
    except orjson.JSONEncodeError:
        return  # an integer beyond 64 bits: not sendable by orjson; the HTTP test covers text
    try:
        parse_da_request(raw, version, max_terms=10_000)
    except InvalidRequestError as exc:
        assert str(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(terms=st.lists(st.one_of(term(), term(), term(), st.fixed_dictionaries(
           {"c": st.one_of(coefficient, json_leaf)}, optional={"p": st.lists(hostile_index, max_size=3)})),
           min_size=1, max_size=12),
       path=st.sampled_from(["/v1/qubo/solve", "/v2/qubo/solve", "/v3/async/qubo/solve"]))
def test_random_terms_over_http(open_server: ServerProcess, terms: list[Any], path: str) -> None:
    block = {"/v1/qubo/solve": ("fujitsuDA", {"number_iterations": 20, "number_runs": 4}),
             "/v2/qubo/solve": ("fujitsuDA2", {"number_iterations": 20}),
             "/v3/async/qubo/solve": ("fujitsuDA3", {"time_limit_sec": 1, "num_run": 1})}[path]
    try:
        raw = orjson.dumps({"binary_polynomial": {"terms": terms}, block[0]: block[1]})
    except orjson.JSONEncodeError:
        raw = repr(terms).encode()  # not JSON: must be a 400 all the same
    with client_for(open_server, key=None) as c:
        r = check_answer(c.post(path, content=raw, headers={"Content-Type": "application/json"}),
                         "hypothesis (http)")
        assert r.status_code in (200, 400, 429), r.text
        if r.status_code == 200 and "async" in path:
            job_id = r.json()["job_id"]
            c.post("/v3/async/jobs/cancel", json={"job_id": job_id})
            c.delete(f"/v3/async/jobs/result/{job_id}")
