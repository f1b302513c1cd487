"""One type for binary quadratic problems: E(x) = constant + h.x + sum_{i<j} J_ij x_i x_j.

The couplings are stored symmetric with a zero diagonal (J_ij at [i, j] and [j, i]) so that the
kernels can read a unit's local field from one contiguous row. Storage is a dense ndarray or a
scipy CSR matrix, chosen by density. Variables are binary (x in {0, 1}); the Ising (spin) form is
available through ``to_ising`` / ``from_ising``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast

import numpy as np
import scipy.sparse as sp

from client.wire.polynomial import split_terms

#: Problems with at most this fraction of non-zero couplings are stored sparse (CSR).
SPARSE_DENSITY_THRESHOLD = 0.15
#: Largest n whose dense matrix ``from_arrays`` builds directly (by bincount, no sparse detour).
DIRECT_DENSE_MAX_VARIABLES = 8192
_PLACEHOLDER_DENSE = np.zeros((1, 1), np.float64)
_PLACEHOLDER_INDEX = np.zeros(1, np.int32)
_PLACEHOLDER_DATA = np.zeros(1, np.float64)


def _check_finite(name: str, values: np.ndarray) -> None:
    if values.size and not np.all(np.isfinite(values)):
        bad = int(np.flatnonzero(~np.isfinite(values.ravel()))[0])
        raise ValueError(f"{name} contains a non-finite value (NaN or infinity) at position {bad}")


def _as_index_array(name: str, values: Any) -> np.ndarray:
    """Indices as int64, refusing negatives and non-integers with a message."""
    arr = np.asarray(values)
    if arr.size == 0:
        return arr.astype(np.int64).reshape(arr.shape)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must be integers")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative, got {int(arr.min())}")
    return arr


@dataclass(frozen=True, eq=False)
class BinaryQuadraticProblem:
    """A QUBO over ``num_variables`` binary variables.

    Attributes:
        linear: float64 array (n,), the coefficient of x_i.
        couplings: symmetric (n, n) with zero diagonal; a float ndarray (dense) or a scipy CSR
            matrix (sparse). ``couplings[i, j]`` is J_ij, the coefficient of x_i x_j for i != j.
        constant: the energy offset.

    Build one with the ``from_*`` constructors; they validate their input and raise ``ValueError``
    with a message on NaN/inf, bad indices or an empty problem.
    """

    linear: np.ndarray
    couplings: np.ndarray | sp.csr_array
    constant: float = 0.0

    def __post_init__(self) -> None:
        n = self.linear.shape[0]
        if n == 0:
            raise ValueError("the problem has no variables")
        if self.couplings.shape != (n, n):
            raise ValueError(f"couplings must be ({n}, {n}), got {self.couplings.shape}")
        _check_finite("linear coefficients", self.linear)
        _check_finite("couplings", np.asarray(self._coupling_values()))
        if not np.isfinite(self.constant):
            raise ValueError("the constant term is not finite")

    # ------------------------------------------------------------------ properties
    @property
    def num_variables(self) -> int:
        return int(self.linear.shape[0])

    @property
    def is_sparse(self) -> bool:
        return sp.issparse(self.couplings)

    @property
    def num_couplings(self) -> int:
        """Number of distinct non-zero pairs i < j."""
        return int(np.count_nonzero(self._coupling_values()) // 2)

    def _coupling_values(self) -> np.ndarray:
        """The stored coupling values: the CSR data, or the whole dense matrix."""
        if isinstance(self.couplings, np.ndarray):
            return self.couplings
        return np.asarray(self.couplings.data)

    @property
    def density(self) -> float:
        n = self.num_variables
        return 0.0 if n < 2 else 2.0 * self.num_couplings / (n * (n - 1))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(
        cls,
        rows: Any,
        cols: Any,
        values: Any,
        linear: Any = None,
        constant: float = 0.0,
        num_variables: int | None = None,
        storage: str = "auto",
        dtype: Any = np.float64,
    ) -> BinaryQuadraticProblem:
        """Build from coupling triplets (i, j, J): duplicates add up, (i, i) counts as linear.

        Args:
            rows, cols, values: equal-length arrays of pair indices and coefficients.
            linear: optional dense array of linear coefficients.
            constant: energy offset.
            num_variables: the declared size; indices at or beyond it are an error. When
                omitted, the size is one more than the largest index.
            storage: "auto" (by density), "dense" or "sparse".
            dtype: float32 or float64 for the coupling storage the kernels read.
        """
        i = _as_index_array("coupling row indices", rows).ravel()
        j = _as_index_array("coupling column indices", cols).ravel()
        c = np.asarray(values, dtype=np.float64).ravel()
        if not (i.shape == j.shape == c.shape):
            raise ValueError(f"rows, cols and values differ in length: {i.size}, {j.size}, {c.size}")
        _check_finite("coupling coefficients", c)
        h_in = None if linear is None else np.asarray(linear, dtype=np.float64).ravel()
        if h_in is not None:
            _check_finite("linear coefficients", h_in)
        largest = max(int(i.max(initial=-1)), int(j.max(initial=-1)))
        if num_variables is None:
            num_variables = max(largest + 1, 0 if h_in is None else h_in.size)
        n = int(num_variables)
        if largest >= n:
            raise ValueError(f"index {largest} is beyond the declared size of {n} variables")
        if h_in is not None and h_in.size > n:
            raise ValueError(f"{h_in.size} linear coefficients for {n} variables")
        h = np.zeros(n, dtype=np.float64)
        if h_in is not None:
            h[: h_in.size] += h_in
        diag = i == j
        if np.any(diag):
            np.add.at(h, i[diag], c[diag])
            i, j, c = i[~diag], j[~diag], c[~diag]
        if n == 0:
            raise ValueError("the problem has no variables")
        # Symmetrise: each pair appears at (i, j) and (j, i) with the full coefficient J_ij.
        r = np.concatenate([i, j])
        q = np.concatenate([j, i])
        v = np.concatenate([c, c])
        mat: Any
        nnz_hint = None
        if storage != "sparse" and n <= DIRECT_DENSE_MAX_VARIABLES and (
                storage == "dense" or r.size > SPARSE_DENSITY_THRESHOLD * n * (n - 1)):
            # Dense enough to be stored dense (unless duplicates shrink it): one bincount beats
            # scipy's COO -> CSR -> dense by about 3x.
            mat = np.bincount(r * n + q, weights=v, minlength=n * n).reshape(n, n)
            nnz_hint = r.size  # an upper bound, good enough to choose the storage
        else:
            mat = sp.coo_array((v, (r, q)), shape=(n, n)).tocsr()
            mat.sum_duplicates()
            mat.eliminate_zeros()
        return cls.from_parts(h, mat, float(constant), storage, dtype, nnz=nnz_hint)

    @classmethod
    def from_trusted_csr(cls, linear: np.ndarray, data: np.ndarray, indices: np.ndarray,
                         indptr: np.ndarray, constant: float = 0.0) -> BinaryQuadraticProblem:
        """A sparse problem from CSR arrays the caller vouches for: symmetric, zero diagonal,
        sorted indices (int32), finite float64 values and linear terms. Nothing is checked or
        copied: for a coupling pattern the service validated once, whose values were checked
        finite at parse time (the checks and copies cost more than the trainer's solves)."""
        n = linear.shape[0]
        problem = cls._unchecked(linear, sp.csr_array((data, indices, indptr), shape=(n, n), copy=False),
                                 constant)
        problem.__dict__["kernel_arrays"] = (False, _PLACEHOLDER_DENSE, indptr, indices, data)
        return problem

    @classmethod
    def _unchecked(cls, linear: np.ndarray, couplings: Any, constant: float) -> BinaryQuadraticProblem:
        """The dataclass without ``__post_init__``'s checks, for parts derived from a checked problem."""
        problem = cls.__new__(cls)
        object.__setattr__(problem, "linear", linear)
        object.__setattr__(problem, "couplings", couplings)
        object.__setattr__(problem, "constant", float(constant))
        return problem

    @classmethod
    def from_parts(
        cls, h: np.ndarray, mat: Any, constant: float = 0.0, storage: str = "auto",
        dtype: Any = np.float64, nnz: int | None = None,
    ) -> BinaryQuadraticProblem:
        """From linear terms and an already symmetric, zero-diagonal coupling matrix (a dense
        ndarray stays dense without a sparse detour, which keeps big dense builds lean).
        ``nnz``: the caller's count (or upper bound) of non-zeros, saving a pass over the matrix."""
        n = h.shape[0]
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        if storage not in ("auto", "dense", "sparse"):
            raise ValueError(f"storage must be 'auto', 'dense' or 'sparse', got {storage!r}")
        dense_input = isinstance(mat, np.ndarray)
        if nnz is None:
            nnz = int(np.count_nonzero(mat)) if dense_input else sp.csr_array(mat).nnz
        density = nnz / max(n * (n - 1), 1)
        couplings: np.ndarray | sp.csr_array
        if storage == "sparse" or (storage == "auto" and density <= SPARSE_DENSITY_THRESHOLD):
            csr = sp.csr_array(mat, dtype=dtype)
            csr.sort_indices()
            couplings = csr
        elif dense_input:
            couplings = np.ascontiguousarray(mat, dtype=dtype)
        else:
            couplings = np.ascontiguousarray(sp.csr_array(mat).toarray(), dtype=dtype)
        return cls(linear=h, couplings=couplings, constant=constant)

    @classmethod
    def from_qubo_matrix(
        cls, matrix: Any, constant: float = 0.0, storage: str = "auto", dtype: Any = np.float64
    ) -> BinaryQuadraticProblem:
        """From a square matrix Q with energy x^T Q x (+ constant); Q need not be symmetric.

        Accepts numpy arrays, nested lists and scipy sparse matrices.
        """
        if sp.issparse(matrix):
            coo = sp.coo_array(cast(Any, matrix))  # issparse narrows to a type coo_array refuses
            if coo.shape[0] != coo.shape[1]:
                raise ValueError(f"the QUBO matrix must be square, got {coo.shape}")
            return cls.from_arrays(coo.row, coo.col, coo.data, constant=constant,
                                   num_variables=coo.shape[0], storage=storage, dtype=dtype)
        q = np.asarray(matrix, dtype=np.float64)
        if q.ndim != 2 or q.shape[0] != q.shape[1]:
            raise ValueError(f"the QUBO matrix must be square, got shape {q.shape}")
        if q.shape[0] == 0:
            raise ValueError("the problem has no variables")
        _check_finite("QUBO matrix", q)
        h = np.diag(q).copy()
        sym = q + q.T
        np.fill_diagonal(sym, 0.0)
        return cls.from_parts(h, sym, float(constant), storage, dtype)

    @classmethod
    def from_dict(
        cls,
        qubo: Mapping[tuple[int, int], float],
        constant: float = 0.0,
        num_variables: int | None = None,
        storage: str = "auto",
    ) -> BinaryQuadraticProblem:
        """From ``{(i, j): c}``; (i, i) entries are linear, (i, j) and (j, i) add up."""
        if not qubo:
            if num_variables:
                return cls.from_arrays([], [], [], constant=constant, num_variables=num_variables)
            raise ValueError("the problem has no variables")
        try:
            keys = np.array(list(qubo.keys()))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"QUBO dict keys must be (i, j) integer pairs: {exc}") from exc
        if keys.ndim != 2 or keys.shape[1] != 2:
            raise ValueError("QUBO dict keys must be (i, j) integer pairs")
        values = np.fromiter(qubo.values(), dtype=np.float64, count=len(qubo))
        return cls.from_arrays(keys[:, 0], keys[:, 1], values, constant=constant,
                               num_variables=num_variables, storage=storage)

    @classmethod
    def from_edges(
        cls,
        edges: Any,
        weights: Any = None,
        linear: Any = None,
        constant: float = 0.0,
        num_variables: int | None = None,
        storage: str = "auto",
    ) -> BinaryQuadraticProblem:
        """From an (m, 2) edge list (or (m, 3) with weights as the third column)."""
        e = np.asarray(edges)
        if e.ndim != 2 or e.shape[1] not in (2, 3):
            raise ValueError(f"edges must have shape (m, 2) or (m, 3), got {e.shape}")
        if e.shape[1] == 3:
            if weights is not None:
                raise ValueError("give weights either as a third column or as `weights`, not both")
            weights = e[:, 2]
            e = e[:, :2]
        w = np.ones(e.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
        return cls.from_arrays(e[:, 0], e[:, 1], w, linear=linear, constant=constant,
                               num_variables=num_variables, storage=storage)

    @classmethod
    def from_polynomial(
        cls,
        coefficients: Any,
        first: Any,
        second: Any,
        num_variables: int | None = None,
        storage: str = "auto",
    ) -> BinaryQuadraticProblem:
        """From DA ``binary_polynomial`` terms given as three parallel arrays.

        Term k is ``coefficients[k] * x[first[k]] * x[second[k]]``; -1 marks an absent index, so
        (-1, -1) is a constant, (i, -1) or (i, i) is linear. This is the vectorised form the
        service's JSON parser produces: no per-term Python objects.
        """
        c = np.asarray(coefficients, dtype=np.float64).ravel()
        # Absent indices are -1: shift by one so the shared index check applies.
        a = _as_index_array("term indices", np.asarray(first).ravel() + 1) - 1
        b = _as_index_array("term indices", np.asarray(second).ravel() + 1) - 1
        if not (c.shape == a.shape == b.shape):
            raise ValueError("coefficients and index arrays differ in length")
        _check_finite("term coefficients", c)
        largest = max(int(a.max(initial=-1)), int(b.max(initial=-1)))
        n = largest + 1 if num_variables is None else int(num_variables)
        if largest >= n:
            raise ValueError(f"index {largest} is beyond the declared size of {n} variables")
        if n <= 0:
            raise ValueError("the problem has no variables")
        h, rows, cols, values, constant = split_terms(c, a, b, n)
        return cls.from_arrays(rows, cols, values, linear=h, constant=constant, num_variables=n,
                               storage=storage)

    @classmethod
    def from_ising(
        cls,
        h: Any,
        J: Any,
        offset: float = 0.0,
        storage: str = "auto",
    ) -> BinaryQuadraticProblem:
        """From the spin form E(s) = offset + h.s + sum_{i<j} J_ij s_i s_j, s in {-1, +1}.

        ``J`` is a square matrix (entries (i, j) and (j, i) add up) or a ``{(i, j): J}`` dict.
        With s = 2x - 1 the QUBO has couplings 4 J, linear 2 h - 2 sum_j J_ij and a constant.
        """
        hs = np.asarray(h, dtype=np.float64).ravel()
        _check_finite("h", hs)
        if isinstance(J, Mapping):
            keys = np.array(list(J.keys()), dtype=np.int64).reshape(-1, 2)
            vals = np.fromiter(J.values(), dtype=np.float64, count=len(J))
            spin = cls.from_arrays(keys[:, 0], keys[:, 1], vals, num_variables=hs.size,
                                   storage="sparse")
        else:
            spin = cls.from_qubo_matrix(J, storage="sparse" if sp.issparse(J) else "auto")
        if spin.num_variables != hs.size:
            raise ValueError(f"h has {hs.size} entries but J is over {spin.num_variables} spins")
        # The constructors put J_ii into "linear"; for spins s_i^2 = 1, so it is a constant.
        offset = float(offset) + float(spin.linear.sum())
        jm = spin.couplings
        row_sum = np.asarray(jm.sum(axis=1)).ravel()
        linear = 2.0 * hs - 2.0 * row_sum
        const = offset - hs.sum() + 0.5 * row_sum.sum()
        return cls.from_parts(linear, jm * 4.0, const, storage, np.float64)

    # ------------------------------------------------------------------ conversions
    def to_ising(self) -> tuple[np.ndarray, sp.csr_array, float]:
        """The spin form (h, J, offset): J symmetric CSR with zero diagonal, x = (s + 1) / 2."""
        jm = self._csr64()
        row_sum = np.asarray(jm.sum(axis=1)).ravel()
        h = 0.5 * self.linear + 0.25 * row_sum
        offset = self.constant + 0.5 * self.linear.sum() + 0.125 * row_sum.sum()
        return h, sp.csr_array(jm.multiply(0.25)), float(offset)

    def _csr64(self) -> sp.csr_array:
        """The couplings as a float64 CSR array (a copy only when they are not one already)."""
        return sp.csr_array(self.couplings).astype(np.float64, copy=False)

    def to_upper_matrix(self) -> np.ndarray:
        """Dense upper-triangular Q with x^T Q x + constant = E(x) (the DA ``qubo_matrix`` form)."""
        dense = sp.csr_array(self.couplings).toarray()
        q = np.triu(dense.astype(np.float64), k=1)
        q[np.diag_indices_from(q)] = self.linear
        return q

    def to_triplets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Couplings as (i, j, J) with i < j."""
        coo = sp.coo_array(sp.triu(sp.csr_array(self.couplings), k=1))
        return coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.float64)

    def with_storage(self, storage: str, dtype: Any = None) -> BinaryQuadraticProblem:
        """The same problem stored dense or sparse, in float32 or float64."""
        dtype = self.couplings.dtype if dtype is None else dtype
        return self.from_parts(self.linear, sp.csr_array(self.couplings), self.constant,
                                  storage, dtype)

    def fix_variables(self, fixed: Mapping[int, int]) -> tuple[BinaryQuadraticProblem, np.ndarray]:
        """Substitute fixed values; returns the reduced problem and the indices kept (in order).

        Raises ValueError when every variable is fixed (nothing left to anneal).
        """
        n = self.num_variables
        idx = np.fromiter(fixed.keys(), dtype=np.int64, count=len(fixed))
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"fixed variable index out of range 0..{n - 1}")
        val = np.zeros(n)
        is_fixed = np.zeros(n, dtype=bool)
        is_fixed[idx] = True
        val[idx] = np.fromiter((1.0 if v else 0.0 for v in fixed.values()), dtype=np.float64,
                               count=len(fixed))
        free = np.flatnonzero(~is_fixed)
        if free.size == 0:
            raise ValueError("every variable is fixed; nothing is left to solve")
        jm = self._csr64()
        pulled = np.asarray(jm @ val, dtype=np.float64)
        const = self.constant + float(self.linear @ val) + 0.5 * float(val @ pulled)
        lin = self.linear[free] + pulled[free]
        sub = sp.csr_array(jm[free][:, free])
        reduced = self.from_parts(lin, sub, const, "auto", self.couplings.dtype)
        return reduced, free

    # ------------------------------------------------------------------ energies
    def energies(self, states: Any) -> np.ndarray:
        """Exact float64 energies of one state (n,) or many states (k, n) of 0/1 values.

        Computed by the engine's exact kernel (rows of the set bits added up in float64), with no
        float64 copy of a dense matrix and no BLAS call.
        """
        from . import kernels

        x = np.asarray(states)
        single = x.ndim == 1
        x2 = np.atleast_2d(x)
        if x2.ndim != 2 or x2.shape[1] != self.num_variables:
            raise ValueError(f"states have {x2.shape[-1]} variables, the problem {self.num_variables}")
        if x2.dtype != np.uint8:
            if x2.size and not np.all((x2 == 0) | (x2 == 1)):
                raise ValueError("states must hold only 0/1 values")
            x2 = x2.astype(np.uint8)
        x2 = np.ascontiguousarray(x2)
        fields = np.empty(x2.shape, dtype=np.float64)
        e = np.empty(x2.shape[0], dtype=np.float64)
        kernels.exact_fields_serial(*self.kernel_arrays, self.linear, float(self.constant), x2, fields, e)
        return e[0] if single else e

    @cached_property
    def kernel_arrays(self) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(dense, couplings, indptr, indices, data)`` as the exact kernels read them: float64
        dense rows, or CSR with int32 indices and float64 data; the unused form is a one-element
        placeholder, so every problem shares one compiled signature."""
        if self.is_sparse:
            csr = sp.csr_array(self.couplings)
            # copy=False: the common float64 / int32 CSR is read in place (a copy cost ~0.2 ms
            # per solve of the trainer's problems).
            return (False, _PLACEHOLDER_DENSE, csr.indptr.astype(np.int32, copy=False),
                    csr.indices.astype(np.int32, copy=False), csr.data.astype(np.float64, copy=False))
        return (True, np.ascontiguousarray(self.couplings, dtype=np.float64), _PLACEHOLDER_INDEX,
                _PLACEHOLDER_INDEX, _PLACEHOLDER_DATA)

    def energy(self, state: Any) -> float:
        return float(self.energies(np.asarray(state).ravel()))

    def local_fields(self, state: Any) -> np.ndarray:
        """h_i + sum_j J_ij x_j: flipping x_i changes the energy by (1 - 2 x_i) * field_i."""
        x = np.asarray(state, dtype=np.float64)
        fields: np.ndarray = self.linear + (self.couplings @ x.T).T
        return fields
