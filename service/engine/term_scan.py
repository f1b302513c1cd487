"""The DA JSON ``binary_polynomial.terms`` array read straight from the request bytes.

A small job's body is ~500 terms; turning them into dicts and lists (orjson) and back into
arrays (numpy) cost ~0.4 ms of interpreter time, held under the GIL while the solver threads
wait for it. Here two numba passes (no GIL) read the bytes instead:

1. ``_locate_terms``: a structural walk (strings skipped with their escapes, depth counted)
   finds the span of the array at key path binary_polynomial -> terms;
2. ``_scan_terms``: parses that array strictly as ``[{"c": number, "p": [i, j]}, ...]`` (either
   spelling of each key, any order, any whitespace, degree 0 to 2), giving the index columns and
   the coefficient tokens copied into one JSON array, which orjson turns into floats: the same
   correctly rounded values as the general path.

Anything else (other keys, a key given twice, both spellings in one term, escapes in keys,
degree > 2, non-integer indices, malformed JSON) makes the scan step aside: the general path in
``parsing`` then parses the body as before and gives the same answers and the same errors. The
rest of the body (the array cut out) is still parsed and validated by that code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson
from numba import njit
from numpy.typing import NDArray

__all__ = ["ScannedTerms", "scan_binary_polynomial"]

_QUOTE, _BACKSLASH, _COLON, _COMMA = 34, 92, 58, 44
_LBRACE, _RBRACE, _LBRACKET, _RBRACKET = 123, 125, 91, 93
_KEY_BP = np.frombuffer(b"binary_polynomial", dtype=np.uint8)
_KEY_TERMS = np.frombuffer(b"terms", dtype=np.uint8)
_KEY_COEFFICIENT = np.frombuffer(b"coefficient", dtype=np.uint8)
_KEY_POLYNOMIALS = np.frombuffer(b"polynomials", dtype=np.uint8)
_C, _P = ord("c"), ord("p")
#: Indices of more digits could overflow int64; the general path reports them.
_MAX_INDEX_DIGITS = 18

#: The request body as bytes (the kernels' input), and a column of term indices.
_Bytes = NDArray[np.uint8]
_Indices = NDArray[np.int64]


@njit(cache=True, nogil=True, inline="always")
def _skip_ws(raw: _Bytes, pos: int, end: int) -> int:
    while pos < end and (raw[pos] == 32 or raw[pos] == 10 or raw[pos] == 13 or raw[pos] == 9):
        pos += 1
    return pos


@njit(cache=True, nogil=True)
def _string_end(raw: _Bytes, pos: int, end: int) -> int:
    """Position after the string opening at ``pos`` (a quote), or -1 when it never closes."""
    pos += 1
    while pos < end:
        c = raw[pos]
        if c == _BACKSLASH:
            pos += 2
        elif c == _QUOTE:
            return pos + 1
        else:
            pos += 1
    return -1


@njit(cache=True, nogil=True)
def _equals(raw: _Bytes, start: int, stop: int, key: _Bytes) -> bool:
    if stop - start != key.shape[0]:
        return False
    for k in range(key.shape[0]):
        if raw[start + k] != key[k]:
            return False
    return True


@njit(cache=True, nogil=True)
def _locate_terms(raw: _Bytes) -> tuple[int, int]:
    """(start, end) of the terms array's bytes, or (-1, -1) when the scan must step aside.

    Only positions matter here, not validity: orjson parses everything outside the span later.
    A key is a string followed by a colon; a key at depth 1 or 2 with a backslash, or a second
    binary_polynomial or terms key, hands the body to the general path (duplicate keys and
    escaped spellings follow orjson's rules there). binary_polynomial is a key at depth 1, its
    object's keys are at depth 2 and the terms array's items at depth 3.
    """
    n = raw.shape[0]
    depth = 0
    pos = 0
    in_bp = False  # inside the binary_polynomial object
    seen_bp = False
    start = -1
    end = -1
    while pos < n:
        c = raw[pos]
        if c == _QUOTE:
            stop = _string_end(raw, pos, n)
            if stop < 0:
                return -1, -1
            after = _skip_ws(raw, stop, n)
            if after < n and raw[after] == _COLON and (depth == 1 or depth == 2):
                for k in range(pos + 1, stop - 1):
                    if raw[k] == _BACKSLASH:
                        return -1, -1
                value = _skip_ws(raw, after + 1, n)
                if depth == 1 and _equals(raw, pos + 1, stop - 1, _KEY_BP):
                    if seen_bp or value >= n or raw[value] != _LBRACE:
                        return -1, -1
                    seen_bp = in_bp = True
                elif depth == 2 and in_bp and _equals(raw, pos + 1, stop - 1, _KEY_TERMS):
                    if start >= 0 or value >= n or raw[value] != _LBRACKET:
                        return -1, -1
                    start = value
            pos = stop
            continue
        if c == _LBRACE or c == _LBRACKET:
            depth += 1
        elif c == _RBRACE or c == _RBRACKET:
            if depth == 3 and c == _RBRACKET and start >= 0 and end < 0:
                end = pos + 1
            if depth == 2 and c == _RBRACE:
                in_bp = False
            depth -= 1
        pos += 1
    if start < 0 or end < 0:
        return -1, -1
    return start, end


@njit(cache=True, nogil=True)
def _digits_end(raw: _Bytes, pos: int, end: int) -> int:
    """Position after the run of ASCII digits starting at ``pos``."""
    while pos < end and 48 <= raw[pos] <= 57:
        pos += 1
    return pos


@njit(cache=True, nogil=True)
def _number_end(raw: _Bytes, pos: int, end: int) -> int:
    """End of the JSON number at ``pos`` (strict grammar), or -1."""
    if pos < end and raw[pos] == 45:  # -
        pos += 1
    if pos >= end or not 48 <= raw[pos] <= 57:
        return -1
    pos = pos + 1 if raw[pos] == 48 else _digits_end(raw, pos, end)  # a leading 0 stands alone
    if pos < end and raw[pos] == 46:  # . and at least one digit
        after = _digits_end(raw, pos + 1, end)
        if after == pos + 1:
            return -1
        pos = after
    if pos < end and (raw[pos] == 101 or raw[pos] == 69):  # e or E, a sign, at least one digit
        pos += 1
        if pos < end and (raw[pos] == 43 or raw[pos] == 45):
            pos += 1
        after = _digits_end(raw, pos, end)
        if after == pos:
            return -1
        pos = after
    return pos


@njit(cache=True, nogil=True)
def _key_kind(raw: _Bytes, start: int, stop: int) -> int:
    """1 for a coefficient key (c, coefficient), 2 for an index key (p, polynomials), else 0."""
    if stop - start == 1:
        return 1 if raw[start] == _C else (2 if raw[start] == _P else 0)
    if _equals(raw, start, stop, _KEY_COEFFICIENT):
        return 1
    if _equals(raw, start, stop, _KEY_POLYNOMIALS):
        return 2
    return 0


@njit(cache=True, nogil=True)
def _after_item(raw: _Bytes, pos: int, end: int, close: int) -> tuple[int, bool]:
    """After an item of a list or object: (start of the next item, False) past a comma,
    (position after ``close``, True) at the end, (-1, False) otherwise."""
    pos = _skip_ws(raw, pos, end)
    if pos < end and raw[pos] == _COMMA:
        return _skip_ws(raw, pos + 1, end), False
    if pos < end and raw[pos] == close:
        return pos + 1, True
    return -1, False


@njit(cache=True, nogil=True)
def _index_list(raw: _Bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(position after it, first, second) of the plain index list at ``pos`` ('[', up to two
    non-negative integers, ']'; -1 for an absent index); position -1 for anything else."""
    if pos >= end or raw[pos] != _LBRACKET:
        return -1, -1, -1
    pos = _skip_ws(raw, pos + 1, end)
    if pos < end and raw[pos] == _RBRACKET:
        return pos + 1, -1, -1
    a = b = -1
    for degree in range(3):
        if degree == 2:
            return -1, -1, -1  # degree > 2: the general path reduces or refuses it
        digits = pos
        pos = _digits_end(raw, pos, end)
        length = pos - digits
        if length == 0 or length > _MAX_INDEX_DIGITS or (length > 1 and raw[digits] == 48):
            return -1, -1, -1  # not a plain index (sign, leading zero, too long)
        value = 0
        for k in range(digits, pos):
            value = value * 10 + (raw[k] - 48)
        if pos < end and (raw[pos] == 46 or raw[pos] == 101 or raw[pos] == 69):
            return -1, -1, -1  # 1.0 or 1e0: the general path decides
        if degree == 0:
            a = value
        else:
            b = value
        pos, closed = _after_item(raw, pos, end, _RBRACKET)
        if pos < 0 or closed:
            break
    return pos, a, b


@njit(cache=True, nogil=True)
def _scan_terms(raw: _Bytes, start: int, end: int) -> tuple[bool, _Indices, _Indices, _Bytes]:
    """(ok, first, second, coefficient tokens as one JSON array) of the terms array.

    ``first``/``second`` are -1 where a term has fewer indices. ``ok`` is False whenever the
    array is not exactly the plain form (the general path then takes over).
    """
    capacity = (end - start) // 7 + 1  # the shortest term, {"c":0}, is 7 bytes
    first = np.empty(capacity, dtype=np.int64)
    second = np.empty(capacity, dtype=np.int64)
    numbers = np.empty(end - start + 2, dtype=np.uint8)
    empty = np.empty(0, dtype=np.int64)
    fail = (False, empty, empty, numbers[:0])
    numbers[0] = _LBRACKET
    written = 1
    count = 0
    pos = _skip_ws(raw, start + 1, end)
    if pos >= end or raw[pos] == _RBRACKET:
        return fail  # an empty list: nothing to gain
    done = False
    while not done:  # one term an iteration
        if pos >= end or raw[pos] != _LBRACE:
            return fail
        pos = _skip_ws(raw, pos + 1, end)
        have_c = have_p = closed = False
        a = b = -1
        while not closed:  # one key an iteration
            if pos >= end or raw[pos] != _QUOTE:
                return fail
            stop = _string_end(raw, pos, end)
            if stop < 0:
                return fail
            kind = _key_kind(raw, pos + 1, stop - 1)
            pos = _skip_ws(raw, stop, end)
            if kind == 0 or pos >= end or raw[pos] != _COLON:
                return fail
            pos = _skip_ws(raw, pos + 1, end)
            if kind == 1:
                token_end = _number_end(raw, pos, end)
                if have_c or token_end < 0:
                    return fail
                have_c = True
                if count > 0:
                    numbers[written] = _COMMA
                    written += 1
                numbers[written:written + token_end - pos] = raw[pos:token_end]
                written += token_end - pos
                pos = token_end
            else:
                if have_p:
                    return fail
                have_p = True
                pos, a, b = _index_list(raw, pos, end)
                if pos < 0:
                    return fail
            pos, closed = _after_item(raw, pos, end, _RBRACE)
            if pos < 0:
                return fail
        if not have_c:
            return fail
        first[count] = a
        second[count] = b
        count += 1
        pos, done = _after_item(raw, pos, end, _RBRACKET)
        if pos < 0 or (done and pos != end):
            return fail
    numbers[written] = _RBRACKET
    return True, first[:count], second[:count], numbers[:written + 1]


@njit(cache=True, nogil=True)
def _scan(raw: _Bytes) -> tuple[bool, int, int, _Indices, _Indices, _Bytes]:
    """Both passes in one call: a caller on the event loop gives up and takes back the GIL once
    (taking it back waits for a solver thread's switch interval, ~0.5 ms under load)."""
    start, end = _locate_terms(raw)
    if start < 0:
        empty = np.empty(0, dtype=np.int64)
        return False, start, end, empty, empty, raw[:0]
    ok, first, second, numbers = _scan_terms(raw, start, end)
    return ok, start, end, first, second, numbers


@dataclass(frozen=True, slots=True)
class ScannedTerms:
    """The terms array as (coefficients, first, second) and the body with it cut out."""

    coefficients: np.ndarray
    first: np.ndarray
    second: np.ndarray
    rest: bytes


def scan_binary_polynomial(raw: bytes | bytearray | memoryview) -> ScannedTerms | None:
    """The plain-form binary_polynomial terms of a DA JSON body, or None when the general path
    must parse it (see the module docstring). ``rest`` is the body with ``"terms": []``."""
    ok, start, end, first, second, numbers = _scan(np.frombuffer(raw, dtype=np.uint8))
    if not ok:
        return None
    try:
        values = orjson.loads(numbers.tobytes())
        coefficients = np.array(values, dtype=np.float64)
    except (orjson.JSONDecodeError, OverflowError, ValueError):
        return None  # e.g. an integer beyond 64 bits: the general path says so
    view = bytes(raw)
    return ScannedTerms(coefficients, first, second, view[:start] + b"[]" + view[end:])
