"""The deployment files: docker-compose.yml validated by a compose-spec implementation, the
Dockerfile linted by hadolint (each when installed), and the exact commands the containers run
started directly on loopback against a real redis-server."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import REPO, ServerProcess, free_port, random_terms, wait_status

COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "docker" / "Dockerfile"


def _compose_text() -> str:
    """The compose file with `${VAR:-default}` replaced by its default, as Compose interpolates
    it before validating (compose-spec does not interpolate)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", COMPOSE.read_text())


def _compose() -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(_compose_text())


def test_compose_file_is_valid_compose_spec() -> None:
    compose_spec = pytest.importorskip("compose_spec")
    spec = compose_spec.PyCompose.from_yaml(_compose_text()).to_spec()
    assert set(spec.services) == {"api", "worker", "redis"}
    for name in ("api", "worker", "redis"):
        assert spec.services[name].healthcheck is not None, name
    assert "redis-data" in (spec.volumes or {})


def test_compose_shape() -> None:
    services = _compose()["services"]
    assert "--appendonly" in services["redis"]["command"] and services["redis"]["volumes"]
    assert "ports" not in services["worker"] and "container_name" not in services["worker"], \
        "the worker must stay scalable with --scale worker=N"
    for name in ("api", "worker"):
        assert services[name]["env_file"][0]["path"] == "docker/spinout.env"
        assert services[name]["environment"]["SPINOUT_REDIS_URL"].startswith("redis://redis:")
    assert (REPO / "docker" / "spinout.env.example").exists()


def test_compose_builds_the_image_once() -> None:
    services = _compose()["services"]
    builders = [name for name, service in services.items() if "build" in service]
    assert builders == ["api"], "one build per image: a second build leaves a dangling copy"
    image = services["api"]["image"]
    assert services["worker"]["image"] == image and services["worker"]["pull_policy"] == "never"


def _final_stage(text: str) -> str:
    return re.split(r"^FROM ", text, flags=re.M)[-1]


def test_image_is_the_service_without_torch() -> None:
    final = _final_stage(DOCKERFILE.read_text())
    installs = re.findall(r"pip install .*", final)
    assert installs and all("[service]" in line for line in installs), installs
    assert not re.search(r"\[[^]]*\b(train|dev)\b", final) and "pytorch.org" not in final


def test_warmup_compiles_the_installed_package() -> None:
    """numba keys its cache by source path: the warm-up must import the package the entry point
    imports, so the final stage holds no source tree, only the wheel built from it."""
    final = _final_stage(DOCKERFILE.read_text())
    copies = re.findall(r"^COPY (.*)$", final, re.M)
    assert copies and all(c.startswith("--from=") for c in copies), copies
    assert re.search(r"^RUN python -m service\.warmup", final, re.M)


def test_no_anonymous_volumes() -> None:
    assert not re.search(r"^VOLUME", DOCKERFILE.read_text(), re.M | re.I), \
        "VOLUME leaves an anonymous volume per container after `docker compose down`"
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            assert ":" in volume, f"{name}: {volume} is an anonymous volume"


def test_dockerfile_lint_and_essentials() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r"^USER (?!root|0\b)", text, re.M), "runs as a non-root user"
    assert "service.warmup" in text and "NUMBA_CACHE_DIR" in text and "HEALTHCHECK" in text
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed")
    out = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.redis
def test_container_commands_run_as_written(redis_server: str, tmp_path: Path) -> None:
    services = _compose()["services"]
    port = free_port()

    def localise(command: list[str]) -> list[str]:
        """The compose command with the container's bind address and port made loopback ones."""
        out = []
        for arg in command:
            out.append({"0.0.0.0": "127.0.0.1", "8000": str(port)}.get(arg, arg))
        return out

    env_file = {}
    for line in (REPO / "docker" / "spinout.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env_file[key] = value
    env = {**env_file, "SPINOUT_REDIS_URL": redis_server, "SPINOUT_LOG_LEVEL": "WARNING",
           "SPINOUT_API_KEYS": "compose-key"}
    api = ServerProcess(localise(services["api"]["command"]), env, tmp_path / "api.log", port)
    worker = ServerProcess(localise(services["worker"]["command"]), env, tmp_path / "worker.log")
    worker.start(wait=False)
    api.start()
    try:
        # the image's HEALTHCHECK command, as written in the Dockerfile
        probe = re.search(r'CMD \["python", "-c", "(.*)"\]', DOCKERFILE.read_text()).group(1)  # type: ignore[union-attr]
        ok = subprocess.run([sys.executable, "-c", probe.replace('\\"', '"')],
                            env={"SPINOUT_PORT": str(port), "PATH": ""}, timeout=10)
        assert ok.returncode == 0
        with httpx.Client(base_url=api.url, headers={"X-Api-Key": "compose-key"}, timeout=30) as c:
            payload = {"binary_polynomial": {"terms": random_terms(6)},
                       "fujitsuDA2": {"number_iterations": 50, "number_runs": 16}}
            job_id = c.post("/da/v2/async/qubo/solve", json=payload).json()["job_id"]
            assert wait_status(c, job_id, {"Done"}, timeout=60)["status"] == "Done"
            c.delete(f"/v2/async/jobs/result/{job_id}")
    finally:
        api.stop()
        worker.stop()
