"""DA ``binary_polynomial`` terms of degree <= 2 as arrays: the one place they become a QUBO.

Term k is ``coefficients[k] * x[first[k]] * x[second[k]]`` with -1 for an absent index: (-1, -1)
is a constant, (i, -1), (-1, i) and (i, i) are linear (x_i * x_i = x_i), (i, j) a coupling.
The client (a term list it encodes), the service (the terms it parses) and the engine
(``BinaryQuadraticProblem.from_polynomial``) all split terms here.
"""

from __future__ import annotations

import numpy as np

__all__ = ["split_terms"]


def split_terms(coefficients: np.ndarray, first: np.ndarray, second: np.ndarray,
                num_variables: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """(linear (n,), rows, cols, values, constant) of checked term arrays (indices < n)."""
    c = np.asarray(coefficients, dtype=np.float64)
    a = np.asarray(first, dtype=np.int64)
    b = np.asarray(second, dtype=np.int64)
    constant_terms = (a < 0) & (b < 0)
    linear_terms = ~constant_terms & ((a < 0) | (b < 0) | (a == b))
    pairs = ~constant_terms & ~linear_terms
    linear = np.bincount(np.maximum(a[linear_terms], b[linear_terms]), weights=c[linear_terms],
                         minlength=num_variables).astype(np.float64)
    return linear, a[pairs], b[pairs], c[pairs], float(c[constant_terms].sum())
