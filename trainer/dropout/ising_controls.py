"""Controls of the Ising-Dropout study: what is left of the annealer's masks when the energy's
structure or the mask's placement is destroyed.

``shuffled-couplings``
    the couplings permuted inside each block (layer a with layer b, a <= b) before solving: the
    same coupling values and the same linear field, but no unit pair keeps its own coupling.
    If accuracy survives this, the couplings carried no information.
``shuffled-mask``
    the solver's mask permuted inside each layer: the same per-layer counts, units chosen blind.
``other-batch``
    the mask solved on a different mini-batch than the one it trains on (the variant keeps the
    batch of the previous solve point and solves on it; see ``ising.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from service.engine import BinaryQuadraticProblem

CONTROLS = ("none", "shuffled-couplings", "shuffled-mask", "other-batch")


def shuffle_couplings(problem: BinaryQuadraticProblem, layer_of: np.ndarray,
                      rng: np.random.Generator) -> BinaryQuadraticProblem:
    """The problem with its coupling values permuted inside each layer block, kept symmetric.

    Args:
        problem: the energy.
        layer_of: (n,) the layer (any integer label) of each variable; a block is an unordered
            pair of labels.
        rng: the permutation's randomness.
    """
    layer_of = np.asarray(layer_of, dtype=np.int64)
    if layer_of.shape != (problem.num_variables,):
        raise ValueError(f"layer_of needs {problem.num_variables} entries, got {layer_of.shape}")
    rows, cols, vals = problem.to_triplets()
    a, b = layer_of[rows], layer_of[cols]
    block = np.minimum(a, b) * (int(layer_of.max()) + 1) + np.maximum(a, b)
    order = np.argsort(block, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(block[order]) != 0, True])
    shuffled = vals.copy()
    for lo, hi in zip(starts[:-1], starts[1:]):
        idx = order[lo:hi]
        shuffled[idx] = vals[rng.permutation(idx)]
    n = problem.num_variables
    csr = sp.csr_array((np.concatenate([shuffled, shuffled]),
                        (np.concatenate([rows, cols]), np.concatenate([cols, rows]))), shape=(n, n))
    couplings = csr if problem.is_sparse else csr.toarray()
    return BinaryQuadraticProblem(linear=np.asarray(problem.linear, dtype=np.float64).copy(),
                                  couplings=couplings, constant=float(problem.constant))


def shuffle_mask(state: np.ndarray, layer_slices: Sequence[slice], rng: np.random.Generator) -> np.ndarray:
    """A copy of ``state`` with each layer's entries permuted (its count unchanged)."""
    out = np.array(state, dtype=np.uint8).reshape(-1).copy()
    for sl in layer_slices:
        out[sl] = rng.permutation(out[sl])
    return out
