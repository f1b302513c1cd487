"""Real SpinOut processes on loopback for tests and benchmarks: a free port (service.loopback),
and a ``python -m service serve|worker`` subprocess that waits for its healthcheck, stops politely or
dies by kill -9. One definition, used by every test folder and the service benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service.loopback import free_port, wait_until_serving  # noqa: F401  (free_port re-exported)

REPO = Path(__file__).resolve().parents[1]


class ServerProcess:
    """A ``spinout serve``/``spinout worker`` subprocess we can stop politely or kill -9.

    ``env`` overrides the inherited environment; a value of None removes that variable. ``cwd``
    is the checkout whose packages ``python -m service`` imports (default: this one).
    """

    def __init__(self, args: list[str], env: dict[str, str | None], log: Path,
                 port: int | None = None, cwd: Path = REPO) -> None:
        self.args, self.env, self.log, self.port, self.cwd = args, env, log, port, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True, timeout: float = 60.0) -> ServerProcess:
        merged = {**os.environ, **self.env}
        full_env = {k: v for k, v in merged.items() if v is not None}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "service", *self.args], cwd=self.cwd,
                                         env=full_env, stdout=out, stderr=subprocess.STDOUT)
        if wait and self.port is not None:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        assert self.proc is not None
        wait_until_serving(self.url, self.proc, self.log, timeout)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill9()


@contextmanager
def standalone_server(timeout: float = 300.0) -> Iterator[ServerProcess]:
    """A ``spinout serve`` as a user starts it alone: one worker, its SQLite job store in a
    temporary folder, no API keys, no Redis; stopped (and the folder removed) on exit. For the
    benchmarks that measure what the routes add."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = ServerProcess(["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                                "--database", str(Path(tmp) / "jobs.sqlite3")],
                               {"SPINOUT_API_KEYS": None, "SPINOUT_REDIS_URL": None,
                                "SPINOUT_LOG_LEVEL": "WARNING"}, Path(tmp) / "server.log", port)
        try:
            server.start(timeout=timeout)  # a server that never got ready is stopped too
            yield server
        finally:
            server.stop()
