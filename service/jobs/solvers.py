"""DA parameter blocks -> engine calls, and engine results -> DA replies.

Mapping (see docs/service.md):
    * fujitsuDA, fujitsuDAMixedMode -> ``anneal_da(moves="trial")``, the DA's own dynamics.
      First-generation hardware is fixed point: unless ``expert_mode`` is true the problem is
      rounded with ``to_hardware_precision`` and the manual temperatures are ignored (automatic
      schedule); energies are always reported in the original units (``result.rescored``).
    * fujitsuDA2, fujitsuDA2MixedMode -> ``anneal_da(moves="trial")`` on the original (64-bit)
      coefficients; ``expert_mode`` false ignores manual temperatures.
    * fujitsuDAPT -> ``parallel_tempering`` on the rounded problem (its default offset rate of
      1,000 is in hardware units); fujitsuDA2PT -> ``parallel_tempering`` on the original one,
      ``maximum_replica_temperature`` sets the ladder's hot end. number_iterations ->
      num_sweeps 1:1, number_replicas -> num_replicas, moves="trial".
    * fujitsuDA3 -> ``solve_time_limited``. With a penalty polynomial the annealed objective is
      energy + penalty_coef x penalty; ``inequalities`` are kept natively by the engine (each
      adds lambda x max(0, lhs), service.engine.constraints). Each solution and progress entry
      reports the energy and the penalty energy (the penalty polynomial's value plus the
      inequalities' lambda x max(0, lhs)); feasible solutions (penalty energy 0) come first.
    * ``k_hot_groups`` (every block) -> the engine's ``KHotGroups``, kept by swap moves
      (service.jobs.k_hot); ``final_states`` (fujitsuDA/fujitsuDA2 expert blocks) -> the
      engine's ``Sampling`` at ``temperature_start``: each run's final state, not its best.
    * ``random_seed`` -> ``seed``. Always ``parallel=False``: the service runs many jobs on a pool
      of threads, one per core, and numba's parallel layer must not be entered from several.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from client.wire.da import SOLVER_BLOCKS, JobStatus
from client.wire.compact import CompactInequalities, CompactProblem, CompactReply

from .higher_order import restore_states
from .k_hot import k_hot_groups
from .patterns import RegisteredPattern
from .presets import TEMPERING_BLOCKS, schedule_for
from .solve_job import SolveJob

__all__ = ["SolveOptions", "build_problem", "estimate_seconds", "qubo_solution_dict", "solve_request"]

#: Rough cost of one single-bit trial on one core (s); used only to refuse oversized sync solves.
SECONDS_PER_TRIAL = 1e-8


class SolveOptions:
    """Limits the service imposes on one solve."""

    def __init__(self, time_limit: float | None = None, cancel: threading.Event | Callable[[], bool] | None = None,
                 max_iterations: int | None = None) -> None:
        self.time_limit = time_limit
        self.cancel = cancel
        self.max_iterations = max_iterations


def build_problem(p: CompactProblem, pattern: RegisteredPattern | None = None) -> Any:
    """The engine problem of a CompactProblem (ValueError with a message on bad input).

    A problem resolved against a registered coupling pattern is scattered straight into the
    pattern's CSR layout (sparse storage: for the parallel trial, CSR and dense cost the same per
    iteration at the trainer's 18 % density, and the dense build alone costs ~1 ms).
    """
    from service.engine import BinaryQuadraticProblem

    if pattern is not None:
        return pattern.problem(p.values, p.linear, p.constant)
    return BinaryQuadraticProblem.from_arrays(p.rows, p.cols, p.values, linear=p.linear,
                                              constant=p.constant, num_variables=p.num_variables)


def _config(cfg: Mapping[str, bool] | None) -> dict[int, bool] | None:
    return None if not cfg else {int(k): bool(v) for k, v in cfg.items()}


def estimate_seconds(request: SolveJob) -> float:
    """A rough single-core wall time of the request's solve, for the sync cap."""
    p = request.parameters
    n = request.problem.num_variables
    if request.solver == "fujitsuDA3":
        return float(p.get("time_limit_sec", 10))
    copies = p.get("number_runs") or p.get("number_replicas") or 16
    return float(copies) * float(p.get("number_iterations", 1)) * n * SECONDS_PER_TRIAL


def build_constraints(request: SolveJob, num_variables: int, scale: float = 1.0) -> Any:
    """The engine's LinearInequalities of a request (None without any); ``scale`` multiplies
    the weights (a problem rounded to hardware units is scaled too)."""
    from service.engine import LinearInequalities

    ineq = request.inequalities
    if ineq is None or ineq.num_constraints == 0:
        return None
    return LinearInequalities.from_arrays(ineq.constraint, ineq.variable, ineq.coefficient,
                                          ineq.constant, ineq.weights * scale, num_variables)


def solve_request(request: SolveJob, options: SolveOptions | None = None) -> CompactReply:
    """Run the request's solver on the engine; ValueError for a problem the engine refuses."""
    from service.engine import EmbeddedSampler, Stop
    from service.engine.precision import to_hardware_precision
    from service.engine.solver import EnergyParts

    options = options or SolveOptions()
    start = time.perf_counter()
    p = request.parameters
    solver = request.solver
    original = build_problem(request.problem, request.pattern)
    penalty = None if request.penalty is None else build_problem(request.penalty)
    coef = float(p.get("penalty_coef", 1.0))
    objective = original
    if penalty is not None:
        objective = _combine(original, penalty, coef)
    first_gen = solver in ("fujitsuDA", "fujitsuDAMixedMode", "fujitsuDAPT")
    expert = bool(p.get("expert_mode", False))
    annealed, scale = objective, 1.0
    if first_gen and not expert:
        annealed, scale = to_hardware_precision(objective)
    constraints = build_constraints(request, original.num_variables)
    annealed_constraints = constraints if scale == 1.0 else build_constraints(
        request, original.num_variables, scale)
    seed = p.get("random_seed")
    # The compact transport's array form of guidance_config wins over the map.
    initial: Any = (request.guidance_state if request.guidance_state is not None
                    else _config(p.get("guidance_config")))
    if "number_iterations" in p and options.max_iterations is not None \
            and int(p["number_iterations"]) > options.max_iterations:
        raise ValueError(f"{solver}.number_iterations: {p['number_iterations']} exceeds this "
                         f"server's cap of {options.max_iterations}")
    beta_range = None
    if solver in TEMPERING_BLOCKS and p.get("maximum_replica_temperature") is not None:
        beta_range = _beta_range_with_top(annealed, float(p["maximum_replica_temperature"]), seed)
    time_limited = solver == "fujitsuDA3"
    schedule = schedule_for(solver, p, beta_range=beta_range, penalty_scale=(
        _penalty_scale(annealed, p, penalty) if time_limited else None))
    parts: EnergyParts | None = None
    if time_limited and (penalty is not None or constraints is not None):
        def split(state: np.ndarray) -> tuple[float, float]:
            x = state[None, : original.num_variables]
            polynomial, inequality = _penalty_parts(x, penalty, constraints)
            return float(original.energies(x)[0]), float(polynomial[0] + inequality[0])
        parts = split
    stop = Stop(time_limit=options.time_limit, cancel=options.cancel,
                target_energy=p.get("target_energy"))
    groups = k_hot_groups(p, original.num_variables, constraints is not None)
    result = EmbeddedSampler(parallel=False).sample(
        annealed, schedule, initial=initial, fixed=_config(p.get("fixed_config")), seed=seed,
        constraints=annealed_constraints, stop=stop, energy_parts=parts, groups=groups)
    if annealed is not objective:
        result = result.rescored(objective)
    states, freq = result.states, result.frequencies
    penalty_energies = None
    if request.aux_pairs is not None:
        states, freq = _drop_auxiliaries(states, freq, request.aux_pairs, request.num_output_variables)
        full = np.zeros((len(states), original.num_variables), dtype=np.uint8)
        full[:, : states.shape[1]] = states
        states_for_energy = restore_states(full, request.aux_pairs, states.shape[1])
    else:
        states_for_energy = states
    if penalty is None and constraints is None and request.aux_pairs is None:
        # result.energies are exact on ``objective``, which is the original problem here
        energies = np.asarray(result.energies, dtype=np.float64)
    else:
        energies = np.atleast_1d(original.energies(states_for_energy)).astype(np.float64)
    if penalty is None and constraints is None:
        order = np.lexsort((-freq, energies))
    else:
        polynomial, inequality = _penalty_parts(states_for_energy, penalty, constraints)
        penalty_energies = polynomial + inequality
        infeasible = penalty_energies > 1e-9
        if constraints is not None:
            infeasible |= constraints.violated(states_for_energy)
        # Feasible (zero penalty) first, then by the annealed objective.
        total = energies + coef * polynomial + inequality
        order = np.lexsort((energies, total, infeasible))
    states, energies, freq = states[order], energies[order], freq[order]
    if penalty_energies is not None:
        penalty_energies = penalty_energies[order]
    solve_seconds = time.perf_counter() - start
    timing = {"setup": float(result.timing.get("setup", 0.0)),
              "anneal": float(result.timing.get("anneal", 0.0)), "solve": solve_seconds}
    return CompactReply(status=JobStatus.DONE.value, states=states, energies=energies, frequencies=freq,
                        penalty_energies=penalty_energies, timing=timing,
                        # progress of a rounded problem is in hardware units: scale it back
                        progress=[(float(t), *(float(v) / scale for v in rest))
                                  for t, *rest in result.progress],
                        stop_reason=result.stop_reason)


def _penalty_scale(annealed: Any, params: Mapping[str, Any], penalty: Any) -> float | None:
    """With penalty terms inside the annealed problem (a weighted penalty polynomial, one-hot
    groups), the largest single-flip change of its energy: what a broken constraint can cost."""
    groups = any((params.get(key) or {}).get("numbers")
                 for key in ("one_way_one_hot_groups", "two_way_one_hot_groups"))
    if penalty is None and not groups:
        return None
    swing = np.abs(annealed.linear) + np.asarray(abs(annealed.couplings).sum(axis=1)).ravel()
    return float(swing.max(initial=0.0))


def _penalty_parts(states: np.ndarray, penalty: Any, constraints: Any
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Each state's penalty polynomial value and its inequalities' sum of lambda x max(0, lhs)
    (zeros for what the request lacks); their sum is the reported ``penalty_energy``."""
    zeros = np.zeros(len(states))
    polynomial = zeros if penalty is None else np.atleast_1d(penalty.energies(states))
    inequality = zeros if constraints is None else constraints.penalty(states)
    return polynomial, inequality


def _drop_auxiliaries(states: np.ndarray, freq: np.ndarray, aux_pairs: np.ndarray,
                      n_out: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The original variables of each state (auxiliaries dropped), duplicates merged."""
    from service.engine.result import distinct_states

    n = states.shape[1] - len(aux_pairs) if n_out is None else n_out
    return distinct_states(np.ascontiguousarray(states[:, :n]), freq)


def _block(solver: str, **params: Any) -> dict[str, Any]:
    """A parameter block with the model's defaults for what ``params`` leaves out, unchecked:
    the warm-up runs smaller solves than a request may ask for."""
    return SOLVER_BLOCKS[solver].model_construct(**params).model_dump(mode="json")


def warm_up() -> float:
    """Load every serial kernel the service uses (from numba's cache) so that the first request
    does not pay for it; returns the seconds it took."""
    start = time.perf_counter()
    problem = CompactProblem.from_arrays([0, 1, 2], [1, 2, 3], [1.0, -2.0, 1.5], linear=[-1.0, 0.5, -0.5, 1.0])
    for solver, params in (("fujitsuDA2", {"number_runs": 2}), ("fujitsuDA2PT", {"number_replicas": 3})):
        solve_request(SolveJob(problem, solver, _block(solver, number_iterations=4, random_seed=0,
                                                       **params)))
    dense = CompactProblem.from_arrays(*np.triu_indices(12, 1), np.ones(66), num_variables=12)
    solve_request(SolveJob(dense, "fujitsuDA2", _block("fujitsuDA2", number_runs=2,
                                                       number_iterations=4)))
    # A DA3 job with inequalities (their kernels are compiled apart from the plain ones).
    inequalities = CompactInequalities(np.array([0]), np.array([1]), np.array([1.0]),
                                       np.array([-1.0]), np.array([2.0]))
    for p in (problem, dense):
        solve_request(SolveJob(p, "fujitsuDA3", _block("fujitsuDA3", num_run=2,
                                                       num_output_solution=1, random_seed=0),
                               inequalities=inequalities), SolveOptions(time_limit=0.01))
    # A problem on a coupling pattern: values as a request body decodes them (read-only).


    pattern = RegisteredPattern.build("warm-up", 4, problem.rows, problem.cols)
    for dtype in (np.float32, np.float64):
        values = np.ones(3, dtype=dtype)
        values.flags.writeable = False
        pattern.problem(values, None, 0.0)
    # The DA JSON term scanner (bytes and bytearray bodies).
    from service.engine.term_scan import scan_binary_polynomial

    body = b'{"binary_polynomial": {"terms": [{"c": 1.5, "p": [0, 1]}, {"c": -1, "p": [2]}]}}'
    for raw in (body, bytearray(body)):
        scan_binary_polynomial(raw)
    return time.perf_counter() - start


def _combine(a: Any, b: Any, coef: float) -> Any:
    from service.engine import BinaryQuadraticProblem

    ia, ja, va = a.to_triplets()
    ib, jb, vb = b.to_triplets()
    return BinaryQuadraticProblem.from_arrays(
        np.concatenate([ia, ib]), np.concatenate([ja, jb]), np.concatenate([va, coef * vb]),
        linear=a.linear + coef * b.linear, constant=a.constant + coef * b.constant,
        num_variables=a.num_variables)


def _beta_range_with_top(problem: Any, top_temperature: float, seed: int | None) -> tuple[float, float]:
    """The automatic ladder's cold end, with the hot end at ``maximum_replica_temperature``."""
    from service.engine import Replicas
    from service.engine.schedule import beta_range_from_deltas

    reps = Replicas(problem, 4, seed, parallel=False)
    large, small = reps.delta_scales()
    _, cold = beta_range_from_deltas(large, small)
    hot = 1.0 / top_temperature
    if hot >= cold:
        cold = hot * 10.0
    return hot, cold


def _ms(seconds: float) -> int:
    return int(round(max(seconds, 0.0) * 1000))


def qubo_solution_dict(reply: CompactReply, version: str, *, queue_seconds: float = 0.0,
                       total_seconds: float | None = None) -> dict[str, Any]:
    """The DA ``qubo_solution`` of a reply for path ``version`` (v1/v2 int ms, v3+ str ms)."""
    n = reply.num_variables
    keys = [str(i) for i in range(n)]
    v3 = version not in ("v1", "v2")
    solutions = []
    states = reply.states.astype(bool)
    for k in range(len(reply.energies)):
        sol: dict[str, Any] = {"energy": float(reply.energies[k]),
                               "frequency": int(reply.frequencies[k]),
                               "configuration": dict(zip(keys, states[k].tolist()))}
        if v3:
            sol["penalty_energy"] = (0.0 if reply.penalty_energies is None
                                     else float(reply.penalty_energies[k]))
        solutions.append(sol)
    t = reply.timing
    solve = t.get("solve", t.get("setup", 0.0) + t.get("anneal", 0.0))
    total = total_seconds if total_seconds is not None else queue_seconds + solve
    if v3:
        timing: dict[str, Any] = {"cpu_time": str(_ms(solve)), "queue_time": str(_ms(queue_seconds)),
                                  "solve_time": str(_ms(solve)), "total_elapsed_time": str(_ms(total)),
                                  "detailed": {"anneal_time": str(_ms(t.get("anneal", 0.0)))}}
        progress = [{"energy": float(e), "penalty_energy": float(rest[0]) if rest else 0.0,
                     "time": round(float(s), 6)}
                    for s, e, *rest in reply.progress if math.isfinite(e)]
        return {"result_status": True, "solutions": solutions, "timing": timing, "progress": progress}
    timing = {"cpu_time": _ms(solve), "queue_time": _ms(queue_seconds), "solve_time": _ms(solve),
              "total_elapsed_time": _ms(total), "detailed": {"anneal_time": _ms(t.get("anneal", 0.0))}}
    return {"result_status": True, "solutions": solutions, "timing": timing}
