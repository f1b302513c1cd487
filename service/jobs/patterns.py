"""Coupling patterns: a problem's (rows, cols) sent once, then only its values.

A client that solves many problems with the same couplings (the trainer: one QUBO per
mini-batch on a fixed layer structure) names the pattern by its content hash
(``client.wire.compact.pattern_key``). The first request carries rows and cols; the service checks
the hash, keeps the pattern here (least recently used first out, bounded in bytes) and precomputes
the symmetric CSR structure with the slot each triplet's value goes to. Later requests carry the
key and the values only: a third of the bytes on the wire (float32 values), and the engine's
problem is built by one gather into CSR order instead of a sort or a dense build. A key the service does not hold (after
a restart or an eviction) is answered 409, and the client resends with rows and cols.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from client.wire.compact import pattern_key
from service.engine import BinaryQuadraticProblem, kernels

__all__ = ["RegisteredPattern", "PatternCache", "UnknownPatternError"]


class UnknownPatternError(LookupError):
    """A request names a pattern this service does not hold (answered 409)."""


@dataclass(frozen=True, eq=False)
class RegisteredPattern:
    """One registered pattern and its precomputed symmetric CSR layout.

    Attributes:
        key: the content hash.
        num_variables: n.
        rows, cols: the triplets' indices as registered (int32, read-only).
        indptr, indices: the CSR structure of the symmetric coupling matrix (sorted, no repeats).
        diagonal: triplets with i == j (their values are linear terms).
        source: without repeated pairs, the triplet each CSR slot takes its value from (one
            gather); None when two triplets share a pair.
        entry_slot, entry_owner: with repeated pairs, the CSR slot of each (i, j) and (j, i)
            entry and its triplet (values add up via bincount); None otherwise.
    """

    key: str
    num_variables: int
    rows: np.ndarray
    cols: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    diagonal: np.ndarray
    source: np.ndarray | None
    entry_slot: np.ndarray | None
    entry_owner: np.ndarray | None

    @classmethod
    def build(cls, key: str, num_variables: int, rows: np.ndarray, cols: np.ndarray) -> RegisteredPattern:
        n = int(num_variables)
        rows = np.ascontiguousarray(rows, dtype=np.int32)
        cols = np.ascontiguousarray(cols, dtype=np.int32)
        diagonal = rows == cols
        off = np.flatnonzero(~diagonal)
        i, j = rows[off].astype(np.int64), cols[off].astype(np.int64)
        # Number each distinct unordered pair, then lay out the symmetric CSR once.
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        pair_ids, pair_of = np.unique(lo * n + hi, return_inverse=True)
        a, b = pair_ids // n, pair_ids % n
        m = pair_ids.size
        tags = np.concatenate([np.arange(m), np.arange(m) + m]).astype(np.float64) + 1.0
        csr = sp.csr_array((tags, (np.concatenate([a, b]), np.concatenate([b, a]))), shape=(n, n))
        csr.sort_indices()
        slot_of_tag = np.empty(2 * m, dtype=np.int64)
        slot_of_tag[csr.data.astype(np.int64) - 1] = np.arange(csr.nnz)
        # Off-diagonal triplet k at (i, j) has pair p: (lo, hi) is tag p, (hi, lo) tag m + p.
        entry_slot: np.ndarray | None = np.concatenate([slot_of_tag[pair_of], slot_of_tag[pair_of + m]])
        entry_owner: np.ndarray | None = np.concatenate([off, off])
        source: np.ndarray | None = None
        if m == off.size:  # no repeated pair: every slot has exactly one owner
            source = np.empty(csr.nnz, dtype=np.int32)
            source[entry_slot] = entry_owner
            entry_slot = entry_owner = None
        for arr in (rows, cols, diagonal, source, entry_slot, entry_owner):
            if arr is not None:
                arr.flags.writeable = False
        return cls(key, n, rows, cols, csr.indptr.astype(np.int32), csr.indices.astype(np.int32),
                   diagonal, source, entry_slot, entry_owner)

    @cached_property
    def has_diagonal(self) -> bool:
        """Whether some triplets are (i, i): linear terms."""
        return bool(self.diagonal.any())

    @property
    def repeated(self) -> bool:
        """Whether two triplets share a pair."""
        return self.source is None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.rows, self.cols, self.indptr, self.indices, self.diagonal,
                                      self.source, self.entry_slot, self.entry_owner) if a is not None)

    def problem(self, values: np.ndarray, linear: np.ndarray | None, constant: float) -> BinaryQuadraticProblem:
        """The engine's problem for these values (float64 CSR, the pattern's layout); the values
        and linear terms must already be checked finite (``parse_compact_request`` does)."""
        n = self.num_variables
        h = np.zeros(n, dtype=np.float64)
        if linear is not None:
            h[: linear.size] += linear
        if self.has_diagonal:
            np.add.at(h, self.rows[self.diagonal], values[self.diagonal])
        data: np.ndarray
        if self.source is not None:
            if values.dtype not in (np.float32, np.float64):  # the gather is compiled for these
                values = values.astype(np.float64)
            data = np.empty(self.source.size, dtype=np.float64)
            kernels.gather(np.ascontiguousarray(values), self.source, data)
        else:
            assert self.entry_slot is not None and self.entry_owner is not None  # set without source
            weights = np.asarray(values, dtype=np.float64)[self.entry_owner]
            data = np.bincount(self.entry_slot, weights=weights, minlength=self.indices.size)
        return BinaryQuadraticProblem.from_trusted_csr(h, data, self.indices, self.indptr, constant)


class PatternCache:
    """Registered patterns, least recently used evicted first once ``max_bytes`` is exceeded."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._patterns: OrderedDict[str, RegisteredPattern] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # compact bodies are parsed on the event loop or a thread

    def __len__(self) -> int:
        return len(self._patterns)

    def get(self, key: str) -> RegisteredPattern:
        with self._lock:
            pattern = self._patterns.get(key)
            if pattern is None:
                raise UnknownPatternError(
                    f"pattern_key {key!r} is not known to this service (restarted, or the "
                    "pattern was evicted); resend the request with rows and cols")
            self._patterns.move_to_end(key)
            return pattern

    def register(self, key: str, num_variables: int, rows: np.ndarray, cols: np.ndarray) -> RegisteredPattern:
        """Check the key against the content and keep the pattern; ValueError on a mismatch."""
        actual = pattern_key(num_variables, rows, cols)
        if actual != key:
            raise ValueError(f"pattern_key {key!r} does not match rows and cols (their key is {actual!r})")
        with self._lock:
            known = self._patterns.get(key)
            if known is not None:
                self._patterns.move_to_end(key)
                return known
        pattern = RegisteredPattern.build(key, num_variables, rows, cols)
        with self._lock:
            if key not in self._patterns and pattern.nbytes <= self.max_bytes:
                self._patterns[key] = pattern
                self._bytes += pattern.nbytes
                while self._bytes > self.max_bytes:
                    _, old = self._patterns.popitem(last=False)
                    self._bytes -= old.nbytes
        return pattern
