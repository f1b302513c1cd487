"""DA blocks as engine schedules: defaults from the block's model, and the way back."""

from __future__ import annotations

import pytest

from client.wire.da import SOLVER_BLOCKS
from service.engine import Annealing, CoolingMode, Tempering, TimeLimited
from service.jobs.parsing import validate_parameters
from service.jobs.presets import block_for, schedule_for


@pytest.mark.parametrize("solver, version", [("fujitsuDA", "v1"), ("fujitsuDAMixedMode", "v1"),
                                             ("fujitsuDA2", "v2"), ("fujitsuDA2MixedMode", "v2")])
def test_an_empty_block_runs_the_models_defaults(solver: str, version: str) -> None:
    model = SOLVER_BLOCKS[solver]()
    schedule = schedule_for(solver, validate_parameters(solver, {}, version))
    assert isinstance(schedule, Annealing)
    assert schedule.steps == model.number_iterations == 10_000  # type: ignore[attr-defined]
    assert schedule.runs == model.number_runs  # type: ignore[attr-defined]
    assert schedule.temperature_interval == 100 and schedule.moves == "trial"
    assert schedule.temperature_start is None and schedule.keep == "COMPLETE"


def test_tempering_and_time_limited_blocks() -> None:
    pt = schedule_for("fujitsuDA2PT", validate_parameters("fujitsuDA2PT", {"number_replicas": 30},
                                                          "v2"), beta_range=(0.1, 3.0))
    assert pt == Tempering(replicas=30, sweeps=100_000, beta_range=(0.1, 3.0), moves="trial",
                           offset_increase_rate=None, keep="COMPLETE")
    da3 = schedule_for("fujitsuDA3", validate_parameters("fujitsuDA3", {"num_run": 4}, "v3"),
                       penalty_scale=2.5)
    assert da3 == TimeLimited(seconds=10.0, runs=4, groups=1, outputs=5, moves="sweep",
                              penalty_scale=2.5)


def test_an_expert_manual_block_takes_its_temperatures_only_in_expert_mode() -> None:
    block = {"temperature_start": 50.0, "temperature_decay": 0.01, "number_runs": 16}
    manual = schedule_for("fujitsuDA2", validate_parameters("fujitsuDA2", {**block, "expert_mode": True}, "v2"))
    auto = schedule_for("fujitsuDA2", validate_parameters("fujitsuDA2", block, "v2"))
    assert manual.temperature_start == 50.0 and manual.temperature_decay == 0.01  # type: ignore[union-attr]
    assert auto.temperature_start is None and auto.temperature_decay is None  # type: ignore[union-attr]


@pytest.mark.parametrize("schedule", [
    Annealing(runs=4, steps=12, temperature_start=3.0, temperature_decay=0.2, temperature_interval=1,
              offset_increase_rate=0.0, moves="trial", keep="QUICK"),
    Annealing(runs=2, steps=300, temperature_interval=1, moves="trial", keep="QUICK",
              temperature_mode=CoolingMode.INVERSE),
])
def test_block_for_is_the_way_back(schedule: Annealing) -> None:
    """What a remote service makes of the block is the schedule the trainer built."""
    solver, block = block_for(schedule)
    assert schedule_for(solver, validate_parameters(solver, block, "v1")) == schedule
