"""The solve audit: every m-th solve, every cheap solver and the configured annealer on the SAME
problem, with the same start and the same groups.

One record per audited solve (``AuditRecord.as_json``): the energy each solver reached, its gap
to the best found, its solve time, the Hamming distance between the annealer's and top-K's
masks, and the realised drop rate of the annealer's mask per layer. The study's decision rule
(a) reads these records (``trainer.study_stats.energy_verdict``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.engine import BinaryQuadraticProblem, KHotGroups

from .mask_solvers import CHEAP_SOLVERS, cheap_solver, solve_in_groups

#: The key of the configured annealer in an audit record.
ANNEALER = "annealer"


def relative_gap(energy: float, best: float) -> float:
    """(E - E_best) / max(|E_best|, tiny): 0 for the best, positive above it."""
    return (energy - best) / max(abs(best), 1e-12)


@dataclass
class AuditRecord:
    """One audited solve."""

    solve_index: int
    step: int
    energies: dict[str, float]
    seconds: dict[str, float]
    hamming_annealer_topk: int
    drop_rate: list[float]

    def as_json(self) -> dict[str, Any]:
        best = min(self.energies.values())
        return {"solve": self.solve_index, "step": self.step,
                "energy": {k: round(v, 6) for k, v in self.energies.items()},
                "gap": {k: round(relative_gap(v, best), 8) for k, v in self.energies.items()},
                "seconds": {k: round(v, 6) for k, v in self.seconds.items()},
                "hamming_annealer_topk": self.hamming_annealer_topk,
                "drop_rate": [round(r, 4) for r in self.drop_rate]}


class SolveAuditor:
    """Runs the cheap solvers beside the annealer every ``every``-th solve.

    Args:
        every: audit solves 0, every, 2 x every, ...; 0 turns the audit off.
        layer_slices: where each candidate layer sits in the state (for the drop rates).
        names: the cheap solvers to run (default all of :data:`CHEAP_SOLVERS`).
    """

    def __init__(self, every: int, layer_slices: Sequence[slice],
                 names: Sequence[str] = CHEAP_SOLVERS) -> None:
        if every < 0:
            raise ValueError(f"audit_every must be >= 0, got {every}")
        self.every = every
        self.layer_slices = list(layer_slices)
        self.solvers = {name: cheap_solver(name) for name in names} if every else {}
        self.records: list[dict[str, Any]] = []

    def due(self, solve_index: int) -> bool:
        return self.every > 0 and solve_index % self.every == 0

    def audit(self, problem: BinaryQuadraticProblem, initial: np.ndarray, seed: int,
              groups: KHotGroups | None, annealer_state: np.ndarray, annealer_seconds: float,
              solve_index: int, step: int) -> AuditRecord:
        """Run every cheap solver on ``problem`` and record it with the annealer's answer."""
        states = {ANNEALER: np.asarray(annealer_state, dtype=np.uint8)}
        seconds = {ANNEALER: float(annealer_seconds)}
        for name, solver in self.solvers.items():
            t0 = time.perf_counter()
            state, _ = solve_in_groups(solver, problem, initial, seed, groups=groups)
            seconds[name] = time.perf_counter() - t0
            states[name] = state
        energies = problem.energies(np.stack(list(states.values())))
        topk = states.get("topk")
        hamming = int(np.count_nonzero(topk != states[ANNEALER])) if topk is not None else -1
        record = AuditRecord(solve_index, step, {k: float(e) for k, e in zip(states, energies)}, seconds,
                             hamming, [100.0 * (1.0 - float(states[ANNEALER][sl].mean()))
                                       for sl in self.layer_slices])
        self.records.append(record.as_json())
        return record

    def close(self) -> None:
        for solver in self.solvers.values():
            solver.close()
