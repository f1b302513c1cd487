"""DA3 one-hot groups as penalty terms: the hardware enforces them, the engine cannot, so the
service adds lambda (sum_{i in G} x_i - 1)^2 for every group G to the annealed problem.

Groups are consecutive variables from index 0: first the ``one_way_one_hot_groups`` (sizes
n1, n2, ...: exactly one bit set in each), then the ``two_way_one_hot_groups`` (sizes k*k: a
k x k block, row-major, with exactly one bit set in every row and every column). lambda is
1 + the largest single-flip energy change of the problem (|h_i| + sum_j |J_ij|), so from any
state that breaks a group some single flip lowers the energy: every local minimum the annealer
ends in satisfies the groups. The penalty is zero on feasible states, so their reported energies
are the problem's own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from client.wire.compact import CompactProblem

__all__ = ["add_one_hot_penalties", "flip_swing", "one_hot_groups"]


def one_hot_groups(params: Mapping[str, Any], num_variables: int) -> list[np.ndarray]:
    """The groups (index arrays) a fujitsuDA3 block asks for; ValueError if they do not fit."""
    one_way = (params.get("one_way_one_hot_groups") or {}).get("numbers") or []
    two_way = (params.get("two_way_one_hot_groups") or {}).get("numbers") or []
    for name, sizes in (("one_way_one_hot_groups", one_way), ("two_way_one_hot_groups", two_way)):
        if any(size < 1 for size in sizes):
            raise ValueError(f"{name}: group sizes must be >= 1, got {min(sizes)}")
    covered = sum(one_way) + sum(two_way)
    if covered > num_variables:  # checked before anything of that size is allocated
        raise ValueError(f"the one-hot groups cover {covered} variables but the problem has {num_variables}")
    bad = [size for size in two_way if math.isqrt(size) ** 2 != size]
    if bad:
        raise ValueError(f"two_way_one_hot_groups: sizes must be squares k*k, got {bad[0]}")
    groups: list[np.ndarray] = []
    start = 0
    for size in one_way:
        groups.append(np.arange(start, start + size))
        start += size
    for size in two_way:
        k = math.isqrt(size)
        block = np.arange(start, start + size).reshape(k, k)
        groups.extend(list(block))      # rows
        groups.extend(list(block.T))    # columns
        start += size
    if start > num_variables:
        raise ValueError(f"the one-hot groups cover {start} variables but the problem has {num_variables}")
    return groups


def flip_swing(problem: CompactProblem) -> np.ndarray:
    """Per variable, the largest energy change a flip of it can make: |h_i| + sum_j |J_ij|."""
    n = problem.num_variables
    linear = np.zeros(n) if problem.linear is None else problem.linear
    weights = np.abs(problem.values)
    return np.abs(linear) + np.bincount(problem.rows, weights=weights, minlength=n)[:n] \
        + np.bincount(problem.cols, weights=weights, minlength=n)[:n]


def add_one_hot_penalties(problem: CompactProblem, groups: list[np.ndarray],
                          other_swing: np.ndarray | None = None) -> float:
    """Add the groups' penalties to ``problem`` in place; returns lambda.

    ``other_swing``: per variable, how much the rest of the annealed energy (a weighted penalty
    polynomial, inequality penalties) can change with one flip; lambda exceeds that too.
    """
    n = problem.num_variables
    linear = np.zeros(n) if problem.linear is None else problem.linear
    swing = flip_swing(problem)
    if other_swing is not None:
        swing[: other_swing.size] += other_swing[:n]
    lam = 1.0 + float(swing.max(initial=0.0))
    rows, cols = [problem.rows], [problem.cols]
    values = [problem.values]
    linear = linear.copy()
    constant = problem.constant
    for group in groups:
        linear[group] -= lam
        i, j = np.triu_indices(len(group), 1)
        rows.append(group[i])
        cols.append(group[j])
        values.append(np.full(i.size, 2.0 * lam))
        constant += lam
    problem.rows = np.concatenate(rows).astype(np.int64)
    problem.cols = np.concatenate(cols).astype(np.int64)
    problem.values = np.concatenate(values)
    problem.linear = linear
    problem.constant = constant
    return lam
