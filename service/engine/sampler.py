"""One way in for every solve: a problem, a schedule, a start and a stop -> an ``AnnealResult``.

A schedule says how to anneal, in the engine's vocabulary:

- ``Annealing``: independent runs cooled along the DA's temperature schedule (start, decay,
  interval, mode), with Metropolis or Gibbs acceptance and the DA's dynamic offset;
- ``Tempering``: a replica-exchange ladder for a number of sweeps;
- ``TimeLimited``: the DA3 mode, tuned tempering ladders in groups until a time limit;
- ``Sampling``: independent chains at one fixed temperature, each returning where it ends
  (Boltzmann samples, not a ground-state search).

Every schedule takes ``groups`` (``KHotGroups``): each group then holds exactly its count in
every state visited (swap moves inside a group, single flips outside).

``Sampler.sample`` takes any of them. ``EmbeddedSampler`` runs them in this process; the service
maps each DA parameter block onto a schedule in one place (``service.jobs.presets``) and the
trainer builds one schedule that its embedded and its remote solver both run.
"""

from __future__ import annotations

from collections.abc import Mapping
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .constraints import LinearInequalities
from .groups import KHotGroups
from .problem import BinaryQuadraticProblem
from .result import AnnealResult
from .schedule import CoolingMode, TemperatureSchedule
from .result import build_result
from .solver import (Cancel, EnergyParts, InitialState, Replicas, _Driver, anneal_da,
                     parallel_tempering, solve_time_limited)

__all__ = ["Annealing", "EmbeddedSampler", "Sampler", "Sampling", "Schedule", "Stop", "Tempering",
           "TimeLimited"]


@dataclass(frozen=True)
class Annealing:
    """``runs`` independent runs of ``steps`` steps, cooled from ``temperature_start`` by
    ``temperature_decay`` every ``temperature_interval`` steps (``temperature_mode``); without a
    start and decay the engine derives a hot-to-cold schedule from the problem.

    ``moves``: "trial" (the DA's parallel trial: every bit tried, one flips) or "sweep".
    ``keep``: "COMPLETE" (every run's best, distinct) or "QUICK" (only the best).
    """

    runs: int = 16
    steps: int = 10_000
    temperature_start: float | None = None
    temperature_decay: float | None = None
    temperature_interval: int = 100
    temperature_mode: CoolingMode = CoolingMode.EXPONENTIAL
    noise: str = "METROPOLIS"
    offset_increase_rate: float | None = None
    moves: str = "trial"
    keep: str = "COMPLETE"

    @property
    def explicit(self) -> bool:
        """The whole schedule is given: start and decay, and a dynamic offset of 0 (None lets the
        engine derive one from the problem)."""
        return (self.temperature_start is not None and self.temperature_decay is not None
                and self.offset_increase_rate == 0.0)

    def betas(self) -> np.ndarray:
        """The inverse temperature of each step (an explicit schedule only)."""
        assert self.temperature_start is not None and self.temperature_decay is not None
        schedule = TemperatureSchedule(self.temperature_start, self.temperature_decay,
                                       self.temperature_interval, CoolingMode(self.temperature_mode))
        return schedule.betas(self.steps)


@dataclass(frozen=True)
class Tempering:
    """``replicas`` replicas on a tempering ladder for ``sweeps`` sweeps; ``beta_range`` (hot,
    cold) fixes its ends, else the engine derives them from the problem."""

    replicas: int = 32
    sweeps: int = 1_000
    beta_range: tuple[float, float] | None = None
    moves: str = "sweep"
    offset_increase_rate: float | None = None
    keep: str = "COMPLETE"


@dataclass(frozen=True)
class TimeLimited:
    """The DA3 mode: ``groups`` groups of tuned tempering ladders with ``runs`` replicas each
    (from ``ANNEAL_MIN_VARIABLES`` variables on, annealing paced by the clock instead:
    ``solve_time_limited``), for ``seconds``; keeps the ``outputs`` lowest distinct states of
    each group.

    ``penalty_scale``: the energy a broken constraint inside the problem costs (one-hot groups,
    a penalty polynomial), so that the ladder's hot end crosses it."""

    seconds: float = 10.0
    runs: int = 16
    groups: int = 1
    outputs: int = 5
    moves: str = "sweep"
    penalty_scale: float | None = None


@dataclass(frozen=True)
class Sampling:
    """``runs`` independent chains of ``sweeps`` steps at the fixed ``temperature``, each from
    the initial state; the result holds where the chains END (distinct states, frequency = the
    chains that ended there), not the best they saw.

    With ``moves="sweep"`` (Metropolis sweeps, swap moves inside k-hot groups) every step keeps
    the Boltzmann distribution exp(-E / T) / Z over the states that satisfy the groups, so after
    enough sweeps each chain's end is a sample of it. ``"trial"``: the DA's parallel trial at
    that temperature (no dynamic offset), a different chain whose stationary law is close to but
    not exactly Boltzmann.

    Example:
        >>> p = BinaryQuadraticProblem.from_dict({(0, 0): -1, (1, 1): 1})
        >>> EmbeddedSampler().sample(p, Sampling(runs=100, sweeps=20, temperature=1.0),
        ...                          seed=0).frequencies.sum()
        100
    """

    runs: int = 16
    sweeps: int = 100
    temperature: float = 1.0
    moves: str = "sweep"

    def __post_init__(self) -> None:
        if self.runs < 1 or self.sweeps < 1:
            raise ValueError(f"Sampling needs runs >= 1 and sweeps >= 1, got {self.runs}, "
                             f"{self.sweeps}")
        if not (self.temperature > 0 and np.isfinite(self.temperature)):
            raise ValueError(f"Sampling temperature must be positive and finite, got "
                             f"{self.temperature}")
        if self.moves not in ("sweep", "trial"):
            raise ValueError(f"moves must be 'sweep' or 'trial', got {self.moves!r}")


Schedule = Annealing | Tempering | TimeLimited | Sampling


@dataclass(frozen=True)
class Stop:
    """When a solve ends early: a wall-time limit, an energy reached, or a cancel flag."""

    time_limit: float | None = None
    target_energy: float | None = None
    cancel: Cancel = None


class Sampler(Protocol):
    """Anneals ``problem`` along ``schedule`` from ``initial`` (a state, a partial {index: bit}
    map, or None for random) with ``fixed`` bits held and each of the k-hot ``groups`` at its
    count (initial states repaired to the counts)."""

    def sample(self, problem: BinaryQuadraticProblem, schedule: Schedule, *,
               initial: InitialState = None, fixed: Mapping[int, bool] | None = None,
               seed: int | None = None, constraints: LinearInequalities | None = None,
               stop: Stop = Stop(), energy_parts: EnergyParts | None = None,
               groups: KHotGroups | None = None) -> AnnealResult: ...


class EmbeddedSampler:
    """The engine in this process. ``parallel``: replicas on all cores (numba threads) or on the
    calling thread only (the service's solver threads; the trainer's small problems)."""

    def __init__(self, parallel: bool = True) -> None:
        self.parallel = parallel

    def sample(self, problem: BinaryQuadraticProblem, schedule: Schedule, *,
               initial: InitialState = None, fixed: Mapping[int, bool] | None = None,
               seed: int | None = None, constraints: LinearInequalities | None = None,
               stop: Stop = Stop(), energy_parts: EnergyParts | None = None,
               groups: KHotGroups | None = None) -> AnnealResult:
        """Run ``schedule``; ``groups``: k-hot groups held exactly (ValueError together with
        ``constraints`` or with fixed bits inside a group)."""
        if isinstance(schedule, Sampling):
            return self._sample_fixed(problem, schedule, initial, fixed, seed, constraints, stop,
                                      groups)
        if isinstance(schedule, TimeLimited):
            seconds = (schedule.seconds if stop.time_limit is None
                       else min(schedule.seconds, stop.time_limit))
            return solve_time_limited(problem, time_limit=seconds, num_runs=schedule.runs,
                                      num_groups=schedule.groups, num_outputs=schedule.outputs,
                                      initial=initial, fixed=fixed, seed=seed, cancel=stop.cancel,
                                      parallel=self.parallel, moves=schedule.moves,
                                      constraints=constraints, target_energy=stop.target_energy,
                                      energy_parts=energy_parts,
                                      penalty_scale=schedule.penalty_scale, groups=groups)
        if isinstance(schedule, Tempering):
            return parallel_tempering(problem, num_replicas=schedule.replicas,
                                      num_sweeps=schedule.sweeps, beta_range=schedule.beta_range,
                                      moves=schedule.moves,
                                      offset_increase_rate=schedule.offset_increase_rate,
                                      initial=initial, fixed=fixed, solution_mode=schedule.keep,
                                      seed=seed, time_limit=stop.time_limit,
                                      target_energy=stop.target_energy, cancel=stop.cancel,
                                      parallel=self.parallel, constraints=constraints,
                                      groups=groups)
        if (schedule.explicit and schedule.keep == "QUICK" and constraints is None
                and stop == Stop() and schedule.noise == "METROPOLIS"):
            return self._cool(problem, schedule, initial, fixed, seed, groups)
        return anneal_da(problem, num_runs=schedule.runs, num_iterations=schedule.steps,
                         temperature_start=schedule.temperature_start,
                         temperature_decay=schedule.temperature_decay,
                         temperature_interval=schedule.temperature_interval,
                         temperature_mode=schedule.temperature_mode, noise_model=schedule.noise,
                         offset_increase_rate=schedule.offset_increase_rate, moves=schedule.moves,
                         initial=initial, fixed=fixed, solution_mode=schedule.keep, seed=seed,
                         time_limit=stop.time_limit, target_energy=stop.target_energy,
                         cancel=stop.cancel, parallel=self.parallel, constraints=constraints,
                         groups=groups)

    def _cool(self, problem: BinaryQuadraticProblem, schedule: Annealing, initial: InitialState,
              fixed: Mapping[int, bool] | None, seed: int | None,
              groups: KHotGroups | None) -> AnnealResult:
        """An explicit schedule whose best state is all that is wanted, straight on the replicas:
        no tuning, no stop checks between chunks and no distinct-state bookkeeping, which on the
        trainer's ~1,000-bit problems cost more than its 10-step anneals themselves."""
        start = time.perf_counter()
        reps = Replicas(problem, schedule.runs, seed, initial, fixed, parallel=self.parallel,
                        groups=groups)
        reps.anneal(schedule.betas(), schedule.moves == "trial", 0.0, False)
        state, _ = reps.best()
        states = np.asarray(state, dtype=np.uint8)[None, :].copy()
        return AnnealResult(states, np.atleast_1d(problem.energies(states)).astype(np.float64),
                            np.ones(1, dtype=np.int64),
                            timing={"total": time.perf_counter() - start})

    def _sample_fixed(self, problem: BinaryQuadraticProblem, schedule: Sampling,
                      initial: InitialState, fixed: Mapping[int, bool] | None, seed: int | None,
                      constraints: LinearInequalities | None, stop: Stop,
                      groups: KHotGroups | None) -> AnnealResult:
        """Every chain at one beta in kernel chunks (the stop checked between them); the result
        is the chains' final states, energies the problem's own (with ``constraints``, their
        penalty included, as the chains saw it)."""
        driver = _Driver(problem, stop.time_limit, stop.cancel, stop.target_energy)
        reps = Replicas(problem, schedule.runs, seed, initial, fixed, self.parallel, constraints,
                        groups)
        beta = 1.0 / schedule.temperature
        trial = schedule.moves == "trial"
        driver.begin_anneal()
        done, per_step = 0, float("inf")
        while done < schedule.sweeps and not driver.should_stop():
            steps = driver.chunk_size(done, schedule.sweeps, per_step)
            t0 = time.perf_counter()
            reps.anneal(np.full(steps, beta), trial, 0.0, False)
            per_step = (time.perf_counter() - t0) / steps
            done += steps
            reps.maybe_resync()
        states, energies, counts = build_result(problem, reps.states, None, limit=None,
                                                constraints=reps.constraints)
        return AnnealResult(states, energies, counts, timing=driver.timing(),
                            stop_reason=driver.stop_reason,
                            info={"sweeps_done": done, "temperature": schedule.temperature,
                                  "moves": schedule.moves})
