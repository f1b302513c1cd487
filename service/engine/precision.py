"""The first-generation DA's fixed-point precision: 16-bit couplers, 26-bit biases.

With ``expert_mode`` false the DA scales and rounds the coefficients to its hardware precision
before annealing; energies are still reported in the original units (recomputed from the
original coefficients), so only the search sees the rounded problem.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .problem import BinaryQuadraticProblem

COUPLER_MAX = 2**15 - 1
BIAS_MAX = 2**25 - 1


def to_hardware_precision(problem: BinaryQuadraticProblem) -> tuple[BinaryQuadraticProblem, float]:
    """The problem scaled so the largest coupling fits 16 bits and the largest bias 26 bits,
    rounded to integers; returns it and the scale factor (hardware units per original unit)."""
    couplings = sp.csr_array(problem.couplings, dtype=np.float64)
    max_j = float(np.abs(couplings.data).max(initial=0.0))
    max_h = float(np.abs(problem.linear).max(initial=0.0))
    limits = [COUPLER_MAX / max_j] if max_j > 0 else []
    if max_h > 0:
        limits.append(BIAS_MAX / max_h)
    scale = min(limits) if limits else 1.0
    scaled = couplings * scale
    scaled.data = np.rint(scaled.data)
    scaled.eliminate_zeros()
    linear = np.rint(problem.linear * scale)
    storage = "sparse" if problem.is_sparse else "dense"
    reduced = BinaryQuadraticProblem.from_parts(linear, scaled, problem.constant * scale, storage,
                                                   problem.couplings.dtype)
    return reduced, scale
