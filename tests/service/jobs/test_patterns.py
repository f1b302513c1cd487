"""Coupling patterns: the precomputed CSR layout builds the same problem as the general path."""

from __future__ import annotations

import numpy as np
import pytest

from client.wire.compact import CompactProblem, encode_request, pattern_key
from service.engine import BinaryQuadraticProblem
from service.jobs.parsing import InvalidRequestError, parse_compact_request, register_pattern
from service.jobs.patterns import RegisteredPattern, PatternCache, UnknownPatternError


def random_triplets(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, m)
    cols = rng.integers(0, n, m)  # some i == j, some repeated pairs, both orders
    return rows, cols, rng.normal(size=m)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pattern_problem_equals_the_general_build(seed: int) -> None:
    n = 30
    rows, cols, values = random_triplets(n, 200, seed)
    linear = np.random.default_rng(seed + 10).normal(size=n)
    pattern = RegisteredPattern.build(pattern_key(n, rows, cols), n, rows, cols)
    assert pattern.repeated and pattern.diagonal.any()
    built = pattern.problem(values, linear, 1.5)
    general = BinaryQuadraticProblem.from_arrays(rows, cols, values, linear=linear, constant=1.5,
                                                 num_variables=n)
    states = np.random.default_rng(seed + 20).integers(0, 2, size=(50, n)).astype(np.uint8)
    np.testing.assert_allclose(built.energies(states), general.energies(states))
    assert built.is_sparse


def test_pattern_without_repeats_scatters_directly() -> None:
    n = 12
    rows, cols = np.triu_indices(n, 1)
    values = np.arange(rows.size, dtype=np.float64) - 20
    pattern = RegisteredPattern.build(pattern_key(n, rows, cols), n, rows, cols)
    assert not pattern.repeated
    dense = pattern.problem(values, None, 0.0).couplings.toarray()
    expected = np.zeros((n, n))
    expected[rows, cols] = expected[cols, rows] = values
    np.testing.assert_array_equal(dense, expected)


def test_cache_checks_keys_and_evicts_the_least_recently_used() -> None:
    n = 50
    patterns = [np.triu_indices(n, k) for k in (1, 2, 3)]
    sizes = [RegisteredPattern.build("x", n, r, c).nbytes for r, c in patterns]
    cache = PatternCache(max_bytes=sizes[0] + sizes[1] + sizes[2] // 2)
    keys = [pattern_key(n, r, c) for r, c in patterns]
    with pytest.raises(ValueError, match="does not match"):
        cache.register(keys[1], n, *patterns[0])
    cache.register(keys[0], n, *patterns[0])
    cache.register(keys[1], n, *patterns[1])
    cache.get(keys[0])  # now the most recently used
    cache.register(keys[2], n, *patterns[2])  # over the budget: the oldest (keys[1]) goes
    assert cache.get(keys[0]).key == keys[0] and cache.get(keys[2]).key == keys[2]
    with pytest.raises(UnknownPatternError, match="resend"):
        cache.get(keys[1])


def test_parser_resolves_registers_and_refuses() -> None:
    n = 20
    rows, cols = np.triu_indices(n, 1)
    key = pattern_key(n, rows, cols)
    values = np.random.default_rng(0).normal(size=rows.size)
    full = CompactProblem(n, rows, cols, values, np.zeros(n), 0.0, key)
    cache = PatternCache(1 << 24)
    with pytest.raises(UnknownPatternError):
        parse_compact_request(encode_request(full, "fujitsuDA2", with_pattern=False), patterns=cache)
    registered = parse_compact_request(encode_request(full, "fujitsuDA2"), patterns=cache)
    assert registered.pattern is None  # left for register_pattern (off the event loop)
    register_pattern(registered, cache)
    assert registered.pattern is cache.get(key)
    lean = parse_compact_request(encode_request(full, "fujitsuDA2", with_pattern=False), patterns=cache)
    np.testing.assert_array_equal(lean.problem.rows, rows)
    assert lean.pattern is registered.pattern
    short = CompactProblem(n, rows, cols, values[:-1], None, 0.0, key)
    with pytest.raises(InvalidRequestError, match="values"):
        parse_compact_request(encode_request(short, "fujitsuDA2", with_pattern=False), patterns=cache)
    with pytest.raises(InvalidRequestError, match="keeps no coupling patterns"):
        parse_compact_request(encode_request(full, "fujitsuDA2", with_pattern=False))
    liar = CompactProblem(n, rows, cols, values, None, 0.0, pattern_key(n, cols, rows))
    with pytest.raises(InvalidRequestError, match="does not match"):
        register_pattern(parse_compact_request(encode_request(liar, "fujitsuDA2"), patterns=cache), cache)
