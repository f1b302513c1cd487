"""Readers for the benchmark instance files: G-set Max-Cut graphs and Beasley's OR-Library BQPs.

Both formats are described in ``shared/data/README.md``. Each reader returns the QUBO to MINIMISE
as the client's ``EncodedProblem``, so ``spinout solve`` sends a file without the engine installed
and the engine (``service.engine.loaders``) builds its problem from the same arrays. Both families maximise:
``objective = -energy``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .problems import EncodedProblem

__all__ = ["InstanceFile", "InstanceInfo", "listed_best_known", "maxcut_qubo", "read_beasley", "read_gset",
           "read_instance"]


@dataclass(frozen=True)
class InstanceInfo:
    """A named benchmark problem and its best-known objective, if the directory lists one."""

    name: str
    kind: str  # "gset", "beasley" (or a generator's name)
    best_known: float | None

    def objective(self, energy: float) -> float:
        return -float(energy)

    @property
    def target_energy(self) -> float | None:
        return None if self.best_known is None else -float(self.best_known)


@dataclass(frozen=True)
class InstanceFile(InstanceInfo):
    """The instance's QUBO as arrays, ready for ``SolverClient.solve``."""

    problem: EncodedProblem


def _read_numbers(path: Path) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"instance file not found: {path}")
    try:
        return np.array(path.read_text().split(), dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: not a whitespace-separated numeric file ({exc})") from exc


def listed_best_known(directory: Path, name: str) -> float | None:
    """The best-known value ``directory/best_known.csv`` lists for ``name`` (None: not listed)."""
    table = directory / "best_known.csv"
    if not table.exists():
        return None
    with table.open() as fh:
        for row in csv.DictReader(fh):
            if row.get("instance") == name:
                value = row.get("best_known_cut") or row.get("best_known_max")
                return float(value) if value else None
    return None


def _triplets(numbers: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` lines of "i j value" with 1-based indices -> 0-based (i, j) and the values."""
    table = numbers.reshape(count, 3)
    return table[:, 0].astype(np.int64) - 1, table[:, 1].astype(np.int64) - 1, table[:, 2]


def _check_indices(path: Path, where: str, i: np.ndarray, j: np.ndarray, n: int) -> None:
    if i.size and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= n):
        raise ValueError(f"{path}: {where} an index outside 1..{n}")


def _problem(i: np.ndarray, j: np.ndarray, c: np.ndarray, n: int,
             linear: np.ndarray) -> EncodedProblem:
    """Fold (i, i) entries into ``linear`` and orient the rest i < j."""
    diag = i == j
    linear = linear + np.bincount(i[diag], weights=c[diag], minlength=n)
    i, j, c = i[~diag], j[~diag], c[~diag]
    return EncodedProblem(n, linear, np.minimum(i, j), np.maximum(i, j), c)


def read_gset(path: str | Path) -> InstanceFile:
    """A G-set graph as Max-Cut QUBO: E(x) = sum_edges w (2 x_i x_j - x_i - x_j) = -cut(x)."""
    path = Path(path)
    nums = _read_numbers(path)
    if nums.size < 2:
        raise ValueError(f"{path}: expected a first line 'n m'")
    n, m = int(nums[0]), int(nums[1])
    body = nums[2:]
    if body.size != 3 * m:
        raise ValueError(f"{path}: header promises {m} edges but the file holds {body.size / 3:g}")
    i, j, w = _triplets(body, m)
    _check_indices(path, "has an edge with", i, j, n)
    return InstanceFile(path.stem, "gset", listed_best_known(path.parent, path.stem), maxcut_qubo(n, i, j, w))


def maxcut_qubo(n: int, i: np.ndarray, j: np.ndarray, w: np.ndarray) -> EncodedProblem:
    """Max-Cut of the graph with edges (i, j) (0-based) of weight w as the QUBO to minimise:
    E(x) = sum_edges w (2 x_i x_j - x_i - x_j) = -cut(x)."""
    linear = -(np.bincount(i, weights=w, minlength=n) + np.bincount(j, weights=w, minlength=n))
    return _problem(i, j, 2.0 * w, n, linear)


def read_beasley(path: str | Path, instance: int = 1) -> InstanceFile:
    """Instance ``instance`` (1-based) of a Beasley file, as the QUBO minimising -x^T Q x."""
    path = Path(path)
    nums = _read_numbers(path)
    count = int(nums[0])
    if not 1 <= instance <= count:
        raise ValueError(f"{path}: holds instances 1..{count}, asked for {instance}")
    pos = 1
    for k in range(1, count + 1):
        n, nnz = int(nums[pos]), int(nums[pos + 1])
        block = nums[pos + 2: pos + 2 + 3 * nnz]
        pos += 2 + 3 * nnz
        if k == instance:
            break
    if block.size != 3 * nnz:
        raise ValueError(f"{path}: instance {instance} is truncated")
    i, j, q = _triplets(block, nnz)
    _check_indices(path, f"instance {instance} has", i, j, n)
    # Q is symmetric and only i <= j is listed: an off-diagonal entry counts twice in x^T Q x.
    name = f"{path.stem}.{instance}"
    return InstanceFile(name, "beasley", listed_best_known(path.parent, name),
                        _problem(i, j, np.where(i == j, -q, -2.0 * q), n, np.zeros(n)))


def read_instance(spec: str | Path) -> InstanceFile:
    """``G11.txt`` / ``path/to/G11.txt`` (G-set) or ``bqp50.txt`` / ``bqp50.txt:3`` (Beasley)."""
    text = str(spec)
    number = 1
    base, sep, tail = text.rpartition(":")
    if sep and tail.isdigit():
        text, number = base, int(tail)
    path = Path(text)
    if path.name.lower().startswith("bqp"):
        return read_beasley(path, number)
    return read_gset(path)
