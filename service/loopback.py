"""A SpinOut process on loopback: a free port to serve on, and the wait for its healthcheck.

Shared by ``spinout study`` (which starts a ``spinout serve`` for its HTTP arm) and the tests'
server fixtures (tests/servers.py).
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_serving(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0,
                       poll: float = 0.1) -> None:
    """Return once ``GET {url}/v1/healthcheck`` answers 200.

    Raises:
        RuntimeError: ``proc`` exited first, or ``timeout`` seconds passed; the message ends with
            the tail of ``log`` (the process's output).
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} (log {log}): {_tail(log)}")
        try:
            if httpx.get(f"{url}/v1/healthcheck", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server not ready in {timeout:g} s (log {log}): {_tail(log)}")
        time.sleep(poll)


def _tail(log: Path, chars: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return ""
