"""Solver results: the distinct best states seen, their exact energies and how often each came up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from .constraints import LinearInequalities
from .problem import BinaryQuadraticProblem


@dataclass
class AnnealResult:
    """What a solve returns.

    Attributes:
        states: (k, n) uint8, distinct, sorted by energy ascending.
        energies: (k,) exact float64 energies, recomputed from the original coefficients.
        frequencies: (k,) how many runs/replicas/harvests ended on each state.
        timing: seconds: ``setup`` (validation, tuning), ``anneal`` (kernels) and ``total``.
        progress: (seconds since start, best energy) at each improvement of the best, or
            (seconds, energy, penalty energy) when the solver was given ``energy_parts``.
        stop_reason: "completed", "time_limit", "target_energy" or "cancelled".
        info: what the solver chose (beta range, moves, swap rates, ...), for logs and tests.
    """

    states: np.ndarray
    energies: np.ndarray
    frequencies: np.ndarray
    timing: dict[str, float] = field(default_factory=dict)
    progress: list[tuple[float, ...]] = field(default_factory=list)
    stop_reason: str = "completed"
    info: dict[str, object] = field(default_factory=dict)

    @property
    def best_state(self) -> np.ndarray:
        best: np.ndarray = self.states[0]
        return best

    @property
    def best_energy(self) -> float:
        return float(self.energies[0])

    @property
    def num_variables(self) -> int:
        return int(self.states.shape[1])

    def __len__(self) -> int:
        return int(self.states.shape[0])

    def rescored(self, problem: BinaryQuadraticProblem) -> AnnealResult:
        """The same states scored by another problem over the same variables (e.g. the original
        coefficients after annealing a rounded copy), re-sorted by that energy."""
        energies = np.atleast_1d(problem.energies(self.states))
        order = np.lexsort((-self.frequencies, energies))
        return AnnealResult(self.states[order], energies[order], self.frequencies[order],
                           dict(self.timing), list(self.progress), self.stop_reason, dict(self.info))


#: Up to this many rows one numba call merges them (16 runs: ~5 us; a dict of packed rows took
#: ~30, np.unique ~75), beyond it np.unique's O(R log R) sort.
FEW_ROWS = 64


@njit(cache=True)  # keeps the GIL: a ~5 us call (see kernels._compile's serial_nogil)
def _distinct_few(states: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of each distinct row's first occurrence, summed counts) in the order np.unique
    gives packed rows: lexicographic on the 0/1 rows is bytewise on their big-endian packing.
    A stable insertion sort, so the first of equal rows is its first occurrence."""
    rows, n = states.shape
    order = np.arange(rows)
    for a in range(1, rows):
        k = order[a]
        b = a - 1
        while b >= 0:
            j = order[b]
            c = 0
            while c < n and states[k, c] == states[j, c]:
                c += 1
            if c == n or states[k, c] > states[j, c]:
                break  # k is not below j
            order[b + 1] = j
            b -= 1
        order[b + 1] = k
    first = np.empty(rows, dtype=np.int64)
    merged = np.empty(rows, dtype=np.int64)
    m = 0
    for a in range(rows):
        k = order[a]
        same = m > 0
        if same:
            j = first[m - 1]
            for c in range(n):
                if states[k, c] != states[j, c]:
                    same = False
                    break
        if same:
            merged[m - 1] += counts[k]
        else:
            first[m] = k
            merged[m] = counts[k]
            m += 1
    return first[:m], merged[:m]


def distinct_states(states: np.ndarray, counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Merge identical rows: (unique states, summed counts)."""
    states = np.ascontiguousarray(states, dtype=np.uint8)
    if counts is None:
        counts = np.ones(states.shape[0], dtype=np.int64)
    if states.shape[0] <= 1:  # nothing to merge (np.unique over rows costs ~1 ms)
        return states.copy(), np.asarray(counts, dtype=np.int64).copy()
    if states.shape[0] <= FEW_ROWS:
        first, merged = _distinct_few(states, np.asarray(counts, dtype=np.int64))
        return states[first], merged
    packed = np.packbits(states, axis=1)
    # Each packed row as one opaque bytes value: 1-D np.unique sorts them bytewise, 4-20x faster
    # than np.unique(axis=0) and in the same order.
    rows = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    merged = np.bincount(inverse.ravel(), weights=counts, minlength=first.size).astype(np.int64)
    return states[first], merged


def build_result(problem: BinaryQuadraticProblem, states: np.ndarray, counts: np.ndarray | None,
                 limit: int | None = None, constraints: LinearInequalities | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct states with exact energies (the constraints' penalty included), sorted
    ascending (with constraints: the feasible states first), at most ``limit`` of them."""
    uniq, freq = distinct_states(states, counts)
    energies = np.atleast_1d(problem.energies(uniq))
    if constraints is None:
        order = np.lexsort((-freq, energies))
    else:
        energies = energies + constraints.penalty(uniq)
        order = np.lexsort((-freq, energies, constraints.violated(uniq)))
    if limit is not None:
        order = order[:limit]
    return uniq[order], energies[order], freq[order]


class DistinctPool:
    """The ``capacity`` lowest-energy distinct states seen, with how often each was seen."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: dict[bytes, list[Any]] = {}  # key -> [energy, count, state]

    def add(self, states: np.ndarray, energies: np.ndarray) -> None:
        for row, e in zip(states, energies):
            key = np.packbits(row).tobytes()
            entry = self._seen.get(key)
            if entry is not None:
                entry[1] += 1
                continue
            if len(self._seen) >= self.capacity:
                worst_key = max(self._seen, key=lambda k: self._seen[k][0])
                if self._seen[worst_key][0] <= e:
                    continue
                del self._seen[worst_key]
            self._seen[key] = [float(e), 1, row.copy()]

    def __len__(self) -> int:
        return len(self._seen)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        entries = list(self._seen.values())
        states = np.array([entry[2] for entry in entries], dtype=np.uint8)
        counts = np.array([entry[1] for entry in entries], dtype=np.int64)
        return states, counts
