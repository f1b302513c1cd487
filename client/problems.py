"""Turn the problem forms users hold into one array form, and that into DA terms.

Accepted (``encode_problem``):

- a square numpy array ``Q`` (energy ``x^T Q x``; both triangles count, the diagonal is linear);
- a scipy sparse matrix, the same meaning (only recognised when scipy is already imported, so the
  client never imports scipy itself);
- a ``{(i, j): c}`` dict (``(i, i)``, ``(i,)`` or ``i`` keys are linear, ``()`` the constant);
- a DA term list ``[{"coefficient": c, "polynomials": [i, j]}, ...]`` (or ``{"c", "p"}``);
  terms of degree > 2 are kept as they are for the generations that accept them;
- a ``dimod.BinaryQuadraticModel`` (SPIN models are converted to BINARY; labels are kept so the
  results can be mapped back);
- the engine's ``BinaryQuadraticProblem`` (duck-typed: ``linear``, ``constant``, ``to_triplets``).

Many problems with the same couplings' positions (one QUBO per training mini-batch):
``CouplingPattern(n, rows, cols).problem(values, linear)``; over the compact transport the service
then receives the positions once and only the values afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import sys
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ProblemError
from .wire.polynomial import split_terms
from .wire.compact import pattern_key


@dataclass(frozen=True, eq=False)
class EncodedProblem:
    """A problem as arrays: ``E(x) = constant + linear . x + sum values[k] x[rows[k]] x[cols[k]]``.

    Attributes:
        num_variables: n; states come back as (k, n).
        linear: (n,) float64.
        rows, cols, values: coupling triplets with rows < cols (duplicates allowed; they add up).
        constant: energy offset.
        higher_order: DA terms of degree > 2, sent as they are (JSON transport only).
        labels: the user's variable labels in index order (dimod BQMs), or None for 0..n-1.
        pattern_key: set by ``CouplingPattern.problem``: rows and cols are that pattern's.
    """

    num_variables: int
    linear: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    constant: float = 0.0
    higher_order: tuple[dict[str, Any], ...] = ()
    labels: tuple[Hashable, ...] | None = None
    pattern_key: str | None = None

    @property
    def num_terms(self) -> int:
        """How many DA terms the JSON form would hold (the measure for choosing a transport)."""
        return (int(np.count_nonzero(self.linear)) + int(self.values.size)
                + len(self.higher_order) + (self.constant != 0.0))

    def energies(self, states: np.ndarray) -> np.ndarray:
        """Energies of (k, n) binary states (quadratic part only; used by tests and the sampler)."""
        x = np.atleast_2d(np.asarray(states, dtype=np.float64))
        e = self.constant + x @ self.linear
        if self.values.size:
            e = e + (x[:, self.rows] * x[:, self.cols]) @ self.values
        energies: np.ndarray = e
        return energies

    def da_terms_json(self) -> str:
        """``to_da_terms()`` rendered as a JSON array, ~4x faster than building the dicts and
        dumping them (the problem is already checked finite, so ``repr`` is valid JSON)."""
        parts: list[str] = []
        if self.constant != 0.0:
            parts.append(f'{{"coefficient":{float(self.constant)!r},"polynomials":[]}}')
        idx = np.flatnonzero(self.linear)
        parts.extend(f'{{"coefficient":{c!r},"polynomials":[{i}]}}'
                     for i, c in zip(idx.tolist(), self.linear[idx].tolist()))
        parts.extend(f'{{"coefficient":{c!r},"polynomials":[{i},{j}]}}'
                     for i, j, c in zip(self.rows.tolist(), self.cols.tolist(), self.values.tolist()))
        parts.extend(json.dumps(term, separators=(",", ":")) for term in self.higher_order)
        return "[" + ",".join(parts) + "]"

    def to_da_terms(self) -> list[dict[str, Any]]:
        """The DA ``binary_polynomial.terms`` list (long spelling, understood by every DA)."""
        terms: list[dict[str, Any]] = []
        if self.constant != 0.0:
            terms.append({"coefficient": float(self.constant), "polynomials": []})
        idx = np.flatnonzero(self.linear)
        terms.extend({"coefficient": c, "polynomials": [i]}
                     for i, c in zip(idx.tolist(), self.linear[idx].tolist()))
        terms.extend({"coefficient": c, "polynomials": [i, j]}
                     for i, j, c in zip(self.rows.tolist(), self.cols.tolist(), self.values.tolist()))
        terms.extend(self.higher_order)
        return terms


class CouplingPattern:
    """The positions (i, j) of couplings shared by many problems, named by a content hash.

    ``problem(values, linear)`` gives an ``EncodedProblem`` whose couplings sit at these
    positions; the clients send the first one with its rows and cols and later ones with only
    the key and the values (the service keeps patterns it has seen; if it lost one, the client
    resends it once, transparently). Pairs are stored with i < j.

    Example:
        >>> pattern = CouplingPattern(3, [0, 1], [1, 2])
        >>> pattern.problem([1.0, -2.0], linear=[0.5, 0.0, 0.0]).num_terms
        3
    """

    def __init__(self, num_variables: int, rows: Any, cols: Any) -> None:
        n = int(num_variables)
        i = np.asarray(rows).ravel()
        j = np.asarray(cols).ravel()
        if i.shape != j.shape:
            raise _fail(f"rows and cols differ in length: {i.size} and {j.size}")
        if i.size and (i.dtype.kind not in "iu" or j.dtype.kind not in "iu"):
            raise _fail("rows and cols must be integer arrays")
        if n < 1 or n >= 2**31:
            raise _fail(f"num_variables must be in 1..2**31 - 1, got {n}")
        if i.size and (min(int(i.min()), int(j.min())) < 0 or max(int(i.max()), int(j.max())) >= n):
            raise _fail(f"pattern indices must lie in 0..{n - 1}")
        if np.any(i == j):
            raise _fail("a coupling pattern holds pairs i != j (put i == i terms in linear)")
        self.num_variables = n
        self.rows = np.minimum(i, j).astype(np.int32)
        self.cols = np.maximum(i, j).astype(np.int32)
        for arr in (self.rows, self.cols):
            arr.flags.writeable = False
        self.key = pattern_key(n, self.rows, self.cols)

    def __len__(self) -> int:
        return int(self.rows.size)

    def problem(self, values: Any, linear: Any = None, constant: float = 0.0) -> EncodedProblem:
        """A problem on this pattern: ``values[k]`` couples ``rows[k]`` and ``cols[k]``.

        float32 values stay float32 on the wire (half the bytes); others become float64.
        """
        v = np.asarray(values).ravel()
        if v.dtype != np.float32:
            v = v.astype(np.float64)
        if v.size != self.rows.size:
            raise _fail(f"{v.size} values for a pattern of {self.rows.size} couplings")
        _check_finite("coupling values", v)
        h = np.zeros(self.num_variables) if linear is None else np.asarray(linear, dtype=np.float64).ravel()
        if h.size != self.num_variables:
            raise _fail(f"linear has {h.size} values for {self.num_variables} variables")
        _check_finite("linear coefficients", h)
        return EncodedProblem(self.num_variables, h, self.rows, self.cols, v, float(constant),
                              pattern_key=self.key)


def _fail(message: str) -> ProblemError:
    return ProblemError(message)


def _check_finite(name: str, values: np.ndarray) -> None:
    if values.size and not np.all(np.isfinite(values)):
        raise _fail(f"{name} contains NaN or infinity")


def _index(value: Any, where: str) -> int:
    """A variable index: a non-negative integer (bools and floats with fractions refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise _fail(f"{where}: variable index {value!r} is not an integer")
    index = int(value)
    if index < 0:
        raise _fail(f"{where}: variable index {index} is negative")
    return index


def _coefficient(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(f"{where}: coefficient {value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise _fail(f"{where}: coefficient is not finite")
    return number


def _assemble(linear: np.ndarray, rows: np.ndarray, cols: np.ndarray, values: np.ndarray,
              constant: float, num_variables: int | None, higher: Sequence[dict[str, Any]] = (),
              labels: tuple[Hashable, ...] | None = None) -> EncodedProblem:
    """Fold (i, i) into linear, orient pairs i < j, drop zeros and check the size."""
    rows = rows.astype(np.int64, copy=False)
    cols = cols.astype(np.int64, copy=False)
    values = values.astype(np.float64, copy=False)
    _check_finite("coefficients", values)
    _check_finite("linear coefficients", linear)
    if not math.isfinite(constant):
        raise _fail("the constant is not finite")
    largest = max(int(rows.max(initial=-1)), int(cols.max(initial=-1)), linear.size - 1)
    for term in higher:
        largest = max(largest, max(term["polynomials"]))
    n = largest + 1 if num_variables is None else int(num_variables)
    if num_variables is not None and largest >= n:
        raise _fail(f"variable index {largest} is outside num_variables={n}")
    if n <= 0:
        raise _fail("the problem has no variables")
    lin = np.zeros(n, dtype=np.float64)
    lin[: linear.size] += linear
    diag = rows == cols
    if diag.any():
        np.add.at(lin, rows[diag], values[diag])
        rows, cols, values = rows[~diag], cols[~diag], values[~diag]
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    keep = values != 0.0
    return EncodedProblem(n, lin, lo[keep], hi[keep], values[keep], float(constant),
                          tuple(higher), labels)


def _from_dense(matrix: np.ndarray, num_variables: int | None) -> EncodedProblem:
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise _fail(f"a QUBO matrix must be square, got shape {matrix.shape}")
    if matrix.dtype.kind not in "biuf":
        raise _fail(f"a QUBO matrix must be numeric, got dtype {matrix.dtype}")
    q = np.asarray(matrix, dtype=np.float64)
    _check_finite("the QUBO matrix", q)
    if num_variables is not None and num_variables < q.shape[0]:
        raise _fail(f"num_variables={num_variables} is smaller than the {q.shape[0]}x{q.shape[0]} matrix")
    upper = np.triu(q, 1) + np.tril(q, -1).T
    rows, cols = np.nonzero(upper)
    return _assemble(np.diag(q).copy(), rows, cols, upper[rows, cols], 0.0,
                     num_variables if num_variables is not None else q.shape[0])


def _from_sparse(matrix: Any, num_variables: int | None) -> EncodedProblem:
    """Fold the lower triangle onto the upper with scipy's own (compiled) sparse arithmetic, so
    each pair becomes one term; the diagonal is linear."""
    if len(matrix.shape) != 2 or matrix.shape[0] != matrix.shape[1]:
        raise _fail(f"a QUBO matrix must be square, got shape {matrix.shape}")
    n = matrix.shape[0] if num_variables is None else num_variables
    if n < matrix.shape[0]:
        raise _fail(f"num_variables={n} is smaller than the {matrix.shape[0]}x{matrix.shape[0]} matrix")
    scipy_sparse = sys.modules["scipy.sparse"]
    csr = scipy_sparse.csr_matrix(matrix, dtype=np.float64)
    _check_finite("the QUBO matrix", csr.data)
    upper = (scipy_sparse.triu(csr, 1, format="csr") + scipy_sparse.tril(csr, -1, format="csr").T.tocsr()).tocoo()
    upper.eliminate_zeros()
    return _assemble(np.asarray(csr.diagonal(), dtype=np.float64), np.asarray(upper.row, dtype=np.int64),
                     np.asarray(upper.col, dtype=np.int64), np.asarray(upper.data, dtype=np.float64), 0.0, n)


def _from_dict(mapping: Mapping[Any, Any], num_variables: int | None,
               constant: float) -> EncodedProblem:
    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    for key, raw in mapping.items():
        where = f"term {key!r}"
        value = _coefficient(raw, where)
        if isinstance(key, tuple):
            if len(key) == 0:
                constant += value
                continue
            if len(key) > 2:
                raise _fail(f"{where}: only linear and quadratic keys are allowed in a dict; "
                            "send higher-order terms as a DA term list")
            i = _index(key[0], where)
            j = _index(key[-1], where)
        else:
            i = j = _index(key, where)
        rows.append(i)
        cols.append(j)
        values.append(value)
    if not rows and num_variables is None:
        raise _fail("the problem has no variables")
    return _assemble(np.zeros(0), np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64),
                     np.array(values, dtype=np.float64), constant, num_variables)


def _from_terms(terms: Sequence[Any], num_variables: int | None) -> EncodedProblem:
    coefficients = np.empty(len(terms))
    first = np.full(len(terms), -1, dtype=np.int64)
    second = np.full(len(terms), -1, dtype=np.int64)
    higher: list[dict[str, Any]] = []
    for k, term in enumerate(terms):
        where = f"term {k}"
        if not isinstance(term, Mapping):
            raise _fail(f"{where}: expected an object with 'coefficient' and 'polynomials'")
        raw_c = term["c"] if "c" in term else term.get("coefficient")
        if raw_c is None:
            raise _fail(f"{where}: missing 'coefficient'")
        coefficients[k] = _coefficient(raw_c, where)
        poly = term["p"] if "p" in term else term.get("polynomials", [])
        if poly is None:
            poly = []
        if not isinstance(poly, Sequence) or isinstance(poly, (str, bytes)):
            raise _fail(f"{where}: 'polynomials' must be a list of variable indices")
        idx = sorted({_index(i, where) for i in poly})  # x_i * x_i = x_i
        if len(idx) > 2:
            higher.append({"coefficient": coefficients[k], "polynomials": idx})
            coefficients[k] = 0.0  # kept out of the quadratic part below
        elif idx:
            first[k], second[k] = idx[0], idx[-1]
    largest = max(int(first.max(initial=-1)), int(second.max(initial=-1)))
    if largest < 0 and not higher and num_variables is None:
        raise _fail("the problem has no variables")
    linear, rows, cols, values, constant = split_terms(coefficients, first, second, largest + 1)
    return _assemble(linear, rows, cols, values, constant, num_variables, higher)


def _from_bqm(bqm: Any) -> EncodedProblem:
    binary = bqm.change_vartype("BINARY", inplace=False) if str(bqm.vartype.name) != "BINARY" else bqm
    labels = tuple(binary.variables)
    if not labels:
        raise _fail("the BinaryQuadraticModel has no variables")
    linear, (irow, icol, qdata), offset = binary.to_numpy_vectors(variable_order=list(labels))
    return _assemble(np.asarray(linear, dtype=np.float64), np.asarray(irow), np.asarray(icol),
                     np.asarray(qdata, dtype=np.float64), float(offset), len(labels), labels=labels)


def _is_scipy_sparse(obj: Any) -> bool:
    module = sys.modules.get("scipy.sparse")
    return module is not None and bool(module.issparse(obj))


def _is_dimod_bqm(obj: Any) -> bool:
    dimod = sys.modules.get("dimod")
    return dimod is not None and isinstance(obj, dimod.BinaryQuadraticModel)


def encode_problem(problem: Any, *, num_variables: int | None = None,
                   constant: float = 0.0) -> EncodedProblem:
    """Any accepted problem form as an ``EncodedProblem``.

    Args:
        problem: see the module docstring for the forms.
        num_variables: declared size (states come back this wide); inferred when omitted.
        constant: added to the energy (dict form; matrices have none of their own).

    Raises:
        ProblemError: an unknown form, non-finite coefficients, bad indices, no variables.
    """
    if isinstance(problem, EncodedProblem):
        return problem
    if _is_dimod_bqm(problem):
        return _from_bqm(problem)
    if _is_scipy_sparse(problem):
        encoded = _from_sparse(problem, num_variables)
    elif isinstance(problem, np.ndarray):
        encoded = _from_dense(problem, num_variables)
    elif isinstance(problem, Mapping):
        if "binary_polynomial" in problem or "terms" in problem:
            body = problem.get("binary_polynomial", problem)
            return _from_terms(body.get("terms") or [], num_variables)
        return _from_dict(problem, num_variables, constant)
    elif isinstance(problem, Sequence) and not isinstance(problem, (str, bytes)):
        if not problem or isinstance(problem[0], Mapping):  # [] = a DA term list with no terms
            encoded = _from_terms(problem, num_variables)
        else:
            encoded = _from_dense(np.asarray(problem), num_variables)
    elif hasattr(problem, "to_triplets") and hasattr(problem, "linear"):
        i, j, c = problem.to_triplets()
        encoded = _assemble(np.asarray(problem.linear, dtype=np.float64), np.asarray(i), np.asarray(j),
                            np.asarray(c, dtype=np.float64), float(problem.constant),
                            num_variables if num_variables is not None else problem.num_variables)
    else:
        raise _fail(f"cannot build a QUBO from {type(problem).__name__}: pass a square numpy "
                    "array, a scipy sparse matrix, a {(i, j): c} dict, a DA term list or a "
                    "dimod BinaryQuadraticModel")
    if constant and not isinstance(problem, Mapping):
        encoded = dataclasses.replace(encoded, constant=encoded.constant + float(constant))
    return encoded
