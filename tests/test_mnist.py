"""MNIST from IDX files (issue 17, item 1): files written here byte by byte come back exactly,
broken or missing ones are named, and the shared copy has MNIST's known class counts."""
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from sdescore.datasets import load_mnist
from sdescore.mnist import read_idx

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def _idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: 0, 0, 0x08, ndim, big-endian dims, values."""
    return (bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            + array.tobytes())


def _write(folder: Path, prefix: str, images, labels, zipped: bool) -> None:
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        name = folder / f"{prefix}-{kind}-ubyte{'.gz' if zipped else ''}"
        name.write_bytes(gzip.compress(_idx_bytes(array)) if zipped else _idx_bytes(array))


@pytest.mark.parametrize("zipped", [True, False])
def test_idx_files_come_back_exactly(tmp_path, zipped):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    _write(tmp_path, "t10k", images, labels, zipped)
    x, y = load_mnist(tmp_path, split="test")
    assert x.dtype == np.uint8 and x.shape == (5, 1, 28, 28) and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], images)
    np.testing.assert_array_equal(y, labels)


def test_missing_broken_and_mismatched_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"train-images-idx3-ubyte.* missing from {tmp_path}"):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match="Unknown split 'validation'"):
        load_mnist(tmp_path, split="validation")
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    _write(tmp_path, "train", images, np.zeros(3, dtype=np.uint8), zipped=False)
    with pytest.raises(ValueError, match="do not pair up"):
        load_mnist(tmp_path)
    cut = tmp_path / "train-images-idx3-ubyte"
    cut.write_bytes(_idx_bytes(images)[:-10])
    with pytest.raises(ValueError, match=r"announces shape \(4, 28, 28\), the file holds 3126"):
        read_idx(cut)
    cut.write_bytes(b"\x89PNG....")
    with pytest.raises(ValueError, match="is not an IDX file"):
        read_idx(cut)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"no MNIST folder at {SHARED}")
def test_the_shared_copy_is_mnist():
    """Canonical per-class counts of both splits; pixel mean and std of the training set."""
    x, y = load_mnist(SHARED)
    assert x.shape == (60000, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(y), [5923, 6742, 5958, 6131, 5842, 5421, 5918,
                                                   6265, 5851, 5949])
    assert (x / 255).mean() == pytest.approx(0.1307, abs=1e-4)
    assert (x / 255).std() == pytest.approx(0.3081, abs=1e-4)
    _, y_test = load_mnist(SHARED, split="test")
    np.testing.assert_array_equal(np.bincount(y_test), [980, 1135, 1032, 1010, 982, 892, 958,
                                                        1028, 974, 1009])
