"""Shared fixtures: the real MNIST files from ../shared/data, torch kept to one thread."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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
