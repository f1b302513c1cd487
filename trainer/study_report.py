"""The Ising-Dropout study's report: the decision rule first, then the numbers that decide it.

``write_study_report`` reads every run's ``result.json`` under ``OUT/runs`` and writes Markdown:
the rule as fixed before the runs, the settings and epoch budget, per-setting tables (mean +- sd),
paired comparisons of the annealer (bootstrap intervals, Holm-corrected sign-flip tests), the
solve audit, the dose-response plot (accuracy against the energy each solver reached; needs
matplotlib, the ``plots`` extra), the decision with its numbers, and the exact command and code
commit(s) of the runs.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import study, study_tuning
from .report import code_commits, pyplot, save_figure
from .study_stats import (ANNEALER, CHEAP_SOLVERS, DECISION_RULE, compare, decide, holm, mean_sd,
                          paired_bootstrap, paired_differences, sign_flip_test)

#: The remote arm, compared with the embedded annealer (same schedule, same seeds).
REMOTE = "annealer-http"


def load_results(out: Path, runs: Sequence[study.StudyRun]) -> dict[str, dict[str, Any]]:
    """run id -> result.json of the finished runs."""
    results = {}
    for run in runs:
        path = out / "runs" / run.run_id / "result.json"
        if path.is_file():
            results[run.run_id] = json.loads(path.read_text())
    return results


def _fmt(mean: float, sd: float, digits: int = 2) -> str:
    return "-" if math.isnan(mean) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _audits(result: dict[str, Any]) -> list[dict[str, Any]]:
    return list(((result.get("log") or {}).get("ising") or {}).get("audit") or [])


def dose_response(accuracy: dict[str, dict[str, dict[int, float]]], audits: dict[str, list[dict[str, Any]]]
                  ) -> dict[str, list[tuple[str, float, float]]]:
    """Per setting: (solver, mean relative energy gap to the best found in the audits, mean test
    accuracy of that solver's arm) for the solvers with both."""
    points: dict[str, list[tuple[str, float, float]]] = {}
    for setting, records in audits.items():
        rows = []
        for solver in (*CHEAP_SOLVERS, ANNEALER):
            gaps = [r["gap"][solver] for r in records if solver in r.get("gap", {})]
            accs = list(accuracy.get(setting, {}).get(solver, {}).values())
            if gaps and accs:
                rows.append((solver, float(np.mean(gaps)), float(np.mean(accs))))
        if rows:
            points[setting] = rows
    return points


def _plot(points: dict[str, list[tuple[str, float, float]]], path: Path) -> bool:
    try:
        plt = pyplot()
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(points), figsize=(5 * len(points), 4), squeeze=False)
    for ax, (setting, rows) in zip(axes[0], points.items()):
        for solver, gap, acc in rows:  # a legend, not labels: solvers at one point would overlap
            ax.scatter(100 * gap, acc, s=40, label=solver)
        ax.legend(fontsize=8)
        ax.set_xlabel("mean energy gap to the best found (%)")
        ax.set_ylabel("mean test accuracy (%)")
        ax.set_title(setting)
        ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=110)
    return True


def _against_baseline(accuracy: dict[str, dict[str, dict[int, float]]]) -> list[str]:
    """Every arm against no dropout, paired over seeds: what each method costs (or buys) in test
    accuracy at its compression."""
    lines = ["## Every arm against no dropout (paired over seeds)", "",
             "Difference = arm − no dropout in test accuracy points; intervals and tests as above, Holm "
             "within each setting.", "",
             "| setting | arm | seeds | mean diff | 95 % interval | p (Holm) |", "|---|---|---:|---:|---|---:|"]
    for setting, results in accuracy.items():
        if "none" not in results:
            continue
        rows = {arm: c for arm in [a.key for a in study.ARMS if a.key != "none" and a.key in results]
                for c in compare(setting, results, arm, ["none"])}
        adjusted = holm({arm: c.p_value for arm, c in rows.items()})  # the setting's arms: one family
        for arm, c in rows.items():
            iv = c.interval
            lines.append(f"| {setting} | {arm} | {iv.n} | {iv.mean:+.3f} | [{iv.low:+.3f}, {iv.high:+.3f}] | "
                         f"{adjusted[arm]:.4f} |")
    return lines + [""]


def _step_seconds(result: dict[str, Any]) -> float:
    """A run's seconds per training step without its solve audit (the embedded annealer arm
    re-solves every audited problem with every cheap solver; the remote arm audits nothing)."""
    audit = sum(sum(r.get("seconds", {}).values()) for r in _audits(result))
    return (float(result["seconds"]) - audit) / max(int(result["steps"]), 1)


#: The arm that solves the former default energy (``study.ARMS``), and what it is held against.
ENERGY_ARM = "annealer-saliency"
ENERGY_COMPARATORS = (ANNEALER, "topk", "none")


def _energy_choice(accuracy: dict[str, dict[str, dict[int, float]]]) -> list[str]:
    """The annealer on the saliency energy against the annealer and top-K on the study's energy
    (and no dropout), paired over seeds: what the choice of energy is worth at the same counts.
    Not part of the decision rule (whose comparisons were fixed before the runs)."""
    lines: list[str] = []
    for setting, results in accuracy.items():
        if ENERGY_ARM not in results:
            continue
        if not lines:
            lines = [f"## The energy: `{ENERGY_ARM}` against the study's energy (paired over seeds)", "",
                     f"Difference = {ENERGY_ARM} − comparator in test accuracy points, at the same counts "
                     "and annealing budget; intervals and tests as above, Holm within each setting. Not "
                     "part of the decision rule.", "",
                     "| setting | comparator | seeds | mean diff | 95 % interval | p | p (Holm) |",
                     "|---|---|---:|---:|---|---:|---:|"]
        for c in compare(setting, results, ENERGY_ARM, [a for a in ENERGY_COMPARATORS if a in results]):
            iv = c.interval
            lines.append(f"| {setting} | {c.comparator} | {iv.n} | {iv.mean:+.3f} | [{iv.low:+.3f}, "
                         f"{iv.high:+.3f}] | {c.p_value:.4f} | {c.p_holm:.4f} |")
    return lines + ([""] if lines else [])


def _remote_against_embedded(accuracy: dict[str, dict[str, dict[int, float]]],
                             rows: dict[tuple[str, str], list[dict[str, Any]]]) -> list[str]:
    """The annealer over HTTP against the embedded one: the same accuracy distribution (paired
    interval and sign-flip test of the difference) at what step time (per-seed ratio of the
    runs' seconds per training step without the audit, median and range; the two arms' runs
    are not simultaneous, so neighbours on shared cores widen the range)."""
    lines: list[str] = []
    for setting, results in accuracy.items():
        d = paired_differences(results, REMOTE, ANNEALER)
        if len(d) < 2:
            continue
        iv = paired_bootstrap(d)
        remote = {r["seed"]: _step_seconds(r) for r in rows.get((setting, REMOTE), [])}
        local = {r["seed"]: _step_seconds(r) for r in rows.get((setting, ANNEALER), [])}
        ratios = [remote[s] / local[s] for s in sorted(set(remote) & set(local)) if local[s] > 0]
        if not lines:
            lines += ["## The annealer over HTTP against the embedded one (paired over seeds)", "",
                      "| setting | seeds | accuracy diff (HTTP − embedded) | 95 % interval | p | step time ratio, median (range) |",
                      "|---|---:|---:|---|---:|---|"]
        ratio = (f"{np.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})" if ratios else "-")
        lines.append(f"| {setting} | {iv.n} | {iv.mean:+.3f} | [{iv.low:+.3f}, {iv.high:+.3f}] | "
                     f"{sign_flip_test(d):.4f} | {ratio} |")
    return lines + ([""] if lines else [])


def write_study_report(out: Path, runs: Sequence[study.StudyRun], report_path: Path, *, command: str,
                       wall_seconds: float | None = None, tuning: dict[str, Any] | None = None) -> Path:
    """Write the report for ``runs`` (finished or not) and return its path; ``tuning`` is the
    folder's ``tuning.json`` (None: every arm at its defaults)."""
    results = load_results(out, runs)
    accuracy: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    rows: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    audits: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        result = results.get(run.run_id)
        if result is None:
            continue
        accuracy[run.setting.key][run.arm.key][run.seed] = float(result["test_accuracy"])
        rows[(run.setting.key, run.arm.key)].append(result)
        if run.arm.key == ANNEALER:
            audits[run.setting.key] += _audits(result)
    all_audits = [r for recs in audits.values() for r in recs]
    decision = decide(accuracy, all_audits)
    lines = ["# Ising-Dropout study: does the annealer earn its place?", "",
             "## Decision rule (fixed before the runs)", "", DECISION_RULE, ""]
    lines += ["## Settings, arms and epoch budget", "",
              f"Every arm of a setting keeps exactly the same per-layer counts (kept fractions below), "
              f"uses Adam (learning rate {study.LR} unless tuning chose another, below), batch {study.BATCH_SIZE}, "
              f"mode `{study.MODE}`, and for a given seed "
              f"the same initialisation and data order. Ising arms solve the `{runs[0].energy if runs else study.ENERGY}` "
              f"energy every {study.SOLVE_EVERY} mini-batches unless tuning chose another cadence (below); the annealer's solves are audited every "
              f"{study.AUDIT_EVERY}th solve.", "", study.budget_table(), "",
              "| arm | family | what |", "|---|---|---|"]
    lines += [f"| {a.key} | {a.family} | {a.label} |" for a in study.ARMS]
    lines += ["", "### Hyperparameters (chosen on the validation split)", ""]
    if tuning:
        lines += [f"Each arm tried {study_tuning.BUDGET} configurations of its own knobs on "
                  f"{study.MAIN_SETTING}, tuning seeds {', '.join(map(str, study_tuning.TUNE_SEEDS))} "
                  f"(disjoint from the paired seeds), and runs every setting with the one of highest mean best "
                  f"validation accuracy, ties to the default (`trainer/study_tuning.py` says which knobs and "
                  f"why; `--tune` on the command below makes these runs):", "",
                  study_tuning.tuning_table(tuning), ""]
    else:
        lines += ["Not tuned (no `tuning.json` in the study folder): every arm runs at the defaults above.", ""]
    missing = [r.run_id for r in runs if r.run_id not in results]
    lines += [f"Runs finished: {len(results)} of {len(runs)}."
              + (f" Missing or failed: {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}." if missing else ""),
              ""]
    # ---------------------------------------------------------------- per-setting tables
    lines += ["## Results (mean ± sd over seeds)", ""]
    for setting in dict.fromkeys(r.setting.key for r in runs):
        arms = [a for a in study.ARMS if (setting, a.key) in rows]
        if not arms:
            continue
        lines += [f"### {study.SETTINGS_BY_KEY[setting].label}", "",
                  "| arm | seeds | test accuracy % | test NLL | train - test gap | params removed % (units) "
                  "| MACs removed % | inference speed-up | ms/step solve | s/run |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for arm in arms:
            rs = rows[(setting, arm.key)]
            acc = mean_sd([r["test_accuracy"] for r in rs])
            gap = mean_sd([(r["history"][-1]["train_accuracy"] or math.nan) - r["test_accuracy"]
                           for r in rs if r.get("history")])
            # units physically removed; a random method's expected rates remove nothing ("-")
            removed = mean_sd([r.get("params_removed_pct_exact", math.nan)
                               if r.get("params_exact_basis") == "pruned" else math.nan for r in rs])
            nll = mean_sd([r["test_nll"] if r.get("test_nll") is not None else math.nan for r in rs])
            pruning = [r.get("structured_pruning") or {} for r in rs]
            macs = mean_sd([p.get("macs_removed_pct", 0.0 if p else math.nan) for p in pruning])
            speedup = mean_sd([p.get("speedup", math.nan) for p in pruning])
            solve = mean_sd([r.get("ms_per_step", {}).get("solve", 0.0) for r in rs])
            secs = mean_sd([r.get("seconds", math.nan) for r in rs])
            lines.append(f"| {arm.key} | {len(rs)} | {_fmt(*acc)} | {_fmt(*nll, 4)} | {_fmt(*gap)} | "
                         f"{_fmt(*removed, 1)} | {_fmt(*macs, 1)} | {_fmt(*speedup)} | "
                         f"{_fmt(*solve, 3)} | {secs[0]:.0f} |")
        lines.append("")
    # ---------------------------------------------------------------- paired comparisons
    lines += ["## The annealer against each comparator (paired over seeds)", "",
              "Difference = annealer − comparator in test accuracy points; 95 % percentile bootstrap "
              "interval of the mean difference; two-sided sign-flip test, Holm-corrected within each "
              "setting.", "",
              "| setting | comparator | seeds | mean diff | 95 % interval | p | p (Holm) |",
              "|---|---|---:|---:|---|---:|---:|"]
    for c in decision.comparisons:
        iv = c.interval
        lines.append(f"| {c.setting} | {c.comparator} | {iv.n} | {iv.mean:+.3f} | [{iv.low:+.3f}, {iv.high:+.3f}] | "
                     f"{c.p_value:.4f} | {c.p_holm:.4f} |")
    lines.append("")
    lines += _against_baseline(accuracy)
    lines += _energy_choice(accuracy)
    lines += _remote_against_embedded(accuracy, rows)
    # ---------------------------------------------------------------- the audit
    lines += ["## Solve audit (the annealer arm: every solver on the same problems)", ""]
    for setting, records in audits.items():
        lines += [f"### {setting}: {len(records)} audited solves", "",
                  "| solver | mean gap to best % | median gap % | annealer strictly lower % | median ms |",
                  "|---|---:|---:|---:|---:|"]
        for solver in (ANNEALER, *CHEAP_SOLVERS):
            recs = [r for r in records if solver in r["energy"]]
            if not recs:
                continue
            gaps = np.array([r["gap"][solver] for r in recs])
            lower = np.mean([r["energy"][ANNEALER] < r["energy"][solver] - 1e-9 * max(1.0, abs(r["energy"][solver]))
                             for r in recs]) if solver != ANNEALER else math.nan
            ms = np.median([1000 * r["seconds"][solver] for r in recs])
            lines.append(f"| {solver} | {100 * gaps.mean():.3f} | {100 * np.median(gaps):.3f} | "
                         f"{'-' if math.isnan(lower) else f'{100 * lower:.0f}'} | {ms:.2f} |")
        hamming = [r["hamming_annealer_topk"] for r in records]
        drops = np.array([r["drop_rate"] for r in records])
        lines += ["", f"Hamming distance annealer vs top-K: median {np.median(hamming):.0f} "
                      f"(range {min(hamming)}-{max(hamming)}); realised drop rate per layer "
                      f"{', '.join(f'{d:.1f} %' for d in drops.mean(0))}.", ""]
    # ---------------------------------------------------------------- dose-response
    points = dose_response(accuracy, audits)
    image_dir = report_path.with_suffix("")
    if points:
        lines += ["## Dose-response: accuracy against the energy reached", ""]
        image = image_dir / "dose-response.png"
        if _plot(points, image):
            try:
                rel = image.relative_to(report_path.parent)
            except ValueError:
                rel = image
            lines += [f"![accuracy against energy gap]({rel.as_posix()})", ""]
        lines += ["| setting | solver | mean energy gap % | mean test accuracy % |", "|---|---|---:|---:|"]
        lines += [f"| {s} | {solver} | {100 * g:.3f} | {a:.2f} |" for s, rs in points.items() for solver, g, a in rs]
        lines.append("")
    # ---------------------------------------------------------------- decision
    e = decision.energy
    lines += ["## Decision", "", f"**Verdict: {decision.verdict}.**", "",
              f"- (a) energy: {e.audited} audited solves; the annealer strictly below every cheap solver on "
              f"{100 * e.win_fraction:.1f} % (needs >= 50 %), median gap {100 * e.median_gap:.3f} % "
              f"(needs >= 1 %): {'holds' if e.holds else 'fails'}." if e.audited else
              "- (a) energy: no audited solves: fails.",
              f"- (b) accuracy: beats random, top-K and the best cheap solver in "
              f"{sum(decision.accuracy_settings.values())} of {len(decision.accuracy_settings)} settings "
              f"(needs {decision.required_settings}; best cheap per setting: "
              f"{', '.join(f'{k}: {v}' for k, v in decision.best_cheap.items()) or '-'}): "
              f"{'holds' if decision.accuracy_holds else 'fails'}.",
              f"- (c) controls: beats both shuffle controls in {sum(decision.control_settings.values())} of "
              f"{len(decision.control_settings)} settings: {'holds' if decision.controls_hold else 'fails'}.", ""]
    # ---------------------------------------------------------------- provenance
    lines += ["## How to reproduce", "", "```bash", command, "```", "",
              f"Code commit(s) of the runs: {code_commits(results.values())}."]
    if wall_seconds:
        lines.append(f"Wall time of the study (all invocations): {wall_seconds / 3600:.2f} h.")
    lines.append("")
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text("\n".join(lines))
    return report_path
