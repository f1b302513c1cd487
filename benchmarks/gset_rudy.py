"""The G-set's random graphs re-derived from their rudy commands, to check the shared files.

    python benchmarks/gset_rudy.py      # each shared random graph against its rudy command

Helmberg & Rendl made the G-set with Rinaldi's generator rudy; its random graphs are
``rudy -rnd_graph <nodes> <density %> <seed>``, which draws edges with the Stanford GraphBase's
``random_graph`` (Knuth 1993) and its portable subtractive generator ``gb_flip``, so any
machine derives the same graph from the command. This module is that derivation, written from
the two published algorithms: ``GbFlip`` passes Knuth's own check of ``gb_flip``, and
``rnd_graph`` reproduces the shared G1, G2 and G22 files byte for byte.

The shared G23.txt is not the G-set's G23 (``rudy -rnd_graph 2000 1 20002``, best known cut
13,344): it is the graph of seed 2002 (same size and density, a digit dropped), whose best cut
no paper lists. ``gset_graph`` therefore gives the benchmarks the published graph, derived here
whenever the file is not it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from client.instance_files import InstanceFile, listed_best_known, maxcut_qubo, read_gset  # noqa: E402
from service.engine.loaders import Instance, build_instance  # noqa: E402

DATA = ROOT / ".." / "shared" / "data"

#: The G-set's random graphs among the shared files: (nodes, density in %, seed) of their rudy
#: command (Helmberg & Rendl's list; unit weights).
RUDY_RANDOM_GRAPHS = {
    "G1": (800, 6.0, 8001),
    "G2": (800, 6.0, 8002),
    "G22": (2000, 1.0, 20001),
    "G23": (2000, 1.0, 20002),
}

_MASK = 0x7FFFFFFF


class GbFlip:
    """The Stanford GraphBase's random numbers (gb_flip): x_n = (x_{n-55} - x_{n-24}) mod 2^31,
    55 values refilled at a time and handed out from the top down."""

    def __init__(self, seed: int) -> None:
        a = [0] * 56
        a[0] = -1  # the sentinel that ends a batch
        prev = seed & _MASK
        seed = prev
        following = 1
        a[55] = prev
        i = 21
        while i:
            a[i] = following
            following = (prev - following) & _MASK
            seed = 0x40000000 + (seed >> 1) if seed & 1 else seed >> 1
            following = (following - seed) & _MASK
            prev = a[i]
            i = (i + 21) % 55
        self._a = a
        self._next = 0
        for _ in range(5):  # warm-up cycles, as gb_init_rand runs them
            self._cycle()

    def _cycle(self) -> int:
        a = self._a
        for k in range(1, 25):
            a[k] = (a[k] - a[k + 31]) & _MASK
        for k in range(25, 56):
            a[k] = (a[k] - a[k - 24]) & _MASK
        self._next = 54
        return a[55]

    def next(self) -> int:
        value = self._a[self._next]
        if value < 0:
            return self._cycle()
        self._next -= 1
        return value

    def uniform(self, m: int) -> int:
        """Uniform on 0..m-1, rejecting the top of the range that would bias ``% m``."""
        limit = 0x80000000 - 0x80000000 % m
        while (r := self.next()) >= limit:
            pass
        return r % m


def rnd_graph(nodes: int, density: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``rudy -rnd_graph nodes density seed``: its edges (i < j, 0-based) in rudy's output order.

    rudy asks ``random_graph`` for the integer nearest ``nodes (nodes - 1) density / 200`` edges;
    each is a pair of uniform vertices, drawn again while it is a loop or already present, and
    rudy prints each vertex's edges to higher vertices, newest first."""
    wanted = nodes * (nodes - 1) * density / 200.0
    edges = int(wanted) + (wanted - int(wanted) >= 0.5)
    rng = GbFlip(seed)
    present: set[tuple[int, int]] = set()
    arcs: list[list[int]] = [[] for _ in range(nodes)]
    for _ in range(edges):
        while True:
            u, v = rng.uniform(nodes), rng.uniform(nodes)
            if u != v and (min(u, v), max(u, v)) not in present:
                break
        present.add((min(u, v), max(u, v)))
        arcs[u].append(v)
        arcs[v].append(u)
    pairs = [(u, v) for u in range(nodes) for v in reversed(arcs[u]) if u < v]
    table = np.array(pairs, dtype=np.int64)
    return table[:, 0], table[:, 1]


def command(name: str) -> str:
    return "rudy -rnd_graph " + " ".join(f"{v:g}" for v in RUDY_RANDOM_GRAPHS[name])


def edge_set(i: np.ndarray, j: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(i.tolist(), j.tolist()))


def gset_graph(name: str, data: Path = DATA) -> Instance:
    """The G-set graph ``name`` for a benchmark: the shared file where it is the published graph,
    else (G23) the graph derived from its rudy command, said on stderr, with the best known cut
    the shared directory lists for the name."""
    path = data / "gset" / f"{name}.txt"
    if name not in RUDY_RANDOM_GRAPHS:
        return build_instance(read_gset(path))
    i, j = rnd_graph(*RUDY_RANDOM_GRAPHS[name])
    if path.exists():
        shared = read_gset(path)
        if edge_set(shared.problem.rows, shared.problem.cols) == edge_set(i, j):
            return build_instance(shared)
    print(f"{name}: {path} is not {command(name)}; benchmarking the graph derived from that command",
          file=sys.stderr)
    nodes = RUDY_RANDOM_GRAPHS[name][0]
    best = listed_best_known(data / "gset", name)
    return build_instance(InstanceFile(name, "gset", best, maxcut_qubo(nodes, i, j, np.ones(i.size))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the directory holding gset/")
    args = parser.parse_args()
    differing = 0
    for name in RUDY_RANDOM_GRAPHS:
        path = args.data / "gset" / f"{name}.txt"
        derived = edge_set(*rnd_graph(*RUDY_RANDOM_GRAPHS[name]))
        try:
            arrays = read_gset(path).problem
        except (OSError, ValueError) as exc:
            raise SystemExit(f"cannot read {name}: {exc}") from None
        shared = edge_set(arrays.rows, arrays.cols)
        same = shared == derived
        differing += not same
        print(f"{name}: {command(name)}: {len(derived)} edges; {path.name}: {len(shared)} edges, "
              f"{len(shared & derived)} in common: " + ("the published graph" if same else "NOT the published graph"))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
