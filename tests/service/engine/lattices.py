"""Toroidal grid spin glasses for the engine's tests (the G-set's grids in miniature)."""

from __future__ import annotations

import itertools

import numpy as np

from service.engine import BinaryQuadraticProblem


def torus(rows: int, cols: int, seed: int, field: float = 0.0, storage: str = "sparse") -> BinaryQuadraticProblem:
    """A toroidal grid spin glass, +-1 couplings, optional Gaussian fields of scale ``field``."""
    rng = np.random.default_rng(seed)
    n = rows * cols
    j = np.zeros((n, n))
    for r, c in itertools.product(range(rows), range(cols)):
        i = r * cols + c
        for k in (r * cols + (c + 1) % cols, ((r + 1) % rows) * cols + c):
            a, b = min(i, k), max(i, k)
            j[a, b] = rng.choice([-1.0, 1.0])
    return BinaryQuadraticProblem.from_ising(field * rng.standard_normal(n), j, storage=storage)


def ground_energy(problem: BinaryQuadraticProblem) -> float:
    """The lowest energy of a problem of up to ~24 variables, every state enumerated."""
    n = problem.num_variables
    codes = np.arange(2**n, dtype=np.uint32)
    best = np.inf
    for chunk in np.array_split(codes, 16):
        states = ((chunk[:, None] >> np.arange(n, dtype=np.uint32)) & 1).astype(np.uint8)
        best = min(best, float(problem.energies(states).min()))
    return best
