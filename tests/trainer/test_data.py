"""The IDX loader: MD5 checks, clear errors, splits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from trainer.data import FILES, DataError, load_dataset, read_idx, resolve_files


def test_loads_mnist_with_a_seeded_validation_split(mnist_dir: Path) -> None:
    data = load_dataset("mnist", mnist_dir, val_size=5000, limit_train=1000, limit_test=500, seed=3)
    assert data.train_x.shape == (1000, 784) and data.val_x.shape == (5000, 784)
    assert data.test_x.shape == (500, 784)
    assert 0.0 <= float(data.train_x.min()) and float(data.train_x.max()) <= 1.0
    assert data.num_classes == 10
    again = load_dataset("mnist", mnist_dir, val_size=5000, limit_train=1000, limit_test=500, seed=3)
    assert (again.train_y == data.train_y).all()


def test_md5_check_rejects_a_corrupted_copy_naming_the_file(mnist_dir: Path, tmp_path: Path) -> None:
    for name in FILES:
        shutil.copy(mnist_dir / name, tmp_path / name)
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(bad.read_bytes())
    raw[100] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: MD5 mismatch"):
        resolve_files("mnist", tmp_path, download=False)


def test_missing_file_says_which_and_where(mnist_dir: Path, tmp_path: Path) -> None:
    for name in FILES[:3]:
        shutil.copy(mnist_dir / name, tmp_path / name)
    with pytest.raises(DataError, match=f"t10k-labels-idx1-ubyte.gz of mnist not found in {tmp_path}"):
        resolve_files("mnist", tmp_path, download=False)


def test_unknown_dataset_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        resolve_files("cifar", None, download=False)


def test_read_idx_shapes(mnist_dir: Path) -> None:
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    assert labels.shape == (10_000,) and images.shape == (10_000, 28, 28)
    assert set(labels.tolist()) == set(range(10))


def test_missing_files_are_downloaded_into_the_cache_from_a_mirror(mnist_dir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A real HTTP mirror on loopback (after a dead one): files land in the cache, verified."""
    import functools
    import http.server
    import threading

    served = tmp_path / "mirror"
    served.mkdir()
    for name in FILES:
        shutil.copy(mnist_dir / name, served / name)
    (served / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not the file")   # a bad copy on the mirror

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        good = f"http://127.0.0.1:{server.server_address[1]}/"
        monkeypatch.setattr("trainer.data.MIRRORS", {"mnist": ("http://127.0.0.1:9/", good), "fashion-mnist": ()})
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        monkeypatch.delenv("SPINOUT_DATA_DIR", raising=False)
        with pytest.raises(DataError, match=r"(?s)t10k-labels-idx1-ubyte\.gz of mnist is missing.*127\.0\.0\.1:9/.*wrong MD5"):
            resolve_files("mnist", None)
        shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", served / "t10k-labels-idx1-ubyte.gz")
        paths = resolve_files("mnist", None)
    finally:
        server.shutdown()
        server.server_close()
    cache = tmp_path / "cache" / "spinout" / "mnist"
    assert all(paths[name] == cache / name and paths[name].is_file() for name in FILES)
    assert not list(cache.glob("*.part"))
