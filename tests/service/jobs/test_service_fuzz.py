"""Malformed input never crashes the parser: it is accepted or refused with a InvalidRequestError (400)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.jobs.parsing import InvalidRequestError, parse_compact_request, parse_da_request
from service.jobs.solvers import build_problem

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**70), st.floats(allow_nan=False),
                    st.text(max_size=3))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=3), inner, max_size=3)),
                      max_leaves=8)
index = st.one_of(st.integers(-2, 40), st.floats(-2, 40, allow_nan=False), st.text(max_size=2), st.none(),
                  st.booleans(), st.lists(st.integers(0, 3), max_size=2))
term = st.fixed_dictionaries({}, optional={
    "c": st.one_of(st.floats(allow_nan=False, allow_infinity=False), scalars),
    "coefficient": st.one_of(st.floats(allow_nan=False, allow_infinity=False), scalars),
    "p": st.one_of(st.lists(index, max_size=4), scalars),
    "polynomials": st.one_of(st.lists(index, max_size=4), scalars)})
block = st.one_of(st.just({}), st.dictionaries(
    st.sampled_from(["number_iterations", "number_runs", "number_replicas", "time_limit_sec",
                     "guidance_config", "solution_mode", "random_seed", "fixed_config"]), values, max_size=3))
body = st.fixed_dictionaries({"binary_polynomial": st.one_of(
    st.fixed_dictionaries({"terms": st.lists(term, max_size=6)}), values)},
    optional={"fujitsuDA2": block, "fujitsuDA3": block, "qubo_matrix": values,
              "penalty_binary_polynomial": values})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=body, version=st.sampled_from(["v1", "v2", "v3"]))
def test_da_parser_only_refuses_with_problem_error(body: dict[str, Any], version: str) -> None:
    try:
        raw = orjson.dumps(body)
    except (TypeError, orjson.JSONEncodeError):
        return  # not JSON at all (e.g. an int beyond 64 bits): the HTTP layer sees garbage bytes
    try:
        req = parse_da_request(raw, version)
    except InvalidRequestError:
        return
    build_problem(req.problem)  # what the parser accepts, the engine accepts


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=64))
def test_compact_parser_only_refuses_with_problem_error(raw: bytes) -> None:
    try:
        parse_compact_request(raw)
    except InvalidRequestError:
        pass
