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
- sk: the Digital Annealer's own regime, dense Sherrington-Kirkpatrick glasses with Gaussian
  couplings (N = 256 ... 2,048, instance seeds 1, 2): a reference energy per instance from long
  runs of every solver (the ground state where they agree, stated for N <= 1,024), then TTS99 to
  it as in ``tts`` for each solver, and the fitted power of N. The hardware DA reported ~100x over
  single-core SA on such problems (Aramon et al. 2019): the anchor. Not in the default sections:
  ``--sections sk``.
- large: the G-set's 2,000-14,000-node graphs (G23 derived from its rudy command, as the shared
  file is another graph: ``benchmarks/gset_rudy.py``): best cut of calls limited to 1, 10 and 60 s and,
  in the 60 s call's progress, the time to 99.5 %, 99.9 % and 100 % of the best known cut
  (medians over ``--seeds``); at 10 s, the automatic choices (anneal strategy, holding its
  cold end, cluster moves, window moves) against their ablation; beside dwave-SA filling the same wall time
  with the same two cores (two independent single-threaded calls, the better cut counts); one
  instance also through the service's v4 route, to show what the route costs. Not in the
  default sections (about an hour): ``--sections large``.
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

from benchmarks.gset_rudy import gset_graph  # noqa: E402

DATA = ROOT / ".." / "shared" / "data"
SEED = 2026
#: ``--cluster-moves``: SpinOut's choice in the tts, equal_time, sk and large sections.
CLUSTER_MOVES = "auto"


def sk_instance(n: int = 1024, seed: int = 7, gaussian: bool = False) -> Instance:
    """Sherrington-Kirkpatrick: couplings on all pairs, +-1 or standard normal (fixed seed), as
    a dense QUBO."""
    rng = np.random.default_rng(seed)
    j = np.triu(rng.standard_normal((n, n)) if gaussian else rng.choice([-1.0, 1.0], size=(n, n)), 1)
    problem = BinaryQuadraticProblem.from_ising(np.zeros(n), j, storage="dense")
    return Instance(f"SK{n}{'g' if gaussian else ''}-{seed}", "sk", None, problem)


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
                               seed=SEED + k, cluster_moves=CLUSTER_MOVES)
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


def peer_tts(peer: Peer, inst: Instance, sweeps_grid: list[int], reads: int,
             cap_s: float = math.inf, min_reads: int = 8) -> tuple[float, str]:
    """The peer's best TTS99 over ``sweeps_grid``. ``cap_s`` bounds one grid point's annealing
    time: its reads shrink (to no fewer than ``min_reads``) to fit, and the grid ends, said so in
    the budget string, where even that would take more than twice the cap (a read's time is
    linear in its sweeps); a truncated grid can overstate the peer's TTS."""
    bqm = to_bqm(inst.problem)
    overhead = peer.overhead(bqm)
    best = (math.inf, "never")
    per_sweep = 0.0  # seconds per sweep of one read, from the last grid point
    for sweeps in sweeps_grid:
        n_reads = reads
        if per_sweep > 0 and math.isfinite(cap_s):
            n_reads = min(reads, max(min_reads, int(cap_s / (per_sweep * sweeps))))
            if n_reads * per_sweep * sweeps > 2 * cap_s:
                print(f"    {peer.name:<11}sweeps {sweeps:>6}  skipped: {n_reads} reads would take "
                      f"{n_reads * per_sweep * sweeps:.0f} s (cap {cap_s:g} s)", flush=True)
                best = (best[0], best[1] + f"; grid cut at {sweeps} sweeps")
                break
        energies, seconds = peer.sample(bqm, n_reads, sweeps, SEED, overhead)
        p = float(np.mean([hit(e, inst.target_energy) for e in energies]))
        t_read = seconds / n_reads
        per_sweep = t_read / sweeps
        tts = tts99(t_read, p)
        print(f"    {peer.name:<11}sweeps {sweeps:>6}  {n_reads:>2} reads of {t_read:.4f} s  p = {p:.2f}  "
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
    print_tts_table(rows, peers)
    return rows


def print_tts_table(rows: list[dict], peers: list[Peer], width: int = 10) -> None:
    """One line per instance: SpinOut's TTS99, then each peer's and its ratio to SpinOut's."""
    print(f"{'instance':<{width}}{'SpinOut':>10}" + "".join(f"{p.name:>14}{'ratio':>9}" for p in peers))
    for row in rows:
        line = f"{row['instance']:<{width}}{row['spinout']:>10.3f}"
        for peer in peers:
            ratio = row[peer.name] / row["spinout"] if math.isfinite(row["spinout"]) else math.nan
            line += f"{row[peer.name]:>14.3f}{ratio:>9.1f}"
        print(line)


def peer_within(peer: Peer, bqm, budget: float, seed: int, reads: int = 4,
                sweeps: int | None = None) -> tuple[float, float, int]:
    """The peer's best energy from ``reads`` reads filling ``budget`` seconds of annealing:
    (energy, seconds, sweeps). Without ``sweeps``, the sweep count is scaled up from 100 until a
    call takes more than 0.7 x the budget."""
    overhead = peer.overhead(bqm)
    if sweeps is not None:
        energies, seconds = peer.sample(bqm, reads, sweeps, seed, overhead)
        return float(energies.min()), seconds, sweeps
    sweeps = 100
    for _ in range(6):
        energies, seconds = peer.sample(bqm, reads, sweeps, seed, overhead)
        if seconds > 0.7 * budget:
            break
        sweeps = max(sweeps + 1, int(sweeps * min(budget / seconds, 50.0)))
    return float(energies.min()), seconds, sweeps


def section_equal_time(instances: list[Instance], peers: list[Peer], quick: bool) -> list[dict]:
    budgets = [0.1, 1.0] if quick else [0.1, 1.0, 10.0]
    rows = []
    for inst in instances:
        bqm = to_bqm(inst.problem)
        for budget in budgets:
            r = solve_time_limited(inst.problem, time_limit=budget, seed=SEED, cluster_moves=CLUSTER_MOVES)
            row = {"instance": inst.name, "budget": budget,
                   "spinout": inst.objective(r.best_energy), "spinout_s": r.timing["total"]}
            for peer in peers:
                energy, seconds, _ = peer_within(peer, bqm, budget, SEED)
                row[peer.name] = inst.objective(energy)
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


LARGE = ("G22", "G23", "G32", "G48", "G57", "G63", "G72", "G77")
LARGE_FRACTIONS = (0.995, 0.999, 1.0)


def cut_trajectory(inst: Instance, seconds: float, seed: int) -> list[tuple[float, float]]:
    """(seconds since the call, best cut so far) at every improvement of one time-limited run
    (the DA3 mode on all cores, stopping at the best known cut)."""
    r = solve_time_limited(inst.problem, time_limit=seconds, target_energy=inst.target_energy, seed=seed,
                           cluster_moves=CLUSTER_MOVES)
    return [(float(t), inst.objective(e)) for t, e, *_ in r.progress]


def time_limited_cut(inst: Instance, seconds: float, seed: int, **options: str) -> float:
    """The best cut of one time-limited run (stopping at the best known cut)."""
    r = solve_time_limited(inst.problem, time_limit=seconds, target_energy=inst.target_energy, seed=seed,
                           cluster_moves=options.pop("cluster_moves", CLUSTER_MOVES), **options)
    return inst.objective(r.best_energy)


def time_to(trajectory: list[tuple[float, float]], cut: float) -> float:
    return next((t for t, c in trajectory if c >= cut - 1e-9), math.inf)


def median_time(times: list[float]) -> float:
    """The median, infinite when half the runs or more never got there."""
    return statistics.median(times) if sum(math.isfinite(t) for t in times) > len(times) // 2 else math.inf


def route_v4(inst: Instance, seconds: float, seed: int) -> dict:
    """``inst`` as a fujitsuDA3 job to ``POST /v4/async/qubo/solve`` on a ``spinout serve``
    started here: the best cut, the solve time the service reports, and the wall time from the
    POST to the fetched result."""
    import httpx

    from tests.servers import standalone_server

    p = inst.problem
    rows, cols, values = p.to_triplets()
    terms = [{"c": float(c), "p": [int(i)]} for i, c in enumerate(p.linear) if c != 0.0]
    terms += [{"c": float(v), "p": [int(i), int(j)]} for i, j, v in zip(rows, cols, values)]
    body = json.dumps({"binary_polynomial": {"terms": terms},
                       "fujitsuDA3": {"time_limit_sec": int(seconds), "num_run": 16, "random_seed": seed,
                                      "target_energy": float(inst.target_energy)}}).encode()
    with standalone_server() as server, httpx.Client(base_url=server.url, timeout=600) as http:
        t0 = time.perf_counter()
        job_id = http.post("/v4/async/qubo/solve", content=body,
                           headers={"Content-Type": "application/json"}).json()["job_id"]
        while (reply := http.get(f"/v4/async/jobs/result/{job_id}").json())["status"] in ("Waiting", "Running"):
            time.sleep(0.2)
        wall = time.perf_counter() - t0
        http.delete(f"/v4/async/jobs/result/{job_id}")
    assert reply["status"] == "Done", reply
    solution = reply["qubo_solution"]
    best = min(float(s["energy"]) for s in solution["solutions"])
    return {"cut": inst.objective(best), "solve_s": float(solution["timing"]["solve_time"]) / 1000, "wall_s": wall}


def section_large(peers: list[Peer], seeds: int, budgets: list[float], names: list[str],
                  route_instance: str | None) -> list[dict]:
    peers = [p for p in peers if p.name == "dwave-SA"]
    rows = []
    for name in names:
        inst = gset_graph(name)
        known = inst.best_known
        trajectories = []
        for k in range(seeds):
            trajectories.append(cut_trajectory(inst, budgets[-1], SEED + k))
            print(f"  {name} seed {k}: best {trajectories[-1][-1][1]:g} of {known:g} after "
                  f"{trajectories[-1][-1][0]:.1f} s", flush=True)
        row: dict = {"instance": name, "nodes": inst.problem.num_variables, "best_known": known}
        # Each shorter budget is a call of its own, as for the peer: the anneal strategy paces
        # its schedule by the time limit, so a long run's early progress is not what a short
        # call returns.
        for budget in budgets[:-1]:
            row[f"cut_{budget:g}s"] = statistics.median(time_limited_cut(inst, budget, SEED + k)
                                                        for k in range(seeds))
        row[f"cut_{budgets[-1]:g}s"] = statistics.median(t[-1][1] for t in trajectories)
        for fraction in LARGE_FRACTIONS:
            row[f"t_{fraction:g}"] = median_time([time_to(t, fraction * known) for t in trajectories])
        # What the automatic choices add, at the middle budget with the same seeds: the anneal
        # strategy against tempering where it was chosen (and holding its cold end against
        # restarts where that was chosen), cluster moves against none where tempering turned
        # them on.
        middle = budgets[len(budgets) // 2]
        first = solve_time_limited(inst.problem, time_limit=0.05, seed=SEED, cluster_moves=CLUSTER_MOVES)
        row["strategy"] = first.info["strategy"]
        ablations = ({"tempering": {"strategy": "tempering"}} if first.info["strategy"] == "anneal"
                     else {"no_cluster": {"cluster_moves": "off"}} if first.info["cluster_moves"] else {})
        if first.info.get("hold_cold"):
            ablations["restarts"] = {"hold_cold": "off"}
        if first.info.get("window_moves"):
            ablations["no_windows"] = {"window_moves": "off"}
        for label, ablation in ablations.items():
            row[f"cut_{middle:g}s_{label}"] = statistics.median(
                time_limited_cut(inst, middle, SEED + k, **ablation) for k in range(seeds))
            print(f"    {label.replace('_', ' ')}, {middle:g} s: {row[f'cut_{middle:g}s_{label}']:g} "
                  f"(automatic choice, {row['strategy']}: {row[f'cut_{middle:g}s']:g})", flush=True)
        bqm = to_bqm(inst.problem)
        for peer in peers:
            # Calibrated once, at the shortest budget: a read's time is linear in its sweeps.
            _, seconds, sweeps = peer_within(peer, bqm, budgets[0], SEED)
            per_second = sweeps / seconds
            for budget in budgets:
                # Two cores for the peer too: two independent single-threaded calls, each filling
                # the budget, the better cut counts; the median over the seeds (one seed at the
                # longest budget).
                n_sweeps = max(1, int(per_second * budget))
                cuts = []
                for k in range(seeds if budget < budgets[-1] else 1):
                    pair = [peer_within(peer, bqm, budget, SEED + k + 1000 * c, sweeps=n_sweeps)[0] for c in (0, 1)]
                    cuts.append(inst.objective(min(pair)))
                row[f"{peer.name}_{budget:g}s"] = statistics.median(cuts)
                print(f"    {peer.name} {budget:g} s ({n_sweeps} sweeps x 4 reads, 2 calls): "
                      f"{row[f'{peer.name}_{budget:g}s']:g}", flush=True)
        if name == route_instance:
            row["v4"] = route_v4(inst, budgets[1] if len(budgets) > 1 else budgets[0], SEED)
            print(f"    v4 route: {row['v4']}", flush=True)
        rows.append(row)
    print(f"\nLarge G-set, best cut at equal wall time on {os.cpu_count()} cores (median over {seeds} "
          "seeds; % of best known) and time to a fraction of the best known (median; inf: not in "
          "half the runs)")
    header = f"{'instance':<9}{'nodes':>7}{'best':>7}" + "".join(f"{f'{b:g} s':>16}" for b in budgets)
    header += "".join(f"{f'{b:g} s dwave':>18}" for b in budgets if peers)
    header += "".join(f"{f't {f * 100:g} %':>11}" for f in LARGE_FRACTIONS)
    print(header)
    for row in rows:
        known = row["best_known"]
        line = f"{row['instance']:<9}{row['nodes']:>7}{known:>7g}"
        line += "".join(f"{row[f'cut_{b:g}s']:>8g} ({row[f'cut_{b:g}s'] / known:6.2%})" for b in budgets)
        for peer in peers:
            line += "".join(f"{row[f'{peer.name}_{b:g}s']:>10g} ({row[f'{peer.name}_{b:g}s'] / known:6.2%})"
                            for b in budgets)
        line += "".join(f"{row[f't_{f:g}']:>11.2f}" for f in LARGE_FRACTIONS)
        print(line)
    middle = budgets[len(budgets) // 2]
    for label, title in (("tempering", "The anneal strategy (chosen from 4,096 variables on) against tempering"),
                         ("restarts", "Holding the cold end (mean degree <= 6) against restarted anneals"),
                         ("no_cluster", "Cluster moves (on where the mean degree is <= 6) against none"),
                         ("no_windows", "Window moves (on a 2D lattice) against none")):
        ablated = [row for row in rows if f"cut_{middle:g}s_{label}" in row]
        if ablated:
            print(f"\n{title}: best cut at {middle:g} s, automatic choice / ablated")
            for row in ablated:
                print(f"  {row['instance']:<9}{row[f'cut_{middle:g}s']:>8g} / {row[f'cut_{middle:g}s_{label}']:g}")
    for row in rows:
        if "v4" in row:
            v4 = row["v4"]
            print(f"\n{row['instance']} through POST /v4/async/qubo/solve: cut {v4['cut']:g} (engine "
                  f"alone, median: {row[f'cut_{budgets[1] if len(budgets) > 1 else budgets[0]:g}s']:g}); solve "
                  f"{v4['solve_s']:.2f} s, POST to result {v4['wall_s']:.2f} s: the route adds "
                  f"{v4['wall_s'] - v4['solve_s']:.2f} s")
    return rows


SK_SIZES = (256, 512, 1024, 2048)
SK_SEEDS = (1, 2)
#: Annealing seconds one peer grid point may take in the sk section (see ``peer_tts``).
SK_PEER_CAP_S = 60.0


def sk_reference(inst: Instance, peers: list[Peer], seconds: float) -> tuple[float, list[str]]:
    """The lowest energy long runs of every solver find on ``inst``, and the solvers that reach
    it: SpinOut for ``seconds`` (two seeds), each peer's reads filling as long."""
    found: dict[str, float] = {}
    found["spinout"] = min(solve_time_limited(inst.problem, time_limit=seconds, seed=SEED + k,
                                              cluster_moves=CLUSTER_MOVES).best_energy
                           for k in range(2))
    bqm = to_bqm(inst.problem)
    for peer in peers:
        found[peer.name] = peer_within(peer, bqm, seconds, SEED, reads=8)[0]
    best = min(found.values())
    return best, [name for name, e in found.items() if hit(e, best)]


def fitted_power(sizes: list[int], times: list[float]) -> float:
    """b in TTS = a N^b, least squares on the finite log-log points (nan with fewer than 2)."""
    points = [(math.log(n), math.log(t)) for n, t in zip(sizes, times) if math.isfinite(t) and t > 0]
    if len(points) < 2:
        return math.nan
    x, y = np.array(points).T
    return float(np.polyfit(x, y, 1)[0])


def section_sk(peers: list[Peer], quick: bool, repeats: int | None, sizes: list[int] | None = None,
               seeds: list[int] | None = None) -> list[dict]:
    sizes = sizes or ([128, 256] if quick else list(SK_SIZES))
    seeds = seeds or list(SK_SEEDS[:1] if quick else SK_SEEDS)
    repeats = repeats or (5 if quick else 10)
    rows = []
    for n in sizes:
        for seed in seeds:
            inst = sk_instance(n, seed, gaussian=True)
            reference_s = (2.0 if quick else 30.0) * max(1.0, n / 512)
            energy, agreeing = sk_reference(inst, peers, reference_s)
            inst = Instance(inst.name, inst.kind, inst.objective(energy), inst.problem)
            print(f"  {inst.name}: reference energy {energy:.6f} ({reference_s:g} s runs), reached by "
                  f"{', '.join(agreeing)}", flush=True)
            row = {"instance": inst.name, "n": n, "seed": seed, "reference": energy, "agreeing": agreeing,
                   "ground_state": len(agreeing) > 1 and n <= 1024}
            limit = 5.0 if quick else 10.0 * max(1.0, n / 512)
            row["spinout"], row["spinout_budget"] = spinout_tts(inst, limit, repeats)
            sweeps_grid = [100, 1000] if quick else [250, 1000, 4000, 16000]
            for peer in peers:
                row[peer.name], row[peer.name + "_budget"] = peer_tts(peer, inst, sweeps_grid, 16 if quick else 32,
                                                                      cap_s=SK_PEER_CAP_S)
            rows.append(row)
    print("\nSK, Gaussian couplings: TTS99 to the reference energy (seconds; ratio = peer / SpinOut); "
          "ground state: " + ", ".join(f"{r['instance']} {'yes' if r['ground_state'] else 'no'}" for r in rows)
          + " (several solvers' long runs agree and N <= 1,024)")
    print_tts_table(rows, peers, width=14)
    for row in rows:
        print(f"  {row['instance']}: SpinOut {row['spinout_budget']}; "
              + "; ".join(f"{p.name} {row[p.name + '_budget']}" for p in peers))
    print("\nScaling: TTS99 ~ N^b, b fitted on the per-size medians")
    for name in ["spinout"] + [p.name for p in peers]:
        medians = [statistics.median(r[name] for r in rows if r["n"] == n) for n in sizes]
        print(f"  {name:<12} b = {fitted_power(sizes, medians):.2f}  (medians "
              + ", ".join(f"N={n}: {m:.3g} s" for n, m in zip(sizes, medians)) + ")")
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
    parser.add_argument("--seeds", type=int, default=3, help="large: seeds per instance (default 3)")
    parser.add_argument("--cluster-moves", choices=("auto", "on", "off"), default="auto",
                        help="SpinOut's cluster moves (default auto: on for sparse graphs of mean degree <= 6)")
    parser.add_argument("--sk-sizes", help="sk: N, comma-separated (default 256,512,1024,2048)")
    parser.add_argument("--sk-seeds", help="sk: instance seeds, comma-separated (default 1,2)")
    parser.add_argument("--budgets", default="1,10,60", help="large: seconds, comma-separated")
    args = parser.parse_args()
    global CLUSTER_MOVES
    CLUSTER_MOVES = args.cluster_moves
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
    if "sk" in sections:
        print("\n== Sherrington-Kirkpatrick, Gaussian couplings ==")
        report["sk"] = section_sk(peers, args.quick, args.repeats,
                                  [int(n) for n in args.sk_sizes.split(",")] if args.sk_sizes else None,
                                  [int(k) for k in args.sk_seeds.split(",")] if args.sk_seeds else None)
    if "large" in sections:
        print("\n== large G-set ==")
        budgets = sorted(float(b) for b in args.budgets.split(","))
        names = [n for n in LARGE if chosen is None or n in chosen]
        report["large"] = section_large(peers, 1 if args.quick else args.seeds,
                                        budgets[:2] if args.quick else budgets, names[:2] if args.quick else names,
                                        route_instance=names[0] if names else None)
    if "startup" in sections or "memory" in sections:
        report["startup_memory"] = section_startup_memory(3 if args.quick else 5)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
