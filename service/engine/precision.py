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
    if problem.is_sparse:
        csr = sp.csr_array(problem.couplings).astype(np.float64, copy=False)
        scale = _scale(csr.data, problem.linear)
        scaled = csr * scale
        scaled.data = np.rint(scaled.data)
        scaled.eliminate_zeros()
        return BinaryQuadraticProblem.from_parts(np.rint(problem.linear * scale), scaled,
                                                 problem.constant * scale, "sparse",
                                                 problem.couplings.dtype), scale
    # Dense problems stay dense (a CSR round trip costs more than the small solves it precedes).
    dense = np.asarray(problem.couplings, dtype=np.float64)
    scale = _scale(dense, problem.linear)
    # Finite, symmetric and zero on the diagonal as the checked original: no second check.
    return BinaryQuadraticProblem._unchecked(
        np.rint(problem.linear * scale),
        np.ascontiguousarray(np.rint(dense * scale), dtype=problem.couplings.dtype),
        problem.constant * scale), scale


def _scale(couplings: np.ndarray, linear: np.ndarray) -> float:
    """Hardware units per original unit: the largest factor under both limits (1 when all 0)."""
    max_j = float(np.abs(couplings).max(initial=0.0))
    max_h = float(np.abs(linear).max(initial=0.0))
    limits = [COUPLER_MAX / max_j] if max_j > 0 else []
    if max_h > 0:
        limits.append(BIAS_MAX / max_h)
    return min(limits) if limits else 1.0
