"""``spinout reproduce``: run the Ising-Dropout paper's grid plus the other variants, then report.

Each run is a ``spinout train`` subprocess (``python -m service train ... --out``) with one torch
/ OpenMP / numba thread, so runs are isolated and ``--jobs`` of them share the cores. A run trains
into ``runs/<run-id>.partial`` and is renamed to ``runs/<run-id>`` only when it succeeded, so a
run folder holding ``result.json`` is finished and skipped next time (resumable); a failure
leaves ``runs/<run-id>/failed.json`` with the exit code and the tail of its stderr, is reported,
and is retried by the next invocation. ``grid.json`` keeps the settings: a folder is never mixed
across epoch counts or data limits.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import experiments
from .experiments import Run

MANIFEST = "grid.json"
STDERR_TAIL = 4000
#: Settings that must agree between invocations writing into one folder.
_SETTING_KEYS = ("epochs", "limit_train", "limit_test", "val_size", "seed", "patience")


@dataclass
class Outcome:
    """What happened to one run in this invocation: "done", "skipped" or "failed"."""

    run_id: str
    status: str
    seconds: float = 0.0
    message: str = ""


def default_jobs() -> int:
    """Runs in parallel when ``--jobs`` is not given: the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def add_runner_arguments(parser: argparse.ArgumentParser, list_help: str) -> None:
    """The arguments every command that trains a grid of runs with ``run_grid`` takes;
    ``list_help`` says what its ``--list`` prints."""
    parser.add_argument("--list", action="store_true", help=list_help)
    parser.add_argument("--jobs", type=int, default=None, help="runs in parallel (default: number of cores)")
    parser.add_argument("--limit-train", type=int, default=None, help="train on this many images only")
    parser.add_argument("--limit-test", type=int, default=None, help="test on this many images only")
    parser.add_argument("--val-size", type=int, default=None, help="validation images (train's default 5000)")
    parser.add_argument("--data-root", default=None,
                        help="folder holding mnist/ and fashion-mnist/ (default: spinout train's own lookup)")
    parser.add_argument("--run-timeout", type=float, default=None, help="seconds before a run is killed")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from existing runs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``reproduce`` arguments to ``parser``."""
    parser.add_argument("--quick", action="store_true",
                        help=f"a small subset for CI: {', '.join(experiments.QUICK_NETWORKS)}, "
                             f"{len(experiments.QUICK_ROWS)} rows, {experiments.QUICK_EPOCHS} epochs on "
                             f"{experiments.QUICK_LIMIT_TRAIN} training images")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                        help=f"datasets (default: {' '.join(experiments.DATASETS)})")
    parser.add_argument("--networks", nargs="+", default=None, metavar="SIZES",
                        help=f"networks (default: all of {' '.join(experiments.NETWORKS)})")
    parser.add_argument("--rows", nargs="+", default=None, metavar="KEY",
                        help="rows by key (default: all; --list shows them)")
    parser.add_argument("--out", default="reproduction", help="folder for runs/, grid.json and results.md")
    parser.add_argument("--report", default=None,
                        help="where the Markdown report goes (default OUT/results.md); its plots go to the "
                             "folder named like it without .md")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epochs of every run (default {experiments.DEFAULT_EPOCHS} as in the paper, "
                             f"SparseVD {experiments.SPARSEVD_EPOCHS} for its published schedule; "
                             f"--quick {experiments.QUICK_EPOCHS})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--patience", type=int, default=None,
                        help="early stopping after this many epochs without a better validation accuracy "
                             "(default: none, every run trains all its epochs)")
    add_runner_arguments(parser, "print the grid's runs and exit")


def usage_error(program: str, message: str) -> int:
    """Print ``program: error: message`` on stderr; returns the exit status of a usage error."""
    print(f"{program}: error: {message}", file=sys.stderr)
    return 2


def _error(message: str) -> int:
    return usage_error("spinout reproduce", message)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    quick = bool(args.quick)
    return {
        # None: each row's own count (32 as in the paper, longer for SparseVD's schedule)
        "epochs": args.epochs or (experiments.QUICK_EPOCHS if quick else None),
        "limit_train": args.limit_train if args.limit_train is not None else
        (experiments.QUICK_LIMIT_TRAIN if quick else None),
        "limit_test": args.limit_test if args.limit_test is not None else
        (experiments.QUICK_LIMIT_TEST if quick else None),
        "val_size": args.val_size if args.val_size is not None else (experiments.QUICK_VAL_SIZE if quick else None),
        "seed": args.seed,
        "patience": args.patience,
    }


def _default_selection(quick: bool) -> dict[str, list[str]]:
    return {"datasets": list(experiments.DATASETS),
            "networks": list(experiments.QUICK_NETWORKS if quick else experiments.NETWORKS),
            "rows": list(experiments.QUICK_ROWS) if quick else [r.key for r in experiments.ROWS]}


def _command_line(args: argparse.Namespace, selection: dict[str, list[str]]) -> str:
    """The canonical command that regenerates this folder's runs and report."""
    parts = ["spinout", "reproduce"]
    if args.quick:
        parts.append("--quick")
    defaults = _default_selection(bool(args.quick))
    for flag, key in (("--datasets", "datasets"), ("--networks", "networks"), ("--rows", "rows")):
        if set(selection[key]) != set(defaults[key]):
            parts += [flag, *selection[key]]
    for flag, value in (("--epochs", args.epochs), ("--limit-train", args.limit_train),
                        ("--limit-test", args.limit_test), ("--val-size", args.val_size),
                        ("--patience", args.patience)):
        if value is not None:
            parts += [flag, str(value)]
    if args.seed:
        parts += ["--seed", str(args.seed)]
    if args.data_root:
        parts += ["--data-root", args.data_root]
    parts += ["--out", args.out]
    if args.report:
        parts += ["--report", args.report]
    if args.jobs:
        parts += ["--jobs", str(args.jobs)]
    return shlex.join(parts)


def _merge(previous: list[str], current: list[str], order: list[str]) -> list[str]:
    """The union of two selections, in the grid's order."""
    union = set(previous) | set(current)
    return [name for name in order if name in union] + [name for name in current if name not in order]


def data_dir_for(data_root: str | None, dataset: str) -> str | None:
    if data_root is None:
        return None
    return str(Path(data_root) / dataset)


def execute(run: Run, out: Path, *, data_dir: str | None = None, timeout: float | None = None,
            python: str = sys.executable) -> Outcome:
    """Train one run in a subprocess unless its ``result.json`` exists; record a failure.

    The subprocess gets one thread for torch, OpenMP, MKL and numba, and writes into
    ``<run-id>.partial``, renamed to ``<run-id>`` on success (a half-written folder is never
    mistaken for a finished run).
    """
    runs = out / "runs"
    final = runs / run.run_id
    if (final / "result.json").is_file():
        return Outcome(run.run_id, "skipped")
    partial = runs / f"{run.run_id}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    argv = [python, "-m", "service", "train", *run.train_args(data_dir), "--out", str(partial)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    (partial / "command.txt").write_text(shlex.join(argv) + "\n")
    start = time.perf_counter()
    returncode: int | None
    with open(partial / "stdout.log", "wb") as stdout, open(partial / "stderr.log", "wb") as stderr:
        try:
            returncode = subprocess.run(argv, stdout=stdout, stderr=stderr, env=env, timeout=timeout,
                                        check=False).returncode
            reason = f"exit code {returncode}"
        except subprocess.TimeoutExpired:
            returncode, reason = None, f"killed after the {timeout:g} s run timeout"
        except OSError as exc:
            returncode, reason = None, f"could not start: {exc}"
    seconds = time.perf_counter() - start
    ok = returncode == 0 and (partial / "result.json").is_file()
    if ok:
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        return Outcome(run.run_id, "done", seconds)
    if returncode == 0:
        reason = "exit code 0 but no result.json"
    tail = (partial / "stderr.log").read_bytes()[-STDERR_TAIL:].decode(errors="replace")
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    (final / "failed.json").write_text(json.dumps({
        "run_id": run.run_id, "returncode": returncode, "reason": reason, "seconds": round(seconds, 3),
        "command": shlex.join(argv), "stderr_tail": tail,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2) + "\n")
    last = tail.strip().splitlines()[-1] if tail.strip() else reason
    return Outcome(run.run_id, "failed", seconds, last)


def run_grid(runs: Sequence[Run], out: Path, *, jobs: int = 1, data_root: str | None = None,
             timeout: float | None = None, progress: bool = True,
             on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run every unfinished run, ``jobs`` at a time; failures are recorded, never raised.

    Returns the outcomes in completion order (skipped runs first).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    outcomes: list[Outcome] = []
    todo = []
    for run in runs:
        if (out / "runs" / run.run_id / "result.json").is_file():
            outcomes.append(Outcome(run.run_id, "skipped"))
        else:
            todo.append(run)
    todo.sort(key=lambda run: run.relative_cost, reverse=True)  # longest first
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(runs), initial=len(outcomes), unit="run", desc="reproduce", dynamic_ncols=True,
                   file=sys.stderr)
    lock = threading.Lock()
    failures = 0
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(execute, run, out, data_dir=data_dir_for(data_root, run.dataset),
                               timeout=timeout): run for run in todo}
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - one broken run must not stop the grid
                outcome = Outcome(futures[future].run_id, "failed", 0.0, f"{type(exc).__name__}: {exc}")
            with lock:
                outcomes.append(outcome)
                failures += outcome.status == "failed"
                if bar is not None:
                    bar.set_postfix(failed=failures, refresh=False)
                    bar.update(1)
                if on_outcome is not None:
                    on_outcome(outcome)
    if bar is not None:
        bar.close()
    return outcomes


def load_manifest(path: Path) -> dict[str, Any] | None:
    """A grid folder's manifest (None: no such file).

    Raises:
        ValueError: the file is not valid JSON.
    """
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); remove it or use another --out") from exc


def save_manifest(path: Path, record: dict[str, Any]) -> None:
    path.write_text(json.dumps(record, indent=2) + "\n")


def check_same_settings(out: Path, manifest: dict[str, Any], settings: dict[str, Any],
                        keys: Sequence[str]) -> None:
    """Refuse to mix runs made with other settings into one folder.

    Raises:
        ValueError: naming each of ``keys`` whose value differs from the manifest's.
    """
    old = {k: manifest["settings"].get(k) for k in keys}
    new = {k: settings.get(k) for k in keys}
    if old != new:
        diff = ", ".join(f"{k} {old[k]} -> {new[k]}" for k in keys if old[k] != new[k])
        raise ValueError(f"{out} holds runs made with other settings ({diff}); use another --out")


def failure_printer(program: str) -> Callable[[Outcome], None]:
    """A ``run_grid`` callback that reports each failed run on stderr as it happens."""
    def tell(outcome: Outcome) -> None:
        if outcome.status == "failed":
            print(f"\n{program}: run {outcome.run_id} failed: {outcome.message}", file=sys.stderr)
    return tell


def print_summary(program: str, outcomes: Sequence[Outcome], seconds: float) -> None:
    """One stderr line: how many runs trained, were already done and failed, and the time."""
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    print(f"{program}: {counts['done']} trained, {counts['skipped']} already done, "
          f"{counts['failed']} failed, in {seconds:.1f} s", file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    report_path = Path(args.report) if args.report else None
    try:
        manifest = load_manifest(out / MANIFEST)
        if args.report_only:
            if manifest is None:
                return _error(f"no {MANIFEST} in {out}: nothing to report (run without --report-only first)")
            selection = manifest["selection"]
            settings = manifest["settings"]
            command = manifest["command"]
            wall = manifest.get("wall_seconds_total", manifest.get("wall_seconds"))
            invocations = int(manifest.get("invocations", 1))
        else:
            settings = _settings(args)
            for name in ("epochs", "limit_train", "limit_test", "jobs", "patience"):
                value = getattr(args, name)
                if value is not None and value < 1:
                    raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
            if args.val_size is not None and args.val_size < 0:
                raise ValueError(f"--val-size must be >= 0, got {args.val_size}")
            if args.data_root is not None and not Path(args.data_root).is_dir():
                raise ValueError(f"--data-root {args.data_root} is not a folder")
            defaults = _default_selection(bool(args.quick))
            selection = {"datasets": args.datasets or defaults["datasets"],
                         "networks": args.networks or defaults["networks"],
                         "rows": args.rows or defaults["rows"]}
            order = _default_selection(False)
            if manifest is not None:
                check_same_settings(out, manifest, settings, _SETTING_KEYS)
                selection = {k: _merge(manifest["selection"][k], selection[k], order[k]) for k in selection}
            command = _command_line(args, selection)
            wall = None
            invocations = 1
        runs = experiments.build_grid(datasets=selection["datasets"], networks=selection["networks"],
                                      rows=selection["rows"], epochs=settings["epochs"],
                                      limit_train=settings["limit_train"], limit_test=settings["limit_test"],
                                      val_size=settings["val_size"], seed=settings["seed"],
                                      patience=settings.get("patience"))
    except (ValueError, KeyError) as exc:
        return _error(str(exc).strip("'\""))
    if args.list:
        for run in runs:
            print(f"{run.run_id}  spinout train {shlex.join(run.train_args(data_dir_for(args.data_root, run.dataset)))}")
        return 0
    if not args.report_only:
        out.mkdir(parents=True, exist_ok=True)
        record = {"settings": settings, "selection": selection, "command": command,
                  "data_root": args.data_root, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        save_manifest(out / MANIFEST, record)
        jobs = args.jobs or default_jobs()
        print(f"spinout reproduce: {len(runs)} runs, {jobs} in parallel, into {out}", file=sys.stderr)
        start = time.perf_counter()

        outcomes = run_grid(runs, out, jobs=jobs, data_root=args.data_root, timeout=args.run_timeout,
                            progress=not args.no_progress, on_outcome=failure_printer("spinout reproduce"))
        invocation_wall = time.perf_counter() - start
        # A resumed grid adds up: the report states the wall time of all the invocations.
        earlier = manifest or {}
        wall = float(earlier.get("wall_seconds_total", earlier.get("wall_seconds", 0.0))) + invocation_wall
        invocations = int(earlier.get("invocations", 1 if earlier.get("wall_seconds") else 0)) + 1
        record.update(wall_seconds=round(invocation_wall, 1), wall_seconds_total=round(wall, 1),
                      invocations=invocations)
        save_manifest(out / MANIFEST, record)
        print_summary("spinout reproduce", outcomes, invocation_wall)
    from .report import write_report
    path = write_report(out, runs, command=command, report_path=report_path, settings=settings,
                        wall_seconds=wall, invocations=invocations)
    print(f"spinout reproduce: report written to {path}", file=sys.stderr)
    failed = sum(1 for run in runs if (out / "runs" / run.run_id / "failed.json").is_file()
                 and not (out / "runs" / run.run_id / "result.json").is_file())
    return 1 if failed else 0
