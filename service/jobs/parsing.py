"""DA JSON (and compact) request bodies -> a validated ``SolveJob``, vectorised.

The envelope and the parameter block are validated with the shared pydantic models; the terms
(half a million for a dense 1,024-variable problem) are not turned into one model object each.
The usual ``binary_polynomial`` array is read straight from the bytes (``term_scan``, numba,
no GIL); any other form goes the general way: orjson gives lists of dicts, a few list
comprehensions pull out coefficients and index lists, and numpy checks them all at once (finite
coefficients, non-negative integer indices, degree).

Choices:
    * Degree > 2 terms: a 400 on v1/v2; on v3+ binary_polynomial they are reduced to a QUBO
      with auxiliary variables (service.jobs.higher_order) and the replies report the original
      variables with the exact polynomial energy. In penalty_binary_polynomial: a 400.
    * DA3 one-hot groups become penalty terms of the annealed problem (service.jobs.one_hot).
    * ``k_hot_groups`` (a SpinOut extension on every block) are checked here and kept natively
      by the engine (service.jobs.k_hot): a group past the problem's end, over a one-hot group
      or a fixed_config bit, or with inequalities is a 400.
    * ``inequalities`` (v3+): first-order terms (``[i]`` or ``[i, i]``) and constants, kept
      natively by the engine (service.engine.constraints); a term of degree >= 2 is a 400, and so
      is a non-empty list on v1/v2. ``lambda`` is 1..1e9 (default 1).
    * Empty forms are no input: ``"penalty_binary_polynomial": {"terms": []}`` or null and
      ``"inequalities": []`` or null leave the problem as it is.
    * Cloud-storage references (``bucket_name``, ``*_object_name``) are a 400: this server takes
      the polynomials inline only.
    * The problem's size is one more than the largest index used (in the problem, the penalty
      polynomial and the inequalities); it must fit the generation's limit, and guidance/fixed
      configs must name variables inside it.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from itertools import chain, repeat
from operator import contains, itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from pydantic import ValidationError

from client.wire.da import (BLOCK_GENERATION, SOLVER_BLOCKS, RequestEnvelope, generation_for_version,
                           solver_key)
from client.wire.polynomial import split_terms
from client.wire.compact import (CompactInequalities, CompactProblem, CompactFormatError,
                              decode_request)

from .higher_order import reduce_degree
from .k_hot import k_hot_groups
from .one_hot import add_one_hot_penalties, flip_swing, one_hot_groups
from .solve_job import SolveJob
from service.engine.term_scan import scan_binary_polynomial

if TYPE_CHECKING:
    from .patterns import PatternCache

__all__ = ["InvalidRequestError", "parse_da_request", "parse_compact_request", "terms_to_problem",
           "validate_parameters", "format_validation_error"]


class InvalidRequestError(ValueError):
    """A request the service refuses with a 400; the message says what to fix."""


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """Pydantic's errors as one line that names each field."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        where = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "body"
        parts.append(f"{where}: {err.get('msg')}")
    return "; ".join(parts)


def validate_parameters(solver: str, block: Any, version: str | None) -> dict[str, Any]:
    """The solver block validated (defaults applied), checked against the path version."""
    if solver not in SOLVER_BLOCKS:
        raise InvalidRequestError(f"unknown solver {solver!r}; give one of {', '.join(SOLVER_BLOCKS)}")
    if version is not None:
        gen = generation_for_version(version)
        if solver not in gen.blocks:
            raise InvalidRequestError(f"{solver} does not belong to /{version}; that path accepts "
                               f"{', '.join(gen.blocks)} (use /{BLOCK_GENERATION[solver].versions[-1]} "
                               f"for {solver})")
    if block is None:
        block = {}
    if not isinstance(block, Mapping):
        raise InvalidRequestError(f"{solver} must be an object of parameters")
    try:
        model = SOLVER_BLOCKS[solver].model_validate(block)
    except ValidationError as exc:
        raise InvalidRequestError(format_validation_error(exc, f"{solver}.")) from None
    return model.model_dump(mode="json")


def _fast_columns(terms: list[Any]) -> tuple[list[Any] | None, list[Any] | None]:
    """Coefficients and index lists with C-level ``itemgetter`` when every term uses one
    spelling (the usual case); (None, None) tells the caller to take the general path."""
    first = terms[0]
    if not isinstance(first, dict):
        return None, None
    if "c" in first:
        coeffs = list(map(itemgetter("c"), terms))
    elif any(map(contains, terms, repeat("c"))):  # mixed spellings: c must win where present
        return None, None
    else:
        coeffs = list(map(itemgetter("coefficient"), terms))
    key = "p" if "p" in first else "polynomials"
    other = "polynomials" if key == "p" else "p"
    if key == "polynomials" and any(map(contains, terms, repeat(other))):
        return coeffs, None
    try:
        polys = list(map(itemgetter(key), terms))
    except KeyError:  # constants without indices
        return coeffs, None
    return coeffs, polys


def _term_arrays(terms: Any, where: str, allow_higher: bool,
                 collect: list[tuple[float, tuple[int, ...]]] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coefficients, first, second) with -1 for absent indices, all checks vectorised.

    Terms of degree > 2 go to ``collect`` (coefficient, distinct sorted indices) and are zeroed
    in the arrays; without ``collect`` they are a InvalidRequestError.
    """
    if not isinstance(terms, list):
        raise InvalidRequestError(f"{where}.terms must be a list")
    if not terms:
        return np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64)
    try:
        coeffs, polys = _fast_columns(terms)
    except (TypeError, KeyError, AttributeError):
        coeffs = polys = None
    try:
        if coeffs is None or polys is None:
            coeffs = [t["c"] if "c" in t else t["coefficient"] for t in terms]
            polys = [t["p"] if "p" in t else t.get("polynomials") for t in terms]
    except (TypeError, KeyError, AttributeError):
        bad = next(k for k, t in enumerate(terms)
                   if not isinstance(t, dict) or ("c" not in t and "coefficient" not in t))
        raise InvalidRequestError(f"{where}.terms[{bad}] must be an object with a coefficient "
                           "('c' or 'coefficient')") from None
    try:
        c = np.array(coeffs, dtype=np.float64)
    except (TypeError, ValueError):
        bad = next(k for k, v in enumerate(coeffs)
                   if isinstance(v, bool) or not isinstance(v, int | float))
        raise InvalidRequestError(f"{where}.terms[{bad}]: the coefficient must be a number") from None
    _check_coefficients(c, where)
    polys = [() if p is None else p for p in polys]
    try:
        lengths = np.fromiter(map(len, polys), dtype=np.int64, count=len(polys))
    except TypeError:
        bad = next(k for k, p in enumerate(polys) if not isinstance(p, list))
        raise InvalidRequestError(f"{where}.terms[{bad}]: the index list ('p' or 'polynomials') must "
                           "be a list") from None
    flat_list = list(chain.from_iterable(polys))
    try:
        flat = np.array(flat_list)
    except (ValueError, TypeError):
        flat = np.array(flat_list, dtype=object)
    if flat.ndim != 1:
        flat = np.array(flat_list + [None], dtype=object)[:-1]
    if flat.size and flat.dtype.kind not in "iu":
        if flat.dtype.kind == "f" and np.all(np.abs(flat) < 2**53) and np.all(flat == np.round(flat)) \
                and not any(isinstance(v, bool) for v in flat_list):
            flat = flat.astype(np.int64)
        else:
            pos = next((k for k, v in enumerate(flat_list)
                        if isinstance(v, bool) or not isinstance(v, int)
                        and not (isinstance(v, float) and v.is_integer() and abs(v) < 2**53)
                        or isinstance(v, float) and not abs(v) < 2**53),
                       0)
            term = int(np.searchsorted(np.cumsum(lengths), pos, side="right"))
            raise InvalidRequestError(f"{where}.terms[{term}]: variable indices must be non-negative "
                               f"integers, got {flat_list[pos]!r}")
    if flat.dtype.kind == "u" and flat.size and int(flat.max()) > np.iinfo(np.int64).max:
        pos = int(np.argmax(flat))  # orjson gives 2**63 .. 2**64-1 as uint64: would wrap negative
        term = int(np.searchsorted(np.cumsum(lengths), pos, side="right"))
        raise InvalidRequestError(f"{where}.terms[{term}]: variable index {flat_list[pos]} is too large")
    flat = flat.astype(np.int64, copy=False)
    if flat.size and flat.min() < 0:
        pos = int(np.flatnonzero(flat < 0)[0])
        term = int(np.searchsorted(np.cumsum(lengths), pos, side="right"))
        raise InvalidRequestError(f"{where}.terms[{term}]: variable indices must be non-negative, "
                           f"got {int(flat[pos])}")
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    first = np.full(len(polys), -1, dtype=np.int64)
    second = np.full(len(polys), -1, dtype=np.int64)
    has1 = lengths >= 1
    first[has1] = flat[starts[has1]]
    has2 = lengths >= 2
    second[has2] = flat[starts[has2] + 1]
    high = lengths > 2
    if np.any(high):
        # x_i * x_i = x_i: a term of degree > 2 whose indices collapse to <= 2 distinct is fine.
        for k in np.flatnonzero(high):
            distinct = sorted(set(int(v) for v in polys[k]))
            if len(distinct) > 2:
                if collect is not None and allow_higher:
                    collect.append((float(c[k]), tuple(distinct)))
                    c[k], first[k], second[k] = 0.0, -1, -1
                    continue
                if allow_higher:
                    msg = (f"{where}.terms[{k}] has degree {len(distinct)}; higher-order terms are "
                           f"supported in binary_polynomial only")
                else:
                    msg = (f"{where}.terms[{k}] has degree {len(distinct)}; higher-order terms "
                           "(degree > 2) are accepted on v3, v3c and v4 only")
                raise InvalidRequestError(msg)
            first[k] = distinct[0]
            second[k] = distinct[-1] if len(distinct) == 2 else -1
    return c, first, second


def _check_coefficients(c: np.ndarray, where: str) -> None:
    if not np.all(np.isfinite(c)):
        bad = int(np.flatnonzero(~np.isfinite(c))[0])
        raise InvalidRequestError(f"{where}.terms[{bad}]: the coefficient is not finite (NaN or infinity)")


def terms_to_problem(c: np.ndarray, first: np.ndarray, second: np.ndarray,
                     num_variables: int, where: str = "binary_polynomial") -> CompactProblem:
    """Polynomial terms (with -1 = absent) as a CompactProblem of linear + pair arrays;
    InvalidRequestError when finite coefficients add up beyond float64 (two 1e308 constants)."""
    with np.errstate(over="ignore"):
        linear, rows, cols, values, constant = split_terms(c, first, second, num_variables)
    if not (math.isfinite(constant) and np.all(np.isfinite(linear))):
        raise InvalidRequestError(f"{where}: the coefficients of one variable (or the constants) add "
                           "up beyond the float64 range")
    return CompactProblem(num_variables, rows, cols, values, linear, constant)


def _polynomial(body: Mapping[str, Any], key: str, allow_higher: bool,
                collect: list[tuple[float, tuple[int, ...]]] | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    poly = body.get(key)
    if poly is None:
        return None
    if not isinstance(poly, Mapping):
        raise InvalidRequestError(f"{key} must be an object with 'terms'")
    return _term_arrays(poly.get("terms", []), key, allow_higher, collect)


def _qubo_matrix(body: Mapping[str, Any]) -> CompactProblem:
    qm = body["qubo_matrix"]
    rows = qm.get("qubo") if isinstance(qm, Mapping) else None
    if not isinstance(rows, list) or not rows:
        raise InvalidRequestError("qubo_matrix.qubo must be a non-empty list of {'qubo_row': [...]}")
    try:
        lists = [r["qubo_row"] for r in rows]
        q = np.array(lists, dtype=np.float64)
    except (TypeError, KeyError):
        raise InvalidRequestError("each qubo_matrix.qubo entry must be {'qubo_row': [numbers]}") from None
    except ValueError:
        raise InvalidRequestError("qubo_matrix rows must be numbers, all of the same length") from None
    if q.ndim != 2 or q.shape[0] != q.shape[1]:
        raise InvalidRequestError(f"qubo_matrix must be square, got {q.shape[0]} rows of "
                           f"{q.shape[1] if q.ndim == 2 else 'uneven'} entries")
    if not np.all(np.isfinite(q)):
        raise InvalidRequestError("qubo_matrix contains a non-finite value (NaN or infinity)")
    n = q.shape[0]
    linear = np.diag(q).copy()
    i, j = np.nonzero(q)
    off = i != j
    return CompactProblem(n, i[off], j[off], q[i[off], j[off]], linear, 0.0)


def parse_da_request(raw: bytes | Mapping[str, Any], version: str,
                     max_terms: int | None = None, *, scan_terms: bool = True) -> SolveJob:
    """A DA JSON solve body for path ``version`` -> SolveJob; InvalidRequestError on bad input.

    ``scan_terms=False`` parses every body the general way, without ``term_scan``: the same
    answers and errors, slower (kept for ruling the scanner out when its output is in doubt).
    """
    with _gc_paused():
        return _parse_da_request(raw, version, max_terms, scan_terms)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while half a million fresh dicts and lists are built: they hold no
    cycles, and the collector's passes over them would triple the parse time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse_da_request(raw: bytes | Mapping[str, Any], version: str, max_terms: int | None,
                      scan_terms: bool) -> SolveJob:
    if isinstance(raw, bytes | bytearray) and max_terms is not None \
            and len(raw) // SHORTEST_TERM_BYTES > max_terms:
        _precount_terms(raw, max_terms)
    # The usual binary_polynomial terms are read from the bytes without the GIL (term_scan);
    # the rest of the body, that array cut out, goes the general way.
    scanned = (scan_binary_polynomial(raw)
               if scan_terms and isinstance(raw, bytes | bytearray | memoryview) else None)
    body: Any = raw
    if scanned is not None:
        try:
            body = orjson.loads(scanned.rest)
        except orjson.JSONDecodeError:
            scanned = None  # the error is reported from the original bytes below
    if scanned is None and isinstance(raw, bytes | bytearray | memoryview | str):
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequestError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object")
    try:
        solver = solver_key(body)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None
    params = validate_parameters(solver, body.get(solver), version)
    try:  # the envelope (only the solver block: the rest was checked above or below)
        RequestEnvelope.model_validate({solver: body.get(solver) or {}})
    except ValidationError as exc:
        raise InvalidRequestError(format_validation_error(exc)) from None
    gen = generation_for_version(version)
    v3 = gen.number >= 3
    _refuse_cloud_storage(body)
    if body.get("inequalities") and not v3:
        raise InvalidRequestError(f"inequalities are a v3+ feature, not available on /{version}")
    penalty_given = _has_terms(body.get("penalty_binary_polynomial"))
    if penalty_given and not v3:
        raise InvalidRequestError(f"penalty_binary_polynomial is a v3+ feature, not available on /{version}")
    has_poly = body.get("binary_polynomial") is not None
    has_matrix = body.get("qubo_matrix") is not None
    if has_poly == has_matrix:
        raise InvalidRequestError("give exactly one of binary_polynomial and qubo_matrix")
    if has_matrix and v3:
        raise InvalidRequestError(f"qubo_matrix is a v1/v2 input; /{version} takes binary_polynomial")
    if max_terms is not None:
        _check_terms(body, max_terms, 0 if scanned is None else scanned.first.size)
    # Empty or null penalty polynomials and inequality lists are no input (clients send them for
    # every unconstrained problem); they must not take part in sizing the problem.
    penalty_terms = _polynomial(body, "penalty_binary_polynomial", v3) if penalty_given else None
    inequalities = _inequality_terms(body.get("inequalities")) if v3 else None
    higher: list[tuple[float, tuple[int, ...]]] = []
    if has_matrix:
        problem = _qubo_matrix(body)
        n = problem.num_variables
    else:
        read: tuple[np.ndarray, np.ndarray, np.ndarray] | None
        if scanned is not None:
            _check_coefficients(scanned.coefficients, "binary_polynomial")
            read = (scanned.coefficients, scanned.first, scanned.second)
        else:
            read = _polynomial(body, "binary_polynomial", v3, higher)
        assert read is not None
        terms = read
        n = _size([*terms[1:], *(penalty_terms or ())[1:],
                   *(() if inequalities is None else (inequalities[1],))],
                  max((max(ix) for _, ix in higher), default=-1))
        _check_size(n, gen.max_bits, version)  # before anything is allocated at size n
        problem = terms_to_problem(*terms, n)
    penalty = (None if penalty_terms is None
               else terms_to_problem(*penalty_terms, n, "penalty_binary_polynomial"))
    ineq = None
    if inequalities is not None:
        ineq = CompactInequalities(*inequalities)
    _check_size(n, gen.max_bits, version)
    _check_configs(params, n)
    groups = None
    if solver == "fujitsuDA3":
        try:
            groups = one_hot_groups(params, n)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
    _check_k_hot(params, n, ineq)
    aux_pairs = None
    if higher:
        try:  # the auxiliaries count against the generation's size limit too
            rows, cols, values, linear, aux_pairs, total = reduce_degree(higher, n, gen.max_bits)
        except ValueError as exc:
            raise InvalidRequestError(f"{exc}, the limit of /{version}") from None
        _grow(problem, total)
        assert problem.linear is not None
        problem.rows = np.concatenate([problem.rows, rows])
        problem.cols = np.concatenate([problem.cols, cols])
        problem.values = np.concatenate([problem.values, values])
        problem.linear = problem.linear + linear
        if penalty is not None:
            _grow(penalty, total)
    if groups:
        add_one_hot_penalties(problem, groups, _other_swing(params, penalty, ineq, n))
    return SolveJob(problem, solver, params, penalty, version, inequalities=ineq,
                    aux_pairs=aux_pairs, num_output_variables=n if higher else None)


#: Body keys of the DA's cloud-storage mode (the polynomials uploaded to a bucket beforehand).
_CLOUD_STORAGE_KEYS = ("bucket_name", "binary_polynomial_object_name",
                       "penalty_binary_polynomial_object_name", "inequalities_object_name")


def _refuse_cloud_storage(body: Mapping[str, Any]) -> None:
    named = [key for key in body if (key in _CLOUD_STORAGE_KEYS or key.endswith("_object_name"))
             and body[key] not in (None, "")]
    if named:
        raise InvalidRequestError(f"{', '.join(named)}: cloud storage uploads are not supported by this "
                           "server; send binary_polynomial, penalty_binary_polynomial and "
                           "inequalities inline in the body")


def _has_terms(poly: Any) -> bool:
    """Whether a polynomial field holds anything to read (null and {"terms": []} do not; a
    malformed value does, so that it is reported)."""
    if poly is None:
        return False
    return not (isinstance(poly, Mapping) and poly.get("terms") in (None, []))


#: The DA's range of an inequality's weight.
LAMBDA_RANGE = (1.0, 1e9)


def _inequality_terms(raw: Any) -> tuple[np.ndarray, ...] | None:
    """The ``inequalities`` list as (constraint, variable, coefficient, constant, lambda) arrays,
    or None when there are none. Each entry reads sum(terms) <= 0 with first-order terms."""
    if raw is None or raw == []:
        return None
    if not isinstance(raw, list):
        raise InvalidRequestError("inequalities must be a list of {'terms': [...], 'lambda': number}")
    constraint, variable, coefficient = [], [], []
    constants = np.zeros(len(raw))
    weights = np.ones(len(raw))
    for k, entry in enumerate(raw):
        where = f"inequalities[{k}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("terms"), list):
            raise InvalidRequestError(f"{where} must be an object with a 'terms' list (and an optional "
                               "'lambda')")
        lam = entry.get("lambda", 1)
        if lam is None:
            lam = 1
        if isinstance(lam, bool) or not isinstance(lam, int | float) \
                or not LAMBDA_RANGE[0] <= lam <= LAMBDA_RANGE[1]:
            raise InvalidRequestError(f"{where}.lambda: must be a number from 1 to 1e9, got {lam!r}")
        weights[k] = float(lam)
        higher: list[tuple[float, tuple[int, ...]]] = []
        c, first, second = _term_arrays(entry["terms"], where, True, higher)
        quadratic = (second >= 0) & (first >= 0) & (first != second)
        if higher or np.any(quadratic):
            bad = next(i for i, t in enumerate(entry["terms"])
                       if len({int(v) for v in (t.get("p") if "p" in t else t.get("polynomials")) or ()}) > 1)
            raise InvalidRequestError(f"{where}.terms[{bad}] is not first-order; inequalities take linear "
                               "terms ([i]) and constants only (express a quadratic constraint in "
                               "penalty_binary_polynomial)")
        const = first < 0
        constants[k] = float(c[const].sum())
        constraint.append(np.full(int((~const).sum()), k, dtype=np.int64))
        variable.append(first[~const])
        coefficient.append(c[~const])
    return (np.concatenate(constraint), np.concatenate(variable), np.concatenate(coefficient),
            constants, weights)


def _other_swing(params: Mapping[str, Any], penalty: CompactProblem | None,
                 inequalities: CompactInequalities | None, n: int) -> np.ndarray | None:
    """How much the weighted penalty polynomial and the inequality penalties can change with one
    flip of each variable: the one-hot groups' weight must exceed it as well."""
    if penalty is None and inequalities is None:
        return None
    swing = np.zeros(n)
    if penalty is not None:
        swing += float(params.get("penalty_coef", 1.0)) * flip_swing(penalty)[:n]
    if inequalities is not None:
        swing += np.bincount(inequalities.variable, minlength=n,
                             weights=np.abs(inequalities.coefficient)
                             * inequalities.weights[inequalities.constraint])[:n]
    return swing


def _grow(problem: CompactProblem, n: int) -> None:
    """Extend a problem to ``n`` variables (the new ones have no terms)."""
    if problem.num_variables < n:
        linear = np.zeros(problem.num_variables) if problem.linear is None else problem.linear
        problem.linear = np.concatenate([linear, np.zeros(n - problem.num_variables)])
        problem.num_variables = n




#: ``{"c":0}``: a body shorter than this many bytes a term cannot exceed the term cap.
SHORTEST_TERM_BYTES = 7


def _precount_terms(raw: bytes | bytearray, max_terms: int) -> None:
    """Refuse a body holding more terms than the cap before it is turned into Python objects
    (64 MiB of ``{"c":0}`` is 8 million dicts, gigabytes). Every term has a "c" or a
    "coefficient" key, so the larger count is a lower bound on the terms: no false refusals."""
    count = max(raw.count(b'"c":'), raw.count(b'"coefficient":'))
    if count > max_terms:
        raise InvalidRequestError(f"the problem has at least {count:,} terms; this server "
                                  f"accepts at most {max_terms:,}")


def _check_terms(body: Mapping[str, Any], max_terms: int, scanned: int = 0) -> None:
    count = scanned  # terms read by term_scan (no longer in ``body``)
    for key in ("binary_polynomial", "penalty_binary_polynomial"):
        poly = body.get(key)
        if isinstance(poly, Mapping) and isinstance(poly.get("terms"), list):
            count += len(poly["terms"])
    inequalities = body.get("inequalities")
    if isinstance(inequalities, list):
        count += sum(len(e["terms"]) for e in inequalities
                     if isinstance(e, Mapping) and isinstance(e.get("terms"), list))
    qm = body.get("qubo_matrix")
    if isinstance(qm, Mapping) and isinstance(qm.get("qubo"), list):
        count += len(qm["qubo"]) ** 2
    if count > max_terms:
        raise InvalidRequestError(f"the problem has {count:,} terms; this server accepts at most {max_terms:,}")


def _size(index_arrays: list[np.ndarray], extra: int = -1) -> int:
    """One more than the largest variable index in the arrays (-1 = no index)."""
    largest = max([extra, *(int(a.max(initial=-1)) for a in index_arrays)])
    if largest < 0:
        raise InvalidRequestError("the problem has no variables (only constant terms)")
    return largest + 1


def _check_size(n: int, max_bits: int, version: str) -> None:
    if n > max_bits:
        raise InvalidRequestError(f"the problem has {n} variables; /{version} accepts at most {max_bits:,}")


def _check_configs(params: Mapping[str, Any], n: int) -> None:
    for key in ("guidance_config", "fixed_config"):
        cfg = params.get(key) or {}
        bad = [k for k in cfg if int(k) >= n]
        if bad:
            raise InvalidRequestError(f"{key}: index {bad[0]} is outside the problem's {n} variables")


def parse_compact_request(body: bytes, max_bits: int = 100_000,
                          patterns: PatternCache | None = None, expand_one_hot: bool = True) -> SolveJob:
    """A compact (msgpack) body -> SolveJob with its parameters validated.

    With ``patterns``, a problem's ``pattern_key`` without rows and cols is resolved
    (UnknownPatternError for a key the cache does not hold); one with rows and cols is left for
    ``register_pattern`` (building a pattern costs ~30 ms per 100,000 couplings: callers on an
    event loop run it on a thread). ``expand_one_hot=False`` leaves DA3's one-hot groups (checked
    here) for ``expand_one_hot_groups``, so a caller can register the plain pattern first.
    """
    try:
        req = SolveJob.from_wire(decode_request(body))
    except CompactFormatError as exc:
        raise InvalidRequestError(str(exc)) from None
    version = req.api_version
    if version is not None and version not in ("v1", "v2", "v3", "v3c", "v4"):
        raise InvalidRequestError(f"unknown api_version {version!r}")
    req.parameters = validate_parameters(req.solver, req.parameters, version)
    p = req.problem
    n = p.num_variables
    if n > max_bits:
        raise InvalidRequestError(f"the problem has {n} variables; this route accepts at most {max_bits:,}")
    if req.penalty is not None and req.penalty.rows is None:
        raise InvalidRequestError("the penalty problem must carry its rows and cols")
    if p.rows is None:  # a pattern_key without rows and cols: checked when it was registered
        if patterns is None:
            raise InvalidRequestError("this route keeps no coupling patterns; send rows and cols")
        pattern = patterns.get(str(p.pattern_key))
        if pattern.num_variables != n or pattern.rows.size != p.values.size:
            raise InvalidRequestError(f"pattern {p.pattern_key} has {pattern.rows.size:,} couplings of "
                               f"{pattern.num_variables} variables; the request has "
                               f"{p.values.size:,} values for {n} variables")
        p.rows, p.cols, req.pattern = pattern.rows, pattern.cols, pattern
    else:
        for name, arr in (("rows", p.rows), ("cols", p.cols)):
            if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= n):
                raise InvalidRequestError(f"{name}: indices must lie in 0..{n - 1}")
    if p.values.size and not np.all(np.isfinite(p.values)):
        raise InvalidRequestError("values contain a non-finite number (NaN or infinity)")
    if p.linear is not None and (p.linear.size > n or not np.all(np.isfinite(p.linear))):
        raise InvalidRequestError(f"linear must hold at most {n} finite numbers")
    if not math.isfinite(p.constant):
        raise InvalidRequestError("the constant is not finite")
    if req.penalty is not None and req.penalty.num_variables != n:
        raise InvalidRequestError("the penalty problem must have the same num_variables as the problem")
    ineq = req.inequalities
    if ineq is not None:
        if not (np.all(np.isfinite(ineq.coefficient)) and np.all(np.isfinite(ineq.constant))):
            raise InvalidRequestError("inequalities contain a non-finite number (NaN or infinity)")
        if ineq.weights.size and not (np.all(ineq.weights >= LAMBDA_RANGE[0])
                                      and np.all(ineq.weights <= LAMBDA_RANGE[1])):
            raise InvalidRequestError("inequalities.lambda: every weight must lie in 1..1e9")
    _check_configs(req.parameters, n)
    groups = _one_hot_groups(req)  # a bad group is refused before anything is registered or solved
    _check_k_hot(req.parameters, n, req.inequalities)
    if expand_one_hot:
        _add_one_hot(req, groups)
    return req


def _one_hot_groups(request: SolveJob) -> list[np.ndarray]:
    if request.solver != "fujitsuDA3":
        return []
    try:
        return one_hot_groups(request.parameters, request.problem.num_variables)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None


def _check_k_hot(params: Mapping[str, Any], n: int,
                 inequalities: CompactInequalities | None) -> None:
    try:
        k_hot_groups(params, n, inequalities is not None and inequalities.num_constraints > 0)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None


def expand_one_hot_groups(request: SolveJob) -> None:
    """DA3's one-hot groups as penalty terms of the request's problem (in place). The penalties
    add couplings, so the problem is then solved off its coupling pattern; register the pattern
    before (the next request that names it carries values only)."""
    _add_one_hot(request, _one_hot_groups(request))


def _add_one_hot(request: SolveJob, groups: list[np.ndarray]) -> None:
    if groups:
        add_one_hot_penalties(request.problem, groups,
                              _other_swing(request.parameters, request.penalty, request.inequalities,
                                           request.problem.num_variables))
        request.problem.pattern_key = request.pattern = None


def register_pattern(request: SolveJob, patterns: PatternCache) -> None:
    """Keep the coupling pattern of a request that carries a ``pattern_key`` with its rows and
    cols (InvalidRequestError if the key does not match them); attaches it to the problem."""
    p = request.problem
    if p.pattern_key is None or request.pattern is not None:
        return
    try:
        request.pattern = patterns.register(p.pattern_key, p.num_variables, p.rows, p.cols)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None
