"""The reference Gaussian of ``fit``'s default parameterisation: the best Gaussian of the
training rows, which the untrained model is and which held-out selection offers as step 0.

The rows are in model coordinates (standardised: zero mean, unit variance per column), so
the Gaussian is N(0, Sigma) with Sigma the rows' covariance shrunk toward its own diagonal
by an amount chosen by cross-validation of the Gaussian's likelihood. Measured on
correlated Gaussian tables of 100 rows, cross-validation over every given row chose better
than the held-out rows alone (``benchmarks.small_tables``).
"""
from __future__ import annotations

import math

import torch

__all__ = ["SHRINKAGES", "choose_shrinkage", "gaussian_log_prob", "reference_covariance"]

SHRINKAGES = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
"""The shrinkage amounts ``choose_shrinkage`` tries: 0 is the sample covariance, 1 its
diagonal (independent columns)."""

_FOLDS = 5


def reference_covariance(rows: torch.Tensor, shrinkage: float) -> torch.Tensor:
    """The (d, d) float64 covariance (on the CPU) of ``rows`` (n, d), moved ``shrinkage``
    (in [0, 1]) of the way to its diagonal: (1 - shrinkage) S + shrinkage diag(S)."""
    if not 0 <= shrinkage <= 1:
        raise ValueError(f"shrinkage must be in [0, 1]; got {shrinkage}")
    rows = rows.detach().to("cpu", torch.float64)
    sample = torch.cov(rows.T).reshape(rows.shape[1], rows.shape[1])
    return (1 - shrinkage) * sample + shrinkage * torch.diag(torch.diagonal(sample))


def gaussian_log_prob(rows: torch.Tensor, covariance: torch.Tensor) -> torch.Tensor:
    """log N(row; 0, covariance) in nats for each of ``rows`` (n, d), float64 (n,); -inf for
    every row when ``covariance`` (d, d) is not positive definite."""
    rows = rows.detach().to("cpu", torch.float64)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance.to(torch.float64))
    if eigenvalues.min() <= 1e-10 * eigenvalues.max().clamp(min=1e-300):
        return torch.full((rows.shape[0],), -math.inf, dtype=torch.float64)
    projected = rows @ eigenvectors
    return -0.5 * ((projected**2 / eigenvalues).sum(1) + eigenvalues.log().sum()
                   + rows.shape[1] * math.log(2 * math.pi))


def choose_shrinkage(rows: torch.Tensor, generator: torch.Generator | None = None) -> float:
    """The ``SHRINKAGES`` entry whose ``reference_covariance`` gives the highest 5-fold
    cross-validated ``gaussian_log_prob`` of ``rows`` (n, d), the folds drawn from
    ``generator``; ties go to the larger shrinkage, and below 10 rows it is 1 (the
    diagonal)."""
    rows = rows.detach().to("cpu", torch.float64)
    if rows.shape[0] < 2 * _FOLDS:
        return 1.0
    folds = torch.randperm(rows.shape[0], generator=generator).chunk(_FOLDS)
    pairs = [(rows[torch.cat([f for j, f in enumerate(folds) if j != i])], rows[fold])
             for i, fold in enumerate(folds)]
    scores = [float(sum(gaussian_log_prob(scored, reference_covariance(fitted, shrinkage)).sum()
                        for fitted, scored in pairs))
              for shrinkage in SHRINKAGES]
    best = max(scores)
    return max(s for s, score in zip(SHRINKAGES, scores) if score == best)
