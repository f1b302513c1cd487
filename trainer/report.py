"""The reproduction report: our numbers beside the paper's, accuracy-vs-compression and training curves.

Reads what ``spinout reproduce`` left in its output folder (``runs/<run-id>/result.json`` with
its per-epoch ``history``, ``failed.json`` for failures) and writes one
Markdown file with one table per dataset and network, plus PNG plots (matplotlib, Agg backend)
in a folder beside it named like the report without its suffix, embedded by relative path so the
report and its plots can be committed together (``docs/results.md`` + ``docs/results/``).
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .experiments import DATASETS, NETWORKS, Run

DATASET_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


@dataclass
class RunRecord:
    """A run's outcome as found on disk: ``result`` when it finished, ``failure`` when it failed."""

    run: Run
    result: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None
    curve: list[tuple[int, float, float, float]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "done" if self.result is not None else "failed" if self.failure is not None else "missing"


def run_dir(out: Path, run: Run) -> Path:
    return out / "runs" / run.run_id


def read_curve(result: dict[str, Any]) -> list[tuple[int, float, float, float]]:
    """``(epoch, loss, train %, val %)`` from the per-epoch ``history`` of a run's result.json
    (NaN where a value was not finite)."""
    def number(value: Any) -> float:
        return math.nan if value is None else float(value)

    return [(int(h["epoch"]), number(h["loss"]), number(h["train_accuracy"]),
             number(h["val_accuracy"])) for h in result.get("history") or []]


def collect(out: Path, runs: Sequence[Run]) -> list[RunRecord]:
    """The on-disk state of every run of the grid."""
    records = []
    for run in runs:
        folder = run_dir(out, run)
        record = RunRecord(run)
        result_file, failed_file = folder / "result.json", folder / "failed.json"
        if result_file.is_file():
            record.result = json.loads(result_file.read_text())
            record.curve = read_curve(record.result)
        elif failed_file.is_file():
            record.failure = json.loads(failed_file.read_text())
        records.append(record)
    return records


def training_settings(records: Sequence[RunRecord]) -> list[str]:
    """The training settings the finished runs used, read from their result.json: one line per
    distinct (units, optimiser schedule, batch, epochs, epoch kept), with the variants that ran so."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for rec in records:
        r = rec.result or {}
        key = (r.get("activation"), r.get("lr"), r.get("lr_decay"), r.get("batch_size"), r.get("epochs"),
               r.get("epoch_selection"))
        groups.setdefault(key, []).append(str(r.get("dropout")))
    lines = ["- training settings, read from the runs:"] if groups else []
    for (activation, lr, decay, batch, epochs, selection), variants in sorted(
            groups.items(), key=lambda item: -len(item[1])):
        schedule = f"Adam lr {lr}" + (" decayed linearly to 0" if decay == "linear" else "")
        kept = {"best": "best validation epoch restored", "last": "last epoch kept",
                "best-selectable": "best validation epoch among the selectable ones restored"
                }.get(str(selection), str(selection))
        lines.append(f"  - {activation} units, {schedule}, batch {batch}, {epochs} epochs, {kept}: "
                     f"{len(variants)} runs ({', '.join(sorted(set(variants)))})")
    return lines


# ---------------------------------------------------------------------------------- formatting
def _num(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _rates(values: Sequence[float] | None) -> str:
    if not values:
        return "–"
    return " / ".join(f"{v:.1f}" for v in values)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _row_table(records: Sequence[RunRecord]) -> list[str]:
    header = ("| row | acc. ours | acc. paper | Δ acc. | removed % ours (eq. 6) | removed % paper | "
              "removed %, pruned net | drop % ours (h0 / h1 / ...) | drop % paper | best epoch | time |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for rec in records:
        paper = rec.run.paper
        p_acc = paper.accuracy if paper else None
        p_removed = paper.removed_pct if paper else None
        p_rates = list(paper.drop_rates) if paper and paper.drop_rates else None
        mark = "*" if paper and (paper.derived or paper.note) else ""
        label = rec.run.row.label + (f" (`{rec.run.row.key}`)" if not rec.run.row.paper_row else "")
        if rec.result is None:
            status = "**failed**" if rec.status == "failed" else "not run"
            lines.append(f"| {label} | {status} | {_num(p_acc)} | | | {_num(p_removed)}{mark} | | | "
                         f"{_rates(p_rates)}{mark} | | |")
            continue
        r = rec.result
        acc = float(r["test_accuracy"])
        delta = f"{acc - p_acc:+.2f}" if p_acc is not None else ""
        ours_rates = list(r.get("drop_rate_per_layer", {}).values())
        exact = r.get("params_removed_pct_exact")
        basis = r.get("params_exact_basis")
        exact_text = _num(exact) if basis == "pruned" else ("–" if basis is None else f"{_num(exact)} (exp.)")
        lines.append(
            f"| {label} | {acc:.2f} | {_num(p_acc)}{mark if p_acc is not None else ''} | {delta} | "
            f"{_num(r.get('params_removed_pct'))} | {_num(p_removed)}{mark if p_removed is not None else ''} | "
            f"{exact_text} | {_rates(ours_rates)} | {_rates(p_rates)}{mark if p_rates else ''} | "
            f"{r.get('best_epoch', '')}/{r.get('epochs', '')} | {_duration(float(r.get('seconds', 0)))} |")
    return lines


# ---------------------------------------------------------------------------------- plots
def _family(row_key: str) -> str:
    for prefix in ("ising-paper", "ising-keep", "ising", "dropalan", "dropout"):
        if row_key.startswith(prefix):
            return prefix
    return row_key


_MARKERS = {"784-100-100-10": "o", "784-100-50-50-10": "s", "784-100-50-50-25-10": "^", "784-300-100-10": "D"}


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no display); ImportError without it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig: Any, path: Path, dpi: int = 100) -> None:
    """Lay ``fig`` out, write it to ``path`` (its folder made) and free it."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


def plot_scatter(records: Sequence[RunRecord], path: Path, title: str) -> bool:
    """Test accuracy against % of parameters removed: ours filled, the paper's hollow."""
    points = [r for r in records if r.result is not None]
    papers = [r for r in records if r.run.paper and r.run.paper.accuracy is not None
              and r.run.paper.removed_pct is not None]
    if not points and not papers:
        return False
    plt = pyplot()
    families = sorted({_family(r.run.row.key) for r in records})
    colors = {f: plt.get_cmap("tab20")(i % 20) for i, f in enumerate(families)}
    fig, ax = plt.subplots(figsize=(9, 6))
    for rec in points:
        result = rec.result or {}
        ax.scatter(float(result["params_removed_pct"]), float(result["test_accuracy"]),
                   color=colors[_family(rec.run.row.key)], marker=_MARKERS.get(rec.run.network, "o"), s=40)
    for rec in papers:
        paper = rec.run.paper
        assert paper is not None
        ax.scatter(paper.removed_pct, paper.accuracy, facecolors="none", edgecolors=[colors[_family(rec.run.row.key)]],
                   marker=_MARKERS.get(rec.run.network, "o"), s=60)
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=colors[f], marker="o", linestyle="", label=f) for f in families]
    handles += [Line2D([], [], color="gray", marker=m, linestyle="", label=n) for n, m in _MARKERS.items()
                if any(r.run.network == n for r in records)]
    handles.append(Line2D([], [], color="gray", marker="o", markerfacecolor="none", linestyle="",
                          label="paper (hollow)"))
    ax.legend(handles=handles, fontsize=7, loc="lower left", ncol=2)
    ax.set_xlabel("parameters removed (%, eq. 6)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    save_figure(fig, path)
    return True


def plot_curves(records: Sequence[RunRecord], path: Path, title: str) -> bool:
    """Validation accuracy and training loss per epoch, one line per row."""
    with_curves = [r for r in records if r.curve]
    if not with_curves:
        return False
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    cmap = plt.get_cmap("tab20")
    for i, rec in enumerate(with_curves):
        epochs = [c[0] for c in rec.curve]
        ax1.plot(epochs, [c[3] for c in rec.curve], marker=".", color=cmap(i % 20), label=rec.run.row.key)
        ax2.plot(epochs, [c[1] for c in rec.curve], marker=".", color=cmap(i % 20), label=rec.run.row.key)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("validation accuracy (%)")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("training loss (masked, with regularisers)")
    from matplotlib.ticker import MaxNLocator
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_yscale("log")
    ax2.legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    save_figure(fig, path)
    return True


# ---------------------------------------------------------------------------------- goals
def _find(records: Sequence[RunRecord], dataset: str, network: str, key: str) -> RunRecord | None:
    return next((r for r in records if (r.run.dataset, r.run.network, r.run.row.key) == (dataset, network, key)),
                None)


def _verdict(ok: bool | None) -> str:
    return "not run" if ok is None else ("met" if ok else "**not met**")


def goal_lines(records: Sequence[RunRecord]) -> list[str]:
    """The issue's goals checked against the runs present (``not run`` when a run is missing)."""
    lines = []
    baseline_checks = []
    for rec in records:
        if rec.run.row.key in ("none", "dropout") and rec.run.paper and rec.result is not None:
            baseline_checks.append((rec, float(rec.result["test_accuracy"]) >= (rec.run.paper.accuracy or 0)))
    if baseline_checks:
        worse = [f"{r.run.dataset} {r.run.network} {r.run.row.key}" for r, ok in baseline_checks if not ok]
        lines.append(f"- no-dropout and dropout baselines at least as accurate as the paper's: "
                     f"{_verdict(not worse)} ({len(baseline_checks) - len(worse)}/{len(baseline_checks)}"
                     + (f"; below: {', '.join(worse)}" if worse else "") + ")")
    found = _find(records, "fashion-mnist", "784-100-50-50-25-10", "ising-infer-input")
    if found is not None:
        ok: bool | None = None
        detail = ""
        if found.result is not None:
            removed, acc = float(found.result["params_removed_pct"]), float(found.result["test_accuracy"])
            paper_acc = found.run.paper.accuracy if found.run.paper else None
            ok = removed >= 50 and (paper_acc is None or acc >= paper_acc)
            detail = f" ({removed:.2f} % removed at {acc:.2f} %, paper about {_num(paper_acc)} %)"
        lines.append(f"- Ising-Dropout, input, training+inference, Fashion-MNIST 784-100-50-50-25-10: >= 50 % "
                     f"removed at >= the paper's accuracy: {_verdict(ok)}{detail}")
    for key, factor in (("dropneuron", 5.0), ("sparsevd", 20.0)):
        found = _find(records, "mnist", "784-300-100-10", key)
        if found is None:
            continue
        ok, detail = None, ""
        if found.result is not None:
            acc, ratio = float(found.result["test_accuracy"]), found.result.get("compression_ratio")
            ok = acc >= 98.0 and ratio is not None and float(ratio) >= factor
            detail = f" ({acc:.2f} % at {_num(ratio, 1)}x)"
        lines.append(f"- {found.run.row.label}, MNIST 784-300-100-10: >= 98 % at >= {factor:g}x: {_verdict(ok)}{detail}")
    for rec in records:
        if rec.run.dataset != "mnist" or rec.run.row.key != "dropalan-beta-scaled":
            continue
        ref = _find(records, "mnist", rec.run.network, "dropout")
        ok, detail = None, ""
        if rec.result is not None and ref is not None and ref.result is not None:
            a, b = float(rec.result["test_accuracy"]), float(ref.result["test_accuracy"])
            ok, detail = a >= b - 0.3, f" ({a:.2f} % vs {b:.2f} %)"
        lines.append(f"- DropAlan scaled beta within 0.3 points of dropout, MNIST {rec.run.network}: "
                     f"{_verdict(ok)}{detail}")
    return lines


# ---------------------------------------------------------------------------------- the report
def code_commits(results: Iterable[dict[str, Any]]) -> str:
    """The code commits the runs were made at, as a Markdown list of code spans ("-": none)."""
    commits = sorted({str(r.get("code_commit")) for r in results})
    return ", ".join(f"`{c}`" for c in commits) or "-"


def machine_info() -> str:
    import os

    import torch
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{platform.node() or 'unknown host'}, {platform.machine()} {platform.processor() or ''}".strip()
            + f", {cpus} CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}, "
              f"torch {torch.__version__}")


def write_report(out: Path, runs: Sequence[Run], *, command: str, report_path: Path | None = None,
                 settings: dict[str, Any] | None = None, wall_seconds: float | None = None,
                 invocations: int = 1) -> Path:
    """Write the Markdown report and its plots; return the report's path.

    Args:
        out: the reproduction folder (holding ``runs/``).
        runs: the grid whose runs the report shows (missing ones appear as "not run").
        command: the command that regenerates the runs and this report (printed at the top).
        report_path: where the Markdown goes (default ``out/results.md``); plots go to the folder
            named like it without the suffix.
        settings: epochs, limits, seed... shown under the command.
        wall_seconds: wall time of the invocations that trained the runs, if known.
        invocations: how many (a resumed grid takes several).
    """
    report_path = report_path or out / "results.md"
    plots = report_path.parent / report_path.stem
    records = collect(out, runs)
    done = [r for r in records if r.status == "done"]
    failed = [r for r in records if r.status == "failed"]
    missing = [r for r in records if r.status == "missing"]
    train_seconds = sum((float((r.result or {}).get("seconds", 0)) for r in done), 0.0)
    lines = [
        "# Reproduction: Ising-Dropout (Salehinejad & Valaee, ICASSP 2019) and the other dropout variants",
        "",
        "Regenerate the runs and this report (finished runs are skipped; `--report-only` rebuilds the "
        "report without training):",
        "",
        "```bash",
        command,
        "```",
        "",
        f"- generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine_info()}",
        f"- runs: {len(done)} finished, {len(failed)} failed, {len(missing)} not run, of {len(records)}; "
        f"training time {_duration(train_seconds)} summed over runs"
        + (f", wall time {_duration(wall_seconds)}"
           + (f" over {invocations} invocations (resumed)" if invocations > 1 else "")
           if wall_seconds else ""),
    ]
    if settings:
        lines.append("- grid settings: " + ", ".join(f"{k} {v}" for k, v in settings.items() if v is not None))
    lines += training_settings(done)
    lines.append(f"- code commit(s) of the runs: {code_commits(r.result or {} for r in done)}")
    lines += [
        "",
        "Columns: test accuracy (%) ours and the paper's; parameters removed by the paper's eq. 6 "
        "accounting; \"pruned net\" counts every weight and bias a removed unit takes with it "
        "(\"exp.\": the expected value for random masks, which prune nothing); drop rates per layer, "
        "h0 = input. `*`: derived or from the text, not a table cell (the dropout rows' rates follow "
        "from p = 0.5 and their Total from eq. 6). Ising rows use the default `saliency` energy "
        "unless they say \"literal\" (the paper's eq. 5, `--ising-energy paper`, run for "
        "at most 3 epochs since it collapses in the first one). Rows with a `key` are not in the paper's "
        "tables; for the literal-energy and imposed-rates rows the paper's columns repeat its Ising row of "
        "the same configuration (marked `*`).",
        "",
    ]
    goals = goal_lines(records)
    if goals:
        lines += ["## Goals (issue 6)", "", "Checked on the runs present (a `--quick` or partial grid is not "
                  "expected to meet them).", "", *goals, ""]
    for dataset in DATASETS:
        ds_records = [r for r in records if r.run.dataset == dataset]
        if not ds_records:
            continue
        title = DATASET_TITLES.get(dataset, dataset)
        lines += [f"## {title}", ""]
        scatter = plots / f"{dataset}-accuracy-vs-compression.png"
        if plot_scatter(ds_records, scatter, f"{title}: accuracy vs parameters removed"):
            lines += [f"![{title}: accuracy vs compression]({scatter.relative_to(report_path.parent).as_posix()})",
                      ""]
        for network in NETWORKS:
            net_records = [r for r in ds_records if r.run.network == network]
            if not net_records:
                continue
            lines += [f"### {title}, {network}", ""]
            lines += _row_table(net_records)
            lines.append("")
            curves = plots / f"{dataset}-{network}-curves.png"
            if plot_curves(net_records, curves, f"{title} {network}"):
                lines += [f"![{title} {network}: training curves]"
                          f"({curves.relative_to(report_path.parent).as_posix()})", ""]
    if failed:
        lines += ["## Failed runs", ""]
        for rec in failed:
            failure = rec.failure or {}
            tail = str(failure.get("stderr_tail", "")).strip().splitlines()[-5:]
            lines += [f"- `{rec.run.run_id}` (exit {failure.get('returncode')}, "
                      f"{_duration(float(failure.get('seconds', 0)))}):", "", "  ```"]
            lines += [f"  {t}" for t in tail] + ["  ```", ""]
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text("\n".join(lines).rstrip() + "\n")
    return report_path
