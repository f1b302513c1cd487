"""SpinOut's compact binary transport: a QUBO as numpy arrays in one msgpack body.

A dense 1,024-variable problem in DA JSON is ~20 MB of text that takes a JSON parser and half a
million dicts to read; the same problem here is its raw array bytes (~12 MB of float64 + int32,
or less), decoded with ``np.frombuffer`` without a copy. Pure numpy + msgpack, used by both the
client and the service (which also keeps job payloads and results in this format).

Request body (``CONTENT_TYPE``), a msgpack map::

    {"format": "spinout-qubo/1", "solver": "fujitsuDA2", "parameters": {...DA block...},
     "num_variables": n, "constant": c,
     "linear": <array (n,) or nil>, "rows": <array (m,)>, "cols": <array (m,)>, "values": <array (m,)>,
     "penalty": nil or {same problem keys}, "api_version": "v2" or nil,
     "inequalities": nil or {"constraint": <int array (m,)>, "variable": <int array (m,)>,
                             "coefficient": <f8 (m,)>, "constant": <f8 (C,)>, "lambda": <f8 (C,)>}}

``parameters`` is the DA block as in DA JSON, SpinOut's extensions included (e.g.
``"k_hot_groups": {"numbers": [...], "counts": [...]}``, docs/service.md "Extensions");
where an array is ``{"dtype": "<f8", "shape": [m], "data": <bytes>}`` (little-endian; dtypes
bool/uint8/int32/int64/uint32/float32/float64). Energy = constant + linear.x + sum_k values[k]
x[rows[k]] x[cols[k]]; (i, i) pairs count as linear, duplicates add up. Inequality c (the DA3
``inequalities``) reads sum_{k: constraint[k] = c} coefficient[k] x[variable[k]] + constant[c] <= 0,
weighted by lambda[c] (see service.engine.constraints).

Coupling patterns: a problem may also carry ``"pattern_key"`` (``pattern_key(n, rows, cols)``, a
hash of its couplings' positions). The service keeps a pattern it has seen, so a later request
with the same key may leave out rows and cols (nil) and send only the values, in the same order;
a service that does not hold the key answers 409 and the client resends with rows and cols.

Reply, a msgpack map::

    {"format": "spinout-reply/1", "status": "Done", "job_id": ..., "message": ...,
     "num_variables": n, "states": <uint8 array (k, ceil(n/8)), np.packbits rows>,
     "energies": <f8 (k,)>, "frequencies": <i8 (k,)>, "penalty_energies": <f8 (k,)> or nil,
     "timing": {"queue": s, "setup": s, "anneal": s, "solve": s, "total": s},
     "progress": [[seconds, energy] or [seconds, energy, penalty_energy], ...],
     "stop_reason": "completed"}

Public names: ``CONTENT_TYPE``, ``CompactFormatError``, ``encode_array``, ``decode_array``,
``pack_states``, ``unpack_states``, ``pattern_key``, ``CompactProblem``, ``CompactRequest``,
``CompactReply``, ``encode_request``, ``decode_request``, ``encode_reply``, ``decode_reply``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

__all__ = [
    "CONTENT_TYPE",
    "REPLY_FORMAT",
    "REQUEST_FORMAT",
    "CompactInequalities",
    "CompactProblem",
    "CompactReply",
    "CompactRequest",
    "CompactFormatError",
    "decode_array",
    "decode_reply",
    "decode_request",
    "encode_array",
    "encode_reply",
    "encode_request",
    "pack_states",
    "request_from_map",
    "request_map",
    "unpack_map",
    "pattern_key",
    "unpack_states",
]

CONTENT_TYPE = "application/x-msgpack"
REQUEST_FORMAT = "spinout-qubo/1"
REPLY_FORMAT = "spinout-reply/1"
_DTYPES = {np.dtype(t).str: np.dtype(t) for t in
           (np.bool_, np.uint8, np.int32, np.int64, np.uint32, np.float32, np.float64)}


class CompactFormatError(ValueError):
    """A compact body that cannot be decoded (the service answers it with a 400)."""


# -------------------------------------------------------------------------------------- arrays
def encode_array(array: Any) -> dict[str, Any]:
    """An array as a msgpack-ready map of dtype, shape and raw little-endian bytes."""
    arr = np.asarray(array)
    if arr.dtype.str not in _DTYPES:
        arr = arr.astype(np.float64 if arr.dtype.kind == "f" else np.int64)
    arr = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"), copy=False))
    return {"dtype": arr.dtype.str, "shape": list(arr.shape), "data": arr.tobytes()}


def decode_array(obj: Any, name: str = "array") -> np.ndarray:
    """The inverse of ``encode_array`` (read-only, zero-copy); CompactFormatError on a bad map."""
    if not isinstance(obj, Mapping):
        raise CompactFormatError(f"{name}: expected an array map with dtype, shape and data")
    try:
        dtype = _DTYPES[obj["dtype"]]
        shape = tuple(int(s) for s in obj["shape"])
        data = obj["data"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CompactFormatError(f"{name}: bad array map ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CompactFormatError(f"{name}: data must be bytes")
    if any(s < 0 for s in shape):
        raise CompactFormatError(f"{name}: negative dimension in shape {shape}")
    count = int(np.prod(shape)) if shape else 1
    if count * dtype.itemsize != len(data):
        raise CompactFormatError(f"{name}: {len(data)} bytes do not hold shape {shape} of {dtype}")
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape)


def pack_states(states: np.ndarray) -> np.ndarray:
    """(k, n) 0/1 states as (k, ceil(n/8)) uint8, 8 bits a byte (np.packbits, big bit order)."""
    states = np.asarray(states, dtype=np.uint8)
    if states.ndim != 2:  # a 1-D state list; with no states at all there are no bits either
        states = states.reshape(len(states), -1) if states.size else states.reshape(0, 0)
    return np.packbits(states, axis=1)


def unpack_states(packed: np.ndarray, num_variables: int) -> np.ndarray:
    """The inverse of ``pack_states``: (k, n) uint8 of 0/1."""
    packed = np.asarray(packed, dtype=np.uint8)
    if packed.ndim != 2:
        raise CompactFormatError(f"packed states must be 2-D, got shape {packed.shape}")
    return np.unpackbits(packed, axis=1, count=num_variables)


# ------------------------------------------------------------------------------------ requests
def pattern_key(num_variables: int, rows: Any, cols: Any) -> str:
    """The content hash naming a coupling pattern: SHA-256 of n and the indices as int32."""
    digest = hashlib.sha256(int(num_variables).to_bytes(8, "little"))
    digest.update(np.ascontiguousarray(rows, dtype="<i4").tobytes())
    digest.update(np.ascontiguousarray(cols, dtype="<i4").tobytes())
    return "sha256:" + digest.hexdigest()


@dataclass
class CompactProblem:
    """A QUBO as arrays: constant + linear.x + sum_k values[k] x[rows[k]] x[cols[k]].

    ``pattern_key`` names the (rows, cols) pattern (see the module notes); a decoded request that
    left rows and cols out has them None until the service resolves the key.

    Example:
        >>> CompactProblem.from_arrays([0], [1], [2.0], linear=[-1.0, -1.0])
    """

    num_variables: int
    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    linear: np.ndarray | None = None
    constant: float = 0.0
    pattern_key: str | None = None

    @classmethod
    def from_arrays(cls, rows: Any, cols: Any, values: Any, linear: Any = None,
                    constant: float = 0.0, num_variables: int | None = None) -> CompactProblem:
        """From coupling triplets (and optional dense linear terms); the size defaults to one more
        than the largest index."""
        r = np.asarray(rows, dtype=np.int64).ravel()
        c = np.asarray(cols, dtype=np.int64).ravel()
        v = np.asarray(values, dtype=np.float64).ravel()
        h = None if linear is None else np.asarray(linear, dtype=np.float64).ravel()
        if num_variables is None:
            largest = max(int(r.max(initial=-1)), int(c.max(initial=-1)))
            num_variables = max(largest + 1, 0 if h is None else h.size)
        return cls(int(num_variables), r, c, v, h, float(constant))

    def to_wire(self, with_pattern: bool = True) -> dict[str, Any]:
        """The problem's msgpack map; ``with_pattern=False`` leaves rows and cols out (the
        problem must have a ``pattern_key`` the service holds)."""
        wire: dict[str, Any] = {
            "num_variables": int(self.num_variables), "constant": float(self.constant),
            "linear": None if self.linear is None else encode_array(self.linear),
            "rows": None, "cols": None, "values": encode_array(self.values)}
        if self.pattern_key is not None:
            wire["pattern_key"] = self.pattern_key
        elif not with_pattern:
            raise ValueError("only a problem with a pattern_key can leave rows and cols out")
        if with_pattern:
            rows, cols = self.rows, self.cols
            if self.num_variables < 2**31 and rows.dtype != np.int32:
                rows, cols = rows.astype(np.int32), cols.astype(np.int32)
            wire["rows"], wire["cols"] = encode_array(rows), encode_array(cols)
        return wire

    @classmethod
    def from_wire(cls, obj: Any, name: str = "problem") -> CompactProblem:
        if not isinstance(obj, Mapping):
            raise CompactFormatError(f"{name} must be a map")
        try:
            n = obj["num_variables"]
        except KeyError:
            raise CompactFormatError(f"{name}: num_variables is missing") from None
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise CompactFormatError(f"{name}: num_variables must be a positive integer")
        constant = obj.get("constant", 0.0)
        if not isinstance(constant, int | float) or isinstance(constant, bool):
            raise CompactFormatError(f"{name}: constant must be a number")
        key = obj.get("pattern_key")
        if key is not None and not (isinstance(key, str) and 0 < len(key) <= 128):
            raise CompactFormatError(f"{name}: pattern_key must be a string of at most 128 characters")
        values = decode_array(obj.get("values"), f"{name}.values")
        linear = None if obj.get("linear") is None else decode_array(obj["linear"], f"{name}.linear")
        if linear is not None and linear.ndim != 1:
            raise CompactFormatError(f"{name}.linear must be 1-D")
        if values.ndim != 1:
            raise CompactFormatError(f"{name}.values must be 1-D")
        if key is not None and obj.get("rows") is None and obj.get("cols") is None:
            return cls(n, None, None, values, linear, float(constant), key)  # type: ignore[arg-type]
        rows = decode_array(obj.get("rows"), f"{name}.rows")
        cols = decode_array(obj.get("cols"), f"{name}.cols")
        for label, arr in (("rows", rows), ("cols", cols)):
            if arr.dtype.kind not in "iu":
                raise CompactFormatError(f"{name}.{label} must be an integer array, got {arr.dtype}")
        if not (rows.ndim == cols.ndim == 1 and rows.size == cols.size == values.size):
            raise CompactFormatError(f"{name}: rows, cols and values must be 1-D of equal length")
        return cls(n, rows, cols, values, linear, float(constant), key)


@dataclass
class CompactInequalities:
    """Linear inequalities as triplets: sum_k coefficient[k] x[variable[k]] over the entries of
    constraint c, plus constant[c], must be <= 0; ``weights`` are the DA's lambdas."""

    constraint: np.ndarray
    variable: np.ndarray
    coefficient: np.ndarray
    constant: np.ndarray
    weights: np.ndarray

    @property
    def num_constraints(self) -> int:
        return int(self.constant.size)

    def to_wire(self) -> dict[str, Any]:
        return {"constraint": encode_array(np.asarray(self.constraint, dtype=np.int64)),
                "variable": encode_array(np.asarray(self.variable, dtype=np.int64)),
                "coefficient": encode_array(np.asarray(self.coefficient, dtype=np.float64)),
                "constant": encode_array(np.asarray(self.constant, dtype=np.float64)),
                "lambda": encode_array(np.asarray(self.weights, dtype=np.float64))}

    @classmethod
    def from_wire(cls, obj: Any, num_variables: int) -> CompactInequalities:
        """Decode and check the shapes and indices (numbers are checked by the service)."""
        if not isinstance(obj, Mapping):
            raise CompactFormatError("inequalities must be a map")
        arrays = {key: decode_array(obj.get(key), f"inequalities.{key}")
                  for key in ("constraint", "variable", "coefficient", "constant", "lambda")}
        if any(a.ndim != 1 for a in arrays.values()):
            raise CompactFormatError("inequalities: every array must be 1-D")
        con, var = arrays["constraint"], arrays["variable"]
        count = arrays["constant"].size
        if not (con.size == var.size == arrays["coefficient"].size) or arrays["lambda"].size != count:
            raise CompactFormatError("inequalities: constraint, variable and coefficient must have equal "
                                 "lengths, constant and lambda one entry per constraint")
        for label, arr, bound in (("constraint", con, count), ("variable", var, num_variables)):
            if arr.dtype.kind not in "iu":
                raise CompactFormatError(f"inequalities.{label} must be an integer array")
            if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= bound):
                raise CompactFormatError(f"inequalities.{label}: indices must lie in 0..{bound - 1}")
        return cls(con.astype(np.int64), var.astype(np.int64),
                   arrays["coefficient"].astype(np.float64), arrays["constant"].astype(np.float64),
                   arrays["lambda"].astype(np.float64))


@dataclass
class CompactRequest:
    """A problem, the DA solver key and its parameter block (a plain dict of DA field names)."""

    problem: CompactProblem
    solver: str = "fujitsuDA2"
    parameters: dict[str, Any] = field(default_factory=dict)
    penalty: CompactProblem | None = None
    api_version: str | None = None
    #: The starting state (n,) of 0/1 as an array: the compact form of the block's
    #: ``guidance_config`` (one byte a variable instead of a map of n string keys).
    guidance_state: np.ndarray | None = None
    #: DA3 linear inequality constraints (solved natively by the engine).
    inequalities: CompactInequalities | None = None


def encode_request(problem: CompactProblem, solver: str = "fujitsuDA2",
                   parameters: Mapping[str, Any] | None = None, *,
                   penalty: CompactProblem | None = None, api_version: str | None = None,
                   guidance_state: Any = None, with_pattern: bool = True,
                   inequalities: CompactInequalities | None = None) -> bytes:
    """The msgpack body for ``POST /spinout/v1/solve`` (and its async twin); ``with_pattern=False``
    sends a problem with a ``pattern_key`` without its rows and cols."""
    return msgpack.packb(request_map(problem, solver, parameters, penalty=penalty,
                                     api_version=api_version, guidance_state=guidance_state,
                                     with_pattern=with_pattern, inequalities=inequalities),
                         use_bin_type=True)


def request_map(problem: CompactProblem, solver: str = "fujitsuDA2",
                parameters: Mapping[str, Any] | None = None, *,
                penalty: CompactProblem | None = None, api_version: str | None = None,
                guidance_state: Any = None, with_pattern: bool = True,
                inequalities: CompactInequalities | None = None) -> dict[str, Any]:
    """The request's msgpack map before packing (a store may add its own keys to it)."""
    body = {"format": REQUEST_FORMAT, "solver": solver, "parameters": dict(parameters or {}),
            **problem.to_wire(with_pattern), "penalty": None if penalty is None else penalty.to_wire(),
            "api_version": api_version}
    if guidance_state is not None:
        body["guidance_state"] = encode_array(np.asarray(guidance_state, dtype=np.uint8).ravel())
    if inequalities is not None:
        body["inequalities"] = inequalities.to_wire()
    return body


def decode_request(body: bytes) -> CompactRequest:
    """Parse a compact request; CompactFormatError with a message on anything malformed."""
    return request_from_map(unpack_map(body))


def request_from_map(obj: dict[str, Any]) -> CompactRequest:
    """A request from its unpacked msgpack map (keys it does not know are ignored)."""
    if obj.get("format", REQUEST_FORMAT) != REQUEST_FORMAT:
        raise CompactFormatError(f"unknown format {obj.get('format')!r}; expected {REQUEST_FORMAT!r}")
    solver = obj.get("solver", "fujitsuDA2")
    params = obj.get("parameters") or {}
    if not isinstance(solver, str) or not isinstance(params, Mapping):
        raise CompactFormatError("solver must be a string and parameters a map")
    penalty = obj.get("penalty")
    version = obj.get("api_version")
    problem = CompactProblem.from_wire(obj)
    guidance = None
    if obj.get("guidance_state") is not None:
        guidance = decode_array(obj["guidance_state"], "guidance_state")
        if guidance.shape != (problem.num_variables,) or guidance.dtype.kind not in "biu" \
                or not np.all((guidance == 0) | (guidance == 1)):
            raise CompactFormatError(f"guidance_state must be {problem.num_variables} values of 0/1")
        guidance = guidance.astype(np.uint8)
    inequalities = None
    if obj.get("inequalities") is not None:
        inequalities = CompactInequalities.from_wire(obj["inequalities"], problem.num_variables)
    return CompactRequest(problem, solver, dict(params),
                          None if penalty is None else CompactProblem.from_wire(penalty, "penalty"),
                          version if isinstance(version, str) else None, guidance, inequalities)


# ------------------------------------------------------------------------------------- replies
@dataclass
class CompactReply:
    """A solve's answer: states (k, n) uint8 sorted by energy ascending, and its bookkeeping.

    ``timing`` is in seconds: queue, setup, anneal, solve (setup + anneal), total.
    """

    status: str = "Done"
    states: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint8))
    energies: np.ndarray = field(default_factory=lambda: np.zeros(0))
    frequencies: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    penalty_energies: np.ndarray | None = None
    timing: dict[str, float] = field(default_factory=dict)
    #: (seconds, energy) or (seconds, energy, penalty_energy) at each improvement of the best.
    progress: list[tuple[float, ...]] = field(default_factory=list)
    stop_reason: str = "completed"
    job_id: str | None = None
    message: str | None = None

    @property
    def num_variables(self) -> int:
        return int(self.states.shape[1]) if self.states.ndim == 2 else 0


def encode_reply(reply: CompactReply) -> bytes:
    states = np.asarray(reply.states, dtype=np.uint8)
    if states.ndim != 2:
        states = states.reshape(len(states), -1) if states.size else states.reshape(0, 0)
    body = {"format": REPLY_FORMAT, "status": reply.status, "job_id": reply.job_id,
            "message": reply.message, "num_variables": int(states.shape[1]),
            "states": encode_array(pack_states(states)),
            "energies": encode_array(np.asarray(reply.energies, dtype=np.float64)),
            "frequencies": encode_array(np.asarray(reply.frequencies, dtype=np.int64)),
            "penalty_energies": None if reply.penalty_energies is None
            else encode_array(np.asarray(reply.penalty_energies, dtype=np.float64)),
            "timing": {k: float(v) for k, v in reply.timing.items()},
            "progress": [[float(v) for v in entry] for entry in reply.progress],
            "stop_reason": reply.stop_reason}
    return msgpack.packb(body, use_bin_type=True)


def decode_reply(body: bytes) -> CompactReply:
    obj = unpack_map(body)
    if obj.get("format") != REPLY_FORMAT:
        raise CompactFormatError(f"not a {REPLY_FORMAT} reply")
    n = int(obj.get("num_variables") or 0)
    packed = decode_array(obj["states"], "states")
    penalty = obj.get("penalty_energies")
    return CompactReply(
        status=str(obj.get("status")),
        states=unpack_states(packed, n) if packed.size else np.zeros((packed.shape[0], n), np.uint8),
        energies=decode_array(obj["energies"], "energies"),
        frequencies=decode_array(obj["frequencies"], "frequencies"),
        penalty_energies=None if penalty is None else decode_array(penalty, "penalty_energies"),
        timing=dict(obj.get("timing") or {}),
        progress=[tuple(float(v) for v in entry) for entry in obj.get("progress") or []],
        stop_reason=str(obj.get("stop_reason", "completed")),
        job_id=obj.get("job_id"), message=obj.get("message"))


def unpack_map(body: bytes) -> dict[str, Any]:
    """A msgpack body that must be a map; CompactFormatError otherwise."""
    try:
        obj = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise CompactFormatError(f"the body is not valid msgpack: {exc}") from None
    if not isinstance(obj, dict):
        raise CompactFormatError("the body must be a msgpack map")
    return obj
