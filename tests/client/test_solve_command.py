"""``spinout solve`` against the real service, and its messages on bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from service.cli import main as spinout


def run_json(capsys, argv: list[str]) -> dict:
    assert spinout(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_beasley_bqp50_reaches_best_known(service, data_dir, capsys) -> None:
    with (data_dir / "beasley" / "best_known.csv").open() as fh:
        best = {row["instance"]: float(row["best_known_max"]) for row in csv.DictReader(fh)}
    out = run_json(capsys, ["solve", str(data_dir / "beasley" / "bqp50.txt"), "--url", service.url,
                            "--api-key", service.api_key, "--time-limit", "10", "--json"])
    assert out["instance"] == "bqp50.1" and out["best_known"] == best["bqp50.1"] == 2098
    assert out["objective"] == pytest.approx(2098) and out["best_energy"] == pytest.approx(-2098)
    assert out["num_variables"] == 50 and len(out["best_state"]) == 50


def test_console_command_prints_objective(service, data_dir) -> None:
    """The installed entry point, as a user runs it, on the 3rd instance of the file."""
    proc = subprocess.run([sys.executable, "-m", "service", "solve",
                           str(data_dir / "beasley" / "bqp50.txt") + ":3", "--url", service.url,
                           "--api-key", service.api_key, "--time-limit", "10"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "objective: 4626 (best known 4626)" in proc.stdout
    assert "best energy: -4626" in proc.stdout


def test_npy_and_da_json_files(service, tmp_path, capsys) -> None:
    q = np.array([[-1.0, 2.0, 0.0], [0.0, -1.0, 2.0], [0.0, 0.0, -1.0]])
    np.save(tmp_path / "q.npy", q)
    out = run_json(capsys, ["solve", str(tmp_path / "q.npy"), "--url", service.url, "--api-key",
                            service.api_key, "--solver", "fujitsuDA2", "--param", "number_iterations=500",
                            "--json"])
    assert out["best_energy"] == -2.0 and out["best_state"] == [1, 0, 1] and out["job_id"] is None

    request = {"fujitsuDA3": {"time_limit_sec": 1},
               "binary_polynomial": {"terms": [{"c": -3, "p": [0, 1]}, {"coefficient": 1, "polynomials": [1]},
                                               {"c": 10}]}}
    (tmp_path / "req.json").write_text(json.dumps(request))
    out = run_json(capsys, ["solve", str(tmp_path / "req.json"), "--url", service.url, "--api-key",
                            service.api_key, "--json"])
    assert out["solver"] == "fujitsuDA3" and out["best_energy"] == 8.0 and out["job_id"]


def test_async_progress_on_stderr(service, tmp_path, capsys) -> None:
    np.save(tmp_path / "q.npy", np.diag([-1.0, 1.0]))
    assert spinout(["solve", str(tmp_path / "q.npy"), "--url", service.url, "--api-key", service.api_key,
                    "--time-limit", "2"]) == 0
    captured = capsys.readouterr()
    assert "Running" in captured.err and "best energy: -1" in captured.out


@pytest.mark.parametrize("argv_tail, code, message", [
    (["missing.npy"], 2, "no such file"),
    (["{npy}", "--solver", "fujitsuDA2", "--time-limit", "1"], 2, "--time-limit applies to fujitsuDA3"),
    (["{npy}", "--param", "num_runs=3"], 2, "has no parameter"),
    (["{npy}", "--param", "oops"], 2, "NAME=VALUE"),
    (["{bad}"], 2, "not valid JSON"),
    (["{npy}", "--url", "{dead}"], 1, "failed"),
])
def test_cli_errors_are_messages(tmp_path, capsys, dead_url, argv_tail, code, message) -> None:
    np.save(tmp_path / "q.npy", np.eye(2))
    (tmp_path / "bad.json").write_text("{not json")
    subst = {"{npy}": str(tmp_path / "q.npy"), "{bad}": str(tmp_path / "bad.json"), "{dead}": dead_url}
    argv = ["solve"] + [subst.get(a, a) for a in argv_tail]
    if "--url" not in argv:
        argv += ["--url", dead_url]
    argv += ["--quiet"]
    assert spinout(argv) == code
    assert message in capsys.readouterr().err


def test_cli_auth_error_is_exit_2(service, tmp_path, capsys) -> None:
    np.save(tmp_path / "q.npy", np.eye(2))
    assert spinout(["solve", str(tmp_path / "q.npy"), "--url", service.url, "--api-key", "wrong"]) == 2
    assert "401" in capsys.readouterr().err


#: What `pip install spinout` (the client role) does not install.
SERVICE_AND_TRAINER_MODULES = ("numba", "llvmlite", "scipy", "torch", "fastapi", "uvicorn", "orjson",
                               "rq", "redis", "matplotlib")

_BLOCKER = """
import importlib.abc, sys
BLOCKED = set({blocked!r})
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Block())
sys.argv = ["spinout"] + {argv!r}
from service.cli import main
raise SystemExit(main())
"""


def run_client_role(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """The CLI in a process where the service's and trainer's dependencies cannot be imported,
    as after a plain `pip install spinout`."""
    code = _BLOCKER.format(blocked=SERVICE_AND_TRAINER_MODULES, argv=argv)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_solve_needs_only_the_client_install(service, data_dir) -> None:
    """`spinout solve` of a Beasley file works without numba, scipy, torch or FastAPI."""
    proc = run_client_role(["solve", str(data_dir / "beasley" / "bqp50.txt") + ":3", "--url",
                            service.url, "--api-key", service.api_key, "--time-limit", "10"])
    assert proc.returncode == 0, proc.stderr
    assert "objective: 4626 (best known 4626)" in proc.stdout


@pytest.mark.parametrize("command, extra", [("serve", "service"), ("anneal", "service"),
                                            ("train", "train")])
def test_commands_of_other_roles_name_their_extra(command: str, extra: str, tmp_path) -> None:
    proc = run_client_role([command, str(tmp_path / "x.txt")] if command == "anneal" else [command])
    assert proc.returncode == 1
    assert f"pip install 'spinout[{extra}]'" in proc.stderr and "Traceback" not in proc.stderr


def test_base_install_is_the_client() -> None:
    """The distribution's own requirements are the client's four; the rest are extras."""
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    names = {req.split(">")[0].split("=")[0].split("[")[0] for req in project["dependencies"]}
    assert names == {"numpy", "pydantic", "httpx", "msgpack"}
    assert "torch==2.13.0" in project["optional-dependencies"]["train"]
    assert not any(r.startswith("torch") for r in project["optional-dependencies"]["service"])
