"""Every accepted problem form encodes to the same energies as the form itself."""

from __future__ import annotations

import itertools

import dimod
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import scipy.sparse as sp

from client import ProblemError, encode_problem


def all_states(n: int) -> np.ndarray:
    return np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.uint8)


def qubo_energy(q: np.ndarray, x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return np.einsum("ki,ij,kj->k", x, q, x)


@pytest.fixture
def matrix() -> np.ndarray:
    rng = np.random.default_rng(3)
    q = rng.integers(-5, 6, size=(6, 6)).astype(np.float64)
    q[rng.random((6, 6)) < 0.4] = 0.0
    return q  # not symmetric on purpose: both triangles count


def test_dense_matrix_energies(matrix: np.ndarray) -> None:
    enc = encode_problem(matrix)
    x = all_states(6)
    assert enc.num_variables == 6
    np.testing.assert_allclose(enc.energies(x), qubo_energy(matrix, x))
    assert np.all(enc.rows < enc.cols)


def test_sparse_matrix_matches_dense(matrix: np.ndarray) -> None:
    enc = encode_problem(sp.csr_matrix(matrix))
    x = all_states(6)
    np.testing.assert_allclose(enc.energies(x), qubo_energy(matrix, x))
    # (i, j) and (j, i) are merged into one term per pair
    assert len(set(zip(enc.rows.tolist(), enc.cols.tolist()))) == enc.values.size


def test_dict_with_linear_and_constant_keys() -> None:
    enc = encode_problem({(0, 1): 2.0, (1, 0): 1.0, (2, 2): -1.0, (3,): 0.5, 1: -4.0, (): 7.0})
    x = all_states(4)
    expect = 7 + 3 * x[:, 0] * x[:, 1] - x[:, 2] + 0.5 * x[:, 3] - 4 * x[:, 1]
    np.testing.assert_allclose(enc.energies(x), expect)


def test_da_terms_both_spellings_and_constant() -> None:
    terms = [{"coefficient": 3.0, "polynomials": [0, 2]}, {"c": -2, "p": [1, 1]},
             {"coefficient": 5.0}, {"c": 1.5, "p": [], "coefficient": 99}]
    enc = encode_problem(terms)
    x = all_states(3)
    np.testing.assert_allclose(enc.energies(x), 6.5 + 3 * x[:, 0] * x[:, 2] - 2 * x[:, 1])
    back = encode_problem(enc.to_da_terms())
    np.testing.assert_allclose(back.energies(x), enc.energies(x))


def test_higher_order_terms_kept_verbatim() -> None:
    enc = encode_problem([{"c": 1.0, "p": [0, 1, 2]}, {"c": -1.0, "p": [0]}])
    assert enc.higher_order == ({"coefficient": 1.0, "polynomials": [0, 1, 2]},)
    assert enc.num_variables == 3


def test_spin_bqm_converted_with_labels() -> None:
    bqm = dimod.BinaryQuadraticModel({"a": 1.0, "b": -0.5}, {("a", "b"): -1.0, ("b", "c"): 2.0}, 0.25,
                                     dimod.SPIN)
    enc = encode_problem(bqm)
    assert enc.labels == ("a", "b", "c")
    x = all_states(3)
    spins = 2 * x.astype(int) - 1
    expect = [bqm.energy(dict(zip("abc", s))) for s in spins]
    np.testing.assert_allclose(enc.energies(x), expect)


def test_engine_problem_duck_typed(matrix: np.ndarray) -> None:
    from service.engine import BinaryQuadraticProblem
    problem = BinaryQuadraticProblem.from_qubo_matrix(matrix, constant=2.0)
    enc = encode_problem(problem)
    x = all_states(6)
    np.testing.assert_allclose(enc.energies(x), problem.energies(x))


def test_num_variables_widens_and_checks(matrix: np.ndarray) -> None:
    assert encode_problem({(0, 1): 1.0}, num_variables=5).num_variables == 5
    with pytest.raises(ProblemError, match="outside num_variables"):
        encode_problem({(0, 7): 1.0}, num_variables=5)


@pytest.mark.parametrize("bad, message", [
    (np.ones((2, 3)), "square"),
    (np.array([[np.nan]]), "NaN"),
    ({(0, -1): 1.0}, "negative"),
    ({(0, 1.5): 1.0}, "not an integer"),
    ({(0, 1): float("inf")}, "not finite"),
    ({(0, 1): "x"}, "not a number"),
    ([{"c": 1.0, "p": [-2]}], "negative"),
    ([{"p": [0]}], "missing 'coefficient'"),
    ({}, "no variables"),
    ("Q.npy", "cannot build a QUBO"),
])
def test_bad_problems_raise_problem_error(bad: object, message: str) -> None:
    with pytest.raises(ProblemError, match=message):
        encode_problem(bad)


def test_fast_json_rendering_matches_the_dicts(matrix: np.ndarray) -> None:
    import json
    enc = encode_problem([{"c": 0.1, "p": [0, 1]}, {"c": -1e-300, "p": [2]}, {"c": 3.0}, {"c": 1e21, "p": [0, 1, 2]}])
    assert json.loads(enc.da_terms_json()) == enc.to_da_terms()
    dense = encode_problem(matrix)
    assert json.loads(dense.da_terms_json()) == dense.to_da_terms()


@given(st.dictionaries(st.tuples(st.integers(0, 5), st.integers(0, 5)),
                       st.floats(-100, 100, allow_nan=False, allow_infinity=False), min_size=1),
       st.floats(-10, 10, allow_nan=False))
@settings(max_examples=60, deadline=None)
def test_dict_energies_property(terms: dict, constant: float) -> None:
    enc = encode_problem(terms, constant=constant, num_variables=6)
    x = all_states(6)
    expect = constant + sum(c * x[:, i] * x[:, j] for (i, j), c in terms.items())
    np.testing.assert_allclose(enc.energies(x), expect, atol=1e-9)
    via_terms = encode_problem(enc.to_da_terms(), num_variables=6)
    np.testing.assert_allclose(via_terms.energies(x), expect, atol=1e-9)
