"""The shared wire models and the compact transport, and the vectorised DA JSON parser."""

from __future__ import annotations

import time

import msgpack
import numpy as np
import orjson
import pytest

from client.wire.da import (BLOCK_GENERATION, SOLVER_BLOCKS, FujitsuDA3, JobStatus, RequestEnvelope,
                           SolveRequest, generation_for_version)
from client.wire.compact import (CompactProblem, CompactReply, CompactFormatError, decode_array, decode_reply,
                              decode_request, encode_array, encode_reply, encode_request, pack_states,
                              unpack_states)
from service.jobs.parsing import InvalidRequestError, parse_compact_request, parse_da_request
from service.jobs.solve_job import SolveJob
from service.jobs.solvers import build_problem


def test_every_block_accepts_empty_and_has_a_generation() -> None:
    for key, block in SOLVER_BLOCKS.items():
        assert block.model_validate({}) is not None
        assert key in BLOCK_GENERATION[key].blocks
    assert generation_for_version("v3c").max_bits == 100_000
    assert generation_for_version("v1").max_bits == 1_024
    assert FujitsuDA3().time_limit_sec == 10 and FujitsuDA3().num_output_solution == 5
    assert JobStatus.DONE.finished and not JobStatus.RUNNING.finished


def test_solve_request_model_spellings() -> None:
    req = SolveRequest.model_validate({"binary_polynomial": {"terms": [
        {"coefficient": 2, "polynomials": [0, 1], "c": 3, "p": [1, 2]}, {"c": 1}]}, "fujitsuDA2": {}})
    assert req.binary_polynomial is not None
    assert req.binary_polynomial.terms[0].c == 3 and req.binary_polynomial.terms[0].p == [1, 2]
    assert req.solver == "fujitsuDA2" and req.parameters.number_runs == 16
    with pytest.raises(ValueError):
        RequestEnvelope.model_validate({"fujitsuDA": {}, "fujitsuDA2": {}})


def test_array_and_state_round_trip() -> None:
    for arr in (np.arange(5, dtype=np.int32), np.linspace(0, 1, 7), np.zeros((2, 3), np.uint8)):
        back = decode_array(msgpack.unpackb(msgpack.packb(encode_array(arr))))
        np.testing.assert_array_equal(back, arr)
        assert back.dtype == arr.dtype
    states = np.random.default_rng(0).integers(0, 2, size=(4, 13), dtype=np.uint8)
    np.testing.assert_array_equal(unpack_states(pack_states(states), 13), states)
    with pytest.raises(CompactFormatError):
        decode_array({"dtype": "<f8", "shape": [3], "data": b"\x00" * 8})
    with pytest.raises(CompactFormatError):
        decode_array({"dtype": "|O", "shape": [1], "data": b"x"})


def test_request_and_reply_round_trip() -> None:
    p = CompactProblem.from_arrays([0, 1], [1, 2], [1.5, -2.0], linear=[1.0, 0.0, -1.0], constant=3.0)
    pen = CompactProblem.from_arrays([0], [2], [1.0], num_variables=3)
    req = decode_request(encode_request(p, "fujitsuDA3", {"time_limit_sec": 2}, penalty=pen, api_version="v3"))
    assert req.solver == "fujitsuDA3" and req.parameters == {"time_limit_sec": 2} and req.api_version == "v3"
    np.testing.assert_array_equal(req.problem.values, [1.5, -2.0])
    assert req.penalty is not None and req.penalty.num_variables == 3 and req.problem.constant == 3.0
    reply = CompactReply(states=np.array([[1, 0, 1], [0, 0, 0]]), energies=np.array([-1.0, 0.0]),
                         frequencies=np.array([3, 1]), timing={"solve": 0.5}, progress=[(0.1, -1.0)],
                         job_id="j")
    back = decode_reply(encode_reply(reply))
    np.testing.assert_array_equal(back.states, reply.states)
    assert back.job_id == "j" and back.progress == [(0.1, -1.0)] and back.timing == {"solve": 0.5}
    for garbage in (b"", b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"format": "other"})):
        with pytest.raises(CompactFormatError):
            decode_request(garbage)


def test_compact_parser_validates() -> None:
    good = encode_request(CompactProblem.from_arrays([0], [1], [1.0]), "fujitsuDA2", {"number_runs": 16})
    assert parse_compact_request(good).parameters["number_iterations"] == 10_000
    with pytest.raises(InvalidRequestError, match="number_runs"):
        parse_compact_request(encode_request(CompactProblem.from_arrays([0], [1], [1.0]), "fujitsuDA2",
                                             {"number_runs": 3}))
    with pytest.raises(InvalidRequestError, match="unknown solver"):
        parse_compact_request(encode_request(CompactProblem.from_arrays([0], [1], [1.0]), "nope"))


def _dense_da_json(n: int) -> bytes:
    rng = np.random.default_rng(0)
    i, j = np.triu_indices(n)
    c = np.round(rng.normal(size=i.size), 6)
    terms = [{"coefficient": float(cc), "polynomials": [int(a), int(b)]} for a, b, cc in zip(i, j, c)]
    return orjson.dumps({"binary_polynomial": {"terms": terms}, "fujitsuDA2": {"number_runs": 16}})


def test_dense_1024_parses_under_a_second() -> None:
    raw = _dense_da_json(1024)
    assert len(raw) > 15_000_000
    parse_da_request(raw, "v2")  # warm caches
    start = time.perf_counter()
    req = parse_da_request(raw, "v2")
    elapsed = time.perf_counter() - start
    problem = build_problem(req.problem)
    assert problem.num_variables == 1024 and req.problem.values.size == 1024 * 1023 // 2
    # The goal is < 1 s on a quiet machine (benchmarks/bench_service.py reports it); the test
    # allows headroom for a loaded 2-core CI box while still catching a per-term-object parser.
    assert elapsed < 2.5, f"parse + validate took {elapsed:.2f} s"


def test_parser_energy_matches_terms() -> None:
    terms = [{"c": 2.0, "p": [0, 1]}, {"c": -1.0, "p": [1, 0]}, {"c": 0.5, "p": [2, 2]},
             {"c": -3.0, "p": [1]}, {"c": 4.0}, {"c": 1.0, "p": [0, 0, 1]}]
    req = parse_da_request(orjson.dumps({"binary_polynomial": {"terms": terms}, "fujitsuDA2": {}}), "v2")
    problem = build_problem(req.problem)
    x = np.array([1, 1, 1])
    # 2 - 1 + 0.5 - 3 + 4 + 1
    assert problem.energy(x) == pytest.approx(3.5)


def test_degree_reduction_is_exact_at_consistent_auxiliaries() -> None:
    from service.jobs.higher_order import reduce_degree, restore_states

    higher = [(-3.0, (0, 1, 2)), (2.0, (1, 2, 3, 4)), (1.5, (0, 2, 4))]
    n = 5
    rows, cols, values, linear, pairs, total = reduce_degree(higher, n)
    reduced = build_problem(CompactProblem(total, rows, cols, values, linear, 0.0))
    xs = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.uint8)
    full = np.zeros((len(xs), total), np.uint8)
    full[:, :n] = xs
    consistent = restore_states(full, pairs, n)
    original = np.array([sum(c * np.prod(x[list(ix)]) for c, ix in higher) for x in xs])
    np.testing.assert_allclose(reduced.energies(consistent), original)
    # any other auxiliary assignment costs at least as much (the penalty keeps them honest)
    rng = np.random.default_rng(0)
    for _ in range(50):
        other = consistent.copy()
        other[:, n:] = rng.integers(0, 2, size=(len(xs), total - n))
        assert np.all(reduced.energies(other) >= original - 1e-9)


def test_aux_pairs_survive_the_job_payload() -> None:
    """The auxiliaries are the service's own: stored with the job, never on the public wire."""
    p = CompactProblem.from_arrays([0, 3], [3, 2], [1.0, 2.0], linear=[0.0, 0.0, 0.0, 1.0])
    job = SolveJob(p, "fujitsuDA3", {"time_limit_sec": 1}, api_version="v3",
                   aux_pairs=np.array([[0, 1]]), num_output_variables=3)
    back = SolveJob.from_payload(job.to_payload())
    assert back.num_output_variables == 3 and back.aux_pairs is not None
    assert back.aux_pairs.tolist() == [[0, 1]] and back.api_version == "v3"
    np.testing.assert_array_equal(back.problem.values, p.values)
    # The payload is a compact request: a client decoding it sees no service-only field.
    assert not hasattr(decode_request(job.to_payload()), "aux_pairs")
    job.aux_pairs = np.array([[0, 3]])  # variable 3 cannot stand for a pair that includes itself
    with pytest.raises(CompactFormatError, match="aux_pairs"):
        SolveJob.from_payload(job.to_payload())


@pytest.mark.parametrize("terms", [
    [{"c": 1e308, "p": []}, {"c": 1e308, "p": []}, {"c": 1.0, "p": [0, 1]}],
    [{"c": 1e308, "p": [0]}, {"c": 1e308, "p": [0, 0]}, {"c": 1.0, "p": [0, 1]}],
])
@pytest.mark.parametrize("scan_terms", [True, False])
def test_finite_coefficients_that_add_up_beyond_float64_are_refused(terms: list, scan_terms: bool) -> None:
    raw = orjson.dumps({"binary_polynomial": {"terms": terms}, "fujitsuDA3": {"time_limit_sec": 1}})
    with pytest.raises(InvalidRequestError, match="binary_polynomial: .* beyond the float64 range"):
        parse_da_request(raw, "v3", scan_terms=scan_terms)
