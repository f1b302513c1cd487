"""Variant options are declared per variant and checked; ``spinout train`` reports what it built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.cli import main as spinout
from trainer.dropout import registry
from trainer.dropout.base import VariantSpec

SMALL_RUN = ["--arch", "784,16,10", "--limit-train", "600", "--val-size", "200", "--limit-test", "200",
             "--epochs", "1", "--max-steps-per-epoch", "3", "--no-progress"]


@pytest.mark.parametrize("name", registry.names())
def test_every_variant_rejects_an_unknown_option_listing_the_valid_ones(name: str) -> None:
    with pytest.raises(ValueError, match=rf"unknown {name} option\(s\) no_such_option") as info:
        registry.get(name)(VariantSpec([20, 8, 6, 2], options={"no_such_option": "1"}))
    for key in registry.known_options(name):
        assert key in str(info.value)


@pytest.mark.parametrize("name", registry.names())
def test_declared_options_are_accepted(name: str) -> None:
    registry.check_options(name, dict.fromkeys(registry.known_options(name), "1"))


def test_help_lists_every_variant_whole_even_when_wrapped(capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "50")
    with pytest.raises(SystemExit) as info:
        spinout(["train", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    dropout_help = text[text.index("--dropout NAME"):text.index("--include-input  ")]
    words = {w.strip(",()") for w in dropout_help.split()}
    assert set(registry.names()) <= words, sorted(set(registry.names()) - words)
    assert "p_input" in text and "kl_warmup_end" in text  # the options epilog


@pytest.mark.parametrize(("argv", "message"), [
    (["--dropout", "dropout", "--option", "p_inptu=0.2"], "unknown dropout option(s) p_inptu; valid: p_input"),
    (["--dropout", "sparsevd", "--lambda-in", "1e-4"], "unknown sparsevd option(s) lambda_in; valid: kl_warmup_end"),
    (["--dropout", "none", "--option", "p=0.3"], "variant 'none' takes no options"),
    (["--dropout", "dropalan-beta", "--option", "estimator=knn"], "valid: inference, max_rate"),
])
def test_cli_rejects_unknown_variant_options(mnist_dir: Path, capsys: pytest.CaptureFixture[str],
                                            argv: list[str], message: str) -> None:
    assert spinout(["train", "--data-dir", str(mnist_dir), *SMALL_RUN, *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("name", "activation", "basis"), [
    ("dropalan-beta", "sigmoid", "eq6-expected"),
    ("alpha", "selu", "eq6-expected"),
    ("none", "sigmoid", "pruned"),
])
def test_cli_json_reports_the_models_activation(mnist_dir: Path, capsys: pytest.CaptureFixture[str],
                                               name: str, activation: str, basis: str) -> None:
    assert spinout(["train", "--data-dir", str(mnist_dir), *SMALL_RUN, "--dropout", name]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["activation"] == activation
    assert summary["params_exact_basis"] == basis
    assert summary["epoch_selection"] == "best"


def test_cli_gives_sparsevd_the_training_set_size(mnist_dir: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int | None] = []
    original = registry.get("sparsevd")

    def spy(spec: VariantSpec):
        model = original(spec)
        seen.append(model.num_train)
        return model

    monkeypatch.setitem(registry._CHECKED, "sparsevd", spy)
    assert spinout(["train", "--data-dir", str(mnist_dir), *SMALL_RUN, "--dropout", "sparsevd"]) == 0
    assert seen == [600]  # --limit-train counts after the validation split
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epoch_selection"] == "last"  # one epoch, inside the KL warm-up
