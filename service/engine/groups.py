"""k-hot groups: disjoint sets of variables that each hold exactly a given number of ones.

A k-hot group is the generalisation of the DA3's one-hot groups (k = 1) that Ising-Dropout's
exact per-layer drop rates need (a layer of n units keeps exactly K of them). The engine keeps
them as a native move, not as a penalty: inside a group a move swaps one set and one unset
member, so every state it visits satisfies every group, and the energy needs no penalty weight
that would have to out-weigh the objective.

Nothing here imports more than numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["KHotGroups"]


# Writable like every other kernel argument (a read-only array is another numba type, compiled
# apart); the kernels never write them.
_NO_GROUPS = (np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64),
              np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))


@dataclass(frozen=True)
class KHotGroups:
    """Group g is ``members[indptr[g]:indptr[g + 1]]`` and holds exactly ``counts[g]`` ones.

    Groups are disjoint; variables in no group are free (single flips).

    Attributes:
        indptr: (G + 1,) int64 offsets into ``members``.
        members: int64 variable indices, group by group.
        counts: (G,) int64, 0 <= counts[g] <= size of group g.
    """

    indptr: np.ndarray
    members: np.ndarray
    counts: np.ndarray

    @classmethod
    def consecutive(cls, sizes: Sequence[int], counts: Sequence[int], start: int = 0) -> KHotGroups:
        """Groups of consecutive variables from ``start``: the first ``sizes[0]`` variables hold
        ``counts[0]`` ones, the next ``sizes[1]`` hold ``counts[1]``, and so on (the layout of the
        DA3's one-hot groups)."""
        sizes_a = np.asarray(sizes, dtype=np.int64).reshape(-1)
        counts_a = np.asarray(counts, dtype=np.int64).reshape(-1)
        if sizes_a.shape != counts_a.shape:
            raise ValueError(f"{sizes_a.size} group sizes but {counts_a.size} counts")
        if np.any(sizes_a < 1):
            raise ValueError("k-hot group sizes must be >= 1")
        indptr = np.concatenate([[0], np.cumsum(sizes_a)]).astype(np.int64)
        members = np.arange(start, start + int(indptr[-1]), dtype=np.int64)
        return cls.from_arrays(indptr, members, counts_a)

    @classmethod
    def from_lists(cls, groups: Sequence[Sequence[int]], counts: Sequence[int]) -> KHotGroups:
        """Groups given as lists of variable indices, one count per group."""
        sizes = [len(g) for g in groups]
        indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        members = (np.concatenate([np.asarray(g, dtype=np.int64) for g in groups])
                   if groups else np.zeros(0, np.int64))
        return cls.from_arrays(indptr, members, counts)

    @classmethod
    def from_arrays(cls, indptr: object, members: object, counts: object) -> KHotGroups:
        """Validated construction: ValueError on overlapping groups, empty groups or counts out
        of range."""
        ip = np.ascontiguousarray(indptr, dtype=np.int64).reshape(-1)
        mem = np.ascontiguousarray(members, dtype=np.int64).reshape(-1)
        cnt = np.ascontiguousarray(counts, dtype=np.int64).reshape(-1)
        if ip.size != cnt.size + 1 or ip[0] != 0 or ip[-1] != mem.size or np.any(np.diff(ip) < 1):
            raise ValueError("k-hot groups: every group needs at least one member")
        if np.any(cnt < 0) or np.any(cnt > np.diff(ip)):
            raise ValueError("k-hot groups: each count must lie between 0 and its group's size")
        if np.any(mem < 0):
            raise ValueError("k-hot groups: variable indices must be >= 0")
        if np.unique(mem).size != mem.size:
            raise ValueError("k-hot groups must be disjoint (a variable is in two groups)")
        return cls(ip, mem, cnt)

    @property
    def num_groups(self) -> int:
        return int(self.counts.size)

    def sizes(self) -> np.ndarray:
        return np.diff(self.indptr)

    def check(self, num_variables: int) -> None:
        """ValueError when a member lies outside a problem of ``num_variables`` variables."""
        if self.members.size and int(self.members.max()) >= num_variables:
            raise ValueError(f"k-hot group member {int(self.members.max())} is outside the "
                             f"problem's {num_variables} variables")

    def group_of(self, num_variables: int) -> np.ndarray:
        """(n,) int64: each variable's group, -1 for free variables."""
        self.check(num_variables)
        out = np.full(num_variables, -1, dtype=np.int64)
        out[self.members] = np.repeat(np.arange(self.num_groups, dtype=np.int64), self.sizes())
        return out

    def weights(self, state: np.ndarray) -> np.ndarray:
        """(G,) the number of ones each group holds in ``state``."""
        x = np.asarray(state).reshape(-1)
        return np.add.reduceat(x[self.members].astype(np.int64), self.indptr[:-1]) \
            if self.num_groups else np.zeros(0, np.int64)

    def satisfied(self, state: np.ndarray) -> bool:
        return bool(np.array_equal(self.weights(state), self.counts))

    def kernel_arrays(self, num_variables: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                         np.ndarray]:
        """``(group_of, indptr, members, counts)`` as the kernels read them (int64, contiguous);
        ValueError when a member lies outside the problem."""
        return (self.group_of(num_variables), self.indptr, self.members, self.counts)

    @staticmethod
    def none_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The kernels' stand-in for "no groups": an empty ``group_of`` selects the free path
        (one shared tuple: the trainer builds replicas thousands of times a run)."""
        return _NO_GROUPS

    def repair(self, state: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A copy of ``state`` with each group at its count: ones switched off (or on) at random
        among the group's surplus (or missing) members; free variables untouched."""
        x = np.array(state, dtype=np.uint8).reshape(-1)
        for g in range(self.num_groups):
            idx = self.members[self.indptr[g]:self.indptr[g + 1]]
            ones = idx[x[idx] == 1]
            zeros = idx[x[idx] == 0]
            surplus = ones.size - int(self.counts[g])
            if surplus > 0:
                x[rng.choice(ones, surplus, replace=False)] = 0
            elif surplus < 0:
                x[rng.choice(zeros, -surplus, replace=False)] = 1
        return x
