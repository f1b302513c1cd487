"""What a solve returns on the client side: numpy arrays, not the DA's per-bit JSON objects."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from pydantic import TypeAdapter, ValidationError

from .errors import SpinOutError
from .wire.da import ProgressEntry, SolutionEntry

#: The reply's solutions and progress, read through the wire models.
_SOLUTIONS = TypeAdapter(list[SolutionEntry])
_PROGRESS = TypeAdapter(list[ProgressEntry])


class Solution(NamedTuple):
    """One solution: a (n,) uint8 state, its energy and how many runs ended on it."""

    state: np.ndarray
    energy: float
    frequency: int


@dataclass(eq=False)
class SolveResult:
    """Solutions of one solve, best first.

    Attributes:
        states: (k, n) uint8 0/1 assignments, sorted by energy ascending.
        energies: (k,) float64.
        frequencies: (k,) int64: how many runs/replicas ended on each state.
        penalty_energies: (k,) float64 for v3+ solvers (zeros when the service sent none).
        timing: seconds, from the service's milliseconds: ``solve_time``, ``total_elapsed_time``,
            ``cpu_time``, ``queue_time``, ``anneal_time`` (those the reply had).
        progress: (seconds, energy) per improvement of the best (v3+ solvers).
        status: the DA job status of the reply ("Done", or "Deleted" from a DELETE poll).
        job_id: the asynchronous job's id, None for a synchronous solve.
        labels: variable labels in column order when the problem was a labelled dimod BQM.
        raw: the reply's ``qubo_solution`` object minus the solutions (for fields we do not map).
    """

    states: np.ndarray
    energies: np.ndarray
    frequencies: np.ndarray
    penalty_energies: np.ndarray | None = None
    timing: dict[str, float] = field(default_factory=dict)
    progress: list[tuple[float, float]] = field(default_factory=list)
    status: str = "Done"
    job_id: str | None = None
    labels: tuple[Hashable, ...] | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.states.shape[0])

    @property
    def num_variables(self) -> int:
        return int(self.states.shape[1])

    @property
    def best(self) -> Solution:
        """The lowest-energy solution."""
        if len(self) == 0:
            raise SpinOutError("the service returned no solutions", job_id=self.job_id)
        return Solution(self.states[0], float(self.energies[0]), int(self.frequencies[0]))

    @property
    def best_state(self) -> np.ndarray:
        return self.best.state

    @property
    def best_energy(self) -> float:
        return self.best.energy

    def to_sampleset(self) -> Any:
        """A ``dimod.SampleSet`` (BINARY) with energies and ``num_occurrences``; needs dimod."""
        try:
            import dimod
        except ImportError as exc:  # pragma: no cover - dimod is a dev dependency here
            raise SpinOutError("to_sampleset() needs dimod: pip install dimod") from exc
        labels = list(self.labels) if self.labels is not None else list(range(self.num_variables))
        info = {"timing": dict(self.timing), "progress": list(self.progress), "job_id": self.job_id}
        # int8, not uint8: a later change_vartype to SPIN computes 2x - 1
        return dimod.SampleSet.from_samples((self.states.astype(np.int8), labels), vartype=dimod.BINARY,
                                            energy=self.energies, info=info,
                                            num_occurrences=self.frequencies)


def _millis(value: Any) -> float | None:
    """DA timings are integer ms (v1/v2) or strings of ms (v3+): both to seconds."""
    try:
        return float(value) / 1000.0
    except (TypeError, ValueError):
        return None


def parse_timing(timing: Mapping[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    if not timing:
        return out
    for key, value in timing.items():
        if isinstance(value, Mapping):
            out.update(parse_timing(value))
        else:
            seconds = _millis(value)
            if seconds is not None:
                out[key] = seconds
    return out


def _validated(adapter: TypeAdapter[Any], qubo_solution: Mapping[str, Any], key: str,
               job_id: str | None) -> Any:
    try:
        return adapter.validate_python(qubo_solution.get(key) or [])
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in (key, *first["loc"]))
        raise SpinOutError(f"the reply is not a DA qubo_solution: {where}: {first['msg']}",
                           job_id=job_id) from None


def parse_solution(qubo_solution: Mapping[str, Any], *, num_variables: int | None = None,
                   job_id: str | None = None, status: str = "Done",
                   labels: Sequence[Hashable] | None = None) -> SolveResult:
    """The DA ``qubo_solution`` object as a ``SolveResult``.

    ``configuration`` maps bit index strings to booleans; bits the service left out are 0.
    """
    solutions = _validated(_SOLUTIONS, qubo_solution, "solutions", job_id)
    progress_entries = _validated(_PROGRESS, qubo_solution, "progress", job_id)
    width = int(num_variables or 0)
    parsed: list[tuple[np.ndarray, np.ndarray]] = []
    for sol in solutions:
        config = sol.configuration
        idx = np.fromiter((int(k) for k in config.keys()), dtype=np.int64, count=len(config))
        val = np.fromiter(config.values(), dtype=np.uint8, count=len(config))
        if idx.size:
            width = max(width, int(idx.max()) + 1)
        parsed.append((idx, val))
    states = np.zeros((len(solutions), width), dtype=np.uint8)
    for row, (idx, val) in enumerate(parsed):
        states[row, idx] = val
    energies = np.array([s.energy for s in solutions], dtype=np.float64)
    frequencies = np.array([s.frequency for s in solutions], dtype=np.int64)
    penalties = None
    if any(s.penalty_energy is not None for s in solutions):
        penalties = np.array([s.penalty_energy or 0.0 for s in solutions])
    order = np.argsort(energies, kind="stable")
    if not np.array_equal(order, np.arange(order.size)):
        states, energies, frequencies = states[order], energies[order], frequencies[order]
        penalties = None if penalties is None else penalties[order]
    progress = [(p.time, p.energy) for p in progress_entries]
    raw = {k: v for k, v in qubo_solution.items() if k != "solutions"}
    return SolveResult(states, energies, frequencies, penalties, parse_timing(qubo_solution.get("timing")),
                       progress, status, job_id, None if labels is None else tuple(labels), raw)


def parse_compact(reply: Any, *, num_variables: int | None = None, job_id: str | None = None,
                  labels: Sequence[Hashable] | None = None) -> SolveResult:
    """A ``wire.compact.CompactReply`` (arrays already) as a ``SolveResult``.

    Compact timings are seconds under their own names; the DA names are added for consistency.
    """
    states = np.asarray(reply.states, dtype=np.uint8)
    if num_variables and states.shape[1] < num_variables:
        states = np.pad(states, ((0, 0), (0, num_variables - states.shape[1])))
    timing = {k: float(v) for k, v in reply.timing.items()}
    for da_name, name in (("solve_time", "solve"), ("total_elapsed_time", "total"),
                          ("queue_time", "queue"), ("anneal_time", "anneal")):
        if name in timing:
            timing.setdefault(da_name, timing[name])
    penalties = None if reply.penalty_energies is None else np.asarray(reply.penalty_energies, dtype=np.float64)
    return SolveResult(states, np.asarray(reply.energies, dtype=np.float64),
                       np.asarray(reply.frequencies, dtype=np.int64), penalties, timing,
                       [(t, e) for t, e, *_ in reply.progress], reply.status,
                       job_id or reply.job_id,
                       None if labels is None else tuple(labels),
                       {"stop_reason": reply.stop_reason, "transport": "compact"})
