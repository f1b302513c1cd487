"""``spinout serve``'s flags become ``Settings(...)`` arguments: they override the environment
without writing into it, and a bad value is a message, not a traceback."""

from __future__ import annotations

import os

import pytest

from service.cli import build_parser, main
from service.serve_command import settings_from_args


def parse(*argv: str):
    return build_parser("serve").parse_args(["serve", *argv])


def test_flags_override_the_environment_without_touching_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINOUT_JOB_LIMIT", "7")
    monkeypatch.setenv("SPINOUT_WORKERS", "3")
    before = dict(os.environ)
    settings = settings_from_args(parse("--job-limit", "2", "--api-key", "a", "--api-key", "b",
                                        "--database", "x.sqlite3", "--sync-time-cap", "5"))
    assert dict(os.environ) == before
    assert settings.job_limit == 2 and settings.workers == 3  # flag wins; env where no flag
    assert settings.keys == ["a", "b"] and settings.database == "x.sqlite3"
    assert settings.sync_time_cap_sec == 5.0


def test_a_bad_flag_value_is_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--job-limit", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spinout serve:") and "job_limit" in err


def test_no_term_scan_turns_the_scanner_off() -> None:
    assert settings_from_args(parse()).term_scan is True
    assert settings_from_args(parse("--no-term-scan")).term_scan is False
