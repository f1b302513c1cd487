"""The ``k_hot_groups`` extension of the DA parameter blocks as the engine's ``KHotGroups``, both
ways (``k_hot_groups`` reads a block, ``k_hot_spec`` writes one).

Unlike the DA3 one-hot groups (penalty terms, service.jobs.one_hot), k-hot groups are kept by
the engine natively: inside a group a move swaps one set and one unset member, so every state
the annealer visits holds each group's count and reported energies are the problem's own.

Layout: consecutive variables; group g covers ``numbers[g]`` variables after group g - 1, the
first starting at ``start`` or, without it, right after the DA3 one-hot groups (variable 0 on
every other block); ``start`` may instead list each group's first variable. A request is
refused (400) when the groups run past the problem, overlap a one-hot group, hold a
``fixed_config`` bit, or come with ``inequalities``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from client.wire.da import KHotGroupsSpec
from service.engine.groups import KHotGroups

__all__ = ["k_hot_groups", "k_hot_spec"]


def _one_hot_end(params: Mapping[str, Any]) -> int:
    """The first variable after the DA3 one-hot groups (0 without them)."""
    return sum(sum((params.get(key) or {}).get("numbers") or [])
               for key in ("one_way_one_hot_groups", "two_way_one_hot_groups"))


def k_hot_groups(params: Mapping[str, Any], num_variables: int,
                 has_inequalities: bool = False) -> KHotGroups | None:
    """The groups a validated parameter block asks for (None without any); ValueError with a
    message naming the field when they do not fit the problem."""
    raw = params.get("k_hot_groups")
    if not raw or not raw.get("numbers"):
        return None
    spec = KHotGroupsSpec.model_validate(raw)
    one_hot_end = _one_hot_end(params)
    firsts = spec.firsts(one_hot_end)
    start, end = firsts[0], firsts[-1] + spec.numbers[-1]
    if end > num_variables:
        raise ValueError(f"k_hot_groups cover variables up to {end - 1} but the problem has "
                         f"{num_variables} variables")
    if start < one_hot_end:
        raise ValueError(f"k_hot_groups start at variable {start}, inside the one-hot groups "
                         f"(variables 0..{one_hot_end - 1}); groups must be disjoint")
    if has_inequalities:
        raise ValueError("k_hot_groups cannot be combined with inequalities; express the "
                         "inequalities in penalty_binary_polynomial or drop the groups")
    groups = KHotGroups.from_lists([range(first, first + size)
                                    for first, size in zip(firsts, spec.numbers)], spec.counts)
    fixed = np.array([int(k) for k in params.get("fixed_config") or {}], dtype=np.int64)
    inside = fixed[np.isin(fixed, groups.members)]
    if inside.size:
        raise ValueError(f"fixed_config: variable {int(inside.min())} lies inside k_hot_groups; "
                         "fix only variables outside the groups")
    return groups


def k_hot_spec(groups: KHotGroups) -> dict[str, Any]:
    """The ``k_hot_groups`` block field whose ``k_hot_groups`` is ``groups``: each group's first
    variable listed in ``start``. ValueError when a group's members are not one ascending run of
    consecutive variables or the groups are not in ascending order (the wire cannot say so)."""
    sizes = groups.sizes()
    firsts = groups.members[groups.indptr[:-1]]
    runs = groups.members - np.repeat(firsts, sizes) == np.arange(groups.members.size) \
        - np.repeat(groups.indptr[:-1], sizes)
    if not runs.all():
        g = int(np.searchsorted(groups.indptr, int(np.flatnonzero(~runs)[0]), side="right")) - 1
        raise ValueError(f"k-hot group {g} is not a run of consecutive variables in ascending "
                         "order; the k_hot_groups extension carries such runs only")
    if np.any(firsts[1:] < firsts[:-1] + sizes[:-1]):
        raise ValueError("k-hot groups must be listed in ascending order of their variables "
                         "for the k_hot_groups extension")
    spec = KHotGroupsSpec(numbers=sizes.tolist(), counts=groups.counts.tolist(),
                          start=firsts.tolist())
    return spec.model_dump(mode="json")
