"""The analytic oracle: Gaussian mixtures whose every perturbed marginal is known in closed form.

Under each SDE, sum_k w_k N(mu_k, Sigma_k) perturbs to p_t = sum_k w_k N(m(t) mu_k,
m(t)^2 Sigma_k + s(t)^2 I), another mixture, so its score and log-density are exact at
every t. That oracle stands in for a trained network in the tests and benchmarks: likelihoods,
samplers, bounds and guidance are checked against it.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._checks import as_batch, check_count, symmetric_eigh

__all__ = ["GaussianMixture", "random_mixture"]


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
        for name, value in (("means", means), ("weights", weights)):
            if not torch.isfinite(value).all():
                raise ValueError(f"{name} contains NaN or inf")
        eigvals, eigvecs = symmetric_eigh(covs, name="covs")
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
    exactly 0, so the prior mismatch at T (about ``0.8 |m(T) mean|`` nats a point) vanishes."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(components, dim, generator=generator, dtype=torch.float64)
    means = 1.2 * (means - means.mean(0))
    factors = 0.4 * torch.randn(components, dim, dim, generator=generator, dtype=torch.float64)
    covs = factors @ factors.transpose(1, 2) / dim + 0.1 * torch.eye(dim, dtype=torch.float64)
    return GaussianMixture(means, covs)
