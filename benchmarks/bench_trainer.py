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
in rounds so a noisy neighbour on the shared cores hits all of them alike. Reported per step:
forward/backward, Ising building, transport, solve, mask bookkeeping, total; ratios are against
the no-dropout step measured in the same run.

``--full`` runs the CLI for the Table 1 rows (no dropout, Ising training / training+inference,
with and without the input layer) and prints accuracy, drop rates and parameters removed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
    """One config: a model on its own Trainer, stepped in chunks so configs can alternate."""

    def __init__(self, name: str, dropout: str, options: dict[str, Any], data: Any, seed: int) -> None:
        torch.manual_seed(seed)
        spec = VariantSpec(sizes=SIZES, include_input=True, mode="train+infer", seed=seed, options=options)
        self.name = name
        self.trainer = Trainer(registry.get(dropout)(spec), data, batch_size=32, lr=0.01, seed=seed)
        self.steps = 0
        self.base: dict[str, float] = {}

    def run(self, steps: int) -> None:
        self.trainer.max_steps_per_epoch = steps
        self.trainer.run_epoch()

    def mark(self) -> None:
        """Start of the timed part: remember the counters after warm-up."""
        self.base = self.totals()
        self.steps = self.trainer.steps

    def totals(self) -> dict[str, float]:
        t = dict(self.trainer.timings)
        t.update(self.trainer.method_timings())
        return t

    def per_step_ms(self) -> dict[str, float]:
        steps = max(self.trainer.steps - self.steps, 1)
        now = self.totals()
        out = {k: 1000 * (v - self.base.get(k, 0.0)) / steps for k, v in now.items() if k != "evaluation"}
        out["total"] = out.get("forward_backward", 0.0) + out.get("hooks", 0.0)
        return out


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
        configs.append(StepBench("ising over HTTP (default, every 8)", "ising", {"solver": url}, data, args.seed))
        configs.append(StepBench("ising over HTTP (default, every 8, async)", "ising",
                                 {"solver": url, "async_solve": True}, data, args.seed))
    try:
        for c in configs:
            c.run(args.warmup)
            c.mark()
        rounds = 5
        for _ in range(rounds):
            for c in configs:
                c.run(max(1, args.steps // rounds))
    finally:
        if proc is not None:
            proc.stop()
    results = {c.name: c.per_step_ms() for c in configs}
    base = results["no dropout"]["total"]
    for name, r in results.items():
        r["ratio_vs_no_dropout"] = r["total"] / base
    if not args.no_http:
        emb = results["ising embedded (DA trials, every batch)"]["total"]
        results["ising over HTTP (DA trials, every batch)"]["ratio_vs_embedded"] = (
            results["ising over HTTP (DA trials, every batch)"]["total"] / emb)
        for name in ("ising over HTTP (default, every 8)", "ising over HTTP (default, every 8, async)"):
            results[name]["ratio_vs_embedded"] = (results[name]["total"]
                                                  / results["ising embedded (default, every 8)"]["total"])
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
    parser.add_argument("--steps", type=int, default=500, help="timed steps per config")
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
