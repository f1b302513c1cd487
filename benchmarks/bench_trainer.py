"""Ising-Dropout's cost per mini-batch, and full training runs of the paper's Table 1 rows.

    python benchmarks/bench_trainer.py                  # step timing (~2 min on 2 cores)
    python benchmarks/bench_trainer.py --steps 100      # quicker
    python benchmarks/bench_trainer.py --no-http        # skip the service on loopback
    python benchmarks/bench_trainer.py --full --epochs 32 --out bench-out   # Table 1 rows (long)

Step timing: MNIST, batch 32, sigmoid 784-100-100-10, input included (984 candidates). Configs:
no dropout; Ising embedded with the default formulation (re-solve every 8 mini-batches);
Ising embedded solving every mini-batch (the paper's cadence), synchronously and on a worker
thread (``async_solve``, masks one mini-batch late); and, unless ``--no-http``, Ising
over HTTP against a ``python -m service serve`` started on a loopback port, next to the same
embedded solver in DA trial mode (equal work, so the ratio is the transport's cost), and the default
cadence over HTTP (a solve every 8 mini-batches, 10 DA iterations), synchronously and pipelined
(``async_solve``: the round trip overlaps the next mini-batches). Each config
first runs warm-up steps (kernel loading, first solves), then the timed steps; configs alternate
in rounds (whole solve periods each, the order reversed every other round) so a noisy neighbour
on the shared cores hits all of them alike. Reported per step, each the median over the rounds:
forward/backward, Ising building, transport, solve, mask bookkeeping, total; a ratio is the
median over rounds of the two configs' step times within the same round.

``--full`` runs the CLI for the Table 1 rows (no dropout, Ising training / training+inference,
with and without the input layer) and prints accuracy, drop rates and parameters removed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from trainer.data import load_dataset  # noqa: E402
from trainer.dropout import registry  # noqa: E402
from trainer.dropout.base import VariantSpec  # noqa: E402
from trainer.harness import Trainer  # noqa: E402
from tests.servers import ServerProcess, free_port  # noqa: E402

DATA = ROOT / ".." / "shared" / "data"
SIZES = [784, 100, 100, 10]


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform()}


def start_service() -> ServerProcess:
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="spinout-bench-")) / "server.log"
    return ServerProcess(["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], {},
                         log, port).start()


class StepBench:
    """One config: a model on its own Trainer, stepped in rounds so configs can alternate; each
    timed round's ms per step is kept, so figures are medians over rounds and ratios are taken
    within a round (a noisy neighbour that slows one round does not tilt the comparison)."""

    def __init__(self, name: str, dropout: str, options: dict[str, Any], data: Any, seed: int) -> None:
        torch.manual_seed(seed)
        spec = VariantSpec(sizes=SIZES, include_input=True, mode="train+infer", seed=seed, options=options)
        self.name = name
        self.trainer = Trainer(registry.get(dropout)(spec), data, batch_size=32, lr=0.01, seed=seed)
        self.rounds: list[dict[str, float]] = []

    def run(self, steps: int, timed: bool = True) -> None:
        before, start = self.totals(), self.trainer.steps
        self.trainer.max_steps_per_epoch = steps
        self.trainer.run_epoch()
        if timed:
            done = max(self.trainer.steps - start, 1)
            row = {k: 1000 * (v - before.get(k, 0.0)) / done for k, v in self.totals().items()
                   if k != "evaluation"}
            row["total"] = row.get("forward_backward", 0.0) + row.get("hooks", 0.0)
            self.rounds.append(row)

    def totals(self) -> dict[str, float]:
        t = dict(self.trainer.timings)
        t.update(self.trainer.method_timings())
        return t

    def per_step_ms(self) -> dict[str, float]:
        """Each figure's median over the timed rounds."""
        return {k: statistics.median(r.get(k, 0.0) for r in self.rounds) for k in self.rounds[0]}

    def ratio_to(self, other: StepBench) -> float:
        """Median over rounds of this config's step time over ``other``'s in the same round."""
        return statistics.median(a["total"] / b["total"] for a, b in zip(self.rounds, other.rounds))


def bench_steps(args: argparse.Namespace) -> dict[str, Any]:
    data = load_dataset("mnist", DATA / "mnist", val_size=0, limit_train=20_000, seed=0)
    configs: list[StepBench] = [
        StepBench("no dropout", "none", {}, data, args.seed),
        StepBench("ising embedded (default, every 8)", "ising", {}, data, args.seed),
        StepBench("ising embedded (every batch)", "ising", {"solve_every": 1}, data, args.seed),
        StepBench("ising embedded (every batch, async)", "ising", {"solve_every": 1, "async_solve": True},
                  data, args.seed),
    ]
    proc = None
    if not args.no_http:
        proc = start_service()
        url = proc.url
        http_budget = {"solve_every": 1, "moves": "trial", "num_sweeps": args.http_iterations}
        configs.append(StepBench("ising embedded (DA trials, every batch)", "ising", dict(http_budget),
                                 data, args.seed))
        configs.append(StepBench("ising over HTTP (DA trials, every batch)", "ising",
                                 {**http_budget, "solver": url}, data, args.seed))
        # Each HTTP config runs right next to its embedded twin, so their rounds' ratio sees the
        # same state of the shared machine.
        configs[2:2] = [StepBench("ising over HTTP (default, every 8)", "ising", {"solver": url}, data, args.seed),
                        StepBench("ising over HTTP (default, every 8, async)", "ising",
                                  {"solver": url, "async_solve": True}, data, args.seed)]
    # Whole solve periods per round (a solve every 8 mini-batches by default), so every round of
    # every config holds the same number of solves.
    per_round = max(8, args.steps // args.rounds // 8 * 8)
    try:
        for c in configs:
            c.run(args.warmup, timed=False)
        for r in range(args.rounds):
            for c in (configs if r % 2 == 0 else configs[::-1]):
                c.run(per_round)
    finally:
        if proc is not None:
            proc.stop()
    by_name = {c.name: c for c in configs}
    results = {c.name: c.per_step_ms() for c in configs}
    for name, r in results.items():
        r["ratio_vs_no_dropout"] = by_name[name].ratio_to(by_name["no dropout"])
    if not args.no_http:
        twins = {"ising over HTTP (DA trials, every batch)": "ising embedded (DA trials, every batch)",
                 "ising over HTTP (default, every 8)": "ising embedded (default, every 8)",
                 "ising over HTTP (default, every 8, async)": "ising embedded (default, every 8)"}
        for name, twin in twins.items():
            results[name]["ratio_vs_embedded"] = by_name[name].ratio_to(by_name[twin])
    return results


def bench_full(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = [("no dropout", ["--dropout", "none"]),
            ("ising training", ["--dropout", "ising", "--mode", "train"]),
            ("ising training incl. input", ["--dropout", "ising", "--mode", "train", "--include-input"]),
            ("ising training+inference", ["--dropout", "ising", "--mode", "train+infer"]),
            ("ising training+inference incl. input", ["--dropout", "ising", "--mode", "train+infer",
                                                      "--include-input"])]
    out = []
    for label, extra in rows:
        cmd = [sys.executable, "-m", "service", "train", "--dataset", "mnist", "--data-dir", str(DATA / "mnist"),
               "--arch", ",".join(map(str, SIZES)), "--epochs", str(args.epochs), "--seed", str(args.seed),
               "--no-progress", *extra]
        if args.out:
            cmd += ["--out", str(Path(args.out) / label.replace(" ", "_").replace("+", "_"))]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        summary["label"] = label
        summary["wall_seconds"] = time.perf_counter() - t0
        out.append(summary)
        print(f"{label:40s} acc {summary['test_accuracy']:6.2f}%  drop {summary['drop_rate_per_layer']}  "
              f"removed {summary['params_removed_pct']:.2f}%  {summary['seconds']:.0f}s", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=480, help="timed steps per config")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds the timed steps are cut into")
    parser.add_argument("--warmup", type=int, default=50, help="untimed steps per config first")
    parser.add_argument("--http-iterations", type=int, default=100, help="DA iterations per solve (HTTP pair)")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP comparison")
    parser.add_argument("--full", action="store_true", help="also run the Table 1 rows end to end")
    parser.add_argument("--epochs", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps({"machine": machine(), "seed": args.seed, "steps": args.steps}), flush=True)
    steps = bench_steps(args)
    print(f"{'config':45s} " + " ".join(f"{k:>16s}" for k in
                                         ("forward_backward", "ising_build", "transport", "solve",
                                          "solve_wait", "mask_bookkeeping", "total", "x no-dropout")))
    for name, r in steps.items():
        print(f"{name:45s} " + " ".join(f"{r.get(k, 0.0):16.3f}" for k in
                                         ("forward_backward", "ising_build", "transport", "solve",
                                          "solve_wait", "mask_bookkeeping", "total", "ratio_vs_no_dropout")))
    for name, r in steps.items():
        if "ratio_vs_embedded" in r:
            print(f"{name}: {r['ratio_vs_embedded']:.2f}x its embedded twin")
    report: dict[str, Any] = {"machine": machine(), "ms_per_step": steps}
    if args.full:
        report["table1"] = bench_full(args)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "bench_trainer.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
