"""MNIST from the four standard IDX files (gzipped or not), read with NumPy alone.

IDX: two zero bytes, a type byte (0x08: unsigned bytes), the number of dimensions, each
dimension as a big-endian 32-bit integer, then the values in C order.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ._checks import choose
from ._data_folder import data_folder

__all__ = ["FILES", "load_mnist", "read_idx"]

#: Split -> (image file, label file), the standard IDX names, each read gzipped or not.
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path) -> np.ndarray:
    """The uint8 array an IDX file of unsigned bytes holds (shape from its header); a file
    that is not one, or is cut short, raises ValueError naming it."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (header {raw[:4]!r})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    if len(dims) != ndim or len(raw) - header != int(np.prod(dims)):
        raise ValueError(f"{path}: the header announces shape {dims}, the file holds "
                         f"{len(raw) - header} values")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"MNIST file {stem}[.gz] is missing from {folder}: put the four "
                            "standard IDX files there (train-images-idx3-ubyte, "
                            "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                            "t10k-labels-idx1-ubyte, gzipped or not), or pass data_dir=...")


def load_mnist(data_dir=None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST images and labels: uint8 (n, 1, 28, 28) and int64 (n,).

    data_dir: the folder holding the IDX files (default: ``$SDESCORE_DATA/mnist``; with
    neither, ValueError); split: "train" (60,000) or "test" (10,000). Missing files raise
    FileNotFoundError naming the folder; images and labels of different counts ValueError.
    """
    images_stem, labels_stem = choose(split, FILES, name="split")
    folder = (Path(data_dir) if data_dir is not None
              else data_folder(None, "MNIST") / "mnist")
    images = read_idx(_find(folder, images_stem))
    labels = read_idx(_find(folder, labels_stem))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{folder}: images of shape {images.shape} and labels of shape "
                         f"{labels.shape} do not pair up")
    return images[:, None].copy(), labels.astype(np.int64)
