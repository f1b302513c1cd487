"""DA JSON replies read through the wire models: arrays out, a clear error for a malformed one."""

from __future__ import annotations

import numpy as np
import pytest

from client.errors import SpinOutError
from client.results import parse_solution


def _reply(**solution: object) -> dict[str, object]:
    entry = {"energy": -2.0, "frequency": 3, "configuration": {"0": True, "2": True}, **solution}
    return {"solutions": [entry], "timing": {"solve_time": "1", "total_elapsed_time": "2"},
            "progress": [{"energy": -2.0, "penalty_energy": 0.0, "time": 0.01}]}


def test_a_v3_reply_becomes_arrays() -> None:
    result = parse_solution(_reply(penalty_energy=0.5), num_variables=4)
    np.testing.assert_array_equal(result.states, [[1, 0, 1, 0]])
    assert result.energies.tolist() == [-2.0] and result.frequencies.tolist() == [3]
    assert result.penalty_energies is not None and result.penalty_energies.tolist() == [0.5]
    assert result.progress == [(0.01, -2.0)]


@pytest.mark.parametrize("broken, where", [
    ({"energy": "low"}, "solutions.0.energy"),
    ({"frequency": None}, "solutions.0.frequency"),
    ({"configuration": {"0": "maybe"}}, "solutions.0.configuration.0"),
    ({"configuration": [1, 0]}, "solutions.0.configuration"),
])
def test_a_malformed_solution_is_a_clear_error(broken: dict[str, object], where: str) -> None:
    with pytest.raises(SpinOutError, match=f"not a DA qubo_solution: {where}"):
        parse_solution(_reply(**broken), job_id="j1")


def test_a_malformed_progress_entry_is_a_clear_error() -> None:
    reply = _reply()
    reply["progress"] = [{"energy": -1.0, "time": 0.1}]  # penalty_energy missing
    with pytest.raises(SpinOutError, match="progress.0.penalty_energy"):
        parse_solution(reply)
