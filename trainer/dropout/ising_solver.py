"""Where Ising-Dropout's QUBOs get solved: the embedded engine (default) or a remote service.

Both run the one schedule ``AnnealBudget.schedule`` defines (an engine ``Annealing``, or a
fixed-temperature ``Sampling`` in Boltzmann mode) through an engine ``Sampler``: the embedded
solver through ``EmbeddedSampler``, the remote one through ``RemoteSampler`` (the schedule as
the ``fujitsuDA`` block ``service.jobs.presets.block_for`` makes of it, k-hot groups as its
``k_hot_groups`` extension). Both answer ``solve(problem, initial, seed, groups=...) ->
(state, timings)``; the timings split the wall time into ``solve`` (the annealer's own time) and
``transport`` (encoding, HTTP and decoding; 0 in-process), so the trainer can report where a
step's time goes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from service.engine import (AnnealResult, Annealing, BinaryQuadraticProblem, EmbeddedSampler,
                            KHotGroups, LinearInequalities, Sampling, Schedule, Stop,
                            TemperatureSchedule, kernels)
from service.engine.solver import EnergyParts, InitialState
from service.jobs.k_hot import k_hot_spec
from service.jobs.presets import block_for


#: A warm-started solve cools from its start temperature T0 to T0 / COOLING (embedded and remote).
COOLING = 100.0


@dataclass
class AnnealBudget:
    """How much annealing each solve gets.

    Attributes:
        num_runs: independent runs per solve (the best state is used).
        num_sweeps: annealing steps per run: Metropolis sweeps (``moves="sweep"``) or the DA's
            parallel trials (``moves="trial"``: every bit tried, at most one flips per step).
        moves: "sweep" (embedded default: cheapest per accepted flip on sparse problems) or
            "trial" (the Digital Annealer's dynamics; what the remote service runs).
        temperature: starting temperature as a fraction of the median |local field| at the
            initial state; None lets the engine derive a full hot-to-cold schedule.
        warm_start: start from the previous state (True) or from all ones (the paper).
        full_sweeps: sweeps of the complete hot-to-cold anneal of the first solve.
        sample_temperature: Boltzmann mode when set: each solve runs one chain for
            ``num_sweeps`` steps (``full_sweeps`` for a ``full`` solve) at this fixed
            temperature, a fraction of the median |local field| at the initial state like
            ``temperature``, and returns the chain's FINAL state (a sample of exp(-E / T) / Z
            over the masks that satisfy the groups) instead of the best it saw.
    """

    num_runs: int = 1
    num_sweeps: int = 10
    full_sweeps: int = 200
    moves: str = "sweep"
    temperature: float | None = 0.1
    warm_start: bool = True
    sample_temperature: float | None = None

    def __post_init__(self) -> None:
        if self.num_runs < 1 or self.num_sweeps < 1 or self.full_sweeps < 1:
            raise ValueError("num_runs, num_sweeps and full_sweeps must be >= 1")
        if self.moves not in ("sweep", "trial"):
            raise ValueError(f"moves must be 'sweep' or 'trial', got {self.moves!r}")
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.sample_temperature is not None:
            if not (self.sample_temperature > 0 and np.isfinite(self.sample_temperature)):
                raise ValueError(f"sample_temperature must be > 0 and finite, got "
                                 f"{self.sample_temperature}")
            if self.num_runs != 1:
                raise ValueError("Boltzmann mode (sample_temperature) runs one chain per solve: "
                                 f"num_runs must be 1, got {self.num_runs}")

    def schedule(self, problem: BinaryQuadraticProblem, initial: np.ndarray,
                 full: bool = False) -> Annealing | Sampling:
        """The anneal of one solve: warm-started, from the start temperature down to a
        hundredth of it over ``num_sweeps`` steps; ``full`` (or ``temperature=None``), the
        engine's own hot-to-cold schedule over ``full_sweeps`` (or ``num_sweeps``) steps.
        In Boltzmann mode, one chain at ``sample_temperature`` (scaled like ``temperature``)
        for as many steps."""
        sweeps = self.full_sweeps if full else self.num_sweeps
        if self.sample_temperature is not None:
            return Sampling(runs=1, sweeps=sweeps, moves=self.moves,
                            temperature=self.sample_temperature * self.field_scale(problem,
                                                                                   initial))
        start = None if full else self.start_temperature(problem, initial)
        if start is None:
            return Annealing(runs=self.num_runs, steps=sweeps, temperature_interval=1,
                             moves=self.moves, keep="QUICK")
        return Annealing(runs=self.num_runs, steps=sweeps, temperature_start=start,
                         temperature_decay=TemperatureSchedule.spanning(
                             1.0 / start, COOLING / start, sweeps, 1).decay, temperature_interval=1,
                         offset_increase_rate=0.0, moves=self.moves, keep="QUICK")

    def start_temperature(self, problem: BinaryQuadraticProblem, initial: np.ndarray) -> float | None:
        if self.temperature is None:
            return None
        return self.temperature * self.field_scale(problem, initial)

    @staticmethod
    def field_scale(problem: BinaryQuadraticProblem, initial: np.ndarray) -> float:
        """The median nonzero |local field| at ``initial`` (1 when every field is 0): the unit
        of ``temperature`` and ``sample_temperature``."""
        fields = np.abs(problem.local_fields(initial)).astype(np.float64, copy=False)
        nonzero = fields[fields > 0]
        return float(kernels.quantile(nonzero, 0.5)) if nonzero.size else 1.0


class MaskSolver(Protocol):
    """``solve`` anneals from ``initial``; ``structure`` names the problem's CSR structure: problems
    passed with the same (non-None) token have identical ``indptr`` and ``indices`` (the caller
    guarantees it, e.g. the energy builder whose layout is fixed), so a solver may skip comparing
    them. ``groups``: k-hot groups (e.g. a layer keeping exactly K units) that the returned state
    satisfies; ``initial`` is repaired to them if it does not."""

    def solve(self, problem: BinaryQuadraticProblem, initial: np.ndarray, seed: int, full: bool = False,
              structure: Any = None,
              groups: KHotGroups | None = None) -> tuple[np.ndarray, dict[str, float]]: ...

    def close(self) -> None: ...


class EmbeddedSolver:
    """The in-process engine, on the calling thread (``EmbeddedSampler``).

    A warm-started schedule (the default) is explicit, so the sampler anneals the replicas
    directly, without the tuning quench and the distinct-state bookkeeping; ``temperature=None``
    gets the engine's automatic hot-to-cold schedule (the paper's full anneal).
    ``parallel=False``: the problems are small (about 1,000 sparse bits), so one core is faster
    than thread start-up, and torch keeps the other core.
    """

    name = "embedded"

    def __init__(self, budget: AnnealBudget | None = None, parallel: bool = False) -> None:
        self.budget = budget or AnnealBudget()
        self.sampler = EmbeddedSampler(parallel=parallel)

    def solve(self, problem: BinaryQuadraticProblem, initial: np.ndarray, seed: int, full: bool = False,
              structure: Any = None,
              groups: KHotGroups | None = None) -> tuple[np.ndarray, dict[str, float]]:
        """Anneal from ``initial``; ``full`` asks for a complete hot-to-cold anneal with
        ``budget.full_sweeps`` sweeps (the first solve, when there is no state worth keeping);
        ``groups`` are held exactly (swap moves)."""
        t0 = time.perf_counter()
        result = self.sampler.sample(problem, self.budget.schedule(problem, initial, full),
                                     initial=initial, seed=seed, groups=groups)
        state = np.asarray(result.best_state, dtype=np.uint8).copy()
        return state, {"solve": time.perf_counter() - t0, "transport": 0.0}

    def close(self) -> None:
        pass


class RemoteSampler:
    """A SpinOut (or DA-compatible) service as an engine ``Sampler`` of ``Annealing`` and
    ``Sampling`` schedules, reached with ``client.SolverClient``. k-hot ``groups`` go out as the
    block's ``k_hot_groups`` extension (runs of consecutive variables; ValueError otherwise),
    a ``Sampling`` schedule as its ``final_states`` extension (SpinOut services only).

    The schedule goes out as the ``fujitsuDA`` expert block ``block_for`` makes of it (the
    service runs parallel trials, at most one flip a step, whatever ``moves`` says), ``initial``
    as ``guidance_config`` (an array on the wire). The problem goes in the client's compact
    encoding as the upper half of its symmetric CSR, on a ``CouplingPattern``: the trainer's
    couplings always sit at the same positions, so the service receives rows and cols once and
    then only the float32 values (the pattern is rebuilt if the structure ever changes;
    ``structure`` names it, see ``MaskSolver``). The result's ``timing``: ``solve`` is the
    service's reported solve time (its set-up and anneal), ``total`` the round trip.
    """

    def __init__(self, url: str, api_key: str | None = None) -> None:
        from client import SolverClient

        self.url = url
        self.client = SolverClient(url, **({"api_key": api_key} if api_key else {}))
        self._pattern: _SentPattern | None = None

    def sample(self, problem: BinaryQuadraticProblem, schedule: Schedule, *,
               initial: InitialState = None, fixed: Mapping[int, bool] | None = None,
               seed: int | None = None, constraints: LinearInequalities | None = None,
               stop: Stop = Stop(), energy_parts: EnergyParts | None = None,
               groups: KHotGroups | None = None, structure: Any = None) -> AnnealResult:
        if not isinstance(schedule, Annealing | Sampling):
            raise TypeError("a remote DA service runs Annealing and Sampling schedules, not "
                            f"{type(schedule).__name__}")
        if fixed or constraints is not None or stop != Stop() or energy_parts is not None:
            raise ValueError("the remote sampler takes no fixed bits, constraints, stop or "
                             "energy parts")
        t0 = time.perf_counter()
        n = problem.num_variables
        solver, params = block_for(schedule)
        if seed is not None:
            params["random_seed"] = int(seed) % (1 << 31)
        if groups is not None and groups.num_groups:
            groups.check(n)
            params["k_hot_groups"] = k_hot_spec(groups)
        if initial is not None:
            params["guidance_config"] = np.asarray(initial, dtype=np.uint8)  # sent as an array
        result = self.client.solve(self._encode(problem, structure), solver, num_variables=n,
                                   transport="compact", **params)
        states = np.asarray(result.states, dtype=np.uint8)[:, :n]
        solve_seconds = float(result.timing.get("solve_time", result.timing.get("anneal_time", 0.0)))
        return AnnealResult(states, np.asarray(result.energies, dtype=np.float64),
                            np.asarray(result.frequencies, dtype=np.int64),
                            timing={"solve": solve_seconds, "total": time.perf_counter() - t0})

    def _encode(self, problem: BinaryQuadraticProblem, structure: Any = None) -> Any:
        """The problem on its cached coupling pattern (sparse problems), else plain triplets."""
        if not problem.is_sparse:
            return upper_triplets(problem)
        from client import CouplingPattern

        csr = problem.couplings
        sent = self._pattern
        known = sent is not None and (
            (structure is not None and structure is sent.structure)
            or (_same(sent.indptr, csr.indptr) and _same(sent.indices, csr.indices)))
        if not known:
            n = problem.num_variables
            rows = np.repeat(np.arange(n, dtype=np.int32), np.diff(csr.indptr))
            upper = rows < csr.indices
            sent = self._pattern = _SentPattern(
                csr.indptr.copy(), csr.indices.copy(), np.flatnonzero(upper).astype(np.int32),
                CouplingPattern(n, rows[upper], csr.indices[upper]), structure)
        assert sent is not None
        # The upper half's values in float32, gathered and converted in one pass.
        values = np.empty(sent.upper.size, dtype=np.float32)
        kernels.gather(np.ascontiguousarray(csr.data), sent.upper, values)
        return sent.pattern.problem(values, problem.linear, problem.constant)

    def close(self) -> None:
        self.client.close()


class RemoteSolver:
    """Masks from a remote service: the embedded solver's schedule through ``RemoteSampler``.
    ``solve`` is the service's reported solve time; ``transport`` the rest of the round trip
    (encoding, HTTP, parsing, decoding).

    Args:
        url: the service's base URL, e.g. ``http://127.0.0.1:8000``.
        budget: annealing per solve.
        api_key: sent as the DA's ``X-Api-Key`` when given.
    """

    name = "remote"

    def __init__(self, url: str, budget: AnnealBudget | None = None, api_key: str | None = None) -> None:
        self.url = url
        self.budget = budget or AnnealBudget()
        self.sampler = RemoteSampler(url, api_key)

    def solve(self, problem: BinaryQuadraticProblem, initial: np.ndarray, seed: int, full: bool = False,
              structure: Any = None,
              groups: KHotGroups | None = None) -> tuple[np.ndarray, dict[str, float]]:
        result = self.sampler.sample(problem, self.budget.schedule(problem, initial, full),
                                     initial=initial, seed=seed, groups=groups,
                                     structure=structure)
        solve, total = result.timing["solve"], result.timing["total"]
        return (np.asarray(result.best_state, dtype=np.uint8).copy(),
                {"solve": solve, "transport": max(total - solve, 0.0)})

    def close(self) -> None:
        self.sampler.close()


@dataclass(frozen=True)
class _SentPattern:
    """The CSR structure the service holds as a coupling pattern, and how to read its values."""

    indptr: np.ndarray  # copies: the caller's arrays may be reused for another structure
    indices: np.ndarray
    upper: np.ndarray  # CSR positions of the i < j half, in the pattern's order
    pattern: Any  # client.CouplingPattern
    structure: Any  # the caller's token for this structure, if it gave one


def _same(cached: np.ndarray, a: np.ndarray) -> bool:
    return cached.shape == a.shape and bool(np.array_equal(cached, a))


def upper_triplets(problem: BinaryQuadraticProblem) -> Any:
    """The problem as the client's ``EncodedProblem``: the i < j half of its symmetric couplings."""
    from client.problems import EncodedProblem

    if problem.is_sparse:
        csr = sp.csr_array(problem.couplings)
        rows = np.repeat(np.arange(problem.num_variables, dtype=np.int32), np.diff(csr.indptr))
        cols = csr.indices
        values = csr.data
    else:
        dense = np.asarray(problem.couplings)
        rows, cols = np.nonzero(dense)
        values = dense[rows, cols]
    upper = rows < cols
    # float32 couplings: the network's weights are float32 anyway, and the body shrinks by a
    # quarter (12 instead of 16 bytes a coupling); biases stay float64.
    return EncodedProblem(problem.num_variables, np.asarray(problem.linear, dtype=np.float64),
                          rows[upper].astype(np.int32), cols[upper].astype(np.int32),
                          np.asarray(values[upper], dtype=np.float32), float(problem.constant))


def make_solver(spec: str, budget: AnnealBudget, api_key: str | None = None) -> MaskSolver:
    """``"embedded"``, an http(s) URL or one of the cheap solvers of ``mask_solvers``
    (random, topk, greedy, qpbo, anneal10) -> a solver; anything else is a clear error.

    The remote key comes from ``api_key`` or the ``SPINOUT_API_KEY`` environment variable.
    """
    from .mask_solvers import CHEAP_SOLVERS, cheap_solver

    if spec == "embedded":
        return EmbeddedSolver(budget)
    if spec.startswith(("http://", "https://")):
        return RemoteSolver(spec, budget, api_key or os.environ.get("SPINOUT_API_KEY"))
    if spec in CHEAP_SOLVERS:
        return cheap_solver(spec)
    raise ValueError(f"--solver must be 'embedded', an http(s) URL or one of "
                     f"{', '.join(CHEAP_SOLVERS)}, got {spec!r}")
