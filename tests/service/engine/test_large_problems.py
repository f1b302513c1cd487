"""100,000 variables through the DA JSON path without any n x n allocation.

A random 3-regular graph with +-1 weights (seed 2026) as a v4 fujitsuDA3 body: parsed, built
and annealed for a fraction of a second with the allocations traced. Dense storage of 100,000
variables would be 40 GB (float32) or 80 GB (float64); the bound below is far under one n x n
array of even 8-bit cells (10 GB), so any quadratic allocation on the path fails it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from tests.servers import REPO

N = 100_000
#: Bounds far over what the path takes (~50 MB traced, ~300 MB resident with the interpreter,
#: numpy and the compiled kernels) and far under one quadratic array (>= 10 GB); the resident
#: one is the issue's 1.5 GB goal.
TRACED_BOUND = 500 * 1024 * 1024
RESIDENT_BOUND = 1536 * 1024 * 1024


def regular_graph_body(n: int, seed: int = 2026) -> bytes:
    """A random 3-regular multigraph (configuration model, self-loops dropped), +-1 weights."""
    rng = np.random.default_rng(seed)
    stubs = rng.permutation(np.repeat(np.arange(n), 3))
    a, b = stubs[0::2], stubs[1::2]
    keep = a != b
    weights = rng.choice([-1.0, 1.0], size=int(keep.sum()))
    terms = [{"c": float(c), "p": [int(i), int(j)]} for i, j, c in zip(a[keep], b[keep], weights)]
    return json.dumps({"binary_polynomial": {"terms": terms},
                       "fujitsuDA3": {"time_limit_sec": 1, "num_run": 4}}).encode()


_WORKLOAD = """
import json, sys, tracemalloc
import numpy as np
from service.engine import EmbeddedSampler, Stop
from service.jobs.parsing import parse_da_request
from service.jobs.presets import schedule_for
from service.jobs.solvers import build_problem
from tests.service.engine.test_large_problems import N, regular_graph_body

body = regular_graph_body(N)
tracemalloc.start()
job = parse_da_request(body, "v4", 2_000_000)
problem = build_problem(job.problem, job.pattern)
result = EmbeddedSampler(parallel=False).sample(problem, schedule_for(job.solver, job.parameters),
                                                seed=1, stop=Stop(time_limit=0.3))
_, peak = tracemalloc.get_traced_memory()
hwm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
           if line.startswith("VmHWM:"))
print(json.dumps({"n": problem.num_variables, "sparse": problem.is_sparse,
                  "width": result.states.shape[1], "best": result.best_energy,
                  "progress": len(result.progress), "traced_peak": peak, "resident_peak": hwm}))
"""


def test_100k_variables_parse_build_and_anneal_without_quadratic_memory() -> None:
    """In a fresh process: what numpy allocates (traced) and what the process holds at its peak
    (VmHWM, which also counts numba's own allocations)."""
    proc = subprocess.run([sys.executable, "-c", _WORKLOAD], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["n"] == out["width"] == N and out["sparse"]
    assert np.isfinite(out["best"]) and out["progress"] >= 1
    assert out["traced_peak"] < TRACED_BOUND, f"numpy peak {out['traced_peak'] / 2**20:.0f} MiB"
    assert out["resident_peak"] < RESIDENT_BOUND, f"resident peak {out['resident_peak'] / 2**20:.0f} MiB"
