"""SpinOut's annealing engine: problem model, numba kernels and the Python solver API.

Importable without FastAPI, pydantic or Redis, so the trainer can run it in-process::

    from service.engine import BinaryQuadraticProblem, parallel_tempering
    problem = BinaryQuadraticProblem.from_dict({(0, 0): -1, (0, 1): 2, (1, 1): -1})
    result = parallel_tempering(problem, num_replicas=8, num_sweeps=100, seed=0)
    result.best_state, result.best_energy
"""

from .vector_width import prefer_wide_vectors

# Before any numba module of the engine loads: numba fixes its target features once.
prefer_wide_vectors()

from .constraints import LinearInequalities
from .problem import BinaryQuadraticProblem
from .result import SolveResult
from .schedule import TemperatureMode, TemperatureSchedule
from .solver import Replicas, anneal_da, parallel_tempering, solve_time_limited

__all__ = [
    "BinaryQuadraticProblem",
    "LinearInequalities",
    "Replicas",
    "SolveResult",
    "TemperatureMode",
    "TemperatureSchedule",
    "anneal_da",
    "parallel_tempering",
    "solve_time_limited",
]
