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
    sparse = problem.is_sparse
    # Dense problems stay dense (a CSR round trip costs more than the small solves it precedes).
    couplings: np.ndarray | sp.csr_array = (sp.csr_array(problem.couplings, dtype=np.float64) if sparse
                                            else np.asarray(problem.couplings, dtype=np.float64))
    values = couplings.data if sparse else couplings
    max_j = float(np.abs(values).max(initial=0.0))
    max_h = float(np.abs(problem.linear).max(initial=0.0))
    limits = [COUPLER_MAX / max_j] if max_j > 0 else []
    if max_h > 0:
        limits.append(BIAS_MAX / max_h)
    scale = min(limits) if limits else 1.0
    scaled: np.ndarray | sp.csr_array
    if sparse:
        scaled = couplings * scale
        scaled.data = np.rint(scaled.data)
        scaled.eliminate_zeros()
    else:
        scaled = np.rint(couplings * scale)
    linear = np.rint(problem.linear * scale)
    if sparse:
        reduced = BinaryQuadraticProblem.from_parts(linear, scaled, problem.constant * scale, "sparse",
                                                    problem.couplings.dtype)
    else:  # finite, symmetric and zero on the diagonal as the checked original: no second check
        reduced = BinaryQuadraticProblem._unchecked(
            linear, np.ascontiguousarray(scaled, dtype=problem.couplings.dtype), problem.constant * scale)
    return reduced, scale
