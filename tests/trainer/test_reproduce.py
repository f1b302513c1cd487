"""``spinout reproduce``: the grid carries the paper's numbers, runs resume, failures stay local."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from service.cli import main as cli_main
from trainer import experiments
from trainer.dropout import registry
from trainer.experiments import PAPER, Row, Run, build_grid
from trainer.reproduce_command import run_grid
from trainer.report import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--datasets", "mnist", "--networks", "784-100-100-10", "--rows", "none", "ising-infer-input",
        "--epochs", "1", "--limit-train", "300", "--limit-test", "300", "--val-size", "100",
        "--jobs", "2", "--no-progress"]


# ------------------------------------------------------------------------------ the grid
def test_every_paper_row_is_in_the_grid_with_its_published_numbers() -> None:
    grid = {(r.dataset, r.network, r.row.key): r for r in build_grid()}
    paper_rows = [r.key for r in experiments.ROWS if r.paper_row]
    assert paper_rows == ["none", "dropout", "dropout-input", "ising-train", "ising-train-input",
                          "ising-infer", "ising-infer-input"]
    for dataset in experiments.DATASETS:
        for network in experiments.PAPER_NETWORKS:
            for key in paper_rows:
                assert (dataset, network, key) in grid, (dataset, network, key)
            # the paper gives at least the three baselines and one Ising row for every network
            for key in ("none", "dropout", "dropout-input", "ising-infer-input"):
                assert PAPER[(dataset, network, key)].accuracy is not None
    for key, published in PAPER.items():
        assert grid[key].paper == published
    # spot checks against ising-dropout.md
    table1 = PAPER[("mnist", "784-100-100-10", "ising-infer-input")]
    assert (table1.accuracy, table1.removed_pct, table1.drop_rates) == (91.40, 37.71, (38.60, 32.18, 25.15))
    assert PAPER[("mnist", "784-100-100-10", "dropout")].removed_pct == 6.26
    assert PAPER[("mnist", "784-100-100-10", "ising-train")].drop_rates == (0.0, 38.62, 42.43)
    fashion = [PAPER[("fashion-mnist", "784-100-50-50-10", k)].accuracy for k in paper_rows]
    assert fashion == [83.48, 68.74, 64.25, 80.57, 68.42, 82.65, 79.82]
    assert PAPER[("fashion-mnist", "784-100-50-50-25-10", "ising-infer-input")].removed_pct == 55.86
    assert PAPER[("mnist", "784-100-50-50-25-10", "dropout")].accuracy == 56.89
    assert PAPER[("fashion-mnist", "784-100-100-10", "ising-infer-input")].accuracy == 86.21
    # derived dropout rates on the deeper networks: 50 % of every hidden layer
    assert PAPER[("mnist", "784-100-50-50-10", "dropout")].drop_rates == (0.0, 50.0, 50.0, 50.0)


def test_every_registered_variant_runs_on_the_paper_networks() -> None:
    runs = build_grid()
    for name in registry.names():
        for network in experiments.PAPER_NETWORKS:
            assert any(r.row.dropout == name and r.network == network for r in runs), (name, network)
    literal = [r for r in runs if ("ising_energy", "paper") in r.row.options]
    assert literal and all(r.epochs == experiments.PAPER_ENERGY_EPOCHS for r in literal)
    assert all("--ising-energy" not in r.train_args() and "ising_energy=paper" in r.train_args()
               for r in literal)


def test_run_ids_are_unique_and_stable() -> None:
    first, second = build_grid(), build_grid(epochs=5, limit_train=100)
    ids = [r.run_id for r in first]
    assert len(ids) == len(set(ids))
    assert ids == [r.run_id for r in second]
    assert "mnist__784-100-100-10__ising-infer-input" in ids
    assert all(re.fullmatch(r"[a-z0-9_.-]+", i) for i in ids)


def test_rows_keep_their_own_epochs_unless_the_grid_sets_them() -> None:
    own = {(r.dataset, r.network, r.row.key): r for r in build_grid()}
    svd = own[("mnist", "784-300-100-10", "sparsevd")]
    assert svd.epochs == experiments.SPARSEVD_EPOCHS
    assert svd.train_args()[svd.train_args().index("--lr-decay") + 1] == "linear"
    assert own[("mnist", "784-100-100-10", "none")].epochs == experiments.DEFAULT_EPOCHS
    assert {r.epochs for r in build_grid(epochs=4)} == {3, 4}  # the literal-energy rows' cap is 3


def test_quick_grid_is_small_and_unknown_names_are_rejected() -> None:
    quick = build_grid(networks=experiments.QUICK_NETWORKS, rows=experiments.QUICK_ROWS, epochs=2)
    assert 10 <= len(quick) <= 30
    with pytest.raises(ValueError, match="unknown network"):
        build_grid(networks=["784-10"])
    with pytest.raises(ValueError, match="unknown row"):
        build_grid(rows=["nope"])


# ------------------------------------------------------------------------------ running
@pytest.fixture(scope="module")
def tiny_out(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """Two real runs of ``spinout reproduce`` on 300 MNIST images, one epoch."""
    if not (data_root / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("MNIST not found")
    out = tmp_path_factory.mktemp("reproduce")
    assert cli_main(["reproduce", *TINY, "--data-root", str(data_root), "--out", str(out)]) == 0
    return out


def test_finished_runs_are_skipped_on_a_second_invocation(tiny_out: Path, data_root: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    results = sorted((tiny_out / "runs").glob("*/result.json"))
    assert [p.parent.name for p in results] == ["mnist__784-100-100-10__ising-infer-input",
                                                "mnist__784-100-100-10__none"]
    assert not list((tiny_out / "runs").glob("*.partial"))
    stamps = {p: p.stat().st_mtime_ns for p in results}
    capsys.readouterr()
    assert cli_main(["reproduce", *TINY, "--data-root", str(data_root), "--out", str(tiny_out)]) == 0
    assert "0 trained, 2 already done, 0 failed" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in results} == stamps
    manifest = json.loads((tiny_out / "grid.json").read_text())
    assert manifest["invocations"] == 2 and manifest["wall_seconds_total"] >= manifest["wall_seconds"]
    assert "over 2 invocations (resumed)" in (tiny_out / "results.md").read_text()
    # the same folder with other settings is refused instead of mixing runs
    other = [a if a != "300" else "400" for a in TINY]
    assert cli_main(["reproduce", *other, "--data-root", str(data_root), "--out", str(tiny_out)]) == 2
    assert "other settings" in capsys.readouterr().err


def test_report_shows_ours_beside_the_papers_and_embeds_existing_plots(tiny_out: Path) -> None:
    report = tiny_out / "results.md"
    text = report.read_text()
    ours = json.loads((tiny_out / "runs" / "mnist__784-100-100-10__none" / "result.json").read_text())
    assert f"| no dropout | {ours['test_accuracy']:.2f} | 94.65 |" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("| Ising-Dropout (training+inference) incl. input"))
    cells = [c.strip() for c in line.split("|")[1:-1]]
    assert cells[2] == "91.40" and cells[5] == "37.71" and cells[8] == "38.6 / 32.2 / 25.1"
    assert re.fullmatch(r"\d+\.\d\d", cells[1]) and re.fullmatch(r"\d+\.\d / \d+\.\d / \d+\.\d", cells[7])
    assert "```bash\nspinout reproduce --datasets mnist --networks 784-100-100-10 --rows none ising-infer-input" in text
    assert "## Goals (issue 6)" in text and "baselines at least as accurate as the paper's" in text
    # the training settings are the runs' own (both tiny runs: sigmoid, Adam 0.01, batch 32)
    assert (f"  - sigmoid units, Adam lr {ours['lr']}, batch {ours['batch_size']}, {ours['epochs']} epochs, "
            f"best validation epoch restored: 2 runs (ising, none)") in text
    assert f"- code commit(s) of the runs: `{ours['code_commit']}`" in text
    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert len(images) == 2  # the scatter plot and the network's training curves
    # The curves come from each run's per-epoch history in result.json, not from printed text.
    assert len(ours["history"]) == ours["epochs"] >= 1
    first = ours["history"][0]
    assert first["epoch"] == 1 and 0.0 <= first["val_accuracy"] <= 100.0
    for rel in images:
        assert (report.parent / rel).read_bytes()[:8] == PNG_MAGIC


def test_report_only_rebuilds_without_training(tiny_out: Path, tmp_path: Path) -> None:
    target = tmp_path / "docs" / "results.md"
    assert cli_main(["reproduce", "--report-only", "--out", str(tiny_out), "--report", str(target)]) == 0
    assert "| no dropout |" in target.read_text()
    assert (tmp_path / "docs" / "results" / "mnist-accuracy-vs-compression.png").is_file()
    assert cli_main(["reproduce", "--report-only", "--out", str(tmp_path / "empty")]) == 2


def test_a_failed_run_is_recorded_and_the_others_continue(tmp_path: Path, data_root: Path) -> None:
    if not (data_root / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("MNIST not found")
    bad = Row("broken", "broken on purpose", "dropout", options=(("no_such_option", "1"),))
    good = Row("none", "no dropout", "none")
    runs = [Run("mnist", "784-100-100-10", row, 1, 300, 300, 100) for row in (bad, good)]
    outcomes = {o.run_id: o for o in run_grid(runs, tmp_path, jobs=2, data_root=str(data_root), progress=False)}
    assert outcomes["mnist__784-100-100-10__broken"].status == "failed"
    assert outcomes["mnist__784-100-100-10__none"].status == "done"
    failed = json.loads((tmp_path / "runs" / "mnist__784-100-100-10__broken" / "failed.json").read_text())
    assert failed["returncode"] == 2 and "no_such_option" in failed["stderr_tail"]
    report = write_report(tmp_path, runs, command="spinout reproduce (test)").read_text()
    assert "## Failed runs" in report and "mnist__784-100-100-10__broken" in report
    assert "| broken on purpose (`broken`) | **failed** |" in report
    # a failure is retried next time, a finished run is not
    again = {o.run_id: o.status for o in run_grid(runs, tmp_path, jobs=1, data_root=str(data_root),
                                                  progress=False)}
    assert again == {"mnist__784-100-100-10__broken": "failed", "mnist__784-100-100-10__none": "skipped"}
