"""Data for tests, examples and benchmarks.

- ``toy(name, n, seed)``: the usual 2-D toy sets.
- ``dequantize``: uniform dequantisation of integer data to [0, 1).
- ``load_benchmark(name)``: benchmark tables, scikit-learn's digits and analytic mixtures,
  split for training and testing.
- ``load_mnist(data_dir, split)``: MNIST from its IDX files (``sdescore.mnist``).

The analytic oracle ``GaussianMixture`` (and ``random_mixture``) lives in ``sdescore.oracle``
and is importable from here too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mnist import load_mnist
from .oracle import GaussianMixture, random_mixture
from ._checks import check_count, choose
from ._data_folder import data_folder

__all__ = ["BENCHMARK_FILES", "BENCHMARK_SETS", "dequantize", "GaussianMixture", "load_benchmark",
           "load_mnist", "paper_split", "random_mixture", "Split", "toy", "TOYS"]


def _eight_gaussians(rng, n):
    angles = rng.integers(0, 8, n) * (np.pi / 4)
    centers = 2.0 * np.stack([np.cos(angles), np.sin(angles)], 1)
    return centers + 0.2 * rng.standard_normal((n, 2))


def _checkerboard(rng, n):
    # 4 x 4 board on [-2, 2]^2; points fill the 8 cells whose indices sum to an even number.
    row = rng.integers(0, 4, n)
    col = 2 * rng.integers(0, 2, n) + row % 2
    return np.stack([col, row], 1) - 2 + rng.random((n, 2))


def _two_spirals(rng, n):
    turn = np.sqrt(rng.random(n)) * 3 * np.pi
    arm = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    points = arm[:, None] * np.stack([-np.cos(turn) * turn, np.sin(turn) * turn], 1)
    return points / 3 + 0.1 * rng.standard_normal((n, 2))


def _rings(rng, n):
    radius = 0.5 * rng.integers(1, 5, n)
    angle = rng.random(n) * 2 * np.pi
    return radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1) \
        + 0.08 * rng.standard_normal((n, 2))


def _moons(rng, n):
    upper = rng.random(n) < 0.5
    angle = rng.random(n) * np.pi
    x = np.where(upper, np.cos(angle), 1 - np.cos(angle))
    y = np.where(upper, np.sin(angle), 0.5 - np.sin(angle))
    points = np.stack([x - 0.5, y - 0.25], 1) * 2
    return points + 0.1 * rng.standard_normal((n, 2))


def _pinwheel(rng, n, arms=5, radial_std=0.3, tangential_std=0.1, rate=0.25):
    arm = rng.integers(0, arms, n)
    features = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
    features[:, 0] += 1.0
    angle = 2 * np.pi * arm / arms + rate * np.exp(features[:, 0])
    c, s = np.cos(angle), np.sin(angle)
    points = np.stack([c * features[:, 0] - s * features[:, 1],
                       s * features[:, 0] + c * features[:, 1]], 1)
    return 2 * points


def _swissroll(rng, n):
    turn = 1.5 * np.pi * (1 + 2 * rng.random(n))
    points = np.stack([turn * np.cos(turn), turn * np.sin(turn)], 1) / 5
    return points + 0.1 * rng.standard_normal((n, 2))


def _circles(rng, n):
    radius = np.where(rng.random(n) < 0.5, 2.0, 1.0)
    angle = rng.random(n) * 2 * np.pi
    return radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1) \
        + 0.08 * rng.standard_normal((n, 2))


#: Toy name -> a function (n, generator) -> (n, 2) float32 points; see ``toy``.
TOYS = {
    "8gaussians": _eight_gaussians,
    "checkerboard": _checkerboard,
    "2spirals": _two_spirals,
    "rings": _rings,
    "moons": _moons,
    "pinwheel": _pinwheel,
    "swissroll": _swissroll,
    "circles": _circles,
}


def dequantize(data, levels: int = 256, seed: int | None = None) -> np.ndarray:
    """Uniform dequantisation of integers k in {0, ..., levels - 1}: x = (k + u) / levels with
    u ~ U[0, 1), so x lies in [0, 1). Report likelihoods of x with
    ``sdescore.bits_per_dim(nll, D, levels=levels)``."""
    k = np.asarray(data)
    if k.dtype.kind not in "iu" and not (k.dtype.kind == "f" and np.all(k == np.round(k))):
        raise TypeError(f"data must hold integers to dequantise; got dtype {k.dtype}")
    if k.size == 0 or k.min() < 0 or k.max() >= levels:
        raise ValueError(f"data must be integers in [0, {levels - 1}]")
    u = np.random.default_rng(seed).random(k.shape)
    return ((k + u) / levels).astype(np.float32)


def toy(name: str, n: int, seed: int | None = None) -> np.ndarray:
    """n points of a 2-D toy set as an (n, 2) float32 array, roughly within [-4, 4]^2.

    name: one of 8gaussians, checkerboard, 2spirals, rings, moons, pinwheel, swissroll, circles.
    """
    make = choose(name, TOYS, name="toy data set")
    n = check_count(n)
    return make(np.random.default_rng(seed), n).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Benchmark data sets: real tables from a data folder, scikit-learn's digits, analytic mixtures.

@dataclass
class Split:
    """train / validation / test arrays (float32) of one data set.

    levels: for dequantised discrete data, the number of levels (report bits/dim);
    oracle: the true law as a GaussianMixture when known (true entropy, KL gaps);
    image_shape: (c, h, w) when each row is a flattened image (for image models like Glow).
    """

    name: str
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    levels: int | None = None
    oracle: GaussianMixture | None = None
    image_shape: tuple | None = None


def paper_split(name, x, levels=None, oracle=None, shuffle=True, image_shape=None):
    """Shuffle with seed 2019 (unless already shuffled); test = last min(1000, n // 10) rows,
    validation = the min(1000, (n - test) // 10) before them, train = the rest (the split of
    the sliced-score-matching paper)."""
    x = (_paper_order(x) if shuffle else x).astype(np.float32)
    n_test = min(1000, len(x) // 10)
    n_val = min(1000, (len(x) - n_test) // 10)
    train, val, test = np.split(x, [len(x) - n_test - n_val, len(x) - n_test])
    return Split(name, train, val, test, levels, oracle, image_shape)


def _paper_order(x):
    return x[np.random.RandomState(2019).permutation(len(x))]


def _whiten(x):
    """PCA whitening with the statistics of the whole set."""
    centred = x - x.mean(0)
    eigvals, eigvecs = np.linalg.eigh(np.cov(centred, rowvar=False))
    return centred @ eigvecs / np.sqrt(eigvals)


def _dequantize_columns(x, rng):
    """Add U(-1, 1) times the median gap between a column's sorted unique values."""
    gaps = np.array([np.median(np.diff(np.unique(column))) for column in x.T])
    return x + rng.uniform(-1, 1, x.shape) * gaps


def _drop_correlated(x, threshold=0.98):
    """Repeatedly delete the first column whose |correlation| with another exceeds threshold."""
    while True:
        corr = np.abs(np.corrcoef(x, rowvar=False)) - np.eye(x.shape[1])
        flagged = np.nonzero((corr > threshold).any(1))[0]
        if len(flagged) == 0:
            return x
        x = np.delete(x, flagged[0], axis=1)


def _wine(colour):
    def load(path):
        raw = np.loadtxt(path, delimiter=",", skiprows=1)
        x = _dequantize_columns(raw[:, :-1], np.random.RandomState(2019))
        return paper_split(f"{colour}wine", _whiten(_paper_order(x)), shuffle=False)
    return load


def _parkinsons(path):
    raw = np.loadtxt(path, delimiter=",", skiprows=1)
    x = _drop_correlated(raw[:, 3:])
    return paper_split("parkinsons", _whiten(_paper_order(x)), shuffle=False)


def _uci(name):
    def load(path):
        return paper_split(name, np.loadtxt(path))
    return load


def _magic(path):
    with np.load(path, allow_pickle=False) as archive:
        return paper_split("magic", archive["x"][:, 1:])


def _digits(path=None):
    from sklearn.datasets import load_digits

    return paper_split("digits", dequantize(load_digits().data.astype(int), levels=17, seed=0),
                        levels=17, image_shape=(1, 8, 8))


def _mixture(dim):
    def load(path=None):
        mixture = random_mixture(dim, components=3, seed=dim)
        return paper_split(f"mixture{dim}", mixture.sample(22000, seed=0).numpy(),
                            oracle=mixture)
    return load


#: Set name -> its loader (given the path of its file, or None for the sets that need no
#: file).
BENCHMARK_SETS = {
    "mixture2": _mixture(2), "mixture6": _mixture(6), "digits": _digits,
    "redwine": _wine("red"), "whitewine": _wine("white"), "parkinsons": _parkinsons,
    "power": _uci("power"), "protein": _uci("protein"), "magic": _magic,
}
#: Set name -> the file it is read from, relative to ``data_dir``.
BENCHMARK_FILES = {"redwine": "wine/winequality-red.csv", "whitewine": "wine/winequality-white.csv",
                   "parkinsons": "parkinsons/parkinsons_updrs.data", "power": "uci/power-plant.txt",
                   "protein": "uci/protein-tertiary-structure.txt",
                   "magic": "magic/MagicTelescope.npz"}


def load_benchmark(name: str, data_dir=None) -> Split:
    """A benchmark data set, split for training and testing.

    name: mixture2, mixture6 (analytic, with an oracle), digits (scikit-learn's 8 x 8 digits,
    dequantised to [0, 1) with 17 levels), redwine, whitewine, parkinsons (preprocessed as in
    the sliced-score-matching paper: dequantised or decorrelated, PCA-whitened), power,
    protein, magic. The real tables are read from ``data_dir`` (default: the folder the
    SDESCORE_DATA environment variable names; with neither, ValueError; ``BENCHMARK_FILES``
    names each file under it); a missing file raises FileNotFoundError naming it.
    """
    loader = choose(name, BENCHMARK_SETS, name="data set")
    if name not in BENCHMARK_FILES:
        return loader(None)
    path = data_folder(data_dir, name) / BENCHMARK_FILES[name]
    if not path.is_file():
        raise FileNotFoundError(f"{name} needs the file {path} (where to get it: the docs' "
                                "'Tables and anomaly scores' page); pass data_dir=FOLDER or set "
                                "SDESCORE_DATA")
    return loader(path)
