"""The problem model: constructors, conversions, energies, validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from service.engine import BinaryQuadraticProblem


def naive_energy(q: np.ndarray, x: np.ndarray, constant: float = 0.0) -> float:
    return float(x @ q @ x) + constant


def all_states(n: int) -> np.ndarray:
    return np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.uint8)


@pytest.mark.parametrize("storage", ["dense", "sparse"])
def test_qubo_matrix_energies_match_xtqx(storage: str) -> None:
    rng = np.random.default_rng(1)
    q = rng.normal(size=(9, 9))
    p = BinaryQuadraticProblem.from_qubo_matrix(q, constant=2.5, storage=storage)
    assert p.is_sparse == (storage == "sparse")
    x = all_states(9)
    expected = np.array([naive_energy(q, s.astype(float), 2.5) for s in x])
    np.testing.assert_allclose(p.energies(x), expected, rtol=1e-12, atol=1e-9)
    assert p.energy(x[5]) == pytest.approx(expected[5])


@pytest.mark.parametrize("storage", ["auto", "dense", "sparse"])
def test_triplets_with_duplicates_build_the_same_problem_in_every_storage(storage: str) -> None:
    # Duplicates and (j, i) twins add up; dense-enough triplets take the direct dense build.
    rng = np.random.default_rng(4)
    n = 10
    i, j = rng.integers(0, n, 120), rng.integers(0, n, 120)
    c = rng.normal(size=120)
    q = np.zeros((n, n))
    np.add.at(q, (i, j), c)
    p = BinaryQuadraticProblem.from_arrays(i, j, c, num_variables=n, storage=storage)
    assert p.is_sparse == (storage == "sparse")
    x = all_states(n)
    expected = np.einsum("ki,ij,kj->k", x.astype(float), q, x.astype(float))
    np.testing.assert_allclose(p.energies(x), expected, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(p.energies(x.astype(bool)), expected, rtol=1e-12, atol=1e-9)
    with pytest.raises(ValueError, match="0/1"):
        p.energies(np.full(n, 2))


def test_storage_chosen_by_density() -> None:
    rng = np.random.default_rng(2)
    assert not BinaryQuadraticProblem.from_qubo_matrix(rng.normal(size=(50, 50))).is_sparse
    sparse_q = sp.random(200, 200, density=0.01, random_state=3)
    assert BinaryQuadraticProblem.from_qubo_matrix(sparse_q).is_sparse


def test_dict_edges_polynomial_and_arrays_agree() -> None:
    terms = {(0, 0): -1.0, (0, 1): 2.0, (1, 0): 0.5, (1, 2): -3.0, (2, 2): 1.5}
    a = BinaryQuadraticProblem.from_dict(terms, constant=4.0)
    b = BinaryQuadraticProblem.from_polynomial(
        [-1.0, 2.0, 0.5, -3.0, 1.5, 4.0], [0, 0, 1, 1, 2, -1], [-1, 1, 0, 2, 2, -1])
    c = BinaryQuadraticProblem.from_edges([[0, 1], [1, 2]], weights=[2.5, -3.0],
                                          linear=[-1.0, 0.0, 1.5], constant=4.0)
    x = all_states(3)
    for other in (b, c):
        np.testing.assert_allclose(a.energies(x), other.energies(x))
    # x0 = 1, x1 = 1, x2 = 0: -1 + 2 + 0.5 + 4
    assert a.energy([1, 1, 0]) == pytest.approx(5.5)


def test_ising_round_trip_preserves_energies() -> None:
    rng = np.random.default_rng(4)
    n = 8
    q = rng.normal(size=(n, n))
    p = BinaryQuadraticProblem.from_qubo_matrix(q, constant=-1.25)
    h, j, offset = p.to_ising()
    x = all_states(n)
    s = 2.0 * x - 1.0
    spin_energy = offset + s @ h + 0.5 * np.einsum("ki,ij,kj->k", s, j.toarray(), s)
    np.testing.assert_allclose(spin_energy, p.energies(x), atol=1e-9)
    # A matrix's (i, j) and (j, i) entries add up, so pass the upper triangle of the symmetric J.
    back = BinaryQuadraticProblem.from_ising(h, np.triu(j.toarray(), 1), offset)
    np.testing.assert_allclose(back.energies(x), p.energies(x), atol=1e-9)
    dict_form = {(a, b): j.toarray()[a, b] for a in range(n) for b in range(a + 1, n)}
    np.testing.assert_allclose(BinaryQuadraticProblem.from_ising(h, dict_form, offset).energies(x),
                               p.energies(x), atol=1e-9)


def test_upper_matrix_and_triplets_reproduce_the_problem() -> None:
    rng = np.random.default_rng(5)
    p = BinaryQuadraticProblem.from_qubo_matrix(rng.normal(size=(7, 7)), constant=0.75)
    x = all_states(7)
    np.testing.assert_allclose(
        BinaryQuadraticProblem.from_qubo_matrix(p.to_upper_matrix(), constant=0.75).energies(x),
        p.energies(x))
    i, j, v = p.to_triplets()
    assert np.all(i < j)
    rebuilt = BinaryQuadraticProblem.from_arrays(i, j, v, linear=p.linear, constant=p.constant)
    np.testing.assert_allclose(rebuilt.energies(x), p.energies(x))


def test_fix_variables_substitutes_values() -> None:
    rng = np.random.default_rng(6)
    p = BinaryQuadraticProblem.from_qubo_matrix(rng.normal(size=(6, 6)), constant=1.0)
    reduced, free = p.fix_variables({1: True, 4: False})
    assert list(free) == [0, 2, 3, 5]
    for sub in all_states(4):
        full = np.zeros(6, dtype=np.uint8)
        full[free] = sub
        full[1] = 1
        assert reduced.energy(sub) == pytest.approx(p.energy(full))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: BinaryQuadraticProblem.from_dict({(0, 1): float("nan")}), "non-finite"),
        (lambda: BinaryQuadraticProblem.from_dict({(0, 1): float("inf")}), "non-finite"),
        (lambda: BinaryQuadraticProblem.from_qubo_matrix([[1.0, np.nan], [0, 0]]), "non-finite"),
        (lambda: BinaryQuadraticProblem.from_arrays([-1], [2], [1.0]), "non-negative"),
        (lambda: BinaryQuadraticProblem.from_arrays([0.5], [2], [1.0]), "integers"),
        (lambda: BinaryQuadraticProblem.from_polynomial([1.0], [0], [7], num_variables=4), "beyond"),
        (lambda: BinaryQuadraticProblem.from_polynomial([1.0], [-5], [1]), "non-negative"),
        (lambda: BinaryQuadraticProblem.from_arrays([0], [5], [1.0], num_variables=3), "beyond"),
        (lambda: BinaryQuadraticProblem.from_dict({}), "no variables"),
        (lambda: BinaryQuadraticProblem.from_qubo_matrix(np.zeros((0, 0))), "no variables"),
        (lambda: BinaryQuadraticProblem.from_polynomial([3.0], [-1], [-1]), "no variables"),
        (lambda: BinaryQuadraticProblem.from_qubo_matrix(np.ones((2, 3))), "square"),
        (lambda: BinaryQuadraticProblem.from_dict({(0, 1): 1.0}, constant=float("nan")), "constant"),
    ],
)
def test_bad_input_raises_value_error_with_message(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_one_variable_and_all_zero_problems_are_valid() -> None:
    one = BinaryQuadraticProblem.from_dict({(0, 0): -2.0})
    assert one.num_variables == 1 and one.energy([1]) == -2.0
    zeros = BinaryQuadraticProblem.from_qubo_matrix(np.zeros((5, 5)), constant=3.0)
    assert np.all(zeros.energies(all_states(5)) == 3.0)
    assert zeros.num_couplings == 0 and zeros.density == 0.0
