"""Linear inequality constraints kept natively by the kernels (the DA3/DA4 ``inequalities``).

Constraint c reads ``lhs_c(x) = sum_i a_ci x_i + b_c <= 0``; a state pays
``lambda_c * max(0, lhs_c(x))`` for it, so the annealed energy is

    E(x) + sum_c lambda_c * max(0, lhs_c(x)).

Why this shape (a linear hinge) and not a squared one or slack bits:
    * it is an exact penalty: once lambda_c exceeds the objective gained per unit of that
      constraint's violation, every minimum of the penalised energy is feasible, while a squared
      hinge is flat near the boundary (a violation of 0.1 costs 0.01 lambda) and needs far larger
      weights to hold;
    * feasible states pay exactly 0, so their energies are the problem's own, and the penalty
      grows with the size of the violation, so the annealer is led back towards feasibility;
    * it costs O(1) per bit per constraint the bit appears in: the kernels keep each replica's
      ``lhs`` (one float per constraint) up to date on every flip, and a trial flip of bit i
      changes the penalty by sum over its constraints of
      ``lambda_c (max(0, lhs_c + (1 - 2 x_i) a_ci) - max(0, lhs_c))``. A slack-bit expansion
      ((lhs + slack)^2) instead couples every pair of the constraint's variables, adds
      log2(range) bits per constraint and turns one constraint into a dense quadratic block.

Nothing here imports more than numpy and scipy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["LinearInequalities", "FEASIBILITY_TOLERANCE"]

#: A left-hand side at most this much above 0 (relative to the constraint's scale) counts as
#: satisfied: float sums of fractional coefficients are not exact.
FEASIBILITY_TOLERANCE = 1e-9


@dataclass(frozen=True)
class LinearInequalities:
    """``matrix @ x + offsets <= 0`` with violation weights ``weights`` (one per constraint).

    Attributes:
        matrix: (C, n) CSR of the variables' coefficients a_ci, duplicates summed.
        offsets: (C,) the constants b_c.
        weights: (C,) lambda_c > 0.
    """

    matrix: sp.csr_array
    offsets: np.ndarray
    weights: np.ndarray

    @classmethod
    def from_arrays(cls, constraint: Any, variable: Any, coefficient: Any, offsets: Any,
                    weights: Any, num_variables: int) -> LinearInequalities:
        """Build from triplets (constraint index, variable index, a) plus one constant and one
        weight per constraint. ValueError on indices out of range, non-finite numbers or
        weights <= 0."""
        c = np.asarray(constraint, dtype=np.int64).ravel()
        v = np.asarray(variable, dtype=np.int64).ravel()
        a = np.asarray(coefficient, dtype=np.float64).ravel()
        b = np.asarray(offsets, dtype=np.float64).ravel()
        w = np.asarray(weights, dtype=np.float64).ravel()
        count = b.size
        if not (c.shape == v.shape == a.shape):
            raise ValueError("constraint, variable and coefficient arrays differ in length")
        if w.size != count:
            raise ValueError(f"{w.size} weights for {count} constraints")
        for name, arr in (("coefficients", a), ("constants", b), ("weights", w)):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"inequality {name} must be finite")
        if np.any(w <= 0):
            raise ValueError("inequality weights (lambda) must be positive")
        if c.size and (c.min() < 0 or c.max() >= count):
            raise ValueError(f"constraint indices must lie in 0..{count - 1}")
        if v.size and (v.min() < 0 or v.max() >= num_variables):
            raise ValueError(f"variable indices must lie in 0..{num_variables - 1}")
        matrix = sp.csr_array((a, (c, v)), shape=(count, num_variables))
        matrix.sum_duplicates()
        return cls(matrix, b, w)

    @property
    def num_constraints(self) -> int:
        return int(self.offsets.size)

    @property
    def num_variables(self) -> int:
        return int(self.matrix.shape[1])

    def lhs(self, states: Any) -> np.ndarray:
        """(k, C) left-hand sides of (k, n) states (or (C,) of one state), in float64."""
        x = np.asarray(states, dtype=np.float64)
        lhs: np.ndarray = (self.matrix @ x.T).T + self.offsets
        return lhs

    def penalty(self, states: Any) -> np.ndarray:
        """sum_c lambda_c max(0, lhs_c) of each state: 0 for a feasible state."""
        penalty: np.ndarray = np.maximum(self.lhs(states), 0.0) @ self.weights
        return penalty

    def violated(self, states: Any) -> np.ndarray | np.bool:
        """Whether each state breaks some constraint (beyond the float tolerance); one bool for
        one state."""
        lhs = np.atleast_2d(self.lhs(states))
        bad: np.ndarray = np.any(lhs > self._tolerance, axis=1)
        if np.ndim(states) > 1:
            return bad
        one: np.bool = bad[0]
        return one

    @cached_property
    def _tolerance(self) -> np.ndarray:
        """Each row's slack for float sums (the solver checks feasibility every harvest)."""
        row_scale: np.ndarray = abs(self.matrix).sum(axis=1)
        tolerance: np.ndarray = FEASIBILITY_TOLERANCE * (1.0 + row_scale + np.abs(self.offsets))
        return tolerance

    def kernel_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(indptr, constraint, coefficient, weights): each variable's constraints in CSC
        order, which is what a flip of one bit walks."""
        csc = sp.csc_array(self.matrix)
        csc.sort_indices()
        return (csc.indptr.astype(np.int64), csc.indices.astype(np.int64),
                csc.data.astype(np.float64), self.weights.astype(np.float64))

    @staticmethod
    def none_arrays(num_variables: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The kernel arrays of no constraints (the kernels then take their unconstrained path)."""
        return (np.zeros(num_variables + 1, dtype=np.int64), np.zeros(0, dtype=np.int64),
                np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.float64))
