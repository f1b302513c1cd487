"""The DA parameter blocks as engine schedules, both ways, in one place.

``schedule_for`` reads a block validated by its model (``client.wire.da``: every default filled
in there, none restated here) and gives the engine's ``Schedule``; ``block_for`` gives the
``fujitsuDA`` block that asks a DA-compatible service for an ``Annealing`` schedule, so the
trainer's embedded and remote solvers run one schedule definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.engine.sampler import Annealing, Sampling, Schedule, Tempering, TimeLimited

__all__ = ["ANNEALING_BLOCKS", "TEMPERING_BLOCKS", "block_for", "schedule_for"]

#: Blocks run as ``Annealing`` (DA and DA2, with their mixed-mode twins) and as ``Tempering``.
ANNEALING_BLOCKS = ("fujitsuDA", "fujitsuDAMixedMode", "fujitsuDA2", "fujitsuDA2MixedMode")
TEMPERING_BLOCKS = ("fujitsuDAPT", "fujitsuDA2PT")


def schedule_for(solver: str, params: Mapping[str, Any], *,
                 beta_range: tuple[float, float] | None = None,
                 penalty_scale: float | None = None) -> Schedule:
    """The schedule of a validated block. The DA's annealers run parallel trials.

    Args:
        beta_range: the tempering ladder's ends, when the block fixes its top temperature
            (the caller derives it from the problem).
        penalty_scale: what a broken in-problem constraint costs (DA3's ladder crosses it).
    """
    if solver in ANNEALING_BLOCKS:
        if params.get("final_states"):  # the model checked expert mode and the temperature
            return Sampling(runs=int(params["number_runs"]),
                            sweeps=int(params["number_iterations"]),
                            temperature=float(params["temperature_start"]), moves="trial")
        # Only the expert mode of the blocks that have one takes the user's temperatures.
        manual = bool(params.get("expert_mode"))
        return Annealing(runs=int(params["number_runs"]), steps=int(params["number_iterations"]),
                         temperature_start=params["temperature_start"] if manual else None,
                         temperature_decay=params["temperature_decay"] if manual else None,
                         temperature_interval=int(params["temperature_interval"]),
                         temperature_mode=params["temperature_mode"],
                         noise=params.get("noise_model", "METROPOLIS"),
                         offset_increase_rate=params["offset_increase_rate"], moves="trial",
                         keep=params["solution_mode"])
    if solver in TEMPERING_BLOCKS:
        return Tempering(replicas=int(params["number_replicas"]),
                         sweeps=int(params["number_iterations"]), beta_range=beta_range,
                         moves="trial", offset_increase_rate=params["offset_increase_rate"],
                         keep=params["solution_mode"])
    if solver == "fujitsuDA3":
        return TimeLimited(seconds=float(params["time_limit_sec"]), runs=int(params["num_run"]),
                           groups=int(params["num_group"]),
                           outputs=int(params["num_output_solution"]), moves="sweep",
                           penalty_scale=penalty_scale)
    raise ValueError(f"unknown solver {solver!r}")


def block_for(schedule: Annealing | Sampling) -> tuple[str, dict[str, Any]]:
    """The ``fujitsuDA`` block (expert mode) whose ``schedule_for`` is ``schedule``, up to the
    moves: a DA service runs parallel trials whatever ``schedule.moves`` says. A ``Sampling``
    schedule goes out with the SpinOut extension ``final_states``."""
    if isinstance(schedule, Sampling):
        return "fujitsuDA", {"expert_mode": True, "number_runs": schedule.runs,
                             "number_iterations": schedule.sweeps,
                             "temperature_start": schedule.temperature, "final_states": True,
                             "offset_increase_rate": 0.0}
    block: dict[str, Any] = {
        "expert_mode": True,
        "number_runs": schedule.runs,
        "number_iterations": schedule.steps,
        "temperature_interval": schedule.temperature_interval,
        "temperature_mode": str(getattr(schedule.temperature_mode, "value",
                                        schedule.temperature_mode)),
        "noise_model": schedule.noise,
        "solution_mode": schedule.keep,
    }
    if schedule.temperature_start is not None:
        block["temperature_start"] = schedule.temperature_start
    if schedule.temperature_decay is not None:
        block["temperature_decay"] = schedule.temperature_decay
    if schedule.offset_increase_rate is not None:
        block["offset_increase_rate"] = schedule.offset_increase_rate
    return "fujitsuDA", block
