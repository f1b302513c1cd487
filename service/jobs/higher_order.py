"""Higher-order (degree > 2) terms for v3+, reduced to a QUBO with auxiliary variables.

Rosenberg's substitution: a product x_a x_b inside a higher-order term is replaced by a new
binary y, and the penalty M (x_a x_b - 2 x_a y - 2 x_b y + 3 y) -- zero when y = x_a x_b, at
least M otherwise -- keeps y honest. Pairs are shared between terms (one y per distinct pair).
M is 1 + the sum of |c| over all higher-order terms, more than any gain a violation could buy.

The service anneals the reduced problem, then (``restore_states``) recomputes every auxiliary
from its pair so the states are consistent, scores them exactly (the penalties are then zero, so
the energy is the original polynomial's), drops the auxiliaries and merges duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["reduce_degree", "restore_states"]


def reduce_degree(terms: Sequence[tuple[float, tuple[int, ...]]], num_variables: int,
                  max_variables: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Quadratise ``terms`` (coefficient, distinct sorted indices, degree > 2).

    Returns (rows, cols, values, linear, aux_pairs, total): pair terms and linear terms (length
    ``total``) to add to the problem, the (a, b) pair each auxiliary stands for, in creation
    order (an auxiliary's pair may hold earlier auxiliaries), and the new number of variables.
    Raises ValueError as soon as the auxiliaries would take the problem past ``max_variables``.
    """
    aux_of: dict[tuple[int, int], int] = {}
    pairs: list[tuple[int, int]] = []
    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    total = num_variables
    for coef, indices in terms:
        current = list(indices)
        while len(current) > 2:
            pair = (current[0], current[1])
            y = aux_of.get(pair)
            if y is None:
                y = total
                total += 1
                if max_variables is not None and total > max_variables:
                    raise ValueError(f"the higher-order terms need auxiliary variables that take the "
                                     f"problem's {num_variables:,} variables past {max_variables:,}")
                aux_of[pair] = y
                pairs.append(pair)
            current = [y, *current[2:]]
        rows.append(current[0])
        cols.append(current[1])
        values.append(float(coef))
    penalty = 1.0 + float(sum(abs(c) for c, _ in terms))
    linear = np.zeros(total)
    for (a, b), y in aux_of.items():
        rows += [a, a, b]
        cols += [b, y, y]
        values += [penalty, -2.0 * penalty, -2.0 * penalty]
        linear[y] += 3.0 * penalty
    pair_array = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64), np.array(values),
            linear, pair_array, total)


def restore_states(states: np.ndarray, aux_pairs: np.ndarray, num_variables: int) -> np.ndarray:
    """Each auxiliary set to the product of its pair (in creation order): consistent states."""
    out = np.array(states, dtype=np.uint8, copy=True)
    for k, (a, b) in enumerate(np.asarray(aux_pairs)):
        out[:, num_variables + k] = out[:, a] & out[:, b]
    return out
