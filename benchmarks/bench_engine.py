"""SpinOut's engine side by side with dwave-samplers SA and OpenJij SA, in one run.

    python benchmarks/bench_engine.py            # full (~15 min on 2 cores)
    python benchmarks/bench_engine.py --quick    # a few minutes
    python benchmarks/bench_engine.py --sections rate,startup,memory

Sections:
- tts: time-to-target TTS99 = t_run * ln(0.01) / ln(1 - p) (t_run when p >= 0.99) with target =
  best-known, each solver at its best budget from a small grid. SpinOut's t_run is its time
  limit (setup included; a run stops early at the target but is charged the whole budget);
  the samplers' t_run is the wall time of one read (call time / num_reads, single thread).
- equal_time: best objective at equal wall-clock budgets, SK 1,024 included.
- rate: single-flip attempts per second, dense and sparse.
- startup: first-call compilation overhead of a fresh process (kernels from numba's cache).
- memory: peak RSS of a dense 1,024-variable solve beyond the interpreter with its imports.
Compilation is kept out of the timed parts; figures are medians; ratios are peer / SpinOut.
Needs `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.engine import BinaryQuadraticProblem, solve_time_limited  # noqa: E402
from service.engine.loaders import Instance, load_instance  # noqa: E402
from service.engine.solver import ENSEMBLES_PER_GROUP  # noqa: E402

DATA = ROOT / ".." / "shared" / "data"
SEED = 2026


def sk_instance(n: int = 1024, seed: int = 7) -> Instance:
    """Sherrington-Kirkpatrick: +-1 couplings on all pairs (fixed seed), as a dense QUBO."""
    rng = np.random.default_rng(seed)
    j = np.triu(rng.choice([-1.0, 1.0], size=(n, n)), 1)
    problem = BinaryQuadraticProblem.from_ising(np.zeros(n), j, storage="dense")
    return Instance(f"SK{n}", "sk", None, problem)


def to_bqm(problem: BinaryQuadraticProblem):
    import dimod

    i, j, v = problem.to_triplets()
    return dimod.BQM.from_numpy_vectors(problem.linear, (i, j, v), problem.constant, "BINARY")


def tts99(t_run: float, p: float) -> float:
    if p <= 0:
        return math.inf
    if p >= 0.99:
        return t_run
    return t_run * math.log(0.01) / math.log(1.0 - p)


@dataclass
class Peer:
    """A dimod sampler (dwave-samplers or OpenJij) driven with num_reads x num_sweeps.

    ``seed_per_read``: OpenJij repeats the same read when given one seed for many reads, so its
    reads are separate calls with seeds seed, seed + 1, ... Each call's fixed set-up (model
    conversion, measured with a 1-sweep call) is subtracted, so peers are timed on annealing only.
    """

    name: str
    sampler: object
    seed_per_read: bool = False

    def overhead(self, bqm) -> float:
        times = []
        for k in range(3):
            t0 = time.perf_counter()
            self.sampler.sample(bqm, num_reads=1, num_sweeps=1, seed=k)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def sample(self, bqm, num_reads: int, num_sweeps: int, seed: int, overhead: float = 0.0):
        """(energies of every read, annealing seconds for all reads)."""
        calls = [(num_reads, seed)] if not self.seed_per_read else [(1, seed + k) for k in range(num_reads)]
        energies, seconds = [], 0.0
        for reads, call_seed in calls:
            t0 = time.perf_counter()
            result = self.sampler.sample(bqm, num_reads=reads, num_sweeps=num_sweeps, seed=call_seed)
            seconds += max(time.perf_counter() - t0 - overhead, 1e-6)
            energies.append(np.repeat(np.asarray(result.record.energy, dtype=float),
                                      np.asarray(result.record.num_occurrences)))
        return np.concatenate(energies), seconds


def load_peers() -> list[Peer]:
    peers = []
    try:
        from dwave.samplers import SimulatedAnnealingSampler

        peers.append(Peer("dwave-SA", SimulatedAnnealingSampler()))
    except ImportError:
        print("dwave-samplers not installed: pip install -e '.[bench]'")
    try:
        import openjij

        peers.append(Peer("openjij-SA", openjij.SASampler(), seed_per_read=True))
    except ImportError:
        print("openjij not installed: pip install -e '.[bench]'")
    return peers


def hit(energy: float, target: float) -> bool:
    return energy <= target + 1e-6 * max(1.0, abs(target))


def spinout_tts(inst: Instance, limit: float, repeats: int) -> tuple[float, str]:
    """Runs stop at the target; the best budget t is read off the hit times: p(t) = share of
    runs that hit by t, TTS99 = min over t of t ln(0.01) / ln(1 - p(t))."""
    hits = []
    for k in range(repeats):
        r = solve_time_limited(inst.problem, time_limit=limit, target_energy=inst.target_energy,
                               seed=SEED + k)
        hits.append(r.timing["total"] if hit(r.best_energy, inst.target_energy) else math.inf)
    hits.sort()
    best = (math.inf, f"never within {limit} s")
    for i, t in enumerate(hits):
        if math.isfinite(t):
            tts = tts99(t, (i + 1) / repeats)
            if tts < best[0]:
                best = (tts, f"{t:.3f} s, p={(i + 1) / repeats:.2f}")
    finite = [t for t in hits if math.isfinite(t)]
    median = statistics.median(hits) if len(finite) > repeats // 2 else math.inf
    print(f"    spinout   {len(finite)}/{repeats} runs hit within {limit} s; median time "
          f"{median:.3f} s; TTS99 = {best[0]:.3f} s at {best[1]}", flush=True)
    return best


def peer_tts(peer: Peer, inst: Instance, sweeps_grid: list[int], reads: int) -> tuple[float, str]:
    bqm = to_bqm(inst.problem)
    overhead = peer.overhead(bqm)
    best = (math.inf, "never")
    for sweeps in sweeps_grid:
        energies, seconds = peer.sample(bqm, reads, sweeps, SEED, overhead)
        p = float(np.mean([hit(e, inst.target_energy) for e in energies]))
        t_read = seconds / reads
        tts = tts99(t_read, p)
        print(f"    {peer.name:<11}sweeps {sweeps:>6}  read {t_read:.4f} s  p = {p:.2f}  "
              f"TTS99 = {tts:.3f} s  (best {inst.objective(energies.min()):g})", flush=True)
        if tts < best[0]:
            best = (tts, f"{sweeps} sweeps, p={p:.2f}")
        if p >= 0.99:
            break
    return best


def section_tts(instances: list[Instance], peers: list[Peer], quick: bool,
                repeats: int | None = None) -> list[dict]:
    rows = []
    sweeps_grid = [250, 1000, 4000] if quick else [250, 1000, 4000, 16000]
    repeats = repeats or (5 if quick else 10)
    for inst in instances:
        print(f"  {inst.name} (best known {inst.best_known:g})", flush=True)
        row = {"instance": inst.name}
        limit = 30.0 if inst.name == "G14" and not quick else 5.0
        row["spinout"], row["spinout_budget"] = spinout_tts(inst, limit, repeats)
        for peer in peers:
            row[peer.name], row[peer.name + "_budget"] = peer_tts(peer, inst, sweeps_grid,
                                                                  16 if quick else 32)
        rows.append(row)
    print("\nTTS99 (seconds; lower is better; ratio = peer / SpinOut)")
    header = f"{'instance':<10}{'SpinOut':>10}" + "".join(f"{p.name:>14}{'ratio':>9}" for p in peers)
    print(header)
    for row in rows:
        line = f"{row['instance']:<10}{row['spinout']:>10.3f}"
        for peer in peers:
            ratio = row[peer.name] / row["spinout"] if math.isfinite(row["spinout"]) else math.nan
            line += f"{row[peer.name]:>14.3f}{ratio:>9.1f}"
        print(line)
    return rows


def section_equal_time(instances: list[Instance], peers: list[Peer], quick: bool) -> list[dict]:
    budgets = [0.1, 1.0] if quick else [0.1, 1.0, 10.0]
    rows = []
    for inst in instances:
        bqm = to_bqm(inst.problem)
        for budget in budgets:
            r = solve_time_limited(inst.problem, time_limit=budget, seed=SEED)
            row = {"instance": inst.name, "budget": budget,
                   "spinout": inst.objective(r.best_energy), "spinout_s": r.timing["total"]}
            for peer in peers:
                # Fill the budget: scale the sweep count until a call's annealing time is close.
                overhead = peer.overhead(bqm)
                reads, sweeps = 4, 100
                for _ in range(4):
                    energies, seconds = peer.sample(bqm, reads, sweeps, SEED, overhead)
                    if seconds > 0.7 * budget:
                        break
                    sweeps = max(sweeps + 1, int(sweeps * min(budget / seconds, 50.0)))
                row[peer.name] = inst.objective(energies.min())
                row[peer.name + "_s"] = seconds
            rows.append(row)
            print(f"  {inst.name:<9} {budget:>5} s  " + "  ".join(
                f"{k}={v:g}" for k, v in row.items() if k not in ("instance", "budget")), flush=True)
    print("\nBest objective at equal wall-clock budgets (higher is better; cut or -energy)")
    print(f"{'instance':<10}{'budget':>8}{'SpinOut':>12}" + "".join(f"{p.name:>14}" for p in peers))
    for row in rows:
        print(f"{row['instance']:<10}{row['budget']:>8}{row['spinout']:>12g}"
              + "".join(f"{row[p.name]:>14g}" for p in peers))
    return rows


def section_rate(peers: list[Peer], seconds: float) -> list[dict]:
    rows = []
    for inst in (sk_instance(), load_instance(DATA / "gset" / "G1.txt")):
        p = inst.problem
        row = {"instance": inst.name, "kind": "sparse" if p.is_sparse else "dense"}
        for moves in ("sweep", "trial"):
            r = solve_time_limited(p, time_limit=seconds, moves=moves, seed=SEED)
            replicas = 16 * ENSEMBLES_PER_GROUP
            row[f"spinout_{moves}"] = r.info["rounds_done"] * replicas * p.num_variables / r.timing["anneal"]
        bqm = to_bqm(p)
        for peer in peers:
            # One read at two sweep counts: the difference cancels the per-call set-up.
            short, long = (200, 2200) if inst.name.startswith("SK") else (1000, 21000)
            _, t_short = peer.sample(bqm, 1, short, SEED)
            _, t_long = peer.sample(bqm, 1, long, SEED)
            row[peer.name] = (long - short) * p.num_variables / max(t_long - t_short, 1e-9)
        rows.append(row)
    print("\nSingle-flip attempts per second (millions; the parallel trial counts n trials per "
          "iteration)")
    print(f"{'instance':<10}{'SpinOut sweeps':>16}{'SpinOut trial':>15}"
          + "".join(f"{p.name:>14}{'ratio':>8}" for p in peers))
    for row in rows:
        line = f"{row['instance']:<10}{row['spinout_sweep'] / 1e6:>16.1f}{row['spinout_trial'] / 1e6:>15.1f}"
        for peer in peers:
            line += f"{row[peer.name] / 1e6:>14.1f}{row['spinout_sweep'] / row[peer.name]:>8.1f}"
        print(line)
    return rows


_FRESH = """
import time, json
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
t0 = time.perf_counter()
import numpy as np
from service.engine import BinaryQuadraticProblem, parallel_tempering, solve_time_limited
t_import = time.perf_counter() - t0
rss_imports = status("VmRSS")
rng = np.random.default_rng(7)
n = 1024
p = BinaryQuadraticProblem.from_ising(np.zeros(n), np.triu(rng.choice([-1.0, 1.0], size=(n, n)), 1), storage="dense")
def run():
    t = time.perf_counter()
    parallel_tempering(p, num_replicas=8, num_sweeps=40, seed=1)
    return time.perf_counter() - t
first = run()
second = run()
rss_before = status("VmRSS")
solve_time_limited(p, time_limit=1.0, seed=1)
print(json.dumps({"import_s": t_import, "first_s": first, "second_s": second,
                  "rss_after_imports_mb": rss_imports, "rss_before_solve_mb": rss_before,
                  "peak_rss_mb": status("VmHWM")}))
"""


def section_startup_memory(repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", _FRESH], cwd=ROOT, capture_output=True,
                             text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    overhead = med["first_s"] - med["second_s"]
    growth = med["peak_rss_mb"] - med["rss_after_imports_mb"]
    print("\nFresh process, dense 1,024 variables (median of %d processes)" % repeats)
    print(f"  import of service.engine          {med['import_s']:.2f} s")
    print(f"  first solve / second solve         {med['first_s']:.3f} s / {med['second_s']:.3f} s"
          f"  -> compilation overhead {overhead:.3f} s")
    print(f"  RSS after imports                  {med['rss_after_imports_mb']:.0f} MB")
    print(f"  RSS after problem + 2 small solves {med['rss_before_solve_mb']:.0f} MB (numba's loaded "
          "kernels are ~60 MB of this)")
    print(f"  peak RSS through a 1 s DA3 solve   {med['peak_rss_mb']:.0f} MB  -> +{growth:.0f} MB "
          "beyond the interpreter with its imports")
    return {**med, "compile_overhead_s": overhead, "memory_growth_mb": growth}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sections", default="tts,equal_time,rate,startup")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--instances", help="comma-separated subset, e.g. G1,G11 (tts, equal_time)")
    parser.add_argument("--repeats", type=int, help="SpinOut runs per instance for TTS (default 10)")
    args = parser.parse_args()
    import numba

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numba {numba.__version__} with {numba.get_num_threads()} threads, seed {SEED}")
    # Compile/load every kernel before timing anything.
    from service.engine.warmup import main as warm

    warm()
    peers = load_peers()
    for peer in peers:  # their own one-time start-up
        peer.sample(to_bqm(sk_instance(16).problem), 1, 10, 0)  # their own warm-up
    sections = set(args.sections.split(","))
    report: dict[str, object] = {}
    gset = [load_instance(DATA / "gset" / f"{g}.txt") for g in ("G1", "G2", "G11", "G14")]
    bqp = [load_instance(f"{DATA / 'beasley' / 'bqp250.txt'}:{k}") for k in (1, 2)]
    chosen = set(args.instances.split(",")) if args.instances else None

    def pick(instances: list[Instance]) -> list[Instance]:
        return [i for i in instances if chosen is None or i.name in chosen]

    if "tts" in sections:
        print("\n== time to target ==")
        report["tts"] = section_tts(pick(gset + bqp[:1 if args.quick else 2]), peers, args.quick,
                                    args.repeats)
    if "equal_time" in sections:
        print("\n== equal wall-clock budgets ==")
        report["equal_time"] = section_equal_time(pick(gset + bqp[:1] + [sk_instance()]), peers,
                                                  args.quick)
    if "rate" in sections:
        print("\n== flip attempts per second ==")
        report["rate"] = section_rate(peers, 1.0 if args.quick else 3.0)
    if "startup" in sections or "memory" in sections:
        report["startup_memory"] = section_startup_memory(3 if args.quick else 5)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
