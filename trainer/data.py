"""MNIST and Fashion-MNIST from their original IDX gzip files, checked, held as tensors in memory.

Where the files come from, in order: the directory the caller names (``--data-dir``), the
``SPINOUT_DATA_DIR`` environment variable (``$SPINOUT_DATA_DIR/<dataset>`` if that sub-folder
exists, else the variable itself), then the cache ``~/.cache/spinout/<dataset>``. A missing file is
downloaded from the canonical mirrors into the cache (never into a user-named directory, which
may be read-only); every file is checked against its published MD5 before it is parsed.

Batches are drawn by indexing the in-memory tensors with a permutation, which on a 2-core machine
is several times faster than a ``DataLoader``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

#: Published MD5 of each file, per data set.
MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

#: Canonical mirrors, tried in order.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/",
              "http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
}

DATASETS = tuple(MD5)
ENV_VAR = "SPINOUT_DATA_DIR"


class DataError(RuntimeError):
    """A data file is missing, corrupted or cannot be downloaded; the message says which."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spinout"


def _check_name(dataset: str) -> None:
    if dataset not in MD5:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(dataset: str, path: Path) -> None:
    """Raise :class:`DataError` naming the file unless its MD5 is the published one."""
    expected = MD5[dataset][path.name]
    actual = file_md5(path)
    if actual != expected:
        raise DataError(f"{path}: MD5 mismatch (got {actual}, expected {expected}); the file is "
                        f"corrupted or not the published {dataset} file: delete it and retry")


def download_file(dataset: str, name: str, target_dir: Path, timeout: float = 60.0) -> Path:
    """Fetch ``name`` from the first mirror that answers into ``target_dir``, verified.

    Raises:
        DataError: no mirror could deliver a file with the right MD5 (no network, for example);
            the message lists each mirror's failure.
    """
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / name
    failures = []
    for base in MIRRORS[dataset]:
        url = base + name
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https/http URLs)
                with tempfile.NamedTemporaryFile(dir=target_dir, delete=False, suffix=".part") as tmp:
                    shutil.copyfileobj(response, tmp)
                    tmp_path = Path(tmp.name)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            failures.append(f"{url}: {getattr(exc, 'reason', exc)}")
            continue
        if file_md5(tmp_path) != MD5[dataset][name]:
            tmp_path.unlink(missing_ok=True)
            failures.append(f"{url}: wrong MD5")
            continue
        tmp_path.replace(target)
        return target
    raise DataError(f"{name} of {dataset} is missing from {target_dir} and no mirror could deliver it "
                    f"(no network?):\n  " + "\n  ".join(failures)
                    + f"\nPlace the file there by hand or pass --data-dir / set {ENV_VAR}.")


def resolve_files(dataset: str, data_dir: str | Path | None = None, download: bool = True) -> dict[str, Path]:
    """Paths of the four verified IDX files, downloading missing ones into the cache.

    Raises:
        DataError: a file is missing (and downloading is off or fails) or fails its MD5 check.
    """
    _check_name(dataset)
    if data_dir is not None:
        search = [Path(data_dir)]
    else:
        search = []
        env = os.environ.get(ENV_VAR)
        if env:
            search += [Path(env) / dataset, Path(env)]
        search.append(default_cache_dir() / dataset)
    cache = default_cache_dir() / dataset
    paths: dict[str, Path] = {}
    for name in FILES:
        found = next((d / name for d in search if (d / name).is_file()), None)
        if found is None:
            if not download:
                raise DataError(f"{name} of {dataset} not found in " + ", ".join(map(str, search)))
            found = download_file(dataset, name, cache)
        verify_file(dataset, found)
        paths[name] = found
    return paths


def read_idx(path: Path) -> np.ndarray:
    """Parse one gzip IDX file (unsigned bytes) into an array of its declared shape."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: holds {data.size} values, its header declares {tuple(dims)}")
    return data.reshape(tuple(dims))


@dataclass
class DataSplits:
    """Train / validation / test tensors: images flattened to float32 in [0, 1], labels int64."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @property
    def num_features(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def num_classes(self) -> int:
        return int(max(self.train_y.max(), self.test_y.max())) + 1

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One shuffled pass over the training set (the last short batch included)."""
        order = torch.randperm(self.train_x.shape[0], generator=generator)
        for start in range(0, order.numel(), batch_size):
            idx = order[start:start + batch_size]
            yield self.train_x[idx], self.train_y[idx]


def _images(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.reshape(arr.shape[0], int(np.prod(arr.shape[1:]))).astype(np.float32) / 255.0)


def load_dataset(dataset: str, data_dir: str | Path | None = None, *, val_size: int = 5000,
                 limit_train: int | None = None, limit_test: int | None = None, seed: int = 0,
                 download: bool = True) -> DataSplits:
    """Load a data set and split a seeded validation set off the 60,000 training images.

    Args:
        dataset: "mnist" or "fashion-mnist".
        data_dir: directory holding the four IDX gzip files (None: env var, then cache).
        val_size: images held out of training for early stopping.
        limit_train: keep only this many training images (after the validation split).
        limit_test: evaluate on only the first this many test images.
        seed: decides the validation split and the training subset.
        download: fetch missing files from the mirrors into the cache.
    """
    paths = resolve_files(dataset, data_dir, download)
    train_x = read_idx(paths["train-images-idx3-ubyte.gz"])
    train_y = read_idx(paths["train-labels-idx1-ubyte.gz"])
    test_x = read_idx(paths["t10k-images-idx3-ubyte.gz"])
    test_y = read_idx(paths["t10k-labels-idx1-ubyte.gz"])
    n = train_x.shape[0]
    if not 0 <= val_size < n:
        raise ValueError(f"val_size must be in [0, {n}), got {val_size}")
    if limit_train is not None and limit_train < 1:
        raise ValueError(f"limit_train must be >= 1, got {limit_train}")
    order = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = order[:val_size], order[val_size:]
    if limit_train is not None:
        train_idx = train_idx[:limit_train]
    test_n = test_x.shape[0] if limit_test is None else min(limit_test, test_x.shape[0])
    return DataSplits(
        name=dataset,
        train_x=_images(train_x[np.sort(train_idx)]),
        train_y=torch.from_numpy(train_y[np.sort(train_idx)].astype(np.int64)),
        val_x=_images(train_x[np.sort(val_idx)]),
        val_y=torch.from_numpy(train_y[np.sort(val_idx)].astype(np.int64)),
        test_x=_images(test_x[:test_n]),
        test_y=torch.from_numpy(test_y[:test_n].astype(np.int64)),
    )
