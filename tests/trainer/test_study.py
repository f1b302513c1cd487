"""``spinout study ising``: the grid's pairing and counts, and a tiny study end to end (runs,
resume, report with the decision rule first)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from service.cli import main as cli_main
from trainer import study, study_tuning
from trainer.study import build_study


def test_every_arm_of_a_setting_shares_seed_data_and_counts() -> None:
    runs = build_study(settings=["mnist-sigmoid"], url="http://x")
    by_seed: dict[int, list] = {}
    for run in runs:
        by_seed.setdefault(run.seed, []).append(run)
    assert sorted(by_seed) == list(range(10))  # the main setting's 10 paired seeds
    for seed, group in by_seed.items():
        assert {r.arm.key for r in group} == {a.key for a in study.ARMS}
        for run in group:
            args = run.train_args()
            assert args[args.index("--seed") + 1] == str(seed)
            assert args[args.index("--epochs") + 1] == "2"
            assert "--include-input" in args
            # the same counts in every arm, however the arm takes them
            if run.arm.kind in ("ising",):
                assert args[args.index("--keep-ratio") + 1] == "0.6,0.5,0.5"
                # one energy for every Ising arm but the arm that compares energies
                energy = args[args.index("--ising-energy") + 1]
                assert energy == ("saliency" if run.arm.key == "annealer-saliency" else study.ENERGY)
            elif run.arm.kind == "prune":
                assert "keep_ratio=0.6,0.5,0.5" in args
            elif run.arm.kind == "bernoulli":
                assert args[args.index("--p") + 1] == "0.5" and "p_input=0.4" in args


def test_a_setting_without_input_candidates_gives_every_ratio_to_the_hidden_layers() -> None:
    """The CNN keeps every pixel: its ratios start at conv 1, and the count reaching the trained
    network is each hidden layer's own (0.5 of 6, 16, 120 and 84)."""
    cnn = study.SETTINGS_BY_KEY["mnist-cnn"]
    assert cnn.keep_ratio == "0.5,0.5"
    (run,) = build_study(settings=["mnist-cnn"], arms=["topk"], seeds=1)
    args = run.train_args()
    assert "--include-input" not in args and args[args.index("--keep-ratio") + 1] == "0.5,0.5"
    from trainer.dropout import registry
    from trainer.dropout.base import VariantSpec

    model = registry.get("ising")(VariantSpec([784, 100, 100, 10], model="cnn", activation="relu",
                                              options={"keep_ratio": cnn.keep_ratio, "exact_k": "true"}))
    assert model.builder.counts == [3, 8, 60, 42]
    model.close()


def test_the_remote_arm_runs_in_the_main_setting_only_and_needs_a_url() -> None:
    runs = build_study(url="http://127.0.0.1:9")
    remote = [r for r in runs if r.arm.remote]
    assert remote and {r.setting.key for r in remote} == {study.MAIN_SETTING}
    assert all("solver=http://127.0.0.1:9" in r.train_args() for r in remote)
    with pytest.raises(ValueError, match="URL"):
        build_study(arms=["annealer-http"])[0].train_args()


def test_settings_have_at_least_five_seeds_and_run_ids_are_unique() -> None:
    runs = build_study(url="http://x")
    assert len({r.run_id for r in runs}) == len(runs)
    assert all(s.seeds >= 5 for s in study.SETTINGS)
    assert study.SETTINGS_BY_KEY[study.MAIN_SETTING].seeds >= 10
    with pytest.raises(ValueError, match="known"):
        build_study(arms=["annealr"])


def test_tuning_gives_every_tuned_arm_one_budget_and_the_controls_the_annealers_choice() -> None:
    runs = study_tuning.tuning_runs([a.key for a in study.ARMS])
    per_arm = Counter(r.arm.key for r in runs)
    assert set(per_arm) == set(study_tuning.GRIDS)
    assert set(per_arm.values()) == {study_tuning.BUDGET * len(study_tuning.TUNE_SEEDS)}
    assert all(r.run_id.startswith("tune__") and r.seed in study_tuning.TUNE_SEEDS for r in runs)
    assert len({r.run_id for r in runs}) == len(runs)
    configs = study_tuning.configs({"chosen": {"annealer": {"alpha": "0.25", "solve_every": "4"},
                                               "none": {"lr": "0.003"}}})
    by_arm = {r.arm.key: r for r in build_study(settings=["mnist-sigmoid"], seeds=1, url="http://x",
                                                 configs=configs)}
    for arm in ("annealer", "annealer-http", "shuffled-couplings", "shuffled-mask", "other-batch"):
        run = by_arm[arm]
        args = run.train_args()
        assert run.run_id == f"mnist-sigmoid__{arm}@alpha=0.25,solve_every=4__s0"
        # the configuration's cadence comes after (and so overrides) the study's default one
        cadence = [a for a in args if a.startswith("solve_every=")]
        assert cadence == [f"solve_every={study.SOLVE_EVERY}", "solve_every=4"]
        assert "alpha=0.25" in args
    assert by_arm["none"].train_args()[by_arm["none"].train_args().index("--lr") + 1] == "0.003"
    assert by_arm["topk"].config == () and by_arm["topk"].run_id == "mnist-sigmoid__topk__s0"


def test_tuning_keeps_the_best_validation_accuracy_and_ties_go_to_the_default(tmp_path: Path) -> None:
    runs = study_tuning.tuning_runs(["greedy", "none"])
    val = {(): 90.0, (("alpha", "0.25"),): 91.0, (("alpha", "0.75"),): 95.0, (("solve_every", "4"),): 90.5}
    for run in runs:
        if run.arm.key == "greedy" and run.config == (("alpha", "0.75"),) and run.seed == study_tuning.TUNE_SEEDS[1]:
            continue  # this configuration misses a tuning seed: it does not take part
        folder = tmp_path / "runs" / run.run_id
        folder.mkdir(parents=True)
        accuracy = val[run.config] if run.arm.key == "greedy" else 80.0
        (folder / "result.json").write_text(json.dumps({"best_val_accuracy": accuracy}))
    tuning = study_tuning.select(tmp_path, runs)
    assert tuning["chosen"] == {"greedy": {"alpha": "0.25"}, "none": {}}
    rows = {tuple(sorted(r["config"].items())): r for r in tuning["scores"]["greedy"]}
    assert rows[(("alpha", "0.75"),)]["val_accuracy"] is None and rows[(("alpha", "0.75"),)]["seeds"] == 1
    assert rows[(("alpha", "0.25"),)] == {"config": {"alpha": "0.25"}, "seeds": 2, "val_accuracy": 91.0}
    table = study_tuning.tuning_table(tuning)
    assert "| greedy | default: 90.00; alpha=0.25: 91.00; alpha=0.75: not finished; solve_every=4: 90.50 | alpha=0.25 |" in table


def test_longest_runs_first() -> None:
    runs = build_study(settings=["mnist-sigmoid"], seeds=1, url="http://x")
    cost = {r.arm.key: r.relative_cost for r in runs}
    assert cost["annealer"] > cost["greedy"] > cost["none"]


def test_list_prints_the_epoch_budget(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["study", "ising", "--list", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "| mnist-sigmoid | mnist | 784-100-100-10 | sigmoid | 2 | 10 |" in out
    assert "mnist-sigmoid__annealer__s1" in out


@pytest.mark.slow
def test_a_tiny_study_runs_end_to_end_resumes_and_reports(tmp_path: Path, data_root: Path) -> None:
    if not (data_root / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("MNIST not available")
    out = tmp_path / "study"
    args = ["study", "ising", "--quick", "--arms", "none", "topk", "annealer", "--seeds", "2",
            "--limit-train", "300", "--limit-test", "300", "--val-size", "100", "--data-root", str(data_root),
            "--out", str(out), "--jobs", "2", "--no-progress"]
    assert cli_main(args) == 0
    results = sorted((out / "runs").glob("*/result.json"))
    assert len(results) == 6
    annealer = json.loads((out / "runs" / "mnist-sigmoid__annealer__s0" / "result.json").read_text())
    assert annealer["code_commit"]
    audit = annealer["log"]["ising"]["audit"]
    assert audit and set(audit[0]["energy"]) >= {"annealer", "topk", "greedy", "qpbo"}
    assert annealer["drop_rate_per_layer"] == {"h0": 40.051, "h1": 50.0, "h2": 50.0}
    stamp = {p: p.stat().st_mtime for p in results}
    assert cli_main(args) == 0  # resumed: nothing retrained
    assert {p: p.stat().st_mtime for p in results} == stamp
    report = (out / "ising-dropout-study.md").read_text()
    first = report.split("\n## ")[1]
    assert first.startswith("Decision rule (fixed before the runs)")
    assert "**Verdict: the annealer" in report
    assert "| mnist-sigmoid | topk | 2 |" in report  # the paired comparison row
    assert "Not tuned" in report
    # tuning on the validation split, then the study again with each arm's choice
    assert cli_main([*args[:2], "--tune", *args[2:]]) == 0
    tuning = json.loads((out / "tuning.json").read_text())
    assert set(tuning["chosen"]) == {"none", "topk", "annealer"}
    for arm, rows in tuning["scores"].items():
        assert len(rows) == study_tuning.QUICK_BUDGET and all(r["val_accuracy"] is not None for r in rows)
        assert tuning["chosen"][arm] == max(rows, key=lambda r: r["val_accuracy"])["config"]
    assert cli_main(args) == 0
    for arm in ("none", "topk", "annealer"):
        config = study_tuning.configs(tuning)[arm]
        tag = "@" + ",".join(f"{k}={v}" for k, v in config) if config else ""
        for seed in (0, 1):
            result = json.loads((out / "runs" / f"mnist-sigmoid__{arm}{tag}__s{seed}" / "result.json").read_text())
            assert all(result["options"].get(k) == v for k, v in config if k != "lr")
    assert "### Hyperparameters (chosen on the validation split)" in (out / "ising-dropout-study.md").read_text()


def test_the_energy_section_pairs_the_saliency_arm_with_the_study_energy() -> None:
    from trainer.study_report import _energy_choice

    seeds = range(6)
    accuracy = {"mnist-sigmoid": {"annealer-saliency": {s: 95.0 + 0.1 * s for s in seeds},
                                  "annealer": {s: 94.0 + 0.1 * s for s in seeds},
                                  "topk": {s: 95.5 + 0.1 * s for s in seeds}}}
    lines = _energy_choice(accuracy)
    annealer = next(line for line in lines if line.startswith("| mnist-sigmoid | annealer |"))
    topk = next(line for line in lines if line.startswith("| mnist-sigmoid | topk |"))
    assert "| 6 | +1.000 | [+1.000, +1.000] |" in annealer and "| 6 | -0.500 |" in topk
    assert not any("| none |" in line for line in lines)  # no such arm in this setting
    assert _energy_choice({"mnist-sigmoid": {"annealer": {0: 1.0, 1: 2.0}}}) == []


def test_every_arm_against_no_dropout_is_one_holm_family_per_setting() -> None:
    from trainer.study_report import _against_baseline
    from trainer.study_stats import sign_flip_test

    seeds = range(6)
    accuracy = {"mnist-sigmoid": {"none": {s: 95.0 + 0.1 * s for s in seeds},
                                  **{arm: {s: 94.0 + 0.2 * s for s in seeds} for arm in ("topk", "greedy", "annealer")}}}
    raw = sign_flip_test([-1.0 + 0.1 * s for s in seeds])
    rows = [line for line in _against_baseline(accuracy) if line.startswith("| mnist-sigmoid |")]
    assert len(rows) == 3
    # three equal p-values in one family: Holm multiplies each by 3
    assert all(line.endswith(f"| {min(1.0, 3 * raw):.4f} |") for line in rows)
