"""``spinout study ising``: the controlled study of Ising-Dropout's annealer, then its report.

Runs the grid of ``trainer.study`` (settings x arms x paired seeds) with the reproduction
grid's runner (``reproduce_command.run_grid``): each run a ``spinout train`` subprocess on one
thread, ``--jobs`` at a time, longest first, into ``OUT/runs/<run-id>`` (a folder with
``result.json`` is finished and skipped next time: resumable; a failure leaves ``failed.json``
and is retried). When an arm solves over HTTP, a ``spinout serve`` on a free loopback port with a
one-off API key is started for the invocation and stopped after it. ``study.json`` keeps the
settings (a folder is never mixed across energies, epochs or data limits), the command and the
accumulated wall time; the report (``trainer.study_report``) is written at the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from service.loopback import free_port, wait_until_serving

from . import study, study_tuning
from .reproduce_command import (Outcome, add_runner_arguments, check_same_settings, data_dir_for,
                                default_jobs, failure_printer, load_manifest, print_summary, run_grid,
                                save_manifest, usage_error)

MANIFEST = "study.json"
_SETTING_KEYS = ("energy", "epochs", "limit_train", "limit_test", "val_size", "seeds")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``study`` arguments to ``parser``."""
    parser.add_argument("name", choices=("ising",), help="the study to run")
    parser.add_argument("--quick", action="store_true",
                        help=f"CI smoke run: arms {' '.join(study.QUICK_ARMS)} on {study.MAIN_SETTING}, "
                             f"{study.QUICK_SEEDS} seeds, {study.QUICK_EPOCHS} epoch on "
                             f"{study.QUICK_LIMIT_TRAIN} images")
    parser.add_argument("--settings", nargs="+", default=None, metavar="KEY",
                        help=f"settings (default all: {' '.join(s.key for s in study.SETTINGS)})")
    parser.add_argument("--arms", nargs="+", default=None, metavar="KEY",
                        help=f"arms (default all: {' '.join(a.key for a in study.ARMS)})")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per setting (default: the table's)")
    parser.add_argument("--epochs", type=int, default=None, help="override every setting's epoch budget")
    parser.add_argument("--energy", default=study.ENERGY, help=f"the Ising arms' energy (default {study.ENERGY})")
    parser.add_argument("--tune", action="store_true",
                        help=f"choose each arm's hyperparameters on the validation split first: "
                             f"{study_tuning.BUDGET} configurations per arm on {study.MAIN_SETTING}, tuning "
                             f"seeds {', '.join(map(str, study_tuning.TUNE_SEEDS))}; writes "
                             f"OUT/{study_tuning.TUNING_FILE}, which later invocations use")
    parser.add_argument("--out", default="study", help="folder for runs/, study.json and the report")
    parser.add_argument("--report", default=None,
                        help="the Markdown report (default OUT/ising-dropout-study.md); its images go to "
                             "the folder named like it without .md")
    add_runner_arguments(parser, "print the epoch budget and the runs, then exit")


def _error(message: str) -> int:
    return usage_error("spinout study", message)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    quick = bool(args.quick)
    pick = (lambda given, q: given if given is not None else (q if quick else None))
    return {"energy": args.energy,
            "epochs": pick(args.epochs, study.QUICK_EPOCHS),
            "limit_train": pick(args.limit_train, study.QUICK_LIMIT_TRAIN),
            "limit_test": pick(args.limit_test, study.QUICK_LIMIT_TEST),
            "val_size": pick(args.val_size, study.QUICK_VAL_SIZE),
            "seeds": pick(args.seeds, study.QUICK_SEEDS)}


def _selection(args: argparse.Namespace) -> dict[str, list[str]]:
    if args.quick:
        defaults = {"settings": [study.MAIN_SETTING], "arms": list(study.QUICK_ARMS)}
    else:
        defaults = {"settings": [s.key for s in study.SETTINGS], "arms": [a.key for a in study.ARMS]}
    return {"settings": args.settings or defaults["settings"], "arms": args.arms or defaults["arms"]}


def _with_selection(args: argparse.Namespace, selection: dict[str, list[str]]) -> argparse.Namespace:
    """``args`` asking for the folder's whole selection (the union over its invocations): the
    canonical command names settings and arms only when they are not all of them."""
    every = {"settings": [s.key for s in study.SETTINGS], "arms": [a.key for a in study.ARMS]}
    chosen = {k: (None if sorted(v) == sorted(every[k]) else [x for x in every[k] if x in v])
              for k, v in selection.items()}
    return argparse.Namespace(**{**vars(args), **chosen})


def command_line(args: argparse.Namespace) -> str:
    """The canonical command that regenerates this folder's runs and report."""
    parts = ["spinout", "study", "ising"]
    if args.quick:
        parts.append("--quick")
    for flag, value in (("--settings", args.settings), ("--arms", args.arms)):
        if value:
            parts += [flag, *value]
    for flag, value in (("--seeds", args.seeds), ("--epochs", args.epochs),
                        ("--limit-train", args.limit_train), ("--limit-test", args.limit_test),
                        ("--val-size", args.val_size), ("--data-root", args.data_root),
                        ("--jobs", args.jobs)):
        if value is not None:
            parts += [flag, str(value)]
    if args.energy != study.ENERGY:
        parts += ["--energy", args.energy]
    parts += ["--out", args.out]
    if args.report:
        parts += ["--report", args.report]
    return shlex.join(parts)


@contextmanager
def solver_service(log: Path, timeout: float = 120.0) -> Iterator[str]:
    """A ``spinout serve`` on a free loopback port with a one-off API key (exported as
    ``SPINOUT_API_KEY`` for the runs), stopped on exit; yields its URL."""
    port, key = free_port(), secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", str(port),
                                 "--api-key", key, "--workers", "1"], stdout=out, stderr=subprocess.STDOUT)
    previous = os.environ.get("SPINOUT_API_KEY")
    try:
        wait_until_serving(url, proc, log, timeout, poll=0.2)
        os.environ["SPINOUT_API_KEY"] = key
        yield url
    finally:
        if previous is None:
            os.environ.pop("SPINOUT_API_KEY", None)
        else:
            os.environ["SPINOUT_API_KEY"] = previous
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _build(settings: dict[str, Any], selection: dict[str, list[str]], url: str | None = None,
           tuning: dict[str, Any] | None = None) -> list[study.StudyRun]:
    return study.build_study(settings=selection["settings"], arms=selection["arms"], seeds=settings["seeds"],
                             epochs=settings["epochs"], energy=settings["energy"],
                             limit_train=settings["limit_train"], limit_test=settings["limit_test"],
                             val_size=settings["val_size"], url=url, configs=study_tuning.configs(tuning))


def _tuning_runs(settings: dict[str, Any], selection: dict[str, list[str]], quick: bool) -> list[study.StudyRun]:
    return study_tuning.tuning_runs(selection["arms"], quick=quick, epochs=settings["epochs"],
                                    limit_train=settings["limit_train"], limit_test=settings["limit_test"],
                                    val_size=settings["val_size"], energy=settings["energy"])


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    report_path = Path(args.report) if args.report else out / "ising-dropout-study.md"
    try:
        for name in ("seeds", "epochs", "limit_train", "limit_test", "jobs"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        manifest = load_manifest(out / MANIFEST)
        if args.report_only:
            if manifest is None:
                return _error(f"no {MANIFEST} in {out}: nothing to report")
            settings, selection, command = manifest["settings"], manifest["selection"], manifest["command"]
            # --settings / --arms narrow the report to part of the folder (e.g. the finished settings)
            selection = {k: [x for x in v if not getattr(args, k) or x in getattr(args, k)]
                         for k, v in selection.items()}
        else:
            settings, selection, command = _settings(args), _selection(args), command_line(args)
            if manifest is not None:
                check_same_settings(out, manifest, settings, _SETTING_KEYS)
                selection = {k: list(dict.fromkeys(manifest["selection"][k] + selection[k])) for k in selection}
                command = command_line(_with_selection(args, selection))
        if args.tune and args.report_only:
            raise ValueError("--tune trains the tuning runs; it does not go with --report-only")
        tuning = study_tuning.load(out)
        runs = (_tuning_runs(settings, selection, bool(args.quick)) if args.tune
                else _build(settings, selection, url="http://service.invalid", tuning=tuning))
    except (ValueError, KeyError) as exc:
        return _error(str(exc).strip("'\""))
    if args.tune and not runs:
        return _error(f"none of the arms {' '.join(selection['arms'])} has a tuning grid "
                      f"(tuned: {' '.join(study_tuning.GRIDS)})")
    if args.list:
        print(study.budget_table())
        print(f"\n{len(runs)} runs:")
        for run in runs:
            print(f"{run.run_id}  spinout train {shlex.join(run.train_args(data_dir_for(args.data_root, run.dataset)))}")
        return 0
    wall = float((manifest or {}).get("wall_seconds_total", 0.0))
    if not args.report_only:
        out.mkdir(parents=True, exist_ok=True)
        record = {"settings": settings, "selection": selection, "command": command, "data_root": args.data_root,
                  "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        save_manifest(out / MANIFEST, record)
        jobs = args.jobs or default_jobs()
        print(study.budget_table(), file=sys.stderr)
        print(f"spinout study: {len(runs)} runs, {jobs} in parallel, into {out}", file=sys.stderr)
        start = time.perf_counter()
        needs_service = any(r.arm.remote and not (out / "runs" / r.run_id / "result.json").is_file() for r in runs)

        def go(url: str | None) -> list[Outcome]:
            todo = runs if args.tune else _build(settings, selection, url, tuning)
            return run_grid(todo, out, jobs=jobs, data_root=args.data_root,
                            timeout=args.run_timeout, progress=not args.no_progress,
                            on_outcome=failure_printer("spinout study"))

        try:
            if needs_service:
                with solver_service(out / "serve.log") as url:
                    outcomes = go(url)
            else:
                outcomes = go("http://service.invalid")
        except RuntimeError as exc:
            return _error(str(exc))
        invocation = time.perf_counter() - start
        wall += invocation
        record.update(wall_seconds=round(invocation, 1), wall_seconds_total=round(wall, 1),
                      invocations=int((manifest or {}).get("invocations", 0)) + 1)
        save_manifest(out / MANIFEST, record)
        print_summary("spinout study", outcomes, invocation)
        if args.tune:
            tuning = study_tuning.select(out, runs)
            study_tuning.save(out, tuning)
            print(study_tuning.tuning_table(tuning))
            print(f"spinout study: each arm's choice written to {out / study_tuning.TUNING_FILE}; the next "
                  f"invocation without --tune runs the study with it", file=sys.stderr)
            return 0 if all((out / "runs" / r.run_id / "result.json").is_file() for r in runs) else 1
    from .study_report import write_study_report
    path = write_study_report(out, runs, report_path, command=command, wall_seconds=wall, tuning=tuning)
    print(f"spinout study: report written to {path}", file=sys.stderr)
    failed = [r for r in runs if not (out / "runs" / r.run_id / "result.json").is_file()]
    return 1 if failed else 0
