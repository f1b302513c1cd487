"""Exact window moves for problems on a 2D periodic lattice (the G-set's toroidal grids).

On a sparse frustrated lattice a cold replica holds domain walls that single flips cannot move:
each step of a wall costs as much as the wall gains once it has moved. A *window move* takes a
block of ``width`` x ``length`` sites, holds every site outside it fixed, and sets the block to
its lowest-energy configuration given that boundary, found exactly by dynamic programming along
the block (a transfer matrix over the ``width`` sites of its last column: 2^width states, one
site added at a time, so a block of m sites costs m 2^width steps). Every wall segment inside the
block moves to its best place at once, whatever the barrier between; the energy never rises.

The lattice is recognised from the couplings alone: ``n = rows x cols`` variables numbered row
by row (variable ``r cols + c`` at row r, column c), every coupling between horizontal
neighbours (c, c + 1 mod cols) or vertical ones (r, r + 1 mod rows). That is how the G-set
(rudy's ``-toroidal_grid_2D``) and the usual lattice generators number sites; a lattice numbered
otherwise is not recognised and the solver runs without window moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import scipy.sparse as sp

from .kernels import _XORSHIFT_STAR, _xorshift
from .problem import BinaryQuadraticProblem

#: Sites across a window (the transfer matrix has 2^WINDOW_WIDTH states).
WINDOW_WIDTH = 10
#: Longest window along the lattice: bounds the backtrack's memory (width x length x 2^width
#: bytes) on long thin lattices; a side up to this long gets one window per strip.
MAX_WINDOW_LENGTH = 512
#: Smallest side a lattice needs for window moves (a window leaves one row/column outside it).
MIN_LATTICE_SIDE = 4


@dataclass(frozen=True)
class Torus:
    """A QUBO on a ``rows`` x ``cols`` periodic lattice.

    ``right[i]`` is the coupling between site i = (r, c) and (r, c + 1 mod cols), ``down[i]``
    the one between (r, c) and (r + 1 mod rows, c) (0 where the edge is absent); ``linear`` the
    QUBO's linear coefficients.
    """

    rows: int
    cols: int
    right: np.ndarray
    down: np.ndarray
    linear: np.ndarray

    @classmethod
    def detect(cls, problem: BinaryQuadraticProblem) -> Torus | None:
        """The lattice the problem's couplings lie on, or None when they do not lie on one."""
        n = problem.num_variables
        if not problem.is_sparse or n < MIN_LATTICE_SIDE * MIN_LATTICE_SIDE:
            return None
        coo = sp.coo_array(problem.couplings)
        upper = coo.row < coo.col
        i = coo.row[upper].astype(np.int64)
        j = coo.col[upper].astype(np.int64)
        w = np.asarray(coo.data[upper], dtype=np.float64)
        if i.size == 0:
            return None
        # The column count is the most common index step other than 1 (the vertical edges).
        candidates, counts = np.unique(j - i, return_counts=True)
        counts[candidates <= 1] = 0
        for cols in candidates[np.argsort(-counts, kind="stable")][:2]:
            torus = cls._on_lattice(n, int(cols), i, j, w, problem.linear)
            if torus is not None:
                return torus
        return None

    @classmethod
    def _on_lattice(cls, n: int, cols: int, i: np.ndarray, j: np.ndarray, w: np.ndarray,
                    linear: np.ndarray) -> Torus | None:
        if n % cols:
            return None
        rows = n // cols
        if rows < MIN_LATTICE_SIDE or cols < MIN_LATTICE_SIDE:
            return None
        ri, ci = np.divmod(i, cols)
        rj, cj = np.divmod(j, cols)
        # i < j: a right edge is (c, c + 1) in a row, or the row's wrap (c = cols - 1 to 0).
        # The site each edge leaves rightwards (or downwards) from, -1 for none.
        right_from = np.select([(ri == rj) & (cj == ci + 1), (ri == rj) & (ci == 0) & (cj == cols - 1)],
                               [i, j], -1)
        down_from = np.select([(ci == cj) & (rj == ri + 1), (ci == cj) & (ri == 0) & (rj == rows - 1)],
                              [i, j], -1)
        if np.any((right_from < 0) & (down_from < 0)):
            return None
        # A CSR upper triangle holds each pair once, so each site gets at most one of each.
        right = np.zeros(n)
        down = np.zeros(n)
        right[right_from[right_from >= 0]] = w[right_from >= 0]
        down[down_from[down_from >= 0]] = w[down_from >= 0]
        return cls(rows, cols, right, down, np.ascontiguousarray(linear, dtype=np.float64))

    def window_scratch(self, width: int = WINDOW_WIDTH, replicas: int = 1
                       ) -> tuple[np.ndarray, np.ndarray]:
        """(values, choices) buffers for ``replicas`` windows up to ``width`` across at once."""
        size = 0
        for across, along in ((self.rows, self.cols), (self.cols, self.rows)):
            w = min(width, across - 1)
            size = max(size, w * min(along - 1, MAX_WINDOW_LENGTH) << w)
        return np.zeros((replicas, 1 << width)), np.zeros((replicas, size), np.uint8)


@nb.njit(cache=True, nogil=True)
def _site(torus_rows: int, torus_cols: int, transposed: bool, r0: int, c0: int, a: int, b: int) -> int:
    """Window coordinates (a across, b along) to a site index."""
    if transposed:
        return ((r0 + b) % torus_rows) * torus_cols + (c0 + a) % torus_cols
    return ((r0 + a) % torus_rows) * torus_cols + (c0 + b) % torus_cols


@nb.njit(cache=True, nogil=True)
def optimise_window(rows: int, cols: int, right: np.ndarray, down: np.ndarray, linear: np.ndarray,
                    state: np.ndarray, transposed: bool, r0: int, c0: int, width: int, length: int,
                    values: np.ndarray, choices: np.ndarray) -> float:
    """Set the ``width`` x ``length`` window at (r0, c0) of ``state`` (uint8, n) to its lowest
    energy given the sites outside it; returns the energy change (<= 0 up to rounding).
    ``values`` holds 2^width floats, ``choices`` width x length x 2^width bytes (the backtrack).

    Not ``transposed``: ``width`` rows from r0 by ``length`` columns from c0; ``transposed``:
    ``length`` rows by ``width`` columns. The window must not wrap onto itself (width and length
    below the lattice's sides in their directions).
    """
    num_states = 1 << width
    for s in range(num_states):
        values[s] = 0.0
    old = 0.0
    k = 0
    for b in range(length):
        for a in range(width):
            site = _site(rows, cols, transposed, r0, c0, a, b)
            # Couplings to the neighbours across (a - 1, a + 1) and along (b - 1, b + 1).
            prev_a = _site(rows, cols, transposed, r0, c0, a - 1, b)
            next_a = _site(rows, cols, transposed, r0, c0, a + 1, b)
            prev_b = _site(rows, cols, transposed, r0, c0, a, b - 1)
            next_b = _site(rows, cols, transposed, r0, c0, a, b + 1)
            if transposed:
                j_prev_a, j_next_a, j_prev_b, j_next_b = right[prev_a], right[site], down[prev_b], down[site]
            else:
                j_prev_a, j_next_a, j_prev_b, j_next_b = down[prev_a], down[site], right[prev_b], right[site]
            # Field from the fixed sites outside the window.
            fixed = linear[site]
            if a == 0:
                fixed += j_prev_a * state[prev_a]
            if a == width - 1:
                fixed += j_next_a * state[next_a]
            if b == 0:
                fixed += j_prev_b * state[prev_b]
            if b == length - 1:
                fixed += j_next_b * state[next_b]
            # The window's current energy, counted the same way (each inner edge once).
            if state[site]:
                old += fixed
                if a > 0:
                    old += j_prev_a * state[prev_a]
                if b > 0:
                    old += j_prev_b * state[prev_b]
            ja = j_prev_a if a > 0 else 0.0
            jb = j_prev_b if b > 0 else 0.0
            bit = 1 << a
            below = a - 1
            row_choices = choices[k * num_states:(k + 1) * num_states]
            for s in range(num_states):
                if s & bit:
                    continue
                s1 = s | bit
                v0 = values[s]   # the site before along b was 0
                v1 = values[s1]  # ... was 1
                if v1 < v0:
                    values[s] = v1
                    row_choices[s] = 1
                else:
                    row_choices[s] = 0
                cost = fixed
                if a > 0 and (s >> below) & 1:
                    cost += ja
                up0 = v0 + cost
                up1 = v1 + cost + jb
                if up1 < up0:
                    values[s1] = up1
                    row_choices[s1] = 1
                else:
                    values[s1] = up0
                    row_choices[s1] = 0
            k += 1
    best = 0
    for s in range(1, num_states):
        if values[s] < values[best]:
            best = s
    new = values[best]
    s = best
    for b in range(length - 1, -1, -1):
        for a in range(width - 1, -1, -1):
            k -= 1
            site = _site(rows, cols, transposed, r0, c0, a, b)
            state[site] = (s >> a) & 1
            y = choices[k * num_states + s]
            s = (s & ~(1 << a)) | (y << a)
    return float(new - old)


@nb.njit(cache=True, nogil=True)
def window_pass(rows: int, cols: int, right: np.ndarray, down: np.ndarray, linear: np.ndarray,
                state: np.ndarray, width: int, rng: np.uint64, values: np.ndarray,
                choices: np.ndarray) -> tuple[float, np.uint64]:
    """One pass of window moves over ``state``: the lattice tiled by windows ``width`` across,
    rows then columns, from random offsets; returns (energy change, generator state)."""
    total = 0.0
    for transposed in (False, True):
        across = cols if transposed else rows
        along = rows if transposed else cols
        w = min(width, across - 1)
        length = min(along - 1, MAX_WINDOW_LENGTH)
        # One window per strip leaves one line outside it; longer sides take several.
        pieces = 1 if length == along - 1 else -(-along // length)
        rng = _xorshift(rng)
        start_a = int((rng * _XORSHIFT_STAR) >> np.uint64(33)) % across
        start_b = int((rng * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(33)) % along
        for t in range(-(-across // w)):
            a0 = (start_a + t * w) % across
            for p in range(pieces):
                # Each strip's windows start 7 sites further along: the line left out moves.
                b0 = (start_b + t * 7 + p * length) % along
                r0, c0 = (b0, a0) if transposed else (a0, b0)
                total += optimise_window(rows, cols, right, down, linear, state, transposed, r0, c0,
                                         w, length, values, choices)
    return total, rng


@nb.njit(cache=True, nogil=True, parallel=True)
def window_passes(rows: int, cols: int, right: np.ndarray, down: np.ndarray, linear: np.ndarray,
                  states: np.ndarray, width: int, rngs: np.ndarray, values: np.ndarray,
                  choices: np.ndarray) -> None:
    """``window_pass`` on every replica (row of ``states``), replicas in parallel; each has its
    own generator (``rngs``, updated) and scratch (``values[r]``, ``choices[r]``)."""
    for r in nb.prange(states.shape[0]):
        _, rngs[r] = window_pass(rows, cols, right, down, linear, states[r], width, rngs[r],
                                 values[r], choices[r])
