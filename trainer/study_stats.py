"""Statistics of the Ising-Dropout study and its decision rule, evaluated mechanically.

Paired comparisons: every arm of a setting shares the seed's initialisation and data order, so
the unit of analysis is the per-seed difference d_s = metric(arm, s) - metric(comparator, s).

- :func:`paired_bootstrap` — the mean of d and its percentile bootstrap 95 % interval (seeds
  resampled with replacement).
- :func:`sign_flip_test` — the two-sided paired permutation test of mean(d) = 0: each d_s keeps
  or flips its sign; exact (all 2^n patterns) up to 16 seeds, Monte Carlo beyond.
- :func:`holm` — Holm's step-down adjustment of a family of p-values.
- :func:`decide` — the decision rule of issue 17 item 6 from the runs' results and audits.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The rule as fixed before the runs (the report's first section prints it verbatim).
DECISION_RULE = """\
The annealer matters only if all three hold:

- (a) **energy**: on at least 50 % of the audited mini-batches the annealer reaches a lower
  energy than every cheap solver (random, top-K, greedy, QPBO + greedy, 10-sweep anneal) on the
  same problem, and the median relative gap (E_best cheap - E_annealer) / |E_best cheap| over
  the audited mini-batches is at least 1 %;
- (b) **accuracy**: the annealer's test accuracy beats random exact-K, top-K and the best cheap
  solver (the cheap arm of highest mean accuracy in that setting) with paired 95 % bootstrap
  intervals of the per-seed difference excluding 0, in at least 2 of 3 settings (in general,
  at least ceil(2/3 x the settings evaluated));
- (c) **controls**: in as many settings, it beats both shuffle controls (couplings shuffled
  inside each layer block, mask shuffled inside each layer) by the same criterion.

Otherwise the verdict names the part that failed: (a) failing means "the energy is easy"
(cheap solvers find its minima), (a) holding with (b) or (c) failing means "hard but not
predictive" (lower energy does not buy accuracy). Holm-corrected sign-flip p-values are reported
beside the intervals; the rule itself reads the intervals."""

CHEAP_SOLVERS = ("random", "topk", "greedy", "qpbo", "anneal10")
SHUFFLE_CONTROLS = ("shuffled-couplings", "shuffled-mask")
ANNEALER = "annealer"
ENERGY_WIN_FRACTION = 0.5
ENERGY_MEDIAN_GAP = 0.01


# ---------------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class Interval:
    """A paired difference: its mean and bootstrap interval over ``n`` seeds."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    @property
    def above_zero(self) -> bool:
        return self.low > 0


def paired_bootstrap(differences: Sequence[float], *, level: float = 0.95, resamples: int = 10_000,
                     seed: int = 0) -> Interval:
    """Mean of the per-seed differences and its percentile bootstrap interval.

    Raises:
        ValueError: no differences, a non-finite one, or a level outside (0, 1).
    """
    d = np.asarray(differences, dtype=np.float64)
    if d.size == 0:
        raise ValueError("a paired bootstrap needs at least one difference")
    if not np.all(np.isfinite(d)):
        raise ValueError("the differences must be finite")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(float(d.mean()), float(low), float(high), int(d.size))


def sign_flip_test(differences: Sequence[float], *, resamples: int = 100_000, seed: int = 0) -> float:
    """Two-sided p-value of mean(d) = 0 under random sign flips (paired permutation test).

    Exact over all 2^n sign patterns for n <= 16; otherwise ``resamples`` random patterns (with
    the observed one counted, so p > 0).
    """
    d = np.asarray(differences, dtype=np.float64)
    if d.size == 0:
        raise ValueError("a sign-flip test needs at least one difference")
    observed = abs(d.sum())
    tol = 1e-12 * max(1.0, float(np.abs(d).sum()))
    if d.size <= 16:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
        sums = np.abs(signs @ d)
        return float(np.mean(sums >= observed - tol))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(resamples, d.size))
    sums = np.abs(signs @ d)
    return float((np.sum(sums >= observed - tol) + 1) / (resamples + 1))


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values (monotone, capped at 1), by the same keys."""
    items = sorted(pvalues.items(), key=lambda kv: kv[1])
    m = len(items)
    adjusted: dict[str, float] = {}
    running = 0.0
    for rank, (key, p) in enumerate(items):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[key] = running
    return adjusted


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


# ---------------------------------------------------------------------------------- the rule
@dataclass
class Comparison:
    """The annealer (or any arm) against a comparator in one setting."""

    setting: str
    arm: str
    comparator: str
    interval: Interval
    p_value: float
    p_holm: float = math.nan


def paired_differences(results: Mapping[str, Mapping[int, float]], arm: str, comparator: str
                       ) -> list[float]:
    """arm - comparator over the seeds both have, in seed order."""
    a, b = results.get(arm, {}), results.get(comparator, {})
    return [a[s] - b[s] for s in sorted(set(a) & set(b))]


def compare(setting: str, results: Mapping[str, Mapping[int, float]], arm: str,
            comparators: Sequence[str]) -> list[Comparison]:
    """Paired intervals and Holm-corrected sign-flip tests of ``arm`` against each comparator
    (the comparators with at least two paired seeds form the Holm family)."""
    out = []
    for comp in comparators:
        d = paired_differences(results, arm, comp)
        if len(d) < 2:
            continue
        out.append(Comparison(setting, arm, comp, paired_bootstrap(d), sign_flip_test(d)))
    adjusted = holm({c.comparator: c.p_value for c in out})
    for c in out:
        c.p_holm = adjusted[c.comparator]
    return out


@dataclass
class EnergyVerdict:
    """Part (a) over the audited mini-batches."""

    audited: int
    win_fraction: float
    median_gap: float
    holds: bool


def energy_verdict(audits: Sequence[Mapping[str, Any]], cheap: Sequence[str] = CHEAP_SOLVERS
                   ) -> EnergyVerdict:
    """(a): the annealer strictly below every cheap solver on >= 50 % of the audits, and the
    median of (E_best cheap - E_annealer) / |E_best cheap| at least 1 %.

    Each audit is a record of ``solve_audit`` (``{"energy": {"annealer": .., "topk": .., ...}}``).
    """
    wins, gaps = [], []
    for record in audits:
        energy = record["energy"]
        present = [energy[c] for c in cheap if c in energy]
        if ANNEALER not in energy or not present:
            continue
        best_cheap, ann = min(present), energy[ANNEALER]
        tol = 1e-9 * max(1.0, abs(best_cheap))
        wins.append(ann < best_cheap - tol)
        gaps.append((best_cheap - ann) / max(abs(best_cheap), 1e-12))
    if not gaps:
        return EnergyVerdict(0, math.nan, math.nan, False)
    fraction, median = float(np.mean(wins)), float(np.median(gaps))
    return EnergyVerdict(len(gaps), fraction, median,
                         fraction >= ENERGY_WIN_FRACTION and median >= ENERGY_MEDIAN_GAP)


@dataclass
class Decision:
    """The rule's three parts and the verdict."""

    energy: EnergyVerdict
    accuracy_settings: dict[str, bool]
    control_settings: dict[str, bool]
    required_settings: int
    best_cheap: dict[str, str]
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def accuracy_holds(self) -> bool:
        return sum(self.accuracy_settings.values()) >= self.required_settings > 0

    @property
    def controls_hold(self) -> bool:
        return sum(self.control_settings.values()) >= self.required_settings > 0

    @property
    def annealer_matters(self) -> bool:
        return self.energy.holds and self.accuracy_holds and self.controls_hold

    @property
    def verdict(self) -> str:
        if self.annealer_matters:
            return "the annealer matters: (a), (b) and (c) hold"
        failed = [name for name, ok in (("(a)", self.energy.holds), ("(b)", self.accuracy_holds),
                                        ("(c)", self.controls_hold)) if not ok]
        reason = "the energy is easy" if not self.energy.holds else "hard but not predictive"
        return f"the annealer does not earn its place: {reason} ({', '.join(failed)} failed)"


def required_settings(count: int) -> int:
    """At least 2 of 3: ceil(2/3 x the settings evaluated)."""
    return math.ceil(2 * count / 3) if count else 0


def decide(accuracy: Mapping[str, Mapping[str, Mapping[int, float]]],
           audits: Sequence[Mapping[str, Any]]) -> Decision:
    """The decision rule from per-setting accuracies and the annealer's solve audits.

    Args:
        accuracy: ``accuracy[setting][arm][seed]`` = test accuracy.
        audits: every audit record of the annealer arm (all settings, all seeds).
    """
    energy = energy_verdict(audits)
    acc_ok: dict[str, bool] = {}
    ctl_ok: dict[str, bool] = {}
    best_cheap: dict[str, str] = {}
    comparisons: list[Comparison] = []
    evaluated = [s for s, arms in accuracy.items() if ANNEALER in arms]
    for setting in evaluated:
        arms = accuracy[setting]
        cheap = [c for c in CHEAP_SOLVERS if c in arms]
        if not cheap:
            continue
        best = max(cheap, key=lambda c: float(np.mean(list(arms[c].values()))))
        best_cheap[setting] = best
        targets = list(dict.fromkeys([c for c in ("random", "topk") if c in arms] + [best]))
        comps = compare(setting, arms, ANNEALER, targets + [c for c in SHUFFLE_CONTROLS if c in arms])
        comparisons += comps
        by_comp = {c.comparator: c for c in comps}
        acc_ok[setting] = all(t in by_comp and by_comp[t].interval.above_zero for t in
                              ("random", "topk", best))
        ctl_ok[setting] = all(c in by_comp and by_comp[c].interval.above_zero for c in SHUFFLE_CONTROLS)
    return Decision(energy, acc_ok, ctl_ok, required_settings(len(acc_ok)), best_cheap, comparisons)
