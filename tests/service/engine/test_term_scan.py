"""The byte scanner of DA JSON terms against the general (orjson + numpy) parser.

Every body is parsed twice: from bytes (the scanner's path when it applies) and from the
already-decoded dict (always the general path). Both must give the same problem, or the same
error message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.jobs.parsing import InvalidRequestError, parse_da_request
from service.engine.term_scan import scan_binary_polynomial
from tests.service.conftest import KEY_A, ServerProcess, limited_server


def both_ways(raw: bytes, version: str = "v2") -> tuple[object, object]:
    """(parse from bytes, parse from the decoded dict); each a request or the error text."""
    def attempt(source: object) -> object:
        try:
            return parse_da_request(source, version)  # type: ignore[arg-type]
        except InvalidRequestError as exc:
            return f"error: {exc}"
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        decoded = None
    return attempt(raw), (attempt(decoded) if decoded is not None else None)


def assert_same_request(a: object, b: object) -> None:
    assert type(a) is type(b)
    if isinstance(a, str):
        assert a == b
        return
    pa, pb = a.problem, b.problem  # type: ignore[attr-defined]
    assert pa.num_variables == pb.num_variables
    for name in ("rows", "cols", "values", "linear"):
        np.testing.assert_array_equal(getattr(pa, name), getattr(pb, name))
    assert pa.constant == pb.constant
    assert a.parameters == b.parameters  # type: ignore[attr-defined]


number = st.one_of(
    st.floats(min_value=-1e300, max_value=1e300, allow_nan=False, width=64),
    st.integers(-10**6, 10**6),
    st.sampled_from(["0", "-0", "-0.0", "1e-3", "2E+5", "3.25e2", "-7.5E-1", "123456789012345678", "1e300"]),
)


def coefficient_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@st.composite
def term_text(draw: st.DrawFn) -> str:
    coefficient = coefficient_text(draw(number))
    degree = draw(st.integers(0, 2))
    indices = [draw(st.integers(0, 40)) for _ in range(degree)]
    space = draw(st.sampled_from(["", " ", "\n  ", "\t"]))
    c_key = draw(st.sampled_from(['"c"', '"coefficient"']))
    p_key = draw(st.sampled_from(['"p"', '"polynomials"']))
    parts = [f"{c_key}{space}:{space}{coefficient}"]
    if degree or draw(st.booleans()):
        parts.append(f"{p_key}:{space}[{space}{(',' + space).join(map(str, indices))}{space}]")
    if draw(st.booleans()):
        parts.reverse()
    return "{" + space + ("," + space).join(parts) + space + "}"


@settings(max_examples=150, deadline=None)
@given(terms=st.lists(term_text(), min_size=1, max_size=30),
       solver_first=st.booleans(), extra_key=st.booleans())
def test_scanned_terms_equal_the_general_parser(terms: list[str], solver_first: bool,
                                                extra_key: bool) -> None:
    poly = '"binary_polynomial": {' + ('"note": [1, {"terms": 2}], ' if extra_key else "")
    poly += '"terms": [' + ", ".join(terms) + "]}"
    solver = '"fujitsuDA2": {"number_iterations": 10}'
    raw = ("{" + (f"{solver}, {poly}" if solver_first else f"{poly}, {solver}") + "}").encode()
    assert scan_binary_polynomial(raw) is not None  # the plain form: the scanner's path
    from_bytes, from_dict = both_ways(raw)
    assert_same_request(from_bytes, from_dict)


def test_scanner_reads_the_values_it_is_given() -> None:
    raw = (b'{"binary_polynomial": {"terms": [{"c": 1.5, "p": [0, 3]}, {"coefficient": -2,'
           b' "polynomials": [2]}, {"p": [], "c": 4e-1}, {"c": 7, "p": [5, 5]}]}, "fujitsuDA": {}}')
    scanned = scan_binary_polynomial(raw)
    assert scanned is not None
    np.testing.assert_array_equal(scanned.coefficients, [1.5, -2.0, 0.4, 7.0])
    np.testing.assert_array_equal(scanned.first, [0, 2, -1, 5])
    np.testing.assert_array_equal(scanned.second, [3, -1, -1, 5])
    assert orjson.loads(scanned.rest) == {"binary_polynomial": {"terms": []}, "fujitsuDA": {}}


IRREGULAR = {
    "both coefficient spellings": '{"c": 1, "coefficient": 2, "p": [0]}',
    "both index spellings": '{"c": 1, "p": [0], "polynomials": [1]}',
    "a key twice": '{"c": 1, "c": 2, "p": [0]}',
    "an unknown key": '{"c": 1, "p": [0], "weight": 3}',
    "an escaped key": '{"\\u0063": 1, "p": [0]}',
    "degree 3": '{"c": 1, "p": [0, 1, 2]}',
    "degree 3 collapsing": '{"c": 1, "p": [1, 1, 2]}',
    "a float index": '{"c": 1, "p": [1.0, 2]}',
    "an exponent index": '{"c": 1, "p": [1e0]}',
    "a negative index": '{"c": 1, "p": [-1, 2]}',
    "a leading zero": '{"c": 1, "p": [01]}',
    "a string coefficient": '{"c": "1", "p": [0]}',
    "a boolean coefficient": '{"c": true, "p": [0]}',
    "a null coefficient": '{"c": null, "p": [0]}',
    "null indices": '{"c": 1, "p": null}',
    "no coefficient": '{"p": [0, 1]}',
    "an infinite coefficient": '{"c": 1e400, "p": [0]}',
    "a huge index": '{"c": 1, "p": [12345678901234567890123]}',
    "a bare number": "5",
    "an empty object": "{}",
    "a trailing comma": '{"c": 1, "p": [0],}',
    "a missing colon": '{"c" 1, "p": [0]}',
    "NaN": '{"c": NaN, "p": [0]}',
}


def test_a_huge_integer_coefficient_is_read_as_orjson_reads_it() -> None:
    raw = (b'{"binary_polynomial": {"terms": [{"c": 123456789012345678901234567890, "p": [0]}]},'
           b' "fujitsuDA2": {}}')
    assert scan_binary_polynomial(raw) is not None
    assert_same_request(*both_ways(raw))


@pytest.mark.parametrize("term", IRREGULAR.values(), ids=list(IRREGULAR))
def test_irregular_terms_take_the_general_path(term: str) -> None:
    raw = ('{"binary_polynomial": {"terms": [{"c": 2, "p": [0, 1]}, ' + term + ']}, '
           '"fujitsuDA2": {}}').encode()
    assert scan_binary_polynomial(raw) is None
    from_bytes, from_dict = both_ways(raw)
    if from_dict is None:  # not JSON at all: the general path's own message
        assert isinstance(from_bytes, str) and "not valid JSON" in from_bytes
    else:
        assert_same_request(from_bytes, from_dict)


BODIES = {
    "binary_polynomial twice": '{"binary_polynomial": {"terms": [{"c": 1, "p": [0]}]}, '
                               '"binary_polynomial": {"terms": [{"c": 2, "p": [1]}]}, "fujitsuDA2": {}}',
    "terms twice": '{"binary_polynomial": {"terms": [{"c": 1, "p": [0]}], "terms": [{"c": 2, "p": [3]}]},'
                   ' "fujitsuDA2": {}}',
    "terms not a list": '{"binary_polynomial": {"terms": {"c": 1}}, "fujitsuDA2": {}}',
    "binary_polynomial not an object": '{"binary_polynomial": [{"c": 1, "p": [0]}], "fujitsuDA2": {}}',
    "empty terms": '{"binary_polynomial": {"terms": []}, "fujitsuDA2": {}}',
    "nested look-alike only": '{"fujitsuDA2": {"binary_polynomial": {"terms": [{"c": 1, "p": [0]}]}}}',
    "broken JSON after the terms": '{"binary_polynomial": {"terms": [{"c": 1, "p": [0]}]}, "fujitsuDA2": {]}',
    "an unclosed string": '{"binary_polynomial": {"terms": [{"c": 1, "p": [0]}]}, "fujitsuDA2": {"a',
}


@pytest.mark.parametrize("body", BODIES.values(), ids=list(BODIES))
def test_unusual_bodies_answer_as_the_general_parser(body: str) -> None:
    raw = body.encode()
    from_bytes, from_dict = both_ways(raw)
    if from_dict is None:
        assert isinstance(from_bytes, str) and "not valid JSON" in from_bytes
    else:
        assert_same_request(from_bytes, from_dict)


def test_errors_after_a_scan_name_the_term() -> None:
    """A scanned body still gets the general checks: size limit and the terms cap."""
    raw = b'{"binary_polynomial": {"terms": [{"c": 1, "p": [0, 1024]}]}, "fujitsuDA": {}}'
    assert scan_binary_polynomial(raw) is not None
    with pytest.raises(InvalidRequestError, match="1025 variables; /v1 accepts at most 1,024"):
        parse_da_request(raw, "v1")
    raw = b'{"binary_polynomial": {"terms": [' + b", ".join([b'{"c": 1, "p": [0, 1]}'] * 5) + b"]}, " \
          b'"fujitsuDA2": {}}'
    with pytest.raises(InvalidRequestError, match="5 terms; this server accepts at most 4"):
        parse_da_request(raw, "v2", max_terms=4)
    assert parse_da_request(raw, "v2", max_terms=5).problem.values.sum() == 5.0


# ------------------------------------------------------------------------------ the term_scan setting
SOLVABLE = (b'{"binary_polynomial": {"terms": [{"c": -1.5, "p": [0, 1]}, {"coefficient": 2,'
            b' "polynomials": [1]}, {"c": -1, "p": [2]}, {"c": 0.5, "p": [0, 2]}, {"c": 3}]},'
            b' "fujitsuDA2": {"number_iterations": 100, "number_runs": 16, "random_seed": 5}}')
#: Bodies the scanner reads (or steps aside from) whose answer is an error.
REFUSED = [
    b'{"binary_polynomial": {"terms": [{"c": 1, "p": [0, 1024]}]}, "fujitsuDA": {}}',
    b'{"binary_polynomial": {"terms": [{"c": 1e400, "p": [0]}]}, "fujitsuDA2": {}}',
    b'{"binary_polynomial": {"terms": [{"c": 1, "p": [0]}]}, "fujitsuDA2": {]}',
    b'{"binary_polynomial": {"terms": [{"c": 1, "p": [0]}]}, "fujitsuDA2": {"number_runs": 5}}',
]


@pytest.fixture()
def scanner_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the parser's calls of the scanner (one entry per call)."""
    import service.jobs.parsing as parsing

    calls: list[int] = []

    def counted(raw: bytes) -> object:
        calls.append(1)
        return scan_binary_polynomial(raw)

    monkeypatch.setattr(parsing, "scan_binary_polynomial", counted)
    return calls


def test_scan_terms_off_never_calls_the_scanner(scanner_calls: list[int]) -> None:
    off = parse_da_request(SOLVABLE, "v2", scan_terms=False)
    assert scanner_calls == []
    on = parse_da_request(SOLVABLE, "v2")
    assert scanner_calls == [1]
    assert_same_request(on, off)
    for raw, version in zip(REFUSED, ["v1", "v2", "v2", "v2"]):
        with pytest.raises(InvalidRequestError) as without:
            parse_da_request(raw, version, scan_terms=False)
        with pytest.raises(InvalidRequestError) as with_scan:
            parse_da_request(raw, version)
        assert str(without.value) == str(with_scan.value)
    assert len(scanner_calls) == 1 + len(REFUSED)


def test_body_parsers_follow_the_setting(scanner_calls: list[int], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from starlette.requests import Request

    from service.web.app import create_app
    from service.web.settings import Settings

    monkeypatch.setenv("SPINOUT_TERM_SCAN", "0")
    settings = Settings(database=str(tmp_path / "jobs.sqlite3"))
    assert settings.term_scan is False
    parsers = create_app(settings).state.service.parsers
    request = Request({"type": "http", "headers": [(b"content-type", b"application/json")]})
    off = asyncio.run(parsers.da(request, SOLVABLE, "v2"))
    assert scanner_calls == []
    parsers.scan_terms = True
    on = asyncio.run(parsers.da(request, SOLVABLE, "v2"))
    assert scanner_calls == [1]
    assert_same_request(on, off)


@pytest.fixture(scope="module")
def unscanned_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The shared server's limits, started with ``--no-term-scan``."""
    proc = limited_server(tmp_path_factory.mktemp("unscanned"), "--api-key", KEY_A,
                          "--no-term-scan")
    yield proc
    proc.stop()


def test_no_term_scan_server_answers_as_the_scanning_one(server: ServerProcess,
                                                         unscanned_server: ServerProcess) -> None:
    def answers(url: str) -> list[tuple[int, object]]:
        out: list[tuple[int, object]] = []
        with httpx.Client(base_url=url, headers={"X-Api-Key": KEY_A,
                                                 "Content-Type": "application/json"}, timeout=60) as c:
            for raw, version in [(SOLVABLE, "v2"), *zip(REFUSED, ["v1", "v2", "v2", "v2"])]:
                r = c.post(f"/{version}/qubo/solve", content=raw)
                reply = r.json()
                if r.status_code == 200:
                    reply = reply["qubo_solution"]["solutions"]  # the timings differ
                else:
                    reply = reply["error"]["message"]
                out.append((r.status_code, reply))
        return out

    scanned, unscanned = answers(server.url), answers(unscanned_server.url)
    assert [code for code, _ in scanned] == [200, 400, 400, 400, 400]
    assert scanned == unscanned
