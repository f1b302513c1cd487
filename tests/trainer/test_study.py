"""``spinout study ising``: the grid's pairing and counts, and a tiny study end to end (runs,
resume, report with the decision rule first)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.cli import main as cli_main
from trainer import study
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
