"""Data for tests, examples and benchmarks.

- ``GaussianMixture``: an analytic mixture whose perturbed marginal p_t is again a mixture,
  N(m(t) mu_k, m(t)^2 Sigma_k + s(t)^2 I) under every SDE, so its score and log-density are
  exact at every t. That oracle stands in for a trained network in the tests.
- ``toy(name, n, seed)``: the usual 2-D toy sets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .validation import as_batch, check_count, choose


class GaussianMixture:
    """sum_k w_k N(mu_k, Sigma_k) in d dimensions.

    means: (K, d); covs: (K, d, d) covariance matrices, or (K, d) diagonal variances;
    weights: (K,) positive (normalised here), uniform when omitted.
    Parameters are kept in float64 and cast to the dtype of each input.
    """

    def __init__(self, means, covs, weights=None):
        means = torch.as_tensor(np.asarray(means, dtype=np.float64))
        covs = torch.as_tensor(np.asarray(covs, dtype=np.float64))
        if means.ndim != 2:
            raise ValueError(f"means must have shape (K, d); got {tuple(means.shape)}")
        k, d = means.shape
        if covs.shape == (k, d):
            covs = torch.diag_embed(covs)
        if covs.shape != (k, d, d):
            raise ValueError(f"covs must have shape ({k}, {d}, {d}) or ({k}, {d}); "
                             f"got {tuple(covs.shape)}")
        if weights is None:
            weights = torch.full((k,), 1.0 / k, dtype=torch.float64)
        weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        if weights.shape != (k,) or (weights <= 0).any():
            raise ValueError(f"weights must be {k} positive numbers; got {weights.tolist()}")
        for name, value in (("means", means), ("covs", covs), ("weights", weights)):
            if not torch.isfinite(value).all():
                raise ValueError(f"{name} contains NaN or inf")
        if not torch.allclose(covs, covs.transpose(1, 2)):
            raise ValueError("covs must be symmetric")
        eigvals, eigvecs = torch.linalg.eigh(covs)
        if (eigvals <= 0).any():
            raise ValueError("covs must be positive definite")
        self.means, self.covs = means, covs
        self.weights = weights / weights.sum()
        self.eigvals, self.eigvecs = eigvals, eigvecs  # Sigma_k = U_k diag(lambda_k) U_k^T

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _components(self, x, mean_scale, extra_var):
        """Per-component log-densities (n, K) and scores (n, K, d) of
        N(m mu_k, m^2 Sigma_k + v I) at x (n, d), with m, v (n,)."""
        dtype = x.dtype
        means = self.means.to(dtype=dtype, device=x.device)
        eigvals = self.eigvals.to(dtype=dtype, device=x.device)
        eigvecs = self.eigvecs.to(dtype=dtype, device=x.device)
        diff = x[:, None, :] - mean_scale[:, None, None] * means[None]
        rotated = torch.einsum("kdj,nkd->nkj", eigvecs, diff)
        var = mean_scale[:, None, None] ** 2 * eigvals[None] + extra_var[:, None, None]
        log_dens = -0.5 * ((rotated**2 / var).sum(-1) + torch.log(2 * math.pi * var).sum(-1))
        scores = -torch.einsum("kdj,nkj->nkd", eigvecs, rotated / var)
        return log_dens, scores

    def _log_weights(self, x):
        return torch.log(self.weights.to(dtype=x.dtype, device=x.device))

    def _log_prob(self, x, mean_scale, extra_var):
        log_dens, _ = self._components(x, mean_scale, extra_var)
        return torch.logsumexp(self._log_weights(x) + log_dens, dim=1)

    def _score(self, x, mean_scale, extra_var):
        log_dens, scores = self._components(x, mean_scale, extra_var)
        resp = torch.softmax(self._log_weights(x) + log_dens, dim=1)
        return (resp[:, :, None] * scores).sum(dim=1)

    def _check(self, x):
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            return as_batch(x, (self.dim,), dtype=x.dtype, device=x.device)
        return as_batch(x, (self.dim,), dtype=torch.float64)

    def log_prob(self, x) -> torch.Tensor:
        """Log-density in nats: x (n, d) -> (n,)."""
        x = self._check(x)
        ones = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
        return self._log_prob(x, ones, torch.zeros_like(ones))

    def sample(self, n: int, seed: int | None = None, dtype=torch.float64) -> torch.Tensor:
        """n draws as an (n, d) tensor."""
        n = check_count(n)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        scaled = torch.einsum("nkj,nj->nk", self.eigvecs[comp], self.eigvals[comp].sqrt() * z)
        return (self.means[comp] + scaled).to(dtype)

    def affine(self, loc, scale) -> "GaussianMixture":
        """The law of y = (x - loc) / scale for x from this mixture; loc, scale: (d,)."""
        loc = torch.as_tensor(loc, dtype=torch.float64).flatten()
        scale = torch.as_tensor(scale, dtype=torch.float64).flatten()
        return GaussianMixture((self.means - loc) / scale, self.covs / torch.outer(scale, scale),
                               self.weights)

    def marginal(self, sde, t: float) -> "GaussianMixture":
        """The perturbed marginal p_t under ``sde`` as a mixture."""
        tt = torch.tensor([float(t)], dtype=torch.float64)
        m = sde.mean_scale(tt).item()
        s2 = sde.marginal_std(tt).item() ** 2
        eye = torch.eye(self.dim, dtype=torch.float64)
        return GaussianMixture(m * self.means, m**2 * self.covs + s2 * eye, self.weights)

    def marginal_log_prob(self, x: torch.Tensor, t: torch.Tensor, sde) -> torch.Tensor:
        """log p_t(x) in nats under ``sde``: x (n, d), t (n,) -> (n,)."""
        return self._log_prob(x, sde.mean_scale(t), sde.marginal_std(t) ** 2)

    def marginal_score(self, x: torch.Tensor, t: torch.Tensor, sde) -> torch.Tensor:
        """grad_x log p_t(x) under ``sde``: x (n, d), t (n,) -> (n, d)."""
        return self._score(x, sde.mean_scale(t), sde.marginal_std(t) ** 2)

    def score_fn(self, sde):
        """The exact score of p_t as a ``score_fn(x, t)`` for ``ScoreModel``."""
        return lambda x, t: self.marginal_score(x, t, sde)

    def component(self, k: int) -> "GaussianMixture":
        """Component k alone: p(x | y = k) when each component is a class."""
        return GaussianMixture(self.means[k:k + 1], self.covs[k:k + 1])

    def conditional(self, x_observed, observed) -> "GaussianMixture":
        """The law of the unobserved coordinates given the observed ones, a mixture again:
        x_observed (d_o,) values at the coordinates where the bool mask ``observed`` (d,)
        is True."""
        mask = torch.as_tensor(np.asarray(observed, dtype=bool))
        o, u = mask.nonzero().flatten(), (~mask).nonzero().flatten()
        value = torch.as_tensor(np.asarray(x_observed, dtype=np.float64))
        s_oo = self.covs[:, o][:, :, o]
        s_uo = self.covs[:, u][:, :, o]
        gain = s_uo @ torch.linalg.inv(s_oo)  # (K, d_u, d_o)
        means = self.means[:, u] + torch.einsum("kuo,ko->ku", gain, value - self.means[:, o])
        covs = self.covs[:, u][:, :, u] - gain @ s_uo.transpose(1, 2)
        evidence = GaussianMixture(self.means[:, o], s_oo, self.weights)
        one = torch.ones(1, dtype=torch.float64)
        log_dens_o = evidence._components(value[None], one, torch.zeros_like(one))[0][0]
        weights = torch.softmax(evidence._log_weights(value) + log_dens_o, 0)
        return GaussianMixture(means, 0.5 * (covs + covs.transpose(1, 2)), weights)

    def noisy_class_log_prob(self, sde):
        """The exact noisy classifier log q(y | x_t, t) = log w_y N(x_t; m mu_y, m^2 Sigma_y +
        s^2 I) - log p_t(x_t) when component y is class y, as a callable log_q(y, x, t)
        with y (n,) labels, x (n, d), t (n,) -> (n,)."""
        def log_q(y, x, t):
            m, v = sde.mean_scale(t), sde.marginal_std(t) ** 2
            log_dens, _ = self._components(x, m, v)
            joint = self._log_weights(x) + log_dens
            return (joint.gather(1, y[:, None]).squeeze(1) - torch.logsumexp(joint, 1))
        return log_q


def random_mixture(dim: int, components: int = 3, seed: int = 0) -> GaussianMixture:
    """A random mixture in ``dim`` dimensions with correlated components and overall mean
    exactly 0, so the prior mismatch at T (about 0.8 |m(T) mean| nats a point) vanishes."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(components, dim, generator=generator, dtype=torch.float64)
    means = 1.2 * (means - means.mean(0))
    factors = 0.4 * torch.randn(components, dim, dim, generator=generator, dtype=torch.float64)
    covs = factors @ factors.transpose(1, 2) / dim + 0.1 * torch.eye(dim, dtype=torch.float64)
    return GaussianMixture(means, covs)


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
    ``sdescore.likelihood.bits_per_dim(nll, D, levels=levels)``."""
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


def _paper_split(name, x, levels=None, oracle=None, shuffle=True, image_shape=None):
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
    def load(folder):
        raw = np.loadtxt(folder / "wine" / f"winequality-{colour}.csv", delimiter=",", skiprows=1)
        x = _dequantize_columns(raw[:, :-1], np.random.RandomState(2019))
        return _paper_split(f"{colour}wine", _whiten(_paper_order(x)), shuffle=False)
    return load


def _parkinsons(folder):
    raw = np.loadtxt(folder / "parkinsons" / "parkinsons_updrs.data", delimiter=",", skiprows=1)
    x = _drop_correlated(raw[:, 3:])
    return _paper_split("parkinsons", _whiten(_paper_order(x)), shuffle=False)


def _uci(file, name):
    def load(folder):
        return _paper_split(name, np.loadtxt(folder / "uci" / file))
    return load


def _magic(folder):
    with np.load(folder / "magic" / "MagicTelescope.npz", allow_pickle=False) as archive:
        return _paper_split("magic", archive["x"][:, 1:])


def _digits(folder):
    from sklearn.datasets import load_digits

    return _paper_split("digits", dequantize(load_digits().data.astype(int), levels=17, seed=0),
                        levels=17, image_shape=(1, 8, 8))


def _mixture(dim):
    def load(folder):
        mixture = random_mixture(dim, components=3, seed=dim)
        return _paper_split(f"mixture{dim}", mixture.sample(22000, seed=0).numpy(),
                            oracle=mixture)
    return load


BENCHMARK_SETS = {
    "mixture2": _mixture(2), "mixture6": _mixture(6), "digits": _digits,
    "redwine": _wine("red"), "whitewine": _wine("white"), "parkinsons": _parkinsons,
    "power": _uci("power-plant.txt", "power"), "protein": _uci("protein-tertiary-structure.txt",
                                                                "protein"),
    "magic": _magic,
}
NEEDS_FOLDER = {"redwine", "whitewine", "parkinsons", "power", "protein", "magic"}


def load_benchmark(name: str, data_dir=None) -> Split:
    """A benchmark data set, split for training and testing.

    name: mixture2, mixture6 (analytic, with an oracle), digits (scikit-learn's 8 x 8 digits,
    dequantised to [0, 1) with 17 levels), redwine, whitewine, parkinsons (preprocessed as in
    the sliced-score-matching paper: dequantised or decorrelated, PCA-whitened), power,
    protein, magic. The real tables are read from ``data_dir`` (default ``../shared/data``
    from the working directory); a missing folder raises FileNotFoundError saying so.
    """
    loader = choose(name, BENCHMARK_SETS, name="data set")
    folder = Path(data_dir) if data_dir is not None else Path("..") / "shared" / "data"
    if name in NEEDS_FOLDER and not folder.is_dir():
        raise FileNotFoundError(f"{name} needs the data folder {folder} (see shared/data/README.md);"
                                " pass data_dir=...")
    return loader(folder)
