"""The study's statistics on synthetic data with known answers, and the decision rule on crafted
inputs."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.study_stats import (decide, energy_verdict, holm, mean_sd, paired_bootstrap,
                                 required_settings, sign_flip_test)


def test_bootstrap_covers_the_true_mean_at_about_the_nominal_rate() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    trials = 200
    for t in range(trials):
        d = rng.normal(0.3, 1.0, size=10)
        iv = paired_bootstrap(d, resamples=2000, seed=t)
        covered += iv.low <= 0.3 <= iv.high
        assert iv.low <= iv.mean <= iv.high
    # percentile bootstrap with n = 10 under-covers a little: about 0.89-0.93
    assert 0.82 <= covered / trials <= 0.99


def test_bootstrap_excludes_zero_for_a_clear_effect_and_not_for_none() -> None:
    rng = np.random.default_rng(1)
    assert paired_bootstrap(rng.normal(2.0, 0.5, 10)).above_zero
    assert paired_bootstrap([-1.0, -2.0, -1.5]).high < 0
    # no effect: the interval excludes 0 rarely (about 1 - coverage of the time)
    excluded = [paired_bootstrap(rng.normal(0.0, 1.0, 10), resamples=2000, seed=t).excludes_zero
                for t in range(200)]
    assert 0.02 <= float(np.mean(excluded)) <= 0.18


def test_sign_flip_is_exact_for_small_samples() -> None:
    # all five differences positive: only the all-plus and all-minus patterns are as extreme
    assert sign_flip_test([1.0, 2.0, 0.5, 3.0, 1.0]) == pytest.approx(2 / 32)
    # symmetric data: every pattern is at least as extreme as... the observed sum 0
    assert sign_flip_test([1.0, -1.0]) == 1.0


def test_sign_flip_p_values_are_uniform_under_the_null() -> None:
    rng = np.random.default_rng(2)
    ps = np.array([sign_flip_test(rng.normal(size=8)) for _ in range(400)])
    assert 0.03 <= np.mean(ps < 0.05) <= 0.08
    assert 0.4 <= np.mean(ps < 0.5) <= 0.6


def test_sign_flip_monte_carlo_agrees_with_a_strong_effect() -> None:
    rng = np.random.default_rng(3)
    assert sign_flip_test(rng.normal(1.0, 1.0, size=30), resamples=20_000) < 0.001


def test_holm_matches_the_hand_computation() -> None:
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5})
    # sorted 0.01, 0.03, 0.04, 0.5 -> 4x0.01, 3x0.03, max(0.09, 2x0.04), max(0.09, 0.5)
    assert adjusted == pytest.approx({"a": 0.04, "c": 0.09, "b": 0.09, "d": 0.5})
    assert holm({"x": 0.6, "y": 0.7}) == pytest.approx({"x": 1.0, "y": 1.0})


def test_mean_sd() -> None:
    assert mean_sd([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert mean_sd([5.0]) == (5.0, 0.0)


def audit(annealer: float, **cheap: float) -> dict:
    return {"energy": {"annealer": annealer, **cheap}}


def test_energy_verdict_needs_both_frequency_and_size() -> None:
    cheap = dict(random=0.0, topk=-5.0, greedy=-9.0, qpbo=-9.5, anneal10=-8.0)
    wins_big = [audit(-10.0, **cheap)] * 6 + [audit(-9.5, **cheap)] * 4   # 60 %, gap 5.3 %
    v = energy_verdict(wins_big)
    assert v.audited == 10 and v.win_fraction == pytest.approx(0.6)
    assert v.median_gap == pytest.approx(0.5 / 9.5) and v.holds
    wins_small = [audit(-9.51, **cheap)] * 10                              # always, but 0.1 %
    assert not energy_verdict(wins_small).holds
    rare = [audit(-12.0, **cheap)] * 4 + [audit(-9.5, **cheap)] * 6        # 40 %
    assert not energy_verdict(rare).holds
    assert not energy_verdict([]).holds


def accuracies(effect: dict[str, float], seeds: int = 8, noise: float = 0.05, seed: int = 0) -> dict:
    """arm -> seed -> accuracy: a shared per-seed level plus each arm's effect plus noise."""
    rng = np.random.default_rng(seed)
    level = rng.normal(90, 1, seeds)
    return {arm: {s: float(level[s] + e + rng.normal(0, noise)) for s in range(seeds)}
            for arm, e in effect.items()}


GOOD = {"annealer": 1.0, "random": 0.0, "topk": 0.2, "greedy": 0.5, "qpbo": 0.4, "anneal10": 0.3,
        "shuffled-couplings": 0.1, "shuffled-mask": 0.0}
HARD_ENERGY = [audit(-10.0, random=0.0, topk=-5.0, greedy=-9.0, qpbo=-9.0, anneal10=-8.0)] * 5


def test_decision_holds_when_everything_is_clear() -> None:
    acc = {s: accuracies(GOOD, seed=i) for i, s in enumerate(("s1", "s2", "s3"))}
    d = decide(acc, HARD_ENERGY)
    assert d.best_cheap == {"s1": "greedy", "s2": "greedy", "s3": "greedy"}
    assert d.annealer_matters and "matters" in d.verdict


def test_decision_says_the_energy_is_easy_when_cheap_solvers_tie() -> None:
    acc = {s: accuracies(GOOD, seed=i) for i, s in enumerate(("s1", "s2", "s3"))}
    easy = [audit(-9.0, random=0.0, topk=-5.0, greedy=-9.0, qpbo=-9.0, anneal10=-8.0)] * 5
    d = decide(acc, easy)
    assert not d.annealer_matters and "the energy is easy" in d.verdict and "(a)" in d.verdict


def test_decision_says_hard_but_not_predictive_when_accuracy_fails_in_two_settings() -> None:
    tie = dict(GOOD, annealer=0.5)  # no better than greedy, the best cheap
    acc = {"s1": accuracies(GOOD, seed=0), "s2": accuracies(tie, seed=1), "s3": accuracies(tie, seed=2)}
    d = decide(acc, HARD_ENERGY)
    assert d.accuracy_settings == {"s1": True, "s2": False, "s3": False}
    assert not d.accuracy_holds
    assert "hard but not predictive" in d.verdict and "(b)" in d.verdict


def test_two_of_three_settings_are_enough_for_b() -> None:
    tie = dict(GOOD, annealer=0.5)
    acc = {"s1": accuracies(GOOD, seed=0), "s2": accuracies(GOOD, seed=1), "s3": accuracies(tie, seed=2)}
    d = decide(acc, HARD_ENERGY)
    assert d.accuracy_holds and d.required_settings == 2


def test_controls_fail_when_the_shuffled_mask_does_as_well() -> None:
    as_good = dict(GOOD, **{"shuffled-mask": 1.0})
    acc = {s: accuracies(as_good, seed=i) for i, s in enumerate(("s1", "s2", "s3"))}
    d = decide(acc, HARD_ENERGY)
    assert d.accuracy_holds and not d.controls_hold
    assert "(c)" in d.verdict and "(b)" not in d.verdict


def test_holm_family_is_reported_per_setting() -> None:
    acc = {"s1": accuracies(GOOD, seed=0)}
    d = decide(acc, HARD_ENERGY)
    comps = [c for c in d.comparisons if c.setting == "s1"]
    assert {c.comparator for c in comps} == {"random", "topk", "greedy", "shuffled-couplings", "shuffled-mask"}
    assert all(c.p_holm >= c.p_value for c in comps)


def test_required_settings() -> None:
    assert [required_settings(n) for n in (0, 1, 2, 3, 4)] == [0, 1, 2, 2, 3]


def test_report_compares_the_remote_arm_with_the_embedded_one_without_the_audit_time() -> None:
    from trainer.study_report import _remote_against_embedded

    accuracy = {"s": {"annealer": {0: 90.0, 1: 91.0, 2: 92.0}, "annealer-http": {0: 90.5, 1: 91.5, 2: 92.5}}}
    audit = [{"seconds": {"annealer": 1.0, "greedy": 1.0}}]  # 2 s of audit in each embedded run
    rows = {("s", "annealer"): [{"seed": s, "seconds": 12.0, "steps": 10, "log": {"ising": {"audit": audit}}}
                                for s in range(3)],
            ("s", "annealer-http"): [{"seed": s, "seconds": 15.0, "steps": 10} for s in range(3)]}
    lines = _remote_against_embedded(accuracy, rows)
    row = next(line for line in lines if line.startswith("| s |"))
    assert "+0.500" in row and "1.50x (1.50-1.50)" in row  # 1.5 s against 1.0 s a step
