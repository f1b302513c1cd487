"""Are Ising-Dropout's energies hard? Cheap solvers against long anneals on the same problems.

    python benchmarks/ising_hardness.py                       # 3 energies x 3 problems (~10 min)
    python benchmarks/ising_hardness.py --energies loss-aware --problems 1

For each energy, a network (MNIST 784-100-100-10 sigmoid, input included, the study's counts
0.6 / 0.5 / 0.5 held exactly) trains one epoch on 8,000 images with masks from the greedy solver;
then the energy of ``--problems`` further mini-batches is built at that point and solved, from the
masks in use, by every cheap solver of the study (top-K, greedy, QPBO + greedy, 10-sweep anneal),
by the study's annealer (warm-started, 2 runs x 100 sweeps) and by three long searches that know
nothing of the start: parallel tempering (32 replicas x 3,000 sweeps), and 16 annealing runs of
3,000 steps with Metropolis sweeps and with the DA's parallel trials, all with the k-hot swap
moves. Printed per energy and solver: the median relative gap to the lowest energy any solver
found on that problem, how often the solver found that lowest energy, and the median seconds.
If greedy's gap is 0 wherever the long searches' is, the energy is easy: a swap descent already
finds what hours of annealing would.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from service.engine import Annealing, EmbeddedSampler, Tempering
from trainer.data import load_dataset
from trainer.dropout import registry
from trainer.dropout.base import VariantSpec
from trainer.dropout.mask_solvers import cheap_solver, solve_in_groups
from trainer.harness import train

ENERGIES = ("relevance-redundancy", "loss-aware", "paper-repaired")
CHEAP = ("topk", "greedy", "qpbo", "anneal10")
LONG = {"PT 32x3000": Tempering(replicas=32, sweeps=3000),
        "SA 16x3000 sweep": Annealing(runs=16, steps=3000, moves="sweep"),
        "SA 16x3000 trial": Annealing(runs=16, steps=3000, moves="trial")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--energies", nargs="+", default=list(ENERGIES))
    parser.add_argument("--problems", type=int, default=3, help="mini-batches solved per energy")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared/data/mnist"))
    args = parser.parse_args()
    data = load_dataset("mnist", args.data_dir, val_size=1000, limit_train=8000, limit_test=1000, seed=0)
    sampler = EmbeddedSampler(parallel=True)
    print(f"{'energy':22s} {'solver':18s} {'median gap %':>12s} {'lowest found':>12s} {'median s':>9s}")
    for energy in args.energies:
        torch.manual_seed(0)
        spec = VariantSpec(sizes=[784, 100, 100, 10], include_input=True, mode="train+infer", seed=0,
                           options={"ising_energy": energy, "exact_k": "true", "keep_ratio": "0.6,0.5,0.5",
                                    "solve_every": "8", "solver": "greedy"})
        model = registry.get("ising")(spec)
        train(model, data, epochs=1, batch_size=32, seed=0)
        annealer = registry.get("ising")(VariantSpec(
            sizes=[784, 100, 100, 10], include_input=True, seed=0,
            options={"ising_energy": energy, "exact_k": "true", "keep_ratio": "0.6,0.5,0.5",
                     "num_sweeps": "100", "num_runs": "2"})).solver
        gaps: dict[str, list[float]] = {}
        seconds: dict[str, list[float]] = {}
        for index in range(args.problems):
            batch = slice(32 * index, 32 * (index + 1))
            problem, groups = model.build_problem(data.train_x[batch], data.train_y[batch])
            start = model.solver_state.copy()
            reached: dict[str, float] = {}
            for name in (*CHEAP, "annealer"):
                solver = annealer if name == "annealer" else cheap_solver(name)
                t0 = time.perf_counter()
                state, _ = solve_in_groups(solver, problem, start, index + 1, groups=groups)
                seconds.setdefault(name, []).append(time.perf_counter() - t0)
                assert groups is not None and groups.satisfied(state)
                reached[name] = float(problem.energy(state))
            for name, schedule in LONG.items():
                t0 = time.perf_counter()
                result = sampler.sample(problem, schedule, seed=index + 1, groups=groups)
                seconds.setdefault(name, []).append(time.perf_counter() - t0)
                reached[name] = float(result.best_energy)
            best = min(reached.values())
            for name, value in reached.items():
                gaps.setdefault(name, []).append((value - best) / max(abs(best), 1e-12))
        for name in gaps:
            found = sum(g <= 1e-9 for g in gaps[name])
            print(f"{energy:22s} {name:18s} {100 * statistics.median(gaps[name]):12.4f} "
                  f"{found:>5d} of {len(gaps[name]):<4d} {statistics.median(seconds[name]):9.3f}", flush=True)
        model.close()


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
