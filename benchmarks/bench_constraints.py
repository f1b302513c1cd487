"""Linear inequality constraints through the DA3/DA4 route: native inequalities vs the slack-bit
penalty expansion, against the exact optimum from a MIP solver, in one run.

    python benchmarks/bench_constraints.py                 # 200 items, 3 constraints, 10 s, 5 seeds
    python benchmarks/bench_constraints.py --quick         # 2 seeds, 5 s

The instances are multidimensional knapsacks in the Chu & Beasley form (weights U{1..1000},
capacities half the weight sums, values correlated with the weights). HiGHS
(``pip install -e '.[bench]'``) gives each exact optimum. Each solver arm is a real
``spinout serve`` job on POST /v4/async/qubo/solve with the same time limit:

- native: maximise sum v x as minimise -sum v x, each capacity row as an ``inequalities`` entry
  (sum w x - C <= 0) with weight lambda;
- slack bits: each row as an equality sum w x + sum b_k s_k - C = 0 over binary slack bits
  (b = 1, 2, 4, ..., remainder: every slack value 0..C), squared in penalty_binary_polynomial
  with penalty_coef as its weight.

The weight is a factor (``--lambda-factors``) times the median value-to-weight ratio, the typical
price of a unit of capacity (the objective goes out x100, since the DA takes lambda >= 1). Each arm's factor is chosen on a validation instance
(``--validation-seed``, 2 job seeds, lowest median gap), never on the reported one
(``--instance-seed``). Figures: the best feasible value each arm reached (medians over job
seeds), its gap to the optimum, and the first time the progress trace came within 1 % (feasible
entries only).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import ServerProcess, free_port  # noqa: E402


def chu_beasley(items: int, constraints: int, seed: int, tightness: float = 0.5
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values (n,), weights (m, n), capacities (m,)), integers."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(1, 1001, size=(constraints, items))
    capacities = np.floor(tightness * weights.sum(axis=1)).astype(np.int64)
    values = np.floor(weights.sum(axis=0) / constraints + 500 * rng.random(items)).astype(np.int64)
    return values, weights, capacities


def exact_optimum(values: np.ndarray, weights: np.ndarray, capacities: np.ndarray,
                  time_limit: float) -> tuple[float, float, float]:
    """(best value, proven upper bound, seconds) from HiGHS."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("mip_rel_gap", 0.0)
    n = values.size
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, weights.shape[0]
    lp.col_cost_ = -values.astype(float)
    lp.col_lower_, lp.col_upper_ = np.zeros(n), np.ones(n)
    lp.row_lower_ = np.full(weights.shape[0], -highspy.kHighsInf)
    lp.row_upper_ = capacities.astype(float)
    a = weights.T  # column-wise storage
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.arange(0, n * weights.shape[0] + 1, weights.shape[0])
    lp.a_matrix_.index_ = np.tile(np.arange(weights.shape[0]), n)
    lp.a_matrix_.value_ = a.ravel().astype(float)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n
    h.passModel(lp)
    t0 = time.perf_counter()
    h.run()
    seconds = time.perf_counter() - t0
    info = h.getInfo()
    return -float(info.objective_function_value), -float(info.mip_dual_bound), seconds


#: The objective is sent in these units: the DA takes weights (lambda) from 1 up, and the
#: weights worth trying are near the value of one unit of capacity (~1.5).
OBJECTIVE_SCALE = 100.0


def native_body(values: np.ndarray, weights: np.ndarray, capacities: np.ndarray, weight: float,
                time_limit: int, seed: int) -> dict[str, Any]:
    terms = [{"c": -OBJECTIVE_SCALE * float(v), "p": [i]} for i, v in enumerate(values)]
    inequalities = [{"terms": [{"c": float(w), "p": [i]} for i, w in enumerate(row)]
                     + [{"c": -float(cap), "p": []}], "lambda": OBJECTIVE_SCALE * weight}
                    for row, cap in zip(weights, capacities)]
    return {"fujitsuDA3": {"time_limit_sec": time_limit, "random_seed": seed},
            "binary_polynomial": {"terms": terms}, "inequalities": inequalities}


def slack_body(values: np.ndarray, weights: np.ndarray, capacities: np.ndarray, weight: float,
               time_limit: int, seed: int) -> tuple[dict[str, Any], int]:
    """The equality rows with slack bits, squared and expanded; returns (body, slack bits)."""
    n = values.size
    penalty: dict[tuple[int, ...], float] = {}

    def add(key: tuple[int, ...], c: float) -> None:
        penalty[key] = penalty.get(key, 0.0) + c

    next_var = n
    for row, cap in zip(weights, capacities):
        coeffs = []
        k = 1
        while sum(coeffs) + k <= cap:
            coeffs.append(k)
            k *= 2
        if sum(coeffs) < cap:
            coeffs.append(int(cap - sum(coeffs)))
        variables = list(range(n)) + list(range(next_var, next_var + len(coeffs)))
        a = np.concatenate([row, coeffs]).astype(float)
        next_var += len(coeffs)
        # (sum a x - cap)^2 = sum a_i^2 x_i - 2 cap sum a_i x_i + 2 sum_{i<j} a_i a_j x_i x_j + cap^2
        for i, ai in zip(variables, a):
            add((i,), ai * ai - 2.0 * cap * ai)
        for p in range(len(variables)):
            for q in range(p + 1, len(variables)):
                add((variables[p], variables[q]), 2.0 * a[p] * a[q])
        add((), float(cap) ** 2)
    body = {"fujitsuDA3": {"time_limit_sec": time_limit, "random_seed": seed,
                           "penalty_coef": OBJECTIVE_SCALE * weight},
            "binary_polynomial": {"terms": [{"c": -OBJECTIVE_SCALE * float(v), "p": [i]}
                                            for i, v in enumerate(values)]},
            "penalty_binary_polynomial": {"terms": [{"c": c, "p": list(k)} for k, c in penalty.items()]}}
    return body, next_var - n


def run_job(http: httpx.Client, body: dict[str, Any], n: int, values: np.ndarray,
            weights: np.ndarray, capacities: np.ndarray, optimum: float) -> dict[str, float]:
    job = http.post("/v4/async/qubo/solve", json=body).raise_for_status().json()["job_id"]
    while True:
        reply = http.get(f"/v4/async/jobs/result/{job}").json()
        if reply["status"] not in ("Waiting", "Running"):
            break
        time.sleep(0.2)
    if reply["status"] != "Done":
        raise RuntimeError(f"job {job} ended {reply}")
    http.delete(f"/v4/async/jobs/result/{job}")  # a key holds at most 16 jobs
    best = -math.inf
    for s in reply["qubo_solution"]["solutions"]:
        x = np.array([s["configuration"][str(i)] for i in range(n)], dtype=np.int64)
        if np.all(weights @ x <= capacities):
            best = max(best, float(values @ x))
    within = math.inf
    for entry in reply["qubo_solution"]["progress"]:
        if entry["penalty_energy"] <= 1e-9 and -entry["energy"] / OBJECTIVE_SCALE >= 0.99 * optimum:
            within = entry["time"]
            break
    return {"value": best, "gap": 100.0 * (optimum - best) / optimum, "within_1pct_s": within}


def arm_body(arm: str, instance: tuple[np.ndarray, np.ndarray, np.ndarray], weight: float,
             seconds: int, seed: int) -> dict[str, Any]:
    if arm == "native inequalities":
        return native_body(*instance, weight, seconds, seed)
    return slack_body(*instance, weight, seconds, seed)[0]


ARMS = ("native inequalities", "slack bits")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--constraints", type=int, default=3)
    parser.add_argument("--instance-seed", type=int, default=2026)
    parser.add_argument("--validation-seed", type=int, default=2027)
    parser.add_argument("--seconds", type=int, default=10, help="time_limit_sec of every job")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--lambda-factors", type=float, nargs="+", default=[0.5, 1.0, 2.0],
                        help="weights tried on the validation instance, x the median value/weight")
    parser.add_argument("--mip-seconds", type=float, default=300.0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.seconds = 2, 5
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}; one solver thread, {args.seconds} s per job")
    instances = {}
    for label, seed in (("validation", args.validation_seed), ("test", args.instance_seed)):
        instance = chu_beasley(args.items, args.constraints, seed)
        optimum, bound, mip_seconds = exact_optimum(*instance, args.mip_seconds)
        price = float(np.median(instance[0][None, :] / instance[1]))
        instances[label] = (instance, optimum, price)
        print(f"{label} instance: Chu-Beasley {args.items} items x {args.constraints} constraints, "
              f"seed {seed}; HiGHS optimum {optimum:.0f} (bound {bound:.0f}) in {mip_seconds:.1f} s; "
              f"median value/weight {price:.3f}")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(["serve", "--port", str(port), "--workers", "1",
                                "--database", str(Path(tmp) / "jobs.sqlite3")],
                               {"SPINOUT_LOG_LEVEL": "WARNING"}, Path(tmp) / "server.log", port).start()
        try:
            with httpx.Client(base_url=server.url, timeout=120.0) as http:
                chosen = {}
                instance, optimum, price = instances["validation"]
                for arm in ARMS:
                    gaps = {}
                    for factor in args.lambda_factors:
                        rows = [run_job(http, arm_body(arm, instance, factor * price, args.seconds, seed),
                                        args.items, *instance, optimum) for seed in range(2)]
                        gaps[factor] = statistics.median(r["gap"] for r in rows)
                        print(f"  validation {arm:20s} lambda {factor} x price: median gap "
                              f"{gaps[factor]:.3f} %", flush=True)
                    chosen[arm] = min(gaps, key=lambda f: gaps[f])
                instance, optimum, price = instances["test"]
                figures: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
                for seed in range(args.seeds):
                    for arm in ARMS:
                        weight = chosen[arm] * price
                        row = run_job(http, arm_body(arm, instance, weight, args.seconds, seed),
                                      args.items, *instance, optimum)
                        figures[arm].append(row)
                        print(f"  test seed {seed} {arm:20s} (lambda {weight:.3f}) value {row['value']:.0f} "
                              f"gap {row['gap']:.3f} % within 1 % at {row['within_1pct_s']:.2f} s", flush=True)
        finally:
            server.stop()
    bits = slack_body(*instances["test"][0], 1.0, args.seconds, 0)[1]
    print(f"\nslack-bit form: {args.items + bits} variables ({bits} slack bits), a dense penalty block")
    print(f"{'arm':22s} {'lambda':>8s} {'median value':>12s} {'median gap %':>13s} {'worst gap %':>12s} "
          f"{'median t(1 %) s':>16s}")
    for arm, rows in figures.items():
        print(f"{arm:22s} {chosen[arm] * instances['test'][2]:8.3f} "
              f"{statistics.median(r['value'] for r in rows):12.0f} "
              f"{statistics.median(r['gap'] for r in rows):13.3f} {max(r['gap'] for r in rows):12.3f} "
              f"{statistics.median(r['within_1pct_s'] for r in rows):16.2f}")
    native_gap = statistics.median(r["gap"] for r in figures["native inequalities"])
    slack_gap = statistics.median(r["gap"] for r in figures["slack bits"])
    print(f"\nmedian gap, slack bits / native: {slack_gap / max(native_gap, 1e-9):.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
