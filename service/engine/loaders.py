"""Benchmark instances as engine problems.

The file formats are read by ``client.instance_files`` (numpy only, so ``spinout solve`` needs no
engine); this module builds the engine's ``BinaryQuadraticProblem`` from those arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from client.instance_files import InstanceFile, InstanceInfo, read_beasley, read_gset, read_instance

from .problem import BinaryQuadraticProblem

__all__ = ["Instance", "build_instance", "load_beasley", "load_gset", "load_instance"]


@dataclass(frozen=True)
class Instance(InstanceInfo):
    """A named benchmark problem. ``objective = -energy`` (both families maximise)."""

    problem: BinaryQuadraticProblem


def build_instance(source: InstanceFile) -> Instance:
    """The engine problem of an instance the client's readers (or a generator) produced."""
    arrays = source.problem
    problem = BinaryQuadraticProblem.from_arrays(arrays.rows, arrays.cols, arrays.values,
                                                 linear=arrays.linear,
                                                 num_variables=arrays.num_variables)
    return Instance(source.name, source.kind, source.best_known, problem)


def load_gset(path: str | Path) -> Instance:
    """A G-set graph as Max-Cut QUBO: E(x) = sum_edges w (2 x_i x_j - x_i - x_j) = -cut(x)."""
    return build_instance(read_gset(path))


def load_beasley(path: str | Path, instance: int = 1) -> Instance:
    """Instance ``instance`` (1-based) of a Beasley file, as the QUBO minimising -x^T Q x."""
    return build_instance(read_beasley(path, instance))


def load_instance(spec: str | Path) -> Instance:
    """``G11.txt`` / ``path/to/G11.txt`` (G-set) or ``bqp50.txt`` / ``bqp50.txt:3`` (Beasley)."""
    return build_instance(read_instance(spec))
