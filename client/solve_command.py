"""``spinout solve FILE --url URL``: send a problem file to a solver service and print the answer.

FILE is a DA JSON request (``{"fujitsuDA3": {...}, "binary_polynomial": {...}}``), a square
``.npy`` QUBO matrix, or a G-set / Beasley instance (``G11.txt``, ``bqp50.txt`` or
``bqp50.txt:3``); for the last two the cut or Beasley objective is printed next to the best-known
value. Exit status: 0 solved, 2 bad input (file, parameters, a 4xx from the service), 1 any other
failure (service unreachable, server error, job failed or still running at ``--timeout``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import errors
from .core import JobProgress


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="DA JSON request (.json), square QUBO matrix (.npy), G-set graph "
                        "(G11.txt) or Beasley file (bqp50.txt, bqp50.txt:3 for its 3rd instance)")
    parser.add_argument("--url", required=True, help="service base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--api-key", default=None, help="sent as X-Api-Key")
    parser.add_argument("--solver", default=None, help="DA solver block (default: the JSON file's, "
                        "else fujitsuDA3)")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="fujitsuDA3 time_limit_sec (rounded up to whole seconds)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a solver parameter by its DA name (repeatable), e.g. num_run=32")
    parser.add_argument("--seed", type=int, default=None, help="random_seed for a reproducible run")
    parser.add_argument("--mode", choices=("auto", "sync", "async"), default="auto",
                        help="route: synchronous where the solver allows it (auto), or forced")
    parser.add_argument("--transport", choices=("auto", "json", "compact"), default="auto",
                        help="request body: DA JSON, SpinOut's compact msgpack, or by size (auto)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="stop waiting for an asynchronous job after this many seconds")
    parser.add_argument("--no-target", action="store_true", help="for G-set/Beasley files with "
                        "fujitsuDA3: do not stop early at the best-known value")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _parse_param(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise ValueError(f"--param expects NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


def _load(path: Path, spec: str) -> tuple[Any, str | None, dict[str, Any], dict[str, Any], Any]:
    """(problem, solver from the file, its parameters, extra request fields, benchmark instance)."""
    if path.suffix.lower() == ".json":
        try:
            body = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(body, dict):
            raise ValueError(f"{path}: a DA request must be a JSON object")
        from .wire.da import SOLVER_BLOCKS
        solvers = [k for k in body if k in SOLVER_BLOCKS]
        if len(solvers) > 1:
            raise ValueError(f"{path}: names several solvers ({', '.join(solvers)})")
        solver = solvers[0] if solvers else None
        params = dict(body.get(solver) or {}) if solver else {}
        extra = {k: body[k] for k in ("penalty_binary_polynomial", "inequalities") if k in body}
        if "binary_polynomial" in body:
            terms = (body["binary_polynomial"] or {}).get("terms")
            if not isinstance(terms, list):
                raise ValueError(f"{path}: binary_polynomial.terms must be a list")
            return terms, solver, params, extra, None
        if "qubo_matrix" in body:
            rows = [r.get("qubo_row") for r in (body["qubo_matrix"] or {}).get("qubo") or []]
            return np.array(rows, dtype=np.float64), solver, params, extra, None
        raise ValueError(f"{path}: the request has neither binary_polynomial nor qubo_matrix")
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False), None, {}, {}, None
        except ValueError as exc:
            raise ValueError(f"{path}: not a numpy array file ({exc})") from None
    from .instance_files import read_instance
    instance = read_instance(spec)
    return instance.problem, None, {}, {}, instance


def _progress_printer(quiet: bool, seen: dict[str, str]) -> Any:
    tty = sys.stderr.isatty()
    last = [-math.inf]

    def show(p: JobProgress) -> None:
        seen["job_id"] = p.job_id
        if quiet:
            return
        if tty or p.elapsed - last[0] >= 1.0:
            last[0] = p.elapsed
            line = f"job {p.job_id}: {p.status} {p.elapsed:6.1f} s"
            print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
    return show


def main(args: argparse.Namespace) -> int:
    from .policy import PollingPolicy
    from .sync_client import SolverClient

    spec = str(args.file)
    base, sep, tail = spec.rpartition(":")
    path = Path(base if sep and tail.isdigit() else spec)
    if not path.exists():
        print(f"spinout solve: no such file: {path}", file=sys.stderr)
        return 2
    try:
        problem, file_solver, params, extra, instance = _load(path, spec)
        solver = args.solver or file_solver or "fujitsuDA3"
        if args.solver and file_solver and args.solver != file_solver:
            params = {}  # the file's block belongs to another solver
        params.update(_parse_param(p) for p in args.param)
        if args.seed is not None:
            params["random_seed"] = args.seed
        if args.time_limit is not None:
            if solver != "fujitsuDA3":
                raise ValueError(f"--time-limit applies to fujitsuDA3; {solver} runs a number of "
                                 "iterations: pass --param number_iterations=N")
            params["time_limit_sec"] = max(1, math.ceil(args.time_limit))
        if (instance is not None and instance.target_energy is not None and solver == "fujitsuDA3"
                and not args.no_target and "target_energy" not in params):
            params["target_energy"] = instance.target_energy
    except (ValueError, OSError) as exc:
        print(f"spinout solve: {exc}", file=sys.stderr)
        return 2

    polling = PollingPolicy(timeout=args.timeout)
    started = time.perf_counter()
    seen: dict[str, str] = {}
    show = _progress_printer(args.quiet, seen)
    try:
        with SolverClient(args.url, api_key=args.api_key, polling=polling) as client:
            result = client.solve(problem, solver, mode=args.mode, extra=extra or None,
                                  transport=args.transport, on_status=show, **params)
    except KeyboardInterrupt:
        _end_progress(args.quiet)
        if "job_id" in seen:
            print(f"spinout solve: interrupted; job {seen['job_id']} keeps running on the service "
                  f"(fetch it with DELETE {args.url}/v3/async/jobs/result/{seen['job_id']})", file=sys.stderr)
        return 130
    except (errors.ProblemError, errors.BadRequestError, errors.AuthenticationError,
            errors.NotFoundError) as exc:
        _end_progress(args.quiet)
        print(f"spinout solve: {exc}", file=sys.stderr)
        return 2
    except errors.SpinOutError as exc:
        _end_progress(args.quiet)
        print(f"spinout solve: {exc}", file=sys.stderr)
        return 1
    _end_progress(args.quiet)
    wall = time.perf_counter() - started

    best = result.best
    summary: dict[str, Any] = {
        "file": spec, "solver": solver, "num_variables": result.num_variables,
        "best_energy": best.energy, "frequency": best.frequency,
        "num_solutions": len(result), "job_id": result.job_id,
        "seconds": round(wall, 4), "timing": result.timing, "progress": result.progress,
    }
    if instance is not None:
        summary.update(instance=instance.name, kind=instance.kind,
                       objective=instance.objective(best.energy), best_known=instance.best_known)
    if args.json:
        summary["energies"] = result.energies.tolist()
        summary["best_state"] = best.state.tolist()
        print(json.dumps(summary))
        return 0
    label = {"gset": "cut", "beasley": "objective"}
    print(f"{'file':>12}: {spec}")
    print(f"{'solver':>12}: {solver}" + (f" (job {result.job_id})" if result.job_id else ""))
    print(f"{'variables':>12}: {result.num_variables}")
    print(f"{'best energy':>12}: {best.energy:g} (seen {best.frequency}x, {len(result)} solutions)")
    if instance is not None:
        known = "" if instance.best_known is None else f" (best known {instance.best_known:g})"
        print(f"{label.get(instance.kind, 'objective'):>12}: {instance.objective(best.energy):g}{known}")
    print(f"{'seconds':>12}: {wall:.3f} wall, {result.timing.get('solve_time', float('nan')):.3f} solve")
    if result.progress:
        when, energy = result.progress[-1]
        print(f"{'progress':>12}: {len(result.progress)} improvements, the last ({energy:g}) at {when:.3f} s")
    return 0


def _end_progress(quiet: bool) -> None:
    """End the carriage-return progress line on a terminal."""
    if not quiet and sys.stderr.isatty():
        print(file=sys.stderr)
