"""SpinOut's annealing engine: problem model, numba kernels, the solvers and the sampler.

Importable without FastAPI, pydantic or Redis, so the trainer can run it in-process::

    from service.engine import BinaryQuadraticProblem, EmbeddedSampler, Tempering
    problem = BinaryQuadraticProblem.from_dict({(0, 0): -1, (0, 1): 2, (1, 1): -1})
    result = EmbeddedSampler().sample(problem, Tempering(replicas=8, sweeps=100), seed=0)
    result.best_state, result.best_energy
"""

from .vector_width import prefer_wide_vectors

# Before any numba module of the engine loads: numba fixes its target features once.
prefer_wide_vectors()

from .constraints import LinearInequalities
from .groups import KHotGroups
from .problem import BinaryQuadraticProblem
from .result import AnnealResult
from .schedule import CoolingMode, TemperatureSchedule
from .sampler import (Annealing, EmbeddedSampler, Sampler, Sampling, Schedule, Stop, Tempering,
                      TimeLimited)
from .solver import Replicas, anneal_da, parallel_tempering, solve_time_limited

__all__ = [
    "AnnealResult",
    "Annealing",
    "BinaryQuadraticProblem",
    "EmbeddedSampler",
    "KHotGroups",
    "LinearInequalities",
    "Replicas",
    "Sampler",
    "Sampling",
    "Schedule",
    "Stop",
    "Tempering",
    "CoolingMode",
    "TemperatureSchedule",
    "TimeLimited",
    "anneal_da",
    "parallel_tempering",
    "solve_time_limited",
]
