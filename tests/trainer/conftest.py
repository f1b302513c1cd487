"""Shared fixtures: the real MNIST files from ../shared/data, torch kept to one thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.servers import ServerProcess, free_port

DATA_ROOT = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_root() -> Path:
    return DATA_ROOT.resolve()


@pytest.fixture(scope="session")
def mnist_dir(data_root: Path) -> Path:
    path = data_root / "mnist"
    if not (path / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST not found under {path}")
    return path


@pytest.fixture(scope="session")
def mnist_small(mnist_dir: Path):
    """3,000 training images, 1,000 validation, 2,000 test: enough to learn, quick to train."""
    from trainer.data import load_dataset

    return load_dataset("mnist", mnist_dir, val_size=1000, limit_train=3000, limit_test=2000, seed=0)


#: The API key of the ``service_url`` server.
SERVICE_KEY = "trainer-test-key"


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``spinout serve`` on loopback (one worker, key ``SERVICE_KEY``) for a test module."""
    tmp = tmp_path_factory.mktemp("service")
    port = free_port()
    proc = ServerProcess(["serve", "--host", "127.0.0.1", "--port", str(port), "--api-key",
                          SERVICE_KEY, "--workers", "1", "--database", str(tmp / "jobs.sqlite3")],
                         {}, tmp / "server.log", port)
    try:
        proc.start()
        yield proc.url
    finally:
        proc.stop()
