"""The study's hyperparameters, chosen on the validation split with the same budget for every arm.

Every tuned arm tries :data:`BUDGET` configurations of its own knobs (the first is the study's
default) in the main setting, on the tuning seeds (:data:`TUNE_SEEDS`, disjoint from the study's
paired seeds), and keeps the one of highest mean best-validation accuracy; ties go to the earlier
configuration, so the default wins unless another is better. Test accuracy is never looked at.

- The Ising solver arms that read the couplings (greedy, QPBO, the anneals) tune the energy's
  redundancy weight ``alpha`` and the re-solve cadence ``solve_every``: the knobs that decide
  what the solver is asked.
- Random exact-K masks read no energy, top-K only the ranking of the fields (which ``alpha``
  scales without reordering), and the saliency energy has no ``alpha``: they tune the cadence
  alone.
- The arms without an energy (no dropout, Bernoulli dropout, magnitude and Taylor pruning) tune
  Adam's learning rate, so a baseline gets as many tries as the method it is compared with.
- The annealer's remote twin and its controls take the annealer's choice: each is the annealer's
  run with one part changed, and must stay so.

``spinout study ising --tune`` trains the tuning runs into the study folder and writes
``tuning.json``; later invocations of the study build each arm with its chosen configuration (a
configuration other than the default is part of the run id, so runs made with another
configuration are never mistaken for the chosen one's).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import study
from .reproduce_command import load_manifest, save_manifest
from .study import Config

TUNING_FILE = "tuning.json"
#: Tuning seeds: disjoint from the study's paired seeds 0..9.
TUNE_SEEDS = (100, 101)
#: Configurations per tuned arm (``--quick``: the first two).
BUDGET = 4
QUICK_BUDGET = 2
QUICK_TUNE_SEEDS = (100,)

_ENERGY_KNOBS: tuple[Config, ...] = ((), (("alpha", "0.25"),), (("alpha", "0.75"),), (("solve_every", "4"),))
_CADENCE: tuple[Config, ...] = ((), (("solve_every", "4"),), (("solve_every", "2"),), (("solve_every", "16"),))
_LEARNING_RATE: tuple[Config, ...] = ((), (("lr", "0.001"),), (("lr", "0.003"),), (("lr", "0.03"),))
#: Each tuned arm's configurations, the default first.
GRIDS: dict[str, tuple[Config, ...]] = {
    "none": _LEARNING_RATE, "bernoulli": _LEARNING_RATE,
    "random": _CADENCE, "topk": _CADENCE, "annealer-saliency": _CADENCE,
    "greedy": _ENERGY_KNOBS, "qpbo": _ENERGY_KNOBS, "anneal10": _ENERGY_KNOBS,
    "annealer": _ENERGY_KNOBS,
    "prune-magnitude": _LEARNING_RATE, "prune-taylor": _LEARNING_RATE,
}
#: Arms that take another arm's choice.
INHERITS = {"annealer-http": "annealer", "shuffled-couplings": "annealer", "shuffled-mask": "annealer",
            "other-batch": "annealer"}
assert set(GRIDS) | set(INHERITS) == {a.key for a in study.ARMS}, "every arm is tuned or inherits"
assert all(len(grid) == BUDGET and grid[0] == () for grid in GRIDS.values()), "one budget, default first"


def tuning_runs(arms: Iterable[str], *, quick: bool = False, epochs: int | None = None,
                limit_train: int | None = None, limit_test: int | None = None,
                val_size: int | None = None, energy: str = study.ENERGY) -> list[study.StudyRun]:
    """The tuning runs of ``arms`` that have a grid of their own (main setting, tuning seeds)."""
    setting = study.SETTINGS_BY_KEY[study.MAIN_SETTING]
    budget, seeds = (QUICK_BUDGET, QUICK_TUNE_SEEDS) if quick else (BUDGET, TUNE_SEEDS)
    return [study.StudyRun(setting, study.ARMS_BY_KEY[arm], seed, epochs or setting.epochs, energy,
                           limit_train, limit_test, val_size, config=config, tuning=True)
            for arm in arms if arm in GRIDS for config in GRIDS[arm][:budget] for seed in seeds]


def select(out: Path, runs: Iterable[study.StudyRun]) -> dict[str, Any]:
    """Each arm's configurations with their mean best-validation accuracy, and the chosen one.

    Only configurations with every tuning seed finished take part; an arm with none keeps the
    default. Returns ``{"chosen": {arm: {key: value}}, "scores": {arm: [{"config", "val_accuracy",
    "seeds"}]}}``, the content of ``tuning.json``.
    """
    planned: dict[str, dict[Config, list[study.StudyRun]]] = {}
    for run in runs:
        planned.setdefault(run.arm.key, {}).setdefault(run.config, []).append(run)
    chosen: dict[str, dict[str, str]] = {}
    scores: dict[str, list[dict[str, Any]]] = {}
    for arm, by_config in planned.items():
        rows = []
        for config, config_runs in by_config.items():
            values = [_best_val(out, r) for r in config_runs]
            finished = [v for v in values if v is not None]
            rows.append({"config": dict(config), "seeds": len(finished),
                         "val_accuracy": round(statistics.fmean(finished), 3)
                         if len(finished) == len(values) else None})
        scores[arm] = rows
        complete = [row for row in rows if row["val_accuracy"] is not None]
        # max() keeps the first of equals: the default, listed first, wins ties
        chosen[arm] = max(complete, key=lambda row: row["val_accuracy"])["config"] if complete else {}
    return {"chosen": chosen, "scores": scores}


def _best_val(out: Path, run: study.StudyRun) -> float | None:
    path = out / "runs" / run.run_id / "result.json"
    if not path.is_file():
        return None
    return float(json.loads(path.read_text())["best_val_accuracy"])


def save(out: Path, tuning: dict[str, Any]) -> None:
    save_manifest(out / TUNING_FILE, tuning)


def load(out: Path) -> dict[str, Any] | None:
    """``tuning.json`` of a study folder (None: the study was not tuned)."""
    return load_manifest(out / TUNING_FILE)


def configs(tuning: Mapping[str, Any] | None) -> dict[str, Config]:
    """Every arm's configuration for the study: its own choice, or the arm's it inherits from."""
    chosen = (tuning or {}).get("chosen", {})
    own = {arm: tuple(sorted(chosen.get(arm, {}).items())) for arm in GRIDS}
    return {**own, **{arm: own[source] for arm, source in INHERITS.items()}}


def tuning_table(tuning: Mapping[str, Any]) -> str:
    """The report's table: each arm's configurations, their validation accuracy, the choice."""
    lines = ["| arm | configurations: mean best validation accuracy % (tuning seeds) | chosen |",
             "|---|---|---|"]
    for arm, rows in tuning.get("scores", {}).items():
        cells = [f"{_label(row['config'])}: "
                 + (f"{row['val_accuracy']:.2f}" if row["val_accuracy"] is not None else "not finished")
                 for row in rows]
        lines.append(f"| {arm} | {'; '.join(cells)} | {_label(tuning['chosen'].get(arm, {}))} |")
    for arm, source in INHERITS.items():
        if source in tuning.get("scores", {}):
            lines.append(f"| {arm} | takes {source}'s | {_label(tuning['chosen'].get(source, {}))} |")
    return "\n".join(lines)


def _label(config: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(config.items())) or "default"
