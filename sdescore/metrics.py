"""Statistics for judging models: a mean with its standard error, and two-sample
statistics for judging samples against data."""
from __future__ import annotations

import math
import numbers

import torch

from ._checks import check_positive

__all__ = ["bits_per_dim", "energy_distance", "energy_distance_se", "mean_and_se", "mmd"]


def mean_and_se(values: torch.Tensor) -> tuple[float, float]:
    """(mean, standard error of the mean) of values (n, ...) taken as n * ... draws, in
    float64: sample standard deviation / sqrt(count)."""
    values = values.double().flatten()
    return values.mean().item(), (values.std() / math.sqrt(values.numel())).item()


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` between samples x (n, ...) and
    y (m, ...), with the unbiased (U-statistic) within-sample terms. Zero in expectation
    when x and y come from the same distribution."""
    x = x.reshape(x.shape[0], -1).double()
    y = y.reshape(y.shape[0], -1).double()
    n, m = x.shape[0], y.shape[0]
    between = torch.cdist(x, y).mean()
    within_x = torch.cdist(x, x).sum() / (n * (n - 1))
    within_y = torch.cdist(y, y).sum() / (m * (m - 1))
    return float(2 * between - within_x - within_y)


def energy_distance_se(x: torch.Tensor, y: torch.Tensor, blocks: int = 10) -> float:
    """A jackknife standard error of ``energy_distance(x, y)``: each of ``blocks`` disjoint
    blocks of the rows of x and y left out in turn (so its own noise enters), sqrt((B - 1) /
    B * sum (theta_i - mean)^2). Needs at least 2 * blocks rows in each sample."""
    n, m = x.shape[0], y.shape[0]
    if min(n, m) < 2 * blocks:
        raise ValueError(f"energy_distance_se needs at least {2 * blocks} rows in each sample; "
                         f"got {n} and {m}")
    keep_x, keep_y = torch.arange(n) % blocks, torch.arange(m) % blocks
    left_out = torch.tensor([energy_distance(x[keep_x != b], y[keep_y != b])
                             for b in range(blocks)], dtype=torch.float64)
    return float(((blocks - 1) / blocks * (left_out - left_out.mean()).square().sum()).sqrt())


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths=None) -> float:
    """Unbiased squared maximum mean discrepancy between x (n, ...) and y (m, ...) with a sum
    of Gaussian kernels ``exp(-|a - b|^2 / (2 h^2))``, one per bandwidth h. The default
    bandwidths are 1/4, 1/2 and 1 times the median distance between the pooled points."""
    x = x.reshape(x.shape[0], -1).double()
    y = y.reshape(y.shape[0], -1).double()
    n, m = x.shape[0], y.shape[0]
    dist2 = torch.cdist(torch.cat([x, y]), torch.cat([x, y])).square_()
    if bandwidths is None:
        median = dist2[dist2 > 0].median().sqrt().item()
        bandwidths = (median / 4, median / 2, median)
    within_x = within_y = between = 0.0
    for h in bandwidths:  # one (n + m)^2 kernel at a time, in place: memory traffic dominates
        kernel = torch.mul(dist2, -0.5 / h**2).exp_()
        diagonal = kernel.diagonal()
        within_x += (kernel[:n, :n].sum() - diagonal[:n].sum()).item()
        within_y += (kernel[n:, n:].sum() - diagonal[n:].sum()).item()
        between += kernel[:n, n:].sum().item()
    return within_x / (n * (n - 1)) + within_y / (m * (m - 1)) - 2 * between / (n * m)


def bits_per_dim(nll_nats, dim: int, *, levels: int = 256, log_scale: float = 0.0):
    """Bits per dimension of discrete data k in {0, ..., levels - 1} dequantised to
    x = (k + u) / levels (``sdescore.datasets.dequantize``).

    nll_nats: -log p(x) in nats, any shape; dim: D, numbers per sample; log_scale: ``ln|a|`` when
    the model saw y = a x + b instead of x (then ``NLL_x = NLL_y - D ln|a|``). The density of x on
    [0, 1)^D is levels^D times the probability of the bin, hence the log2(levels) term:
    bits/dim = NLL_x / (D ln 2) + log2(levels).

    TypeError or ValueError, named, for a dim that is not an integer > 0, levels that are
    not an integer >= 2, or a log_scale that is not a finite number.
    """
    dim = check_positive(dim, name="dim", integer=True)
    if check_positive(levels, name="levels", integer=True) < 2:
        raise ValueError(f"levels must be >= 2 (data k in {{0, ..., levels - 1}}); got {levels}")
    if isinstance(log_scale, bool) or not isinstance(log_scale, numbers.Real):
        raise TypeError(f"log_scale must be a number; got {type(log_scale).__name__}")
    if not math.isfinite(log_scale):
        raise ValueError(f"log_scale must be finite; got {log_scale}")
    return (nll_nats - dim * log_scale) / (dim * math.log(2)) + math.log2(levels)
