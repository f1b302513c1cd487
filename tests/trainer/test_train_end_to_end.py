"""End-to-end: Ising-Dropout on an MNIST subset learns, through the harness and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from service.cli import main as spinout
from trainer.dropout import registry
from trainer.dropout.base import VariantSpec
from trainer.harness import train


def test_ising_embedded_learns_far_above_chance(mnist_small) -> None:
    torch.manual_seed(0)
    spec = VariantSpec(sizes=[784, 64, 32, 10], include_input=True, mode="train+infer", seed=0)
    model = registry.get("ising")(spec)
    result = train(model, mnist_small, epochs=2, batch_size=32, lr=0.01, seed=0)
    assert result.test_accuracy > 80.0
    assert model.num_solves >= result.steps // model.solve_every - 2
    h0, h1, h2 = result.drop_rate_per_layer
    assert 20.0 < h0 < 90.0 and h1 < 60.0 and h2 < 60.0
    assert 0.0 < result.params_removed_pct < 100.0
    for key in ("forward_backward", "ising_build", "solve", "transport"):
        assert key in result.timings


def test_none_baseline_runs_on_the_same_harness(mnist_small) -> None:
    torch.manual_seed(0)
    model = registry.get("none")(VariantSpec(sizes=[784, 64, 10]))
    result = train(model, mnist_small, epochs=1, seed=0)
    assert result.test_accuracy > 80.0
    assert result.drop_rate_per_layer == [0.0, 0.0]
    assert result.params_removed_pct == 0.0


def test_cli_prints_the_json_line_last_and_writes_outputs(mnist_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = spinout(["train", "--dataset", "mnist", "--data-dir", str(mnist_dir), "--arch", "784,32,16,10",
                    "--dropout", "ising", "--include-input", "--mode", "train+infer", "--epochs", "1",
                    "--limit-train", "1500", "--limit-test", "1000", "--val-size", "500",
                    "--no-progress", "--out", str(out), "--option", "num_sweeps=5"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    for key in ("dataset", "arch", "dropout", "include_input", "mode", "test_accuracy",
                "drop_rate_per_layer", "params_total", "params_removed_pct", "epochs", "seconds"):
        assert key in summary
    assert summary["arch"] == "784,32,16,10" and summary["include_input"] is True
    assert set(summary["drop_rate_per_layer"]) == {"h0", "h1", "h2"}
    assert summary["options"]["num_sweeps"] == "5"
    assert summary["test_accuracy"] > 25.0   # chance is 10 %; 1,500 images, one epoch
    for name in ("result.json", "masks.npz", "masks.pt", "curves.png", "input_mask.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "result.json").read_text())["test_accuracy"] == summary["test_accuracy"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--arch", "784,x,10"], "comma-separated integers"),
    (["--arch", "100,10,10"], "does not match"),
    (["--option", "novalue"], "KEY=VALUE"),
    (["--epochs", "0"], "epochs must be >= 1"),
    (["--solver", "ftp://nowhere"], "--solver must be"),
])
def test_cli_rejects_bad_input_with_a_message(mnist_dir: Path, capsys: pytest.CaptureFixture[str],
                                              argv: list[str], message: str) -> None:
    code = spinout(["train", "--data-dir", str(mnist_dir), "--limit-train", "100", "--no-progress", *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_reports_missing_data_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # an empty directory and no network in the test: the loader must say which file is missing
    monkeypatch.setattr("trainer.data.MIRRORS", {"mnist": ("http://127.0.0.1:9/",), "fashion-mnist": ()})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code = spinout(["train", "--data-dir", str(tmp_path), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz of mnist is missing" in err and "no mirror could deliver it" in err


@pytest.mark.parametrize(("options", "message"), [
    ({"solve_evry": "2"}, "unknown ising option(s) solve_evry"),
    ({"keep_ratio": "most"}, "keep_ratio must be"),
    ({"temperature": "warm"}, "temperature must be"),
    ({"ising_energy": "quantum"}, "ising_energy must be one of"),
    ({"solve_every": "0"}, "solve_every must be >= 1"),
])
def test_ising_rejects_bad_options_with_a_message(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        registry.get("ising")(VariantSpec(sizes=[20, 8, 3], include_input=True, options=options))


def test_cli_trains_the_cnn_and_reports_its_pruned_network(mnist_dir: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = spinout(["train", "--dataset", "mnist", "--data-dir", str(mnist_dir), "--model", "cnn",
                    "--dropout", "ising", "--mode", "train+infer", "--epochs", "1", "--activation", "relu",
                    "--limit-train", "600", "--limit-test", "300", "--val-size", "200",
                    "--max-steps-per-epoch", "12", "--no-progress", "--option", "num_sweeps=5",
                    "--option", "solve_every=4"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == "cnn" and summary["arch"] == "784,6,16,120,84,10"
    assert set(summary["drop_rate_per_layer"]) == {"h0", "h1", "h2", "h3", "h4"}
    pruning = summary["structured_pruning"]  # Ising's masks are 0/1: a real pruned network
    assert pruning["units"] == [784, 6, 16, 120, 84]
    assert pruning["params_full"] == summary["params_total_exact"] == 61706
    assert pruning["params_pruned"] <= pruning["params_full"] and pruning["macs_full"] == 416520
    assert pruning["inference_ms_full"] > 0 and pruning["timing"]["threads"] == 1
    assert pruning["pruned_test_accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-3)
    assert summary["weight_sparsity"] is None
