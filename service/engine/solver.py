"""The Python solver API: DA annealing, parallel tempering and the time-limited DA3 mode.

Each solver prepares a set of replicas, then drives the numba kernels in bounded chunks; between
chunks it checks the deadline, the cancel flag and the target energy, re-synchronises the
incremental local fields with an exact recomputation, and records progress. Nothing here imports
FastAPI, pydantic or Redis: the trainer runs it in-process.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from . import kernels, lattice
from .constraints import LinearInequalities
from .groups import KHotGroups
from .lattice import Torus
from .problem import BinaryQuadraticProblem
from .result import DistinctPool, AnnealResult, build_result
from .schedule import (CoolingMode, TemperatureSchedule, beta_range_from_deltas, equalize_ladder,
                       geometric_ladder)

Cancel = Callable[[], bool] | threading.Event | None
InitialState = Mapping[int, bool] | np.ndarray | None
#: state -> (energy, penalty energy): how a caller splits the annealed energy for progress.
EnergyParts = Callable[[np.ndarray], tuple[float, float]]

#: Independent tempering ladders per DA3 group: they run on separate threads with no barrier
#: between rounds. A constant, not the core count, so a seed gives the same answer anywhere.
ENSEMBLES_PER_GROUP = 2
#: Single-flip trials per tempering round above which one ensemble's replicas run in parallel.
PARALLEL_ROUND_WORK = 1 << 18
#: Rounds of the first ladder-tuning stage (later stages double).
TUNE_ROUNDS = 10
#: A coldest-pair swap rate above which an extensible cold end moves colder.
COLD_SWAP_RATE = 0.4
#: How often the incremental local fields are recomputed exactly.
RESYNC_SECONDS = 1.0
#: Wall time one kernel call aims at: short enough to honour deadlines and cancellation.
CHUNK_SECONDS = 0.05
#: ``cluster_moves="auto"``: the largest mean degree (couplings per variable) that gets cluster
#: moves; toroidal grids have 4, the G-set's random graphs 10-20.
CLUSTER_MAX_DEGREE = 6.0
#: Cluster moves come after every ``max(CLUSTER_MIN_ROUNDS, CLUSTER_WORK // n)``-th tempering round
#: (one sweep each): often on large graphs, where a round is long, and without a kernel call
#: every few hundred microseconds on small ones.
CLUSTER_MIN_ROUNDS = 8
CLUSTER_WORK = 1 << 16
#: ``strategy="auto"`` of the time-limited mode anneals (``ClockAnneal``) instead of tempering from
#: this many variables on: there a ladder of 16 slots spans the temperatures in steps of many
#: standard deviations of the energy (which grow with sqrt(n)), exchanges die (G72, 10,000 nodes:
#: every neighbour pair swaps in under 1 % of the tries) and tempering degenerates into
#: fixed-temperature chains, which a slow anneal beats (docs/engine.md, "At scale").
ANNEAL_MIN_VARIABLES = 4096
#: Replicas per DA3 group in the anneal strategy: few, so that each anneal is slow (measured on
#: G63 and G72 at 10 s: 4 replicas beat 16).
ANNEAL_REPLICAS_PER_GROUP = 4
#: The first anneal's share of the time limit; each restart doubles its length, and one that
#: leaves too little time for the next runs to the deadline (it gets at least half the budget).
FIRST_ANNEAL_SHARE = 1 / 16
#: The anneal strategy holds the cold end after its first anneal instead of restarting on graphs
#: of at most this many couplings per variable (``ClockAnneal``). Medians of the same seeds: on
#: the toroidal grids (degree 4) holding cold found 0.23 % more at 10 s on G72 and 0.12 % on G77;
#: on the random graph G63 (degree 12) 0.13 % less at 20 s (docs/engine.md).
HOLD_COLD_MAX_DEGREE = 6.0
#: The share of the cold hold that window moves may take on a lattice (``ClockAnneal``).
WINDOW_SHARE = 0.5
#: Bit trials of a parallel-trial solve's first kernel call, before its speed is known (~2-5 ms
#: on one core; problems over 1,024 bits count extra since a flip then costs more).
FIRST_CHUNK_TRIALS = 1 << 21


def _table(gibbs: bool) -> np.ndarray:
    return kernels.GIBBS_TABLE if gibbs else kernels.METROPOLIS_TABLE


def _is_cancelled(cancel: Cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def _as_state_spec(spec: InitialState, n: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(mask of given bits, their values) from {idx: bool} or a full 0/1 array."""
    mask = np.zeros(n, dtype=bool)
    values = np.zeros(n, dtype=np.uint8)
    if spec is None:
        return mask, values
    if isinstance(spec, Mapping):
        for key, val in spec.items():
            idx = int(key)
            if not 0 <= idx < n:
                raise ValueError(f"{name}: index {idx} is outside 0..{n - 1}")
            mask[idx] = True
            values[idx] = 1 if val else 0
        return mask, values
    arr = np.asarray(spec)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have {n} entries, got shape {arr.shape}")
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} must hold only 0/1 values")
    return np.ones(n, dtype=bool), arr.astype(np.uint8)


class Replicas:
    """R copies of the problem's state with incrementally maintained local fields.

    Args:
        problem: the QUBO.
        num_replicas: R.
        seed: one integer decides every random choice (initial states, each replica's generator).
        initial: a state (n,), {idx: bool} for some bits (the rest random), or (R, n) states.
        fixed: {idx: bool} bits held at a value and never flipped.
        parallel: run replicas on all cores (numba threads) or on the calling thread only.
        constraints: linear inequalities kept by the kernels; energies then include their
            penalty (``LinearInequalities``).
        groups: k-hot groups kept exactly by swap moves (``KHotGroups``); initial states are
            repaired to the groups' counts. Not together with ``constraints`` or with fixed bits
            inside a group (ValueError).
    """

    def __init__(self, problem: BinaryQuadraticProblem, num_replicas: int, seed: int | None = None,
                 initial: InitialState = None, fixed: Mapping[int, bool] | None = None,
                 parallel: bool = True, constraints: LinearInequalities | None = None,
                 groups: KHotGroups | None = None) -> None:
        if num_replicas < 1:
            raise ValueError(f"the number of replicas/runs must be >= 1, got {num_replicas}")
        self.problem = problem
        n = problem.num_variables
        if constraints is not None and constraints.num_variables != n:
            raise ValueError(f"the constraints have {constraints.num_variables} variables, the "
                             f"problem {n}")
        self.constraints = constraints if constraints is not None and constraints.num_constraints else None
        self.cons = (LinearInequalities.none_arrays(n) if self.constraints is None
                     else self.constraints.kernel_arrays())
        self.dense = not problem.is_sparse
        self.couplings: np.ndarray
        self.data: np.ndarray
        # The exact arrays (float64) re-sync the fields; the kernels' own copy of a dense matrix
        # is float32, which halves memory traffic in the O(n) field updates.
        _, self.exact_couplings, self.indptr, self.indices, self.data = problem.kernel_arrays
        self.couplings = (np.ascontiguousarray(problem.couplings, dtype=np.float32) if self.dense
                          else self.exact_couplings)
        self.field_dtype = np.float32 if self.dense else np.float64
        # One generate_state call gives every replica's generator and the random initial bits
        # (child SeedSequences and a Generator cost ~0.1 ms more per solve); a TemperingLadder spawns
        # its exchange generators from ``seeds``.
        self.seeds = np.random.SeedSequence(seed)
        words = self.seeds.generate_state(num_replicas + -(-num_replicas * n // 64), np.uint64)
        self.rng = words[:num_replicas] | np.uint64(1)
        bits = np.unpackbits(words[num_replicas:].view(np.uint8), count=num_replicas * n)
        states = bits.reshape(num_replicas, n)
        init_arr = None if initial is None or isinstance(initial, Mapping) else np.asarray(initial)
        if init_arr is not None and init_arr.ndim == 2:
            if init_arr.shape != (num_replicas, n):
                raise ValueError(f"initial states must be ({num_replicas}, {n}), got {init_arr.shape}")
            if not np.all((init_arr == 0) | (init_arr == 1)):
                raise ValueError("initial states must hold only 0/1 values")
            states[:] = init_arr
        elif initial is not None:
            mask, values = _as_state_spec(initial, n, "guidance_config")
            states[:, mask] = values[mask]
        fmask, fvalues = _as_state_spec(fixed, n, "fixed_config")
        if fmask.all():
            raise ValueError("every variable is fixed; nothing is left to solve")
        if fmask.any():
            states[:, fmask] = fvalues[fmask]
        self.fixed = fmask.astype(np.uint8)
        self.groups = groups if groups is not None and groups.num_groups else None
        self.group_arrays = KHotGroups.none_arrays()
        if self.groups is not None:
            self.group_arrays = self._grouped(self.groups, fmask, states)
        self.states = states
        self.parallel = parallel
        self.fields = np.empty((num_replicas, n), dtype=self.field_dtype)
        self.energies = np.empty(num_replicas)
        # The kernels' left-hand sides, then a violation count and the best's feasibility flag.
        self.lhs = np.zeros((num_replicas, 0 if self.constraints is None
                             else self.constraints.num_constraints + 2))
        self.offsets = np.zeros(num_replicas)
        self._cluster_scratch: tuple[np.ndarray, np.ndarray] | None = None
        self._window_scratch: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.resync()
        self.best_states = self.states.copy()
        self.best_energies = self.energies.copy()
        self._mark_best_feasibility()

    def _grouped(self, groups: KHotGroups, fixed_mask: np.ndarray, states: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The groups' kernel arrays, after the checks; repairs ``states`` to the counts."""
        arrays = groups.kernel_arrays(self.problem.num_variables)
        if self.constraints is not None:
            raise ValueError("k-hot groups together with inequality constraints are not "
                             "supported; express the inequalities as penalties or drop the groups")
        if fixed_mask[groups.members].any():
            bad = int(groups.members[fixed_mask[groups.members]][0])
            raise ValueError(f"variable {bad} is fixed inside a k-hot group; fixed bits must lie "
                             "outside the groups (drop the group's fixed members and lower its "
                             "count instead)")
        if not self.dense and not _sorted_rows(self.indptr, self.indices):
            raise ValueError("k-hot groups need the problem's CSR indices sorted")
        rng = np.random.default_rng(self.seeds.spawn(1)[0])
        for r in range(states.shape[0]):
            states[r] = groups.repair(states[r], rng)
        return arrays

    @property
    def num_replicas(self) -> int:
        return int(self.states.shape[0])

    def _problem_args(self) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                     tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                                     np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (self.dense, self.couplings, self.indptr, self.indices, self.data, self.cons,
                *self.group_arrays)

    def exact(self, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(fields, energies) of ``states`` recomputed from scratch in float64; energies include
        the inequality penalty."""
        states = np.ascontiguousarray(np.atleast_2d(states), dtype=np.uint8)
        fields = np.empty(states.shape, dtype=np.float64)
        energies = np.empty(states.shape[0])
        parallel = self.parallel and states.shape[0] > 1
        fn = kernels.exact_fields if parallel else kernels.exact_fields_serial
        fn(self.dense, self.exact_couplings, self.indptr, self.indices, self.data, self.problem.linear,
           float(self.problem.constant), states, fields, energies)
        if self.constraints is not None:
            energies += self.constraints.penalty(states)
        return fields, energies

    def resync(self) -> None:
        """Recompute fields, left-hand sides and energies exactly: bounds float drift of the
        incremental updates."""
        fields, energies = self.exact(self.states)
        self.fields[:] = fields
        self.energies[:] = energies
        if self.constraints is not None:
            count = self.constraints.num_constraints
            lhs = np.atleast_2d(self.constraints.lhs(self.states))
            self.lhs[:, :count] = lhs
            self.lhs[:, count] = (lhs > kernels.VIOLATION).sum(axis=1)
        self._synced_at = time.perf_counter()

    def maybe_resync(self) -> None:
        """Resync once every RESYNC_SECONDS: drift grows ~1e-7 per flip, far below that cadence."""
        if time.perf_counter() - self._synced_at > RESYNC_SECONDS:
            self.resync()

    def reset_best(self) -> None:
        self.best_states[:] = self.states
        self.best_energies[:] = self.energies
        self._mark_best_feasibility()

    def _mark_best_feasibility(self) -> None:
        if self.constraints is not None:
            count = self.constraints.num_constraints
            self.lhs[:, count + 1] = self.lhs[:, count] == 0

    def anneal(self, schedule: np.ndarray, trial: bool, offset_rate: float, gibbs: bool) -> None:
        """Every replica steps through ``schedule`` (betas): one sweep or parallel trial each."""
        fn = kernels.anneal if self.parallel else kernels.anneal_serial
        fn(*self._problem_args(), self.states, self.fields, self.lhs,
           np.ascontiguousarray(schedule, np.float64), trial, float(offset_rate), _table(gibbs), self.fixed, self.rng, self.energies,
           self.best_energies, self.best_states, self.offsets)

    def temper(self, ladders: np.ndarray, orders: np.ndarray, rounds: int, steps: int, trial: bool,
               offset_rate: float, gibbs: bool, swap_rng: np.ndarray, accepted: np.ndarray,
               first_parity: int) -> None:
        """``rounds`` of (``steps`` moves at each replica's slot temperature, one exchange) for
        E = len(ladders) ensembles of R replicas each."""
        if not self.parallel:
            fn = kernels.temper_serial
        elif ladders.shape[0] > 1:
            fn = kernels.temper
        elif ladders.shape[1] * self.states.shape[1] * steps >= PARALLEL_ROUND_WORK:
            fn = kernels.temper_replicas
        else:
            # Too little work per round to pay for waking the threads at every exchange.
            fn = kernels.temper_serial
        fn(*self._problem_args(), self.states, self.fields, self.lhs, ladders, orders, rounds, steps,
           trial,
           float(offset_rate), _table(gibbs), self.fixed, self.rng, swap_rng, self.energies,
           self.best_energies, self.best_states, self.offsets, accepted, first_parity)

    @property
    def supports_cluster_moves(self) -> bool:
        """Cluster moves need sparse couplings and an energy without constraints or groups
        (their penalty and swap bookkeeping do not follow a cluster flip)."""
        return not self.dense and self.constraints is None and self.groups is None

    def mean_degree(self) -> float:
        """Couplings per variable (the sparse adjacency's mean row length)."""
        return float(self.indices.shape[0]) / max(self.problem.num_variables, 1) if not self.dense \
            else float(self.problem.num_variables - 1)

    def cluster_moves(self, orders: np.ndarray, first_slot: int, rng: np.uint64) -> np.uint64:
        """One isoenergetic cluster move per ensemble pair at every slot from ``first_slot`` on
        (``kernels.cluster_moves``); returns the generator state."""
        if self._cluster_scratch is None:
            n = self.problem.num_variables
            self._cluster_scratch = (np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.uint8))
        stack, mark = self._cluster_scratch
        return np.uint64(kernels.cluster_moves(self.indptr, self.indices, self.data, self.states, self.fields,
                                               self.energies, self.best_energies, self.best_states, orders,
                                               first_slot, self.fixed, rng, stack, mark))

    @property
    def supports_window_moves(self) -> bool:
        """Window moves rewrite whole blocks of bits: not with constraints, groups or fixed bits."""
        return self.constraints is None and self.groups is None and not self.fixed.any()

    def window_moves(self, torus: Torus, width: int) -> None:
        """One pass of exact window moves (``lattice.window_pass``) on every replica; then the
        fields are recomputed and each replica's best is updated."""
        if self._window_scratch is None:
            rngs = self.seeds.spawn(1)[0].generate_state(self.num_replicas, np.uint64) | np.uint64(1)
            self._window_scratch = (rngs, *torus.window_scratch(width, self.num_replicas))
        rngs, values, choices = self._window_scratch
        if self.parallel:
            lattice.window_passes(torus.rows, torus.cols, torus.right, torus.down, torus.linear,
                                  self.states, width, rngs, values, choices)
        else:
            for r in range(self.num_replicas):
                _, rngs[r] = lattice.window_pass(torus.rows, torus.cols, torus.right, torus.down,
                                                 torus.linear, self.states[r], width, rngs[r],
                                                 values[r], choices[r])
        self.resync()
        better = self.energies < self.best_energies
        self.best_states[better] = self.states[better]
        self.best_energies[better] = self.energies[better]

    def best(self) -> tuple[np.ndarray, float]:
        r = int(np.argmin(self.best_energies))
        return self.best_states[r], float(self.best_energies[r])

    def delta_scales(self) -> tuple[float, float]:
        """Typical single-flip |dE|: (median at random states, 5th percentile at local minima).

        Quenches a copy of (up to 8 of) the replicas with greedy sweeps to find the minima; the
        original replicas are untouched.
        """
        fn = kernels.delta_scales if self.parallel else kernels.delta_scales_serial
        large, small = fn(self.dense, self.couplings, self.exact_couplings, self.indptr,
                          self.indices, self.data, self.problem.linear, self.states, self.fields,
                          self.energies, self.fixed, self.rng, kernels.METROPOLIS_TABLE, 8, 40)
        return float(large), float(small)


def _sorted_rows(indptr: np.ndarray, indices: np.ndarray) -> bool:
    """Whether every CSR row lists its columns in ascending order (the grouped kernels look
    couplings up by binary search)."""
    steps = np.diff(indices.astype(np.int64))
    row_starts = indptr[1:-1]
    rising = steps > 0
    rising[row_starts[(row_starts > 0) & (row_starts < indices.size)] - 1] = True
    return bool(rising.all())


class _Driver:
    """Runs a chunked loop with a deadline, cancellation, target energy and progress."""

    def __init__(self, problem: BinaryQuadraticProblem, time_limit: float | None, cancel: Cancel,
                 target_energy: float | None, energy_parts: EnergyParts | None = None) -> None:
        if time_limit is not None and not (time_limit > 0 and math.isfinite(time_limit)):
            raise ValueError(f"time limit must be a positive number of seconds, got {time_limit}")
        self.problem = problem
        self.start = time.perf_counter()
        self.deadline = None if time_limit is None else self.start + time_limit
        self.cancel = cancel
        self.target = target_energy
        self.progress: list[tuple[float, ...]] = []
        self.energy_parts = energy_parts
        self.best_energy = math.inf
        self.stop_reason = "completed"
        self.anneal_seconds = 0.0
        self.anneal_start = self.start

    def begin_anneal(self) -> None:
        self.anneal_start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def observe(self, replicas: Replicas) -> None:
        """Record an improvement of the replicas' best (its energy recomputed exactly)."""
        state, approx = replicas.best()
        margin = 0.0 if math.isinf(self.best_energy) else 1e-9 * (1.0 + abs(self.best_energy))
        if approx < self.best_energy - margin:
            self.record(float(replicas.exact(state)[1][0]), state)

    def record(self, exact_energy: float, state: np.ndarray) -> None:
        """A new best: progress gets (seconds, energy), or (seconds, energy, penalty) split by
        ``energy_parts``."""
        if exact_energy < self.best_energy:
            self.best_energy = exact_energy
            if self.energy_parts is None:
                self.progress.append((self.elapsed(), exact_energy))
            else:
                self.progress.append((self.elapsed(), *self.energy_parts(state)))

    def should_stop(self) -> bool:
        if _is_cancelled(self.cancel):
            self.stop_reason = "cancelled"
        elif self.target is not None and self.best_energy <= self.target + 1e-9 * (1 + abs(self.target)):
            self.stop_reason = "target_energy"
        elif self.deadline is not None and time.perf_counter() >= self.deadline:
            self.stop_reason = "time_limit"
        else:
            return False
        return True

    def chunk_size(self, done: int, total: int | None, seconds_per_unit: float, first: int = 1) -> int:
        """How many units (sweeps, iterations, rounds) the next kernel call does.

        The first call (seconds_per_unit still unknown, passed as inf) does ``first`` units.
        """
        goal = CHUNK_SECONDS
        if self.deadline is not None:
            goal = min(goal, max(self.deadline - time.perf_counter(), 0.0))
        units = first if math.isinf(seconds_per_unit) else max(1, int(goal / max(seconds_per_unit, 1e-9)))
        if total is not None:
            units = min(units, total - done)
        return units

    def timing(self) -> dict[str, float]:
        total = self.elapsed()
        return {"setup": self.anneal_start - self.start, "anneal": total - (self.anneal_start - self.start),
                "total": total}


class TemperingLadder:
    """Replica-exchange ensembles: E independent ladders of R replicas over one ``Replicas`` of
    E x R states (ensemble e owns replicas e*R .. e*R + R - 1). All ensembles share one ladder."""

    def __init__(self, replicas: Replicas, ladder: np.ndarray, steps: int, trial: bool,
                 offset_rate: float, gibbs: bool, num_ensembles: int = 1,
                 cluster_moves: bool = False) -> None:
        if replicas.num_replicas % num_ensembles:
            raise ValueError("replicas must split evenly into ensembles")
        if cluster_moves and (num_ensembles < 2 or not replicas.supports_cluster_moves):
            raise ValueError("cluster moves need two ensembles or more and sparse couplings without "
                             "constraints or k-hot groups")
        #: after every kernel chunk, isoenergetic cluster moves between ensemble pairs at the
        #: colder half of the slots (hotter replicas' differing sites percolate: a move there
        #: would swap nearly whole states, which the exchanges already do)
        self.cluster_moves = cluster_moves
        self.cluster_every = max(CLUSTER_MIN_ROUNDS, CLUSTER_WORK // max(replicas.problem.num_variables, 1))
        self.cluster_rounds = 0  # how many times the cluster moves ran
        self.replicas = replicas
        self.num_ensembles = num_ensembles
        self.size = replicas.num_replicas // num_ensembles
        self.ladder = np.ascontiguousarray(ladder, dtype=np.float64)
        if self.ladder.shape != (self.size,):
            raise ValueError(f"the ladder must hold {self.size} betas, got {self.ladder.shape}")
        self.steps = steps
        self.trial = trial
        self.offset_rate = offset_rate
        self.gibbs = gibbs
        self.orders = np.tile(np.arange(self.size, dtype=np.int64), (num_ensembles, 1))
        self.accepted = np.zeros((num_ensembles, max(self.size - 1, 1)), dtype=np.int64)
        self.swap_rng = np.array([c.generate_state(1, np.uint64)[0] | np.uint64(1)
                                  for c in replicas.seeds.spawn(num_ensembles)],
                                 dtype=np.uint64)
        self.cluster_rng = (np.uint64(replicas.seeds.spawn(1)[0].generate_state(1, np.uint64)[0] | np.uint64(1))
                            if cluster_moves else np.uint64(1))
        self.rounds_done = 0
        self._rounds_counted = 0  # rounds since ``accepted`` was reset
        self._per_round = math.inf

    def swap_rates(self) -> np.ndarray:
        """Fraction of accepted exchanges per neighbour pair (each pair is tried every 2nd round)."""
        counts = self.accepted[:, : self.size - 1].mean(axis=0)
        rates: np.ndarray = counts / max(self._rounds_counted / 2, 1)
        return rates

    def ensemble_slice(self, e: int) -> slice:
        return slice(e * self.size, (e + 1) * self.size)

    def advance(self, driver: _Driver, max_rounds: int | None) -> int:
        """One kernel chunk, then exact resync and progress; returns the rounds done."""
        if self.cluster_moves:
            # Cluster moves run between kernel calls, after every ``cluster_every``-th round:
            # chunks end there, so a seed's trajectory does not depend on how time cuts them.
            to_next = self.cluster_every - self.rounds_done % self.cluster_every
            max_rounds = to_next if max_rounds is None else min(max_rounds, to_next)
        rounds = driver.chunk_size(0, max_rounds, self._per_round)
        ladders = np.ascontiguousarray(np.broadcast_to(self.ladder, (self.num_ensembles, self.size)))
        t0 = time.perf_counter()
        self.replicas.temper(ladders, self.orders, rounds, self.steps, self.trial, self.offset_rate,
                             self.gibbs, self.swap_rng, self.accepted, self.rounds_done % 2)
        self._per_round = (time.perf_counter() - t0) / rounds
        self.rounds_done += rounds
        if self.cluster_moves and self.rounds_done % self.cluster_every == 0:
            self.cluster_rng = self.replicas.cluster_moves(self.orders, self.size // 2, self.cluster_rng)
            self.cluster_rounds += 1
        self._rounds_counted += rounds
        self.replicas.maybe_resync()
        driver.observe(self.replicas)
        return rounds

    def tune(self, driver: _Driver, first_stage_rounds: int, stages: int = 6,
             extend_cold: bool = False) -> None:
        """Feedback iterations of ``equalize_ladder`` from measured swap rates, in stages that
        double in length: a usable ladder within a few dozen rounds, a refined one later. The
        rounds are part of the search (replicas keep their states).

        ``extend_cold``: while the coldest pair swaps more often than COLD_SWAP_RATE, the cold
        end doubles its beta after a stage (its scale was a guess, see ``solve_time_limited``)."""
        if self.size < 3:
            return
        rounds_per_stage = first_stage_rounds
        for _ in range(stages):
            self.accepted[:] = 0
            self._rounds_counted = 0
            while self._rounds_counted < rounds_per_stage and not driver.should_stop():
                self.advance(driver, rounds_per_stage - self._rounds_counted)
            if driver.should_stop():
                return
            rates = self.swap_rates()
            self.ladder = equalize_ladder(self.ladder, rates)
            if extend_cold and rates[-1] > COLD_SWAP_RATE:
                self.ladder = np.geomspace(self.ladder[0], 2.0 * self.ladder[-1], self.size)
            rounds_per_stage *= 2
        self.accepted[:] = 0
        self._rounds_counted = 0


class ClockAnneal:
    """Annealing paced by the clock, for problems too large to temper.

    Every replica first anneals from ``beta_hot`` to ``beta_cold`` (geometric in beta) over
    ``FIRST_ANNEAL_SHARE`` of the time limit: good answers early (progress, target energies).
    Then, with ``hold_cold``, the replicas stay at ``beta_cold`` until the deadline; without it
    they restart hot from where they are, each anneal twice as long as the one before, and one
    that would leave less than twice its own length runs to the deadline instead.

    Holding cold is for sparse graphs of low degree (the toroidal grids), where the work that
    pays is done at the cold end: single flips there wander the plateaus of equal energy and
    cross a domain wall now and then, and every restart spends its hot part undoing the domains
    it has built. On denser random graphs the restarts' fresh starts pay instead (docs/engine.md,
    "Annealing instead of tempering at scale", has both measurements). The schedule follows
    elapsed time rather than a sweep count so that an anneal is at its cold end when planned on
    a busy machine as on an idle one; the trajectory therefore depends on the machine's speed as
    well as the seed.

    With ``torus`` (a recognised 2D lattice) the cold hold also runs exact window moves
    (``lattice.window_pass``) on every replica after a chunk, while they have had less than
    ``WINDOW_SHARE`` of the hold's time.
    """

    def __init__(self, replicas: Replicas, beta_hot: float, beta_cold: float, trial: bool,
                 offset_rate: float, hold_cold: bool, torus: Torus | None = None) -> None:
        self.replicas = replicas
        self.torus = torus  # the lattice of the window moves, None for none
        self.window_passes = 0  # window-move passes (each over every replica)
        self.window_seconds = 0.0
        self.hold_seconds = 0.0
        self._last_pass = 0.0
        self.beta_hot = beta_hot
        self.beta_cold = beta_cold
        self.trial = trial
        self.offset_rate = offset_rate
        self.hold_cold = hold_cold
        self.anneals = 0  # anneals begun
        self.sweeps_done = 0  # sweeps (or parallel trials) per replica

    def run(self, driver: _Driver, after_chunk: Callable[[], None]) -> None:
        """Anneal until the driver stops; ``after_chunk`` runs after every kernel call."""
        if driver.deadline is None:
            raise ValueError("the anneal strategy needs a time limit")
        length = FIRST_ANNEAL_SHARE * max(driver.deadline - time.perf_counter(), 0.0)
        per_step = math.inf
        while not driver.should_stop():
            begin = time.perf_counter()
            length = next_anneal_length(length, driver.deadline - begin)
            hold = self.hold_cold and self.anneals > 0
            self.anneals += 0 if hold else 1
            while not driver.should_stop():
                done = (time.perf_counter() - begin) / length
                if done >= 1.0:
                    break
                steps = driver.chunk_size(0, None, per_step)
                if hold:
                    betas = np.full(steps, self.beta_cold)
                else:
                    end = done if math.isinf(per_step) else min(1.0, done + steps * per_step / length)
                    betas = self.beta_hot * (self.beta_cold / self.beta_hot) ** np.linspace(done, end, steps)
                t0 = time.perf_counter()
                self.replicas.anneal(betas, self.trial, self.offset_rate, False)
                per_step = (time.perf_counter() - t0) / steps
                self.sweeps_done += steps
                self.replicas.maybe_resync()
                if hold and self.torus is not None:
                    self._window_moves(self.torus, t0, driver.deadline)
                driver.observe(self.replicas)
                after_chunk()
            length *= 2

    def _window_moves(self, torus: Torus, chunk_start: float, deadline: float) -> None:
        """A pass of window moves whenever they have had less than WINDOW_SHARE of the hold and
        the last pass's duration fits before the deadline (a pass over a 100,000-site lattice
        takes ~0.5 s, ten chunks)."""
        now = time.perf_counter()
        self.hold_seconds += now - chunk_start
        if self.window_seconds <= WINDOW_SHARE * self.hold_seconds and now + self._last_pass < deadline:
            self.replicas.window_moves(torus, lattice.WINDOW_WIDTH)
            self.window_passes += 1
            self._last_pass = time.perf_counter() - now
            self.window_seconds += self._last_pass
            self.hold_seconds += self._last_pass


def next_anneal_length(length: float, time_left: float) -> float:
    """The next anneal's length: ``length``, or all the time left when running ``length`` would
    leave less than twice ``length`` for the anneal after it."""
    return time_left if 3 * length > time_left else length


def _choose_strategy(strategy: str, num_variables: int, time_limit: float | None,
                     cluster_moves: str) -> str:
    """"tempering", "anneal", or "auto": anneal from ANNEAL_MIN_VARIABLES variables on, unless
    there is no time limit to pace it or cluster moves (a tempering feature) were asked for."""
    if strategy not in ("auto", "tempering", "anneal"):
        raise ValueError(f"strategy must be 'auto', 'tempering' or 'anneal', got {strategy!r}")
    if strategy == "anneal" and time_limit is None:
        raise ValueError("the anneal strategy needs a time limit")
    if strategy == "anneal" and cluster_moves == "on":
        raise ValueError("cluster moves need the tempering strategy")
    if strategy == "auto":
        large = num_variables >= ANNEAL_MIN_VARIABLES
        return "anneal" if large and time_limit is not None and cluster_moves != "on" else "tempering"
    return strategy


def _choose_hold_cold(choice: str, replicas: Replicas) -> bool:
    """"on", "off", or "auto": hold the cold end on sparse graphs of low mean degree."""
    if choice == "auto":
        return replicas.mean_degree() <= HOLD_COLD_MAX_DEGREE
    return choice == "on"


def _choose_cluster_moves(choice: str, replicas: Replicas, ensembles: int) -> bool:
    """"on", "off", or "auto": on for sparse graphs of low mean degree (at most
    CLUSTER_MAX_DEGREE couplings per variable), where clusters of differing sites stay small
    at the cold end instead of percolating."""
    if choice not in ("auto", "on", "off"):
        raise ValueError(f"cluster_moves must be 'auto', 'on' or 'off', got {choice!r}")
    possible = ensembles >= 2 and replicas.supports_cluster_moves
    if choice == "on" and not possible:
        raise ValueError("cluster moves need sparse couplings without constraints or k-hot groups")
    if choice == "auto":
        return possible and replicas.mean_degree() <= CLUSTER_MAX_DEGREE
    return choice == "on"


def _choose_window_moves(choice: str, replicas: Replicas) -> Torus | None:
    """The lattice for window moves, or None: "auto" when the couplings lie on a periodic 2D
    lattice (``Torus.detect``) and nothing forbids rewriting blocks of bits; "on" insists."""
    if choice == "off" or not replicas.supports_window_moves:
        if choice == "on":
            raise ValueError("window moves need a problem without constraints, k-hot groups or "
                             "fixed bits")
        return None
    torus = Torus.detect(replicas.problem)
    if torus is None and choice == "on":
        raise ValueError("window moves need couplings on a periodic 2D lattice numbered row by row")
    return torus


def _choose_moves(moves: str, replicas: Replicas, probe_beta: float) -> bool:
    """True for parallel trials, False for sweeps. "auto" times both briefly on this problem and
    keeps whichever does more trials (n per sweep or per iteration) per second."""
    if moves == "trial":
        return True
    if moves == "sweep":
        return False
    if moves != "auto":
        raise ValueError(f"moves must be 'auto', 'sweep' or 'trial', got {moves!r}")
    snapshot = (replicas.states.copy(), replicas.fields.copy(), replicas.energies.copy(),
                replicas.rng.copy(), replicas.best_states.copy(), replicas.best_energies.copy(),
                replicas.lhs.copy())
    rates = []
    for trial in (False, True):
        steps = 2
        while True:
            t0 = time.perf_counter()
            replicas.anneal(np.full(steps, probe_beta), trial, 0.0, False)
            dt = time.perf_counter() - t0
            if dt > 0.005 or steps >= 4096:
                break
            steps *= 4
        rates.append(steps / max(dt, 1e-9))
    (replicas.states[:], replicas.fields[:], replicas.energies[:], replicas.rng[:],
     replicas.best_states[:], replicas.best_energies[:], replicas.lhs[:]) = snapshot
    return rates[1] > rates[0]


def _finish(problem: BinaryQuadraticProblem, driver: _Driver, states: np.ndarray,
            counts: np.ndarray | None, solution_mode: str, limit: int | None,
            info: dict[str, Any], constraints: LinearInequalities | None = None) -> AnnealResult:
    if solution_mode not in ("COMPLETE", "QUICK"):
        raise ValueError(f"solution_mode must be COMPLETE or QUICK, got {solution_mode!r}")
    uniq, energies, freq = build_result(problem, states, counts,
                                        limit=1 if solution_mode == "QUICK" else limit,
                                        constraints=constraints)
    driver.record(float(energies[0]), uniq[0])
    return AnnealResult(states=uniq, energies=energies, frequencies=freq, timing=driver.timing(),
                       progress=driver.progress, stop_reason=driver.stop_reason, info=info)


def anneal_da(
    problem: BinaryQuadraticProblem,
    *,
    num_runs: int = 16,
    num_iterations: int = 10_000,
    temperature_start: float | None = None,
    temperature_decay: float | None = None,
    temperature_interval: int = 100,
    temperature_mode: str | CoolingMode = CoolingMode.EXPONENTIAL,
    noise_model: str = "METROPOLIS",
    offset_increase_rate: float | None = None,
    moves: str = "trial",
    initial: InitialState = None,
    fixed: Mapping[int, bool] | None = None,
    solution_mode: str = "COMPLETE",
    seed: int | None = None,
    time_limit: float | None = None,
    target_energy: float | None = None,
    cancel: Cancel = None,
    parallel: bool = True,
    constraints: LinearInequalities | None = None,
    groups: KHotGroups | None = None,
) -> AnnealResult:
    """Simulated annealing with the Digital Annealer's dynamics (fujitsuDA / DA2 / MixedMode).

    ``num_runs`` independent runs of ``num_iterations`` steps each. A step is one parallel trial
    (every bit tried, one accepted bit flips, dynamic offset) with ``moves="trial"``, or one
    sequential Metropolis sweep with ``moves="sweep"`` (the same number of trials, n). T starts at
    ``temperature_start`` and drops every ``temperature_interval`` steps by ``temperature_mode``.
    Temperatures and the offset rate left as None are derived from the problem's energy deltas.

    Returns each run's best state seen, distinct states merged (COMPLETE) or only the best (QUICK).
    With ``constraints`` every energy (moves, best states, results) includes their penalty.
    With ``groups`` every state visited holds each k-hot group's count (swap moves, see
    ``Replicas``).

    Example:
        >>> p = BinaryQuadraticProblem.from_dict({(0, 0): -1, (0, 1): 2, (1, 1): -1})
        >>> anneal_da(p, num_runs=4, num_iterations=200, seed=1).best_energy
        -1.0
    """
    if num_iterations < 1:
        raise ValueError(f"number_iterations must be >= 1, got {num_iterations}")
    if noise_model not in ("METROPOLIS", "GIBBS"):
        raise ValueError(f"noise_model must be METROPOLIS or GIBBS, got {noise_model!r}")
    driver = _Driver(problem, time_limit, cancel, target_energy)
    reps = Replicas(problem, num_runs, seed, initial, fixed, parallel, constraints, groups)
    # Measuring the problem costs a short quench: skip it when the caller set everything.
    needs_scales = (temperature_start is None or temperature_decay is None or moves == "auto"
                    or (offset_increase_rate is None and moves != "sweep"))
    large, small = reps.delta_scales() if needs_scales else (1.0, 1.0)
    beta_hot, beta_cold = beta_range_from_deltas(large, small)
    if temperature_start is None:
        schedule = TemperatureSchedule.spanning(beta_hot, beta_cold, num_iterations,
                                                temperature_interval, CoolingMode(temperature_mode))
    else:
        decay = temperature_decay
        if decay is None:
            decay = TemperatureSchedule.spanning(1.0 / temperature_start, beta_cold, num_iterations,
                                                 temperature_interval).decay
        schedule = TemperatureSchedule(temperature_start, decay, temperature_interval,
                                       CoolingMode(temperature_mode))
    trial = _choose_moves(moves, reps, beta_cold)
    offset_rate = small if offset_increase_rate is None else float(offset_increase_rate)
    gibbs = noise_model == "GIBBS"
    driver.begin_anneal()
    done, per_step = 0, math.inf
    # Parallel trials (at most one flip an iteration, so a predictable cost) start with a call
    # of about FIRST_CHUNK_TRIALS bit trials (a few ms): short solves then take one call (each
    # costs a GIL round trip and a best-state check); its timing sizes the later calls. Sweeps,
    # whose flips cost O(n) each on dense problems, start with one sweep.
    first = 1 if not trial else max(1, FIRST_CHUNK_TRIALS // (
        problem.num_variables * num_runs * max(1, problem.num_variables // 1024)))
    while done < num_iterations and not driver.should_stop():
        steps = driver.chunk_size(done, num_iterations, per_step, first)
        t0 = time.perf_counter()
        reps.anneal(schedule.betas(steps), trial, offset_rate, gibbs)
        per_step = (time.perf_counter() - t0) / steps
        done += steps
        reps.maybe_resync()
        if done < num_iterations:  # the last best is scored exactly by _finish
            driver.observe(reps)
    info = {"beta_range": (beta_hot, beta_cold), "moves": "trial" if trial else "sweep",
            "offset_increase_rate": offset_rate, "iterations_done": done,
            "temperature_start": schedule.start, "temperature_decay": schedule.decay}
    return _finish(problem, driver, reps.best_states, None, solution_mode, None, info,
                   reps.constraints)


def parallel_tempering(
    problem: BinaryQuadraticProblem,
    *,
    num_replicas: int = 32,
    num_sweeps: int = 1_000,
    beta_range: tuple[float, float] | None = None,
    ladder: np.ndarray | None = None,
    moves: str = "sweep",
    steps_per_exchange: int = 1,
    tune_ladder: bool = True,
    num_ensembles: int = 1,
    offset_increase_rate: float | None = None,
    noise_model: str = "METROPOLIS",
    initial: InitialState = None,
    fixed: Mapping[int, bool] | None = None,
    solution_mode: str = "COMPLETE",
    seed: int | None = None,
    time_limit: float | None = None,
    target_energy: float | None = None,
    cancel: Cancel = None,
    parallel: bool = True,
    constraints: LinearInequalities | None = None,
    groups: KHotGroups | None = None,
) -> AnnealResult:
    """Replica-exchange Monte Carlo (fujitsuDAPT / DA2PT) on a geometric ladder of temperatures.

    Each round every replica takes ``steps_per_exchange`` moves (sweeps or parallel trials, or
    "auto": whichever runs more trials per second on this problem) at its temperature, then
    neighbours swap. The ladder spans ``beta_range`` or, when omitted, the range derived from the
    problem's energy deltas; unless a ``ladder`` is given (or ``tune_ladder`` is off), the first
    ~5 % of the rounds also move the inner temperatures until neighbours swap equally often.
    ``num_sweeps`` counts rounds x steps per replica. ``num_ensembles`` > 1 runs that many
    independent ladders of ``num_replicas`` each, one per thread with no barrier between rounds
    (the fastest use of several cores).

    Returns each replica's best state seen (COMPLETE, distinct states merged) or only the best.
    """
    if num_sweeps < 1:
        raise ValueError(f"number of sweeps/iterations must be >= 1, got {num_sweeps}")
    if steps_per_exchange < 1:
        raise ValueError(f"steps_per_exchange must be >= 1, got {steps_per_exchange}")
    if num_ensembles < 1:
        raise ValueError(f"num_ensembles must be >= 1, got {num_ensembles}")
    driver = _Driver(problem, time_limit, cancel, target_energy)
    reps = Replicas(problem, num_replicas * num_ensembles, seed, initial, fixed, parallel,
                    constraints, groups)
    large, small = reps.delta_scales()
    tune_ladder = tune_ladder and ladder is None
    if ladder is None:
        hot, cold = beta_range if beta_range is not None else beta_range_from_deltas(large, small)
        if not (0 < hot < cold and math.isfinite(cold)):
            raise ValueError(f"beta_range must satisfy 0 < hot < cold, got {(hot, cold)}")
        ladder = geometric_ladder(hot, cold, num_replicas)
    ladder = np.ascontiguousarray(ladder, dtype=np.float64)
    if ladder.shape != (num_replicas,) or np.any(np.diff(ladder) < 0) or ladder[0] <= 0:
        raise ValueError("ladder must hold num_replicas positive betas in ascending order")
    trial = _choose_moves(moves, reps, float(ladder[-1]))
    offset_rate = small if offset_increase_rate is None else float(offset_increase_rate)
    tempering = TemperingLadder(reps, ladder, steps_per_exchange, trial, offset_rate,
                          noise_model == "GIBBS", num_ensembles)
    total_rounds = max(1, num_sweeps // steps_per_exchange)
    driver.begin_anneal()
    if tune_ladder:
        # Six doubling stages take 63 x the first: about 5 % of the rounds, at least 10 first.
        tempering.tune(driver, max(TUNE_ROUNDS, total_rounds // 1260))
    while tempering.rounds_done < total_rounds and not driver.should_stop():
        tempering.advance(driver, total_rounds - tempering.rounds_done)
    info = {"ladder": tempering.ladder, "moves": "trial" if trial else "sweep",
            "cluster_moves": tempering.cluster_moves, "cluster_move_rounds": tempering.cluster_rounds,
            "rounds_done": tempering.rounds_done, "swap_rates": tempering.swap_rates()}
    return _finish(problem, driver, reps.best_states, None, solution_mode, None, info,
                   reps.constraints)


def solve_time_limited(
    problem: BinaryQuadraticProblem,
    *,
    time_limit: float = 10.0,
    target_energy: float | None = None,
    num_runs: int = 16,
    num_groups: int = 1,
    num_outputs: int = 5,
    initial: InitialState = None,
    fixed: Mapping[int, bool] | None = None,
    seed: int | None = None,
    cancel: Cancel = None,
    parallel: bool = True,
    moves: str = "sweep",
    constraints: LinearInequalities | None = None,
    energy_parts: EnergyParts | None = None,
    penalty_scale: float | None = None,
    groups: KHotGroups | None = None,
    cluster_moves: str = "auto",
    strategy: str = "auto",
    hold_cold: str = "auto",
    window_moves: str = "auto",
) -> AnnealResult:
    """The time-limited DA3 mode: ``num_groups`` groups search until ``time_limit`` passes or the
    best reaches ``target_energy``.

    ``strategy``: "tempering": each group runs ``ENSEMBLES_PER_GROUP`` independent tempering
    ladders of ``num_runs`` replicas, tuned from swap rates during the first rounds; "anneal":
    each group runs ``ANNEAL_REPLICAS_PER_GROUP`` replicas through annealing paced by the
    clock (``ClockAnneal``; ``num_runs`` is then unused); "auto": anneal from
    ``ANNEAL_MIN_VARIABLES`` variables on, where tempering's exchanges die. ``hold_cold``: whether
    the anneal strategy holds the cold end after its first anneal instead of restarting ("on",
    "off", or "auto": on graphs of mean degree <= ``HOLD_COLD_MAX_DEGREE``). ``window_moves``:
    whether the cold hold also runs exact window moves (``lattice``) when the couplings lie on a
    periodic 2D lattice ("on", "off", or "auto": wherever they do and there are no constraints,
    k-hot groups or fixed bits).

    Every chunk each replica's best since the last harvest enters its group's pool of the
    ``num_outputs`` lowest distinct states; the result holds all groups' pools
    (num_outputs x num_groups states at most), frequency = times a state was harvested.
    With ``constraints`` (the DA3's linear inequalities) every energy includes their penalty.
    ``energy_parts`` splits each progress entry's energy into (energy, penalty energy).

    ``penalty_scale``: the energy a broken constraint costs (penalty terms inside the problem);
    the ladder's hot end then crosses it as it would the problem's typical uphill move, so that
    hot replicas move between feasible regions. With ``constraints`` their largest single-flip
    penalty (lambda_c |a_ci|) counts too. Measured on random problems with one-hot groups,
    equalities and inequalities (tests/service/web/test_constrained_service.py): a ladder sized by
    the objective alone stayed inside one feasible region and missed the optimum in 17 of 24
    solves; sized this way, in none.
    """
    if num_groups < 1 or num_outputs < 1:
        raise ValueError("num_groups and num_outputs must be >= 1")
    driver = _Driver(problem, time_limit, cancel, target_energy, energy_parts)
    strategy = _choose_strategy(strategy, problem.num_variables, time_limit, cluster_moves)
    if hold_cold not in ("auto", "on", "off"):
        raise ValueError(f"hold_cold must be 'auto', 'on' or 'off', got {hold_cold!r}")
    if hold_cold == "on" and strategy != "anneal":
        raise ValueError("holding the cold end is part of the anneal strategy")
    if window_moves not in ("auto", "on", "off"):
        raise ValueError(f"window_moves must be 'auto', 'on' or 'off', got {window_moves!r}")
    if window_moves == "on" and strategy != "anneal":
        raise ValueError("window moves are part of the anneal strategy (its cold hold)")
    chains = num_groups * ENSEMBLES_PER_GROUP
    per_group = ANNEAL_REPLICAS_PER_GROUP if strategy == "anneal" else num_runs * ENSEMBLES_PER_GROUP
    reps = Replicas(problem, per_group * num_groups, seed, initial, fixed, parallel, constraints,
                    groups)
    active = reps.constraints  # None when the constraints given were empty
    large, small = reps.delta_scales()
    barrier = 0.0 if penalty_scale is None else float(penalty_scale)
    if active is not None:
        entries = active.matrix.tocoo()
        barrier = max(barrier, float((active.weights[entries.row] * np.abs(entries.data)).max(initial=0.0)))
    hot, cold = beta_range_from_deltas(max(large, barrier), small)
    trial = _choose_moves(moves, reps, cold)
    pools = [DistinctPool(num_outputs) for _ in range(num_groups)]
    # With inequalities the lowest penalised energies may all break a constraint (a small
    # lambda): each group also keeps the best feasible states its replicas were seen in.
    feasible_pools = ([DistinctPool(num_outputs) for _ in range(num_groups)]
                      if active is not None else [])

    def harvest() -> None:
        for g, pool in enumerate(pools):
            part = slice(g * per_group, (g + 1) * per_group)
            pool.add(reps.best_states[part], reps.best_energies[part])
            if active is not None:
                for states, energies in ((reps.best_states[part], reps.best_energies[part]),
                                         (reps.states[part], reps.energies[part])):
                    ok = ~active.violated(states)
                    feasible_pools[g].add(states[ok], energies[ok])
        reps.reset_best()

    info: dict[str, Any] = {"strategy": strategy, "moves": "trial" if trial else "sweep"}
    driver.begin_anneal()
    if strategy == "anneal":
        hold = _choose_hold_cold(hold_cold, reps)
        if window_moves == "on" and not hold:
            raise ValueError("window moves run in the anneal strategy's cold hold, which is off")
        annealing = ClockAnneal(reps, hot, cold, trial, small, hold,
                                _choose_window_moves(window_moves, reps) if hold else None)
        annealing.run(driver, harvest)
        info.update(beta_range=(hot, cold), anneals=annealing.anneals, hold_cold=annealing.hold_cold,
                    sweeps_done=annealing.sweeps_done, cluster_moves=False, cluster_move_rounds=0,
                    window_moves=annealing.torus is not None, window_passes=annealing.window_passes)
    else:
        # A group's ladders are consecutive ensembles, so its replicas are one slice as above.
        tempering = TemperingLadder(reps, geometric_ladder(hot, cold, num_runs), 1, trial, small, False,
                                    chains, cluster_moves=_choose_cluster_moves(cluster_moves, reps, chains))
        tempering.tune(driver, TUNE_ROUNDS, extend_cold=active is not None)
        while not driver.should_stop():
            tempering.advance(driver, None)
            harvest()
        info.update(ladder=tempering.ladder, cluster_moves=tempering.cluster_moves,
                    cluster_move_rounds=tempering.cluster_rounds, rounds_done=tempering.rounds_done,
                    swap_rates=tempering.swap_rates())
    harvest()
    states, counts = zip(*(pool.arrays() for pool in pools + feasible_pools if len(pool)))
    return _finish(problem, driver, np.concatenate(states), np.concatenate(counts), "COMPLETE",
                   num_outputs * num_groups, info, active)
